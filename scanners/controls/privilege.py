"""Least privilege and separation of authority (Art. 34)."""

from __future__ import annotations

from collections import Counter

from parcelguard.scanners.catalog import ControlMeta, control
from parcelguard.scanners.context import HostContext
from parcelguard.scanners.controls._common import ev, names
from parcelguard.scanners.facts import HostFacts
from parcelguard.scanners.hostdata import accounts, group_members, groups, sudoers
from parcelguard.scanners.model import Outcome, Severity

AREA = "PRIV"


@control(
    ControlMeta(
        id="PG-PRIV-001",
        title="Only the designated role groups are granted sudo",
        area=AREA,
        articles=(34,),
        severity=Severity.HIGH,
        rationale="Art. 34 asks for minimum authority: administrative rights come from "
        "membership of netadmin, secadmin or auditor, never from a personal rule.",
        evidence="sudoers rules that name users or groups outside the role groups; groups "
        "granted sudo that have members.",
        remediation_role="least_privilege",
        remediation_tag="pg-priv-001",
    )
)
def sudo_groups_only(facts: HostFacts, ctx: HostContext) -> Outcome:
    sudo = sudoers(facts)
    allowed = {f"%{g}" for g in ctx.settings.sudo_groups} | {"root"}
    bad = []
    for rule in sudo.rules:
        for who in rule.users:
            for name in sudo.expand(who):
                if name in allowed:
                    continue
                # Debian's stock "%sudo ALL=(ALL:ALL) ALL" grants nothing while the
                # group is empty; it counts once someone is in the group.
                if name.startswith("%") and not group_members(facts, name[1:]):
                    continue
                bad.append((name, rule.file))
    evidence = [ev(f"rule in {f}", n) for n, f in bad[:20]]
    if bad:
        return Outcome.failed(f"sudo granted to {names(n for n, _ in bad)}", *evidence)
    return Outcome.passed("sudo is granted only to the role groups", ev("rules", len(sudo.rules)))


@control(
    ControlMeta(
        id="PG-PRIV-002",
        title="No sudo rule grants all commands without a password",
        area=AREA,
        articles=(34,),
        severity=Severity.CRITICAL,
        rationale="NOPASSWD: ALL turns any foothold in the account into root without a "
        "second factor or a record of authorisation.",
        evidence="sudoers files and users of NOPASSWD: ALL rules and !authenticate defaults.",
        remediation_role="least_privilege",
        remediation_tag="pg-priv-002",
    )
)
def no_nopasswd_all(facts: HostFacts, ctx: HostContext) -> Outcome:
    sudo = sudoers(facts)
    bad = [f"{','.join(r.users)} in {r.file}" for r in sudo.rules if r.nopasswd_all]
    bad += [f"'{d}'" for d in sudo.defaults if "!authenticate" in d.replace(" ", "")]
    if bad:
        return Outcome.failed(
            f"passwordless root: {names(bad)}", *(ev("rule", b) for b in bad[:20])
        )
    return Outcome.passed("every sudo rule asks for a password", ev("rules", len(sudo.rules)))


@control(
    ControlMeta(
        id="PG-PRIV-003",
        title="The netadmin, secadmin and auditor groups exist and share no member",
        area=AREA,
        articles=(34,),
        severity=Severity.MEDIUM,
        rationale="Art. 34 separates authority: the network administrator maintains, the "
        "security administrator authorises and the auditor audits; one person must not "
        "hold two of these roles.",
        evidence="Role groups present and members found in more than one of them.",
        remediation_role="least_privilege",
        remediation_tag="pg-priv-003",
    )
)
def role_groups(facts: HostFacts, ctx: HostContext) -> Outcome:
    present = groups(facts)
    missing = [g for g in ctx.settings.sudo_groups if g not in present]
    counts: Counter[str] = Counter()
    for g in ctx.settings.sudo_groups:
        counts.update(group_members(facts, g))
    doubled = [m for m, n in counts.items() if n > 1]
    evidence = [
        ev(g, names(group_members(facts, g)) or "no members")
        for g in ctx.settings.sudo_groups
        if g in present
    ]
    if missing:
        return Outcome.failed(f"missing role group(s): {names(missing)}", *evidence)
    if doubled:
        return Outcome.failed(f"in more than one role group: {names(doubled)}", *evidence)
    return Outcome.passed("role groups exist and are disjoint", *evidence)


@control(
    ControlMeta(
        id="PG-PRIV-004",
        title="Only root has UID 0 and no UID is shared",
        area=AREA,
        articles=(34,),
        severity=Severity.CRITICAL,
        rationale="A second UID 0 is a hidden root; shared UIDs make audit records "
        "unattributable.",
        evidence="Accounts with UID 0 and UIDs held by more than one account.",
        remediation_role="least_privilege",
        remediation_tag="pg-priv-004",
    )
)
def unique_root(facts: HostFacts, ctx: HostContext) -> Outcome:
    accts = accounts(facts)
    extra_root = [a.name for a in accts if a.uid == 0 and a.name != "root"]
    uids = Counter(a.uid for a in accts)
    shared = [f"{a.name} ({a.uid})" for a in accts if uids[a.uid] > 1 and a.uid != 0]
    evidence = [ev("UID 0", names(a.name for a in accts if a.uid == 0))]
    if shared:
        evidence.append(ev("shared UIDs", names(shared)))
    if extra_root:
        return Outcome.failed(f"second UID 0 account(s): {names(extra_root)}", *evidence)
    if shared:
        return Outcome.failed(f"shared UIDs: {names(shared)}", *evidence)
    return Outcome.passed("root is the only UID 0 and every UID is unique", *evidence)


@control(
    ControlMeta(
        id="PG-PRIV-005",
        title="sudo records every session",
        area=AREA,
        articles=(34, 37),
        severity=Severity.MEDIUM,
        rationale="The auditor can only audit the administrator's maintenance work if sudo "
        "logs it: I/O logging, a log file, or an explicit syslog facility.",
        evidence="sudoers Defaults lines that configure logging.",
        remediation_role="least_privilege",
        remediation_tag="pg-priv-005",
    )
)
def sudo_logging(facts: HostFacts, ctx: HostContext) -> Outcome:
    items = []
    for d in sudoers(facts).defaults:
        parts = d.split(None, 1)
        if len(parts) == 2:
            items += [i.strip() for i in parts[1].split(",") if i.strip()]
    keys = ("log_output", "log_input", "logfile", "syslog")
    logging = [i for i in items if i.split("=", 1)[0].strip() in keys]
    evidence = [ev("Defaults", i) for i in items if i.lstrip("!").split("=", 1)[0].strip() in keys]
    if not logging:
        if "!syslog" in items:
            return Outcome.failed("sudo logging is switched off (!syslog)", *evidence)
        return Outcome.failed("no sudoers Defaults configure session logging", *evidence)
    return Outcome.passed(f"sudo sessions are logged ({names(logging, 4)})", *evidence)


CONTROLS = (sudo_groups_only, no_nopasswd_all, role_groups, unique_root, sudo_logging)
