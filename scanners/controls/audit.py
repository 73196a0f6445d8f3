"""Audit of bulk operations and log keeping (Art. 33, 37)."""

from __future__ import annotations

import re
import shlex

from parcelguard.scanners.catalog import ControlMeta, control
from parcelguard.scanners.context import HostContext
from parcelguard.scanners.controls._common import ev, names
from parcelguard.scanners.facts import HostFacts, need
from parcelguard.scanners.hostdata import (
    ini_values,
    logrotate_days,
    pg_running,
    pg_settings,
    split_files,
    tab_rows,
    timespan_days,
    unit,
)
from parcelguard.scanners.model import Outcome, Severity

AREA = "AUD"

PGAUDIT_CLASSES = frozenset({"read", "write", "function", "role", "ddl", "misc", "misc_set"})


def _rule_paths(lines: list[str]) -> list[tuple[str, str]]:
    """(path, permissions) of every watch (-w) or path/dir filter in audit rules."""
    result = []
    for line in lines:
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        perms = ""
        paths: list[str] = []
        for i, w in enumerate(words):
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if w == "-w":
                paths.append(nxt)
            elif w == "-p":
                perms = nxt
            elif w == "-F" and nxt.startswith(("path=", "dir=")):
                paths.append(nxt.split("=", 1)[1])
            elif w == "-F" and nxt.startswith("perm="):
                perms = nxt.split("=", 1)[1]
        result += [(p.rstrip("/") or "/", perms) for p in paths]
    return result


def _covered(rules: list[tuple[str, str]], paths: tuple[str, ...], perm: str) -> bool:
    for watched, perms in rules:
        for p in paths:
            inside = p == watched or p.startswith(watched + "/")
            if inside and (not perms or perm in perms):
                return True
    return False


@control(
    ControlMeta(
        id="PG-AUD-001",
        title="Audit rules on user-data paths and export tools are configured and loaded",
        area=AREA,
        articles=(37, 33),
        severity=Severity.HIGH,
        rationale="Art. 37 requires a record of who exported, copied or destroyed user "
        "information, when and where: the kernel audit trail of reads on data paths and "
        "executions of export tools.",
        evidence="Data paths and export tools present; which lack a rule in "
        "/etc/audit/rules.d; whether the kernel has the rules loaded (auditctl -l).",
        remediation_role="audit_logging",
        remediation_tag="pg-aud-001",
    )
)
def audit_rules(facts: HostFacts, ctx: HostContext) -> Outcome:
    data = [r[1] for r in tab_rows(need(facts, "data-paths").stdout, 3) if r[0] == "top"]
    tools = [(r[1], r[2]) for r in tab_rows(need(facts, "export-tools").stdout, 3)]
    config_lines = [
        line for lines in split_files(need(facts, "audit-rules").stdout).values() for line in lines
    ]
    config = _rule_paths(config_lines)
    targets = [(p, (p,), "r") for p in data] + [(p, (p, real), "x") for p, real in tools]
    missing = [name for name, paths, perm in targets if not _covered(config, paths, perm)]
    evidence = [ev("data paths", names(data) or "none"), ev("export tools", len(tools))]
    if missing:
        evidence.append(ev("no audit rule", names(missing, 20)))
        return Outcome.failed(f"no audit rule for {names(missing, 5)}", *evidence)
    live = facts.section("auditctl")
    if live is None or not live.complete:
        return Outcome.error("auditctl output missing", *evidence)
    if live.rc != 0:
        reason = live.first_error_line() or f"auditctl rc {live.rc}"
        if "not in kernel" in reason or "rc 127" in reason or live.stdout.strip() == "absent":
            reason = f"kernel audit not available ({reason})"
        return Outcome.error(reason, *evidence)
    loaded = _rule_paths([line for line in live.stdout.split("\n") if line.strip()])
    unloaded = [name for name, paths, perm in targets if not _covered(loaded, paths, perm)]
    if unloaded:
        evidence.append(ev("configured, not loaded", names(unloaded, 20)))
        return Outcome.failed(f"rules not loaded in the kernel for {names(unloaded, 5)}", *evidence)
    return Outcome.passed("every data path and export tool is audited", *evidence)


def pgaudit_classes(value: str) -> set[str]:
    """The statement classes a ``pgaudit.log`` value enables (``all, -misc`` style)."""
    classes: set[str] = set()
    for item in value.lower().replace("'", "").split(","):
        item = item.strip()
        sign = item.startswith("-")
        name = item.lstrip("-").strip()
        members = PGAUDIT_CLASSES if name == "all" else {name} & PGAUDIT_CLASSES
        classes = classes - members if sign else classes | members
    return classes


@control(
    ControlMeta(
        id="PG-AUD-002",
        title="pgaudit logs reads and writes on the waybill database",
        area=AREA,
        articles=(37,),
        severity=Severity.HIGH,
        rationale="Bulk exports through SQL (COPY, SELECT of whole tables) leave no "
        "trace in file audit; pgaudit records who ran which statement.",
        evidence="shared_preload_libraries; pgaudit.log globally and per database.",
        remediation_role="audit_logging",
        remediation_tag="pg-aud-002",
    )
)
def pgaudit(facts: HostFacts, ctx: HostContext) -> Outcome:
    if pg_running(facts) is False:
        return Outcome.not_applicable("PostgreSQL is not running on this host")
    settings = pg_settings(facts)
    if not settings:
        return Outcome.error("pg_settings returned nothing")
    preload = [x.strip() for x in settings.get("shared_preload_libraries", "").split(",")]
    db = ctx.settings.waybill_database
    effective = settings.get("pgaudit.log", "")
    source = "global"
    for row in tab_rows(need(facts, "pg-databases").stdout, 4):
        if row[0] == "setting" and row[1] == db and row[2] == "*":
            for item in row[3].split(";"):
                if item.startswith("pgaudit.log="):
                    effective, source = item.split("=", 1)[1], f"database {db}"
    classes = pgaudit_classes(effective)
    evidence = (
        ev("shared_preload_libraries", ",".join(p for p in preload if p) or "none"),
        ev(f"pgaudit.log ({source})", effective or "unset"),
    )
    if "pgaudit" not in preload:
        return Outcome.failed("pgaudit is not loaded (shared_preload_libraries)", *evidence)
    if not {"read", "write"} <= classes:
        return Outcome.failed(f"pgaudit.log does not cover read and write on {db}", *evidence)
    return Outcome.passed(f"pgaudit logs read and write on {db} ({source})", *evidence)


