"""Lab orchestration logic against a recording fake of podman (no containers started)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from parcelguard.lab import core, fleet, image
from parcelguard.lab.podman import Podman, PodmanError


class FakePodman(Podman):
    """Records what the lab creates; fails the n-th container start when asked."""

    def __init__(self, fail_on_start: int | None = None, used: Sequence[str] = ()) -> None:
        super().__init__(binary="podman-fake")
        self.fail_on_start = fail_on_start
        self.used = {ipaddress.IPv4Network(u) for u in used}
        self.networks: dict[str, str] = {}
        self.containers: list[str] = []
        self.removed: list[str] = []
        self.starts = 0

    def subnets_in_use(self) -> set[ipaddress.IPv4Network]:
        return self.used | {ipaddress.IPv4Network(s) for s in self.networks.values()}

    def create_network(self, name: str, subnet: ipaddress.IPv4Network, labels: Any) -> None:
        self.networks[name] = str(subnet)

    def remove_network(self, name: str) -> None:
        self.networks.pop(name, None)
        self.removed.append(name)

    def containers_labelled(self, key: str, value: str) -> list[dict[str, Any]]:
        return [{"Names": [c]} for c in self.containers]

    def remove_containers(self, names: Sequence[str]) -> None:
        for name in names:
            if name in self.containers:
                self.containers.remove(name)
            self.removed.append(name)

    def run(self, args: Sequence[str], **_: Any) -> subprocess.CompletedProcess[bytes]:
        assert args[0] == "run"
        self.starts += 1
        if self.fail_on_start is not None and self.starts == self.fail_on_start:
            raise PodmanError("podman run failed: simulated")
        self.containers.append(args[args.index("--name") + 1])
        return subprocess.CompletedProcess(list(args), 0, b"", b"")

    def exec(self, container: str, argv: Sequence[str], **_: Any) -> Any:
        raise AssertionError("not reached in these tests")


@pytest.fixture
def no_preflight(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(core, "preflight", lambda _p: None)
    monkeypatch.setattr(image, "ensure_image", lambda *_a: "localhost/parcelguard-lab:test")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.mark.usefixtures("no_preflight")
def test_failed_up_removes_everything_it_created(tmp_path: Path) -> None:
    podman = FakePodman(fail_on_start=3)
    with pytest.raises(PodmanError, match="simulated"):
        core.up("x1", fleet.DEFAULT_FLEET, podman=podman, state_root=tmp_path / "labs")
    assert podman.containers == []
    assert podman.networks == {}
    assert sorted(
        n for n in podman.removed if n.startswith("pg-x1-") and n[6:] in fleet.ZONES
    ) == sorted(f"pg-x1-{z}" for z in fleet.ZONES)
    assert not (tmp_path / "labs" / "x1").exists()


@pytest.mark.usefixtures("no_preflight")
def test_ctrl_c_during_up_also_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    podman = FakePodman()

    def interrupted(*_a: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(core, "_wait_and_provision", interrupted)
    with pytest.raises(KeyboardInterrupt):
        core.up("x2", fleet.DEFAULT_FLEET, podman=podman, state_root=tmp_path / "labs")
    assert podman.containers == [] and podman.networks == {}
    assert not (tmp_path / "labs" / "x2").exists()


@pytest.mark.usefixtures("no_preflight")
def test_existing_lab_is_refused_without_touching_it(tmp_path: Path) -> None:
    (tmp_path / "labs" / "x3").mkdir(parents=True)
    podman = FakePodman()
    with pytest.raises(core.LabError, match="already exists"):
        core.up("x3", fleet.DEFAULT_FLEET, podman=podman, state_root=tmp_path / "labs")
    assert podman.starts == 0 and podman.networks == {}
    assert (tmp_path / "labs" / "x3").exists()


def test_networks_skip_subnets_other_networks_use() -> None:
    podman = FakePodman(used=["198.18.0.0/24", "198.18.2.0/23"])
    nets = core._create_networks(podman, "x4", fleet.DEFAULT_FLEET, [])
    assert [n["subnet"] for n in nets.values()] == [
        "198.18.1.0/24",
        "198.18.4.0/24",
        "198.18.5.0/24",
        "198.18.6.0/24",
    ]


def _lab(tmp_path: Path) -> core.Lab:
    f = fleet.load_fleet_file(_fleet_file(tmp_path))
    networks = {
        z: {"name": f"pg-t-{z}", "subnet": f"198.18.{i}.0/24"} for i, z in enumerate(f.zones)
    }
    hosts = core._plan_hosts("t", f, networks)
    return core.Lab("t", "img", "now", networks, tuple(hosts), core.LabPaths(tmp_path))


def _fleet_file(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.yml"
    path.write_text(
        "hosts:\n  - {name: gw1, role: web, zones: [dmz, app]}\n"
        "  - {name: app1, role: waybill_app}\n"
        "  - {name: db1, role: database}\n  - {name: jump1, role: bastion}\n"
    )
    return path


def test_addresses_are_unique_per_zone_and_start_at_10(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    assert lab.host("gw1").addresses == {"dmz": "198.18.0.10", "app": "198.18.1.10"}
    assert lab.host("app1").addresses == {"app": "198.18.1.11"}


def test_inventory_groups_hosts_by_zone_and_role_and_verifies_host_keys(tmp_path: Path) -> None:
    inv = core.inventory_data(_lab(tmp_path))["all"]
    children = inv["children"]
    assert set(children["app"]["hosts"]) == {"app1", "gw1"}
    assert children["dmz"]["vars"] == {"parcelguard_zone": "dmz"}
    assert set(children["web"]["hosts"]) == {"gw1"}
    assert set(children["database"]["hosts"]) == {"db1"}
    assert inv["hosts"]["gw1"]["ansible_host"] == "198.18.0.10"
    assert inv["hosts"]["gw1"]["parcelguard_host_zones"] == ["dmz", "app"]
    args = inv["vars"]["ansible_ssh_common_args"]
    assert "StrictHostKeyChecking=yes" in args
    assert f"UserKnownHostsFile={tmp_path / 'known_hosts'}" in args
    assert inv["vars"]["parcelguard_zones"]["data"] == {"subnet": "198.18.2.0/24"}


def test_image_tag_changes_with_the_setup_script(monkeypatch: pytest.MonkeyPatch) -> None:
    before = image.image_ref()
    monkeypatch.setattr(image, "setup_script", lambda: b"echo different")
    assert image.image_ref() != before
    assert image.image_ref().startswith("localhost/parcelguard-lab:")


@pytest.mark.parametrize("name", ["", "Demo", "1lab", "a-b", "x" * 13, "../x"])
def test_lab_names_are_validated(name: str) -> None:
    with pytest.raises(core.LabError, match="invalid lab name"):
        core.check_name(name)


def test_preflight_refuses_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(core.LabError) as info:
        core.preflight(Podman())
    assert "needs root" in str(info.value) and "sudo" in str(info.value)


def test_preflight_names_the_missing_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(core.LabError, match="podman is not installed.*apt-get install"):
        core.preflight(Podman())
