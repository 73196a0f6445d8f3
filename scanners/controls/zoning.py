"""Network zoning (Art. 29): host firewall, zone policy, admin access, brute force."""

from __future__ import annotations

from parcelguard.scanners.catalog import ControlMeta, control
from parcelguard.scanners.context import HostContext
from parcelguard.scanners.controls._common import ev, names
from parcelguard.scanners.facts import FactUnavailable, HostFacts, need
from parcelguard.scanners.hostdata import unit
from parcelguard.scanners.model import Outcome, Severity
from parcelguard.scanners.nft import firewall, within
from parcelguard.scanners.policy import compare_reachability

AREA = "ZONE"


@control(
    ControlMeta(
        id="PG-ZONE-001",
        title="The host firewall drops inbound traffic by default and is loaded at boot",
        area=AREA,
        articles=(29,),
        severity=Severity.HIGH,
        rationale="Isolation between security zones needs every host to refuse traffic "
        "that no rule allows; rules that vanish at reboot isolate nothing.",
        evidence="nftables input chains and their policies; nftables.service state.",
        remediation_role="zoning",
        remediation_tag="pg-zone-001",
    )
)
def firewall_default_deny(facts: HostFacts, ctx: HostContext) -> Outcome:
    sec = facts.section("nft")
    if sec is not None and sec.complete and sec.rc == 127:
        return Outcome.failed("nftables is not installed: inbound traffic is not filtered")
    fw = firewall(facts)
    state = unit(facts, "nftables")
    evidence = (
        ev("input chains", "; ".join(fw.input_chains) or "none"),
        ev("nftables.service", f"{state.enabled}/{state.active}"),
    )
    if not fw.input_chains:
        return Outcome.failed("no nftables input chain: inbound traffic is not filtered", *evidence)
    if not fw.default_deny:
        return Outcome.failed("input chains accept by default", *evidence)
    if state.enabled != "enabled":
        return Outcome.failed(
            "default-deny rules are live but nftables.service is not enabled: "
            "they are lost at the next boot",
            *evidence,
        )
    return Outcome.passed("inbound traffic is dropped unless a rule accepts it", *evidence)


@control(
    ControlMeta(
        id="PG-ZONE-002",
        title="Measured reachability of the host matches the zone policy",
        area=AREA,
        articles=(29,),
        severity=Severity.HIGH,
        rationale="Only a measurement from the other zones shows that isolation works; "
        "rules can be shadowed by others or never loaded.",
        evidence="Each measured (source host, port) that the policy denies but reached "
        "this host, and pairs that could not be measured.",
        remediation_role="zoning",
        remediation_tag="pg-zone-002",
    )
)
def reachability_matches(facts: HostFacts, ctx: HostContext) -> Outcome:
    if ctx.reachability is None:
        return Outcome.error("reachability not measured")
    inbound = {k: v for k, v in ctx.reachability.measured.items() if k[1] == ctx.host}
    if not inbound:
        return Outcome.error("reachability not measured for this host")
    findings = compare_reachability(ctx.policy, ctx.reachability.hosts, inbound)
    open_denied = [f for f in findings if f.kind == "open-denied"]
    unknown = [f for f in findings if f.kind == "unknown"]
    blocked = [f for f in findings if f.kind == "blocked-allowed"]
    evidence = [ev("measured pairs", len(inbound))]
    evidence += [ev("open but denied", f"{f.src} -> port {f.port}") for f in open_denied[:20]]
    evidence += [ev("not measured", f"{f.src} -> port {f.port}: {f.detail}") for f in unknown[:20]]
    evidence += [ev("declared flow blocked", f"{f.src} -> port {f.port}") for f in blocked[:20]]
    if open_denied:
        return Outcome.failed(
            f"{len(open_denied)} connection(s) reach this host against the zone policy",
            *evidence,
        )
    if unknown:
        return Outcome.error(f"{len(unknown)} measured pair(s) could not be judged", *evidence)
    return Outcome.passed("no connection reaches this host against the zone policy", *evidence)


