"""Fixtures for report tests: the recorded lab scan, built reports, hostile input."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from parcelguard.reports.build import ReportInputs, build_report
from parcelguard.reports.model import ReportModel
from parcelguard.scanners.catalog import Catalog, load_catalog
from parcelguard.scanners.model import ScanResult
from tests.fixtures.synthetic import recorded_fleet

LAB_SCAN = Path(__file__).parents[2] / "fixtures" / "scans" / "lab-neglected.json"
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def lab_scan() -> ScanResult:
    """The recorded scan of the 6-host lab fleet, or (until it is recorded) six hosts
    judged from the gather output recorded on the neglected lab."""
    if LAB_SCAN.exists():
        return ScanResult.from_json(LAB_SCAN.read_text(encoding="utf-8"))
    return recorded_fleet(6)


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="session")
def scan() -> ScanResult:
    return lab_scan()


@pytest.fixture(scope="session")
def report(scan: ScanResult, catalog: Catalog) -> ReportModel:
    return build_report(scan, catalog, ReportInputs(), NOW)


@pytest.fixture(scope="session")
def report_zh(scan: ScanResult, catalog: Catalog) -> ReportModel:
    return build_report(scan, catalog, ReportInputs(lang="zh-CN"), NOW)