@control(
    ControlMeta(
        id="PG-AUD-003",
        title="Logs are kept for at least 180 days",
        area=AREA,
        articles=(33, 37),
        severity=Severity.MEDIUM,
        rationale="Internal audit (Art. 33) and investigation of leaks need history; the "
        "Cybersecurity Law requires network logs to be kept for six months.",
        evidence="logrotate policy of /var/log/auth.log; journald MaxRetentionSec; "
        "auditd log actions.",
        remediation_role="audit_logging",
        remediation_tag="pg-aud-003",
    )
)
def log_retention(facts: HostFacts, ctx: HostContext) -> Outcome:
    want = ctx.settings.log_retention_days
    days, how = logrotate_days(split_files(need(facts, "logrotate").stdout), "/var/log/auth.log")
    journald = ini_values(
        line
        for path, lines in split_files(need(facts, "journald").stdout).items()
        if path
        for line in lines
    )
    retention = (
        timespan_days(journald.get("MaxRetentionSec", ""))
        if "MaxRetentionSec" in journald
        else None
    )
    auditd = ini_values(
        line for lines in split_files(need(facts, "auditd-conf").stdout).values() for line in lines
    )
    evidence = [
        ev("auth.log rotation", how),
        ev("journald MaxRetentionSec", journald.get("MaxRetentionSec", "unset")),
    ]
    if auditd:
        evidence.append(ev("auditd max_log_file_action", auditd.get("max_log_file_action", "?")))
    problems = []
    if days is None or days < want:
        problems.append(
            f"auth.log kept {days if days is not None else 'an unknown number of'} days"
        )
    if retention is not None and 0 < retention < want:
        problems.append(f"journald deletes entries after {retention:.0f} days")
    if problems:
        return Outcome.failed("; ".join(problems) + f" (want {want})", *evidence)
    return Outcome.passed(f"auth.log is kept {days} days (want {want})", *evidence)


_OMFWD = re.compile(r"action\s*\(([^)]*)\)", re.IGNORECASE | re.DOTALL)
_PARAM = re.compile(r'([\w.]+)\s*=\s*"([^"]*)"')


@control(
    ControlMeta(
        id="PG-AUD-004",
        title="Logs are forwarded to a central log server over authenticated TLS",
        area=AREA,
        articles=(37, 33),
        severity=Severity.MEDIUM,
        rationale="An intruder or insider with root can erase local logs; a copy on the "
        "log server keeps the evidence, and TLS keeps user details in logs encrypted.",
        evidence="rsyslog state; omfwd actions and legacy @@ rules with their stream "
        "driver mode and authentication mode.",
        remediation_role="audit_logging",
        remediation_tag="pg-aud-004",
    )
)
def log_forwarding(facts: HostFacts, ctx: HostContext) -> Outcome:
    state = unit(facts, "rsyslog")
    text = "\n".join(
        line for lines in split_files(need(facts, "rsyslog").stdout).values() for line in lines
    )
    global_driver = ""
    if m := re.search(r'DefaultNetstreamDriver\s*=?\s*"?(\w+)', text):
        global_driver = m.group(1).lower()
    forwards, secure = [], []
    for m in _OMFWD.finditer(text):
        params = {k.lower(): v for k, v in _PARAM.findall(m.group(1))}
        if params.get("type", "").lower() != "omfwd":
            continue
        target = params.get("target", "?")
        forwards.append(target)
        driver = params.get("streamdriver", global_driver).lower()
        mode = params.get("streamdrivermode", "0")
        auth = params.get("streamdriverauthmode", "anon").lower()
        if driver in ("gtls", "ossl") and mode == "1" and auth.startswith("x509/"):
            secure.append(target)
    legacy = re.findall(r"^\S+\s+@@?(?:\([^)]*\))?([\w.\-\[\]:]+)", text, re.MULTILINE)
    legacy_tls = (
        global_driver in ("gtls", "ossl")
        and re.search(r"ActionSendStreamDriverMode\s+1", text) is not None
        and re.search(r"ActionSendStreamDriverAuthMode\s+x509/", text) is not None
    )
    for target in legacy:
        forwards.append(target)
        if legacy_tls:
            secure.append(target)
    evidence = [ev("rsyslog.service", f"{state.enabled}/{state.active}")]
    evidence += [
        ev("forward", f"{t} ({'TLS' if t in secure else 'clear or unauthenticated'})")
        for t in forwards
    ]
    if not state.running:
        return Outcome.failed("rsyslog is not running: nothing is forwarded", *evidence)
    if not forwards:
        return Outcome.failed("no log forwarding is configured", *evidence)
    insecure = [t for t in forwards if t not in secure]
    if insecure:
        return Outcome.failed(
            f"logs leave without authenticated TLS to {names(insecure)}", *evidence
        )
    return Outcome.passed(f"logs are forwarded over TLS to {names(secure)}", *evidence)


CONTROLS = (audit_rules, pgaudit, log_retention, log_forwarding)
