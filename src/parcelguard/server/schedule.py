"""Scheduled scans and roster reconciliations inside ``parcelguard serve`` (Art. 33, 39).

Each schedule names what to do (scan an inventory group, or reconcile a roster) and when
(a five-field cron expression in the schedule's time zone, read by cronsim, or an
interval). The start of every run is stored, so after downtime a missed run is made
once, not once per missed slot. A schedule never overlaps itself, and two schedules of
the same group never run at once: a run that is due while that group is busy waits.

A scan runs as ``parcelguard scan`` in a child process (the same code, limits and
evidence as by hand), stored in the scan store; its result is compared with the
schedule's previous scan to raise alerts.
"""

from __future__ import annotations

import hashlib
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from parcelguard.errors import ParcelguardError
from parcelguard.sqlite import connect

NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
INTERVAL = re.compile(r"(\d+)\s*([smhd]?)")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS schedule_runs (
    name TEXT PRIMARY KEY,
    last_run REAL NOT NULL,
    last_status TEXT NOT NULL,
    last_scan TEXT
);
CREATE TABLE IF NOT EXISTS schedule_pauses (
    name TEXT PRIMARY KEY,
    paused_by TEXT NOT NULL,
    paused_at REAL NOT NULL
);
"""


class ScheduleError(ParcelguardError):
    pass


@dataclass(frozen=True)
class Schedule:
    name: str
    cron: str | None = None
    every: int | None = None  # seconds
    group: str = "all"  # an Ansible host pattern within the service's inventory
    roster: str | None = None  # scan: judge Art. 38 against it; reconcile: the roster
    reconcile: bool = False
    timezone: str = "UTC"  # for cron: "0 2 * * *" is 02:00 in this zone

    def next_after(self, moment: datetime) -> datetime:
        if self.every is not None:
            return moment + timedelta(seconds=self.every)
        assert self.cron is not None
        return next(CronSim(self.cron, moment.astimezone(ZoneInfo(self.timezone))))


def parse_interval(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise ScheduleError(f"{where}: every must be seconds or a duration such as 15m, 6h, 1d")
    if isinstance(value, int):
        seconds = value
    else:
        m = INTERVAL.fullmatch(str(value).strip())
        if not m:
            raise ScheduleError(f"{where}: every must be seconds or a duration such as 15m, 6h, 1d")
        seconds = int(m.group(1)) * UNITS[m.group(2)]
    if not 1 <= seconds <= 31 * 86400:
        raise ScheduleError(f"{where}: every must be between 1 second and 31 days")
    return seconds


def parse_schedules(data: Any, source: str) -> tuple[Schedule, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ScheduleError(f"{source}: schedules must be a list")
    found: list[Schedule] = []
    names: set[str] = set()
    allowed = {"name", "cron", "every", "group", "roster", "action", "timezone"}
    for i, item in enumerate(data):
        where = f"{source}: schedules[{i}]"
        if not isinstance(item, dict):
            raise ScheduleError(f"{where} must be a mapping")
        unknown = sorted(set(item) - allowed)
        if unknown:
            raise ScheduleError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}")
        name = item.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ScheduleError(f"{where}: name must be lower-case letters, digits and -")
        if name in names:
            raise ScheduleError(f"{where}: a schedule named {name!r} exists already")
        names.add(name)
        where = f"{source}: schedule {name}"
        if ("cron" in item) == ("every" in item):
            raise ScheduleError(f"{where}: give exactly one of cron or every")
        zone = str(item.get("timezone", "UTC"))
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ScheduleError(f"{where}: unknown timezone {zone!r} (e.g. Asia/Shanghai)") from exc
        cron = None
        if "cron" in item:
            cron = str(item["cron"])
            if len(cron.split()) != 5:
                raise ScheduleError(
                    f"{where}: invalid cron expression {cron!r}: five fields "
                    "(minute hour day month weekday)"
                )
            try:
                next(CronSim(cron, datetime.now(ZoneInfo(zone))))
            except (CronSimError, StopIteration) as exc:
                raise ScheduleError(f"{where}: invalid cron expression {cron!r}: {exc}") from exc
        every = parse_interval(item["every"], where) if "every" in item else None
        action = item.get("action", "scan")
        if action not in ("scan", "reconcile"):
            raise ScheduleError(f"{where}: action must be scan or reconcile")
        group = item.get("group", "all")
        if not isinstance(group, str) or not group.strip():
            raise ScheduleError(f"{where}: group must be an Ansible host pattern")
        roster = item.get("roster")
        if roster is not None and not Path(str(roster)).is_file():
            raise ScheduleError(f"{where}: roster {roster} does not exist")
        if action == "reconcile" and roster is None:
            raise ScheduleError(f"{where}: a reconciliation needs a roster")
        found.append(
            Schedule(
                name=name,
                cron=cron,
                every=every,
                group=group,
                roster=str(roster) if roster else None,
                reconcile=action == "reconcile",
                timezone=zone,
            )
        )
    return tuple(found)


class ScheduleState:
    def __init__(self, path: Path) -> None:
        self.path = path
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return connect(self.path)

    def last(self, name: str) -> tuple[float | None, str | None]:
        with self._connect() as db:
            row = db.execute(
                "SELECT last_run, last_scan FROM schedule_runs WHERE name=?", (name,)
            ).fetchone()
        return (None, None) if row is None else (float(row["last_run"]), row["last_scan"])

    def ran(self, name: str, when: float, status: str, scan_id: str | None) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO schedule_runs VALUES (?,?,?,?) ON CONFLICT(name) DO UPDATE SET"
                " last_run=excluded.last_run, last_status=excluded.last_status,"
                " last_scan=COALESCE(excluded.last_scan, schedule_runs.last_scan)",
                (name, when, status, scan_id),
            )

    def runs(self) -> dict[str, dict[str, Any]]:
        with self._connect() as db:
            return {r["name"]: dict(r) for r in db.execute("SELECT * FROM schedule_runs")}

    def pause(self, name: str, by: str) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR IGNORE INTO schedule_pauses VALUES (?,?,?)", (name, by, time.time())
            )

    def resume(self, name: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM schedule_pauses WHERE name=?", (name,))

    def paused(self) -> dict[str, dict[str, Any]]:
        with self._connect() as db:
            return {r["name"]: dict(r) for r in db.execute("SELECT * FROM schedule_pauses")}


def next_run(schedule: Schedule, last_run: float | None, started: float) -> float:
    """When ``schedule`` is next due (epoch seconds). Missed slots (downtime) make one
    run; a schedule never run before counts from the service's start."""
    base = last_run if last_run is not None else started
    return schedule.next_after(datetime.fromtimestamp(base, UTC)).timestamp()


