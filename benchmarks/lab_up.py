"""How long `parcelguard lab up` and `lab down` take with the image cached.

Target (issue 2): 6 hosts in 4 zones up in under 2 minutes. Usage, as root:
    .venv/bin/python -m benchmarks.lab_up [--runs 3] [--hosts 6 50]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.record import median, write_section
from parcelguard.lab import core, fleet, image
from parcelguard.lab.podman import Podman
from parcelguard.paths import cache_home


def measure(count: int, runs: int) -> tuple[list[float], list[float]]:
    chosen = fleet.DEFAULT_FLEET if count == 6 else fleet.scaled_fleet(count)
    ups, downs = [], []
    with tempfile.TemporaryDirectory() as state:
        for _ in range(runs):
            name = "b" + secrets.token_hex(4)
            t0 = time.perf_counter()
            core.up(name, chosen, state_root=Path(state))
            t1 = time.perf_counter()
            core.down(name, state_root=Path(state))
            t2 = time.perf_counter()
            ups.append(t1 - t0)
            downs.append(t2 - t1)
            print(f"{count} hosts: up {t1 - t0:.1f} s, down {t2 - t1:.1f} s", file=sys.stderr)
    return ups, downs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hosts", type=int, nargs="+", default=[6, 50])
    args = parser.parse_args()
    apt_cache = cache_home() / "apt-archives"
    (apt_cache / "partial").mkdir(parents=True, exist_ok=True)
    image.ensure_image(Podman(), apt_cache, lambda m: print(m, file=sys.stderr))
    rows = []
    for count in args.hosts:
        ups, downs = measure(count, args.runs)
        rows.append(
            f"| {count} | {median(ups):.1f} | {min(ups):.1f}-{max(ups):.1f} | {median(downs):.1f} |"
        )
    body = (
        "## Lab fleet start-up (`parcelguard lab up`, image cached)\n\n"
        f"Target: 6 hosts in 4 zones in under 120 s. {args.runs} runs per size; `up` includes\n"
        "creating networks, starting containers, waiting for systemd, provisioning (PostgreSQL\n"
        "with 500 waybills on the database hosts) and writing inventory and known_hosts.\n\n"
        "| hosts | up median (s) | up range (s) | down median (s) |\n|---|---|---|---|\n"
        + "\n".join(rows)
    )
    write_section("lab-up", body)


if __name__ == "__main__":
    main()
