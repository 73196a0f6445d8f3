"""What the host firewall accepts on input, read from ``nft -j list ruleset``.

The reading is deliberately simple and errs towards "accepted": a match this module
does not understand is ignored, so the rule counts as broader than it may be. A
compliance check may then FAIL a host that is in fact tighter, never PASS one that is
looser.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from parcelguard.scanners.facts import FactUnavailable, HostFacts, need
from parcelguard.scanners.policy import Network

PortRange = tuple[int, int]
LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


@dataclass(frozen=True)
class Rule:
    """One input rule as far as this reading understands it."""

    chain: str
    verdict: str  # accept | drop | reject | jump | goto | return | none
    target: str = ""  # chain name for jump/goto
    sources: tuple[Network, ...] | None = None  # None: any source
    ports: tuple[PortRange, ...] | None = None  # None: any port
    protocols: frozenset[str] | None = None  # None: any protocol
    loopback_only: bool = False  # iif lo
    established_only: bool = False  # ct state established,related without new
    rate_limited: bool = False  # limit, meter, ct count
    handle: int = 0

    def covers_port(self, port: int) -> bool:
        return self.ports is None or any(lo <= port <= hi for lo, hi in self.ports)

    @property
    def tcp_relevant(self) -> bool:
        return self.protocols is None or bool(self.protocols & {"tcp", "th"})

    @property
    def inbound_new(self) -> bool:
        """Accepts new connections from outside the host."""
        return (
            self.verdict == "accept"
            and not self.loopback_only
            and not self.established_only
            and self.tcp_relevant
        )

    def describe(self) -> str:
        src = "any" if self.sources is None else ",".join(str(n) for n in self.sources)
        if self.ports is None:
            ports = "any"
        else:
            ports = ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ports)
        return f"{self.chain}#{self.handle}: {self.verdict} from {src} to port {ports}"


@dataclass(frozen=True)
class Firewall:
    default_deny: bool  # an input base chain drops what no rule accepted
    input_chains: tuple[str, ...]  # "family table chain policy"
    rules: tuple[Rule, ...]  # effective rules of the default-deny input chains, jumps inlined
    notes: tuple[str, ...] = field(default=())

    @property
    def accepts(self) -> list[Rule]:
        return [r for r in self.rules if r.inbound_new]

    def rate_limited_ports(self) -> set[int]:
        """Ports with a limit/meter rule: brute-force throttling in nftables itself."""
        return {
            p
            for r in self.rules
            if r.rate_limited and r.ports is not None
            for lo, hi in r.ports
            if hi - lo < 1024
            for p in range(lo, hi + 1)
        }


def firewall(facts: HostFacts) -> Firewall:
    """Read the host firewall; raises FactUnavailable when nft output is unusable."""
    sec = need(facts, "nft")
    try:
        data = json.loads(sec.stdout)
    except json.JSONDecodeError as exc:
        raise FactUnavailable(f"nft -j output is not JSON: {exc.msg}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("nftables"), list):
        raise FactUnavailable("nft -j output has no 'nftables' list")
    return read_ruleset(data["nftables"])


def read_ruleset(items: list[Any]) -> Firewall:
    chains: dict[tuple[str, str, str], dict[str, Any]] = {}
    rules: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    sets: dict[tuple[str, str, str], list[Any]] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        if isinstance(c := item.get("chain"), dict):
            key = (str(c.get("family")), str(c.get("table")), str(c.get("name")))
            chains[key] = c
        elif isinstance(r := item.get("rule"), dict):
            key = (str(r.get("family")), str(r.get("table")), str(r.get("chain")))
            rules.setdefault(key, []).append(r)
        elif isinstance(s := item.get("set"), dict):
            key = (str(s.get("family")), str(s.get("table")), str(s.get("name")))
            elem = s.get("elem", [])
            sets[key] = elem if isinstance(elem, list) else []

    notes: list[str] = []
    names: list[str] = []
    effective: list[Rule] = []
    default_deny = False
    for key, chain in chains.items():
        if chain.get("hook") != "input" or chain.get("type", "filter") != "filter":
            continue
        if key[0] not in ("inet", "ip", "ip6"):
            continue
        policy = str(chain.get("policy", "accept"))
        names.append(f"{key[0]} {key[1]} {key[2]} policy {policy}")
        reader = _Reader(key[0], key[1], sets, notes)
        body = reader.inline(rules, key[2], None, 0)
        drops = policy == "drop" or any(_unconditional_drop(r) for r in body)
        if drops:
            default_deny = True
            effective.extend(body)
    return Firewall(default_deny, tuple(names), tuple(effective), tuple(dict.fromkeys(notes)))


def _unconditional_drop(rule: Rule) -> bool:
    return (
        rule.verdict in ("drop", "reject")
        and rule.sources is None
        and rule.ports is None
        and rule.protocols is None
        and not rule.loopback_only
        and not rule.established_only
        and not rule.rate_limited
    )


class _Reader:
    def __init__(
        self,
        family: str,
        table: str,
        sets: Mapping[tuple[str, str, str], list[Any]],
        notes: list[str],
    ) -> None:
        self.family, self.table, self.sets, self.notes = family, table, sets, notes

    def inline(
        self,
        rules: Mapping[tuple[str, str, str], list[dict[str, Any]]],
        chain: str,
        outer: Rule | None,
        depth: int,
    ) -> list[Rule]:
        result: list[Rule] = []
        for raw in rules.get((self.family, self.table, chain), []):
            rule = self.rule(chain, raw)
            if outer is not None:
                rule = _narrow(rule, outer)
            if rule.verdict in ("jump", "goto"):
                if depth >= 8:
                    self.notes.append(f"jump depth limit reached at chain {chain}")
                    continue
                result.extend(self.inline(rules, rule.target, rule, depth + 1))
                continue
            result.append(rule)
        return result

    def rule(self, chain: str, raw: Mapping[str, Any]) -> Rule:
        values: dict[str, Any] = {
            "verdict": "none",
            "target": "",
            "sources": None,
            "ports": None,
            "protocols": None,
            "loopback_only": False,
            "established_only": False,
            "rate_limited": False,
        }
        exprs = raw.get("expr", [])
        for expr in exprs if isinstance(exprs, list) else []:
            if isinstance(expr, dict):
                self.expr(expr, values)
        handle = raw.get("handle", 0)
        return Rule(chain=chain, handle=handle if isinstance(handle, int) else 0, **values)

    def expr(self, expr: Mapping[str, Any], v: dict[str, Any]) -> None:
        for verdict in ("accept", "drop", "reject", "return"):
            if verdict in expr:
                v["verdict"] = verdict
                return
        for verdict in ("jump", "goto"):
            if isinstance(expr.get(verdict), dict):
                v["verdict"] = verdict
                v["target"] = str(expr[verdict].get("target", ""))
                return
        if any(k in expr for k in ("limit", "meter", "ct count")):
            v["rate_limited"] = True
            return
        if isinstance(s := expr.get("set"), dict) and _has_limit(s):
            v["rate_limited"] = True
            return
        match = expr.get("match")
        if not isinstance(match, dict):
            return
        op, left, right = match.get("op", "=="), match.get("left"), match.get("right")
        if op not in ("==", "in"):
            return  # negations and comparisons: read as "any", the broad side
        if not isinstance(left, dict):
            return
        payload = left.get("payload")
        meta = left.get("meta")
        ct = left.get("ct")
        if isinstance(payload, dict):
            field_name = payload.get("field")
            proto = str(payload.get("protocol", ""))
            if field_name == "saddr" and proto in ("ip", "ip6"):
                nets = self.networks(right)
                if nets is not None:
                    v["sources"] = nets
            elif field_name == "dport" and proto in ("tcp", "udp", "th", "sctp"):
                v["ports"] = self.ports(right)
                v["protocols"] = frozenset({proto})
        elif isinstance(meta, dict) and meta.get("key") in ("iifname", "iif"):
            if _strings(right) == ["lo"]:
                v["loopback_only"] = True
        elif isinstance(meta, dict) and meta.get("key") in ("l4proto", "nfproto", "protocol"):
            protos = _strings(right)
            if meta.get("key") == "l4proto" and protos:
                v["protocols"] = frozenset(protos)
        elif isinstance(ct, dict) and ct.get("key") == "state":
            states = set(_strings(right))
            if states and "new" not in states and "untracked" not in states:
                v["established_only"] = True

    def elements(self, right: Any) -> list[Any]:
        if isinstance(right, str) and right.startswith("@"):
            return list(self.sets.get((self.family, self.table, right[1:]), []))
        if isinstance(right, dict) and isinstance(right.get("set"), list):
            return list(right["set"])
        return [right]

    def networks(self, right: Any) -> tuple[Network, ...] | None:
        nets: list[Network] = []
        for elem in self.elements(right):
            if isinstance(elem, dict) and isinstance(elem.get("elem"), dict):
                elem = elem["elem"].get("val")
            try:
                if isinstance(elem, str):
                    nets.append(ipaddress.ip_network(elem, strict=False))
                elif isinstance(elem, dict) and isinstance(p := elem.get("prefix"), dict):
                    nets.append(ipaddress.ip_network(f"{p['addr']}/{p['len']}", strict=False))
                elif isinstance(elem, dict) and isinstance(rng := elem.get("range"), list):
                    lo, hi = (ipaddress.ip_address(x) for x in rng)
                    nets.extend(ipaddress.summarize_address_range(lo, hi))
                else:
                    self.notes.append("unreadable source address match read as 'any'")
                    return None
            except (ValueError, KeyError, TypeError):
                self.notes.append("unreadable source address match read as 'any'")
                return None
        return tuple(nets) if nets else None

    def ports(self, right: Any) -> tuple[PortRange, ...] | None:
        ranges: list[PortRange] = []
        for elem in self.elements(right):
            if isinstance(elem, dict) and isinstance(elem.get("elem"), dict):
                elem = elem["elem"].get("val")
            if isinstance(elem, int) and not isinstance(elem, bool):
                ranges.append((elem, elem))
            elif (
                isinstance(elem, dict)
                and isinstance(rng := elem.get("range"), list)
                and len(rng) == 2
                and all(isinstance(x, int) for x in rng)
            ):
                ranges.append((int(rng[0]), int(rng[1])))
            else:
                # Named services ("ssh") are resolved by nft -j to numbers; anything
                # else is unknown and read as "any port".
                self.notes.append("unreadable port match read as 'any'")
                return None
        return tuple(ranges) if ranges else None


def _has_limit(s: Mapping[str, Any]) -> bool:
    stmts = s.get("stmt", [])
    elem = s.get("elem")
    if isinstance(elem, dict) and isinstance(inner := elem.get("elem"), dict):
        stmts = inner.get("stmt", stmts)
    return isinstance(stmts, list) and any(
        isinstance(x, dict) and ("limit" in x or "ct count" in x) for x in stmts
    )


def _strings(right: Any) -> list[str]:
    if isinstance(right, str):
        return [right]
    if isinstance(right, list):
        return [x for x in right if isinstance(x, str)]
    if isinstance(right, dict) and isinstance(right.get("set"), list):
        return [x for x in right["set"] if isinstance(x, str)]
    return []


def _narrow(inner: Rule, outer: Rule) -> Rule:
    """The inner rule as reached through ``outer``'s jump: both sets of matches apply."""
    sources = inner.sources
    if outer.sources is not None:
        if sources is None:
            sources = outer.sources
        else:
            sources = tuple(
                n
                for n in sources
                if any(n.version == o.version and n.subnet_of(o) for o in outer.sources)  # type: ignore[arg-type]
            ) or tuple(
                o
                for o in outer.sources
                if any(o.version == n.version and o.subnet_of(n) for n in sources)  # type: ignore[arg-type]
            )
    return Rule(
        chain=f"{outer.chain}>{inner.chain}",
        verdict=inner.verdict,
        target=inner.target,
        sources=sources,
        ports=inner.ports if inner.ports is not None else outer.ports,
        protocols=inner.protocols if inner.protocols is not None else outer.protocols,
        loopback_only=inner.loopback_only or outer.loopback_only,
        established_only=inner.established_only or outer.established_only,
        rate_limited=inner.rate_limited or outer.rate_limited,
        handle=inner.handle,
    )


def within(nets: Iterable[Network], allowed: Iterable[Network]) -> list[Network]:
    """The networks of ``nets`` not contained in any of ``allowed`` (loopback always is)."""
    allow = (*allowed, *LOOPBACK)
    return [
        n
        for n in nets
        if not any(n.version == a.version and n.subnet_of(a) for a in allow)  # type: ignore[arg-type]
    ]
