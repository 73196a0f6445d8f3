"""Offboarding on the lab fleet: every trigger revokes the departed employee everywhere.

Before each trigger lihua's access is seeded again on every host (password, key, sudo,
cron, a lingering user service, a database login) and proven to work, with a live SSH
session of hers open on several hosts. After it, every one of these is gone on every
host, logins fail, and the job's evidence says so. At the end the lab is put back as it
was, for the scan and hardening tests that follow.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from parcelguard.lab import core
from parcelguard.lab.podman import Podman
from parcelguard.server import webhook
from tests.integration.conftest import parcelguard, run, ssh_client

pytestmark = pytest.mark.lab

SESSION_HOSTS = ("web1", "app1", "db1")
ROSTER = Path(__file__).parents[2] / "docs" / "examples" / "staff.csv"
CLEANUP = (
    "rm -f /etc/ssh/sshd_config.d/05-parcelguard-revoked.conf && systemctl reload ssh && "
    "(getent group parcelguard-revoked >/dev/null && groupdel parcelguard-revoked || true) && "
    "rm -rf /var/lib/parcelguard"
)


def secrets_of(lab: core.Lab) -> dict[str, str]:
    data: dict[str, str] = json.loads(lab.paths.secrets.read_text(encoding="utf-8"))
    return data


def root(lab: core.Lab, host: str, command: str) -> tuple[int, str]:
    with ssh_client(lab, host) as client:
        return run(client, command)


@pytest.fixture(scope="module")
def offboard_lab(lab: core.Lab) -> Iterator[core.Lab]:
    yield lab
    podman = Podman()
    for h in lab.hosts:  # a failed test may have left a host paused
        podman.run(["unpause", h.container], check=False)
    core.reseed_departed(lab)
    for h in lab.hosts:
        assert root(lab, h.name, CLEANUP)[0] == 0


@pytest.fixture
def departed(offboard_lab: core.Lab) -> Iterator[dict[str, paramiko.SSHClient]]:
    """lihua's access seeded again and proven, with her sessions open on SESSION_HOSTS."""
    lab = offboard_lab
    core.reseed_departed(lab)
    password = secrets_of(lab)["departed_password"]
    sessions: dict[str, paramiko.SSHClient] = {}
    for host in SESSION_HOSTS:
        with ssh_client(lab, host, "lihua", password=password) as client:
            assert run(client, "whoami") == (0, "lihua\n"), f"{host}: password login"
        client = ssh_client(lab, host, "lihua", key_filename=str(lab.paths.departed_key))
        assert run(client, "crontab -l | grep -c exports") == (0, "1\n"), f"{host}: cron job"
        client.exec_command("sleep 600")  # a session that outlives any lock
        sessions[host] = client
    assert root(
        lab,
        "db1",
        'cd / && runuser -u postgres -- psql -tAc "select rolcanlogin from '
        "pg_roles where rolname='lihua'\"",
    ) == (0, "t\n")
    yield sessions
    for client in sessions.values():
        client.close()


def assert_revoked(lab: core.Lab, sessions: dict[str, paramiko.SSHClient]) -> None:
    password = secrets_of(lab)["departed_password"]
    for host, client in sessions.items():
        transport = client.get_transport()
        assert transport is None or not transport.is_active(), f"{host}: her session survived"
    for h in lab.hosts:
        with pytest.raises(paramiko.AuthenticationException):
            ssh_client(lab, h.name, "lihua", password=password).close()
        with pytest.raises(paramiko.AuthenticationException):
            ssh_client(lab, h.name, "lihua", key_filename=str(lab.paths.departed_key)).close()
        rc, out = root(
            lab,
            h.name,
            "pgrep -u lihua; crontab -l -u lihua 2>&1; ls /var/lib/systemd/linger; "
            "ls /etc/sudoers.d; chage -l lihua | grep 'Account expires'; getent passwd lihua; "
            'archive=$(sed -n \'s/^ *"archive": "\\(.*\\)",$/\\1/p\' '
            "/var/lib/parcelguard/offboarded/lihua.json) && "
            'cd "${archive%/*}" && sha256sum -c home.tar.gz.sha256',
        )
        assert "sleep" not in out and "systemd" not in out, f"{h.name}: processes remain"
        assert "no crontab for lihua" in out, f"{h.name}: {out}"
        assert "90-lihua" not in out, f"{h.name}: sudo rule remains"
        assert "Jan 02, 1970" in out, f"{h.name}: not expired: {out}"
        assert ":/usr/sbin/nologin" in out
        assert "home.tar.gz: OK" in out, f"{h.name}: archive missing or corrupt: {out}"
    assert root(
        lab,
        "db1",
        'cd / && runuser -u postgres -- psql -tAc "select rolcanlogin from '
        "pg_roles where rolname='lihua'\"",
    ) == (0, "f\n")


