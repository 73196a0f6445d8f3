"""The scan store: every scan kept with its evidence, for history, drift and trends.

SQLite by default (``$XDG_STATE_HOME/parcelguard/scans.db``); ``--store`` takes a path or
a ``sqlite:///`` URL. The canonical JSON document is stored whole; a flat results table
next to it answers history questions without parsing every document.
"""

from __future__ import annotations

import sqlite3
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
            with self._connect() as db:
                db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
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
                db.execute(
                    "INSERT OR REPLACE INTO scans VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        scan.scan_id,
                        scan.started.isoformat(),
                        scan.finished.isoformat(),
                        scan.inventory,
                        int(scan.complete),
                        scan.schema_version,
                        scan.to_json(),
                    ),
                )
                db.execute("DELETE FROM results WHERE scan_id = ?", (scan.scan_id,))
                db.executemany(
                    "INSERT INTO results VALUES (?, ?, ?, ?, ?)",
                    [
                        (scan.scan_id, h.host, r.control_id, r.status.value, r.severity.value)
                        for h in scan.hosts
                        for r in h.results
                    ],
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot save scan to {self.path}: {exc}") from exc

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
        try:
            return ScanResult.from_json(row[0])
        except SchemaError as exc:
            raise StoreError(f"scan {scan_id} in {self.path}: {exc}") from exc

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
