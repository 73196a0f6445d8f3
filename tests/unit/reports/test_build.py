"""The report model says what the scan says: counts, statuses, articles, compliance."""

from __future__ import annotations

import json
import shlex
from collections import Counter
from dataclasses import replace
from datetime import date

from parcelguard.reports.build import ReportInputs, build_report, remediation_command
from parcelguard.reports.model import (
    REPORT_SCHEMA_VERSION,
    ArticleKind,
    Attestation,
    AttestationState,
    ReportModel,
)
from parcelguard.scanners.catalog import MANUAL_ARTICLES, TECHNICAL_ARTICLES, Catalog
from parcelguard.scanners.model import ControlResult, Evidence, ScanResult, Severity, Status
from tests.fixtures.synthetic import synthetic_scan
from tests.unit.reports.conftest import NOW


def _results(scan: ScanResult) -> list[ControlResult]:
    return [r for h in scan.hosts for r in h.results]


def test_counts_match_the_scan(scan: ScanResult, report: ReportModel) -> None:
    expected = Counter(r.status for r in _results(scan))
    assert report.summary.hosts == len(scan.hosts)
    assert report.summary.hosts_reachable == sum(h.reachable for h in scan.hosts)
    for status in Status:
        assert report.summary.counts.get(status) == expected[status]
    assert report.summary.counts.total == len(_results(scan))
    failing = Counter(r.severity for r in _results(scan) if r.status in (Status.FAIL, Status.ERROR))
    assert dict(report.summary.failing_by_severity) == {s: failing[s] for s in Severity}


def test_overall_compliance_excludes_not_applicable_and_counts_error_against(
    scan: ScanResult, report: ReportModel
) -> None:
    results = _results(scan)
    judged = [r for r in results if r.status not in (Status.NOT_APPLICABLE, Status.MANUAL)]
    ok = [r for r in judged if r.status in (Status.PASS, Status.WAIVED)]
    assert report.summary.compliance.judged == len(judged)
    assert report.summary.compliance.compliant == len(ok)
    assert any(r.status is Status.ERROR for r in results), "the lab scan has ERRORs"


def test_every_article_is_reported_with_its_kind(report: ReportModel) -> None:
    kinds = {a.number: a.kind for a in report.articles}
    assert set(kinds) == set(TECHNICAL_ARTICLES) | set(MANUAL_ARTICLES)
    assert all(kinds[n] is ArticleKind.MANUAL for n in MANUAL_ARTICLES)
    assert [a.number for a in report.articles] == sorted(kinds)


def test_article_compliance_and_matrix_match_the_scan(
    scan: ScanResult, report: ReportModel, catalog: Catalog
) -> None:
    for article in report.articles:
        if article.kind is ArticleKind.MANUAL:
            continue
        mine = [r for r in _results(scan) if article.number in r.articles]
        judged = [r for r in mine if r.status not in (Status.NOT_APPLICABLE, Status.MANUAL)]
        assert article.compliance.judged == len(judged), article.number
        assert article.compliance.compliant == sum(
            r.status in (Status.PASS, Status.WAIVED) for r in judged
        )
        assert set(article.control_ids) == {c.id for c in catalog.for_article(article.number)}
        assert [row.host for row in article.matrix] == [h.host for h in scan.hosts]
        for row, host in zip(article.matrix, scan.hosts, strict=True):
            by_id = {r.control_id: r.status for r in host.results}
            assert row.cells == tuple(by_id.get(c) for c in article.control_ids)


def test_zone_compliance_covers_each_zone(scan: ScanResult, report: ReportModel) -> None:
    zones = {z for h in scan.hosts for z in h.zones}
    assert {z.zone for z in report.summary.zones} == zones
    for z in report.summary.zones:
        assert z.hosts == sum(z.zone in h.zones for h in scan.hosts)


def test_every_fail_has_the_exact_remediation_command(report: ReportModel) -> None:
    fails = [f for h in report.hosts for f in h.findings if f.status is Status.FAIL]
    assert fails
    for f in fails:
        tag = f.control_id.lower()
        if tag.startswith("pg-staff-"):  # departed staff: offboarding revokes and verifies
            expected = f"parcelguard offboard --roster ROSTER.csv -i INVENTORY --limit {f.host}"
        else:
            expected = f"ansible-playbook playbooks/harden.yml --limit {f.host} --tags {tag}"
        assert f.remediation == expected
    others = [f for h in report.hosts for f in h.findings if f.status is not Status.FAIL]
    assert all(f.remediation == "" for f in others)


