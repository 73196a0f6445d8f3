"""Measure zone reachability from inside the fleet.

From one host in each zone, try a TCP connection to the declared ports of every host in
the other zones, by explicit inventory address only (never a range). The probe is bash's
``/dev/tcp`` under ``timeout``: it needs nothing installed on a hardened server, and it
measures what a process on that host can really reach through both hosts' firewalls.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from parcelguard.scanners.policy import ZonePolicy

PROBE_TIMEOUT_S = 1  # a dropped SYN costs this much; a refused one returns at once
PROBE_PARALLEL = 64
_LINE = re.compile(r"^(\S+) (\d{1,5}) (open|closed|filtered)$")


@dataclass(frozen=True)
class ProbeTarget:
    host: str
    address: str
    port: int


def declared_ports(policy: ZonePolicy) -> tuple[int, ...]:
    """Every port the policy speaks of: admin ports, zone flows, partner access."""
    ports = set(policy.admin_ports)
    ports.update(p for f in policy.flows for p in f.ports)
    ports.update(p for a in policy.partner_access for p in a.ports)
    return tuple(sorted(ports))


def plan(
    hosts: Mapping[str, tuple[str, ...]],
    addresses: Mapping[str, str],
    ports: Sequence[int],
) -> dict[str, list[ProbeTarget]]:
    """Choose one source host per zone (the first by name) and what it probes.

    A source probes every host that shares no zone with it, on every declared port.
    """
    sources: dict[str, str] = {}
    for name in sorted(hosts):
        for zone in hosts[name]:
            sources.setdefault(zone, name)
    work: dict[str, list[ProbeTarget]] = {}
    for src in sorted(set(sources.values())):
        src_zones = set(hosts[src])
        targets = [
            ProbeTarget(dst, addresses[dst], port)
            for dst in sorted(hosts)
            if dst != src and not src_zones & set(hosts[dst])
            for port in ports
        ]
        if targets:
            work[src] = targets
    return work


def probe_script(targets: Iterable[ProbeTarget]) -> str:
    """A bash script that probes each (address, port) and prints ``ADDR PORT state``."""
    lines = [
        "p() { timeout TIMEOUT bash -c 'exec 3<>/dev/tcp/'\"$1/$2\" 2>/dev/null; rc=$?;"
        " if [ $rc -eq 0 ]; then s=open; elif [ $rc -eq 124 ]; then s=filtered;"
        ' else s=closed; fi; echo "$1 $2 $s"; }'.replace("TIMEOUT", str(PROBE_TIMEOUT_S)),
        "n=0",
    ]
    for t in targets:
        address = str(ipaddress.ip_address(t.address))  # refuses anything but an address
        if not 0 < t.port < 65536:
            raise ValueError(f"invalid port {t.port}")
        lines.append(f"p {shlex.quote(address)} {int(t.port)} &")
        lines.append(f"n=$((n+1)); [ $((n % {PROBE_PARALLEL})) -eq 0 ] && wait")
    lines.append("wait")
    return "\n".join(lines) + "\n"


def _canonical(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def is_address(value: str) -> bool:
    """True for an IPv4 or IPv6 address (the only thing the probe will connect to)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def parse_probe_output(
    src: str, targets: Sequence[ProbeTarget], output: str
) -> dict[tuple[str, str, int], bool | None]:
    """Map (src, dst, port) to open (True), not reachable (False) or unmeasured (None)."""
    states: dict[tuple[str, int], str] = {}
    for line in output.splitlines():
        m = _LINE.match(line.strip())
        if m:
            states[(m.group(1), int(m.group(2)))] = m.group(3)
    result: dict[tuple[str, str, int], bool | None] = {}
    for t in targets:
        # The script prints addresses in canonical form (fd00::11, not FD00:0:0::11).
        state = states.get((_canonical(t.address), t.port))
        result[(src, t.host, t.port)] = None if state is None else state == "open"
    return result
