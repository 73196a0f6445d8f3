"""Every format renders from the model and says what the scan says; hostile text is inert."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from dataclasses import replace
from datetime import date
from html.parser import HTMLParser
from xml.etree import ElementTree as ET

import pytest

from parcelguard.reports import render
from parcelguard.reports.build import ReportInputs, build_report
from parcelguard.reports.model import ArticleKind, Attestation, ReportModel
from parcelguard.scanners.catalog import MANUAL_ARTICLES, Catalog
from parcelguard.scanners.model import Evidence, ScanResult, Status
from tests.fixtures.synthetic import synthetic_scan
from tests.unit.reports.conftest import NOW

HOSTILE_HOST = '<script>alert("host")</script>'
HOSTILE = '<img src=x onerror=alert(1)><script>alert("ev")</script>'
JS_URL = "javascript:alert(document.cookie)"


def _results(scan: ScanResult) -> list[tuple[str, str, Status]]:
    return [(h.host, r.control_id, r.status) for h in scan.hosts for r in h.results]


def test_unknown_format_is_refused(report: ReportModel) -> None:
    with pytest.raises(render.RenderError, match="unknown format"):
        render.render(report, "docx")


def test_junit_counts_match_the_scan(scan: ScanResult, report: ReportModel) -> None:
    root = ET.fromstring(render.render(report, "junit"))
    counts = Counter(s for _h, _c, s in _results(scan))
    manual = len(MANUAL_ARTICLES)
    assert int(root.get("tests", "0")) == len(_results(scan)) + manual
    assert int(root.get("failures", "0")) == counts[Status.FAIL] + manual  # none attested
    assert int(root.get("errors", "0")) == counts[Status.ERROR]
    suites = {s.get("name"): s for s in root}
    for h in scan.hosts:
        suite = suites[h.host]
        assert len(suite) == len(h.results)
        failed = {c.get("name", "").split()[0] for c in suite if c.find("failure") is not None}
        assert failed == {r.control_id for r in h.results if r.status is Status.FAIL}
        for case in suite:
            failure = case.find("failure")
            if failure is not None:
                fix = (
                    "fix: parcelguard offboard --roster"
                    if case.get("name", "").startswith("PG-STAFF")
                    else "fix: ansible-playbook playbooks/harden.yml --limit"
                )
                assert fix in (failure.text or "")


def test_csv_has_a_row_per_result_and_manual_article(scan: ScanResult, report: ReportModel) -> None:
    rows = list(csv.DictReader(io.StringIO(render.render(report, "csv").decode("utf-8"))))
    results = [r for r in rows if r["kind"] == "result"]
    assert [(r["host"], r["control_id"], Status(r["status"])) for r in results] == _results(scan)
    manual = [r for r in rows if r["kind"] == "manual"]
    assert sorted(int(r["articles"]) for r in manual) == sorted(MANUAL_ARTICLES)
    assert all(r["status"] == "MISSING" for r in manual)
    for r in results:
        if r["status"] == "FAIL" and r["control_id"].startswith("PG-STAFF"):
            assert r["remediation"].endswith(f"--limit {r['host']}")
        elif r["status"] == "FAIL":
            assert r["remediation"].endswith(f"--tags {r['control_id'].lower()}")


def test_html_has_every_article_host_and_fix(scan: ScanResult, report: ReportModel) -> None:
    html = render.render(report, "html").decode("utf-8")
    assert html.startswith("<!DOCTYPE html>")
    for a in report.articles:
        assert f'id="art-{a.number}"' in html
    for h in scan.hosts:
        assert f">{h.host}<" in html
    for f in report.failures():
        if f.remediation:
            assert f.remediation in html
    assert html.count("<svg") >= 1
    # self-contained: no external stylesheet, script, image or font
    for marker in ("<link", "<script", "src=", "@import", "url("):
        assert marker not in html


def test_markdown_has_every_article_and_fix(report: ReportModel) -> None:
    md = render.render(report, "md").decode("utf-8")
    for a in report.articles:
        assert f"### Article {a.number} · " in md
    for f in report.failures():
        if f.remediation:
            assert f"`{f.remediation}`" in md


def test_json_format_is_the_model(report: ReportModel) -> None:
    data = json.loads(render.render(report, "json"))
    assert data == json.loads(report.to_json())


def test_pdf_is_a_pdf(report: ReportModel) -> None:
    pdf = render.render(report, "pdf")
    assert pdf.startswith(b"%PDF-")
    assert len(pdf) > 10_000


# -- hostile input -----------------------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend((k, v or "") for k, v in attrs)


@pytest.fixture(scope="module")
def hostile(catalog: Catalog) -> ReportModel:
    scan = synthetic_scan(hosts=2)
    first = scan.hosts[0]
    results = list(first.results)
    results[0] = replace(
        results[0],
        status=Status.FAIL,
        summary=f"{JS_URL} {HOSTILE} | `x` =cmd",
        evidence=(Evidence(HOSTILE, f"{HOSTILE}\n{JS_URL}\x00\x1b"),),
    )
    scan = replace(
        scan,
        scan_id='../../x"><script>alert(1)</script>',
        hosts=(replace(first, host=HOSTILE_HOST, results=tuple(results)), *scan.hosts[1:]),
        notes=(HOSTILE,),
    )
    attest = Attestation(17, HOSTILE, date(2026, 1, 1), JS_URL, date(2027, 12, 31), HOSTILE)
    return build_report(scan, catalog, ReportInputs(attestations=(attest,)), NOW)


def test_hostile_text_is_inert_in_html(hostile: ReportModel) -> None:
    html = render.render(hostile, "html").decode("utf-8")
    parser = _Tags()
    parser.feed(html)
    assert "script" not in parser.tags and "img" not in parser.tags
    assert not [k for k, _v in parser.attrs if k.startswith("on")]
    assert not [v for k, v in parser.attrs if k == "href" and not v.startswith(("#", "http"))]
    assert "&lt;script&gt;" in html
    assert JS_URL in html  # shown as text, never as a link


def test_only_http_evidence_references_become_links(catalog: Catalog) -> None:
    good = Attestation(11, "a", date(2026, 1, 1), "https://wiki.example.com/t", date(2027, 1, 1))
    model = build_report(synthetic_scan(1), catalog, ReportInputs(attestations=(good,)), NOW)
    assert 'href="https://wiki.example.com/t"' in render.render_html(model)
    assert not render.safe_link(JS_URL)
    assert not render.safe_link('https://x" onmouseover="a')


def test_hostile_text_is_inert_in_markdown(hostile: ReportModel) -> None:
    md = render.render(hostile, "md").decode("utf-8")
    # Code spans show their text literally (CommonMark: no HTML inside them).
    outside_code = re.sub(r"(`+).*?\1", "", md)
    assert "<script" not in outside_code and "<img" not in outside_code
    assert "&lt;script&gt;" in md


def test_hostile_text_is_valid_xml_in_junit(hostile: ReportModel) -> None:
    data = render.render(hostile, "junit")
    root = ET.fromstring(data)  # control characters were replaced, so it parses
    assert HOSTILE_HOST in {s.get("name") for s in root}
    assert b"<script" not in data


def test_csv_cells_never_start_a_formula(hostile: ReportModel) -> None:
    assert render.csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert render.csv_cell("-2+3") == "'-2+3"
    assert render.csv_cell("web1") == "web1"
    rows = list(csv.reader(io.StringIO(render.render(hostile, "csv").decode("utf-8"))))
    assert all(not cell.startswith(("=", "+", "@")) for row in rows for cell in row)


def test_markdown_code_spans_cannot_be_closed_early() -> None:
    assert render.md_code("a`b") == "``a`b``"
    assert render.md_code("`x`") == "`` `x` ``"
    assert render.md_code("a|b") == "`a\\|b`"


def test_manual_rows_show_attestations(hostile: ReportModel) -> None:
    art = next(a for a in hostile.articles if a.number == 17)
    assert art.kind is ArticleKind.MANUAL and art.attestation is not None
    html = render.render_html(hostile)
    assert "ATTESTED" in html and "MISSING" in html