@control(
    ControlMeta(
        id="PG-ZONE-003",
        title="Administrative ports accept connections only from the management zone",
        area=AREA,
        articles=(29, 31),
        severity=Severity.HIGH,
        rationale="Remote administration is the strongest access to user information; "
        "limiting it to the management zone makes it examinable and monitorable.",
        evidence="Firewall rules accepting admin ports and their source networks; "
        "measured admin-port reachability from other zones when available.",
        remediation_role="zoning",
        remediation_tag="pg-zone-003",
    )
)
def admin_from_mgmt(facts: HostFacts, ctx: HostContext) -> Outcome:
    fw = firewall(facts)
    mgmt = ctx.policy.subnet(ctx.policy.mgmt_zone)
    if not fw.default_deny:
        return Outcome.failed("no default-deny input chain: admin ports are open to every zone")
    bad: list[str] = []
    for rule in fw.accepts:
        if not any(rule.covers_port(p) for p in ctx.policy.admin_ports):
            continue
        allowed = [*([mgmt] if mgmt else []), *ctx.policy.admin_sources]
        if rule.sources is None or within(rule.sources, allowed):
            bad.append(rule.describe())
    if ctx.reachability is not None:
        for (src, dst, port), is_open in ctx.reachability.measured.items():
            from_mgmt = ctx.policy.mgmt_zone in ctx.reachability.hosts.get(src, ())
            if dst == ctx.host and port in ctx.policy.admin_ports and is_open and not from_mgmt:
                bad.append(f"measured: {src} reached port {port}")
    evidence = [ev("management subnet", mgmt)]
    evidence += [ev("management station", n) for n in ctx.policy.admin_sources]
    evidence += [ev("admin access", b) for b in bad[:20]]
    if bad:
        return Outcome.failed(
            f"admin ports {list(ctx.policy.admin_ports)} are open beyond the management zone",
            *evidence,
        )
    return Outcome.passed("admin ports accept only the management zone", *evidence)


@control(
    ControlMeta(
        id="PG-ZONE-004",
        title="Brute-force attempts against SSH are blocked",
        area=AREA,
        articles=(29,),
        severity=Severity.MEDIUM,
        rationale="Art. 29 asks for the ability to block attacks: repeated login "
        "failures must lead to a block, not an unlimited guessing budget.",
        evidence="fail2ban service state and jail list; nftables rate limits on port 22.",
        remediation_role="zoning",
        remediation_tag="pg-zone-004",
    )
)
def brute_force_blocking(facts: HostFacts, ctx: HostContext) -> Outcome:
    state = unit(facts, "fail2ban")
    jails: list[str] = []
    f2b = facts.section("fail2ban")
    if f2b is not None and f2b.ok:
        for line in f2b.stdout.split("\n"):
            if "Jail list:" in line:
                jails = [j.strip() for j in line.split(":", 1)[1].split(",") if j.strip()]
    limited: set[int] = set()
    nft_note = ""
    try:
        limited = firewall(facts).rate_limited_ports()
    except FactUnavailable as exc:  # fail2ban alone can satisfy this control
        nft_note = str(exc)
    evidence = (
        ev("fail2ban.service", f"{state.enabled}/{state.active}"),
        ev("fail2ban jails", names(jails) or "none"),
        ev("rate-limited ports", names(str(p) for p in limited) or nft_note or "none"),
    )
    if state.running and "sshd" in jails:
        return Outcome.passed("fail2ban bans repeated SSH login failures", *evidence)
    if 22 in limited:
        return Outcome.passed("nftables rate-limits new SSH connections", *evidence)
    if state.running and f2b is not None and not f2b.ok:
        need(facts, "fail2ban")  # raises with the reason fail2ban-client gave
    return Outcome.failed("nothing blocks repeated SSH login attempts", *evidence)


CONTROLS = (firewall_default_deny, reachability_matches, admin_from_mgmt, brute_force_blocking)
