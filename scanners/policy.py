"""The zone policy (Art. 29, 39): which zone may reach which, on which ports.

The policy is read from two inventory variables, the same ones the ``zoning`` role
enforces: ``parcelguard_zones`` (zone name -> ``{subnet: CIDR}``) and
``parcelguard_zone_policy``. Parsing is pure and strict; every problem is a
:class:`PolicyError` that names the offending key.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_ZONE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class PolicyError(ValueError):
    """The zone policy in the inventory is malformed or contradicts itself."""


@dataclass(frozen=True)
class Zone:
    name: str
    subnet: Network


@dataclass(frozen=True)
class Flow:
    """Traffic from hosts of zone ``src`` to hosts of zone ``dst`` on ``ports`` is allowed."""

    src: str
    dst: str
    ports: tuple[int, ...]


@dataclass(frozen=True)
class PartnerAccess:
    """A partner's declared networks may reach hosts of zone ``dst`` on ``ports``."""

    partner: str
    dst: str
    ports: tuple[int, ...]


@dataclass(frozen=True)
class ZonePolicy:
    zones: tuple[Zone, ...]
    mgmt_zone: str
    admin_ports: tuple[int, ...]
    flows: tuple[Flow, ...]
    partners: tuple[tuple[str, tuple[Network, ...]], ...]
    partner_access: tuple[PartnerAccess, ...]
    data_zones: tuple[str, ...]
    # Management stations outside every zone (the Ansible controller, a jump host of the
    # security team) that may reach admin ports besides the management zone.
    admin_sources: tuple[Network, ...] = ()

    def subnet(self, zone: str) -> Network | None:
        return next((z.subnet for z in self.zones if z.name == zone), None)

    def partner_networks(self, partner: str) -> tuple[Network, ...]:
        return next((nets for name, nets in self.partners if name == partner), ())

    def allows(self, src_zones: Iterable[str], dst_zones: Iterable[str], port: int) -> bool:
        """True when a host in ``src_zones`` may reach a host in ``dst_zones`` on ``port``.

        Admin ports are reachable from the management zone only; everything else needs
        a declared flow. Nothing else is allowed, including traffic inside one zone.
        """
        src, dst = set(src_zones), set(dst_zones)
        if port in self.admin_ports:
            return self.mgmt_zone in src
        return any(f.src in src and f.dst in dst and port in f.ports for f in self.flows)

    def allowed_sources(self, dst_zones: Iterable[str], port: int) -> tuple[Network, ...]:
        """Networks that may reach a host in ``dst_zones`` on ``port``: zones and partners."""
        dst = set(dst_zones)
        nets: list[Network] = []
        if port in self.admin_ports:
            mgmt = self.subnet(self.mgmt_zone)
            return ((mgmt,) if mgmt is not None else ()) + self.admin_sources
        for f in self.flows:
            subnet = self.subnet(f.src)
            if f.dst in dst and port in f.ports and subnet is not None:
                nets.append(subnet)
        for access in self.partner_access:
            if access.dst in dst and port in access.ports:
                nets.extend(self.partner_networks(access.partner))
        return tuple(nets)


