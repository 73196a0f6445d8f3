"""The report model: everything a report says, frozen, versioned, JSON-serialisable.

Every format (HTML, Markdown, JUnit, CSV, PDF) renders from one :class:`ReportModel`;
``--format json`` writes :meth:`ReportModel.to_json`, the canonical form.
``REPORT_SCHEMA_VERSION`` changes whenever a field changes meaning. Texts in the model
(summaries, evidence, reasons, notes) are already masked; titles are in ``lang``.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, fields, is_dataclass
from datetime import date, datetime
from enum import Enum, StrEnum
from functools import cache
from typing import Any

from parcelguard.scanners.model import Evidence, Severity, Status

REPORT_SCHEMA_VERSION = 1

# Statuses a (host, control) result is judged by; NOT_APPLICABLE and MANUAL are not judged.
JUDGED = frozenset({Status.PASS, Status.FAIL, Status.ERROR, Status.WAIVED})
COMPLIANT = frozenset({Status.PASS, Status.WAIVED})
FAILING = frozenset({Status.FAIL, Status.ERROR})


class AttestationState(StrEnum):
    """Whether a manual article is covered by an attestation on the report date."""

    ATTESTED = "ATTESTED"
    EXPIRED = "EXPIRED"
    MISSING = "MISSING"


class ArticleKind(StrEnum):
    TECHNICAL = "technical"  # checked by controls on every host
    MANUAL = "manual"  # covered by an attestation a person records


@dataclass(frozen=True)
class Compliance:
    """Share of judged results that PASS or are WAIVED; ``percent`` is None if none judged."""

    judged: int
    compliant: int

    @property
    def percent(self) -> float | None:
        return None if self.judged == 0 else 100.0 * self.compliant / self.judged

    @property
    def failing(self) -> int:
        return self.judged - self.compliant


@dataclass(frozen=True)
class StatusCounts:
    """How many results have each status, in :class:`Status` order."""

    counts: tuple[tuple[Status, int], ...]

    def get(self, status: Status) -> int:
        return next((n for s, n in self.counts if s == status), 0)

    @property
    def total(self) -> int:
        return sum(n for _s, n in self.counts)


@dataclass(frozen=True)
class ControlInfo:
    id: str
    title: str  # in the report's language
    area: str
    articles: tuple[int, ...]
    severity: Severity
    rationale: str
    evidence: str  # what the control records
    remediation_role: str
    remediation_tag: str


@dataclass(frozen=True)
class Finding:
    """One control's result on one host, masked, with the command that fixes a FAIL."""

    host: str
    control_id: str
    status: Status
    severity: Severity
    articles: tuple[int, ...]
    summary: str
    reason: str = ""
    waiver: str = ""
    evidence: tuple[Evidence, ...] = ()
    remediation: str = ""  # the ansible-playbook command; set for FAIL only


@dataclass(frozen=True)
class Attestation:
    """A person's statement that a manual article is met, with the evidence's reference."""

    article: int
    attested_by: str
    date: _dt.date  # signed on
    evidence_ref: str
    expires: _dt.date
    note: str = ""


@dataclass(frozen=True)
class MatrixRow:
    """A host's statuses for an article's controls, in the article's control order."""

    host: str
    cells: tuple[Status | None, ...]  # None: the host has no result for that control


@dataclass(frozen=True)
class ArticleSection:
    number: int
    kind: ArticleKind
    title: str
    excerpt: str  # the article's text (English translation of the Provisions)
    summary: str  # a short statement in the report's language
    compliance: Compliance
    counts: StatusCounts
    control_ids: tuple[str, ...] = ()
    matrix: tuple[MatrixRow, ...] = ()
    attestation_state: AttestationState | None = None  # manual articles only
    attestation: Attestation | None = None


@dataclass(frozen=True)
class HostSection:
    host: str
    address: str
    zones: tuple[str, ...]
    started: datetime
    finished: datetime
    reachable: bool
    error: str
    compliance: Compliance
    counts: StatusCounts
    findings: tuple[Finding, ...]  # every result, in catalog order
    remediation: str  # one command with the tags of every FAIL, or ""


@dataclass(frozen=True)
class ZoneCompliance:
    zone: str
    hosts: int
    compliance: Compliance


@dataclass(frozen=True)
class Summary:
    hosts: int
    hosts_reachable: int
    compliance: Compliance
    counts: StatusCounts
    failing_by_severity: tuple[tuple[Severity, int], ...]  # FAIL + ERROR, most severe first
    zones: tuple[ZoneCompliance, ...]
    manual_attested: int
    manual_total: int


@dataclass(frozen=True)
class Change:
    host: str
    control_id: str
    before: Status
    after: Status


@dataclass(frozen=True)
class Drift:
    """What changed since a previous scan of the same fleet."""

    previous_scan_id: str
    previous_started: datetime
    new_failures: tuple[Change, ...]  # now FAIL/ERROR, before anything else
    fixed: tuple[Change, ...]  # before FAIL/ERROR, now PASS
    other_changes: tuple[Change, ...]
    hosts_added: tuple[str, ...]
    hosts_gone: tuple[str, ...]


@dataclass(frozen=True)
class TrendPoint:
    scan_id: str
    started: datetime
    compliance: Compliance


@dataclass(frozen=True)
class ScanInfo:
    scan_id: str
    started: datetime
    finished: datetime
    tool_version: str
    inventory: str
    complete: bool
    schema_version: int


@dataclass(frozen=True)
class ReportModel:
    generated: datetime
    lang: str
    tool_version: str
    scan: ScanInfo
    summary: Summary
    articles: tuple[ArticleSection, ...]
    controls: tuple[ControlInfo, ...]
    hosts: tuple[HostSection, ...]
    notes: tuple[str, ...]
    drift: Drift | None = None
    trend: tuple[TrendPoint, ...] = ()
    schema_version: int = REPORT_SCHEMA_VERSION

    def control(self, control_id: str) -> ControlInfo | None:
        return next((c for c in self.controls if c.id == control_id), None)

    def failures(self) -> tuple[Finding, ...]:
        """Every FAIL and ERROR, host by host."""
        return tuple(f for h in self.hosts for f in h.findings if f.status in FAILING)

    def to_dict(self) -> dict[str, Any]:
        data = _plain(self)
        assert isinstance(data, dict)
        # schema_version first: a reader checks it before anything else.
        return {"schema_version": data.pop("schema_version"), **data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _plain(value: object) -> object:
    """``value`` as JSON-ready data: dataclasses become objects, enums their values."""
    if isinstance(value, StatusCounts):
        return {s.value: n for s, n in value.counts}
    if isinstance(value, Finding):  # the bulk of a report: spelled out for speed
        return {
            "host": value.host,
            "control_id": value.control_id,
            "status": value.status.value,
            "severity": value.severity.value,
            "articles": list(value.articles),
            "summary": value.summary,
            "reason": value.reason,
            "waiver": value.waiver,
            "evidence": [{"label": e.label, "value": e.value} for e in value.evidence],
            "remediation": value.remediation,
        }
    if isinstance(value, MatrixRow):
        return {"host": value.host, "cells": [c.value if c else None for c in value.cells]}
    if isinstance(value, Compliance):
        return {"judged": value.judged, "compliant": value.compliant, "percent": value.percent}
    if is_dataclass(value) and not isinstance(value, type):
        return {name: _plain(getattr(value, name)) for name in _field_names(type(value))}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            first = value[0][0]
            if isinstance(first, Enum):
                return {k.value: _plain(v) for k, v in value}
        return [_plain(v) for v in value]
    return value
