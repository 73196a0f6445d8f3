"""Drift between two scans and the compliance trend over stored scans."""

from __future__ import annotations

from parcelguard.reports.build import scan_compliance
from parcelguard.reports.model import FAILING, Change, Drift, TrendPoint
from parcelguard.scanners.model import ScanResult, Status
from parcelguard.scanners.store import ScanStore


def compare(current: ScanResult, previous: ScanResult) -> Drift:
    """What changed from ``previous`` to ``current``, for hosts in both scans.

    A new failure is a result that is FAIL or ERROR now and was not before (or did not
    exist); fixed is FAIL or ERROR before and PASS now; any other change of status is
    listed as such. Hosts only in one scan are listed as added or gone.
    """
    before = {h.host: {r.control_id: r.status for r in h.results} for h in previous.hosts}
    now_hosts = [h.host for h in current.hosts]
    new_failures: list[Change] = []
    fixed: list[Change] = []
    other: list[Change] = []
    for h in current.hosts:
        old = before.get(h.host)
        if old is None:
            continue
        for r in h.results:
            was = old.get(r.control_id)
            if was == r.status:
                continue
            if r.status in FAILING and was not in FAILING:
                new_failures.append(
                    Change(h.host, r.control_id, was or Status.NOT_APPLICABLE, r.status)
                )
            elif was in FAILING and r.status is Status.PASS:
                fixed.append(Change(h.host, r.control_id, was, r.status))
            elif was is not None:
                other.append(Change(h.host, r.control_id, was, r.status))
    return Drift(
        previous_scan_id=previous.scan_id,
        previous_started=previous.started,
        new_failures=tuple(new_failures),
        fixed=tuple(fixed),
        other_changes=tuple(other),
        hosts_added=tuple(n for n in now_hosts if n not in before),
        hosts_gone=tuple(n for n in before if n not in now_hosts),
    )


def trend(store: ScanStore, current: ScanResult, limit: int) -> tuple[TrendPoint, ...]:
    """Compliance of up to ``limit`` scans of the same inventory, oldest first.

    Reads the store's newest scans that started no later than ``current``; ``current``
    is always the last point, whether or not it is stored.
    """
    points = [TrendPoint(current.scan_id, current.started, scan_compliance(current))]
    if limit <= 1:
        return tuple(points)
    cutoff = current.started.isoformat()
    for summary in store.scans(limit=max(limit * 5, 50)):
        if len(points) >= limit:
            break
        if summary.scan_id == current.scan_id or summary.started > cutoff:
            continue
        if summary.inventory != current.inventory:
            continue
        scan = store.load(summary.scan_id)
        points.append(TrendPoint(scan.scan_id, scan.started, scan_compliance(scan)))
    return tuple(sorted(points, key=lambda p: p.started))
