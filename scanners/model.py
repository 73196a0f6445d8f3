"""The scan model: typed, frozen results that every report format renders from.

JSON is the canonical form. ``SCHEMA_VERSION`` changes whenever a field changes meaning;
a reader refuses a document from a newer schema instead of guessing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

SCHEMA_VERSION = 1


class Status(StrEnum):
    """What a control concluded about one host."""

    PASS = "PASS"  # noqa: S105  (a status, not a password)
    FAIL = "FAIL"
    ERROR = "ERROR"  # could not determine; the reason says why
    NOT_APPLICABLE = "NOT_APPLICABLE"
    MANUAL = "MANUAL"  # no machine can check it; covered by an attestation
    WAIVED = "WAIVED"  # a FAIL covered by a valid, unexpired waiver


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3, Severity.CRITICAL: 4}


class SchemaError(ValueError):
    """A results document that this version cannot read."""


@dataclass(frozen=True)
class Evidence:
    """One piece of what a control saw: a label and a (masked) value."""

    label: str
    value: str


@dataclass(frozen=True)
class Outcome:
    """What a control's check returns: status, a one-line summary, evidence."""

    status: Status
    summary: str
    evidence: tuple[Evidence, ...] = ()
    reason: str = ""  # for ERROR and NOT_APPLICABLE: why

    @classmethod
    def passed(cls, summary: str, *evidence: Evidence) -> Outcome:
        return cls(Status.PASS, summary, tuple(evidence))

    @classmethod
    def failed(cls, summary: str, *evidence: Evidence) -> Outcome:
        return cls(Status.FAIL, summary, tuple(evidence))

    @classmethod
    def error(cls, reason: str, *evidence: Evidence) -> Outcome:
        return cls(Status.ERROR, f"could not determine: {reason}", tuple(evidence), reason)

    @classmethod
    def not_applicable(cls, reason: str, *evidence: Evidence) -> Outcome:
        return cls(Status.NOT_APPLICABLE, reason, tuple(evidence), reason)


@dataclass(frozen=True)
class ControlResult:
    """A control's outcome on one host, with the metadata a report needs."""

    control_id: str
    host: str
    status: Status
    summary: str
    severity: Severity
    articles: tuple[int, ...]
    evidence: tuple[Evidence, ...] = ()
    reason: str = ""
    waiver: str = ""  # the waiver's ticket when status is WAIVED


@dataclass(frozen=True)
class HostResult:
    host: str
    address: str
    zones: tuple[str, ...]
    started: datetime
    finished: datetime
    reachable: bool
    error: str = ""  # why the host could not be scanned, when unreachable
    results: tuple[ControlResult, ...] = ()


@dataclass(frozen=True)
class ScanResult:
    scan_id: str
    started: datetime
    finished: datetime
    tool_version: str
    inventory: str  # the inventory path, or "local"
    hosts: tuple[HostResult, ...]
    complete: bool = True  # False when the scan was interrupted
    schema_version: int = SCHEMA_VERSION
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "scan_id": self.scan_id,
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat(),
            "tool_version": self.tool_version,
            "inventory": self.inventory,
            "complete": self.complete,
            "notes": list(self.notes),
            "hosts": [host_to_dict(h) for h in self.hosts],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScanResult:
        try:
            version = int(data["schema_version"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError("not a parcelguard results document (no schema_version)") from exc
        if version > SCHEMA_VERSION:
            raise SchemaError(
                f"results use schema {version}, this parcelguard reads up to {SCHEMA_VERSION}: "
                "upgrade parcelguard"
            )
        try:
            return cls(
                scan_id=str(data["scan_id"]),
                started=datetime.fromisoformat(data["started"]),
                finished=datetime.fromisoformat(data["finished"]),
                tool_version=str(data["tool_version"]),
                inventory=str(data["inventory"]),
                complete=bool(data.get("complete", True)),
                notes=tuple(str(n) for n in data.get("notes", ())),
                hosts=tuple(host_from_dict(h) for h in data["hosts"]),
                schema_version=version,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"malformed results document: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> ScanResult:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SchemaError(f"results are not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise SchemaError("results document must be a JSON object")
        return cls.from_dict(data)


def host_to_dict(h: HostResult) -> dict[str, Any]:
    return {
        "host": h.host,
        "address": h.address,
        "zones": list(h.zones),
        "started": h.started.isoformat(),
        "finished": h.finished.isoformat(),
        "reachable": h.reachable,
        "error": h.error,
        "results": [
            {
                "control_id": r.control_id,
                "status": r.status.value,
                "severity": r.severity.value,
                "articles": list(r.articles),
                "summary": r.summary,
                "reason": r.reason,
                "waiver": r.waiver,
                "evidence": [{"label": e.label, "value": e.value} for e in r.evidence],
            }
            for r in h.results
        ],
    }


def host_from_dict(d: Mapping[str, Any]) -> HostResult:
    host = str(d["host"])
    return HostResult(
        host=host,
        address=str(d["address"]),
        zones=tuple(str(z) for z in d["zones"]),
        started=datetime.fromisoformat(d["started"]),
        finished=datetime.fromisoformat(d["finished"]),
        reachable=bool(d["reachable"]),
        error=str(d.get("error", "")),
        results=tuple(
            ControlResult(
                control_id=str(r["control_id"]),
                host=host,
                status=Status(r["status"]),
                summary=str(r["summary"]),
                severity=Severity(r["severity"]),
                articles=tuple(int(a) for a in r["articles"]),
                evidence=tuple(Evidence(str(e["label"]), str(e["value"])) for e in r["evidence"]),
                reason=str(r.get("reason", "")),
                waiver=str(r.get("waiver", "")),
            )
            for r in d["results"]
        ),
    )
