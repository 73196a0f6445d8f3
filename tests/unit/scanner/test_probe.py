"""Zone reachability probes: the plan, the script, its output, and one real run on loopback."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import pytest

from parcelguard.scanners.policy import DEFAULT_ZONE_POLICY
from parcelguard.scanners.probe import (
    ProbeTarget,
    declared_ports,
    parse_probe_output,
    plan,
    probe_script,
)

HOSTS: dict[str, tuple[str, ...]] = {
    "web1": ("dmz",),
    "web2": ("dmz",),
    "app1": ("app",),
    "gw1": ("dmz", "app"),
    "db1": ("data",),
    "bastion1": ("mgmt",),
    "bastion2": ("mgmt",),
}
ADDRESSES = {name: f"198.18.0.{i}" for i, name in enumerate(sorted(HOSTS), start=10)}


def test_declared_ports_cover_admin_flows_and_partners() -> None:
    assert declared_ports(DEFAULT_ZONE_POLICY) == (22, 5432, 8080)


def test_plan_has_one_source_per_zone_the_first_by_name() -> None:
    work = plan(HOSTS, ADDRESSES, (22, 5432))
    # app -> app1, dmz -> gw1 (before web1), data -> db1, mgmt -> bastion1.
    assert sorted(work) == ["app1", "bastion1", "db1", "gw1"]
    for zone in {z for zones in HOSTS.values() for z in zones}:
        assert any(zone in HOSTS[src] for src in work), zone


def test_sources_probe_only_hosts_sharing_no_zone() -> None:
    ports = (22, 5432)
    work = plan(HOSTS, ADDRESSES, ports)
    for src, targets in work.items():
        expected = sorted(
            dst for dst in HOSTS if dst != src and not set(HOSTS[src]) & set(HOSTS[dst])
        )
        assert sorted({t.host for t in targets}) == expected, src
        for t in targets:
            assert t.address == ADDRESSES[t.host]
        assert len(targets) == len(expected) * len(ports)
    # gw1 sits in dmz and app: it probes neither web hosts nor app1.
    assert {t.host for t in work["gw1"]} == {"bastion1", "bastion2", "db1"}
    assert {t.host for t in work["bastion1"]} == {"app1", "db1", "gw1", "web1", "web2"}


def test_a_single_zone_fleet_has_nothing_to_probe() -> None:
    hosts = {"a": ("data",), "b": ("data",)}
    assert plan(hosts, {"a": "10.0.0.1", "b": "10.0.0.2"}, (22,)) == {}


@pytest.mark.parametrize(
    "address",
    ["10.0.0.0/8", "a;rm -rf /", "db1.example.net", "", "10.0.0.1 22", "$(reboot)", "10.0.0.256"],
)
def test_probe_script_refuses_anything_but_an_address(address: str) -> None:
    with pytest.raises(ValueError):
        probe_script([ProbeTarget("x", address, 22)])


@pytest.mark.parametrize("port", [0, -1, 65536])
def test_probe_script_refuses_invalid_ports(port: int) -> None:
    with pytest.raises(ValueError, match="invalid port"):
        probe_script([ProbeTarget("x", "10.0.0.1", port)])


def test_probe_script_probes_each_address_and_port() -> None:
    targets = [
        ProbeTarget("db1", "198.18.40.11", 5432),
        ProbeTarget("db1", "198.18.40.11", 22),
        ProbeTarget("v6", "fd00::11", 8080),
    ]
    script = probe_script(targets)
    lines = script.splitlines()
    assert "p 198.18.40.11 5432 &" in lines
    assert "p 198.18.40.11 22 &" in lines
    assert "p fd00::11 8080 &" in lines
    assert lines[-1] == "wait"
    assert "/dev/tcp/" in script and "timeout 1 " in script


def test_parse_maps_states_and_missing_lines() -> None:
    targets = [
        ProbeTarget("db1", "10.0.0.1", 22),
        ProbeTarget("db1", "10.0.0.1", 5432),
        ProbeTarget("app1", "10.0.0.2", 8080),
        ProbeTarget("app1", "10.0.0.2", 22),
    ]
    output = (
        "10.0.0.1 22 closed\n"
        "  10.0.0.1 5432 open  \n"
        "10.0.0.2 8080 filtered\n"
        "10.0.0.9 22 open\n"  # not asked for: ignored
        "garbage 10.0.0.2 22 open\n"
        "10.0.0.2 22 maybe\n"
    )
    assert parse_probe_output("web1", targets, output) == {
        ("web1", "db1", 22): False,
        ("web1", "db1", 5432): True,
        ("web1", "app1", 8080): False,
        ("web1", "app1", 22): None,
    }


def test_parse_of_empty_output_is_all_unmeasured() -> None:
    targets = [ProbeTarget("db1", "10.0.0.1", 22)]
    assert parse_probe_output("web1", targets, "") == {("web1", "db1", 22): None}


def test_parse_matches_what_the_script_prints_for_non_canonical_ipv6() -> None:
    targets = [ProbeTarget("db1", "FD00:0:0::11", 22)]
    script = probe_script(targets)
    assert "p fd00::11 22 &" in script.splitlines()
    # What the script echoes for that target: its own (normalised) argument.
    assert parse_probe_output("web1", targets, "fd00::11 22 open\n") == {("web1", "db1", 22): True}


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections, for the duration of one test."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that was just free: bound, then closed, so nothing listens."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def test_the_script_really_probes_loopback(listener: int, closed_port: int) -> None:
    targets = [
        ProbeTarget("me", "127.0.0.1", listener),
        ProbeTarget("me", "127.0.0.1", closed_port),
    ]
    run = subprocess.run(
        ["bash", "-c", probe_script(targets)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert sorted(run.stdout.splitlines()) == sorted(
        [f"127.0.0.1 {listener} open", f"127.0.0.1 {closed_port} closed"]
    )
    assert parse_probe_output("src", targets, run.stdout) == {
        ("src", "me", listener): True,
        ("src", "me", closed_port): False,
    }
