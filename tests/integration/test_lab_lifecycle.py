"""`parcelguard lab` end to end: bad input creates nothing; up, status, down leave no trace.

This module is collected before any module that uses the session's ``lab`` fixture, so
the small lab it makes never runs beside the big one.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from parcelguard.lab import podman as podman_mod

pytestmark = pytest.mark.lab


def cli(*args: str, env_state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parcelguard", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "XDG_STATE_HOME": str(env_state)},
        check=False,
    )


def labelled(name: str) -> tuple[list[str], list[str]]:
    p = podman_mod.Podman()
    containers = [c["Names"][0] for c in p.containers_labelled(podman_mod.LABEL, name)]
    return containers, p.networks_labelled(podman_mod.LABEL, name)


def test_unknown_zone_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    name = "t" + secrets.token_hex(4)
    fleet = tmp_path / "fleet.yml"
    fleet.write_text("hosts:\n  - {name: web1, role: web, zones: [internet]}\n")
    proc = cli("lab", "up", "--name", name, "--fleet", str(fleet), env_state=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "unknown zone 'internet'" in proc.stderr and "zones: dmz, app, data, mgmt" in proc.stderr
    assert labelled(name) == ([], [])
    assert not (tmp_path / "parcelguard" / "labs" / name).exists()


def test_up_status_down_leaves_nothing_behind(tmp_path: Path) -> None:
    name = "t" + secrets.token_hex(4)
    fleet = tmp_path / "fleet.yml"
    fleet.write_text(
        "hosts:\n"
        "  - {name: gw1, role: web, zones: [dmz, app]}\n"
        "  - {name: app1, role: waybill_app}\n"
        "  - {name: db1, role: database}\n"
        "  - {name: jump1, role: bastion}\n"
    )
    state = tmp_path / "parcelguard" / "labs" / name
    try:
        up = cli("lab", "up", "--name", name, "--fleet", str(fleet), env_state=tmp_path)
        assert up.returncode == 0, up.stderr
        containers, networks = labelled(name)
        hosts = ("gw1", "app1", "db1", "jump1")
        assert sorted(containers) == sorted(f"pg-{name}-{h}" for h in hosts)
        assert sorted(networks) == sorted(f"pg-{name}-{z}" for z in ("dmz", "app", "data", "mgmt"))
        manifest = json.loads((state / "lab.json").read_text())
        gw = next(h for h in manifest["hosts"] if h["name"] == "gw1")
        assert set(gw["addresses"]) == {"dmz", "app"}, "a host can join several zones"

        again = cli("lab", "up", "--name", name, "--fleet", str(fleet), env_state=tmp_path)
        assert again.returncode == 2 and "already exists" in again.stderr

        status = cli("lab", "status", "--name", name, env_state=tmp_path)
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count(" running    running") == 4
    finally:
        down = cli("lab", "down", "--name", name, env_state=tmp_path)
    assert down.returncode == 0, down.stderr
    assert labelled(name) == ([], [])
    assert not state.exists()
    assert (tmp_path / "parcelguard" / "labs").exists(), "down removes only the lab's own folder"
    status = cli("lab", "status", "--name", name, env_state=tmp_path)
    assert status.returncode == 2 and "is not up" in status.stderr
    if not podman_mod.Podman().networks_labelled_any(podman_mod.LABEL):
        nat = subprocess.run(
            ["iptables", "-t", "nat", "-S", "POSTROUTING"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "parcelguard-lab" not in nat, "the last lab down removes its no-NAT rule"
