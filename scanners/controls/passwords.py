"""Password policy (Art. 35): quality, ageing, lockout, history and hashing.

Debian 12 reads PAM settings from /etc/pam.d/common-*; module arguments override the
/etc/security/*.conf files, so both are merged here in that order.
"""

from __future__ import annotations

from parcelguard.scanners.catalog import ControlMeta, control
from parcelguard.scanners.context import HostContext
from parcelguard.scanners.controls._common import ev, names
from parcelguard.scanners.facts import HostFacts
from parcelguard.scanners.hostdata import (
    PamLine,
    accounts,
    authorized_keys,
    human_accounts,
    login_defs,
    pam_module,
    security_conf,
    shadow,
)
from parcelguard.scanners.model import Outcome, Severity

AREA = "PWD"

STRONG_SCHEMES = frozenset({"$y$", "$gy$", "$6$", "$2b$", "$2y$", "$7$"})
STRONG_PAM_METHODS = frozenset({"yescrypt", "gost_yescrypt", "sha512", "blowfish"})
WEAK_PAM_METHODS = frozenset({"md5", "bigcrypt", "sha256"})


def _settings(conf: dict[str, str], lines: list[PamLine]) -> dict[str, str]:
    merged = dict(conf)
    for line in lines:
        for arg in line.args:
            key, _, value = arg.partition("=")
            merged[key] = value
    return merged


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@control(
    ControlMeta(
        id="PG-PWD-001",
        title="Passwords need at least 12 characters of 3 character classes, through PAM",
        area=AREA,
        articles=(35,),
        severity=Severity.HIGH,
        rationale="Art. 35 demands a high-security password strategy; pwquality enforces "
        "it only when common-password calls pam_pwquality.",
        evidence="pam_pwquality line in common-password; minlen, minclass and credits.",
        remediation_role="password_policy",
        remediation_tag="pg-pwd-001",
    )
)
def password_quality(facts: HostFacts, ctx: HostContext) -> Outcome:
    lines = pam_module(facts, "common-password", "pam_pwquality.so", "password")
    if not lines:
        return Outcome.failed("common-password does not call pam_pwquality")
    s = _settings(security_conf(facts, "pwquality"), lines)
    minlen = _int(s.get("minlen")) or 8  # libpwquality's built-in default
    minclass = _int(s.get("minclass")) or 0
    credits = sum(
        1 for k in ("dcredit", "ucredit", "lcredit", "ocredit") if (_int(s.get(k)) or 0) < 0
    )
    classes = max(minclass, credits)
    evidence = (ev("minlen", minlen), ev("required classes", classes))
    problems = []
    if minlen < ctx.settings.password_min_length:
        problems.append(f"minlen {minlen} < {ctx.settings.password_min_length}")
    if classes < ctx.settings.password_min_classes:
        problems.append(f"{classes} character class(es) < {ctx.settings.password_min_classes}")
    if problems:
        return Outcome.failed("; ".join(problems), *evidence)
    return Outcome.passed("pwquality enforces length and character classes", *evidence)


@control(
    ControlMeta(
        id="PG-PWD-002",
        title="Passwords expire within 90 days and cannot change more than once a day",
        area=AREA,
        articles=(35,),
        severity=Severity.MEDIUM,
        rationale="Art. 35 requires passwords to be changed regularly; login.defs only "
        "applies to new accounts, so existing human accounts are checked in shadow too.",
        evidence="PASS_MAX_DAYS and PASS_MIN_DAYS; human accounts whose shadow ageing "
        "exceeds them.",
        remediation_role="password_policy",
        remediation_tag="pg-pwd-002",
    )
)
def password_ageing(facts: HostFacts, ctx: HostContext) -> Outcome:
    defs = login_defs(facts)
    max_days = _int(defs.get("PASS_MAX_DAYS"))
    min_days = _int(defs.get("PASS_MIN_DAYS"))
    limit_max, limit_min = ctx.settings.password_max_days, ctx.settings.password_min_days
    evidence = [ev("PASS_MAX_DAYS", max_days), ev("PASS_MIN_DAYS", min_days)]
    problems = []
    if max_days is None or max_days > limit_max:
        problems.append(f"PASS_MAX_DAYS {max_days} > {limit_max}")
    if min_days is None or min_days < limit_min:
        problems.append(f"PASS_MIN_DAYS {min_days} < {limit_min}")
    entries = shadow(facts)
    humans = human_accounts(accounts(facts), entries, authorized_keys(facts), ctx.settings)
    stale = []
    for a in humans:
        e = entries.get(a.name)
        if e is None or e.state != "usable":
            continue
        if e.max_days is None or e.max_days > limit_max or (e.min_days or 0) < limit_min:
            stale.append(a.name)
            evidence.append(ev(a.name, f"min {e.min_days} max {e.max_days}"))
    if stale:
        problems.append(f"account ageing too loose: {names(stale)}")
    if problems:
        return Outcome.failed("; ".join(problems), *evidence)
    return Outcome.passed("password ageing is enforced", *evidence)


