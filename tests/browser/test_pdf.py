"""The PDF handed to the regulator: pages rendered to images, text extracted and checked."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from parcelguard.reports import render
from parcelguard.reports.model import ReportModel
from tests.browser.conftest import lab_report, require

pytestmark = pytest.mark.browser


def _pdf(model: ReportModel, path: Path) -> str:
    """Write the PDF and return its text as pdftotext extracts it."""
    path.write_bytes(render.render_pdf(model))
    out = subprocess.run(
        [require("pdftotext"), "-layout", str(path), "-"], check=True, capture_output=True
    )
    return " ".join(out.stdout.decode("utf-8").split())


def _pages(path: Path) -> int:
    info = subprocess.run([require("pdfinfo"), str(path)], check=True, capture_output=True)
    line = next(x for x in info.stdout.decode().splitlines() if x.startswith("Pages:"))
    return int(line.split()[1])


def _images(path: Path, artifacts: Path, stem: str, last: int) -> list[Path]:
    prefix = artifacts / stem
    for old in artifacts.glob(f"{stem}-*.png"):
        old.unlink()
    subprocess.run(
        [
            require("pdftoppm"),
            "-png",
            "-r",
            "60",
            "-f",
            "1",
            "-l",
            str(last),
            str(path),
            str(prefix),
        ],
        check=True,
    )
    return sorted(artifacts.glob(f"{stem}-*.png"))


def test_english_pdf(tmp_path: Path, artifacts: Path) -> None:
    model = lab_report("en")
    path = tmp_path / "report.pdf"
    text = _pdf(model, path)
    assert "Information security audit report for delivery-" in text
    assert model.scan.scan_id in text
    for a in model.articles:
        assert f"Article {a.number} · " in text
    for h in model.hosts:
        assert h.host in text
    assert "--tags pg-" in text
    assert f"{model.summary.compliance.percent:.1f}%" in text
    # a page per article at least: print CSS breaks before each
    assert _pages(path) >= len(model.articles)
    images = _images(path, artifacts, "report-en-page", 3)
    assert len(images) == 3 and all(p.stat().st_size > 5_000 for p in images)


def test_chinese_pdf(tmp_path: Path, artifacts: Path) -> None:
    model = lab_report("zh-CN")
    path = tmp_path / "report.zh-CN.pdf"
    text = _pdf(model, path)
    assert "寄递服务用户个人信息安全审计报告" in text
    assert "《寄递服务用户个人信息安全管理规定》" in text.replace(" ", "")
    assert "第29条" in text and "划分安全区域" in text
    assert "不合规" in text
    images = _images(path, artifacts, "report-zh-CN-page", 2)
    assert len(images) == 2