def due(schedule: Schedule, last_run: float | None, started: float, now: float) -> bool:
    """Whether ``schedule`` should run at ``now``."""
    return next_run(schedule, last_run, started) <= now


@dataclass(frozen=True)
class RunResult:
    status: str  # "ok", "findings", "error", "skipped"
    scan_id: str | None
    detail: str


class Children:
    """The child processes schedules start, so that shutdown can stop them (a scan left
    running would race the same schedule's next run after a restart)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.procs: set[subprocess.Popen[str]] = set()
        self.stopping = False

    def run(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        with self.lock:
            if self.stopping:
                return 130, "", "the service is stopping"
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.procs.add(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err += f"\nstopped after {timeout:.0f} s"
        finally:
            with self.lock:
                self.procs.discard(proc)
        return proc.returncode, out, err

    def terminate_all(self, grace: float = 10) -> None:
        with self.lock:
            self.stopping = True
            procs = list(self.procs)
        for proc in procs:
            proc.send_signal(signal.SIGINT)  # parcelguard scan stops cleanly on Ctrl-C
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()


def run_scan(
    inventory: Path,
    schedule: Schedule,
    store: str,
    *,
    pattern: str | None = None,
    known_hosts: Path | None = None,
    children: Children | None = None,
    timeout: float = 3600,
) -> tuple[RunResult, str | None]:
    """Run one scan as ``parcelguard scan``; (result, the scan's JSON text)."""
    children = children or Children()
    with tempfile.TemporaryDirectory(prefix="parcelguard-schedule-") as tmp:
        out = Path(tmp) / "scan.json"
        argv = [
            sys.executable, "-m", "parcelguard", "scan", "-i", str(inventory),
            "--limit", pattern or schedule.group, "--store", store, "-o", str(out),
        ]  # fmt: skip
        if schedule.roster:
            argv += ["--roster", schedule.roster]
        if known_hosts:
            argv += ["--known-hosts", str(known_hosts)]
        code, _, stderr = children.run(argv, timeout)
        if not out.exists():
            tail = " ".join(stderr.strip().splitlines()[-2:])
            return RunResult("error", None, tail[:300] or f"exit {code}"), None
        text = out.read_text(encoding="utf-8")
    status = {0: "ok", 1: "findings", 2: "ok-with-errors"}.get(code, "error")
    scan_id = re.search(r'"scan_id":\s*"([^"]+)"', text)
    return RunResult(status, scan_id.group(1) if scan_id else None, ""), text


def schedule_for_host(host: str, roster: str | None = None) -> Schedule:
    """A one-off run that scans one host (a plain inventory host name). Its name carries
    a hash of the host's, so that two hosts never share one (web.1 and web-1)."""
    digest = hashlib.sha256(host.encode("utf-8")).hexdigest()[:12]
    label = "".join(c if c.isalnum() else "-" for c in host.lower())[:40].strip("-")
    return Schedule(name=f"now-{label}-{digest}", every=86400, group=host, roster=roster)


class Scheduler:
    """Runs due schedules; one thread, and at most one run per schedule at a time."""

    def __init__(
        self,
        schedules: tuple[Schedule, ...],
        state: ScheduleState,
        run: Callable[[Schedule], RunResult],
        progress: Callable[[str], None],
    ) -> None:
        self.schedules = schedules
        self.state = state
        self.run = run
        self.progress = progress
        self.started = time.time()
        self.running: set[str] = set()
        self.busy_groups: set[str] = set()
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()

    def tick(self, now: float | None = None) -> list[str]:
        """Start every due schedule (each in its own thread); returns their names."""
        now = time.time() if now is None else now
        started = []
        waiting = []
        for s in self.schedules:
            last, _ = self.state.last(s.name)
            when = next_run(s, last, self.started)
            if when <= now:
                waiting.append((when, s))
        # The longest-waiting first: a busy group serves its schedules in turn.
        for _when, s in sorted(waiting, key=lambda pair: pair[0]):
            if self.start(s, now, scheduled=True):  # a busy one is tried at the next tick
                started.append(s.name)
        return started

    def start(self, schedule: Schedule, now: float | None = None, scheduled: bool = False) -> bool:
        """Start one run of ``schedule`` now, unless it or its group is running, or (for
        a scheduled run) it was paused meanwhile: then False. Also used for runs an
        operator asks for; such a run counts as the schedule's latest, so an interval
        schedule's next run is counted from it."""
        now = time.time() if now is None else now
        with self.lock:
            if schedule.name in self.running or schedule.group in self.busy_groups:
                return False  # never overlaps
            if scheduled and schedule.name in self.state.paused():
                return False
            self.running.add(schedule.name)
            self.busy_groups.add(schedule.group)
            # The start is recorded first: a crash mid-run does not start it again at once.
            self.state.ran(schedule.name, now, "running", None)
            thread = threading.Thread(
                target=self._one,
                args=(schedule, now),
                name=f"schedule-{schedule.name}",
                daemon=True,
            )
            self.threads = [t for t in self.threads if t.is_alive()] + [thread]
            thread.start()
        return True

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in list(self.threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def _one(self, schedule: Schedule, now: float) -> None:
        try:
            self.progress(f"schedule {schedule.name}: starting")
            result = self.run(schedule)
            self.state.ran(schedule.name, now, result.status, result.scan_id)
            self.progress(
                f"schedule {schedule.name}: {result.status}"
                + (f" (scan {result.scan_id})" if result.scan_id else "")
                + (f": {result.detail}" if result.detail else "")
            )
        except Exception as exc:  # a failed run is recorded; the schedule goes on
            self.state.ran(schedule.name, now, "error", None)
            self.progress(f"schedule {schedule.name}: error: {exc}")
        finally:
            with self.lock:
                self.running.discard(schedule.name)
                self.busy_groups.discard(schedule.group)

    def wait_seconds(self, now: float | None = None) -> float:
        now = time.time() if now is None else now
        waits = []
        paused = self.state.paused()
        for s in self.schedules:
            if s.name in self.running or s.name in paused:
                continue  # its end is what matters; checked at the next tick anyway
            last, _ = self.state.last(s.name)
            waits.append(next_run(s, last, self.started) - now)
        return max(0.5, min([30.0, *waits]))
