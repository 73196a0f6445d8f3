"""Extract article texts from the Provisions into ``reports/data/articles.yml``.

The regulation's text (``shared/provisions.txt``, an English translation) is not shipped
with the package, so its articles are copied into the data file at build time:

    .venv/bin/python -m parcelguard.reports.provisions ../shared/provisions.txt

keeps each entry's titles and Chinese summary and rewrites its ``excerpt_en``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

ARTICLES_YML = Path(__file__).resolve().parent / "data" / "articles.yml"

_UNITS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "eleventh": 11,
    "twelfth": 12,
    "thirteenth": 13,
    "fourteenth": 14,
    "fifteenth": 15,
    "sixteenth": 16,
    "seventeenth": 17,
    "eighteenth": 18,
    "nineteenth": 19,
}
_TENS = {"twentieth": 20, "thirtieth": 30, "fortieth": 40, "fiftieth": 50}
_TENS_PREFIX = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50}
_NUMBERED = re.compile(r"^Article (\d+)\s+(.*)$", re.DOTALL)
_ORDINAL = re.compile(r"^([A-Za-z]+(?:-[a-z]+)?)\s+(.*)$", re.DOTALL)

HEADER = """\
# Articles of the Provisions that reports cite (generated; see reports/provisions.py).
# excerpt_en is copied from shared/provisions.txt, an English translation of
# 《寄递服务用户个人信息安全管理规定》. title_en matches catalog.TECHNICAL_ARTICLES and
# MANUAL_ARTICLES where the catalog names the article.
# title_zh and summary_zh are faithful Simplified Chinese translations of the English text,
# written for this project: they are NOT the official Chinese wording of the regulation.
"""


def ordinal_number(word: str) -> int | None:
    """The number an English ordinal such as ``Thirty-fifth`` or ``Tenth`` names, or None."""
    word = word.lower()
    if word in _UNITS:
        return _UNITS[word]
    if word in _TENS:
        return _TENS[word]
    tens, _, unit = word.partition("-")
    if tens in _TENS_PREFIX and unit in _UNITS and _UNITS[unit] < 10:
        return _TENS_PREFIX[tens] + _UNITS[unit]
    return None


def _article_start(paragraph: str) -> tuple[int, str] | None:
    numbered = _NUMBERED.match(paragraph)
    if numbered:
        return int(numbered.group(1)), numbered.group(2)
    worded = _ORDINAL.match(paragraph)
    if worded:
        number = ordinal_number(worded.group(1))
        if number is not None:
            return number, worded.group(2)
    return None


def parse_provisions(text: str) -> dict[int, str]:
    """Map article number to its text (paragraphs joined by blank lines, number removed).

    An article starts with ``Article N`` or an ordinal word (``Thirty-fifth``); the
    paragraphs that follow belong to it until the next article or chapter heading.
    """
    articles: dict[int, list[str]] = {}
    current: int | None = None
    for raw in re.split(r"\n\s*\n", text):
        paragraph = " ".join(raw.split())
        if not paragraph:
            continue
        if paragraph.startswith("Chapter "):
            current = None
            continue
        start = _article_start(paragraph)
        if start is not None and start[0] not in articles:
            current = start[0]
            articles[current] = [start[1][:1].upper() + start[1][1:]]
        elif current is not None:
            articles[current].append(paragraph)
    return {n: "\n\n".join(parts) for n, parts in sorted(articles.items())}


def refresh(provisions: Path, target: Path = ARTICLES_YML) -> list[int]:
    """Rewrite ``excerpt_en`` of every entry in ``target``; return the article numbers."""
    texts = parse_provisions(provisions.read_text(encoding="utf-8"))
    entries: list[dict[str, Any]] = yaml.safe_load(target.read_text(encoding="utf-8"))
    for entry in entries:
        number = int(entry["article"])
        if number not in texts:
            raise SystemExit(f"article {number} is not in {provisions}")
        entry["excerpt_en"] = texts[number]
    body = yaml.safe_dump(entries, allow_unicode=True, sort_keys=False, width=88)
    target.write_text(HEADER + body, encoding="utf-8")
    return [int(e["article"]) for e in entries]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m parcelguard.reports.provisions PROVISIONS_TXT")
    done = refresh(Path(sys.argv[1]))
    print(f"refreshed {len(done)} articles in {ARTICLES_YML}")
