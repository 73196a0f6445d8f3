"""``parcelguard report``: read a scan, build the report model, write every format or none."""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from parcelguard.errors import ParcelguardError, one_line
from parcelguard.reports import texts
from parcelguard.reports.model import Attestation, Drift, ReportModel, TrendPoint
from parcelguard.reports.render import EXTENSIONS, FORMATS
from parcelguard.scanners.model import ScanResult, SchemaError
from parcelguard.scanners.store import ScanStore

DEFAULT_TREND = 10

DESCRIPTION = (
    "Write the audit report of a scan, article by article of the Provisions: what was "
    "checked, on which hosts, when, with what evidence and result, what is waived and why, "
    "and the exact command that fixes each failure. Articles no machine can check appear "
    "as MANUAL rows filled from --attestations. The report compares the scan with the "
    "previous stored scan (drift) and charts compliance over past scans (trend). Every "
    "format is rendered from one versioned report model (--format json writes it); all "
    "requested files are written, or none."
)
EPILOG = (
    "Formats: json (the canonical report model), html (one self-contained file), md "
    "(Markdown), junit (JUnit XML for CI), csv (one row per host and control), pdf (for the "
    "regulator), or all (the default). Files are named parcelguard-report-<scan_id>.<ext>, "
    "with .zh-CN before the extension for Chinese. Exit codes: 0 written; 2 bad input, "
    "unknown format or unwritable output (nothing written). Examples: "
    "parcelguard report --input scan.json -o reports/ --attestations attestations.yml; "
    "parcelguard report --format html --format pdf --lang zh-CN"
)


def add_report_parser(subparsers: Any) -> None:
    """Add the ``report`` subcommand to the ``parcelguard`` command's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="write the audit report of a scan (html, pdf, md, junit, csv, json)",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--input", metavar="FILE", help="scan results JSON (from `parcelguard scan -o FILE`)"
    )
    source.add_argument(
        "--scan", metavar="ID", help="a scan id in the store (default: the newest stored scan)"
    )
    p.add_argument(
        "--store",
        metavar="PATH|URL",
        help="scan store: SQLite path or sqlite:///path "
        "(default $XDG_STATE_HOME/parcelguard/scans.db); read for --scan, drift and trend",
    )
    p.add_argument(
        "-f",
        "--format",
        action="append",
        metavar="FORMAT",
        help=f"{', '.join(FORMATS)} or all (default: all); repeat for several",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        default=".",
        help="folder to write the reports into, created if missing (default: .)",
    )
    p.add_argument(
        "--lang",
        default="en",
        metavar="LANG",
        help=f"report language: {' or '.join(texts.LANGUAGES)} (default: en)",
    )
    p.add_argument(
        "--attestations",
        metavar="YAML",
        help="attestations for the manual articles: article, attested_by, date, "
        "evidence_ref, expires, note (see docs/reports.md)",
    )
    drift = p.add_mutually_exclusive_group()
    drift.add_argument(
        "--compare",
        metavar="PREVIOUS",
        help="compare with this scan (a results JSON file or a stored scan id) instead of "
        "the newest earlier stored scan of the same hosts",
    )
    drift.add_argument("--no-compare", action="store_true", help="leave drift out")
    p.add_argument(
        "--trend",
        type=_count,
        default=DEFAULT_TREND,
        metavar="N",
        help=f"chart compliance over the last N stored scans of the same inventory "
        f"(default {DEFAULT_TREND}; 1 for none)",
    )
    p.set_defaults(handler=run_report)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


@dataclass(frozen=True)
class ReportRequest:
    formats: tuple[str, ...]
    lang: str
    output: Path


def run_report(args: argparse.Namespace) -> int:
    """Handle ``parcelguard report``: parse, load, build, render, write; exit 0."""
    from parcelguard.reports import output

    request = parse_request(args)
    folder = output.check_output_dir(request.output)
    store = _open_store(args.store, required=bool(args.scan) or not args.input)
    scan = load_scan(args.input, args.scan, store)
    model = build(scan, args, store, request.lang)
    documents = render_all(model, request.formats)
    written = output.write_all(folder, documents)
    for path in written:
        print(path)
    return 0


def parse_request(args: argparse.Namespace) -> ReportRequest:
    """Validate the formats and language; raises a one-line error for unknown ones."""
    asked = [f.strip() for item in (args.format or ["all"]) for f in item.split(",")]
    unknown = [f for f in asked if f not in (*FORMATS, "all")]
    if unknown:
        raise ParcelguardError(
            f"unknown report format {unknown[0]!r}", f"use {', '.join(FORMATS)} or all"
        )
    formats = FORMATS if "all" in asked else tuple(f for f in FORMATS if f in asked)
    try:
        lang = texts.check_lang(args.lang)
    except ValueError as exc:
        raise ParcelguardError(str(exc)) from exc
    return ReportRequest(formats, lang, Path(args.output).expanduser())


def _open_store(location: str | None, required: bool) -> ScanStore | None:
    """The scan store, or None when it does not exist and nothing needs it.

    A store is never created by reporting: a missing default store only means that
    there is no history to compare with.
    """
    from parcelguard.scanners import store

    path = store.resolve(location)
    if not path.exists():
        if required or location:
            raise ParcelguardError(
                f"no scan store at {path}", "run `parcelguard scan` first, or give --input FILE"
            )
        return None
    return store.ScanStore(path)


def read_scan_file(path: Path) -> ScanResult:
    """A results document from a file; one-line errors for unreadable or bad documents."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ParcelguardError(f"cannot read scan results {path}: {one_line(exc)}") from exc
    try:
        return ScanResult.from_json(text)
    except SchemaError as exc:
        raise ParcelguardError(f"{path}: {one_line(exc)}") from exc


