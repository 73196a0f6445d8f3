"""Wall time of `playbooks/harden.yml` on lab hosts: first run and the idempotent re-run.

Brings up its own lab of the default 6 hosts, hardens --limit one host (first run and
re-run), then the whole fleet (first run and re-run), and takes the lab down. As root:
    .venv/bin/python -m benchmarks.harden_lab [--skip-fleet]
"""

from __future__ import annotations

import argparse
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.record import write_section
from parcelguard.lab import core, fleet

ROOT = Path(__file__).resolve().parent.parent
EXTRA = ROOT / "tests" / "integration" / "lab-harden-vars.yml"


def harden(inventory: Path, *extra: str) -> tuple[float, int]:
    """Seconds taken and the total of changed tasks."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(inventory),
            "playbooks/harden.yml",
            "-e",
            f"@{EXTRA}",
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"harden failed:\n{proc.stdout[-3000:]}")
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", proc.stdout))
    return took, changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-fleet", action="store_true", help="time one host only")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as state:
        name = "h" + secrets.token_hex(4)
        lab = core.up(name, fleet.DEFAULT_FLEET, state_root=Path(state))
        try:
            scopes: tuple[tuple[str, tuple[str, ...]], ...] = (
                ("1 host (app1)", ("--limit", "app1")),
                ("6 hosts (5 neglected + app1, hardened by the row above)", ()),
            )
            for label, extra in scopes:
                if label.startswith("6 hosts") and args.skip_fleet:
                    continue
                first, changed1 = harden(lab.paths.inventory, *extra)
                again, changed2 = harden(lab.paths.inventory, *extra)
                print(
                    f"{label}: first {first:.0f} s ({changed1} changed), "
                    f"re-run {again:.0f} s ({changed2} changed)",
                    file=sys.stderr,
                )
                rows.append(f"| {label} | {first:.0f} | {changed1} | {again:.0f} | {changed2} |")
        finally:
            core.down(name, state_root=Path(state))
    body = (
        "## Hardening (`ansible-playbook playbooks/harden.yml`, all roles)\n\n"
        "On fresh lab hosts in their neglected state, with the packages already in the\n"
        "lab's shared cache (downloads excluded), ansible's default 5 forks. The re-run must\n"
        "change nothing. One run each.\n\n"
        "| scope | first run (s) | tasks changed | re-run (s) | tasks changed |\n"
        "|---|---|---|---|---|\n" + "\n".join(rows)
    )
    write_section("harden", body)


if __name__ == "__main__":
    main()
