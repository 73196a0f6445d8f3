"""Trigger-to-verified time of offboarding across a lab fleet (target: under 60 s for 50).

For each size, brings up its own lab (lihua seeded on every host: password, key, sudo,
cron, a lingering user service, and a database role on the database hosts), runs
`parcelguard offboard lihua --ticket ...` as a user would, and reads from the job's
evidence when the trigger arrived and when the last host was verified. The lab is then
re-seeded and the run repeated (median of the runs). As root:

    .venv/bin/python -m benchmarks.offboard_fleet [--sizes 10 50] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.record import write_section
from parcelguard.lab import core, fleet


def offboard(inventory: Path, db: Path, ticket: str) -> tuple[float, float, dict[str, Any]]:
    """(wall seconds, trigger-to-verified seconds from the evidence, the job)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "parcelguard",
            "offboard",
            "lihua",
            "--ticket",
            ticket,
            "-i",
            str(inventory),
            "--db",
            str(db),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"offboarding failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    listed = subprocess.run(
        [sys.executable, "-m", "parcelguard", "offboard", "status", "--json", "--db", str(db)],
        capture_output=True,
        text=True,
        check=True,
    )
    job_id = json.loads(listed.stdout)[-1]["id"]
    detail = subprocess.run(
        [
            sys.executable,
            "-m",
            "parcelguard",
            "offboard",
            "status",
            str(job_id),
            "--json",
            "--db",
            str(db),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    job: dict[str, Any] = json.loads(detail.stdout)
    trail = job["trail"]
    start = datetime.fromisoformat(trail[0]["at"])
    end = datetime.fromisoformat(trail[-1]["at"])
    return wall, (end - start).total_seconds(), job


def phases(job: dict[str, Any]) -> tuple[float, float]:
    """Seconds spent revoking (trigger to last host revoked) and verifying (to the end)."""
    trail = job["trail"]
    start = datetime.fromisoformat(trail[0]["at"])
    revoked = max(datetime.fromisoformat(e["at"]) for e in trail if e["kind"] == "host_revoked")
    end = datetime.fromisoformat(trail[-1]["at"])
    return (revoked - start).total_seconds(), (end - revoked).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as state:
            name = "o" + secrets.token_hex(4)
            lab = core.up(name, fleet.scaled_fleet(size), state_root=Path(state))
            try:
                walls, verified, revoking, verifying = [], [], [], []
                for run in range(args.runs):
                    if run:
                        core.reseed_departed(lab)
                    db = Path(state) / f"off-{run}.db"
                    wall, took, job = offboard(lab.paths.inventory, db, f"BENCH-{size}-{run}")
                    if job["state"] != "verified":
                        raise SystemExit(f"job not verified: {job['state']}")
                    rev, ver = phases(job)
                    walls.append(wall)
                    verified.append(took)
                    revoking.append(rev)
                    verifying.append(ver)
                    print(
                        f"{size} hosts, run {run + 1}: trigger to verified {took:.0f} s "
                        f"(revoke {rev:.0f} s, verify {ver:.0f} s), command {wall:.1f} s",
                        file=sys.stderr,
                    )
            finally:
                core.down(name, state_root=Path(state))
        rows.append(
            f"| {size} | {verified[0]:.0f} | {statistics.median(verified):.0f} | "
            f"{statistics.median(revoking):.0f} | "
            f"{statistics.median(verifying):.0f} | {statistics.median(walls):.1f} | "
            f"{'yes' if size != 50 or statistics.median(verified) < 60 else 'no'} |"
        )
    body = (
        "## Offboarding: trigger to verified revocation (`parcelguard offboard`)\n\n"
        "The departed employee is seeded on every lab host (password, SSH key, NOPASSWD\n"
        "sudo, cron job, lingering user service; a database role on database hosts). Time\n"
        "from the trigger's audit-trail entry to the job's `job_verified` entry (one-second\n"
        "resolution), split into revoking (the playbook on every host) and verifying\n"
        "(independent read-only checks plus an SSH login attempt with her key on every\n"
        f"host). Median of {args.runs} runs; target: under 60 s for 50 hosts.\n\n"
        "The first run on a fleet that has just booted is slower (50 containers still\n"
        "settling on 2 cores, first SSH connections); it is shown on its own.\n\n"
        "| hosts | first run (s) | trigger to verified, median (s) | revoking (s) |"
        " verifying (s) | whole command (s) | median under 60 s for 50 |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    write_section("offboard", body)


if __name__ == "__main__":
    main()
