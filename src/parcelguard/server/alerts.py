"""Alerts (Art. 17, 33, 42): what changed for the worse, said once, delivered until it arrives.

Conditions are computed from two scans of the same schedule, and from the offboarding
queue:

- ``new_fail``: a control FAILs that did not fail in the previous scan, at or above the
  configured severity;
- ``regression``: a control that PASSed in the previous scan FAILs now (a fixed item
  came back), whatever its severity;
- ``unreachable``: a host that answered in the previous scan (or is new) does not answer;
- ``offboarding_overdue``: an offboarding job is still not verified after the deadline.

Each condition has a key (kind, host, control). An alert is raised when a key appears and
is not already open, and closed when the condition clears, so a condition that persists
is said once, and one that comes back after being fixed is said again. Deliveries (a
signed webhook, e-mail over SMTP with STARTTLS) are queued durably with the alert and
retried with exponential backoff until they succeed.
"""

from __future__ import annotations

import json
import smtplib
import sqlite3
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from parcelguard.offboard.model import Job
from parcelguard.scanners.model import ScanResult, Severity, Status
from parcelguard.server import webhook
from parcelguard.sqlite import connect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    host TEXT NOT NULL,
    control_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    summary TEXT NOT NULL,
    scope TEXT NOT NULL,
    scan_id TEXT NOT NULL,
    raised_at TEXT NOT NULL,
    closed_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_open ON alerts(scope, key) WHERE closed_at IS NULL;
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts(id),
    channel TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    delivered_at TEXT
);
"""
RETRY_BASE = 30.0
RETRY_MAX = 3600.0


@dataclass(frozen=True)
class Condition:
    kind: str  # new_fail | regression | unreachable | offboarding_overdue
    host: str
    control_id: str
    severity: str
    summary: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.host}:{self.control_id}"


@dataclass(frozen=True)
class Alert:
    id: int
    kind: str
    host: str
    control_id: str
    severity: str
    summary: str
    scope: str
    scan_id: str
    raised_at: str

    def as_dict(self, link: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "host": self.host,
            "control": self.control_id,
            "severity": self.severity,
            "summary": self.summary,
            "scope": self.scope,
            "scan": self.scan_id,
            "raised_at": self.raised_at,
            "evidence": link,
        }


def scan_conditions(
    previous: ScanResult | None, current: ScanResult, min_severity: Severity
) -> list[Condition]:
    """Conditions of ``current`` compared with the ``previous`` scan of the same scope."""
    before: dict[tuple[str, str], Status] = {}
    answered: set[str] = set()
    if previous is not None:
        for h in previous.hosts:
            if h.reachable:
                answered.add(h.host)
            for r in h.results:
                before[(h.host, r.control_id)] = r.status
    seen_before = {host for host, _ in before} | answered
    found: list[Condition] = []
    for h in current.hosts:
        if not h.reachable:
            if h.host in answered or h.host not in seen_before:
                found.append(Condition("unreachable", h.host, "-", "high", h.error or "no answer"))
            continue
        for r in h.results:
            if r.status is not Status.FAIL:
                continue
            was = before.get((h.host, r.control_id))
            if was is Status.PASS:
                found.append(
                    Condition("regression", h.host, r.control_id, r.severity.value, r.summary)
                )
            elif was is not Status.FAIL and r.severity.rank >= min_severity.rank:
                found.append(
                    Condition("new_fail", h.host, r.control_id, r.severity.value, r.summary)
                )
    return found


def cleared(current: ScanResult) -> set[str]:
    """Keys whose condition is shown to be over by ``current``: a control that PASSes (or
    no longer applies, or is waived), a host that answers. A host that did not answer, a
    control in ERROR, or a host missing from the scan proves nothing: their alerts stay
    open."""
    keys: set[str] = set()
    over = (Status.PASS, Status.NOT_APPLICABLE, Status.WAIVED)
    for h in current.hosts:
        if not h.reachable:
            continue
        keys.add(f"unreachable:{h.host}:-")
        for r in h.results:
            if r.status in over:
                keys.add(f"regression:{h.host}:{r.control_id}")
                keys.add(f"new_fail:{h.host}:{r.control_id}")
    return keys


def overdue_conditions(
    jobs: Sequence[Job], deadline_minutes: float, now: datetime
) -> list[Condition]:
    found = []
    for job in jobs:
        age = (now - datetime.fromisoformat(job.created_at)).total_seconds() / 60
        if job.open and not job.dry_run and age > deadline_minutes:
            pending = [h.host for h in job.hosts if h.state.value not in ("verified", "absent")]
            found.append(
                Condition(
                    "offboarding_overdue",
                    "-",
                    f"job-{job.id}",
                    "high",
                    f"{job.username}: not verified after {age:.0f} min on "
                    f"{', '.join(pending[:10]) or 'no host'}",
                )
            )
    return found


def _alert(r: sqlite3.Row) -> Alert:
    return Alert(
        r["id"],
        r["kind"],
        r["host"],
        r["control_id"],
        r["severity"],
        r["summary"],
        r["scope"],
        r["scan_id"],
        r["raised_at"],
    )


class AlertStore:
    """Alerts and their deliveries, in the service's SQLite file."""

    def __init__(self, path: Path, channels: Sequence[str]) -> None:
        self.path = path
        self.channels = tuple(channels)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return connect(self.path)

    def update(
        self,
        scope: str,
        scan_id: str,
        conditions: Sequence[Condition],
        cleared: set[str],
        *,
        deliver: bool = True,
    ) -> list[Alert]:
        """Close the open alerts whose key is in ``cleared``, raise alerts for conditions
        not already open; return the new ones.

        ``deliver=False`` records them as open without sending anything: the first scan of
        a schedule is its baseline, not a flood of alerts.
        """
        now = datetime.now(UTC).isoformat(timespec="seconds")
        raised: list[Alert] = []
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            current = {c.key for c in conditions}
            for row in db.execute(
                "SELECT id, key FROM alerts WHERE scope=? AND closed_at IS NULL", (scope,)
            ).fetchall():
                if row["key"] in cleared and row["key"] not in current:
                    db.execute("UPDATE alerts SET closed_at=? WHERE id=?", (now, row["id"]))
            for c in conditions:
                # A failing control is one condition whether it was first seen as new or
                # as a regression: its open alert covers both.
                same = (
                    [f"new_fail:{c.host}:{c.control_id}", f"regression:{c.host}:{c.control_id}"]
                    if c.kind in ("new_fail", "regression")
                    else [c.key]
                )
                exists = db.execute(
                    "SELECT 1 FROM alerts WHERE scope=? AND key IN (?, ?) AND closed_at IS NULL",
                    (scope, same[0], same[-1]),
                ).fetchone()
                if exists:
                    continue
                cur = db.execute(
                    "INSERT INTO alerts (key, kind, host, control_id, severity, summary, scope,"
                    " scan_id, raised_at) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        c.key,
                        c.kind,
                        c.host,
                        c.control_id,
                        c.severity,
                        c.summary[:500],
                        scope,
                        scan_id,
                        now,
                    ),
                )
                alert_id = int(cur.lastrowid or 0)
                db.executemany(
                    "INSERT INTO deliveries (alert_id, channel, state) VALUES (?,?,?)",
                    [(alert_id, ch, "pending" if deliver else "baseline") for ch in self.channels],
                )
                raised.append(
                    Alert(
                        alert_id,
                        c.kind,
                        c.host,
                        c.control_id,
                        c.severity,
                        c.summary,
                        scope,
                        scan_id,
                        now,
                    )
                )
            db.execute("COMMIT")
        return raised

    def alerts(self, open_only: bool = False) -> list[Alert]:
        query = (
            "SELECT * FROM alerts WHERE closed_at IS NULL"
            if open_only
            else "SELECT * FROM alerts WHERE 1"
        )
        with self._connect() as db:
            return [_alert(r) for r in db.execute(query + " ORDER BY id")]

    def due(self, now: float) -> list[tuple[int, str, Alert]]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT d.id AS did, d.channel, a.* FROM deliveries d JOIN alerts a"
                " ON a.id = d.alert_id WHERE d.state='pending' AND d.next_attempt <= ?"
                " ORDER BY d.id",
                (now,),
            ).fetchall()
        return [
            (
                r["did"],
                r["channel"],
                _alert(r),
            )
            for r in rows
        ]

    def delivered(self, delivery_id: int) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE deliveries SET state='sent', attempts=attempts+1, delivered_at=?"
                " WHERE id=?",
                (datetime.now(UTC).isoformat(timespec="seconds"), delivery_id),
            )

    def failed(self, delivery_id: int, error: str) -> None:
        with self._connect() as db:
            row = db.execute(
                "SELECT attempts FROM deliveries WHERE id=?", (delivery_id,)
            ).fetchone()
            attempts = (row["attempts"] if row else 0) + 1
            delay = min(RETRY_BASE * 2 ** (attempts - 1), RETRY_MAX)
            db.execute(
                "UPDATE deliveries SET attempts=?, next_attempt=?, last_error=? WHERE id=?",
                (attempts, time.time() + delay, error[:300], delivery_id),
            )

    def open_keys(self, scope: str) -> set[str]:
        with self._connect() as db:
            return {
                r["key"]
                for r in db.execute(
                    "SELECT key FROM alerts WHERE scope=? AND closed_at IS NULL", (scope,)
                )
            }

    def dropped(self, delivery_id: int, why: str) -> None:
        """Give a delivery up for good (its channel is no longer configured)."""
        with self._connect() as db:
            db.execute(
                "UPDATE deliveries SET state='dropped', last_error=? WHERE id=?",
                (why[:300], delivery_id),
            )

    def deliveries(self, alert_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """Every delivery, or those of the given alerts."""
        with self._connect() as db:
            if alert_ids is None:
                return [dict(r) for r in db.execute("SELECT * FROM deliveries ORDER BY id")]
            found: list[dict[str, Any]] = []
            ids = list(alert_ids)
            for i in range(0, len(ids), 500):  # SQLite's limit on bound parameters
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                found += [
                    dict(r)
                    for r in db.execute(
                        f"SELECT * FROM deliveries WHERE alert_id IN ({marks}) ORDER BY id",  # noqa: S608
                        chunk,
                    )
                ]
            return found


# -- channels ------------------------------------------------------------------------------


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a bodiless GET elsewhere and still look like a
    success: it counts as a failed delivery instead."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


_NO_REDIRECTS = urllib.request.build_opener(_RefuseRedirects())


@dataclass(frozen=True)
class WebhookChannel:
    url: str
    key: bytes
    timeout: float = 10.0

    name = "webhook"

    def send(self, alert: Alert, link: str) -> None:
        body = json.dumps({"type": "parcelguard.alert", "alert": alert.as_dict(link)}).encode()
        # The same id on every attempt: a receiver recognises a retry it already handled.
        message_id = f"parcelguard-alert-{alert.id}"
        stamp = str(int(time.time()))
        if not self.url.startswith(("https://", "http://")):
            raise OSError(f"refusing to post to {self.url!r}: not an http(s) URL")
        request = urllib.request.Request(  # noqa: S310 (scheme checked above)
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": stamp,
                "webhook-signature": webhook.sign(self.key, message_id, stamp, body),
            },
        )
        try:
            with _NO_REDIRECTS.open(request, timeout=self.timeout) as response:
                if not 200 <= response.status < 300:
                    raise OSError(f"HTTP {response.status}")
        except urllib.error.HTTPError as exc:
            raise OSError(f"HTTP {exc.code}") from exc


@dataclass(frozen=True)
class EmailChannel:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    username: str | None = None
    password: str | None = None
    cafile: str | None = None
    timeout: float = 20.0

    name = "email"

    def send(self, alert: Alert, link: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        subject = f"[parcelguard] {alert.kind.replace('_', ' ')}: {alert.host} {alert.control_id}"
        message["Subject"] = " ".join(subject.split())[:200]  # never a header break
        message.set_content(
            f"{alert.summary}\n\nhost: {alert.host}\ncontrol: {alert.control_id}\n"
            f"severity: {alert.severity}\nscope: {alert.scope}\nscan: {alert.scan_id}\n"
            f"raised: {alert.raised_at}\nevidence: {link}\n"
        )
        context = ssl.create_default_context(cafile=self.cafile)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise OSError(f"{self.host} does not offer STARTTLS: not sending in clear")
            smtp.starttls(context=context)
            smtp.ehlo()
            if self.username and self.password:
                smtp.login(self.username, self.password)
            smtp.send_message(message)
