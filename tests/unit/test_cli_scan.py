"""`parcelguard scan`: exit codes, pure JSON on stdout, early one-line errors.

FleetScan and the fleet are replaced, so nothing is connected to and nothing is scanned.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from parcelguard import cli
from parcelguard.scanners import runner, targets
from parcelguard.scanners.catalog import Catalog
from parcelguard.scanners.model import (
    ControlResult,
    HostResult,
    ScanResult,
    Severity,
    Status,
)
from parcelguard.scanners.policy import DEFAULT_ZONE_POLICY
from parcelguard.scanners.store import ScanStore
from parcelguard.scanners.targets import Fleet, Target

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
FLEET = Fleet(
    "/srv/inventory.yml",
    (Target("db1", "198.18.40.11", zones=("data",)), Target("app1", "198.18.30.11")),
    DEFAULT_ZONE_POLICY,
    False,
)


def host(
    name: str, *results: tuple[Status, Severity], reachable: bool = True, error: str = ""
) -> HostResult:
    return HostResult(
        host=name,
        address="198.18.40.11",
        zones=("data",),
        started=T0,
        finished=T0 + timedelta(seconds=2),
        reachable=reachable,
        error=error,
        results=tuple(
            ControlResult(
                control_id=f"PG-SSH-{i:03d}",
                host=name,
                status=status,
                summary=f"{status.value} summary",
                severity=severity,
                articles=(29,),
            )
            for i, (status, severity) in enumerate(results, start=1)
        ),
    )


def make_scan(*hosts: HostResult, complete: bool = True) -> ScanResult:
    return ScanResult(
        scan_id="20261128T090000Z-abcdef",
        started=T0,
        finished=T0 + timedelta(seconds=5),
        tool_version="0.1.0",
        inventory=FLEET.source,
        hosts=hosts,
        complete=complete,
        notes=("a note",),
    )


COMPLIANT = make_scan(
    host("db1", (Status.PASS, Severity.CRITICAL), (Status.NOT_APPLICABLE, Severity.HIGH)),
    host("app1", (Status.WAIVED, Severity.CRITICAL), (Status.MANUAL, Severity.HIGH)),
)


@dataclass
class Recorder:
    """Stands in for FleetScan and the fleet loaders; remembers what the CLI asked for."""

    result: ScanResult | BaseException = COMPLIANT
    created: list[tuple[Fleet, runner.ScanOptions]] = field(default_factory=list)
    inventories: list[tuple[Path, str | None]] = field(default_factory=list)

    def fleet_scan(
        self, fleet: Fleet, catalog: Catalog, options: runner.ScanOptions, progress: Any
    ) -> Recorder:
        self.created.append((fleet, options))
        progress("fake scan running")
        return self

    def run(self) -> ScanResult:
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result

    def load_inventory(self, path: Path, limit: str | None = None) -> Fleet:
        self.inventories.append((path, limit))
        return FLEET


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(runner, "FleetScan", rec.fleet_scan)
    monkeypatch.setattr(targets, "local_fleet", lambda: FLEET)
    return rec


def scan(*args: str) -> int:
    return cli.main(["scan", "--no-store", *args])


def one_line_error(err: str) -> str:
    assert err.count("\n") == 1, err
    assert err.startswith("parcelguard: error: "), err
    return err


# -- exit codes ---------------------------------------------------------------------------


def test_compliant_scan_exits_0(fake: Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    assert scan() == cli.EXIT_OK
    assert len(fake.created) == 1
    out = capsys.readouterr().out
    assert "db1" in out and "app1" in out


@pytest.mark.parametrize(
    ("status", "severity", "fail_on", "expected"),
    [
        (Status.FAIL, Severity.LOW, None, cli.EXIT_FINDINGS),
        (Status.FAIL, Severity.MEDIUM, "medium", cli.EXIT_FINDINGS),
        (Status.FAIL, Severity.MEDIUM, "high", cli.EXIT_OK),
        (Status.FAIL, Severity.CRITICAL, "critical", cli.EXIT_FINDINGS),
        (Status.ERROR, Severity.HIGH, "high", cli.EXIT_FINDINGS),
        (Status.ERROR, Severity.HIGH, "critical", cli.EXIT_OK),
        (Status.WAIVED, Severity.CRITICAL, "low", cli.EXIT_OK),
        (Status.MANUAL, Severity.CRITICAL, "low", cli.EXIT_OK),
    ],
)
def test_findings_at_or_above_fail_on_exit_1(
    fake: Recorder, status: Status, severity: Severity, fail_on: str | None, expected: int
) -> None:
    fake.result = make_scan(
        host("db1", (Status.PASS, Severity.CRITICAL), (status, severity)),
        host("app1", (Status.PASS, Severity.LOW)),
    )
    assert scan(*(["--fail-on", fail_on] if fail_on else [])) == expected


def test_unreachable_host_exits_2(fake: Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    fake.result = make_scan(
        host("db1", (Status.PASS, Severity.LOW)),
        host("app1", (Status.ERROR, Severity.LOW), reachable=False, error="no answer in 10 s"),
    )
    assert scan("--fail-on", "critical") == cli.EXIT_ERROR
    assert "UNREACHABLE: no answer in 10 s" in capsys.readouterr().out


def test_interrupted_scan_exits_130_before_anything_else(
    fake: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.result = make_scan(
        host("db1", (Status.FAIL, Severity.CRITICAL), reachable=False, error="x"), complete=False
    )
    assert scan() == cli.EXIT_INTERRUPTED
    assert "INCOMPLETE" in capsys.readouterr().out


def test_interrupt_escaping_the_scan_exits_130(
    fake: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.result = KeyboardInterrupt()
    assert scan() == cli.EXIT_INTERRUPTED
    assert "interrupted" in capsys.readouterr().err


# -- output -------------------------------------------------------------------------------


def test_json_stdout_is_pure_json_and_progress_goes_to_stderr(
    fake: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.result = make_scan(host("db1", (Status.FAIL, Severity.HIGH)))
    assert scan("--json", "--no-verify-host-keys") == cli.EXIT_FINDINGS
    captured = capsys.readouterr()
    assert json.loads(captured.out) == fake.result.to_dict()
    assert "parcelguard: scanning 2 host(s) from /srv/inventory.yml" in captured.err
    assert "fake scan running" in captured.err
    assert "NOT verified" in captured.err
    assert fake.created[0][1].verify_host_keys is False


def test_output_file_gets_the_json_document(
    fake: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scan.json"
    assert scan("-o", str(out)) == cli.EXIT_OK
    assert json.loads(out.read_text(encoding="utf-8")) == COMPLIANT.to_dict()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".scan.json")] == []
    assert f"wrote {out}" in capsys.readouterr().err


def test_scan_is_stored(fake: Recorder, tmp_path: Path) -> None:
    db = tmp_path / "scans.db"
    assert cli.main(["scan", "--store", f"sqlite://{db}"]) == cli.EXIT_OK
    assert ScanStore(db).load(COMPLIANT.scan_id) == COMPLIANT


def test_default_store_is_under_xdg_state_home(fake: Recorder, tmp_path: Path) -> None:
    assert cli.main(["scan"]) == cli.EXIT_OK
    stored = ScanStore(tmp_path / "state" / "parcelguard" / "scans.db")
    assert stored.latest() == COMPLIANT


# -- early errors -------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["missing/scan.json", "a-file/scan.json"])
def test_output_into_a_folder_that_cannot_hold_it_fails_before_scanning(
    fake: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    (tmp_path / "a-file").write_text("not a folder", encoding="utf-8")
    assert scan("-o", str(tmp_path / where)) == cli.EXIT_ERROR
    err = one_line_error(capsys.readouterr().err)
    assert f"cannot write {tmp_path / where}" in err
    assert fake.created == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_output_into_an_unwritable_folder_fails_before_scanning(
    fake: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert scan("-o", str(locked / "scan.json")) == cli.EXIT_ERROR
    finally:
        locked.chmod(0o700)
    assert "is not a writable folder" in one_line_error(capsys.readouterr().err)
    assert fake.created == []


def test_output_into_a_folder_denied_by_access_fails_before_scanning(
    fake: Recorder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Root may write anywhere, so the permission answer is simulated for this one folder.
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access

    def access(path: Any, mode: int, **kwargs: Any) -> bool:
        if Path(path) == locked and mode & os.W_OK:
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    assert scan("-o", str(locked / "scan.json")) == cli.EXIT_ERROR
    assert f"{locked} is not a writable folder" in one_line_error(capsys.readouterr().err)
    assert fake.created == []


def test_limit_without_inventory_is_an_error(
    fake: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    assert scan("--limit", "data") == cli.EXIT_ERROR
    assert "--limit needs an inventory (-i)" in one_line_error(capsys.readouterr().err)
    assert fake.created == []


def test_inventory_and_limit_reach_the_loader(
    fake: Recorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(targets, "load_inventory", fake.load_inventory)
    assert scan("-i", str(tmp_path / "inv.yml"), "-l", "data:app") == cli.EXIT_OK
    assert fake.inventories == [(tmp_path / "inv.yml", "data:app")]
    assert fake.created[0][0] is FLEET


def test_missing_inventory_is_a_one_line_error(
    fake: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert scan("-i", str(tmp_path / "nope.yml")) == cli.EXIT_ERROR
    assert "does not exist" in one_line_error(capsys.readouterr().err)
    assert fake.created == []


def test_bad_store_url_fails_before_scanning(
    fake: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["scan", "--store", "postgresql://pg@db/scans"]) == cli.EXIT_ERROR
    assert "unsupported store URL scheme" in one_line_error(capsys.readouterr().err)
    assert fake.created == []


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("username,shoe_size\nwangfang,38\n", "unknown column(s) shoe_size"),
        ("username\nwangfang\nwangfang\n", "duplicate username 'wangfang'"),
        ("name\nWang Fang\n", "no 'username' column"),
    ],
)
def test_bad_roster_is_a_one_line_error(
    fake: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, named: str
) -> None:
    roster = tmp_path / "staff.csv"
    roster.write_text(text, encoding="utf-8")
    assert scan("--roster", str(roster)) == cli.EXIT_ERROR
    err = one_line_error(capsys.readouterr().err)
    assert err.startswith("parcelguard: error: roster: ")
    assert named in err
    assert fake.created == []


def test_missing_roster_is_a_one_line_error(
    fake: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert scan("--roster", str(tmp_path / "staff.csv")) == cli.EXIT_ERROR
    assert "cannot read roster" in one_line_error(capsys.readouterr().err)


def test_roster_usernames_reach_the_scan(fake: Recorder, tmp_path: Path) -> None:
    roster = tmp_path / "staff.csv"
    roster.write_text("username,name\nwangfang,Wang Fang\nzhaolei,Zhao Lei\n", encoding="utf-8")
    assert scan("--roster", str(roster)) == cli.EXIT_OK
    assert fake.created[0][1].roster == frozenset({"wangfang", "zhaolei"})


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("- control: PG-SSH-001\n  hosts: '*'\n", "missing key(s)"),
        (
            "- {control: ssh-1, hosts: '*', justification: j, expires: 2027-01-01, ticket: T}\n",
            "is not a control id",
        ),
        ("waivers: 3\n", "expected a list of waivers"),
    ],
)
def test_bad_waivers_are_a_one_line_error(
    fake: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, named: str
) -> None:
    path = tmp_path / "waivers.yml"
    path.write_text(text, encoding="utf-8")
    assert scan("--waivers", str(path)) == cli.EXIT_ERROR
    err = one_line_error(capsys.readouterr().err)
    assert err.startswith("parcelguard: error: waivers: ")
    assert named in err
    assert fake.created == []


def test_waivers_with_a_yaml_syntax_error_are_a_one_line_error(
    fake: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "waivers.yml"
    path.write_text("waivers: [\n  - control: PG-SSH-001\n", encoding="utf-8")
    assert scan("--waivers", str(path)) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "not valid YAML" in err
    one_line_error(err)


def test_valid_waivers_reach_the_scan(fake: Recorder, tmp_path: Path) -> None:
    path = tmp_path / "waivers.yml"
    path.write_text(
        "- control: PG-SSH-001\n  hosts: [db1]\n  justification: vendor access\n"
        "  expires: 2099-01-01\n  ticket: SEC-7\n",
        encoding="utf-8",
    )
    assert scan("--waivers", str(path)) == cli.EXIT_OK
    (waiver,) = fake.created[0][1].waivers
    assert (waiver.control, waiver.hosts, waiver.ticket) == ("PG-SSH-001", ("db1",), "SEC-7")