def load_scan(input_path: str | None, scan_id: str | None, store: ScanStore | None) -> ScanResult:
    if input_path:
        return read_scan_file(Path(input_path))
    assert store is not None
    with _store_errors(store):
        if scan_id:
            return store.load(scan_id)
        latest = store.latest()
    if latest is None:
        raise ParcelguardError(f"no scan in {store.path}", "run `parcelguard scan` first")
    return latest


@contextmanager
def _store_errors(store: ScanStore) -> Iterator[None]:
    """Turn a damaged store's sqlite3 errors into one-line errors."""
    try:
        yield
    except sqlite3.Error as exc:
        raise ParcelguardError(f"cannot read scan store {store.path}: {exc}") from exc


def _previous(
    args: argparse.Namespace, scan: ScanResult, store: ScanStore | None
) -> ScanResult | None:
    if args.no_compare:
        return None
    if args.compare:
        candidate = Path(args.compare).expanduser()
        if candidate.is_file():
            return read_scan_file(candidate)
        if store is None:
            raise ParcelguardError(
                f"--compare {args.compare}: no such file and no scan store to look it up in"
            )
        with _store_errors(store):
            return store.load(args.compare)
    if store is None:
        return None
    with _store_errors(store):
        return store.predecessor(scan)


def default_args() -> argparse.Namespace:
    """What ``parcelguard report --scan ID`` takes when given nothing else: drift against
    the scan's predecessor, a DEFAULT_TREND-scan trend, no attestations."""
    return argparse.Namespace(
        attestations=None, no_compare=False, compare=None, trend=DEFAULT_TREND
    )


def build(
    scan: ScanResult, args: argparse.Namespace, store: ScanStore | None, lang: str
) -> ReportModel:
    """The report model of ``scan`` with attestations, drift and trend."""
    from parcelguard.reports import attestations, history
    from parcelguard.reports.build import ReportInputs, build_report, scan_compliance
    from parcelguard.scanners.catalog import load_catalog

    attested: tuple[Attestation, ...] = ()
    if args.attestations:
        try:
            attested = attestations.load_attestations(Path(args.attestations))
        except attestations.AttestationError as exc:
            raise ParcelguardError(f"attestations: {exc}") from exc
    previous = _previous(args, scan, store)
    drift: Drift | None = history.compare(scan, previous) if previous else None
    points: tuple[TrendPoint, ...] = (
        TrendPoint(scan.scan_id, scan.started, scan_compliance(scan)),
    )
    if store is not None:
        with _store_errors(store):
            points = history.trend(store, scan, args.trend)
    inputs = ReportInputs(lang=lang, attestations=attested, drift=drift, trend=points)
    return build_report(scan, load_catalog(), inputs, datetime.now(UTC))


def render_all(model: ReportModel, formats: tuple[str, ...]) -> dict[str, bytes]:
    """Every requested format in memory, by file name; any failure writes nothing."""
    from parcelguard.reports import output, render

    stem = output.file_stem(model.scan.scan_id, model.lang)
    documents: dict[str, bytes] = {}
    for fmt in formats:
        try:
            documents[f"{stem}.{EXTENSIONS[fmt]}"] = render.render(model, fmt)
        except Exception as exc:  # one boundary: a renderer's failure becomes one line
            raise ParcelguardError(
                f"cannot render the {fmt} report: {one_line(exc)}", "nothing was written"
            ) from exc
    return documents
