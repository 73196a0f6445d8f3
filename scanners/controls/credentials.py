"""Default credentials (Art. 31): system accounts, databases and services."""

from __future__ import annotations

from parcelguard.scanners.catalog import ControlMeta, control
from parcelguard.scanners.context import HostContext
from parcelguard.scanners.controls._common import ev, names
from parcelguard.scanners.facts import HostFacts, need
from parcelguard.scanners.hostdata import (
    accounts,
    authorized_keys,
    disabled,
    login_attempts,
    pg_running,
    service_absent,
    shadow,
    tab_rows,
    unit,
)
from parcelguard.scanners.model import Outcome, Severity

AREA = "CRED"


@control(
    ControlMeta(
        id="PG-CRED-001",
        title="No account has an empty password",
        area=AREA,
        articles=(31, 35),
        severity=Severity.CRITICAL,
        rationale="An empty password lets anyone log in where PAM allows nullok.",
        evidence="Names of accounts whose shadow password field is empty.",
        remediation_role="default_credentials",
        remediation_tag="pg-cred-001",
    )
)
def no_empty_passwords(facts: HostFacts, ctx: HostContext) -> Outcome:
    empty = [e.name for e in shadow(facts).values() if e.state == "empty"]
    if empty:
        return Outcome.failed(f"empty password on {names(empty)}", ev("accounts", names(empty)))
    return Outcome.passed("no account has an empty password")


@control(
    ControlMeta(
        id="PG-CRED-002",
        title="No account uses a known default password or its own name as password",
        area=AREA,
        articles=(31,),
        severity=Severity.CRITICAL,
        rationale="Vendor and first-boot passwords are public; Art. 31 forbids them.",
        evidence="Accounts whose hash a known default reproduces (the candidate's index, "
        "never the password); computed on the host with the hash's own salt.",
        remediation_role="default_credentials",
        remediation_tag="pg-cred-002",
    )
)
def no_default_passwords(facts: HostFacts, ctx: HostContext) -> Outcome:
    entries = shadow(facts).values()
    hits = [e for e in entries if e.match not in ("-", "?")]
    unknown = [e.name for e in entries if e.match == "?"]
    evidence = [
        ev(e.name, "own name" if e.match == "u" else f"default candidate #{e.match}") for e in hits
    ]
    if hits:
        locked = [e.name for e in hits if e.state == "locked"]
        note = f" ({names(locked)} locked, but unlocking restores it)" if locked else ""
        return Outcome.failed(f"default password on {names(e.name for e in hits)}{note}", *evidence)
    if unknown:
        return Outcome.error(f"hash scheme not verifiable on the host for {names(unknown)}")
    return Outcome.passed("no password hash matches a known default")


@control(
    ControlMeta(
        id="PG-CRED-003",
        title="Vendor default accounts are absent or locked and expired",
        area=AREA,
        articles=(31,),
        severity=Severity.HIGH,
        rationale="Accounts such as 'support' or 'admin' come with documented passwords "
        "and keys; a lock alone still admits SSH keys, expiry stops them.",
        evidence="Vendor-named accounts present, their lock and expiry state and key count.",
        remediation_role="default_credentials",
        remediation_tag="pg-cred-003",
    )
)
def vendor_accounts(facts: HostFacts, ctx: HostContext) -> Outcome:
    present = [a for a in accounts(facts) if a.name in ctx.settings.vendor_accounts]
    if not present:
        return Outcome.passed("no vendor default account exists")
    entries = shadow(facts)
    keys = authorized_keys(facts)
    evidence = []
    open_accounts = []
    for a in present:
        entry = entries.get(a.name)
        state = entry.state if entry else "no shadow entry"
        expired = bool(entry and entry.expired(ctx.now))
        evidence.append(
            ev(
                a.name,
                f"{state}, {'expired' if expired else 'not expired'}, "
                f"{len(keys.get(a.name, []))} key(s)",
            )
        )
        if not disabled(entry, ctx.now):
            open_accounts.append(a.name)
    if open_accounts:
        return Outcome.failed(f"usable vendor account(s): {names(open_accounts)}", *evidence)
    return Outcome.passed("vendor accounts are locked and expired", *evidence)


