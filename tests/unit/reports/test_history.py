"""Drift between scans and the compliance trend read from the scan store."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from parcelguard.reports.build import scan_compliance
from parcelguard.reports.history import compare, trend
from parcelguard.scanners.model import HostResult, ScanResult, Status
from parcelguard.scanners.store import ScanStore
from tests.fixtures.synthetic import T0, synthetic_scan


def _set(scan: ScanResult, host: str, control_id: str, status: Status) -> ScanResult:
    def fix(h: HostResult) -> HostResult:
        if h.host != host:
            return h
        return replace(
            h,
            results=tuple(
                replace(r, status=status) if r.control_id == control_id else r for r in h.results
            ),
        )

    return replace(scan, hosts=tuple(fix(h) for h in scan.hosts))


def test_drift_lists_new_failures_fixed_items_and_hosts() -> None:
    before = synthetic_scan(hosts=3)
    before = _set(before, "dmz1", "PG-SSH-001", Status.PASS)
    before = _set(before, "app1", "PG-SSH-002", Status.FAIL)
    now = _set(before, "dmz1", "PG-SSH-001", Status.FAIL)
    now = _set(now, "app1", "PG-SSH-002", Status.PASS)
    now = replace(now, hosts=(*now.hosts[1:], replace(now.hosts[0], host="web9")))
    drift = compare(now, before)
    assert drift.previous_scan_id == before.scan_id
    assert drift.hosts_added == ("web9",)
    assert drift.hosts_gone == ("dmz1",)
    assert [(c.host, c.control_id) for c in drift.fixed] == [("app1", "PG-SSH-002")]
    # dmz1 is gone, so its new FAIL is not a change of a host in both scans
    assert ("dmz1", "PG-SSH-001") not in [(c.host, c.control_id) for c in drift.new_failures]


def test_a_new_failure_on_a_host_in_both_scans() -> None:
    before = _set(synthetic_scan(hosts=2), "app1", "PG-AV-001", Status.PASS)
    now = _set(before, "app1", "PG-AV-001", Status.ERROR)
    drift = compare(now, before)
    assert [(c.host, c.control_id, c.before, c.after) for c in drift.new_failures] == [
        ("app1", "PG-AV-001", Status.PASS, Status.ERROR)
    ]
    assert not drift.fixed and not drift.hosts_added and not drift.hosts_gone


def test_trend_reads_scans_of_the_same_inventory_oldest_first(tmp_path: Path) -> None:
    store = ScanStore(tmp_path / "scans.db")
    scans = [
        synthetic_scan(hosts=2, seed=i, started=T0 + timedelta(days=i), scan_id=f"s{i}")
        for i in range(5)
    ]
    for s in scans:
        store.save(s)
    store.save(replace(scans[0], scan_id="other", inventory="/elsewhere.yml"))
    current = scans[3]
    points = trend(store, current, limit=3)
    assert [p.scan_id for p in points] == ["s1", "s2", "s3"]
    assert points[-1].compliance == scan_compliance(current)
    assert [p.scan_id for p in trend(store, current, limit=1)] == ["s3"]


def test_trend_includes_an_unstored_current_scan(tmp_path: Path) -> None:
    store = ScanStore(tmp_path / "scans.db")
    store.save(synthetic_scan(hosts=1, scan_id="old", started=T0 - timedelta(days=1)))
    current = synthetic_scan(hosts=1, scan_id="new")
    assert [p.scan_id for p in trend(store, current, limit=10)] == ["old", "new"]
