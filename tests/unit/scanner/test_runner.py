"""FleetScan with fake host sessions answering with gather output recorded on the lab."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from parcelguard.scanners import runner
from parcelguard.scanners.catalog import load_catalog
from parcelguard.scanners.connection import ConnectionFailed
from parcelguard.scanners.model import ScanResult, Status
from parcelguard.scanners.policy import DEFAULT_ZONE_POLICY
from parcelguard.scanners.targets import Fleet, Target
from parcelguard.scanners.waivers import Waiver

RECORDED = Path(__file__).parents[2] / "fixtures" / "recorded"
CATALOG = load_catalog()
# The gather script assigns the run's marker as `M=<marker>` (facts.gather_script).
SCRIPT_MARKER = re.compile(r"^M=([A-Za-z0-9]{16,64})$", re.MULTILINE)
PROBE_LINE = re.compile(r"^p (\S+) (\d+) &$", re.MULTILINE)


@dataclass
class FakeResult:
    """What testinfra's CommandResult offers the runner."""

    stdout: str
    stderr: str = ""
    rc: int = 0


Behaviour = Callable[["FakeSession", str], FakeResult]


def recorded(host: str) -> tuple[str, str]:
    text = (RECORDED / f"neglected-{host}.gather").read_text(encoding="utf-8")
    marker = (RECORDED / f"neglected-{host}.marker").read_text(encoding="utf-8").strip()
    return text, marker


def gather_answer(recording: str, rewrite_marker: bool = True) -> Behaviour:
    """Answer the gather script with a recording, under the marker the script carries."""
    text, old = recorded(recording)

    def answer(session: FakeSession, script: str) -> FakeResult:
        m = SCRIPT_MARKER.search(script)
        assert m is not None, "the gather script carries no marker assignment"
        return FakeResult(text.replace(old, m.group(1)) if rewrite_marker else text)

    return answer


def unreachable(reason: str) -> Behaviour:
    def answer(session: FakeSession, script: str) -> FakeResult:
        raise ConnectionFailed(reason)

    return answer


@dataclass
class FakeSession:
    target: Target
    gather: Behaviour
    open_ports: frozenset[tuple[str, int]] = frozenset()
    calls: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    closed: bool = False

    def run(self, command: str, *args: str) -> FakeResult:
        self.calls.append((command, args))
        assert command == "bash -c %s" and len(args) == 1
        script = args[0]
        if SCRIPT_MARKER.search(script):
            return self.gather(self, script)
        if "/dev/tcp/" in script:
            lines = [
                f"{addr} {port} {'open' if (addr, int(port)) in self.open_ports else 'filtered'}"
                for addr, port in PROBE_LINE.findall(script)
            ]
            return FakeResult("\n".join(lines) + "\n")
        raise AssertionError(f"unexpected script: {script[:80]!r}")

    def close(self) -> None:
        self.closed = True

    @property
    def probes(self) -> list[str]:
        return [args[0] for _, args in self.calls if "/dev/tcp/" in args[0]]


