"""The offboarding report: every departed person x host, from trigger to verified.

One row model rendered three ways (Markdown for people, CSV for spreadsheets, JSON for
machines). CSV cells that a spreadsheet would run as formulas are neutralised.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from parcelguard.offboard.model import Job

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Row:
    job: int
    username: str
    ticket: str
    source: str
    host: str
    state: str
    triggered_at: str
    revoked_at: str
    verified_at: str
    seconds_to_verified: float | None
    login_after_leaving: bool | None
    last_login: str
    secrets_to_rotate: str


def rows(jobs: Sequence[Job]) -> list[Row]:
    out: list[Row] = []
    for job in jobs:
        if job.dry_run:
            continue
        start = datetime.fromisoformat(job.created_at)
        for h in job.hosts:
            took = (
                round((datetime.fromisoformat(h.verified_at) - start).total_seconds(), 1)
                if h.verified_at
                else None
            )
            ev = h.verification or {}
            out.append(
                Row(
                    job=job.id,
                    username=job.username,
                    ticket=job.ticket,
                    source=job.source.value,
                    host=h.host,
                    state=h.state.value,
                    triggered_at=job.created_at,
                    revoked_at=h.revoked_at or "",
                    verified_at=h.verified_at or "",
                    seconds_to_verified=took,
                    login_after_leaving=ev.get("login_after_leaving") if ev else None,
                    last_login=ev.get("last_login") or "",
                    secrets_to_rotate=", ".join(job.secrets_to_rotate),
                )
            )
    return out


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def render(jobs: Sequence[Job], fmt: str) -> str:
    data = rows(jobs)
    if fmt == "json":
        return json.dumps([asdict(r) for r in data], indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(list(Row.__dataclass_fields__))
        for r in data:
            writer.writerow([_cell(v) for v in asdict(r).values()])
        return buf.getvalue()
    lines = [
        "# Offboarding evidence (Provisions Art. 38)",
        "",
        f"{len({r.username for r in data})} departed person(s), {len(data)} person x host row(s).",
        "",
        "| person | ticket | host | state | triggered | verified | trigger to verified |"
        " login after leaving | rotate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data:
        took = "-" if r.seconds_to_verified is None else f"{r.seconds_to_verified:.0f} s"
        after = {True: "**yes**", False: "no", None: "unknown"}[r.login_after_leaving]
        cells = [
            r.username,
            r.ticket,
            r.host,
            r.state,
            r.triggered_at,
            r.verified_at or "-",
            took,
            after,
            r.secrets_to_rotate or "-",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
