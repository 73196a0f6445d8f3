"""Departed staff (Art. 38): every trace of access by people not on the staff roster.

Locking a password is not enough on Debian: with UsePAM, key logins continue until the
account is expired; cron jobs, at jobs, lingering user units and running processes
survive both. Each of these is a separate control so a report shows which step was
missed.
"""

from __future__ import annotations

from parcelguard.scanners.catalog import ControlMeta, control
from parcelguard.scanners.context import HostContext
from parcelguard.scanners.controls._common import ev, names
from parcelguard.scanners.facts import HostFacts, need
from parcelguard.scanners.hostdata import (
    Account,
    accounts,
    at_jobs,
    authorized_keys,
    crontabs,
    disabled,
    group_members,
    human_accounts,
    processes,
    shadow,
    sudoers,
)
from parcelguard.scanners.model import Outcome, Severity

AREA = "STAFF"
NO_ROSTER = "no staff roster supplied"


def _departed(facts: HostFacts, ctx: HostContext, roster: frozenset[str]) -> list[Account]:
    """Human accounts whose user is not on the active-staff roster."""
    humans = human_accounts(accounts(facts), shadow(facts), authorized_keys(facts), ctx.settings)
    return [a for a in humans if a.name not in roster]


def _meta(cid: str, title: str, rationale: str, evidence: str, severity: Severity) -> ControlMeta:
    return ControlMeta(
        id=cid,
        title=title,
        area=AREA,
        articles=(38,),
        severity=severity,
        rationale=rationale,
        evidence=evidence,
        remediation_role="account_revocation",
        remediation_tag=cid.lower(),
    )


@control(
    _meta(
        "PG-STAFF-001",
        "Every human account not on the staff roster is locked and expired",
        "Art. 38 requires the accounts of departed staff to be deleted or disabled in "
        "time; only lock plus expiry stops both password and key logins.",
        "Human accounts (UID 1000-59999, or with a login shell and credentials) that are "
        "not on the roster, with their lock and expiry state.",
        Severity.CRITICAL,
    )
)
def departed_disabled(facts: HostFacts, ctx: HostContext) -> Outcome:
    if ctx.roster is None:
        return Outcome.error(NO_ROSTER)
    entries = shadow(facts)
    departed = _departed(facts, ctx, ctx.roster)
    active = [a.name for a in departed if not disabled(entries.get(a.name), ctx.now)]
    evidence = [ev("not on roster", names((a.name for a in departed), 30) or "none")]
    for a in departed:
        e = entries.get(a.name)
        state = "no shadow entry" if e is None else e.state
        expired = e is not None and e.expired(ctx.now)
        evidence.append(ev(a.name, f"{state}, {'expired' if expired else 'not expired'}"))
    if active:
        return Outcome.failed(
            f"usable account(s) of people not on the roster: {names(active)}", *evidence
        )
    return Outcome.passed("every account outside the roster is locked and expired", *evidence)


@control(
    _meta(
        "PG-STAFF-002",
        "Accounts of people not on the roster hold no SSH keys",
        "A key left in authorized_keys is a standing invitation; removing it is part of "
        "offboarding even after the account is expired.",
        "Accounts not on the roster with authorized_keys entries and the key count.",
        Severity.HIGH,
    )
)
def departed_keys(facts: HostFacts, ctx: HostContext) -> Outcome:
    if ctx.roster is None:
        return Outcome.error(NO_ROSTER)
    keys = authorized_keys(facts)
    holders = [a.name for a in _departed(facts, ctx, ctx.roster) if keys.get(a.name)]
    evidence = [ev(n, f"{len(keys[n])} key(s)") for n in holders]
    if holders:
        return Outcome.failed(f"SSH keys remain for {names(holders)}", *evidence)
    return Outcome.passed("no account outside the roster holds SSH keys")


@control(
    _meta(
        "PG-STAFF-003",
        "No sudo rule or sudo-granting group names a person not on the roster",
        "Administrative rights of departed staff must be withdrawn with their account; a "
        "left-over rule revives them when a name is reused.",
        "sudoers rules naming users outside the roster; members of sudo-granting groups "
        "outside the roster.",
        Severity.HIGH,
    )
)
def departed_sudo(facts: HostFacts, ctx: HostContext) -> Outcome:
    if ctx.roster is None:
        return Outcome.error(NO_ROSTER)
    roster = ctx.roster
    system = set(ctx.settings.system_accounts)
    sudo = sudoers(facts)
    found: list[str] = []
    sudo_groups = set(ctx.settings.sudo_groups)
    for rule in sudo.rules:
        for who in rule.users:
            for name in sudo.expand(who):
                if name.startswith("%"):
                    sudo_groups.add(name[1:])
                elif name not in roster and name not in system and name != "ALL":
                    found.append(f"{name} (rule in {rule.file})")
    for group in sorted(sudo_groups):
        for member in group_members(facts, group):
            if member not in roster and member not in system:
                found.append(f"{member} (member of {group})")
    if found:
        return Outcome.failed(
            f"sudo rights remain for people not on the roster: {names(found)}",
            *(ev("sudo", f) for f in found[:20]),
        )
    return Outcome.passed("sudo names only people on the roster")


@control(
    _meta(
        "PG-STAFF-004",
        "No cron job, at job or lingering user service belongs to a person not on the roster",
        "Scheduled jobs survive lock, expiry and key removal; a departed employee's job "
        "can keep copying waybill exports.",
        "Owners outside the roster of crontabs, at jobs and lingering systemd users, with "
        "job counts.",
        Severity.HIGH,
    )
)
def departed_jobs(facts: HostFacts, ctx: HostContext) -> Outcome:
    if ctx.roster is None:
        return Outcome.error(NO_ROSTER)
    roster = ctx.roster
    departed = {a.name for a in _departed(facts, ctx, roster)}
    known = {a.name for a in accounts(facts)}

    def suspect(user: str) -> bool:
        # A job whose owner has no account any more is a departed person's too.
        return user in departed or (user not in known and user not in roster)

    found = [
        f"crontab of {u} ({len(lines)} line(s))"
        for u, lines in crontabs(facts).items()
        if suspect(u)
    ]
    found += [f"at job {job} of {u}" for job, u in at_jobs(facts) if suspect(u)]
    linger = need(facts, "linger").stdout.split()
    found += [f"lingering user {u}" for u in linger if suspect(u)]
    if found:
        return Outcome.failed(
            f"{len(found)} scheduled job(s) of people not on the roster",
            *(ev("job", f) for f in found[:20]),
        )
    return Outcome.passed("no scheduled job belongs to someone outside the roster")


@control(
    _meta(
        "PG-STAFF-005",
        "No process runs as a person not on the roster",
        "Sessions and processes outlive account locks until they are killed.",
        "Users outside the roster with running processes, process counts and commands.",
        Severity.HIGH,
    )
)
def departed_processes(facts: HostFacts, ctx: HostContext) -> Outcome:
    if ctx.roster is None:
        return Outcome.error(NO_ROSTER)
    departed = {a.name for a in _departed(facts, ctx, ctx.roster)}
    running: dict[str, list[str]] = {}
    for user, _pid, comm in processes(facts):
        if user in departed:
            running.setdefault(user, []).append(comm)
    if running:
        return Outcome.failed(
            f"processes still run as {names(running)}",
            *(ev(u, f"{len(c)} process(es): {names(c, 5)}") for u, c in running.items()),
        )
    return Outcome.passed("no process runs as someone outside the roster")


CONTROLS = (departed_disabled, departed_keys, departed_sudo, departed_jobs, departed_processes)