def job_of(db: Path, job_id: int | None = None) -> dict[str, Any]:
    """One job in full (hosts, evidence, trail); the newest by default."""
    if job_id is None:
        listed = parcelguard("offboard", "status", "--json", "--db", str(db))
        assert listed.returncode == 0, listed.stderr
        job_id = json.loads(listed.stdout)[-1]["id"]
    proc = parcelguard("offboard", "status", str(job_id), "--json", "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def wait_verified(db: Path, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = parcelguard("offboard", "status", "--json", "--db", str(db))
        jobs = json.loads(proc.stdout) if proc.returncode == 0 else []
        if jobs and jobs[-1]["state"] == "verified":
            return job_of(db, jobs[-1]["id"])
        time.sleep(1)
    raise AssertionError(f"no verified job within {timeout} s: {proc.stdout[-2000:]}")


def test_cli_trigger_revokes_everything_on_every_host(
    offboard_lab: core.Lab, departed: dict[str, paramiko.SSHClient], tmp_path: Path
) -> None:
    lab, db = offboard_lab, tmp_path / "off.db"
    inv = ["-i", str(lab.paths.inventory), "--db", str(db)]
    dry = parcelguard("offboard", "lihua", "--ticket", "HR-2026-0931", "--dry-run", *inv)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("would change: block_logins, remove_ssh_keys") == len(lab.hosts)
    with ssh_client(lab, "web1", "lihua", key_filename=str(lab.paths.departed_key)) as client:
        assert run(client, "whoami") == (0, "lihua\n"), "the dry run changed something"

    started = time.monotonic()
    proc = parcelguard("offboard", "lihua", "--ticket", "HR-2026-0931", *inv)
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"verified, {len(lab.hosts)}/{len(lab.hosts)} host(s) verified" in proc.stdout
    assert_revoked(lab, departed)

    job = job_of(db)
    assert job["source"] == "cli" and job["ticket"] == "HR-2026-0931"
    for host in job["hosts"]:
        checks = {c["name"]: c for c in host["verification"]["checks"]}
        assert all(c["ok"] for c in checks.values()), host
        assert checks["ssh_key_login_refused"]["detail"] == "1 key(s) offered, every one refused"
        assert host["steps"][0]["before"]["shell"] == "/bin/bash"
    db1 = next(h for h in job["hosts"] if h["host"] == "db1")
    assert "revoke_database_role" in [s["step"] for s in db1["steps"]]
    kinds = [e["kind"] for e in job["trail"]]
    assert kinds[:2] == ["event_received", "job_created"] and kinds[-1] == "job_verified"
    assert parcelguard("offboard", "verify-trail", "--db", str(db)).returncode == 0

    again = parcelguard("offboard", "lihua", "--ticket", "HR-2026-0931", *inv)
    assert again.returncode == 0 and "already received" in again.stderr
    assert len(json.loads(parcelguard("offboard", "status", "--json", "--db", str(db)).stdout)) == 2
    print(f"CLI trigger to verified on {len(lab.hosts)} hosts: {took:.1f} s")


def test_roster_reconciliation_stops_for_confirmation_then_revokes(
    offboard_lab: core.Lab, departed: dict[str, paramiko.SSHClient], tmp_path: Path
) -> None:
    lab, db = offboard_lab, tmp_path / "off.db"
    base = ["offboard", "--roster", str(ROSTER), "-i", str(lab.paths.inventory), "--db", str(db)]
    # lihua and the vendor account are not on the roster: 2 of 4 people, over the 20 % limit.
    refused = parcelguard(*base)
    assert refused.returncode == 2 and "--yes" in refused.stderr, refused.stderr
    assert "not on the roster: lihua" in refused.stdout and "support" in refused.stdout
    assert (
        not db.exists() or "lihua" not in parcelguard("offboard", "status", "--db", str(db)).stdout
    )
    with ssh_client(lab, "app1", "lihua", key_filename=str(lab.paths.departed_key)) as client:
        assert run(client, "whoami") == (0, "lihua\n"), "a refused roster revoked something"

    cut = tmp_path / "cut.csv"
    cut.write_bytes(ROSTER.read_bytes().rstrip(b"\n")[:-3])
    truncated = parcelguard("offboard", "--roster", str(cut), "-i", str(lab.paths.inventory))
    assert truncated.returncode == 2 and "truncated" in truncated.stderr

    proc = parcelguard(*base, "--protect", "support", "--max-share", "0.5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_revoked(lab, departed)
    job = job_of(db)
    assert job["source"] == "roster" and job["username"] == "lihua"
    rc, out = root(lab, "web1", "chage -l support | grep 'Account expires'")
    assert "never" in out, "a protected account was revoked"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Serve:
    def __init__(self, lab: core.Lab, tmp: Path) -> None:
        self.db = tmp / "off.db"
        self.port = free_port()
        self.secret = tmp / "whsec"
        assert parcelguard("serve", "--new-webhook-secret", str(self.secret)).returncode == 0
        self.key = webhook.load_secret(self.secret)
        self.config = tmp / "serve.yml"
        self.config.write_text(
            f"listen: 127.0.0.1:{self.port}\ninventory: {lab.paths.inventory}\n"
            f"database: {self.db}\nwebhook:\n  secret_file: {self.secret}\n"
            "scim:\n  domains: [corp.example]\n"
            "offboarding:\n  retry_base_seconds: 2\n  retry_max_seconds: 5\n"
            "dashboard:\n  enabled: false\n",
            encoding="utf-8",
        )
        token = parcelguard("offboard", "token", "add", "entra", "--db", str(self.db))
        self.token = token.stdout.strip()
        self.log = tmp / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "parcelguard", "serve", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(self.log.read_text())

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                text = resp.read()
                return resp.status, json.loads(text) if text else None
        except urllib.error.HTTPError as err:
            text = err.read()
            return err.code, json.loads(text) if text else None

    def scim(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.request(
            method,
            "/scim/v2" + path,
            body,
            {"Authorization": f"Bearer {self.token}", "Content-Type": "application/scim+json"},
        )

    def hook(
        self, body: dict[str, Any], *, message_id: str | None = None, key: bytes | None = None
    ) -> tuple[int, Any]:
        mid = message_id or str(uuid.uuid4())
        stamp = str(int(time.time()))
        raw = json.dumps(body).encode()
        signature = webhook.sign(key or self.key, mid, stamp, raw)
        return self.request(
            "POST",
            "/webhook/leaver",
            raw=raw,
            headers={
                "Content-Type": "application/json",
                "webhook-id": mid,
                "webhook-timestamp": stamp,
                "webhook-signature": signature,
            },
        )


@pytest.fixture
def serve(offboard_lab: core.Lab, tmp_path: Path) -> Iterator[Serve]:
    service = Serve(offboard_lab, tmp_path)
    service.start()
    yield service
    service.stop()


def test_scim_deactivation_from_entra_revokes_everything(
    offboard_lab: core.Lab, departed: dict[str, paramiko.SSHClient], serve: Serve
) -> None:
    code, user = serve.scim(
        "POST",
        "/Users",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "lihua@corp.example",
            "active": True,
            "externalId": "e-1001",
        },
    )
    assert code == 201, user
    # Entra ID's shape: capitalised op, active as the string "False".
    code, _ = serve.scim(
        "PATCH",
        f"/Users/{user['id']}",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
        },
    )
    assert code in (200, 204)
    job = wait_verified(serve.db)
    assert job["source"] == "scim" and job["actor"] == "scim token entra"
    assert_revoked(offboard_lab, departed)
    code, listed = serve.scim("GET", "/Users?filter=active%20eq%20false")
    assert code == 200 and listed["totalResults"] == 1


def test_signed_webhook_and_a_killed_service_that_resumes(
    offboard_lab: core.Lab, departed: dict[str, paramiko.SSHClient], serve: Serve
) -> None:
    lab = offboard_lab
    # Bad requests first: refused with clear errors, nothing revoked.
    wrong_key = webhook.decode_secret(webhook.new_secret())
    assert serve.hook({"username": "lihua", "ticket": "HR-7"}, key=wrong_key)[0] == 401
    assert serve.hook({"username": "lihua; reboot", "ticket": "HR-7"})[0] == 400
    assert serve.hook({"username": "root", "ticket": "HR-7"})[0] == 422
    with ssh_client(lab, "db1", "lihua", key_filename=str(lab.paths.departed_key)) as client:
        assert run(client, "whoami") == (0, "lihua\n")

    # app2 is down when the job starts, so the job is still running when the service dies.
    podman = Podman()
    app2 = lab.host("app2").container
    podman.run(["pause", app2])
    try:
        message = str(uuid.uuid4())
        code, answer = serve.hook({"username": "lihua", "ticket": "HR-7"}, message_id=message)
        assert code == 202 and answer["created"], answer
        assert serve.hook({"username": "lihua", "ticket": "HR-7"}, message_id=message)[0] == 409
        deadline = time.monotonic() + 30
        while job_of(serve.db, answer["job"])["state"] != "running":
            assert time.monotonic() < deadline, "the worker never took the job"
            time.sleep(0.3)
        serve.kill()  # mid-run: its lease names a process that no longer exists
        job = job_of(serve.db, answer["job"])
        assert job["state"] != "verified"
    finally:
        podman.run(["unpause", app2])
    serve.start()  # a new process: it must find the dead worker's job and finish it
    job = wait_verified(serve.db, timeout=180)
    assert job["id"] == answer["job"] and job["source"] == "webhook"
    kinds = [e["kind"] for e in job["trail"]]
    assert "job_resumed" in kinds, kinds
    assert_revoked(lab, departed)


def test_a_host_that_is_down_is_finished_after_it_comes_back(
    offboard_lab: core.Lab, departed: dict[str, paramiko.SSHClient], tmp_path: Path
) -> None:
    lab, db = offboard_lab, tmp_path / "off.db"
    inv = ["-i", str(lab.paths.inventory), "--db", str(db)]
    podman = Podman()
    api1 = lab.host("api1").container
    podman.run(["pause", api1])
    try:
        proc = parcelguard("offboard", "lihua", "--ticket", "HR-8", *inv)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        job = job_of(db)
        states = {h["host"]: h["state"] for h in job["hosts"]}
        assert states.pop("api1") == "pending" and set(states.values()) == {"verified"}
        assert "unreachable" in next(h for h in job["hosts"] if h["host"] == "api1")["last_error"]
    finally:
        podman.run(["unpause", api1])
    with ssh_client(lab, "api1", "lihua", key_filename=str(lab.paths.departed_key)) as client:
        assert run(client, "whoami") == (0, "lihua\n"), "api1 was reported pending but changed"
    proc = parcelguard("offboard", "resume", *inv)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job = job_of(db)
    assert job["state"] == "verified" and {h["state"] for h in job["hosts"]} == {"verified"}
    assert_revoked(lab, departed)


def test_an_unknown_person_revokes_nothing(offboard_lab: core.Lab, tmp_path: Path) -> None:
    lab = offboard_lab
    before = root(lab, "web1", "getent passwd | md5sum; ls /etc/sudoers.d | md5sum")
    proc = parcelguard(
        "offboard",
        "nobody7",
        "--ticket",
        "HR-9",
        "-i",
        str(lab.paths.inventory),
        "--db",
        str(tmp_path / "off.db"),
    )
    assert proc.returncode == 2 and "no account or database role named 'nobody7'" in proc.stderr
    assert root(lab, "web1", "getent passwd | md5sum; ls /etc/sudoers.d | md5sum") == before
    assert os.path.exists(tmp_path / "off.db")
