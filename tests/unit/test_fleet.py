from __future__ import annotations

from pathlib import Path

import pytest

from parcelguard.lab import fleet


def test_default_fleet_has_six_hosts_in_four_zones() -> None:
    assert len(fleet.DEFAULT_FLEET.hosts) == 6
    assert fleet.DEFAULT_FLEET.zones == ("dmz", "app", "data", "mgmt")


@pytest.mark.parametrize("count", [4, 6, 10, 50, 200])
def test_scaled_fleet_has_count_hosts_and_every_zone(count: int) -> None:
    f = fleet.scaled_fleet(count)
    assert len(f.hosts) == count
    assert f.zones == fleet.ZONES
    assert len({h.name for h in f.hosts}) == count


@pytest.mark.parametrize("count", [0, 3, 201, -1])
def test_scaled_fleet_refuses_sizes_out_of_range(count: int) -> None:
    with pytest.raises(fleet.FleetError, match="between 4 and 200"):
        fleet.scaled_fleet(count)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_fleet_file_defaults_zone_from_role_and_accepts_several_zones(tmp_path: Path) -> None:
    f = fleet.load_fleet_file(
        write(
            tmp_path,
            "hosts:\n  - {name: db1, role: database}\n"
            "  - {name: gw1, role: web, zones: [dmz, app]}\n  - {name: b1, role: bastion}\n",
        )
    )
    assert f.hosts[0].zones == ("data",)
    assert f.hosts[1].zones == ("dmz", "app")
    assert f.hosts[1].zone == "dmz"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hosts:\n  - {name: a1, role: web, zones: [internet]}\n", "unknown zone 'internet'"),
        ("hosts:\n  - {name: a1, role: printer}\n", "unknown role 'printer'"),
        ("hosts:\n  - {name: A_1, role: web}\n", "invalid host name"),
        ("hosts:\n  - {name: a1, role: web}\n  - {name: a1, role: web}\n", "used twice"),
        ("hosts:\n  - {name: a1, role: web, zones: [dmz, dmz]}\n", "lists a zone twice"),
        ("hosts:\n  - {name: a1, role: web, colour: red}\n", "unknown key(s) colour"),
        ("hosts:\n  - {name: a1, role: web, zones: []}\n", "non-empty list"),
        ("hosts: []\n", "has no hosts"),
        ("hosts:\n  - {name: a1, role: web}\n", "no host in the mgmt zone"),
        ("- just a list\n", "must be a mapping"),
        ("hosts: [\n", "not valid YAML"),
    ],
)
def test_fleet_file_errors_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(fleet.FleetError) as info:
        fleet.load_fleet_file(write(tmp_path, text))
    assert message in str(info.value)


def test_missing_fleet_file_is_a_fleet_error(tmp_path: Path) -> None:
    with pytest.raises(fleet.FleetError, match="cannot read fleet file"):
        fleet.load_fleet_file(tmp_path / "nope.yml")