def _ports(value: object, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise PolicyError(f"{where}: ports must be a non-empty list of integers")
    ports: list[int] = []
    for p in value:
        # bool is an int subclass: `true` in YAML must not become port 1.
        if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 65535:
            raise PolicyError(f"{where}: {p!r} is not a port number (1-65535)")
        ports.append(p)
    return tuple(sorted(set(ports)))


def _network(value: object, where: str) -> Network:
    if not isinstance(value, str):
        raise PolicyError(f"{where}: {value!r} is not a CIDR string")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise PolicyError(f"{where}: {exc}") from exc


def _mapping(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise PolicyError(f"{where} must be a mapping with string keys")
    return value


def _keys(value: Mapping[str, object], allowed: set[str], required: set[str], where: str) -> None:
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(unknown)}")
    missing = sorted(required - set(value))
    if missing:
        raise PolicyError(f"{where}: missing key(s) {', '.join(missing)}")


def _zone_ref(value: object, zones: set[str], where: str) -> str:
    if not isinstance(value, str) or value not in zones:
        raise PolicyError(f"{where}: {value!r} is not a zone declared in parcelguard_zones")
    return value


def parse_zones(zones_var: object) -> tuple[Zone, ...]:
    """Parse ``parcelguard_zones``; subnets must be exact networks and must not overlap."""
    raw = _mapping(zones_var, "parcelguard_zones")
    if not raw:
        raise PolicyError("parcelguard_zones: no zones declared")
    zones: list[Zone] = []
    for name, spec in raw.items():
        where = f"parcelguard_zones.{name}"
        if not _ZONE_NAME.match(name):
            raise PolicyError(f"{where}: zone names are lower-case words ([a-z][a-z0-9_-]*)")
        body = _mapping(spec, where)
        _keys(body, {"subnet", "description"}, {"subnet"}, where)
        zones.append(Zone(name, _network(body["subnet"], f"{where}.subnet")))
    for i, a in enumerate(zones):
        for b in zones[i + 1 :]:
            if a.subnet.version == b.subnet.version and a.subnet.overlaps(b.subnet):
                raise PolicyError(
                    f"parcelguard_zones: subnets of {a.name} and {b.name} overlap "
                    f"({a.subnet}, {b.subnet})"
                )
    return tuple(zones)


def parse_zone_policy(zones_var: object, policy_var: object) -> ZonePolicy:
    """Parse and validate the two inventory variables into a :class:`ZonePolicy`."""
    zones = parse_zones(zones_var)
    names = {z.name for z in zones}
    where = "parcelguard_zone_policy"
    raw = _mapping(policy_var, where)
    _keys(
        raw,
        {
            "mgmt_zone",
            "admin_ports",
            "admin_sources",
            "flows",
            "partners",
            "partner_access",
            "data_zones",
        },
        {"mgmt_zone", "admin_ports", "flows"},
        where,
    )
    mgmt = _zone_ref(raw["mgmt_zone"], names, f"{where}.mgmt_zone")
    admin_ports = _ports(raw["admin_ports"], f"{where}.admin_ports")
    sources_raw = raw.get("admin_sources", [])
    if not isinstance(sources_raw, list):
        raise PolicyError(f"{where}.admin_sources must be a list of CIDRs")
    admin_sources = tuple(_network(n, f"{where}.admin_sources") for n in sources_raw)

    flows_raw = raw["flows"]
    if not isinstance(flows_raw, list):
        raise PolicyError(f"{where}.flows must be a list")
    flows: list[Flow] = []
    for i, item in enumerate(flows_raw):
        w = f"{where}.flows[{i}]"
        body = _mapping(item, w)
        _keys(body, {"from", "to", "ports", "description"}, {"from", "to", "ports"}, w)
        flow = Flow(
            _zone_ref(body["from"], names, f"{w}.from"),
            _zone_ref(body["to"], names, f"{w}.to"),
            _ports(body["ports"], f"{w}.ports"),
        )
        admin = sorted(set(flow.ports) & set(admin_ports))
        if admin and flow.src != mgmt:
            raise PolicyError(
                f"{w}: port(s) {admin} are admin ports, reachable only from the "
                f"management zone {mgmt!r}"
            )
        flows.append(flow)

    partners: list[tuple[str, tuple[Network, ...]]] = []
    for name, nets in _mapping(raw.get("partners", {}), f"{where}.partners").items():
        w = f"{where}.partners.{name}"
        if not isinstance(nets, list) or not nets:
            raise PolicyError(f"{w} must be a non-empty list of CIDRs")
        partners.append((name, tuple(_network(n, w) for n in nets)))
    partner_names = {p for p, _ in partners}

    access_raw = raw.get("partner_access", [])
    if not isinstance(access_raw, list):
        raise PolicyError(f"{where}.partner_access must be a list")
    access: list[PartnerAccess] = []
    for i, item in enumerate(access_raw):
        w = f"{where}.partner_access[{i}]"
        body = _mapping(item, w)
        _keys(body, {"partner", "to", "ports", "description"}, {"partner", "to", "ports"}, w)
        partner = body["partner"]
        if not isinstance(partner, str) or partner not in partner_names:
            raise PolicyError(f"{w}.partner: {partner!r} is not declared under partners")
        ports = _ports(body["ports"], f"{w}.ports")
        if set(ports) & set(admin_ports):
            raise PolicyError(f"{w}: partners may not reach admin ports {list(admin_ports)}")
        access.append(PartnerAccess(partner, _zone_ref(body["to"], names, f"{w}.to"), ports))

    data_raw = raw.get("data_zones", ["data"] if "data" in names else [])
    if not isinstance(data_raw, list):
        raise PolicyError(f"{where}.data_zones must be a list of zone names")
    data_zones = tuple(_zone_ref(z, names, f"{where}.data_zones") for z in data_raw)

    return ZonePolicy(
        zones=zones,
        mgmt_zone=mgmt,
        admin_ports=admin_ports,
        flows=tuple(flows),
        partners=tuple(partners),
        partner_access=tuple(access),
        data_zones=data_zones,
        admin_sources=admin_sources,
    )


# The courier fleet's reference layout. Subnets are in 198.18.0.0/15, the range the lab
# uses (RFC 2544 benchmarking); production inventories declare their own.
DEFAULT_ZONES: dict[str, dict[str, str]] = {
    "mgmt": {"subnet": "198.18.10.0/24"},
    "dmz": {"subnet": "198.18.20.0/24"},
    "app": {"subnet": "198.18.30.0/24"},
    "data": {"subnet": "198.18.40.0/24"},
}
DEFAULT_POLICY: dict[str, object] = {
    "mgmt_zone": "mgmt",
    "admin_ports": [22],
    "flows": [
        {"from": "dmz", "to": "app", "ports": [8080]},
        {"from": "app", "to": "data", "ports": [5432]},
    ],
    "partners": {},
    "partner_access": [],
    "data_zones": ["data"],
}
DEFAULT_ZONE_POLICY = parse_zone_policy(DEFAULT_ZONES, DEFAULT_POLICY)

Measured = Mapping[tuple[str, str, int], bool | None]
FindingKind = Literal["open-denied", "blocked-allowed", "unknown"]


@dataclass(frozen=True)
class Reachability:
    """What the runner measured: each host's zones and (src, dst, port) -> open?"""

    hosts: Mapping[str, tuple[str, ...]]
    measured: Measured


@dataclass(frozen=True)
class ReachFinding:
    """A measured pair that departs from the policy, or could not be judged.

    ``open-denied`` is a violation (reachable though the policy denies it);
    ``blocked-allowed`` is a declared flow that is closed (a deviation, not an exposure);
    ``unknown`` could not be measured or judged.
    """

    kind: FindingKind
    src: str
    dst: str
    port: int
    detail: str


def compare_reachability(
    policy: ZonePolicy, hosts: Mapping[str, Iterable[str]], measured: Measured
) -> list[ReachFinding]:
    """Compare a measured reachability matrix with the policy; pure and order-stable."""
    findings: list[ReachFinding] = []
    for (src, dst, port), is_open in sorted(measured.items()):
        if src not in hosts or dst not in hosts:
            missing = src if src not in hosts else dst
            findings.append(ReachFinding("unknown", src, dst, port, f"host {missing} has no zones"))
            continue
        if is_open is None:
            findings.append(ReachFinding("unknown", src, dst, port, "could not measure"))
            continue
        allowed = policy.allows(hosts[src], hosts[dst], port)
        if is_open and not allowed:
            findings.append(
                ReachFinding("open-denied", src, dst, port, "reachable but the policy denies it")
            )
        elif not is_open and allowed:
            findings.append(
                ReachFinding("blocked-allowed", src, dst, port, "declared flow is blocked")
            )
    return findings
