"""How long building and rendering a report takes, and how big the HTML gets.

Target (issue 4): 1,000 hosts x 60 controls render in under 5 s, HTML under 10 MB.
The fleet is the four recorded neglected lab hosts' real results repeated over 1,000
hosts (58 % FAIL: the worst case a fleet shows), plus 13 synthetic controls to reach 60.
Usage:
    .venv/bin/python -m benchmarks.report_render [--runs 3] [--hosts 1000]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from datetime import UTC, datetime

from tests.fixtures.synthetic import recorded_fleet

from benchmarks.record import median, write_section
from parcelguard.reports import render
from parcelguard.reports.build import ReportInputs, build_report
from parcelguard.reports.model import ReportModel
from parcelguard.scanners.catalog import load_catalog
from parcelguard.scanners.model import ScanResult

TEXT_FORMATS = ("json", "html", "md", "junit", "csv")


def timed_build(scan: ScanResult, lang: str) -> tuple[float, ReportModel]:
    t0 = time.perf_counter()
    model = build_report(scan, load_catalog(), ReportInputs(lang=lang), datetime.now(UTC))
    return time.perf_counter() - t0, model


def measure(scan: ScanResult, lang: str, runs: int) -> dict[str, tuple[float, int]]:
    """Median seconds and size in bytes of the build and each text format."""
    seconds: dict[str, list[float]] = {k: [] for k in ("build", *TEXT_FORMATS)}
    sizes: dict[str, int] = {}
    for _ in range(runs):
        build_s, model = timed_build(scan, lang)
        seconds["build"].append(build_s)
        for fmt in TEXT_FORMATS:
            t0 = time.perf_counter()
            sizes[fmt] = len(render.render(model, fmt))
            seconds[fmt].append(time.perf_counter() - t0)
    return {k: (median(v), sizes.get(k, 0)) for k, v in seconds.items()}


def pdf_seconds(scan: ScanResult, runs: int) -> tuple[float, int]:
    _s, model = timed_build(scan, "zh-CN")
    times, size = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        size = len(render.render(model, "pdf"))
        times.append(time.perf_counter() - t0)
    return median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=1000)
    args = parser.parse_args()
    scan = recorded_fleet(args.hosts, extra_controls=13)
    controls = len(scan.hosts[0].results)
    mix = Counter(r.status.value for h in scan.hosts for r in h.results)
    total = sum(mix.values())
    rows = []
    for lang in ("en", "zh-CN"):
        result = measure(scan, lang, args.runs)
        html_s = result["build"][0] + result["html"][0]
        all_s = sum(s for s, _b in result.values())
        print(f"{lang}: html {html_s:.2f} s, all text {all_s:.2f} s", file=sys.stderr)
        cells = " | ".join(
            f"{result[k][0]:.2f}" + (f" ({result[k][1] / 1e6:.1f} MB)" if k != "build" else "")
            for k in ("build", *TEXT_FORMATS)
        )
        rows.append(f"| {lang} | {cells} | {html_s:.2f} | {all_s:.2f} |")
    pdf_rows = []
    for hosts in (6, 20):
        seconds, size = pdf_seconds(recorded_fleet(hosts), args.runs)
        print(f"pdf {hosts} hosts: {seconds:.1f} s", file=sys.stderr)
        pdf_rows.append(f"| {hosts} | 47 | {seconds:.1f} | {size / 1e6:.1f} |")
    share = ", ".join(f"{k} {100 * v / total:.0f} %" for k, v in mix.most_common())
    body = (
        "## Report rendering (`parcelguard report`)\n\n"
        f"Target: {args.hosts:,} hosts x {controls} controls render in under 5 s and the HTML "
        "stays under 10 MB.\nThe fleet repeats the real results of the four recorded "
        "neglected lab hosts, plus 13\nsynthetic controls to reach 60 "
        f"({share}). Seconds (median of {args.runs} runs),\nin one process: "
        "`build` is the report model (masking included), then each format.\n"
        "`HTML total` = build + HTML; `all` = build + every text format.\n\n"
        "| lang | build | json | html | md | junit | csv | HTML total | all |\n"
        "|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        "PDF (WeasyPrint, zh-CN, the document for the regulator) is slower, so it is "
        "measured\non fleet sizes a regulator's copy is made for:\n\n"
        "| hosts | controls | PDF seconds | PDF MB |\n|---|---|---|---|\n" + "\n".join(pdf_rows)
    )
    write_section("report-render", body)


if __name__ == "__main__":
    main()
