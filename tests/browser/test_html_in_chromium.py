"""The HTML report opened in a real browser: visible content, inert hostile text, print."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from parcelguard.reports import render
from parcelguard.reports.model import ArticleKind, ReportModel
from parcelguard.scanners.model import Status
from tests.browser.conftest import lab_report

pytestmark = pytest.mark.browser


def _open(chromium: Any, html: str, path: Path) -> Any:
    path.write_text(html, encoding="utf-8")
    page = chromium.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    page.requests = requests
    page.errors = errors
    return page


@pytest.fixture(scope="module")
def english() -> ReportModel:
    return lab_report("en")


def test_english_report_shows_the_scan(
    chromium: Any, english: ReportModel, tmp_path: Path, artifacts: Path
) -> None:
    page = _open(chromium, render.render_html(english), tmp_path / "report.html")
    try:
        assert (
            page.locator("h1").inner_text()
            == "Information security audit report for delivery-service user data"
        )
        overall = page.locator("#overall").inner_text()
        assert overall == f"{english.summary.compliance.percent:.1f}%"
        assert page.locator(f"text={english.scan.scan_id}").first.is_visible()
        # one summary row and one section per article, technical ones with their matrix
        assert page.locator("#by-article tr").count() == len(english.articles) + 1
        for a in english.articles:
            heading = page.locator(f"#art-{a.number} h3")
            assert heading.inner_text().startswith(f"Article {a.number} · ")
            if a.kind is ArticleKind.TECHNICAL:
                cells = page.locator(f"#art-{a.number} table.mx td:not(.h)")
                assert cells.count() == len(a.matrix) * len(a.control_ids)
                assert page.locator(f"#art-{a.number} table.mx td.F").count() == sum(
                    row.cells.count(Status.FAIL) for row in a.matrix
                )
        assert page.locator("#art-17 .attestation").inner_text().count("ATTESTED") == 1
        assert "EXPIRED" in page.locator("#art-24 .attestation").inner_text()
        assert "MISSING" in page.locator("#art-8 .attestation").inner_text()
        # charts: a bar per technical article, a point per trend scan
        assert page.locator("#summary svg rect").count() == 10
        assert page.locator("#summary svg circle").count() == len(english.trend)
        # drift and the exact fix of a failure, as a reader sees them
        assert page.locator("#drift-counts").is_visible()
        fail = next(f for f in english.failures() if f.remediation)
        host = next(i for i, h in enumerate(english.hosts, 1) if h.host == fail.host)
        assert fail.remediation in page.locator(f"#host-{host}").inner_text()
        page.locator(f"#host-{host} a", has_text=fail.control_id).first.click()
        assert fail.summary in page.locator(":target").inner_text()
        page.screenshot(path=str(artifacts / "report-en.png"), full_page=False)
        page.locator("#art-31").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "report-en-article-31.png"))
        assert page.requests == [(tmp_path / "report.html").as_uri()]
        assert page.errors == []
    finally:
        page.close()


def test_print_hides_navigation_and_breaks_pages_between_articles(
    chromium: Any, english: ReportModel, tmp_path: Path
) -> None:
    page = _open(chromium, render.render_html(english), tmp_path / "report.html")
    try:
        assert page.locator("nav.toc").is_visible()
        page.emulate_media(media="print")
        assert not page.locator("nav.toc").is_visible()
        assert page.locator("#art-29").evaluate("e => getComputedStyle(e).breakBefore") == "page"
        pdf = page.pdf(format="A4")  # Chromium's own print path works too
        assert pdf.startswith(b"%PDF")
    finally:
        page.close()


def test_chinese_report_shows_chinese_text(chromium: Any, tmp_path: Path, artifacts: Path) -> None:
    model = lab_report("zh-CN")
    page = _open(chromium, render.render_html(model), tmp_path / "report.zh-CN.html")
    try:
        assert page.locator("h1").inner_text() == "寄递服务用户个人信息安全审计报告"
        assert page.locator("#art-29 h3").inner_text().startswith("第29条 · 划分安全区域")
        assert "各条款合规率" in page.locator("#summary").inner_text()
        page.screenshot(path=str(artifacts / "report-zh-CN.png"))
    finally:
        page.close()


def test_hostile_text_is_shown_not_run(chromium: Any, tmp_path: Path, artifacts: Path) -> None:
    from dataclasses import replace

    from parcelguard.reports.build import ReportInputs, build_report
    from parcelguard.scanners.catalog import load_catalog
    from parcelguard.scanners.model import Evidence
    from tests.fixtures.synthetic import synthetic_scan
    from tests.unit.reports.conftest import NOW

    attack = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'
    scan = synthetic_scan(hosts=2)
    first = scan.hosts[0]
    result = replace(
        first.results[0],
        status=Status.FAIL,
        summary="javascript:window.__pwned=1",
        evidence=(Evidence("payload", attack),),
    )
    scan = replace(
        scan,
        hosts=(replace(first, host=attack, results=(result, *first.results[1:])), scan.hosts[1]),
    )
    model = build_report(scan, load_catalog(), ReportInputs(), NOW)
    page = _open(chromium, render.render_html(model), tmp_path / "hostile.html")
    try:
        assert page.evaluate("window.__pwned") is None
        assert page.locator("script").count() == 0
        assert page.locator("img").count() == 0
        assert attack in page.locator("#host-list").inner_text()
        page.screenshot(path=str(artifacts / "report-hostile.png"))
    finally:
        page.close()
