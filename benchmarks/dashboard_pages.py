"""How long the dashboard's pages take on a store of 1,000 hosts x 100 scans.

Target (issue 7): every page under 300 ms. The store holds 100 scans of the same 1,000
hosts (the recorded neglected lab hosts' real results, plus 13 synthetic controls to
reach 60 per host: 6 million results); from one scan to the next, 20 hosts change a few
results, so drift has something to show. Pages are fetched over real HTTP from the
service's own server (cheroot, in this process) with a signed-in admin's cookie; each
time is the median of ``--runs`` fetches after one warm-up fetch.

Usage:
    .venv/bin/python -m benchmarks.dashboard_pages [--hosts 1000] [--scans 100] [--runs 5]
        [--store PATH]   (reuse a store built before; built there when missing)
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import random
import re
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from cheroot import wsgi
from tests.fixtures.synthetic import recorded_fleet

from benchmarks.record import median, write_section
from parcelguard.scanners.model import Status
from parcelguard.scanners.store import ScanStore
from parcelguard.server.app import Service
from parcelguard.server.config import parse_config

STATUSES = (Status.PASS, Status.FAIL, Status.ERROR)
TARGET_MS = 300


def build_store(path: Path, hosts: int, scans: int) -> tuple[float, list[str]]:
    """Seconds to save ``scans`` scans of ``hosts`` hosts; their ids, oldest first."""
    rng = random.Random(7)
    base = recorded_fleet(hosts, extra_controls=13)
    store = ScanStore(path)
    current = list(base.hosts)
    ids = []
    t0 = time.perf_counter()
    for i in range(scans):
        for index in rng.sample(range(len(current)), min(20, len(current))):
            h = current[index]
            flip = set(rng.sample(range(len(h.results)), 3))
            current[index] = dataclasses.replace(
                h,
                results=tuple(
                    dataclasses.replace(r, status=rng.choice(STATUSES)) if n in flip else r
                    for n, r in enumerate(h.results)
                ),
            )
        started = base.started + timedelta(hours=6 * i)
        scan = dataclasses.replace(
            base,
            scan_id=f"{started:%Y%m%dT%H%M%SZ}-bench{i:03d}",
            started=started,
            finished=started + timedelta(minutes=2),
            hosts=tuple(current),
        )
        store.save(scan)
        ids.append(scan.scan_id)
        if (i + 1) % 10 == 0:
            print(f"  stored {i + 1}/{scans} scans", file=sys.stderr)
    return time.perf_counter() - t0, ids


def service_for(folder: Path, store: Path) -> tuple[Service, str]:
    inventory = folder / "inventory.yml"
    inventory.write_text("all: {}\n", encoding="utf-8")
    secret = folder / "admin.secret"
    password = "benchmark admin secret"
    secret.write_text(password + "\n", encoding="utf-8")
    secret.chmod(0o600)
    config = parse_config(
        {
            "inventory": str(inventory),
            "database": str(folder / "service.db"),
            "scans_database": str(store),
            "dashboard": {"admin_password_file": str(secret)},
        }
    )
    return Service(config, progress=lambda _m: None), password


class Browser:
    """A signed-in HTTP client of the running server (one keep-alive connection)."""

    def __init__(self, port: int, password: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}
        page = self.get("/login")[1].decode()
        found = re.search(r'name="nonce" value="([^"]+)"', page)
        assert found
        body = urlencode({"nonce": found.group(1), "username": "admin", "password": password})
        status, _ = self.request(
            "POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert status == 302, status

    def request(
        self, method: str, path: str, body: str | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        self.conn.request(method, path, body=body, headers=sent)
        response = self.conn.getresponse()
        data = response.read()
        for value in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name] = rest.split(";")[0]
        return response.status, data

    def get(self, path: str) -> tuple[int, bytes]:
        return self.request("GET", path)


def measure(browser: Browser, path: str, runs: int) -> tuple[float, float, int]:
    """(first fetch ms, median ms of the next ``runs``, size in bytes)."""
    t0 = time.perf_counter()
    status, body = browser.get(path)
    first = (time.perf_counter() - t0) * 1000
    assert status == 200, (path, status, body[:300])
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        status, body = browser.get(path)
        times.append(time.perf_counter() - t0)
        assert status == 200
    return first, median(times) * 1000, len(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--scans", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--store", type=Path, help="a store to reuse (built when missing)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pg-bench-dash-") as tmp:
        folder = Path(tmp)
        store = args.store or folder / "scans.db"
        build_seconds = None
        if not store.exists():
            print(f"building {args.scans} scans of {args.hosts} hosts", file=sys.stderr)
            build_seconds, _ = build_store(store, args.hosts, args.scans)
        ids = [s.scan_id for s in ScanStore(store).scans(limit=args.scans)][::-1]
        size_mb = sum(p.stat().st_size for p in store.parent.glob(store.name + "*")) / 1e6
        service, password = service_for(folder, store)
        server = wsgi.Server(("127.0.0.1", 0), service, numthreads=4)
        server.prepare()
        threading.Thread(target=server.serve, daemon=True).start()
        browser = Browser(server.bind_addr[1], password)
        first, last = ids[0], ids[-1]
        host = "web1"  # recorded_fleet names its hosts web1, app1, db1, bastion1, web2, ...
        pages = [
            ("fleet overview", "/"),
            ("hosts (all)", "/hosts"),
            ("host", f"/hosts/{host}"),
            ("article 34", "/articles/34"),
            ("scans", "/scans"),
            ("scan", f"/scans/{last}"),
            ("drift, consecutive scans", f"/drift?before={ids[-2]}&after={last}"),
            ("drift, first to last", f"/drift?before={first}&after={last}"),
            ("offboarding", "/offboarding"),
            ("admin", "/admin"),
            ("audit log", "/admin/audit"),
        ]
        rows = []
        worst = 0.0
        for label, path in pages:
            cold, ms, size = measure(browser, path, args.runs)
            worst = max(worst, ms)
            print(f"{label}: {ms:.0f} ms (first {cold:.0f}), {size / 1e3:.0f} kB", file=sys.stderr)
            rows.append(
                f"| {label} | `{path.split('?')[0]}` | {ms:.0f} | {cold:.0f} | {size / 1e3:.0f} |"
            )
        server.stop()
        results = args.hosts * args.scans * len(ScanStore(store).load(last).hosts[0].results)
    built = f"built in {build_seconds:.0f} s, " if build_seconds is not None else ""
    body = (
        "## Dashboard pages (`parcelguard serve`)\n\n"
        f"Target: every page under {TARGET_MS} ms for a store of 1,000 hosts x 100 scans.\n"
        f"Store: {args.hosts:,} hosts x {args.scans} scans x 60 controls = {results:,} "
        f"results ({built}{size_mb:,.0f} MB on disk).\nEach time is the median of "
        f"{args.runs} fetches over HTTP (cheroot, the service's server), signed in as admin,\n"
        "after a first fetch (shown too: it pays for a cold page cache and Jinja2's template\n"
        f"compilation). Slowest page: {worst:.0f} ms "
        f"({'within' if worst < TARGET_MS else 'OVER'} the target).\n\n"
        "| page | path | ms | first fetch ms | kB |\n|---|---|---|---|---|\n" + "\n".join(rows)
    )
    write_section("dashboard-pages", body)


if __name__ == "__main__":
    main()