def _login_outcome(
    facts: HostFacts, section: str, service: str, running: bool | None, first: str
) -> Outcome:
    """Judge a section of bounded login attempts (``label<TAB>outcome`` rows)."""
    sec = facts.section(section)
    if sec is not None and sec.complete and service_absent(sec):
        return Outcome.not_applicable(f"{service} client is not installed")
    sec = need(facts, section)
    rows = login_attempts(sec)
    evidence = [ev("attempts", len(rows))]
    accepted = [label for label, outcome in rows if outcome == "accepted"]
    if accepted:
        if first in accepted:
            what = "a random password" if first == "r" else "no password"
            return Outcome.failed(f"{service} accepts {what}", *evidence)
        return Outcome.failed(
            f"{service} accepts default password candidate(s) #{', #'.join(accepted)}",
            *evidence,
        )
    outcomes = {outcome for _, outcome in rows}
    if not rows or outcomes & {"unreachable", "timeout", "other"}:
        if running is False:
            return Outcome.not_applicable(f"{service} is not running on this host")
        return Outcome.error(
            f"{service} login could not be tried ({names(outcomes) or 'no attempts'})", *evidence
        )
    return Outcome.passed(f"{service} refused every default password", *evidence)


def _login_meta(cid: str, service: str, severity: Severity = Severity.CRITICAL) -> ControlMeta:
    return ControlMeta(
        id=cid,
        title=f"{service} refuses default and empty passwords",
        area=AREA,
        articles=(31,),
        severity=severity,
        rationale=f"Default {service} superuser passwords give the whole database of "
        "user information to anyone who can connect.",
        evidence="Outcome of each bounded login attempt over 127.0.0.1 by candidate index "
        "(accepted/denied/unreachable), never the password.",
        remediation_role="default_credentials",
        remediation_tag=cid.lower(),
    )


@control(_login_meta("PG-CRED-004", "PostgreSQL"))
def postgres_defaults(facts: HostFacts, ctx: HostContext) -> Outcome:
    return _login_outcome(facts, "pg-login", "PostgreSQL", pg_running(facts), "r")


@control(_login_meta("PG-CRED-005", "MySQL/MariaDB"))
def mysql_defaults(facts: HostFacts, ctx: HostContext) -> Outcome:
    running = unit(facts, "mysql").running or unit(facts, "mariadb").running
    return _login_outcome(facts, "mysql-login", "MySQL/MariaDB", running, "none")


@control(_login_meta("PG-CRED-006", "Redis", Severity.HIGH))
def redis_defaults(facts: HostFacts, ctx: HostContext) -> Outcome:
    running = unit(facts, "redis-server").running
    return _login_outcome(facts, "redis-login", "Redis", running, "none")


@control(
    ControlMeta(
        id="PG-CRED-007",
        title="SNMP uses no default community string",
        area=AREA,
        articles=(31,),
        severity=Severity.HIGH,
        rationale="'public' and 'private' are the factory SNMP communities; they expose "
        "or even change the host's configuration.",
        evidence="Number of community lines in snmpd.conf and whether a default one is "
        "among them (never the line itself).",
        remediation_role="default_credentials",
        remediation_tag="pg-cred-007",
    )
)
def snmp_community(facts: HostFacts, ctx: HostContext) -> Outcome:
    sec = need(facts, "snmp")
    if sec.stdout.strip() == "absent":
        return Outcome.not_applicable("snmpd is not configured on this host")
    values = {r[0]: r[1] for r in tab_rows(sec.stdout, 2)}
    if "default-community" not in values or not values["default-community"].isdigit():
        return Outcome.error("snmpd.conf analysis not recognised")
    evidence = (
        ev("community lines", values.get("community-lines", "?")),
        ev("default communities", values["default-community"]),
    )
    if int(values["default-community"]) > 0:
        return Outcome.failed("snmpd accepts a default community ('public'/'private')", *evidence)
    return Outcome.passed("no default SNMP community is configured", *evidence)


CONTROLS = (
    no_empty_passwords,
    no_default_passwords,
    vendor_accounts,
    postgres_defaults,
    mysql_defaults,
    redis_defaults,
    snmp_community,
)
