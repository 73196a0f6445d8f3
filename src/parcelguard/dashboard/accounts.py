"""Dashboard accounts, sessions and the audit log, kept in the service's database.

- Passwords are hashed with Argon2id (argon2-cffi, RFC 9106 parameters); a hash made
  with older parameters is re-hashed at the next login.
- A session is a 256-bit random token in a cookie; only its SHA-256 is stored, with the
  session's CSRF token, its idle and absolute expiry. Logging out, disabling an account or
  resetting its password ends its sessions at once.
- Five sign-in attempts of one account within 15 minutes that did not succeed refuse that
  account for the rest of the 15 minutes (correct passwords included), so guessing is
  slow and visible. Each attempt is counted before its password is checked, in one
  transaction, so concurrent attempts cannot get past the count. At most two password
  hashes are computed at once (each takes 64 MiB), whatever the number of requests.
- Every action, refused ones included, is one row of ``dash_audit``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from parcelguard.errors import ParcelguardError
from parcelguard.sqlite import connect

NAME = re.compile(r"[a-z][a-z0-9._-]{1,31}")
MIN_PASSWORD = 12
THROTTLE_FAILURES = 5
THROTTLE_WINDOW = 15 * 60
_SCHEMA = """
CREATE TABLE IF NOT EXISTS dash_users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dash_sessions (
    digest TEXT PRIMARY KEY,
    user TEXT NOT NULL REFERENCES dash_users(name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_at REAL NOT NULL,
    seen_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dash_failures (
    user TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dash_failures_user ON dash_failures(user, at);
CREATE TABLE IF NOT EXISTS dash_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    user TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    remote TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS dash_audit_no_update BEFORE UPDATE ON dash_audit
BEGIN SELECT RAISE(ABORT, 'the dashboard audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS dash_audit_no_delete BEFORE DELETE ON dash_audit
BEGIN SELECT RAISE(ABORT, 'the dashboard audit log is append-only'); END;
"""


class Role(StrEnum):
    AUDITOR = "auditor"  # reads everything, changes nothing
    OPERATOR = "operator"  # and triggers scans and offboarding
    ADMIN = "admin"  # and manages accounts, tokens and schedules

    @property
    def rank(self) -> int:
        return {"auditor": 1, "operator": 2, "admin": 3}[self.value]

    def may(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class AccountError(ParcelguardError):
    pass


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    disabled: bool
    created_at: float
    created_by: str


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str
    digest: str


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    user: str
    role: str
    action: str
    target: str
    outcome: str
    remote: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_password() -> str:
    """A generated password: 20 URL-safe characters (120 bits), shown once."""
    return secrets.token_urlsafe(15)


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise AccountError(
            f"account name {name!r} is not valid",
            "use 2 to 32 lower-case letters, digits, '.', '_' or '-', starting with a letter",
        )
    return name


class Accounts:
    def __init__(
        self,
        path: Path,
        *,
        idle_seconds: float = 30 * 60,
        absolute_seconds: float = 12 * 3600,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.path = path
        self.idle = idle_seconds
        self.absolute = absolute_seconds
        self.hasher = hasher or PasswordHasher()
        self._hashing = threading.BoundedSemaphore(2)
        # A hash to verify against when the account does not exist, so that a login
        # takes as long for an unknown name as for a wrong password.
        self._dummy = self.hasher.hash(secrets.token_urlsafe(16))
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with connect(self.path) as db:
            yield db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it is stored, or none."""
        with connect(self.path) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _hash(self, password: str) -> str:
        with self._hashing:
            return self.hasher.hash(password)

    # -- accounts ---------------------------------------------------------------------------
    def ensure_admin(self, name: str, password: str) -> str:
        """The bootstrap administrator from the configured secret file: created, or its
        password set to the file's when it differs. Returns what was done."""
        check_name(name)
        if len(password) < MIN_PASSWORD:
            raise AccountError(
                f"the admin secret is shorter than {MIN_PASSWORD} characters",
                "write a long random secret: parcelguard serve --new-admin-secret FILE",
            )
        user = self.user(name)
        if user is None:
            with self._db() as db:
                db.execute(
                    "INSERT INTO dash_users VALUES (?, ?, ?, 0, ?, ?)",
                    (name, Role.ADMIN.value, self.hasher.hash(password), time.time(), "config"),
                )
            return "created"
        with self._db() as db:
            (stored,) = db.execute(
                "SELECT password_hash FROM dash_users WHERE name = ?", (name,)
            ).fetchone()
        changed = not self._matches(stored, password)
        if changed or user.role is not Role.ADMIN:
            with self._tx() as db:
                db.execute(
                    "UPDATE dash_users SET role = ?, password_hash = ? WHERE name = ?",
                    (Role.ADMIN.value, self._hash(password), name),
                )
                if changed:
                    db.execute("DELETE FROM dash_sessions WHERE user = ?", (name,))
        if user.disabled:
            # Disabled by an admin (an incident, say): a restart does not undo that.
            return "disabled: the secret file does not re-enable it"
        return "updated" if changed else "unchanged"

    def create(self, name: str, role: Role, by: str) -> str:
        """A new account with a generated password, which is returned (shown once)."""
        check_name(name)
        password = new_password()
        try:
            hashed = self._hash(password)
            with self._tx() as db:
                db.execute(
                    "INSERT INTO dash_users VALUES (?, ?, ?, 0, ?, ?)",
                    (name, role.value, hashed, time.time(), by),
                )
        except sqlite3.IntegrityError as exc:
            raise AccountError(f"account {name} exists") from exc
        return password

    def reset(self, name: str) -> str:
        if self.user(name) is None:
            raise AccountError(f"no account {name}")
        password = new_password()
        hashed = self._hash(password)
        with self._tx() as db:  # the new password and the end of the old sessions: both
            db.execute("UPDATE dash_users SET password_hash = ? WHERE name = ?", (hashed, name))
            db.execute("DELETE FROM dash_sessions WHERE user = ?", (name,))
        return password

    def set_disabled(self, name: str, disabled: bool) -> None:
        with self._tx() as db:
            if (
                db.execute(
                    "UPDATE dash_users SET disabled = ? WHERE name = ?", (int(disabled), name)
                ).rowcount
                != 1
            ):
                raise AccountError(f"no account {name}")
            if disabled:
                db.execute("DELETE FROM dash_sessions WHERE user = ?", (name,))

    def user(self, name: str) -> User | None:
        with self._db() as db:
            row = db.execute(
                "SELECT name, role, disabled, created_at, created_by FROM dash_users "
                "WHERE name = ?",
                (name,),
            ).fetchone()
        return _user(row) if row else None

    def users(self) -> list[User]:
        with self._db() as db:
            rows = db.execute(
                "SELECT name, role, disabled, created_at, created_by FROM dash_users ORDER BY name"
            ).fetchall()
        return [_user(r) for r in rows]

    # -- login and sessions -------------------------------------------------------------------
    def _matches(self, stored: str, password: str) -> bool:
        with self._hashing:
            try:
                return self.hasher.verify(stored, password)
            except (VerificationError, InvalidHashError):
                return False

    def login(self, name: str, password: str) -> tuple[str, Session] | str:
        """(cookie token, session) on success; otherwise why, for the audit log only
        (the person is told just that the name or password is wrong, or to wait)."""
        name = name.strip().lower()[:64]
        now = time.time()
        with self._tx() as db:
            # Counted first, as if it failed: concurrent attempts each take a place.
            (count,) = db.execute(
                "SELECT count(*) FROM dash_failures WHERE user = ? AND at > ?",
                (name, now - THROTTLE_WINDOW),
            ).fetchone()
            if count >= THROTTLE_FAILURES:
                return "throttled"
            db.execute("INSERT INTO dash_failures VALUES (?, ?)", (name, now))
            db.execute("DELETE FROM dash_failures WHERE at < ?", (now - THROTTLE_WINDOW,))
            row = db.execute(
                "SELECT password_hash, disabled FROM dash_users WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            self._matches(self._dummy, password)
            return "unknown account"
        if not self._matches(row["password_hash"], password):
            return "wrong password"
        if row["disabled"]:
            return "account disabled"
        rehashed = (
            self._hash(password) if self.hasher.check_needs_rehash(row["password_hash"]) else None
        )
        token = secrets.token_urlsafe(32)
        digest = _digest(token)
        with self._tx() as db:
            if rehashed:
                db.execute(
                    "UPDATE dash_users SET password_hash = ? WHERE name = ?", (rehashed, name)
                )
            db.execute("DELETE FROM dash_failures WHERE user = ?", (name,))
            db.execute(
                "INSERT INTO dash_sessions VALUES (?, ?, ?, ?, ?)",
                (digest, name, secrets.token_urlsafe(32), now, now),
            )
        session = self.session(token)
        assert session is not None
        return token, session

    def session(self, token: str | None, now: float | None = None) -> Session | None:
        """The live session of a cookie token, its idle time renewed; None if expired."""
        if not token or len(token) > 128:
            return None
        now = time.time() if now is None else now
        digest = _digest(token)
        with self._db() as db:
            row = db.execute(
                "SELECT s.csrf, s.created_at, s.seen_at, u.name, u.role, u.disabled, "
                "u.created_at AS user_created, u.created_by FROM dash_sessions s "
                "JOIN dash_users u ON u.name = s.user WHERE s.digest = ?",
                (digest,),
            ).fetchone()
            if row is None:
                return None
            if (
                row["disabled"]
                or now - row["seen_at"] > self.idle
                or now - row["created_at"] > self.absolute
            ):
                db.execute("DELETE FROM dash_sessions WHERE digest = ?", (digest,))
                return None
            if now - row["seen_at"] > 30:
                db.execute("UPDATE dash_sessions SET seen_at = ? WHERE digest = ?", (now, digest))
        user = User(row["name"], Role(row["role"]), False, row["user_created"], row["created_by"])
        return Session(user, row["csrf"], digest)

    def logout(self, session: Session) -> None:
        with self._db() as db:
            db.execute("DELETE FROM dash_sessions WHERE digest = ?", (session.digest,))

    @staticmethod
    def csrf_ok(session: Session, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(session.csrf.encode(), (sent or "").encode())

    # -- audit ----------------------------------------------------------------------------------
    def audit(
        self, user: str, role: str, action: str, target: str, outcome: str, remote: str
    ) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO dash_audit (at, user, role, action, target, outcome, remote) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (time.time(), user[:64], role, action, target[:300], outcome[:300], remote[:64]),
            )

    def audit_log(self, limit: int = 200, before: int | None = None) -> list[AuditEntry]:
        query = "SELECT * FROM dash_audit"
        params: tuple[int, ...] = ()
        if before is not None:
            query += " WHERE id < ?"
            params = (before,)
        with self._db() as db:
            rows = db.execute(query + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        return [AuditEntry(**dict(r)) for r in rows]


def _user(row: sqlite3.Row) -> User:
    return User(
        row["name"], Role(row["role"]), bool(row["disabled"]), row["created_at"], row["created_by"]
    )
