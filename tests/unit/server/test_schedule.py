"""Schedules: validated at start-up, run on time, missed runs made once, never overlapping."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from parcelguard.server.schedule import (
    RunResult,
    Schedule,
    ScheduleError,
    Scheduler,
    ScheduleState,
    due,
    parse_schedules,
)


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_good_schedules_parse() -> None:
    parsed = parse_schedules(
        [
            {"name": "nightly", "cron": "0 2 * * *", "group": "all"},
            {"name": "dmz-hourly", "every": "1h", "group": "dmz"},
            {"name": "often", "every": 90},
        ],
        "serve.yml",
    )
    assert [(s.name, s.cron, s.every, s.group) for s in parsed] == [
        ("nightly", "0 2 * * *", None, "all"),
        ("dmz-hourly", None, 3600, "dmz"),
        ("often", None, 90, "all"),
    ]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"name": "x", "cron": "61 * * * *"}, "invalid cron expression"),
        ({"name": "x", "cron": "every day"}, "invalid cron expression"),
        ({"name": "x"}, "exactly one of cron or every"),
        ({"name": "x", "cron": "0 2 * * *", "every": 60}, "exactly one of cron or every"),
        ({"name": "x", "every": "soon"}, "duration such as"),
        ({"name": "x", "every": 0}, "between 1 second and 31 days"),
        ({"name": "x", "every": True}, "duration such as"),
        ({"name": "Nightly Scan", "every": 60}, "name must be"),
        ({"name": "x", "every": 60, "action": "reboot"}, "scan or reconcile"),
        ({"name": "x", "every": 60, "action": "reconcile"}, "needs a roster"),
        ({"name": "x", "every": 60, "roster": "/nonexistent.csv"}, "does not exist"),
        ({"name": "x", "every": 60, "at": "02:00"}, "unknown key"),
        ({"name": "x", "cron": "0 0 2 * * *"}, "five fields"),
        ({"name": "x", "cron": "0 2 * * *", "timezone": "Mars/Olympus"}, "unknown timezone"),
    ],
)
def test_invalid_schedules_are_refused_with_a_clear_error(
    item: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse_schedules([item], "serve.yml")


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ScheduleError, match="exists already"):
        parse_schedules([{"name": "a", "every": 60}, {"name": "a", "every": 60}], "s")


def test_a_cron_schedule_is_due_at_its_time_and_not_before() -> None:
    nightly = Schedule("nightly", cron="0 2 * * *")
    last = ts("2026-11-27T02:00:00")
    assert not due(nightly, last, last, ts("2026-11-28T01:59:59"))
    assert due(nightly, last, last, ts("2026-11-28T02:00:00"))


def test_missed_runs_after_downtime_are_made_once(tmp_path: Path) -> None:
    state = ScheduleState(tmp_path / "s.db")
    hourly = Schedule("hourly", every=3600)
    state.ran("hourly", ts("2026-11-28T00:00:00"), "ok", None)
    runs: list[str] = []
    done = threading.Event()

    def run(s: Schedule) -> RunResult:
        runs.append(s.name)
        done.set()
        return RunResult("ok", "scan-1", "")

    scheduler = Scheduler((hourly,), state, run, lambda _m: None)
    back = ts("2026-11-28T05:30:00")  # five slots were missed while the service was down
    assert scheduler.tick(back) == ["hourly"]
    assert done.wait(5)
    for _ in range(50):
        if not scheduler.running:
            break
        time.sleep(0.05)
    assert scheduler.tick(back + 1) == []  # once, not five times
    assert runs == ["hourly"]
    assert state.last("hourly") == (back, "scan-1")


def test_a_schedule_never_overlaps_itself(tmp_path: Path) -> None:
    state = ScheduleState(tmp_path / "s.db")
    release = threading.Event()
    calls = []

    def slow(s: Schedule) -> RunResult:
        calls.append(s.name)
        release.wait(5)
        return RunResult("ok", None, "")

    scheduler = Scheduler((Schedule("fast", every=1),), state, slow, lambda _m: None)
    scheduler.started = 0
    assert scheduler.tick(10) == ["fast"]
    assert scheduler.tick(20) == []  # still running
    release.set()
    for _ in range(100):
        if not scheduler.running:
            break
        time.sleep(0.05)
    assert calls == ["fast"]


def test_a_failing_run_is_recorded_and_the_schedule_goes_on(tmp_path: Path) -> None:
    state = ScheduleState(tmp_path / "s.db")

    def broken(_s: Schedule) -> RunResult:
        raise RuntimeError("inventory vanished")

    messages: list[str] = []
    scheduler = Scheduler((Schedule("x", every=1),), state, broken, messages.append)
    scheduler.started = 0
    scheduler.tick(5)
    for _ in range(100):
        if not scheduler.running:
            break
        time.sleep(0.05)
    assert state.runs()["x"]["last_status"] == "error"
    assert any("inventory vanished" in m for m in messages)


def test_cron_runs_in_the_schedules_time_zone() -> None:
    beijing = Schedule("nightly", cron="0 2 * * *", timezone="Asia/Shanghai")
    after = beijing.next_after(datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
    assert after.astimezone(UTC) == datetime(2026, 11, 28, 18, 0, tzinfo=UTC)  # 02:00 +08:00


def test_two_schedules_of_one_group_never_run_at_once(tmp_path: Path) -> None:
    state = ScheduleState(tmp_path / "s.db")
    release = threading.Event()

    def slow(_s: Schedule) -> RunResult:
        release.wait(5)
        return RunResult("ok", None, "")

    both = (Schedule("a", every=1, group="dmz"), Schedule("b", every=1, group="dmz"))
    scheduler = Scheduler(both, state, slow, lambda _m: None)
    scheduler.started = 0
    assert scheduler.tick(10) == ["a"]
    assert state.runs()["a"]["last_status"] == "running"  # the start is recorded at once
    release.set()
    scheduler.join(5)
    assert scheduler.tick(11) == ["b"]
    scheduler.join(5)
