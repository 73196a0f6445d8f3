"""Anti-virus (Art. 30): ClamAV installed, running, current, scanning, quarantining."""

from __future__ import annotations

from datetime import UTC, datetime

from parcelguard.scanners.catalog import ControlMeta, control
from parcelguard.scanners.context import HostContext
from parcelguard.scanners.controls._common import ev, names
from parcelguard.scanners.facts import HostFacts, need
from parcelguard.scanners.hostdata import split_files, tab_rows, unit
from parcelguard.scanners.model import Outcome, Severity

AREA = "AV"


@control(
    ControlMeta(
        id="PG-AV-001",
        title="ClamAV engine, daemon and signature updater are installed",
        area=AREA,
        articles=(30,),
        severity=Severity.HIGH,
        rationale="Art. 30 requires anti-virus software able to stop malicious code "
        "from damaging systems or leaking user information.",
        evidence="dpkg status and version of clamav, clamav-daemon, clamav-freshclam.",
        remediation_role="antivirus",
        remediation_tag="pg-av-001",
    )
)
def clamav_installed(facts: HostFacts, ctx: HostContext) -> Outcome:
    # dpkg-query exits 1 when some of the packages are unknown to dpkg.
    sec = need(facts, "clamav-packages", ok_rcs=(0, 1))
    installed = {
        r[0]: r[2] for r in tab_rows(sec.stdout, 3) if r[1].strip() == "install ok installed"
    }
    wanted = ("clamav", "clamav-daemon", "clamav-freshclam")
    evidence = [ev(p, installed.get(p, "not installed")) for p in wanted]
    missing = [p for p in wanted if p not in installed]
    if missing:
        return Outcome.failed(f"not installed: {names(missing)}", *evidence)
    return Outcome.passed("ClamAV packages are installed", *evidence)


@control(
    ControlMeta(
        id="PG-AV-002",
        title="The ClamAV daemon and freshclam are enabled and running",
        area=AREA,
        articles=(30,),
        severity=Severity.HIGH,
        rationale="An installed scanner that does not run protects nothing; freshclam "
        "keeps the signatures current.",
        evidence="Enabled and active state of clamav-daemon and clamav-freshclam.",
        remediation_role="antivirus",
        remediation_tag="pg-av-002",
    )
)
def clamav_running(facts: HostFacts, ctx: HostContext) -> Outcome:
    states = {u: unit(facts, u) for u in ("clamav-daemon", "clamav-freshclam")}
    evidence = [ev(f"{u}.service", f"{s.enabled}/{s.active}") for u, s in states.items()]
    down = [u for u, s in states.items() if not (s.running and s.enabled == "enabled")]
    if down:
        return Outcome.failed(f"not enabled and running: {names(down)}", *evidence)
    return Outcome.passed("clamd and freshclam are enabled and running", *evidence)


def _build_time(value: str) -> datetime | None:
    # sigtool --info prints e.g. "Build time: 27 Nov 2024 09:43 +0000"
    try:
        return datetime.strptime(value.strip(), "%d %b %Y %H:%M %z")
    except ValueError:
        return None


@control(
    ControlMeta(
        id="PG-AV-003",
        title="Virus signatures are no older than the allowed age",
        area=AREA,
        articles=(30,),
        severity=Severity.HIGH,
        rationale="New malware is caught only by current signatures.",
        evidence="Build time of the daily signature database (sigtool), or file times.",
        remediation_role="antivirus",
        remediation_tag="pg-av-003",
    )
)
def signatures_fresh(facts: HostFacts, ctx: HostContext) -> Outcome:
    sec = need(facts, "clamav-db")
    newest: datetime | None = None
    source = ""
    for row in tab_rows(sec.stdout, 3):
        if row[0] == "info" and row[2].startswith("Build time:"):
            built = _build_time(row[2].split(":", 1)[1])
            if built is not None and (newest is None or built > newest):
                newest, source = built, f"{row[1]} build time"
    if newest is None:
        mtimes = [int(r[2]) for r in tab_rows(sec.stdout, 3) if r[0] == "mtime" and r[2].isdigit()]
        if mtimes:
            newest, source = datetime.fromtimestamp(max(mtimes), UTC), "newest file time"
    if newest is None:
        return Outcome.failed("no ClamAV signature database on the host")
    now = ctx.now if ctx.now.tzinfo else ctx.now.replace(tzinfo=UTC)
    age = (now - newest).total_seconds() / 86400
    limit = ctx.settings.signature_max_age_days
    evidence = (ev("signatures", f"{newest.isoformat()} ({source})"), ev("age days", f"{age:.1f}"))
    if age > limit:
        return Outcome.failed(f"signatures are {age:.0f} days old (limit {limit})", *evidence)
    return Outcome.passed(f"signatures are {age:.1f} days old (limit {limit})", *evidence)


