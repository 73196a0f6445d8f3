"""The report's fixed texts: article titles and excerpts, control titles, UI strings.

English and Simplified Chinese (``zh-CN``). The data files in ``reports/data/`` are read
once per process; a missing key or language is a programming error and raises
:class:`KeyError` rather than showing an empty string to the regulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from parcelguard.scanners.model import Severity, Status

LANGUAGES: tuple[str, ...] = ("en", "zh-CN")


@dataclass(frozen=True)
class ArticleText:
    number: int
    title_en: str
    title_zh: str
    excerpt_en: str
    summary_zh: str

    def title(self, lang: str) -> str:
        return self.title_zh if lang == "zh-CN" else self.title_en

    def summary(self, lang: str) -> str:
        """A short statement of the article: the Chinese summary, or the English excerpt."""
        return self.summary_zh if lang == "zh-CN" else self.excerpt_en


def _load(name: str) -> Any:
    text = resources.files("parcelguard.reports").joinpath("data", name).read_text("utf-8")
    return yaml.safe_load(text)


@cache
def articles() -> dict[int, ArticleText]:
    """Every article the reports cite, by number."""
    return {
        int(e["article"]): ArticleText(
            number=int(e["article"]),
            title_en=str(e["title_en"]),
            title_zh=str(e["title_zh"]),
            excerpt_en=str(e["excerpt_en"]),
            summary_zh=str(e["summary_zh"]),
        )
        for e in _load("articles.yml")
    }


@cache
def control_titles_zh() -> dict[str, str]:
    return {str(k): str(v) for k, v in _load("controls.zh-CN.yml").items()}


@cache
def messages() -> dict[str, dict[str, str]]:
    return {
        str(k): {str(lang): str(t) for lang, t in v.items()}
        for k, v in _load("messages.yml").items()
    }


def check_lang(lang: str) -> str:
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}: use one of {', '.join(LANGUAGES)}")
    return lang


@dataclass(frozen=True)
class Translator:
    """Fixed texts in one language; ``t(key)`` formats with keyword arguments."""

    lang: str

    def __call__(self, key: str, **values: object) -> str:
        text = messages()[key][self.lang]
        return text.format(**values) if values else text

    def status(self, status: Status | str | None) -> str:
        return self("status." + (Status(status).value if status else "NONE"))

    def severity(self, severity: Severity | str) -> str:
        return self("severity." + Severity(severity).value)

    def control_title(self, control_id: str, english: str) -> str:
        return control_titles_zh()[control_id] if self.lang == "zh-CN" else english
