"""What offboarding deals in: leaver events, jobs, per-host states (typed, frozen)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from parcelguard.errors import ParcelguardError

# The same rule as the role's assert and the roster: a plain POSIX login name.
LOGIN_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")  # always with fullmatch: "lihua\n" is not
# Never revoked, whatever a trigger says: the role refuses them too.
ALWAYS_PROTECTED = frozenset({"root", "postgres", "nobody"})


class OffboardError(ParcelguardError):
    pass


class Source(StrEnum):
    CLI = "cli"
    ROSTER = "roster"
    SCIM = "scim"
    WEBHOOK = "webhook"
    DASHBOARD = "dashboard"


class JobState(StrEnum):
    QUEUED = "queued"  # not yet run
    RUNNING = "running"  # a worker holds its lease
    PENDING = "pending"  # some hosts are not verified yet; retried with backoff
    VERIFIED = "verified"  # every host verified revoked (or verified to hold nothing)
    CANCELLED = "cancelled"  # dry run or stopped by an operator


class HostState(StrEnum):
    PENDING = "pending"  # not yet revoked (new, unreachable or failed: retried)
    REVOKED = "revoked"  # the playbook succeeded; verification has not passed yet
    VERIFIED = "verified"  # independent verification passed
    ABSENT = "absent"  # no account or database role of that name; verified so


DONE_HOST_STATES = frozenset({HostState.VERIFIED, HostState.ABSENT})


def check_login_name(name: str) -> str:
    """Return ``name`` if it is a plain login name that may be revoked, else raise."""
    if not LOGIN_NAME.fullmatch(name):
        raise OffboardError(
            f"invalid account name {name!r}",
            "use the Linux login name: lower-case letters, digits, _ and -, at most 32",
        )
    if name in ALWAYS_PROTECTED:
        raise OffboardError(f"refusing to revoke protected account {name!r}")
    return name


@dataclass(frozen=True)
class LeaverEvent:
    """One trigger: 'this person has left'. ``key`` makes duplicates harmless."""

    username: str
    source: Source
    actor: str  # who or what triggered it: a user, a token name, a roster file
    ticket: str
    key: str  # idempotency key: the same key never starts a second revocation
    received_at: datetime
    left_at: datetime | None = None  # when the person left, if the trigger says
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_login_name(self.username)
        if not self.key or len(self.key) > 300:
            raise OffboardError("an event needs an idempotency key of at most 300 characters")
        if len(self.ticket) > 200 or any(ord(c) < 32 for c in self.ticket):
            raise OffboardError("ticket must be one printable line of at most 200 characters")


@dataclass(frozen=True)
class HostRecord:
    job_id: int
    host: str
    state: HostState
    attempts: int
    last_error: str
    revoked_at: str | None
    verified_at: str | None
    steps: tuple[dict[str, Any], ...]
    verification: dict[str, Any]


@dataclass(frozen=True)
class Job:
    id: int
    username: str
    ticket: str
    source: Source
    actor: str
    state: JobState
    created_at: str
    updated_at: str
    verified_at: str | None
    left_at: str | None
    inventory: str
    limit: str | None
    attempts: int
    next_attempt: float
    dry_run: bool
    secrets_to_rotate: tuple[str, ...]
    public_keys: tuple[str, ...]
    hosts: tuple[HostRecord, ...] = ()

    @property
    def open(self) -> bool:
        return self.state not in (JobState.VERIFIED, JobState.CANCELLED)