@control(
    ControlMeta(
        id="PG-PWD-003",
        title="Accounts lock after at most 5 failed logins",
        area=AREA,
        articles=(35,),
        severity=Severity.MEDIUM,
        rationale="Lockout stops online guessing of passwords.",
        evidence="pam_faillock lines in common-auth and the effective deny value.",
        remediation_role="password_policy",
        remediation_tag="pg-pwd-003",
    )
)
def faillock(facts: HostFacts, ctx: HostContext) -> Outcome:
    lines = pam_module(facts, "common-auth", "pam_faillock.so", "auth")
    if not lines:
        return Outcome.failed("common-auth does not call pam_faillock")
    if not any(line.arg("preauth") is not None for line in lines) or not any(
        line.arg("authfail") is not None for line in lines
    ):
        return Outcome.failed("pam_faillock lacks its preauth or authfail line")
    s = _settings(security_conf(facts, "faillock"), lines)
    deny = _int(s.get("deny")) if "deny" in s else 3  # pam_faillock's built-in default
    evidence = ev("deny", deny)
    if deny is None or not 1 <= deny <= ctx.settings.faillock_max_deny:
        return Outcome.failed(
            f"faillock deny={deny}, want 1..{ctx.settings.faillock_max_deny}", evidence
        )
    return Outcome.passed(f"accounts lock after {deny} failures", evidence)


@control(
    ControlMeta(
        id="PG-PWD-004",
        title="The last 5 passwords cannot be reused",
        area=AREA,
        articles=(35,),
        severity=Severity.LOW,
        rationale="Regular change means little if the old password comes straight back.",
        evidence="pam_pwhistory (or pam_unix) remember value in common-password.",
        remediation_role="password_policy",
        remediation_tag="pg-pwd-004",
    )
)
def password_history(facts: HostFacts, ctx: HostContext) -> Outcome:
    want = ctx.settings.pwhistory_min_remember
    hist = pam_module(facts, "common-password", "pam_pwhistory.so", "password")
    unix = pam_module(facts, "common-password", "pam_unix.so", "password")
    remember: int | None = None
    if hist:
        s = _settings(security_conf(facts, "pwhistory"), hist)
        remember = _int(s.get("remember")) if "remember" in s else 10  # pam_pwhistory default
    for line in unix:
        value = _int(line.arg("remember"))
        if value is not None:
            remember = max(remember or 0, value)
    evidence = ev("remember", remember)
    if remember is None:
        return Outcome.failed("no password history is kept")
    if remember < want:
        return Outcome.failed(
            f"only {remember} old passwords are remembered (want {want})", evidence
        )
    return Outcome.passed(f"{remember} old passwords are remembered", evidence)


@control(
    ControlMeta(
        id="PG-PWD-005",
        title="Passwords are hashed with yescrypt or SHA-512 and no weak hash remains",
        area=AREA,
        articles=(35,),
        severity=Severity.HIGH,
        rationale="MD5 and DES crypt hashes fall to offline cracking within hours.",
        evidence="ENCRYPT_METHOD, the pam_unix method, and hash schemes found in shadow.",
        remediation_role="password_policy",
        remediation_tag="pg-pwd-005",
    )
)
def password_hashing(facts: HostFacts, ctx: HostContext) -> Outcome:
    method = login_defs(facts).get("ENCRYPT_METHOD", "DES").upper()
    unix = pam_module(facts, "common-password", "pam_unix.so", "password")
    pam_methods = {
        a for line in unix for a in line.args if a in STRONG_PAM_METHODS | WEAK_PAM_METHODS
    }
    weak_hashes = [
        e.name
        for e in shadow(facts).values()
        if e.scheme != "none" and e.scheme not in STRONG_SCHEMES
    ]
    evidence = [ev("ENCRYPT_METHOD", method), ev("pam_unix", names(pam_methods) or "login.defs")]
    problems = []
    if method not in ("YESCRYPT", "SHA512", "GOST_YESCRYPT"):
        problems.append(f"ENCRYPT_METHOD {method}")
    if pam_methods & WEAK_PAM_METHODS or not unix:
        problems.append(f"pam_unix method {names(pam_methods) or 'missing'}")
    if weak_hashes:
        problems.append(f"weak hashes for {names(weak_hashes)}")
        evidence.append(ev("weak hashes", names(weak_hashes)))
    if problems:
        return Outcome.failed("; ".join(problems), *evidence)
    return Outcome.passed("strong password hashing everywhere", *evidence)


CONTROLS = (password_quality, password_ageing, faillock, password_history, password_hashing)
