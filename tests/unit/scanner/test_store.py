"""The SQLite scan store: round trips, history order, replacement, refusing what it cannot read."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from parcelguard.scanners.model import (
    SCHEMA_VERSION,
    ControlResult,
    Evidence,
    HostResult,
    ScanResult,
    Severity,
    Status,
)
from parcelguard.scanners.store import ScanStore, StoreError, default_store, resolve

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def control(host: str, control_id: str, status: Status, severity: Severity) -> ControlResult:
    return ControlResult(
        control_id=control_id,
        host=host,
        status=status,
        summary=f"{control_id} on {host}: {status.value}",
        severity=severity,
        articles=(29, 39),
        evidence=(Evidence("sshd_config", "PasswordAuthentication yes"),),
        reason="host not scanned: timeout" if status is Status.ERROR else "",
        waiver="SEC-1" if status is Status.WAIVED else "",
    )


def make_scan(scan_id: str, started: datetime, *, complete: bool = True) -> ScanResult:
    db1 = HostResult(
        host="db1",
        address="198.18.40.11",
        zones=("data",),
        started=started,
        finished=started + timedelta(seconds=3),
        reachable=True,
        results=(
            control("db1", "PG-SSH-001", Status.FAIL, Severity.HIGH),
            control("db1", "PG-SSH-002", Status.PASS, Severity.CRITICAL),
            control("db1", "PG-STOR-002", Status.WAIVED, Severity.MEDIUM),
        ),
    )
    app1 = HostResult(
        host="app1",
        address="198.18.30.11",
        zones=("app",),
        started=started,
        finished=started + timedelta(seconds=10),
        reachable=False,
        error="no answer within 10 s",
        results=(
            control("app1", "PG-SSH-001", Status.ERROR, Severity.HIGH),
            control("app1", "PG-SSH-002", Status.ERROR, Severity.CRITICAL),
        ),
    )
    return ScanResult(
        scan_id=scan_id,
        started=started,
        finished=started + timedelta(seconds=12),
        tool_version="0.1.0",
        inventory="/srv/inventory.yml",
        hosts=(db1, app1),
        complete=complete,
        notes=("zone reachability not measured",),
    )


def result_rows(path: Path) -> list[tuple[str, str, str, str, str]]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT scan_id, host, control_id, status, severity FROM results ORDER BY 1, 2, 3"
        ).fetchall()
    finally:
        db.close()
    return [tuple(r) for r in rows]


@pytest.fixture
def store(tmp_path: Path) -> ScanStore:
    return ScanStore(tmp_path / "state" / "scans.db")


def test_new_store_creates_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "scans.db"
    ScanStore(path)
    assert path.is_file()


def test_save_and_load_round_trip(store: ScanStore) -> None:
    scan = make_scan("20261128T090000Z-aaaaaa", T0)
    store.save(scan)
    assert store.load(scan.scan_id) == scan
    # A second store on the same file sees it too: it was committed.
    assert ScanStore(store.path).load(scan.scan_id) == scan


def test_results_table_has_one_row_per_host_and_control(store: ScanStore) -> None:
    scan = make_scan("s1", T0)
    store.save(scan)
    rows = result_rows(store.path)
    assert len(rows) == sum(len(h.results) for h in scan.hosts) == 5
    assert ("s1", "db1", "PG-SSH-001", "FAIL", "high") in rows
    assert ("s1", "db1", "PG-STOR-002", "WAIVED", "medium") in rows
    assert ("s1", "app1", "PG-SSH-002", "ERROR", "critical") in rows


def test_saving_the_same_scan_again_replaces_it(store: ScanStore) -> None:
    first = make_scan("s1", T0, complete=False)
    store.save(first)
    second = replace(first, complete=True, hosts=first.hosts[:1], notes=())
    store.save(second)
    assert store.load("s1") == second
    assert [s.scan_id for s in store.scans()] == ["s1"]
    assert store.scans()[0].complete
    rows = result_rows(store.path)
    assert len(rows) == 3
    assert {r[1] for r in rows} == {"db1"}


def test_scans_lists_newest_first_with_a_limit(store: ScanStore) -> None:
    for i, scan_id in enumerate(["old", "newest", "middle"]):
        offset = {"old": 0, "middle": 1, "newest": 2}[scan_id]
        store.save(make_scan(scan_id, T0 + timedelta(days=offset), complete=i != 1))
    summaries = store.scans()
    assert [s.scan_id for s in summaries] == ["newest", "middle", "old"]
    assert summaries[0].started == (T0 + timedelta(days=2)).isoformat()
    assert summaries[0].inventory == "/srv/inventory.yml"
    assert [s.complete for s in summaries] == [False, True, True]
    assert [s.scan_id for s in store.scans(limit=2)] == ["newest", "middle"]


def test_latest_and_latest_before(store: ScanStore) -> None:
    assert store.latest() is None
    older = make_scan("older", T0)
    newer = make_scan("newer", T0 + timedelta(hours=1))
    store.save(newer)
    store.save(older)
    assert store.latest() == newer
    assert store.latest(before=newer.started.isoformat()) == older
    assert store.latest(before=older.started.isoformat()) is None


def test_loading_an_unknown_scan_is_an_error(store: ScanStore) -> None:
    with pytest.raises(StoreError, match="no scan 'nope'"):
        store.load("nope")


def test_a_document_from_a_newer_schema_is_refused(store: ScanStore) -> None:
    future = replace(make_scan("future", T0), schema_version=SCHEMA_VERSION + 1)
    store.save(future)
    with pytest.raises(StoreError) as info:
        store.load("future")
    assert f"schema {SCHEMA_VERSION + 1}" in str(info.value)
    assert "upgrade parcelguard" in str(info.value)
    with pytest.raises(StoreError):
        store.latest()


def test_a_corrupt_document_is_a_store_error(store: ScanStore) -> None:
    store.save(make_scan("s1", T0))
    db = sqlite3.connect(store.path)
    with db:
        db.execute("UPDATE scans SET document = '{not json' WHERE scan_id = 's1'")
    db.close()
    with pytest.raises(StoreError, match="not valid JSON"):
        store.load("s1")


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scans.db"
    path.write_bytes(b"this is not sqlite, just some text that is long enough" * 20)
    with pytest.raises(StoreError, match="cannot open scan store"):
        ScanStore(path)


def test_a_folder_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open scan store"):
        ScanStore(tmp_path)


def test_resolve_default_follows_xdg_state_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    expected = tmp_path / "xdg" / "parcelguard" / "scans.db"
    assert default_store() == expected
    assert resolve(None) == expected
    assert resolve("") == expected


def test_resolve_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve("/var/lib/pg/scans.db") == Path("/var/lib/pg/scans.db")
    assert resolve("rel/scans.db") == Path("rel/scans.db")
    assert resolve("~/scans.db") == tmp_path / "scans.db"


def test_resolve_sqlite_urls() -> None:
    assert resolve("sqlite:///var/lib/pg/scans.db") == Path("/var/lib/pg/scans.db")
    assert resolve("SQLITE:///var/lib/pg/scans.db") == Path("/var/lib/pg/scans.db")


def test_a_sqlite_url_without_a_file_is_refused() -> None:
    with pytest.raises(StoreError, match="names no file"):
        resolve("sqlite://")


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("postgresql://pg@db1/scans", "postgresql"),
        ("file:///var/lib/scans.db", "file"),
        ("https://example.com/scans.db", "https"),
    ],
)
def test_other_url_schemes_are_refused(url: str, scheme: str) -> None:
    with pytest.raises(StoreError) as info:
        resolve(url)
    assert f"unsupported store URL scheme {scheme!r}" in str(info.value)
    assert "sqlite:///" in info.value.hint


def test_a_resolved_url_opens_a_working_store(tmp_path: Path) -> None:
    path = resolve(f"sqlite://{tmp_path}/via-url.db")
    store = ScanStore(path)
    store.save(make_scan("s1", T0))
    assert (tmp_path / "via-url.db").is_file()
    assert store.load("s1").hosts[0].host == "db1"


def test_a_schema_1_store_is_converted_when_opened(tmp_path: Path) -> None:
    """Stores written before the dashboard hold whole documents and no host tables."""
    path = tmp_path / "old.db"
    scans = [make_scan("s1", T0), make_scan("s2", T0 + timedelta(hours=1))]
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE scans (scan_id TEXT PRIMARY KEY, started TEXT NOT NULL, "
            "finished TEXT NOT NULL, inventory TEXT NOT NULL, complete INTEGER NOT NULL, "
            "schema_version INTEGER NOT NULL, document TEXT NOT NULL);"
        )
        for scan in scans:
            db.execute(
                "INSERT INTO scans VALUES (?, ?, ?, ?, 1, 1, ?)",
                (scan.scan_id, scan.started.isoformat(), scan.finished.isoformat(),
                 scan.inventory, scan.to_json()),
            )  # fmt: skip
        db.execute(
            "INSERT INTO scans VALUES ('bad', '2020-01-01', '2020-01-01', 'x', 1, 99, "
            "'{\"schema_version\": 99}')"
        )
        # A document with a key this version does not know is kept whole, key and all.
        extra = json.loads(make_scan("s3", T0 + timedelta(hours=2)).to_json())
        extra["signature"] = "kept"
        db.execute(
            "INSERT INTO scans VALUES ('s3', ?, ?, 'x', 1, 1, ?)",
            (extra["started"], extra["finished"], json.dumps(extra)),
        )
    store = ScanStore(path)
    assert (tmp_path / "old.db.schema1.bak").exists()
    assert [store.load(s.scan_id) for s in scans] == scans
    assert store.load("s3").scan_id == "s3"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        header = db.execute("SELECT document FROM scans WHERE scan_id = 's2'").fetchone()[0]
        latest = dict(db.execute("SELECT host, scan_id FROM host_latest").fetchall())
        kept = db.execute("SELECT document FROM scans WHERE scan_id = 's3'").fetchone()[0]
    assert '"hosts": null' in header  # each host's part is stored once, in host_scans
    assert '"signature": "kept"' in kept
    assert set(latest.values()) == {"s3"}
    with pytest.raises(StoreError, match="schema 99"):
        store.load("bad")


def test_the_predecessor_is_the_newest_earlier_scan_of_the_same_hosts(store: ScanStore) -> None:
    fleet1 = make_scan("fleet1", T0)
    fleet2 = make_scan("fleet2", T0 + timedelta(hours=2))
    one = replace(make_scan("one", T0 + timedelta(hours=1)), hosts=make_scan("x", T0).hosts[:1])
    for scan in (fleet1, one, fleet2):
        store.save(scan)
    assert store.predecessor(fleet2) == fleet1  # not the one-host scan in between
    assert store.predecessor(one) == fleet1  # shares its host
    assert store.predecessor(fleet1) is None
    other = replace(
        make_scan("other", T0 + timedelta(hours=3)),
        hosts=tuple(replace(h, host=f"z-{h.host}") for h in fleet1.hosts),
    )
    assert store.predecessor(other) == fleet2  # nothing shared: the newest earlier one
