"""The scan store: every scan kept with its evidence, for history, drift and trends.

SQLite by default (``$XDG_STATE_HOME/parcelguard/scans.db``); ``--store`` takes a path or
a ``sqlite:///`` URL. A scan's canonical JSON document is kept in two parts, each stored
once: its header (``scans.document``, with an empty host list) and each host's part
(``host_scans.document``, in the scan's order); ``load`` puts them together again. Flat
tables next to them answer history, trend and drift questions without parsing documents.
Stores of schema 1 (whole documents) are converted when first opened.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from parcelguard.errors import ParcelguardError
from parcelguard.paths import state_home
from parcelguard.scanners.model import ScanResult, SchemaError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scans (
    scan_id TEXT PRIMARY KEY,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    inventory TEXT NOT NULL,
    complete INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    document TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    scan_id TEXT NOT NULL REFERENCES scans(scan_id) ON DELETE CASCADE,
    host TEXT NOT NULL,
    control_id TEXT NOT NULL,
    status TEXT NOT NULL,
    severity TEXT NOT NULL,
    PRIMARY KEY (scan_id, host, control_id)
);
CREATE INDEX IF NOT EXISTS results_host_control ON results(host, control_id);
CREATE INDEX IF NOT EXISTS scans_started ON scans(started);
"""
# Version 2 (the dashboard): each host's part of a scan on its own, so a host page reads
# one host, not a whole fleet's document; each host's newest scan; and the counts of
# each scan by control and status, so trends need no results scan.
_SCHEMA_2 = """
CREATE TABLE IF NOT EXISTS host_scans (
    scan_id TEXT NOT NULL REFERENCES scans(scan_id) ON DELETE CASCADE,
    host TEXT NOT NULL,
    position INTEGER NOT NULL,
    started TEXT NOT NULL,
    zones TEXT NOT NULL,
    reachable INTEGER NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (scan_id, host)
);
CREATE INDEX IF NOT EXISTS host_scans_host ON host_scans(host, started);
CREATE TABLE IF NOT EXISTS host_latest (
    host TEXT PRIMARY KEY,
    scan_id TEXT NOT NULL,
    started TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS scan_counts (
    scan_id TEXT NOT NULL REFERENCES scans(scan_id) ON DELETE CASCADE,
    control_id TEXT NOT NULL,
    status TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (scan_id, control_id, status)
);
"""
SCHEMA_VERSION = 2


class StoreError(ParcelguardError):
    pass


@dataclass(frozen=True)
class ScanSummary:
    scan_id: str
    started: str
    inventory: str
    complete: bool


def default_store() -> Path:
    return state_home() / "scans.db"


def resolve(location: str | None) -> Path:
    """A store path from ``--store``: a file path or ``sqlite:///absolute/path``."""
    if not location:
        return default_store()
    if "://" in location:
        url = urlparse(location)
        if url.scheme != "sqlite":
            raise StoreError(
                f"unsupported store URL scheme {url.scheme!r}", "use a path or sqlite:///path"
            )
        if not url.path:
            raise StoreError(f"store URL {location!r} names no file")
        return Path(url.path)
    return Path(location).expanduser()


class ScanStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(path, timeout=30)) as db:
                db.execute("PRAGMA journal_mode=WAL")  # the dashboard reads while scans land
                db.executescript(_SCHEMA + _SCHEMA_2)
                if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                    self._migrate(db)
        except (OSError, sqlite3.Error, SchemaError) as exc:
            raise StoreError(f"cannot open scan store {path}: {exc}") from exc

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            db.execute("PRAGMA foreign_keys = ON")
            with db:  # one transaction: all of a scan is stored, or none of it
                yield db

    def save(self, scan: ScanResult) -> None:
        try:
            with self._connect() as db:
                self._write(db, scan)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot save scan to {self.path}: {exc}") from exc

    @staticmethod
    def _write(db: sqlite3.Connection, scan: ScanResult, whole: str | None = None) -> None:
        """Every table's rows of one scan (replaced whole when the scan is saved again).

        The header's ``hosts`` is null, so that a version before schema 2 refuses it
        instead of reading a scan of no hosts. ``whole``: keep this document as it is
        (a converted one the model would not write back identically)."""
        header = scan.to_dict()
        hosts = header.pop("hosts")
        header["hosts"] = None
        db.execute(
            "INSERT OR REPLACE INTO scans VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                scan.scan_id,
                scan.started.isoformat(),
                scan.finished.isoformat(),
                scan.inventory,
                int(scan.complete),
                scan.schema_version,
                whole or json.dumps(header, ensure_ascii=False),
            ),
        )
        for table in ("results", "host_scans", "scan_counts"):
            db.execute(f"DELETE FROM {table} WHERE scan_id = ?", (scan.scan_id,))  # noqa: S608
        db.executemany(
            "INSERT INTO results VALUES (?, ?, ?, ?, ?)",
            [
                (scan.scan_id, h.host, r.control_id, r.status.value, r.severity.value)
                for h in scan.hosts
                for r in h.results
            ],
        )
        started = scan.started.isoformat()
        db.executemany(
            "INSERT INTO host_scans VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    scan.scan_id,
                    h.host,
                    position,
                    started,
                    " ".join(h.zones),
                    int(h.reachable),
                    json.dumps(document, ensure_ascii=False),
                )
                for position, (h, document) in enumerate(zip(scan.hosts, hosts, strict=True))
            ],
        )
        counts = Counter((r.control_id, r.status.value) for h in scan.hosts for r in h.results)
        db.executemany(
            "INSERT INTO scan_counts VALUES (?, ?, ?, ?)",
            [(scan.scan_id, c, s, n) for (c, s), n in counts.items()],
        )
        # A host's newest evidence, from whichever scan reached it last (an interrupted
        # scan's hosts were scanned in full; its missing hosts keep their older state).
        db.executemany(
            "INSERT INTO host_latest VALUES (?, ?, ?) ON CONFLICT(host) DO UPDATE SET "
            "scan_id = excluded.scan_id, started = excluded.started "
            "WHERE excluded.started >= host_latest.started",
            [(h.host, scan.scan_id, started) for h in scan.hosts],
        )

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Split schema-1 documents and fill the new tables, once, in one transaction,
        after a copy of the store is made (``scans.db.schema1.bak``). A document this
        version cannot read, or would not write back the same (keys it does not know),
        is kept whole; ``load`` reads it as before."""
        if db.execute("SELECT count(*) FROM scans").fetchone()[0]:
            backup = self.path.with_name(self.path.name + ".schema1.bak")
            if not backup.exists():
                with closing(sqlite3.connect(backup)) as copy:
                    db.backup(copy)
        with db:
            ids = [row[0] for row in db.execute("SELECT scan_id FROM scans ORDER BY started")]
            for scan_id in ids:
                (document,) = db.execute(
                    "SELECT document FROM scans WHERE scan_id = ?", (scan_id,)
                ).fetchone()
                try:
                    scan = ScanResult.from_json(document)
                except SchemaError:
                    continue
                same = json.loads(document) == json.loads(scan.to_json())
                self._write(db, scan, whole=None if same else document)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def scans(self, limit: int = 100) -> list[ScanSummary]:
        """The newest scans first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT scan_id, started, inventory, complete FROM scans "
                "ORDER BY started DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [ScanSummary(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def load(self, scan_id: str) -> ScanResult:
        with self._connect() as db:
            row = db.execute("SELECT document FROM scans WHERE scan_id = ?", (scan_id,)).fetchone()
            if row is None:
                raise StoreError(f"no scan {scan_id!r} in {self.path}")
            hosts = db.execute(
                "SELECT document FROM host_scans WHERE scan_id = ? ORDER BY position", (scan_id,)
            ).fetchall()
        try:
            try:
                data = json.loads(row[0])
            except ValueError as exc:
                raise SchemaError(f"not valid JSON: {exc}") from exc
            if not isinstance(data, dict):
                raise SchemaError("not a parcelguard results document")
            if data.get("hosts") is None:  # a split document (a whole one keeps its hosts)
                data["hosts"] = [json.loads(h[0]) for h in hosts]
            return ScanResult.from_dict(data)
        except (SchemaError, ValueError) as exc:
            raise StoreError(f"scan {scan_id} in {self.path}: {exc}") from exc

    def predecessor(self, scan: ScanResult) -> ScanResult | None:
        """The stored scan to compare ``scan`` with (see :func:`predecessor_id`)."""
        with self._connect() as db:
            found = predecessor_id(
                db, scan.started.isoformat(), frozenset(h.host for h in scan.hosts)
            )
        return self.load(found) if found else None

    def latest(self, before: str | None = None) -> ScanResult | None:
        """The newest stored scan, or the newest one started before ``before``."""
        query = "SELECT scan_id FROM scans"
        params: tuple[str, ...] = ()
        if before is not None:
            query += " WHERE started < ?"
            params = (before,)
        with self._connect() as db:
            row = db.execute(query + " ORDER BY started DESC LIMIT 1", params).fetchone()
        return self.load(row[0]) if row else None


def hosts_of(db: sqlite3.Connection, scan_id: str) -> frozenset[str]:
    """The hosts a stored scan reached."""
    return frozenset(
        r[0] for r in db.execute("SELECT host FROM host_scans WHERE scan_id = ?", (scan_id,))
    )


def predecessor_id(
    db: sqlite3.Connection, started: str, hosts: frozenset[str], look_back: int = 50
) -> str | None:
    """The scan that a scan of ``hosts`` started at ``started`` is compared with: the
    newest earlier scan of the same hosts (its schedule's, usually); else the newest
    earlier one sharing a host; else the newest earlier one. So a one-host scan made
    from the dashboard is never taken for a fleet scan's predecessor."""
    earlier = [
        str(r[0])
        for r in db.execute(
            "SELECT scan_id FROM scans WHERE started < ? ORDER BY started DESC LIMIT ?",
            (started, look_back),
        )
    ]
    sharing = None
    for candidate in earlier:
        theirs = hosts_of(db, candidate)
        if theirs == hosts:
            return candidate
        if sharing is None and theirs & hosts:
            sharing = candidate
    return sharing or (earlier[0] if earlier else None)
