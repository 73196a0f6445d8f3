"""Partner interconnection (Art. 39): who may reach the hosts that store delivery data."""

from __future__ import annotations

from parcelguard.scanners.catalog import ControlMeta, control
from parcelguard.scanners.context import HostContext
from parcelguard.scanners.controls._common import ev
from parcelguard.scanners.facts import HostFacts
from parcelguard.scanners.model import Outcome, Severity
from parcelguard.scanners.nft import firewall, within

AREA = "PART"

# A rule opening more ports than this is reported as too broad to review port by port.
MAX_REVIEWED_RANGE = 1024


@control(
    ControlMeta(
        id="PG-PART-001",
        title="Data-zone hosts accept connections only from declared zones and partners",
        area=AREA,
        articles=(39, 36),
        severity=Severity.HIGH,
        rationale="Art. 39 requires access review of systems storing delivery data and "
        "specified interconnection with partners: every source allowed in must be a "
        "declared zone flow or a partner on the allow-list.",
        evidence="Firewall accept rules on this host whose sources lie outside the "
        "networks the zone policy and partner allow-list permit for that port.",
        remediation_role="zoning",
        remediation_tag="pg-part-001",
    )
)
def data_zone_sources(facts: HostFacts, ctx: HostContext) -> Outcome:
    data_zones = set(ctx.policy.data_zones)
    if not data_zones & set(ctx.zones):
        return Outcome.not_applicable("host is not in a data zone")
    fw = firewall(facts)
    if not fw.default_deny:
        return Outcome.failed("no default-deny input chain: every source reaches this host")
    bad: list[str] = []
    for rule in fw.accepts:
        if rule.ports is None:
            bad.append(f"{rule.describe()} (every port)")
            continue
        ports = [
            p for lo, hi in rule.ports if hi - lo < MAX_REVIEWED_RANGE for p in range(lo, hi + 1)
        ]
        if any(hi - lo >= MAX_REVIEWED_RANGE for lo, hi in rule.ports):
            bad.append(f"{rule.describe()} (port range too broad)")
            continue
        for port in ports:
            allowed = ctx.policy.allowed_sources(ctx.zones, port)
            if rule.sources is None or within(rule.sources, allowed):
                bad.append(rule.describe())
                break
    evidence = [ev("accept rules", len(fw.accepts))] + [
        ev("undeclared access", b) for b in bad[:20]
    ]
    evidence += [ev("reading note", n) for n in fw.notes]
    if bad:
        return Outcome.failed(f"{len(bad)} rule(s) admit undeclared sources", *evidence)
    return Outcome.passed("only declared zones and partners reach this host", *evidence)


CONTROLS = (data_zone_sources,)
