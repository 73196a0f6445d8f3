"""Build the :class:`ReportModel` from a scan, the catalog, attestations and history.

Compliance is the share of judged (host, control) results that PASS or are WAIVED;
NOT_APPLICABLE and MANUAL results are not judged, and ERROR counts as not compliant (a
control that cannot be proven is not passed). Every text that came from a host (summary,
reason, evidence, errors, notes) goes through :func:`masking.mask` here, so that no
format, JSON included, can carry a secret or a delivery user's phone or ID number.
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache

from parcelguard.reports import texts
from parcelguard.reports.attestations import judge
from parcelguard.reports.model import (
    COMPLIANT,
    FAILING,
    JUDGED,
    ArticleKind,
    ArticleSection,
    Attestation,
    AttestationState,
    Compliance,
    ControlInfo,
    Drift,
    Finding,
    HostSection,
    MatrixRow,
    ReportModel,
    ScanInfo,
    StatusCounts,
    Summary,
    TrendPoint,
    ZoneCompliance,
)
from parcelguard.scanners import masking
from parcelguard.scanners.catalog import MANUAL_ARTICLES, TECHNICAL_ARTICLES, Catalog
from parcelguard.scanners.model import (
    ControlResult,
    Evidence,
    HostResult,
    ScanResult,
    Severity,
    Status,
)

PLAYBOOK = "playbooks/harden.yml"
# Departed staff are revoked (and verified, with an audit trail) by offboarding.
OFFBOARD_TAG_PREFIX = "pg-staff-"
OFFBOARD = "parcelguard offboard --roster ROSTER.csv -i INVENTORY"
MOST_SEVERE_FIRST = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW)


@lru_cache(maxsize=1 << 16)
def mask(text: str) -> str:
    """:func:`masking.mask`, remembered: fleets repeat the same summaries and evidence."""
    return masking.mask(text)


@dataclass(frozen=True)
class ReportInputs:
    """Everything a report is built from besides the scan and the catalog."""

    lang: str = "en"
    attestations: tuple[Attestation, ...] = ()
    drift: Drift | None = None
    trend: tuple[TrendPoint, ...] = ()


def remediation_command(host: str, tags: Sequence[str]) -> str:
    """The command that fixes ``tags`` on ``host`` (host shell-quoted): the hardening
    playbook, and for departed staff (Art. 38) the offboarding reconciliation."""
    harden = [t for t in tags if not t.startswith(OFFBOARD_TAG_PREFIX)]
    commands = []
    if harden:
        commands.append(
            f"ansible-playbook {PLAYBOOK} --limit {shlex.quote(host)} "
            f"--tags {shlex.quote(','.join(harden))}"
        )
    if len(harden) < len(tags):
        commands.append(f"{OFFBOARD} --limit {shlex.quote(host)}")
    return " && ".join(commands)


def compliance_of(results: Iterable[ControlResult | Finding]) -> Compliance:
    judged = compliant = 0
    for r in results:
        if r.status in JUDGED:
            judged += 1
            compliant += r.status in COMPLIANT
    return Compliance(judged, compliant)


def count_statuses(statuses: Iterable[Status | None]) -> StatusCounts:
    counter = Counter(s for s in statuses if s is not None)
    return StatusCounts(tuple((s, counter[s]) for s in Status if counter[s]))


def scan_compliance(scan: ScanResult) -> Compliance:
    return compliance_of(r for h in scan.hosts for r in h.results)


def build_report(
    scan: ScanResult, catalog: Catalog, inputs: ReportInputs, now: datetime
) -> ReportModel:
    """The report model of ``scan``; attestations are judged on ``now``'s date."""
    t = texts.Translator(texts.check_lang(inputs.lang))
    controls = _controls(scan, catalog, t)
    tags = {c.id: c.remediation_tag for c in controls}
    hosts = tuple(_host(h, tags) for h in scan.hosts)
    articles = _technical_articles(hosts, controls, t) + _manual_articles(
        inputs.attestations, now.date(), t
    )
    articles = tuple(sorted(articles, key=lambda a: a.number))
    return ReportModel(
        generated=now,
        lang=t.lang,
        tool_version=_tool_version(),
        scan=ScanInfo(
            scan_id=scan.scan_id,
            started=scan.started,
            finished=scan.finished,
            tool_version=scan.tool_version,
            inventory=scan.inventory,
            complete=scan.complete,
            schema_version=scan.schema_version,
        ),
        summary=_summary(hosts, articles),
        articles=articles,
        controls=controls,
        hosts=hosts,
        notes=tuple(mask(n) for n in scan.notes),
        drift=inputs.drift,
        trend=inputs.trend,
    )


def _tool_version() -> str:
    from parcelguard import __version__

    return __version__


