"""Reading the fleet from an Ansible inventory (ansible-core's own InventoryManager)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from parcelguard.scanners.policy import DEFAULT_ZONE_POLICY
from parcelguard.scanners.targets import (
    LOCAL,
    Fleet,
    InventoryError,
    Target,
    load_inventory,
    local_fleet,
)

ZONES_YAML = """
all:
  vars:
    parcelguard_zones:
      mgmt: {subnet: 10.10.0.0/24}
      dmz: {subnet: 10.20.0.0/24}
      app: {subnet: 10.30.0.0/24}
      data: {subnet: 10.40.0.0/24}
    parcelguard_zone_policy:
      mgmt_zone: mgmt
      admin_ports: [22]
      flows:
        - {from: dmz, to: app, ports: [8080]}
        - {from: app, to: data, ports: [5432]}
  children:
    dmz:
      hosts:
        web1:
          ansible_host: 10.20.0.11
          ansible_port: 2222
          ansible_user: auditor
          ansible_ssh_private_key_file: ~/keys/audit_ed25519
    app:
      hosts:
        app1: {ansible_host: 10.30.0.11}
        gw1:
          ansible_host: 10.30.0.12
          parcelguard_host_zones: [dmz, app]
    data:
      hosts:
        db1: {ansible_host: 10.40.0.11}
    mgmt:
      hosts:
        bastion1: {ansible_host: 10.10.0.11}
    nginx:
      hosts:
        web1:
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def by_name(fleet: Fleet) -> dict[str, Target]:
    return {t.name: t for t in fleet.targets}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake home so that ``~`` expansion is predictable."""
    fake = tmp_path / "home"
    fake.mkdir()
    monkeypatch.setenv("HOME", str(fake))
    return fake


def test_yaml_inventory_gives_connection_details(tmp_path: Path, home: Path) -> None:
    fleet = load_inventory(write(tmp_path, "inv.yml", ZONES_YAML))
    assert fleet.source == str(tmp_path / "inv.yml")
    web1 = by_name(fleet)["web1"]
    assert web1.address == "10.20.0.11"
    assert web1.port == 2222
    assert web1.user == "auditor"
    assert web1.key_file == str(home / "keys" / "audit_ed25519")
    assert web1.connection == "ssh"
    assert web1.needs_sudo  # not root over SSH
    db1 = by_name(fleet)["db1"]
    assert (db1.port, db1.user, db1.key_file, db1.known_hosts) == (22, "root", None, None)
    assert not db1.needs_sudo


def test_zones_come_from_zone_groups_only(tmp_path: Path, home: Path) -> None:
    fleet = load_inventory(write(tmp_path, "inv.yml", ZONES_YAML))
    web1 = by_name(fleet)["web1"]
    # nginx is a group but not a zone: it is a group of the target, never one of its zones.
    assert web1.zones == ("dmz",)
    assert web1.groups == ("dmz", "nginx")
    assert by_name(fleet)["db1"].zones == ("data",)
    assert by_name(fleet)["bastion1"].zones == ("mgmt",)


def test_parcelguard_host_zones_overrides_group_membership(tmp_path: Path, home: Path) -> None:
    fleet = load_inventory(write(tmp_path, "inv.yml", ZONES_YAML))
    gw1 = by_name(fleet)["gw1"]
    assert gw1.zones == ("dmz", "app")  # declared order, although the host is only in app
    assert gw1.groups == ("app",)


def test_declared_zone_policy_is_used(tmp_path: Path, home: Path) -> None:
    fleet = load_inventory(write(tmp_path, "inv.yml", ZONES_YAML))
    assert fleet.policy_declared
    assert str(fleet.policy.subnet("data")) == "10.40.0.0/24"
    assert fleet.policy.allows(["app"], ["data"], 5432)
    assert not fleet.policy.allows(["dmz"], ["data"], 5432)


def test_zones_alone_take_the_default_flows(tmp_path: Path) -> None:
    inv = write(
        tmp_path,
        "inv.yml",
        """
        all:
          vars:
            parcelguard_zones:
              mgmt: {subnet: 172.16.1.0/24}
              dmz: {subnet: 172.16.2.0/24}
              app: {subnet: 172.16.3.0/24}
              data: {subnet: 172.16.4.0/24}
          hosts:
            db1: {ansible_host: 172.16.4.5, parcelguard_host_zones: [data]}
        """,
    )
    fleet = load_inventory(inv)
    assert fleet.policy_declared
    assert str(fleet.policy.subnet("data")) == "172.16.4.0/24"
    assert fleet.policy.flows == DEFAULT_ZONE_POLICY.flows


def test_no_zone_variables_means_the_default_policy(tmp_path: Path) -> None:
    inv = write(
        tmp_path,
        "inv.ini",
        """
        [dmz]
        web1 ansible_host=198.18.20.11
        [data]
        db1 ansible_host=198.18.40.11
        [postgres]
        db1
        """,
    )
    fleet = load_inventory(inv)
    assert not fleet.policy_declared
    assert fleet.policy == DEFAULT_ZONE_POLICY
    assert by_name(fleet)["web1"].zones == ("dmz",)
    assert by_name(fleet)["db1"].zones == ("data",)
    assert by_name(fleet)["db1"].groups == ("data", "postgres")


def test_targets_are_in_a_stable_order(tmp_path: Path, home: Path) -> None:
    fleet = load_inventory(write(tmp_path, "inv.yml", ZONES_YAML))
    names = [t.name for t in fleet.targets]
    assert names == sorted(names)
    assert set(names) == {"web1", "app1", "gw1", "db1", "bastion1"}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ansible_ssh_common_args", "-o UserKnownHostsFile=/etc/pg/kh"),
        ("ansible_ssh_common_args", "-oUserKnownHostsFile=/etc/pg/kh"),
        (
            "ansible_ssh_common_args",
            "-o StrictHostKeyChecking=yes -o userknownhostsfile=/etc/pg/kh -o IdentitiesOnly=yes",
        ),
        ("ansible_ssh_common_args", "-o 'UserKnownHostsFile=/etc/pg/kh /etc/pg/kh2'"),
        ("ansible_ssh_extra_args", "-o UserKnownHostsFile=/etc/pg/kh"),
        ("parcelguard_known_hosts", "/etc/pg/kh"),
    ],
)
def test_known_hosts_from_ssh_args_or_explicit_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    inv = write(
        tmp_path,
        "inv.yml",
        f"""
        all:
          hosts:
            db1:
              ansible_host: 198.18.40.11
              {variable}: "{value}"
        """,
    )
    assert load_inventory(inv).targets[0].known_hosts == "/etc/pg/kh"


def test_known_hosts_from_ini_with_quoted_ssh_args(tmp_path: Path) -> None:
    inv = write(
        tmp_path,
        "inv.ini",
        """
        [data]
        db1 ansible_host=198.18.40.11 ansible_ssh_common_args='-o StrictHostKeyChecking=yes -o UserKnownHostsFile=/srv/kh'
        """,  # noqa: E501
    )
    assert load_inventory(inv).targets[0].known_hosts == "/srv/kh"


def test_explicit_known_hosts_wins_and_tilde_is_expanded(tmp_path: Path, home: Path) -> None:
    inv = write(
        tmp_path,
        "inv.yml",
        """
        all:
          vars:
            ansible_ssh_common_args: "-o UserKnownHostsFile=/from/ssh/args"
          hosts:
            db1:
              parcelguard_known_hosts: ~/lab/known_hosts
            app1:
              ansible_ssh_common_args: "-o UserKnownHostsFile=~/other_kh"
        """,
    )
    targets = by_name(load_inventory(inv))
    assert targets["db1"].known_hosts == str(home / "lab" / "known_hosts")
    assert targets["app1"].known_hosts == str(home / "other_kh")


def test_ssh_args_without_known_hosts_give_none(tmp_path: Path) -> None:
    inv = write(
        tmp_path,
        "inv.yml",
        """
        all:
          hosts:
            db1:
              ansible_ssh_common_args: "-o StrictHostKeyChecking=yes -o"
        """,
    )
    assert load_inventory(inv).targets[0].known_hosts is None


def test_address_defaults_to_the_host_name(tmp_path: Path) -> None:
    inv = write(tmp_path, "inv.ini", "db1.example.net\n")
    target = load_inventory(inv).targets[0]
    assert (target.name, target.address) == ("db1.example.net", "db1.example.net")


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ("data", ["db1"]),
        ("db1", ["db1"]),
        ("web*", ["web1"]),
        ("dmz:data", ["db1", "gw1", "web1"]),
        ("app:!gw1", ["app1"]),
        ("dmz:&nginx", ["web1"]),
        ("web1,bastion1", ["bastion1", "web1"]),
    ],
)
def test_limit_is_an_ansible_host_pattern(
    tmp_path: Path, home: Path, limit: str, expected: list[str]
) -> None:
    inv = write(tmp_path, "inv.yml", ZONES_YAML.replace("parcelguard_host_zones", "x_unused"))
    # gw1 is in the app group and, for this test, in dmz by group too.
    inv.write_text(
        inv.read_text(encoding="utf-8").replace(
            "    dmz:\n      hosts:\n", "    dmz:\n      hosts:\n        gw1:\n"
        ),
        encoding="utf-8",
    )
    fleet = load_inventory(inv, limit)
    assert [t.name for t in fleet.targets] == expected


def test_limit_matching_nothing_is_an_error(tmp_path: Path, home: Path) -> None:
    inv = write(tmp_path, "inv.yml", ZONES_YAML)
    with pytest.raises(InventoryError) as info:
        load_inventory(inv, "nosuchhost")
    assert "--limit 'nosuchhost' matches no host" in str(info.value)
    assert str(inv) in str(info.value)


def test_missing_inventory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="does not exist"):
        load_inventory(tmp_path / "nope.yml")


@pytest.mark.parametrize(
    "text", ["", "all:\n  hosts: [\n", "all:\n  children:\n    dmz:\n      hosts: {}\n"]
)
def test_inventory_without_hosts_is_an_error(tmp_path: Path, text: str) -> None:
    inv = tmp_path / "inv.yml"
    inv.write_text(text, encoding="utf-8")
    with pytest.raises(InventoryError) as info:
        load_inventory(inv)
    assert f"inventory {inv} has no hosts" in str(info.value)
    assert info.value.hint  # tells what to do


@pytest.mark.parametrize(
    ("policy_vars", "named"),
    [
        (
            """
            parcelguard_zones:
              dmz: {subnet: 10.0.0.0/16}
              app: {subnet: 10.0.1.0/24}
            parcelguard_zone_policy: {mgmt_zone: dmz, admin_ports: [22], flows: []}
            """,
            "subnets of dmz and app overlap",
        ),
        (
            """
            parcelguard_zones:
              dmz: {subnet: 10.0.0.0/24}
            parcelguard_zone_policy:
              mgmt_zone: dmz
              admin_ports: [22]
              flows: [{from: dmz, to: vault, ports: [443]}]
            """,
            "parcelguard_zone_policy.flows[0].to",
        ),
        (
            # only zones given: the default policy names zones this inventory lacks
            """
            parcelguard_zones:
              office: {subnet: 10.0.0.0/24}
            """,
            "parcelguard_zone_policy.mgmt_zone",
        ),
        (
            """
            parcelguard_zones:
              dmz: {subnet: 10.0.0.1/24}
            parcelguard_zone_policy: {mgmt_zone: dmz, admin_ports: [22], flows: []}
            """,
            "parcelguard_zones.dmz.subnet",
        ),
    ],
)
def test_bad_zone_policy_is_an_inventory_error_naming_the_key(
    tmp_path: Path, policy_vars: str, named: str
) -> None:
    body = textwrap.indent(textwrap.dedent(policy_vars).strip(), " " * 4)
    inv = tmp_path / "inv.yml"
    inv.write_text(f"all:\n  vars:\n{body}\n  hosts:\n    db1:\n", encoding="utf-8")
    with pytest.raises(InventoryError) as info:
        load_inventory(inv)
    message = str(info.value)
    assert message.startswith(f"zone policy in {inv}: ")
    assert named in message
    assert "\n" not in message


@pytest.mark.parametrize("connection", ["docker", "winrm", "community.general.lxd"])
def test_unsupported_connection_is_refused(tmp_path: Path, connection: str) -> None:
    inv = write(tmp_path, "inv.ini", f"[data]\ndb1 ansible_connection={connection}\n")
    with pytest.raises(InventoryError) as info:
        load_inventory(inv)
    assert f"db1: connection {connection!r} is not supported" in str(info.value)


@pytest.mark.parametrize(
    ("connection", "expected"),
    [("ssh", "ssh"), ("paramiko", "ssh"), ("smart", "ssh"), ("local", LOCAL)],
)
def test_supported_connections(tmp_path: Path, connection: str, expected: str) -> None:
    inv = write(tmp_path, "inv.ini", f"db1 ansible_connection={connection}\n")
    assert load_inventory(inv).targets[0].connection == expected


def test_port_must_be_a_number(tmp_path: Path) -> None:
    inv = write(tmp_path, "inv.ini", "db1 ansible_port=ssh\n")
    with pytest.raises(InventoryError, match="db1: ansible_port must be a number"):
        load_inventory(inv)


def test_host_zones_must_be_a_list(tmp_path: Path) -> None:
    inv = write(tmp_path, "inv.yml", "all:\n  hosts:\n    db1: {parcelguard_host_zones: data}\n")
    with pytest.raises(InventoryError, match="db1: parcelguard_host_zones must be a list"):
        load_inventory(inv)


def test_invalid_host_name_is_refused(tmp_path: Path) -> None:
    inv = write(tmp_path, "inv.yml", "all:\n  hosts:\n    'db1;reboot': {}\n")
    with pytest.raises(InventoryError, match="is not a valid host name"):
        load_inventory(inv)


def test_local_fleet_is_this_machine() -> None:
    fleet = local_fleet()
    assert fleet.source == LOCAL
    assert not fleet.policy_declared
    assert fleet.policy == DEFAULT_ZONE_POLICY
    (target,) = fleet.targets
    assert target.connection == LOCAL
    assert target.address == "127.0.0.1"
    assert target.name == (os.uname().nodename or "localhost")
    assert target.zones == ()
    assert target.needs_sudo == (os.geteuid() != 0)


def test_templated_inventory_values_are_rendered(tmp_path: Path) -> None:
    inv = write(
        tmp_path,
        "inv.yml",
        """
        all:
          vars:
            kh_dir: /etc/pg
            parcelguard_known_hosts: "{{ kh_dir }}/known_hosts"
          hosts:
            db1:
              ansible_host: "10.40.0.{{ 10 + 1 }}"
              ansible_port: "{{ 2200 + 22 }}"
        """,
    )
    target = load_inventory(inv).targets[0]
    assert target.address == "10.40.0.11"
    assert target.port == 2222
    assert target.known_hosts == "/etc/pg/known_hosts"
