"""What the dashboard shows, read from the scan store's flat tables (never written).

Every page reads a bounded amount: the fleet page one row per host and control of each
host's newest scan, a host page one host's part of a scan, drift one join of two scans'
results. Nothing parses a whole fleet's scan document except the report downloads.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from parcelguard.reports.model import COMPLIANT, FAILING, JUDGED, Compliance
from parcelguard.scanners.catalog import Catalog
from parcelguard.scanners.model import HostResult, Status, host_from_dict
from parcelguard.scanners.store import hosts_of, predecessor_id

TREND_POINTS = 30
HISTORY_SCANS = 12


class NotFound(LookupError):
    pass


@dataclass(frozen=True)
class Tally:
    """Results by status, and the compliance they make."""

    counts: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, counter: Counter[str]) -> Tally:
        return cls(tuple((s.value, counter[s.value]) for s in Status if counter[s.value]))

    def get(self, status: Status) -> int:
        return dict(self.counts).get(status.value, 0)

    @property
    def compliance(self) -> Compliance:
        judged = sum(n for s, n in self.counts if Status(s) in JUDGED)
        good = sum(n for s, n in self.counts if Status(s) in COMPLIANT)
        return Compliance(judged, good)

    @property
    def failing(self) -> int:
        return sum(n for s, n in self.counts if Status(s) in FAILING)


@dataclass(frozen=True)
class Row:
    key: str  # article number, zone, host or control id
    label: str
    tally: Tally


@dataclass(frozen=True)
class TrendDot:
    scan_id: str
    started: str
    percent: float | None
    hosts: int = 0


@dataclass(frozen=True)
class Fleet:
    hosts: int
    unreachable: tuple[str, ...]
    tally: Tally
    articles: tuple[Row, ...]
    zones: tuple[Row, ...]
    worst: tuple[Row, ...]  # hosts with the most failing results
    trend: tuple[TrendDot, ...]
    newest: str | None


@dataclass(frozen=True)
class HostLine:
    host: str
    zones: str
    reachable: bool
    scan_id: str
    started: str
    tally: Tally


@dataclass(frozen=True)
class HostPage:
    result: HostResult
    scan_id: str
    scans: tuple[tuple[str, str], ...]  # (scan id, started), newest first
    history: tuple[tuple[str, tuple[str, ...]], ...]  # control id, statuses by scan


@dataclass(frozen=True)
class ControlLine:
    control_id: str
    title: str
    severity: str
    tally: Tally
    failing_hosts: tuple[str, ...]


@dataclass(frozen=True)
class ScanLine:
    scan_id: str
    started: str
    finished: str
    inventory: str
    complete: bool
    hosts: int
    tally: Tally


@dataclass(frozen=True)
class DriftLine:
    host: str
    control_id: str
    before: str
    after: str
    kind: str  # "regressed", "fixed" or "changed"


@dataclass(frozen=True)
class DriftPage:
    before: ScanLine
    after: ScanLine
    lines: tuple[DriftLine, ...]
    hosts_added: tuple[str, ...]
    hosts_gone: tuple[str, ...]
    truncated: bool

    def of_kind(self, kind: str) -> tuple[DriftLine, ...]:
        return tuple(line for line in self.lines if line.kind == kind)


def drift_kind(before: str, after: str) -> str:
    b, a = Status(before), Status(after)
    if a in FAILING and b not in FAILING:
        return "regressed"
    if b in FAILING and a in COMPLIANT:
        return "fixed"
    return "changed"


class Views:
    """Read-only queries of one scan store.

    Joins that start from ``host_latest`` are written ``CROSS JOIN``: SQLite then keeps
    it as the outer loop and seeks each host's rows by the results' primary key. Left to
    itself (no statistics) the planner scanned all of ``results`` instead: 1.1 s instead
    of 0.04 s for 1,000 hosts x 100 scans.
    """

    def __init__(self, path: Path, catalog: Catalog) -> None:
        self.path = path
        self.catalog = catalog

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        if not self.path.exists():
            raise NotFound(f"no scan store at {self.path} yet: no scan has run")
        uri = f"file:{quote(str(self.path))}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
            db.row_factory = sqlite3.Row
            yield db

    # -- fleet ------------------------------------------------------------------------------
    def fleet(self) -> Fleet:
        with self._db() as db:
            hosts = self._latest_hosts(db)
            # Counted in SQL, by control (for articles): a few hundred rows, not one per
            # result; the hosts' own tallies give the zones and the worst hosts.
            by_control = db.execute(
                "SELECT r.control_id, r.status, count(*) FROM host_latest l "
                "CROSS JOIN results r ON r.scan_id = l.scan_id AND r.host = l.host "
                "GROUP BY r.control_id, r.status"
            ).fetchall()
            newest = db.execute("SELECT max(started) FROM scans").fetchone()[0]
        total: Counter[str] = Counter()
        by_article: dict[int, Counter[str]] = defaultdict(Counter)
        by_zone: dict[str, Counter[str]] = defaultdict(Counter)
        articles_of = {c.id: c.meta.articles for c in self.catalog.controls}
        for control_id, status, n in by_control:
            total[status] += n
            for article in articles_of.get(control_id, ()):
                by_article[article][status] += n
        for line in hosts:
            for zone in line.zones.split() or ["(none)"]:
                by_zone[zone].update(dict(line.tally.counts))
        titles = _article_titles()
        worst = sorted(
            (Row(h.host, h.host, h.tally) for h in hosts),
            key=lambda r: (-r.tally.failing, r.key),
        )
        return Fleet(
            hosts=len(hosts),
            unreachable=tuple(h.host for h in hosts if not h.reachable),
            tally=Tally.of(total),
            articles=tuple(
                Row(str(a), titles.get(a, ""), Tally.of(by_article[a])) for a in sorted(by_article)
            ),
            zones=tuple(Row(z, z, Tally.of(by_zone[z])) for z in sorted(by_zone)),
            worst=tuple(r for r in worst[:15] if r.tally.failing),
            trend=self.trend(),
            newest=newest,
        )

    def trend(self, points: int = TREND_POINTS) -> tuple[TrendDot, ...]:
        with self._db() as db:
            scans = db.execute(
                "SELECT scan_id, started FROM scans ORDER BY started DESC LIMIT ?", (points,)
            ).fetchall()
            if not scans:
                return ()
            marks = ",".join("?" * len(scans))
            ids = [s["scan_id"] for s in scans]
            counts = db.execute(
                f"SELECT scan_id, status, sum(n) FROM scan_counts WHERE scan_id IN ({marks}) "  # noqa: S608
                "GROUP BY scan_id, status",
                ids,
            ).fetchall()
            sizes = dict(
                db.execute(
                    f"SELECT scan_id, count(*) FROM host_scans WHERE scan_id IN ({marks}) "  # noqa: S608
                    "GROUP BY scan_id",
                    ids,
                ).fetchall()
            )
        per = _tallies(counts)
        return tuple(
            TrendDot(
                s["scan_id"],
                s["started"],
                Tally.of(per[s["scan_id"]]).compliance.percent,
                sizes.get(s["scan_id"], 0),
            )
            for s in reversed(scans)
        )

    def hosts(self) -> tuple[HostLine, ...]:
        with self._db() as db:
            return self._latest_hosts(db)

    @staticmethod
    def _latest_hosts(db: sqlite3.Connection) -> tuple[HostLine, ...]:
        """Every host by its newest scan, with its results counted by status, by name."""
        latest = db.execute(
            "SELECT l.host, l.scan_id, l.started, h.zones, h.reachable FROM host_latest l "
            "CROSS JOIN host_scans h ON h.scan_id = l.scan_id AND h.host = l.host "
            "ORDER BY l.host"
        ).fetchall()
        per = _tallies(
            db.execute(
                "SELECT r.host, r.status, count(*) FROM host_latest l "
                "CROSS JOIN results r ON r.scan_id = l.scan_id AND r.host = l.host "
                "GROUP BY r.host, r.status"
            ).fetchall()
        )
        return tuple(
            HostLine(
                r["host"],
                r["zones"],
                bool(r["reachable"]),
                r["scan_id"],
                r["started"],
                Tally.of(per[r["host"]]),
            )
            for r in latest
        )

    # -- host -------------------------------------------------------------------------------
    def host(self, name: str, scan_id: str | None = None) -> HostPage:
        with self._db() as db:
            scans = db.execute(
                "SELECT scan_id, started FROM host_scans WHERE host = ? "
                "ORDER BY started DESC LIMIT ?",
                (name, HISTORY_SCANS),
            ).fetchall()
            if not scans:
                raise NotFound(f"no scan has reached host {name}")
            chosen = scan_id or scans[0]["scan_id"]
            row = db.execute(
                "SELECT document FROM host_scans WHERE scan_id = ? AND host = ?", (chosen, name)
            ).fetchone()
            if row is None:
                raise NotFound(f"scan {chosen} did not reach host {name}")
            ids = [s["scan_id"] for s in scans]
            marks = ",".join("?" * len(ids))
            history = db.execute(
                f"SELECT scan_id, control_id, status FROM results WHERE host = ? "  # noqa: S608
                f"AND scan_id IN ({marks})",
                [name, *ids],
            ).fetchall()
        grid: dict[str, dict[str, str]] = defaultdict(dict)
        for h in history:
            grid[h["control_id"]][h["scan_id"]] = h["status"]
        return HostPage(
            result=host_from_dict(json.loads(row["document"])),
            scan_id=chosen,
            scans=tuple((s["scan_id"], s["started"]) for s in scans),
            history=tuple(
                (control_id, tuple(grid[control_id].get(i, "") for i in ids))
                for control_id in sorted(grid)
            ),
        )

    # -- article ------------------------------------------------------------------------------
    def article(self, number: int) -> tuple[str, tuple[ControlLine, ...]]:
        controls = self.catalog.for_article(number)
        title = _article_titles().get(number)
        if title is None and not controls:
            raise NotFound(f"article {number} is not one the catalog checks or reports")
        lines = []
        with self._db() as db:
            for control in controls:
                rows = db.execute(
                    "SELECT r.host, r.status FROM host_latest l CROSS JOIN results r "
                    "ON r.scan_id = l.scan_id AND r.host = l.host WHERE r.control_id = ? "
                    "ORDER BY r.host",
                    (control.id,),
                ).fetchall()
                lines.append(
                    ControlLine(
                        control.id,
                        control.meta.title,
                        control.meta.severity.value,
                        Tally.of(Counter(r["status"] for r in rows)),
                        tuple(r["host"] for r in rows if Status(r["status"]) in FAILING),
                    )
                )
        return title or "", tuple(lines)

    # -- scans ------------------------------------------------------------------------------
    def scans(self, limit: int = 100, before: str | None = None) -> tuple[ScanLine, ...]:
        """The newest scans first; ``before``: those older than that scan (by start, then
        id, so scans that started at the same moment are neither skipped nor repeated)."""
        query = "SELECT scan_id, started, finished, inventory, complete FROM scans"
        params: list[object] = []
        if before:
            query += (
                " WHERE (started, scan_id) < "
                "(SELECT started, scan_id FROM scans WHERE scan_id = ?)"
            )
            params.append(before)
        with self._db() as db:
            rows = db.execute(
                query + " ORDER BY started DESC, scan_id DESC LIMIT ?", [*params, limit]
            )
            scans = rows.fetchall()
            return tuple(self._scan_line(db, r) for r in scans)

    def scan(self, scan_id: str) -> tuple[ScanLine, tuple[HostLine, ...]]:
        with self._db() as db:
            line = self._scan_by_id(db, scan_id)
            hosts = db.execute(
                "SELECT host, zones, reachable FROM host_scans WHERE scan_id = ? ORDER BY host",
                (scan_id,),
            ).fetchall()
            counts = db.execute(
                "SELECT host, status, count(*) FROM results WHERE scan_id = ? "
                "GROUP BY host, status",
                (scan_id,),
            ).fetchall()
        per = _tallies(counts)
        return line, tuple(
            HostLine(
                h["host"],
                h["zones"],
                bool(h["reachable"]),
                scan_id,
                line.started,
                Tally.of(per[h["host"]]),
            )
            for h in hosts
        )

    def scan_line(self, scan_id: str) -> ScanLine:
        """One scan's summary (NotFound if there is no such scan)."""
        with self._db() as db:
            return self._scan_by_id(db, scan_id)

    def _scan_by_id(self, db: sqlite3.Connection, scan_id: str) -> ScanLine:
        row = db.execute(
            "SELECT scan_id, started, finished, inventory, complete FROM scans WHERE scan_id = ?",
            (scan_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no scan {scan_id}")
        return self._scan_line(db, row)

    def _scan_line(self, db: sqlite3.Connection, row: sqlite3.Row) -> ScanLine:
        counts = db.execute(
            "SELECT status, sum(n) FROM scan_counts WHERE scan_id = ? GROUP BY status",
            (row["scan_id"],),
        ).fetchall()
        (hosts,) = db.execute(
            "SELECT count(*) FROM host_scans WHERE scan_id = ?", (row["scan_id"],)
        ).fetchone()
        return ScanLine(
            row["scan_id"],
            row["started"],
            row["finished"],
            row["inventory"],
            bool(row["complete"]),
            hosts,
            Tally.of(Counter({s: n for s, n in counts})),
        )

    def previous_scan(self, scan_id: str) -> str | None:
        """The scan ``scan_id`` is compared with, as reports choose it."""
        with self._db() as db:
            row = db.execute("SELECT started FROM scans WHERE scan_id = ?", (scan_id,)).fetchone()
            if row is None:
                return None
            return predecessor_id(db, row[0], hosts_of(db, scan_id))

    def drift(self, before_id: str, after_id: str, limit: int = 2000) -> DriftPage:
        """Every (host, control) whose status differs between two scans, hosts in both."""
        with self._db() as db:
            lines = {scan_id: self._scan_by_id(db, scan_id) for scan_id in (before_id, after_id)}
            if lines[before_id].started > lines[after_id].started:
                before_id, after_id = after_id, before_id  # always from older to newer
            changed = db.execute(
                "SELECT a.host, a.control_id, b.status AS before, a.status AS after "
                "FROM results a JOIN results b ON b.scan_id = ? AND b.host = a.host "
                "AND b.control_id = a.control_id WHERE a.scan_id = ? AND a.status <> b.status "
                "ORDER BY a.host, a.control_id LIMIT ?",
                (before_id, after_id, limit + 1),
            ).fetchall()
            before_hosts = {
                r[0]
                for r in db.execute("SELECT host FROM host_scans WHERE scan_id = ?", (before_id,))
            }
            after_hosts = {
                r[0]
                for r in db.execute("SELECT host FROM host_scans WHERE scan_id = ?", (after_id,))
            }
        return DriftPage(
            before=lines[before_id],
            after=lines[after_id],
            lines=tuple(
                DriftLine(
                    r["host"],
                    r["control_id"],
                    r["before"],
                    r["after"],
                    drift_kind(r["before"], r["after"]),
                )  # fmt: skip
                for r in changed[:limit]
            ),
            hosts_added=tuple(sorted(after_hosts - before_hosts)),
            hosts_gone=tuple(sorted(before_hosts - after_hosts)),
            truncated=len(changed) > limit,
        )


def _tallies(rows: list[sqlite3.Row]) -> dict[str, Counter[str]]:
    """(key, status, count) rows as a counter of statuses per key."""
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for key, status, n in rows:
        per[key][status] += n
    return per


def _article_titles() -> dict[int, str]:
    from parcelguard.reports import texts

    return {n: a.title("en") for n, a in texts.articles().items()}
