"""Render a :class:`ReportModel` as JSON, HTML, Markdown, JUnit XML, CSV or PDF.

Each renderer returns the whole document as bytes and writes nothing, so that the
caller can write every format or none. HTML and Markdown come from Jinja2 templates with
escaping on for every value (HTML autoescape; a Markdown ``finalize`` that escapes HTML
and Markdown syntax). JUnit XML is built with ElementTree, CSV with the csv module
(cells that a spreadsheet would run as a formula are quoted), PDF by WeasyPrint from
the HTML, with every URL fetch refused.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from typing import Any
from xml.etree import ElementTree as ET

import jinja2

from parcelguard.reports import charts
from parcelguard.reports.build import remediation_command
from parcelguard.reports.model import (
    ArticleKind,
    AttestationState,
    Compliance,
    Finding,
    HostSection,
    ReportModel,
)
from parcelguard.reports.texts import Translator
from parcelguard.scanners.model import Evidence, Status

FORMATS: tuple[str, ...] = ("json", "html", "md", "junit", "csv", "pdf")
EXTENSIONS: dict[str, str] = {
    "json": "json",
    "html": "html",
    "md": "md",
    "junit": "junit.xml",
    "csv": "csv",
    "pdf": "pdf",
}
EN_DASH = "\u2013"  # shown where nothing was judged
# Statuses whose findings are shown with their evidence (and reason).
DETAILED = frozenset({Status.FAIL, Status.ERROR, Status.WAIVED, Status.NOT_APPLICABLE})
# Statuses in the order the report shows them; MANUAL belongs to articles, not hosts.
SHOWN_STATUSES = (Status.PASS, Status.FAIL, Status.ERROR, Status.WAIVED, Status.NOT_APPLICABLE)
SYMBOLS: dict[Status | None, str] = {
    Status.PASS: "✓",
    Status.FAIL: "✗",
    Status.ERROR: "!",
    Status.WAIVED: "W",
    Status.NOT_APPLICABLE: EN_DASH,
    Status.MANUAL: "M",
    None: "·",
}
CODES: dict[Status | None, str] = {
    Status.PASS: "P",
    Status.FAIL: "F",
    Status.ERROR: "E",
    Status.WAIVED: "W",
    Status.NOT_APPLICABLE: "N",
    Status.MANUAL: "M",
    None: "X",
}
_SAFE_LINK = re.compile(r"^https?://[^\s<>\"']+$", re.IGNORECASE)
# Characters XML 1.0 cannot carry at all (C0 controls other than tab, LF, CR; FFFE/FFFF).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# Markdown syntax that can act mid-line (block markers only act where no value starts).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


class RenderError(Exception):
    """A format could not be rendered; the message says which and why."""


def render(model: ReportModel, fmt: str) -> bytes:
    """The report in format ``fmt`` (one of :data:`FORMATS`)."""
    renderers: dict[str, Callable[[ReportModel], bytes]] = {
        "json": lambda m: (m.to_json() + "\n").encode("utf-8"),
        "html": lambda m: render_html(m).encode("utf-8"),
        "md": lambda m: render_markdown(m).encode("utf-8"),
        "junit": render_junit,
        "csv": lambda m: render_csv(m).encode("utf-8"),
        "pdf": render_pdf,
    }
    if fmt not in renderers:
        raise RenderError(f"unknown format {fmt!r}")
    return renderers[fmt](model)


# -- shared template context ------------------------------------------------------------


def safe_link(url: str) -> bool:
    """Whether ``url`` may become a link: only plain http(s) URLs, never javascript: etc."""
    return bool(_SAFE_LINK.match(url))


def percent(c: Compliance) -> str:
    """A compliance share as ``87.5%``, or an en dash when nothing was judged."""
    return EN_DASH if c.percent is None else f"{c.percent:.1f}%"


def _dt(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _context(model: ReportModel) -> dict[str, Any]:
    t = Translator(model.lang)
    found = patterns(model)
    per_control: dict[str, Counter[Status]] = {c.id: Counter() for c in model.controls}
    for h in model.hosts:
        for f in h.findings:
            per_control.setdefault(f.control_id, Counter())[f.status] += 1
    return {
        "m": model,
        "t": t,
        "dt": _dt,
        "pct": percent,
        "link": safe_link,
        "statuses": SHOWN_STATUSES,
        "counted": SHOWN_STATUSES,
        "symbols": SYMBOLS,
        "codes": CODES,
        "controls": {c.id: c for c in model.controls},
        "per_control": per_control,
        "tones": charts.TONES,
        "bars": charts.article_bars(model.articles, t("chart.article", n="{n}")),
        "trend": charts.trend_line(model.trend),
        "failures": model.failures(),
        "host_views": [_host_view(h) for h in model.hosts],
        "patterns": found,
        "pattern_of": {
            (host, p.control_id): p.anchor for ps in found.values() for p in ps for host in p.hosts
        },
    }


@dataclass(frozen=True)
class Pattern:
    """Findings of one control that say the same (status, summary, evidence) on many hosts.

    A fleet built from one image fails the same way everywhere; the report shows each
    pattern's evidence once, under its control, and links every host's row to it.
    """

    anchor: str
    control_id: str
    status: Status
    summary: str
    reason: str
    waiver: str
    evidence: tuple[Evidence, ...]
    hosts: tuple[str, ...]
    remediation: str  # one command for all of the pattern's hosts (FAIL only)


def patterns(model: ReportModel) -> dict[str, list[Pattern]]:
    """Every finding but PASS grouped into patterns, by control id."""
    groups: dict[tuple[object, ...], list[Finding]] = {}
    for h in model.hosts:
        for f in h.findings:
            if f.status in DETAILED:
                key = (f.control_id, f.status, f.summary, f.reason, f.waiver, f.evidence)
                groups.setdefault(key, []).append(f)
    tags = {c.id: c.remediation_tag for c in model.controls}
    by_control: dict[str, list[Pattern]] = {}
    for n, findings in enumerate(groups.values(), start=1):
        f = findings[0]
        hosts = tuple(x.host for x in findings)
        tag = tags.get(f.control_id, f.control_id.lower())
        by_control.setdefault(f.control_id, []).append(
            Pattern(
                anchor=f"p{n}",
                control_id=f.control_id,
                status=f.status,
                summary=f.summary,
                reason=f.reason,
                waiver=f.waiver,
                evidence=f.evidence,
                hosts=hosts,
                remediation=(
                    remediation_command(",".join(hosts), [tag]) if f.status is Status.FAIL else ""
                ),
            )
        )
    return by_control


def _host_view(
    h: HostSection,
) -> tuple[list[tuple[Status, list[Finding]]], list[Finding], list[str]]:
    """A host's findings as the report lists them: (status, findings) for FAIL, ERROR and
    WAIVED in that order, then the not applicable findings and the passed control ids."""
    groups = [
        (status, [f for f in h.findings if f.status is status])
        for status in (Status.FAIL, Status.ERROR, Status.WAIVED)
    ]
    na = [f for f in h.findings if f.status is Status.NOT_APPLICABLE]
    passed = [f.control_id for f in h.findings if f.status is Status.PASS]
    return [(s, found) for s, found in groups if found], na, passed


def _loader() -> jinja2.BaseLoader:
    return jinja2.PackageLoader("parcelguard.reports", "templates")


@cache
def html_environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=_loader(),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def render_html(model: ReportModel) -> str:
    return html_environment().get_template("report.html.j2").render(_context(model))


# -- Markdown ---------------------------------------------------------------------------


class MdRaw(str):
    """Markdown that a filter already made safe; ``finalize`` leaves it as it is."""


def md_escape(value: object) -> str:
    """Text safe in Markdown: HTML is escaped, Markdown syntax and line breaks neutralised."""
    if isinstance(value, MdRaw):
        return value
    return _md_escape_text(str(value))


@lru_cache(maxsize=1 << 16)
def _md_escape_text(value: str) -> str:
    text = " ".join(value.split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    # A value that starts a list item's text must not start a heading, list or rule.
    return "\\" + text if text[:1] in ("#", "+", "-", "=") else text


def md_code(value: object) -> MdRaw:
    """An inline code span that no backtick or pipe in ``value`` can end early."""
    text = " ".join(str(value).split()).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return MdRaw(f"{fence}{pad}{text}{pad}{fence}")


def md_block(value: object) -> MdRaw:
    """Evidence as an indented block quote line by line, every line escaped."""
    lines = str(value).splitlines() or [""]
    return MdRaw("<br>".join(md_escape(line) for line in lines))


def _md_finalize(value: object) -> object:
    return md_escape(value) if value is not None else ""


@cache
def markdown_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=_loader(),
        autoescape=False,  # noqa: S701  (Markdown: every value is escaped by finalize)
        finalize=_md_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["code"] = md_code
    env.filters["block"] = md_block
    env.filters["raw"] = lambda v: MdRaw(str(v))
    return env


def render_markdown(model: ReportModel) -> str:
    return markdown_environment().get_template("report.md.j2").render(_context(model))


# -- JUnit XML --------------------------------------------------------------------------


def _x(value: object) -> str:
    return _XML_INVALID.sub("\ufffd", str(value))


def render_junit(model: ReportModel) -> bytes:
    """One test suite per host (a test case per control) and one for manual articles.

    FAIL is a failure, ERROR an error, WAIVED and NOT_APPLICABLE are skipped (with the
    waiver or reason); a manual article without a valid attestation is a failure.
    """
    t = Translator(model.lang)
    root = ET.Element("testsuites", name=_x(f"parcelguard {model.scan.scan_id}"))
    for h in model.hosts:
        suite = ET.SubElement(root, "testsuite", name=_x(h.host), timestamp=h.started.isoformat())
        counts = Counter(f.status for f in h.findings)
        for f in h.findings:
            control = model.control(f.control_id)
            title = control.title if control else f.control_id
            case = ET.SubElement(
                suite,
                "testcase",
                classname=_x(f"{model.scan.scan_id}.{h.host}"),
                name=_x(f"{f.control_id} {title}"),
            )
            body = "\n".join(
                [f"{e.label}: {e.value}" for e in f.evidence]
                + ([f"fix: {f.remediation}"] if f.remediation else [])
            )
            if f.status is Status.FAIL:
                tag = ET.SubElement(case, "failure", message=_x(f.summary), type=f.severity.value)
                tag.text = _x(body)
            elif f.status is Status.ERROR:
                tag = ET.SubElement(case, "error", message=_x(f.summary), type=f.severity.value)
                tag.text = _x(body)
            elif f.status in (Status.WAIVED, Status.NOT_APPLICABLE, Status.MANUAL):
                why = f"waiver {f.waiver}" if f.status is Status.WAIVED else f.reason or f.summary
                ET.SubElement(case, "skipped", message=_x(f"{f.status.value}: {why}"))
        _suite_counts(
            suite,
            len(h.findings),
            counts[Status.FAIL],
            counts[Status.ERROR],
            counts[Status.WAIVED] + counts[Status.NOT_APPLICABLE] + counts[Status.MANUAL],
        )
    manual = ET.SubElement(root, "testsuite", name=_x(t("junit.manual_suite")))
    failures = 0
    for a in model.articles:
        if a.kind is not ArticleKind.MANUAL:
            continue
        case = ET.SubElement(
            manual,
            "testcase",
            classname=_x(f"{model.scan.scan_id}.manual"),
            name=_x(f"{t('article.label', n=a.number)} {a.title}"),
        )
        if a.attestation_state is not AttestationState.ATTESTED:
            failures += 1
            state = a.attestation_state.value if a.attestation_state else "MISSING"
            ET.SubElement(case, "failure", message=_x(f"attestation {state}"), type="manual")
    _suite_counts(manual, len(manual), failures, 0, 0)
    total = [int(s.get("tests", "0")) for s in root]
    root.set("tests", str(sum(total)))
    root.set("failures", str(sum(int(s.get("failures", "0")) for s in root)))
    root.set("errors", str(sum(int(s.get("errors", "0")) for s in root)))
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def _suite_counts(suite: ET.Element, tests: int, failures: int, errors: int, skipped: int) -> None:
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))


# -- CSV --------------------------------------------------------------------------------

CSV_COLUMNS = (
    "scan_id",
    "kind",
    "host",
    "address",
    "zones",
    "control_id",
    "title",
    "articles",
    "severity",
    "status",
    "summary",
    "reason",
    "waiver",
    "evidence",
    "remediation",
)


def csv_cell(value: object) -> str:
    """A cell a spreadsheet shows as text: a leading = + - @ tab or CR is quoted with '."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def render_csv(model: ReportModel) -> str:
    """One row per (host, control) result, then one per manual article."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    titles = {c.id: c.title for c in model.controls}
    for h in model.hosts:
        for f in h.findings:
            row: tuple[object, ...] = (
                model.scan.scan_id,
                "result",
                h.host,
                h.address,
                " ".join(h.zones),
                f.control_id,
                titles.get(f.control_id, f.control_id),
                " ".join(str(a) for a in f.articles),
                f.severity.value,
                f.status.value,
                f.summary,
                f.reason,
                f.waiver,
                " | ".join(f"{e.label}: {e.value}" for e in f.evidence),
                f.remediation,
            )
            writer.writerow([csv_cell(v) for v in row])
    for a in model.articles:
        if a.kind is ArticleKind.MANUAL:
            at = a.attestation
            state = a.attestation_state.value if a.attestation_state else ""
            evidence = (
                f"{at.attested_by}, {at.date}, {at.evidence_ref}, expires {at.expires}"
                if at
                else ""
            )
            row = (
                model.scan.scan_id,
                "manual",
                "",
                "",
                "",
                "",
                a.title,
                str(a.number),
                "",
                state,
                "",
                at.note if at else "",
                "",
                evidence,
                "",
            )
            writer.writerow([csv_cell(v) for v in row])
    return out.getvalue()


# -- PDF --------------------------------------------------------------------------------


def _refuse_fetch(url: str, *args: object, **kwargs: object) -> dict[str, object]:
    raise ValueError(f"the report fetches nothing: refused {url[:60]!r}")


def render_pdf(model: ReportModel) -> bytes:
    """The HTML report printed to PDF by WeasyPrint (print CSS: A4, page per article)."""
    try:
        import weasyprint
    except ImportError as exc:  # pragma: no cover - weasyprint is a dependency
        raise RenderError(f"PDF needs WeasyPrint and Pango: {exc}") from exc
    html = render_html(model)
    document = weasyprint.HTML(string=html, url_fetcher=_refuse_fetch)
    pdf = document.write_pdf()
    if not isinstance(pdf, bytes):  # pragma: no cover
        raise RenderError("WeasyPrint returned no PDF")
    return pdf
