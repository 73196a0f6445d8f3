"""Both languages carry every fixed text, and the same facts."""

from __future__ import annotations

import csv
import io
import re
import string
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from parcelguard.reports import render, texts
from parcelguard.reports.model import ReportModel
from parcelguard.reports.provisions import ordinal_number, parse_provisions
from parcelguard.scanners.catalog import MANUAL_ARTICLES, TECHNICAL_ARTICLES, Catalog

PROVISIONS = Path(__file__).parents[4] / "shared" / "provisions.txt"
# Fields whose text is in the report's language; everything else is a fact.
LANGUAGE_FIELDS = {"lang", "title", "summary", "generated"}


def _placeholders(text: str) -> set[str]:
    return {name for _l, name, _f, _c in string.Formatter().parse(text) if name}


def test_every_message_has_both_languages_with_the_same_placeholders() -> None:
    for key, by_lang in texts.messages().items():
        assert set(by_lang) == set(texts.LANGUAGES), key
        assert all(v.strip() for v in by_lang.values()), key
        assert _placeholders(by_lang["en"]) == _placeholders(by_lang["zh-CN"]), key


def test_every_control_has_a_chinese_title(catalog: Catalog) -> None:
    zh = texts.control_titles_zh()
    assert set(zh) == set(catalog.ids)
    assert all(re.search(r"[\u4e00-\u9fff]", t) for t in zh.values())


def test_every_reported_article_has_titles_and_text() -> None:
    articles = texts.articles()
    for number, title in {**TECHNICAL_ARTICLES, **MANUAL_ARTICLES}.items():
        a = articles[number]
        assert a.title_en == title, f"articles.yml title of {number} differs from the catalog"
        assert re.search(r"[\u4e00-\u9fff]", a.title_zh) and re.search(
            r"[\u4e00-\u9fff]", a.summary_zh
        )
        assert len(a.excerpt_en) > 40
    for number in (33, 43, 45):  # the articles the report cites for itself
        assert number in articles


@pytest.mark.skipif(not PROVISIONS.exists(), reason="shared/provisions.txt is not beside the repo")
def test_excerpts_are_the_provisions_text() -> None:
    parsed = parse_provisions(PROVISIONS.read_text(encoding="utf-8"))
    for number, a in texts.articles().items():
        assert " ".join(a.excerpt_en.split()) == " ".join(parsed[number].split()), number


def test_ordinals() -> None:
    assert ordinal_number("Tenth") == 10
    assert ordinal_number("Thirty-fifth") == 35
    assert ordinal_number("Twentieth") == 20
    assert ordinal_number("Forty-first") == 41
    assert ordinal_number("Postal") is None


def test_parse_provisions_keeps_paragraphs_and_stops_at_chapters() -> None:
    text = (
        "Article 1 First.\n\nMore of one.\n\nChapter II X\n\nSecond the second.\n\n"
        "Thirty-fifth postal enterprises should.\n"
    )
    assert parse_provisions(text) == {
        1: "First.\n\nMore of one.",
        2: "The second.",
        35: "Postal enterprises should.",
    }


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown language"):
        texts.check_lang("fr")


def _facts(value: Any) -> Any:
    """The model without the texts that depend on the language."""
    if is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _facts(getattr(value, f.name))
            for f in fields(value)
            if f.name not in LANGUAGE_FIELDS
        }
    if isinstance(value, tuple | list):
        return [_facts(v) for v in value]
    return value


def test_english_and_chinese_models_carry_the_same_facts(
    report: ReportModel, report_zh: ReportModel
) -> None:
    assert report_zh.lang == "zh-CN"
    assert _facts(report) == _facts(report_zh)
    assert [c.title for c in report.controls] != [c.title for c in report_zh.controls]


def test_english_and_chinese_renderings_carry_the_same_facts(
    report: ReportModel, report_zh: ReportModel
) -> None:
    def rows(m: ReportModel) -> list[tuple[str, ...]]:
        data = csv.DictReader(io.StringIO(render.render_csv(m)))
        return [
            (r["host"], r["control_id"], r["status"], r["remediation"], r["evidence"]) for r in data
        ]

    assert rows(report) == rows(report_zh)
    en, zh = (
        ET.fromstring(render.render_junit(report)),
        ET.fromstring(render.render_junit(report_zh)),
    )
    for key in ("tests", "failures", "errors"):
        assert en.get(key) == zh.get(key)
    html_en, html_zh = render.render_html(report), render.render_html(report_zh)
    numbers = re.compile(r"\d+(?:\.\d+)?%")
    assert numbers.findall(html_en) == numbers.findall(html_zh)
    for f in report.failures():
        if f.remediation:
            assert f.remediation in html_zh
    assert "寄递服务用户个人信息安全审计报告" in html_zh
    assert 'lang="zh-CN"' in html_zh
    md_zh = render.render_markdown(report_zh)
    assert "### 第29条 · " in md_zh
