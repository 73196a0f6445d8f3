"""Browser and PDF test fixtures: Debian's Chromium through Playwright, poppler-utils.

Chromium is /usr/bin/chromium (Debian's package, installed by `scripts/setup --dev`),
launched with a new empty profile and no network features. Outside CI the tests skip
when it or poppler-utils is missing; in CI (CI set) a missing tool is a failure.
Screenshots and page images are kept under artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from parcelguard.reports.attestations import load_attestations
from parcelguard.reports.build import ReportInputs, build_report, scan_compliance
from parcelguard.reports.history import compare
from parcelguard.reports.model import Compliance, ReportModel, TrendPoint
from parcelguard.scanners.catalog import load_catalog
from parcelguard.scanners.model import ScanResult, Status
from tests.unit.reports.conftest import NOW, lab_scan

ROOT = Path(__file__).parents[2]
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require(tool: str) -> str:
    """The tool's path; skip without it, except in CI, where its absence fails the test."""
    found = (
        shutil.which(tool) if not tool.startswith("/") else (tool if Path(tool).exists() else None)
    )
    if found:
        return found
    message = f"{tool} is not installed (bash scripts/setup --dev installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def _previous(scan: ScanResult) -> ScanResult:
    """The scan as it was a week before: its first host passed what it fails now, its
    last host was not there yet, and a retired host was."""
    first, *rest = scan.hosts
    first = replace(
        first,
        results=tuple(
            replace(r, status=Status.PASS) if r.status is Status.FAIL else r for r in first.results
        ),
    )
    retired = replace(rest[0], host="old-db9")
    return replace(
        scan,
        scan_id="previous-week",
        started=scan.started - timedelta(days=7),
        hosts=(first, *rest[:-1], retired),
    )


def lab_report(lang: str) -> ReportModel:
    """The lab scan's report with the example attestations, drift and a three-scan trend."""
    scan = lab_scan()
    attestations = load_attestations(ROOT / "docs" / "examples" / "attestations.yml")
    now = scan_compliance(scan)
    trend = (
        TrendPoint(
            "earlier-1", scan.started - timedelta(days=14), Compliance(now.judged, now.judged // 4)
        ),
        TrendPoint(
            "earlier-2", scan.started - timedelta(days=7), Compliance(now.judged, now.judged // 3)
        ),
        TrendPoint(scan.scan_id, scan.started, now),
    )
    inputs = ReportInputs(
        lang=lang, attestations=attestations, drift=compare(scan, _previous(scan)), trend=trend
    )
    return build_report(scan, load_catalog(), inputs, NOW)


@pytest.fixture(scope="session")
def chromium(playwright_session: Any) -> Iterator[object]:
    """A Playwright BrowserContext on Debian's Chromium with a fresh user-data-dir."""
    path = require(CHROMIUM)
    with tempfile.TemporaryDirectory(prefix="pg-chromium-") as profile:
        context = playwright_session.chromium.launch_persistent_context(
            profile,
            executable_path=path,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            offline=True,
        )
        try:
            yield context
        finally:
            context.close()
