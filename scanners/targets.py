"""Which hosts to scan and how to reach them: the same Ansible inventory the playbooks use.

The inventory is read with ansible-core's own InventoryManager, so INI, YAML, directories
with group_vars and inventory plugins all work exactly as for ``ansible-playbook``.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parcelguard.errors import ParcelguardError, one_line
from parcelguard.scanners.policy import DEFAULT_ZONE_POLICY, PolicyError, ZonePolicy
from parcelguard.scanners.policy import parse_zone_policy as _parse_policy

LOCAL = "local"
_HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,253}$")


class InventoryError(ParcelguardError):
    pass


@dataclass(frozen=True)
class Target:
    """One host to scan: its inventory name, how to connect, where it sits."""

    name: str
    address: str
    connection: str = "ssh"  # "ssh" or "local"
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    known_hosts: str | None = None
    zones: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @property
    def needs_sudo(self) -> bool:
        if self.connection == LOCAL:
            return os.geteuid() != 0
        return self.user != "root"


@dataclass(frozen=True)
class Fleet:
    """What a scan covers: the targets and the zone policy declared for them."""

    source: str  # the inventory path, or "local"
    targets: tuple[Target, ...]
    policy: ZonePolicy
    policy_declared: bool  # False when the built-in default policy is in force


def local_fleet() -> Fleet:
    """The machine parcelguard runs on, with no inventory."""
    name = os.uname().nodename or "localhost"
    return Fleet(LOCAL, (Target(name, "127.0.0.1", connection=LOCAL),), DEFAULT_ZONE_POLICY, False)


def load_inventory(path: Path, limit: str | None = None) -> Fleet:
    """Read an Ansible inventory; ``limit`` is an Ansible host pattern (like ``--limit``)."""
    if not path.exists():
        raise InventoryError(f"inventory {path} does not exist")
    # Imported here: ansible's import costs about half a second a scan of one host need not pay.
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    try:
        inventory = InventoryManager(loader=loader, sources=[str(path)])
    except AnsibleError as exc:
        raise InventoryError(f"cannot read inventory {path}: {exc.message}") from exc
    if not inventory.list_hosts("all"):
        raise InventoryError(
            f"inventory {path} has no hosts", "check the file, or scan this machine without -i"
        )
    variables = VariableManager(loader=loader, inventory=inventory)
    hosts = inventory.list_hosts(limit or "all")
    if not hosts:
        raise InventoryError(f"--limit {limit!r} matches no host in {path}")
    all_vars = variables.get_vars(host=hosts[0])
    zones_var = all_vars.get("parcelguard_zones")
    policy_var = all_vars.get("parcelguard_zone_policy")
    policy, declared = DEFAULT_ZONE_POLICY, False
    if zones_var is not None or policy_var is not None:
        try:
            policy = _parse_policy(
                _plain(zones_var) if zones_var is not None else _default_zones(),
                _plain(policy_var) if policy_var is not None else _default_policy(),
            )
        except PolicyError as exc:
            raise InventoryError(f"zone policy in {path}: {exc}") from exc
        declared = True
    zone_names = {z.name for z in policy.zones}
    targets = []
    for host in sorted(hosts, key=lambda h: h.name):
        hv = _rendered(loader, variables.get_vars(host=host), host.name)
        targets.append(_target(host.name, hv, zone_names))
    return Fleet(str(path), tuple(targets), policy, declared)


_READ = (
    "ansible_host", "ansible_port", "ansible_user", "ansible_connection",
    "ansible_ssh_private_key_file", "ansible_private_key_file", "ansible_ssh_common_args",
    "ansible_ssh_extra_args", "parcelguard_known_hosts", "parcelguard_host_zones",
)  # fmt: skip


def _rendered(loader: Any, hv: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The variables the scanner reads, with Jinja expressions rendered as Ansible would."""
    from ansible.errors import AnsibleError
    from ansible.template import Templar

    templar = Templar(loader=loader, variables=hv)
    out = dict(hv)
    for key in _READ:
        if key in hv:
            try:
                out[key] = templar.template(hv[key])
            except AnsibleError as exc:
                raise InventoryError(f"{name}: cannot render {key}: {one_line(exc)}") from exc
    return out


def _target(name: str, hv: Mapping[str, Any], zone_names: set[str]) -> Target:
    if not _HOST_NAME.match(name):
        raise InventoryError(f"inventory host name {name!r} is not a valid host name")
    groups = tuple(sorted(str(g) for g in hv.get("group_names", ())))
    declared_zones = hv.get("parcelguard_host_zones")
    if declared_zones is not None:
        if not isinstance(declared_zones, Sequence) or isinstance(declared_zones, str):
            raise InventoryError(f"{name}: parcelguard_host_zones must be a list")
        zones = tuple(str(z) for z in declared_zones)
        unknown = [z for z in zones if z not in zone_names]
        if unknown:
            raise InventoryError(
                f"{name}: parcelguard_host_zones names unknown zone(s) {', '.join(unknown)}",
                f"declared zones: {', '.join(sorted(zone_names))}",
            )
    else:
        zones = tuple(g for g in groups if g in zone_names)
    connection = str(hv.get("ansible_connection", "ssh"))
    if connection not in ("ssh", "paramiko", "smart", LOCAL):
        raise InventoryError(f"{name}: connection {connection!r} is not supported (ssh, local)")
    try:
        port = int(hv.get("ansible_port", 22))
    except (TypeError, ValueError) as exc:
        raise InventoryError(f"{name}: ansible_port must be a number") from exc
    key = hv.get("ansible_ssh_private_key_file") or hv.get("ansible_private_key_file")
    return Target(
        name=name,
        address=str(hv.get("ansible_host", name)),
        connection=LOCAL if connection == LOCAL else "ssh",
        port=port,
        user=str(hv.get("ansible_user", "root")),
        key_file=str(Path(str(key)).expanduser()) if key else None,
        known_hosts=_known_hosts(hv),
        zones=zones,
        groups=groups,
    )


def _known_hosts(hv: Mapping[str, Any]) -> str | None:
    """The known_hosts file this host's SSH connections verify against, if the inventory says."""
    explicit = hv.get("parcelguard_known_hosts")
    if explicit:
        return str(Path(str(explicit)).expanduser())
    for var in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        args = shlex.split(str(hv.get(var, "") or ""))
        for i, arg in enumerate(args):
            option = arg[2:] if arg.startswith("-o") and len(arg) > 2 else None
            if arg == "-o" and i + 1 < len(args):
                option = args[i + 1]
            if option and option.lower().startswith("userknownhostsfile="):
                return str(Path(option.split("=", 1)[1].split()[0]).expanduser())
    return None


def _plain(value: Any) -> Any:
    """Ansible wraps inventory values in its own types; controls want plain Python."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return str(value)


def _default_zones() -> dict[str, Any]:
    from parcelguard.scanners.policy import DEFAULT_ZONES

    return dict(DEFAULT_ZONES)


def _default_policy() -> dict[str, Any]:
    from parcelguard.scanners.policy import DEFAULT_POLICY

    return dict(DEFAULT_POLICY)
