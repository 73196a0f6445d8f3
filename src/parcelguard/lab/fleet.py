"""The shape of a lab fleet: which hosts, in which zones, with which job.

A fleet comes from the built-in default, from ``--hosts N`` (the default's shape scaled to
N hosts) or from a YAML fleet file. Everything is validated before anything is created.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from parcelguard.errors import ParcelguardError, one_line

# The zones of a courier site (Art. 29: security zones with effective isolation).
ZONES: tuple[str, ...] = ("dmz", "app", "data", "mgmt")
# Each host has one job; the job decides which demo service runs and its default zone.
ROLE_ZONES: Mapping[str, str] = {
    "web": "dmz",  # nginx front for the waybill query API
    "waybill_app": "app",  # waybill application servers
    "database": "data",  # PostgreSQL with the waybill database
    "bastion": "mgmt",  # the operators' jump host
}
MIN_HOSTS = 4  # one host per zone
MAX_HOSTS = 200  # what this 2-core machine runs comfortably; a /24 per zone holds 240
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class FleetError(ParcelguardError):
    """A fleet that cannot be built as asked."""


@dataclass(frozen=True)
class HostSpec:
    name: str
    role: str
    zones: tuple[str, ...]

    @property
    def zone(self) -> str:
        """The primary zone: the host's address there is the one used to reach it."""
        return self.zones[0]


@dataclass(frozen=True)
class Fleet:
    hosts: tuple[HostSpec, ...]

    @property
    def zones(self) -> tuple[str, ...]:
        """The zones the fleet uses, in the canonical order."""
        used = {z for h in self.hosts for z in h.zones}
        return tuple(z for z in ZONES if z in used)

    def by_role(self, role: str) -> tuple[HostSpec, ...]:
        return tuple(h for h in self.hosts if h.role == role)


DEFAULT_FLEET = Fleet(
    (
        HostSpec("web1", "web", ("dmz",)),
        HostSpec("api1", "web", ("dmz",)),
        HostSpec("app1", "waybill_app", ("app",)),
        HostSpec("app2", "waybill_app", ("app",)),
        HostSpec("db1", "database", ("data",)),
        HostSpec("bastion1", "bastion", ("mgmt",)),
    )
)


def scaled_fleet(count: int) -> Fleet:
    """The default fleet's shape at ``count`` hosts: most are app servers, as in real sites."""
    if not MIN_HOSTS <= count <= MAX_HOSTS:
        raise FleetError(
            f"--hosts must be between {MIN_HOSTS} and {MAX_HOSTS}, not {count}",
            "a fleet needs one host in each of the 4 zones",
        )
    n_db = max(1, count // 10)
    n_web = max(1, count // 5)
    n_bastion = 1
    n_app = count - n_db - n_web - n_bastion
    hosts = [HostSpec(f"web{i}", "web", ("dmz",)) for i in range(1, n_web + 1)]
    hosts += [HostSpec(f"app{i}", "waybill_app", ("app",)) for i in range(1, n_app + 1)]
    hosts += [HostSpec(f"db{i}", "database", ("data",)) for i in range(1, n_db + 1)]
    hosts += [HostSpec("bastion1", "bastion", ("mgmt",))]
    return validate(hosts, source="--hosts")


def load_fleet_file(path: Path) -> Fleet:
    """Read a fleet file: ``hosts: [{name, role, zones?}, ...]``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FleetError(f"cannot read fleet file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise FleetError(f"fleet file {path} is not valid YAML: {one_line(exc)}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("hosts"), list):
        raise FleetError(
            f"fleet file {path} must be a mapping with a 'hosts' list",
            "see docs/lab.md for the format",
        )
    hosts = [_host_from_entry(entry, i, path) for i, entry in enumerate(data["hosts"], 1)]
    return validate(hosts, source=str(path))


def _host_from_entry(entry: Any, index: int, path: Path) -> HostSpec:
    where = f"fleet file {path}, host #{index}"
    if not isinstance(entry, dict):
        raise FleetError(f"{where}: expected a mapping with name and role")
    unknown = set(entry) - {"name", "role", "zones"}
    if unknown:
        raise FleetError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    name, role = entry.get("name"), entry.get("role")
    if not isinstance(name, str) or not isinstance(role, str):
        raise FleetError(f"{where}: 'name' and 'role' must be strings")
    if role not in ROLE_ZONES:
        raise FleetError(f"{where}: unknown role {role!r}", f"roles: {', '.join(ROLE_ZONES)}")
    zones = entry.get("zones", [ROLE_ZONES[role]])
    if isinstance(zones, str):
        zones = [zones]
    if not isinstance(zones, list) or not zones or not all(isinstance(z, str) for z in zones):
        raise FleetError(f"{where}: 'zones' must be a non-empty list of zone names")
    return HostSpec(name, role, tuple(zones))


def validate(hosts: list[HostSpec], source: str) -> Fleet:
    """Check names, roles and zones; return the fleet or raise FleetError naming the problem."""
    if not hosts:
        raise FleetError(f"{source}: the fleet has no hosts")
    if len(hosts) > MAX_HOSTS:
        raise FleetError(f"{source}: {len(hosts)} hosts is more than the lab's {MAX_HOSTS}")
    seen: set[str] = set()
    for h in hosts:
        if not _NAME.match(h.name):
            raise FleetError(
                f"{source}: invalid host name {h.name!r}",
                "use lower-case letters, digits and '-', starting with a letter, at most 31",
            )
        if h.name in seen:
            raise FleetError(f"{source}: host name {h.name!r} is used twice")
        seen.add(h.name)
        if h.role not in ROLE_ZONES:
            raise FleetError(f"{source}: host {h.name}: unknown role {h.role!r}")
        for z in h.zones:
            if z not in ZONES:
                raise FleetError(
                    f"{source}: host {h.name}: unknown zone {z!r}", f"zones: {', '.join(ZONES)}"
                )
        if len(set(h.zones)) != len(h.zones):
            raise FleetError(f"{source}: host {h.name} lists a zone twice")
    if not any("mgmt" in h.zones for h in hosts):
        raise FleetError(
            f"{source}: no host in the mgmt zone",
            "add the operators' bastion: {name: bastion1, role: bastion}",
        )
    return Fleet(tuple(hosts))