def _controls(scan: ScanResult, catalog: Catalog, t: texts.Translator) -> tuple[ControlInfo, ...]:
    """The catalog's controls, then any control the scan names that the catalog lacks."""
    infos = [
        ControlInfo(
            id=c.meta.id,
            title=t.control_title(c.meta.id, c.meta.title),
            area=c.meta.area,
            articles=c.meta.articles,
            severity=c.meta.severity,
            rationale=c.meta.rationale,
            evidence=c.meta.evidence,
            remediation_role=c.meta.remediation_role,
            remediation_tag=c.meta.remediation_tag,
        )
        for c in catalog.controls
    ]
    known = {c.id for c in infos}
    for h in scan.hosts:
        for r in h.results:
            if r.control_id not in known:
                known.add(r.control_id)
                infos.append(_unknown_control(r))
    return tuple(infos)


def _unknown_control(r: ControlResult) -> ControlInfo:
    """A control from an older or newer catalog: what the result itself says about it."""
    area = r.control_id.split("-")[1] if r.control_id.count("-") == 2 else ""
    return ControlInfo(
        id=r.control_id,
        title=r.control_id,
        area=area,
        articles=r.articles,
        severity=r.severity,
        rationale="",
        evidence="",
        remediation_role="",
        remediation_tag=r.control_id.lower(),
    )


def _finding(r: ControlResult, host: str, tag: str) -> Finding:
    return Finding(
        host=host,
        control_id=r.control_id,
        status=r.status,
        severity=r.severity,
        articles=r.articles,
        summary=mask(r.summary),
        reason=mask(r.reason),
        waiver=mask(r.waiver),
        evidence=tuple(Evidence(mask(e.label), mask(e.value)) for e in r.evidence),
        remediation=remediation_command(host, [tag]) if r.status is Status.FAIL else "",
    )


def _host(h: HostResult, tags: dict[str, str]) -> HostSection:
    findings = tuple(
        _finding(r, h.host, tags.get(r.control_id, r.control_id.lower())) for r in h.results
    )
    failed_tags = [tags[f.control_id] for f in findings if f.status is Status.FAIL]
    return HostSection(
        host=h.host,
        address=h.address,
        zones=h.zones,
        started=h.started,
        finished=h.finished,
        reachable=h.reachable,
        error=mask(h.error),
        compliance=compliance_of(findings),
        counts=count_statuses(f.status for f in findings),
        findings=findings,
        remediation=remediation_command(h.host, failed_tags) if failed_tags else "",
    )


def _technical_articles(
    hosts: Sequence[HostSection], controls: Sequence[ControlInfo], t: texts.Translator
) -> tuple[ArticleSection, ...]:
    sections = []
    by_host = [(h.host, {f.control_id: f.status for f in h.findings}) for h in hosts]
    for number in sorted(TECHNICAL_ARTICLES):
        ids = tuple(c.id for c in controls if number in c.articles)
        matrix = tuple(MatrixRow(host, tuple(st.get(cid) for cid in ids)) for host, st in by_host)
        judged = [f for h in hosts for f in h.findings if number in f.articles]
        text = texts.articles()[number]
        sections.append(
            ArticleSection(
                number=number,
                kind=ArticleKind.TECHNICAL,
                title=text.title(t.lang),
                excerpt=text.excerpt_en,
                summary=text.summary(t.lang),
                compliance=compliance_of(judged),
                counts=count_statuses(f.status for f in judged),
                control_ids=ids,
                matrix=matrix,
            )
        )
    return tuple(sections)


def _manual_articles(
    attestations: Sequence[Attestation], today: date, t: texts.Translator
) -> tuple[ArticleSection, ...]:
    sections = []
    for number in sorted(MANUAL_ARTICLES):
        state, chosen = judge(number, attestations, today)
        text = texts.articles()[number]
        ok = state is AttestationState.ATTESTED
        sections.append(
            ArticleSection(
                number=number,
                kind=ArticleKind.MANUAL,
                title=text.title(t.lang),
                excerpt=text.excerpt_en,
                summary=text.summary(t.lang),
                compliance=Compliance(1, int(ok)),
                counts=count_statuses([Status.MANUAL]),
                attestation_state=state,
                attestation=chosen,
            )
        )
    return tuple(sections)


def _summary(hosts: Sequence[HostSection], articles: Sequence[ArticleSection]) -> Summary:
    findings = [f for h in hosts for f in h.findings]
    failing = Counter(f.severity for f in findings if f.status in FAILING)
    zones = sorted({z for h in hosts for z in h.zones})
    manual = [a for a in articles if a.kind is ArticleKind.MANUAL]
    return Summary(
        hosts=len(hosts),
        hosts_reachable=sum(h.reachable for h in hosts),
        compliance=compliance_of(findings),
        counts=count_statuses(f.status for f in findings),
        failing_by_severity=tuple((s, failing[s]) for s in MOST_SEVERE_FIRST),
        zones=tuple(
            ZoneCompliance(
                zone=z,
                hosts=sum(z in h.zones for h in hosts),
                compliance=compliance_of(f for h in hosts if z in h.zones for f in h.findings),
            )
            for z in zones
        ),
        manual_attested=sum(a.attestation_state is AttestationState.ATTESTED for a in manual),
        manual_total=len(manual),
    )
