"""Continuous audit on the lab: a schedule scans on time, breaking a control on a lab
host produces exactly one alert at a local webhook receiver, once per condition, and the
dashboard (over TLS, in Debian's Chromium) shows the regression and its drift to each
role: an operator starts a scan, an auditor is refused. Screenshots are kept under
artifacts/dashboard/."""

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
ROOT = Path(__file__).parents[2]

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


def last_scan(db: Path, name: str = "web-often") -> tuple[float, str | None]:
    try:
        with sqlite3.connect(db) as conn:
            row = conn.execute(
                "SELECT last_run, last_scan FROM schedule_runs WHERE name LIKE ?", (name,)
            ).fetchone()
    except sqlite3.OperationalError:
        return 0.0, None
    return (float(row[0]), row[1]) if row else (0.0, None)


def next_scan(
    db: Path, after: str | None, timeout: float = 90, name: str = "web-often"
) -> tuple[float, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        when, scan = last_scan(db, name)
        if scan and scan != after:
            return when, scan
        time.sleep(0.5)
    raise AssertionError("no scheduled scan within the time allowed")


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, made for this test (the browser ignores its issuer)."""
    from datetime import UTC, datetime, timedelta
    from ipaddress import IPv4Address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def wait_idle(db: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            row = conn.execute(
                "SELECT last_status FROM schedule_runs WHERE name='web-often'"
            ).fetchone()
        if row is None or row[0] != "running":
            return
        time.sleep(0.5)
    raise AssertionError("the schedule's run did not end in time")


def dashboard(pw: Any, base: str, admin_password: str, db: Path, scans: tuple[str, str]) -> None:
    """Each role in a real browser: the admin makes the accounts and pauses the schedule,
    the operator sees the regression and its drift and starts a scan, the auditor reads
    and is refused."""
    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, require

    shots = ROOT / "artifacts" / "dashboard"
    shots.mkdir(parents=True, exist_ok=True)
    first, second = scans
    browser = pw.chromium.launch(executable_path=require(CHROMIUM), args=CHROMIUM_ARGS)
    try:

        def sign_in(name: str, password: str) -> Any:
            context = browser.new_context(
                ignore_https_errors=True, viewport={"width": 1280, "height": 900}
            )
            page = context.new_page()
            page.goto(base + "/")
            assert "/login" in page.url
            page.fill("#username", name)
            page.fill("#password", password)
            page.click("button[type=submit]")
            assert page.text_content("#whoami") == f"{name} ({role_of[name]})"
            cookie = next(c for c in context.cookies() if c["name"].startswith("__Host-"))
            assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            return page

        role_of = {"admin": "admin", "ops": "operator", "audit": "auditor"}
        admin = sign_in("admin", admin_password)
        passwords = {}
        for name, role in (("ops", "operator"), ("audit", "auditor")):
            admin.goto(base + "/admin")
            admin.fill("#name", name)
            admin.select_option("#role", role)
            admin.click("#add-account")
            passwords[name] = (admin.text_content("#secret") or "").strip()
            assert len(passwords[name]) >= 20
        # Paused, so that the operator's scan is the next one and nothing overlaps it.
        admin.goto(base + "/admin")
        admin.click("form[action='/admin/schedules/web-often/pause'] button")
        admin.screenshot(path=str(shots / "admin.png"), full_page=True)
        wait_idle(db)  # a run that began before the pause ends first

        ops = sign_in("ops", passwords["ops"])
        ops.goto(base + "/")
        assert "web1" in (ops.text_content("main") or "")
        ops.screenshot(path=str(shots / "operator-fleet.png"), full_page=True)
        ops.goto(f"{base}/drift?before={first}&after={second}")
        regressed = ops.text_content("table.drift-regressed") or ""
        assert "web1" in regressed and "PG-PRIV-004" in regressed, regressed
        assert "Regressed (now FAIL or ERROR): 1" in (ops.text_content("#regressed") or "")
        ops.screenshot(path=str(shots / "operator-drift.png"), full_page=True)
        ops.goto(base + "/alerts")  # the one alert, sent to the receiver
        alerts = ops.text_content("main") or ""
        assert "PG-PRIV-004" in alerts and "webhook: sent" in alerts, alerts
        ops.goto(base + "/hosts/web1")
        assert "PG-PRIV-004" in (ops.text_content("tr#PG-PRIV-004") or "")
        ops.goto(base + "/scans")  # a paused schedule is not started by hand either
        ops.select_option("#schedule", "web-often")
        ops.click("#scan-now")
        assert "paused by an admin" in (ops.text_content("#outcome") or "")
        ops.goto(base + "/hosts/web1")
        ops.click("#scan-host")
        assert "started a scan of web1" in (ops.text_content("#outcome") or "")
        ops.screenshot(path=str(shots / "operator-scan-started.png"), full_page=True)
        _, started = next_scan(db, None, name="now-web1-%")
        ops.goto(f"{base}/hosts/web1")  # the host page now shows the operator's scan
        assert started in (ops.text_content("main p") or "")
        assert "FAIL" in (ops.text_content("tr#PG-PRIV-004") or "")  # toor is still there

        audit = sign_in("audit", passwords["audit"])
        audit.goto(base + "/scans")
        assert audit.locator("#scan-now").count() == 0
        csrf = audit.get_attribute("input[name=csrf]", "value")
        refused = audit.request.post(
            base + "/actions/scan",
            form={"csrf": csrf or "", "schedule": "web-often"},
            headers={"Origin": base},
        )
        assert refused.status == 403
        audit.goto(base + "/admin")
        assert "You may not do this" in (audit.text_content("main") or "")
        audit.screenshot(path=str(shots / "auditor-refused.png"), full_page=True)
        audit.goto(f"{base}/drift?before={first}&after={second}")
        assert "PG-PRIV-004" in (audit.text_content("table.drift-regressed") or "")
    finally:
        browser.close()
    with sqlite3.connect(db) as conn:
        log = conn.execute("SELECT user, action, outcome FROM dash_audit").fetchall()
    assert ("ops", "start scan", "web-often is paused by an admin; nothing started") in log
    assert ("ops", "start scan", "started a scan of web1; it lands in Scans when done") in log
    assert ("audit", "POST scan_now", "refused: needs operator") in log


def test_a_schedule_scans_on_time_and_a_broken_control_alerts_once(
    lab: core.Lab, tmp_path: Path, receiver: str, playwright_session: Any
) -> None:
    secret = tmp_path / "alerts.secret"
    assert parcelguard("serve", "--new-webhook-secret", str(secret)).returncode == 0
    Receiver.key = webhook.load_secret(secret)
    admin_secret = tmp_path / "admin.secret"
    assert parcelguard("serve", "--new-admin-secret", str(admin_secret)).returncode == 0
    certificate, key = self_signed(tmp_path)
    db = tmp_path / "service.db"
    config = tmp_path / "serve.yml"
    port = free_port()
    config.write_text(
        f"listen: 127.0.0.1:{port}\ninventory: {lab.paths.inventory}\ndatabase: {db}\n"
        f"tls: {{certificate: {certificate}, key: {key}}}\n"
        f"scans_database: {tmp_path / 'scans.db'}\n"
        f"schedules:\n  - {{name: web-often, every: {EVERY}, group: web1}}\n"
        f"alerts:\n  min_severity: critical\n"
        f"  webhook: {{url: '{receiver}', secret_file: {secret}}}\n"
        f"dashboard: {{admin_password_file: {admin_secret}}}\n",
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

        dashboard(
            playwright_session,
            f"https://127.0.0.1:{port}",
            admin_secret.read_text().strip(),
            db,
            (first, second),
        )
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
