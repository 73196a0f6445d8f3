"""The offboarding store: durable job queue, per-host evidence and the audit trail.

One SQLite file (``$XDG_STATE_HOME/parcelguard/offboarding.db`` by default), in WAL mode,
opened afresh for every operation so that the service's threads and a CLI run can share
it. A job is claimed with a lease naming its worker (``host:pid``); a lease whose
process has died on this machine is taken over at once, any other when it expires, so
a crash or restart resumes unfinished work.

The audit trail is append-only (SQLite triggers refuse UPDATE and DELETE) and
tamper-evident: every entry holds the SHA-256 of the previous entry and of itself, over
a canonical JSON form, so an edit anywhere breaks :meth:`OffboardStore.verify_trail`.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from parcelguard.offboard.model import (
    DONE_HOST_STATES,
    HostRecord,
    HostState,
    Job,
    JobState,
    LeaverEvent,
    OffboardError,
    Source,
)
from parcelguard.paths import state_home
from parcelguard.sqlite import connect

SCHEMA_VERSION = 1
GENESIS = "0" * 64
LEASE_SECONDS = 120.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    ticket TEXT NOT NULL,
    source TEXT NOT NULL,
    actor TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    verified_at TEXT,
    left_at TEXT,
    inventory TEXT NOT NULL,
    host_limit TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    dry_run INTEGER NOT NULL DEFAULT 0,
    secrets TEXT NOT NULL DEFAULT '[]',
    public_keys TEXT NOT NULL DEFAULT '[]',
    lease_owner TEXT,
    lease_until REAL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, next_attempt);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL,
    source TEXT NOT NULL,
    actor TEXT NOT NULL,
    ticket TEXT NOT NULL,
    received_at TEXT NOT NULL,
    left_at TEXT,
    job_id INTEGER NOT NULL REFERENCES jobs(id)
);
CREATE TABLE IF NOT EXISTS job_hosts (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    host TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    revoked_at TEXT,
    verified_at TEXT,
    steps TEXT NOT NULL DEFAULT '[]',
    verification TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (job_id, host)
);
CREATE TABLE IF NOT EXISTS trail (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    job_id INTEGER,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS trail_no_update BEFORE UPDATE ON trail
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS trail_no_delete BEFORE DELETE ON trail
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS scim_resources (id TEXT PRIMARY KEY, document TEXT NOT NULL);
"""


def default_db() -> Path:
    return state_home() / "offboarding.db"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive_here(owner: str | None) -> bool:
    """False only when ``owner`` is a process on this machine that no longer exists."""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's lease: wait for it to expire
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(prev: str, seq: int, at: str, job_id: int | None, kind: str, data: str) -> str:
    body = canonical([prev, seq, at, job_id, kind, data])
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


class LeaseLost(OffboardError):
    """Another worker took the job over (this one was presumed dead)."""


@dataclass(frozen=True)
class TrailEntry:
    seq: int
    at: str
    job_id: int | None
    kind: str
    data: dict[str, Any]
    hash: str


@dataclass(frozen=True)
class Enqueued:
    job_id: int
    created: bool  # False: a duplicate event, or attached to an open job of that person
    duplicate: bool


class OffboardStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._write_lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with self._connect() as db:
                db.executescript(_SCHEMA)
                row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if row is None:
                    db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                elif int(row[0]) > SCHEMA_VERSION:
                    raise OffboardError(
                        f"{path} was written by a newer parcelguard (schema {row[0]})"
                    )
            path.chmod(0o600)
        except sqlite3.Error as exc:
            raise OffboardError(f"cannot open offboarding store {path}: {exc}") from exc

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return connect(self.path, synchronous_full=True)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: all of it is written, or none."""
        with self._write_lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- audit trail -----------------------------------------------------------------
    @staticmethod
    def _append(
        db: sqlite3.Connection, kind: str, data: dict[str, Any], job_id: int | None
    ) -> None:
        last = db.execute("SELECT seq, hash FROM trail ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last["seq"] + 1, last["hash"]) if last else (1, GENESIS)
        at = now_iso()
        text = canonical(data)
        digest = entry_hash(prev, seq, at, job_id, kind, text)
        db.execute(
            "INSERT INTO trail (seq, at, job_id, kind, data, prev, hash) VALUES (?,?,?,?,?,?,?)",
            (seq, at, job_id, kind, text, prev, digest),
        )

    def record(self, kind: str, data: dict[str, Any], job_id: int | None = None) -> None:
        with self._tx() as db:
            self._append(db, kind, data, job_id)

    def trail(self, job_id: int | None = None) -> list[TrailEntry]:
        with self._connect() as db:
            if job_id is None:
                rows = db.execute("SELECT * FROM trail ORDER BY seq").fetchall()
            else:
                rows = db.execute(
                    "SELECT * FROM trail WHERE job_id = ? ORDER BY seq", (job_id,)
                ).fetchall()
        return [
            TrailEntry(r["seq"], r["at"], r["job_id"], r["kind"], json.loads(r["data"]), r["hash"])
            for r in rows
        ]

    def verify_trail(self) -> tuple[int, list[str]]:
        """Recompute the chain: (entries checked, problems found)."""
        problems: list[str] = []
        prev = GENESIS
        count = 0
        with self._connect() as db:
            for r in db.execute("SELECT * FROM trail ORDER BY seq"):
                count += 1
                if r["seq"] != count:
                    problems.append(f"entry {count} is missing (next is {r['seq']})")
                    count = r["seq"]
                if r["prev"] != prev:
                    problems.append(f"entry {r['seq']}: does not follow the entry before it")
                expect = entry_hash(r["prev"], r["seq"], r["at"], r["job_id"], r["kind"], r["data"])
                if expect != r["hash"]:
                    problems.append(f"entry {r['seq']} ({r['kind']}): content was changed")
                prev = r["hash"]
        return count, problems

    # -- events and jobs ----------------------------------------------------------------
    def enqueue(
        self,
        event: LeaverEvent,
        *,
        inventory: str,
        hosts: Sequence[str],
        host_limit: str | None = None,
        dry_run: bool = False,
        secrets: Sequence[str] = (),
    ) -> Enqueued:
        """Record ``event``; start a job unless it is a duplicate or one is already open."""
        event_data = {
            "key": event.key,
            "username": event.username,
            "source": event.source.value,
            "actor": event.actor,
            "ticket": event.ticket,
            "left_at": event.left_at.isoformat() if event.left_at else None,
            "detail": event.detail,
        }
        with self._tx() as db:
            seen = db.execute("SELECT job_id FROM events WHERE key = ?", (event.key,)).fetchone()
            if seen is not None:
                self._append(db, "event_duplicate", event_data, seen["job_id"])
                return Enqueued(seen["job_id"], created=False, duplicate=True)
            # Join an open job only if it covers the same hosts: a job limited to db1 must
            # not swallow a trigger for the whole fleet.
            open_job = db.execute(
                "SELECT id FROM jobs WHERE username = ? AND state NOT IN (?, ?) AND dry_run = 0"
                " AND inventory = ? AND host_limit IS ?",
                (
                    event.username,
                    JobState.VERIFIED.value,
                    JobState.CANCELLED.value,
                    inventory,
                    host_limit,
                ),
            ).fetchone()
            if open_job is not None and not dry_run:
                job_id = open_job["id"]
                created = False
            else:
                stamp = now_iso()
                cur = db.execute(
                    "INSERT INTO jobs (username, ticket, source, actor, state, created_at,"
                    " updated_at, left_at, inventory, host_limit, dry_run, secrets)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        event.username,
                        event.ticket,
                        event.source.value,
                        event.actor,
                        JobState.QUEUED.value,
                        stamp,
                        stamp,
                        (event.left_at or event.received_at).isoformat(timespec="seconds"),
                        inventory,
                        host_limit,
                        int(dry_run),
                        json.dumps(sorted(secrets)),
                    ),
                )
                job_id = int(cur.lastrowid or 0)
                db.executemany(
                    "INSERT INTO job_hosts (job_id, host, state) VALUES (?,?,?)",
                    [(job_id, h, HostState.PENDING.value) for h in hosts],
                )
                created = True
            db.execute(
                "INSERT INTO events (key, username, source, actor, ticket, received_at,"
                " left_at, job_id) VALUES (?,?,?,?,?,?,?,?)",
                (
                    event.key,
                    event.username,
                    event.source.value,
                    event.actor,
                    event.ticket,
                    event.received_at.isoformat(timespec="seconds"),
                    event.left_at.isoformat() if event.left_at else None,
                    job_id,
                ),
            )
            self._append(db, "event_received", event_data, job_id)
            if created:
                self._append(
                    db,
                    "job_created",
                    {
                        "username": event.username,
                        "hosts": list(hosts),
                        "inventory": inventory,
                        "limit": host_limit,
                        "dry_run": dry_run,
                        "secrets_to_rotate": sorted(secrets),
                    },
                    job_id,
                )
        return Enqueued(job_id, created=created, duplicate=False)

    def claim(self, job_id: int | None = None, *, owner: str | None = None) -> Job | None:
        """Take the lease of ``job_id`` (or of the next due job); None if none is free."""
        owner = owner or worker_id()
        now = time.time()
        with self._tx() as db:
            if job_id is None:
                rows = db.execute(
                    "SELECT id, lease_owner, lease_until FROM jobs WHERE state IN (?,?,?)"
                    " AND next_attempt <= ? ORDER BY next_attempt, id",
                    (JobState.QUEUED.value, JobState.PENDING.value, JobState.RUNNING.value, now),
                ).fetchall()
            else:
                rows = db.execute(
                    "SELECT id, lease_owner, lease_until FROM jobs"
                    " WHERE id = ? AND state IN (?,?,?)",
                    (job_id, JobState.QUEUED.value, JobState.PENDING.value, JobState.RUNNING.value),
                ).fetchall()
            for r in rows:
                held = r["lease_owner"] and r["lease_until"] and r["lease_until"] > now
                if held and r["lease_owner"] != owner and _alive_here(r["lease_owner"]):
                    continue
                if r["lease_owner"] and r["lease_owner"] != owner:
                    self._append(
                        db,
                        "job_resumed",
                        {"previous_worker": r["lease_owner"], "worker": owner},
                        r["id"],
                    )
                db.execute(
                    "UPDATE jobs SET state=?, lease_owner=?, lease_until=?, attempts=attempts+1,"
                    " updated_at=? WHERE id=?",
                    (JobState.RUNNING.value, owner, now + LEASE_SECONDS, now_iso(), r["id"]),
                )
                return self._job(db, r["id"])
        return None

    def renew(self, job_id: int, owner: str | None = None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET lease_until=? WHERE id=? AND lease_owner=?",
                (time.time() + LEASE_SECONDS, job_id, owner or worker_id()),
            )

    @staticmethod
    def _fence(db: sqlite3.Connection, job_id: int, owner: str | None) -> None:
        """Refuse a write by a worker that no longer holds the job's lease."""
        if owner is None:
            return
        row = db.execute("SELECT lease_owner FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None or row["lease_owner"] != owner:
            raise LeaseLost(f"job {job_id} is no longer held by {owner}")

    def release(
        self, job_id: int, state: JobState, next_attempt: float = 0.0, owner: str | None = None
    ) -> None:
        with self._tx() as db:
            self._fence(db, job_id, owner)
            verified = now_iso() if state is JobState.VERIFIED else None
            db.execute(
                "UPDATE jobs SET state=?, lease_owner=NULL, lease_until=NULL, next_attempt=?,"
                " updated_at=?, verified_at=COALESCE(?, verified_at) WHERE id=?",
                (state.value, next_attempt, now_iso(), verified, job_id),
            )
            self._append(db, "job_" + state.value, {"next_attempt": next_attempt or None}, job_id)

    def update_host(
        self,
        job_id: int,
        host: str,
        state: HostState,
        *,
        error: str = "",
        steps: Sequence[dict[str, Any]] | None = None,
        verification: dict[str, Any] | None = None,
        trail_kind: str,
        trail_data: dict[str, Any],
        owner: str | None = None,
    ) -> None:
        stamp = now_iso()
        with self._tx() as db:
            self._fence(db, job_id, owner)
            sets = ["state=?", "last_error=?", "attempts=attempts+?"]
            args: list[Any] = [state.value, error, int(trail_kind.startswith("host_revoke"))]
            if steps is not None:
                sets.append("steps=?")
                args.append(json.dumps(list(steps)))
            if state is HostState.REVOKED:
                sets.append("revoked_at=COALESCE(revoked_at, ?)")
                args.append(stamp)
            if verification is not None:
                sets.append("verification=?")
                args.append(json.dumps(verification))
            if state in DONE_HOST_STATES:
                sets.append("verified_at=?")
                args.append(stamp)
            db.execute(
                f"UPDATE job_hosts SET {', '.join(sets)} WHERE job_id=? AND host=?",  # noqa: S608
                (*args, job_id, host),
            )
            self._append(db, trail_kind, {"host": host, **trail_data}, job_id)

    def add_public_keys(self, job_id: int, keys: Sequence[str]) -> None:
        if not keys:
            return
        with self._tx() as db:
            row = db.execute("SELECT public_keys FROM jobs WHERE id=?", (job_id,)).fetchone()
            known = json.loads(row["public_keys"]) if row else []
            merged = sorted(set(known) | set(keys))
            db.execute("UPDATE jobs SET public_keys=? WHERE id=?", (json.dumps(merged), job_id))

    def cancel(self, job_id: int, reason: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state=?, lease_owner=NULL, lease_until=NULL, updated_at=?"
                " WHERE id=?",
                (JobState.CANCELLED.value, now_iso(), job_id),
            )
            self._append(db, "job_cancelled", {"reason": reason}, job_id)

    # -- reading -------------------------------------------------------------------------
    @staticmethod
    def _job(db: sqlite3.Connection, job_id: int) -> Job | None:
        r = db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        if r is None:
            return None
        hosts = tuple(
            HostRecord(
                job_id=h["job_id"],
                host=h["host"],
                state=HostState(h["state"]),
                attempts=h["attempts"],
                last_error=h["last_error"],
                revoked_at=h["revoked_at"],
                verified_at=h["verified_at"],
                steps=tuple(json.loads(h["steps"])),
                verification=json.loads(h["verification"]),
            )
            for h in db.execute("SELECT * FROM job_hosts WHERE job_id=? ORDER BY host", (job_id,))
        )
        return Job(
            id=r["id"],
            username=r["username"],
            ticket=r["ticket"],
            source=Source(r["source"]),
            actor=r["actor"],
            state=JobState(r["state"]),
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            verified_at=r["verified_at"],
            left_at=r["left_at"],
            inventory=r["inventory"],
            limit=r["host_limit"],
            attempts=r["attempts"],
            next_attempt=r["next_attempt"],
            dry_run=bool(r["dry_run"]),
            secrets_to_rotate=tuple(json.loads(r["secrets"])),
            public_keys=tuple(json.loads(r["public_keys"])),
            hosts=hosts,
        )

    def job(self, job_id: int) -> Job | None:
        with self._connect() as db:
            return self._job(db, job_id)

    def jobs(self, *, username: str | None = None, open_only: bool = False) -> list[Job]:
        query = "SELECT id FROM jobs"
        clauses: list[str] = []
        args: list[Any] = []
        if username:
            clauses.append("username = ?")
            args.append(username)
        if open_only:
            clauses.append("state NOT IN (?, ?)")
            args += [JobState.VERIFIED.value, JobState.CANCELLED.value]
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        with self._connect() as db:
            ids = [r["id"] for r in db.execute(query + " ORDER BY id", args)]
            return [j for j in (self._job(db, i) for i in ids) if j is not None]

    def events_of(self, job_id: int) -> list[dict[str, Any]]:
        with self._connect() as db:
            return [
                dict(r)
                for r in db.execute("SELECT * FROM events WHERE job_id=? ORDER BY id", (job_id,))
            ]

    def next_due(self) -> float | None:
        """When the next queued or pending job is due (epoch seconds), if any."""
        with self._connect() as db:
            row = db.execute(
                "SELECT MIN(next_attempt) FROM jobs WHERE state IN (?,?,?)",
                (JobState.QUEUED.value, JobState.PENDING.value, JobState.RUNNING.value),
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    # -- tokens ------------------------------------------------------------------------------
    def add_token(self, name: str, digest: str) -> None:
        with self._tx() as db:
            try:
                db.execute("INSERT INTO tokens VALUES (?,?,?)", (name, digest, now_iso()))
            except sqlite3.IntegrityError as exc:
                raise OffboardError(f"a token named {name!r} exists already") from exc
            self._append(db, "token_added", {"name": name}, None)

    def remove_token(self, name: str) -> bool:
        with self._tx() as db:
            cur = db.execute("DELETE FROM tokens WHERE name=?", (name,))
            if cur.rowcount:
                self._append(db, "token_removed", {"name": name}, None)
            return bool(cur.rowcount)

    def token_digests(self) -> dict[str, str]:
        with self._connect() as db:
            return {r["digest"]: r["name"] for r in db.execute("SELECT name, digest FROM tokens")}

    def token_names(self) -> list[tuple[str, str]]:
        with self._connect() as db:
            return [(r["name"], r["created_at"]) for r in db.execute("SELECT * FROM tokens")]

    # -- SCIM resources --------------------------------------------------------------------
    def scim_documents(self) -> list[str]:
        with self._connect() as db:
            return [r["document"] for r in db.execute("SELECT document FROM scim_resources")]

    def scim_put(self, resource_id: str, document: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO scim_resources VALUES (?, ?) ON CONFLICT(id) DO UPDATE"
                " SET document = excluded.document",
                (resource_id, document),
            )

    def scim_delete(self, resource_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM scim_resources WHERE id=?", (resource_id,))
