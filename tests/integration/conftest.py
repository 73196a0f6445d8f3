"""Lab fixtures: real Debian 12 hosts in podman, created by the tests and removed after.

Only one fleet runs at a time on this 2-core machine: the session's ``lab`` fixture is
created when the first test that needs it runs, and the lifecycle tests (which bring up
and take down their own small lab) live in a module collected before any of those.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from parcelguard.lab import core, fleet
from parcelguard.lab.podman import Podman


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "lab tests need root"
    if not Podman.available():
        return "lab tests need podman"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests marked `hardens` change the shared lab for good: they run after every test
    # that needs the fleet in its neglected state.
    items.sort(key=lambda item: "hardens" in item.keywords)
    reason = _skip_reason()
    # In CI a skipped lab test would hide a broken machine: there the tests run and fail.
    if reason is None or os.environ.get("CI"):
        return
    marker = pytest.mark.skip(reason=reason)
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(marker)


@pytest.fixture(scope="session")
def lab_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("labs")


@pytest.fixture(scope="session")
def lab(lab_state: Path) -> Iterator[core.Lab]:
    """The default 6-host fleet in 4 zones, under a name no other lab uses."""
    name = "t" + secrets.token_hex(4)
    the_lab = core.up(name, fleet.DEFAULT_FLEET, state_root=lab_state)
    try:
        yield the_lab
    finally:
        core.down(name, state_root=lab_state)


def ssh_client(lab: core.Lab, host: str, user: str = "root", **auth: object) -> paramiko.SSHClient:
    """An SSH client that trusts only the host keys the lab recorded."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(lab.paths.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    if not auth:
        auth = {"key_filename": str(lab.paths.admin_key)}
    try:
        client.connect(
            lab.host(host).address,
            username=user,
            timeout=10,
            allow_agent=False,
            look_for_keys=False,
            **auth,  # type: ignore[arg-type]
        )
    except BaseException:
        # A refused login leaves the connection open, unauthenticated, until sshd's
        # LoginGraceTime: enough of them reach MaxStartups (10), and sshd then drops new
        # connections before its banner. Close it now.
        client.close()
        raise
    return client


def run(client: paramiko.SSHClient, command: str) -> tuple[int, str]:
    _stdin, stdout, stderr = client.exec_command(command, timeout=60)
    out = stdout.read().decode() + stderr.read().decode()
    return stdout.channel.recv_exit_status(), out


def parcelguard(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the parcelguard command as a user would, in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "parcelguard", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
