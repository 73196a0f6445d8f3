"""Continuous audit on the lab: a schedule scans on time, and breaking a control on a lab
host produces exactly one alert at a local webhook receiver, once per condition."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from base64 import b64encode
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from parcelguard.lab import core
from parcelguard.server import webhook
from tests.integration.conftest import parcelguard, run, ssh_client

pytestmark = pytest.mark.lab

EVERY = 10  # seconds between scheduled scans of web1


class Receiver(BaseHTTPRequestHandler):
    alerts: ClassVar[list[dict[str, Any]]] = []
    key: ClassVar[bytes] = b""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        signed = f"{self.headers['webhook-id']}.{self.headers['webhook-timestamp']}.".encode()
        expected = b64encode(hmac.new(Receiver.key, signed + body, hashlib.sha256).digest())
        ok = self.headers["webhook-signature"] == "v1," + expected.decode()
        self.send_response(204 if ok else 401)
        self.end_headers()
        if ok:
            Receiver.alerts.append(json.loads(body)["alert"])

    def log_message(self, *_args: Any) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.alerts = []
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def last_scan(db: Path) -> tuple[float, str | None]:
    try:
        with sqlite3.connect(db) as conn:
            row = conn.execute(
                "SELECT last_run, last_scan FROM schedule_runs WHERE name='web-often'"
            ).fetchone()
    except sqlite3.OperationalError:
        return 0.0, None
    return (float(row[0]), row[1]) if row else (0.0, None)


def next_scan(db: Path, after: str | None, timeout: float = 90) -> tuple[float, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        when, scan = last_scan(db)
        if scan and scan != after:
            return when, scan
        time.sleep(0.5)
    raise AssertionError("no scheduled scan within the time allowed")


def test_a_schedule_scans_on_time_and_a_broken_control_alerts_once(
    lab: core.Lab, tmp_path: Path, receiver: str
) -> None:
    secret = tmp_path / "alerts.secret"
    assert parcelguard("serve", "--new-webhook-secret", str(secret)).returncode == 0
    Receiver.key = webhook.load_secret(secret)
    db = tmp_path / "service.db"
    config = tmp_path / "serve.yml"
    config.write_text(
        f"listen: 127.0.0.1:{free_port()}\ninventory: {lab.paths.inventory}\ndatabase: {db}\n"
        f"scans_database: {tmp_path / 'scans.db'}\n"
        f"schedules:\n  - {{name: web-often, every: {EVERY}, group: web1}}\n"
        f"alerts:\n  min_severity: critical\n"
        f"  webhook: {{url: '{receiver}', secret_file: {secret}}}\n",
        encoding="utf-8",
    )
    log = (tmp_path / "serve.log").open("wb")
    started = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "parcelguard", "serve", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        when, first = next_scan(db, None)
        # On time: the first run is EVERY seconds after the service started.
        assert EVERY - 1 <= when - started <= EVERY + 5, when - started
        time.sleep(3)  # deliveries of the first scan's critical failures, if any
        before = len(Receiver.alerts)

        with ssh_client(lab, "web1") as client:  # a second UID 0 account (PG-PRIV-004)
            assert run(client, "useradd -o -u 0 -M -s /bin/bash toor")[0] == 0
        _, second = next_scan(db, first)
        _, third = next_scan(db, second)  # still broken: no second alert
        time.sleep(3)
        new = Receiver.alerts[before:]
        assert [(a["kind"], a["host"], a["control"]) for a in new] == [
            ("regression", "web1", "PG-PRIV-004")
        ], new
        assert new[0]["scan"] == second and "parcelguard report --scan" in new[0]["evidence"]
    finally:
        with ssh_client(lab, "web1") as client:
            # -f: userdel refuses a UID that has running processes, and UID 0 always has.
            assert run(client, "userdel -f toor; ! getent passwd toor")[0] == 0
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
    out = (tmp_path / "serve.log").read_text(encoding="utf-8")
    assert "schedule web-often: " in out and "1 new alert(s)" in out, out[-2000:]
    _ = third