class FakeFleet:
    """Installs FakeSessions in place of SSH: one behaviour per host name."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.behaviours: dict[str, Behaviour] = {}
        self.open_ports: frozenset[tuple[str, int]] = frozenset()
        self.sessions: dict[str, FakeSession] = {}
        self.opened: list[dict[str, Any]] = []
        monkeypatch.setattr(runner, "open_session", self.open_session)

    def open_session(self, target: Target, **kwargs: Any) -> FakeSession:
        self.opened.append({"target": target.name, **kwargs})
        session = FakeSession(target, self.behaviours[target.name], self.open_ports)
        self.sessions[target.name] = session
        return session


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeFleet:
    return FakeFleet(monkeypatch)


def target(name: str, zones: tuple[str, ...], octet: int) -> Target:
    return Target(name=name, address=f"198.18.0.{octet}", zones=zones, groups=zones)


def fleet(*targets: Target) -> Fleet:
    return Fleet("/srv/inventory.yml", targets, DEFAULT_ZONE_POLICY, False)


def scan(f: Fleet, **options: Any) -> ScanResult:
    messages: list[str] = []
    result = runner.FleetScan(f, CATALOG, runner.ScanOptions(**options), messages.append).run()
    return result


def statuses(result: ScanResult, host: str) -> dict[str, Status]:
    (h,) = [h for h in result.hosts if h.host == host]
    return {r.control_id: r.status for r in h.results}


# -- the fake itself ---------------------------------------------------------------------


def test_marker_rewriting_is_what_makes_recorded_output_readable(fake: FakeFleet) -> None:
    fake.behaviours = {
        "db1": gather_answer("db1"),
        "app1": gather_answer("app1", rewrite_marker=False),
    }
    result = scan(fleet(target("db1", ("data",), 11), target("app1", ("data",), 12)))
    db1, app1 = result.hosts
    assert db1.reachable
    # Output under a stale marker is not the host's answer: nothing could be read.
    assert not app1.reachable
    assert app1.error.startswith("fact gathering failed")


def test_each_host_gets_one_session_and_one_gather_and_is_closed(fake: FakeFleet) -> None:
    fake.behaviours = {"db1": gather_answer("db1"), "app1": gather_answer("app1")}
    scan(
        fleet(target("db1", ("data",), 11), target("app1", ("data",), 12)),
        verify_host_keys=True,
        connect_timeout=3,
        command_timeout=7,
    )
    assert sorted(o["target"] for o in fake.opened) == ["app1", "db1"]
    for opened in fake.opened:
        assert opened["verify_host_keys"] is True
        assert (opened["connect_timeout"], opened["command_timeout"]) == (3, 7)
    markers = set()
    for session in fake.sessions.values():
        assert len(session.calls) == 1
        assert session.closed
        m = SCRIPT_MARKER.search(session.calls[0][1][0])
        assert m is not None
        markers.add(m.group(1))
    assert len(markers) == 2  # a fresh marker for every host's run


# -- behaviour ---------------------------------------------------------------------------


def test_unreachable_host_is_error_everywhere_and_the_scan_goes_on(fake: FakeFleet) -> None:
    reason = "no answer within 10 s"
    fake.behaviours = {"db1": gather_answer("db1"), "app1": unreachable(reason)}
    result = scan(fleet(target("db1", ("data",), 11), target("app1", ("data",), 12)))
    assert result.complete
    db1, app1 = result.hosts
    assert not app1.reachable
    assert app1.error == reason
    assert len(app1.results) == len(CATALOG.controls)
    assert [r.control_id for r in app1.results] == list(CATALOG.ids)
    for r in app1.results:
        assert r.status is Status.ERROR
        assert reason in r.reason
        assert r.host == "app1"
    assert db1.reachable and db1.error == ""
    judged = statuses(result, "db1")
    assert judged["PG-SSH-001"] is Status.FAIL  # password logins, seeded on the lab
    assert judged["PG-CRED-004"] is Status.FAIL  # postgres/postgres on the database host
    assert Status.PASS in judged.values()


def test_garbage_answer_is_unreachable_with_the_last_stderr_line(fake: FakeFleet) -> None:
    def garbage(session: FakeSession, script: str) -> FakeResult:
        return FakeResult("Welcome!\n", "bash: line 1: x\nbash: permission denied\n", 126)

    fake.behaviours = {"db1": garbage}
    (db1,) = scan(fleet(target("db1", ("data",), 11))).hosts
    assert not db1.reachable
    assert db1.error == "fact gathering failed: bash: permission denied"
    assert {r.status for r in db1.results} == {Status.ERROR}


def test_single_zone_fleet_is_not_probed_and_says_so(fake: FakeFleet) -> None:
    fake.behaviours = {"db1": gather_answer("db1"), "app1": gather_answer("app1")}
    result = scan(fleet(target("db1", ("data",), 11), target("app1", ("data",), 12)))
    assert any("zone reachability not measured" in n for n in result.notes)
    assert all(not s.probes for s in fake.sessions.values())
    assert "not measured" in next(
        r.reason for r in result.hosts[0].results if r.control_id == "PG-ZONE-002"
    )


def test_no_zone_probe_option_adds_no_note(fake: FakeFleet) -> None:
    fake.behaviours = {"db1": gather_answer("db1"), "app1": gather_answer("app1")}
    result = scan(
        fleet(target("db1", ("data",), 11), target("app1", ("data",), 12)), measure_zones=False
    )
    assert not any("zone reachability" in n for n in result.notes)


def test_multi_zone_fleet_is_probed_from_one_host_per_zone(fake: FakeFleet) -> None:
    fake.behaviours = {
        "db1": gather_answer("db1"),
        "app1": gather_answer("app1"),
        "web1": unreachable("connection refused"),
    }
    fake.open_ports = frozenset({("198.18.0.11", 5432)})
    f = fleet(
        target("db1", ("data",), 11), target("app1", ("app",), 12), target("web1", ("dmz",), 13)
    )
    result = scan(f)
    assert not any("zone reachability" in n for n in result.notes)
    # The unreachable host is no source, but is still probed by address.
    assert not fake.sessions["web1"].probes
    for src in ("db1", "app1"):
        (script,) = fake.sessions[src].probes
        assert "p 198.18.0.13 22 &" in script.splitlines()
    # With reachability measured, the zone control judges instead of saying "not measured".
    zone = next(r for r in result.hosts[0].results if r.control_id == "PG-ZONE-002")
    assert "not measured" not in zone.reason


def test_waivers_turn_a_fail_into_waived_for_the_named_hosts(fake: FakeFleet) -> None:
    fake.behaviours = {"db1": gather_answer("db1"), "app1": gather_answer("app1")}
    today = datetime.now(UTC).date()
    waivers = (
        Waiver(
            "PG-SSH-001", ("db1",), "vendor access until migration", today + timedelta(30), "T-1"
        ),
        Waiver("PG-SSH-002", None, "was accepted once", today - timedelta(1), "T-2"),
        Waiver("PG-XYZ-001", None, "typo", today + timedelta(30), "T-3"),
    )
    result = scan(
        fleet(target("db1", ("data",), 11), target("app1", ("data",), 12)), waivers=waivers
    )
    db1 = {r.control_id: r for r in result.hosts[0].results}
    assert db1["PG-SSH-001"].status is Status.WAIVED
    assert db1["PG-SSH-001"].waiver == "T-1"
    assert statuses(result, "app1")["PG-SSH-001"] is Status.FAIL
    # An expired waiver leaves the FAIL standing; both problems are noted once.
    assert db1["PG-SSH-002"].status is Status.FAIL
    assert "expired" in db1["PG-SSH-002"].summary
    assert sum("T-2" in n and "expired" in n for n in result.notes) == 1
    assert sum("T-3" in n and "unknown control" in n for n in result.notes) == 1


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # lets a fake host still "running" after the scan return


def test_interrupt_returns_the_hosts_that_finished(
    fake: FakeFleet, release: threading.Event
) -> None:
    def interrupt(session: FakeSession, script: str) -> FakeResult:
        time.sleep(0.3)  # db1 finished and was collected well before this
        raise KeyboardInterrupt

    def never_done(session: FakeSession, script: str) -> FakeResult:
        release.wait(10)
        return gather_answer("web1")(session, script)

    fake.behaviours = {"db1": gather_answer("db1"), "app1": interrupt, "web1": never_done}
    f = fleet(
        target("db1", ("data",), 11), target("app1", ("data",), 12), target("web1", ("data",), 13)
    )
    started = time.monotonic()
    result = scan(f, parallel=1)
    assert time.monotonic() - started < 5  # did not wait for the host still running
    assert not result.complete
    assert [h.host for h in result.hosts] == ["db1"]
    assert result.hosts[0].reachable
    assert any("interrupted" in n for n in result.notes)
    # The sessions of the hosts that ran before the interrupt are closed. (web1 may or may
    # not have been picked up by the worker in the meantime, so it is not asserted on.)
    assert fake.sessions["db1"].closed and fake.sessions["app1"].closed


def test_results_follow_inventory_order_not_completion_order(fake: FakeFleet) -> None:
    def slow(recording: str, seconds: float) -> Behaviour:
        def answer(session: FakeSession, script: str) -> FakeResult:
            time.sleep(seconds)
            return gather_answer(recording)(session, script)

        return answer

    fake.behaviours = {
        "web1": slow("web1", 0.3),
        "db1": slow("db1", 0.0),
        "bastion1": unreachable("refused"),
        "app1": slow("app1", 0.1),
    }
    order = ["web1", "db1", "bastion1", "app1"]
    f = fleet(*(target(n, ("data",), 11 + i) for i, n in enumerate(order)))
    result = scan(f, parallel=4)
    assert [h.host for h in result.hosts] == order
    for h in result.hosts:
        assert [r.control_id for r in h.results] == list(CATALOG.ids)


def test_a_host_addressed_by_name_does_not_crash_the_zone_probe(fake: FakeFleet) -> None:
    fake.behaviours = {"db1": gather_answer("db1"), "app1": gather_answer("app1")}
    f = fleet(
        Target("db1", "db1.courier.example", zones=("data",)),
        target("app1", ("app",), 12),
    )
    result = scan(f)
    assert [h.host for h in result.hosts] == ["db1", "app1"]
    assert all(h.reachable for h in result.hosts)