def _scan_schedules(facts: HostFacts) -> list[str]:
    found = []
    for line in need(facts, "timers").stdout.split("\n"):
        parts = line.split()
        timers = [p for p in parts if p.endswith(".timer")]
        if not timers or "freshclam" in line or "clam" not in line:
            continue
        if parts[0] in ("-", "n/a"):
            continue  # a loaded timer with no next elapse is not scheduled
        found.append(f"timer {timers[0]}")
    cron = split_files(need(facts, "cron-system").stdout)
    for path, lines in cron.items():
        found += [f"cron {path}" for line in lines if "clamscan" in line or "clamdscan" in line]
    for user, lines in split_files(need(facts, "crontabs").stdout).items():
        found += [
            f"crontab of {user}" for line in lines if "clamscan" in line or "clamdscan" in line
        ]
    return found


@control(
    ControlMeta(
        id="PG-AV-004",
        title="A full ClamAV scan is scheduled",
        area=AREA,
        articles=(30, 33),
        severity=Severity.MEDIUM,
        rationale="Scheduled scans find malware that arrived before the signatures "
        "knew it, and leave a regular record for internal audit.",
        evidence="systemd timers and cron entries that run clamscan or clamdscan.",
        remediation_role="antivirus",
        remediation_tag="pg-av-004",
    )
)
def scan_scheduled(facts: HostFacts, ctx: HostContext) -> Outcome:
    found = _scan_schedules(facts)
    evidence = [ev("schedule", f) for f in found[:10]]
    if not found:
        return Outcome.failed("no timer or cron job runs a ClamAV scan")
    return Outcome.passed(f"ClamAV scans are scheduled ({names(found)})", *evidence)


@control(
    ControlMeta(
        id="PG-AV-005",
        title="Scans move infected files to a protected quarantine directory",
        area=AREA,
        articles=(30,),
        severity=Severity.MEDIUM,
        rationale="Quarantine stops a detected file from being used while keeping it "
        "for investigation; a world-readable quarantine would leak it.",
        evidence="--move/--copy targets of scan commands; mode and owner of the directory.",
        remediation_role="antivirus",
        remediation_tag="pg-av-005",
    )
)
def quarantine(facts: HostFacts, ctx: HostContext) -> Outcome:
    rows = tab_rows(need(facts, "clamav-scan").stdout, 2)
    commands = [r[1] for r in rows if r[0] == "cmd"]
    qdirs = [r[1] for r in rows if r[0] == "qdir"]
    missing = [r[1] for r in rows if r[0] == "qdir-missing"]
    evidence = [ev("quarantine", q) for q in qdirs] + [ev("missing quarantine", m) for m in missing]
    if not commands:
        return Outcome.failed("no scan command is configured, so nothing is quarantined")
    if not qdirs and not missing:
        return Outcome.failed(
            "scan commands neither --move nor --copy infected files", ev("commands", len(commands))
        )
    if missing:
        return Outcome.failed(f"quarantine directory missing: {names(missing)}", *evidence)
    bad = []
    for q in qdirs:
        parts = q.split(None, 3)
        mode = int(parts[0], 8) if parts and parts[0].isdigit() else 0o777
        if mode & 0o007 or len(parts) < 3 or parts[1] not in ("root", "clamav"):
            bad.append(q)
    if bad:
        return Outcome.failed("quarantine is accessible to other users", *evidence)
    return Outcome.passed("infected files go to a protected quarantine", *evidence)


CONTROLS = (clamav_installed, clamav_running, signatures_fresh, scan_scheduled, quarantine)