def test_departed_staff_are_fixed_by_offboarding_not_by_hardening() -> None:
    command = remediation_command("web1", ["pg-ssh-001", "pg-staff-001", "pg-staff-002"])
    assert command == (
        "ansible-playbook playbooks/harden.yml --limit web1 --tags pg-ssh-001 && "
        "parcelguard offboard --roster ROSTER.csv -i INVENTORY --limit web1"
    )


def test_remediation_quotes_the_host_for_the_shell() -> None:
    command = remediation_command("web1; rm -rf /", ["pg-ssh-001"])
    assert shlex.split(command)[3] == "web1; rm -rf /"
    assert "'web1; rm -rf /'" in command


def test_host_fix_all_names_every_failed_tag(report: ReportModel) -> None:
    for h in report.hosts:
        tags = [f.control_id.lower() for f in h.findings if f.status is Status.FAIL]
        harden = [t for t in tags if not t.startswith("pg-staff-")]
        if harden:
            assert f"--tags {','.join(harden)}" in h.remediation
        if len(harden) < len(tags):
            assert h.remediation.endswith(
                f"parcelguard offboard --roster ROSTER.csv " f"-i INVENTORY --limit {h.host}"
            )
        if not tags:
            assert h.remediation == ""


def test_manual_articles_without_attestations_are_missing(report: ReportModel) -> None:
    manual = [a for a in report.articles if a.kind is ArticleKind.MANUAL]
    assert len(manual) == len(MANUAL_ARTICLES)
    assert all(a.attestation_state is AttestationState.MISSING for a in manual)
    assert report.summary.manual_attested == 0
    assert report.summary.manual_total == len(MANUAL_ARTICLES)


def test_attestations_fill_manual_rows(scan: ScanResult, catalog: Catalog) -> None:
    valid = Attestation(17, "Li Ming", date(2026, 6, 1), "DOC-17", date(2027, 6, 1))
    expired = Attestation(10, "Li Ming", date(2025, 1, 1), "DOC-10", date(2025, 12, 31))
    model = build_report(scan, catalog, ReportInputs(attestations=(valid, expired)), NOW)
    by_number = {a.number: a for a in model.articles}
    assert by_number[17].attestation_state is AttestationState.ATTESTED
    assert by_number[17].attestation == valid
    assert by_number[10].attestation_state is AttestationState.EXPIRED
    assert by_number[11].attestation_state is AttestationState.MISSING
    assert model.summary.manual_attested == 1


def test_evidence_is_masked_again(catalog: Catalog) -> None:
    scan = synthetic_scan(hosts=1)
    host = scan.hosts[0]
    leaked = replace(
        host.results[0],
        status=Status.FAIL,
        summary="recipient 13812345678",
        evidence=(
            Evidence("row", "王芳 13812345678 110101199003074578"),
            Evidence("redis", "requirepass hunter2"),
        ),
    )
    scan = replace(scan, hosts=(replace(host, results=(leaked,)),), notes=("DB_PASSWORD=x1",))
    model = build_report(scan, catalog, ReportInputs(), NOW)
    text = model.to_json()
    for secret in ("13812345678", "110101199003074578", "hunter2", "x1"):
        assert secret not in text
    assert "138****5678" in text
    assert "1101**********4578" in text


def test_controls_unknown_to_the_catalog_are_kept(catalog: Catalog) -> None:
    scan = synthetic_scan(hosts=2, extra_controls=2)
    model = build_report(scan, catalog, ReportInputs(), NOW)
    extra = model.control("PG-XTRA-001")
    assert extra is not None and extra.remediation_tag == "pg-xtra-001"
    assert "PG-XTRA-002" in next(a for a in model.articles if a.number == 29).control_ids


def test_json_is_versioned_and_complete(scan: ScanResult, report: ReportModel) -> None:
    data = json.loads(report.to_json())
    assert next(iter(data)) == "schema_version"
    assert data["schema_version"] == REPORT_SCHEMA_VERSION
    assert data["scan"]["scan_id"] == scan.scan_id
    findings = [f for h in data["hosts"] for f in h["findings"]]
    assert len(findings) == len(_results(scan))
    assert data["summary"]["counts"] == {
        s.value: n for s, n in Counter(r.status for r in _results(scan)).items()
    }
    assert {a["number"] for a in data["articles"]} == set(TECHNICAL_ARTICLES) | set(MANUAL_ARTICLES)
