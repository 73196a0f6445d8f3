"""Waivers: a documented, time-limited acceptance of a FAIL.

A waiver file is YAML: a list (or ``waivers:`` mapping to a list) of entries with
``control``, ``hosts`` (a list of host names or ``"*"``), ``justification``,
``expires`` (YYYY-MM-DD) and ``ticket``. A waiver turns a matching FAIL into WAIVED
through its expiry day; afterwards the FAIL stands again and the report says so. A
waiver for an unknown control or an expired one is reported, never silently applied.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path

import yaml

from parcelguard.errors import one_line
from parcelguard.scanners.model import ControlResult, Status

_KEYS = {"control", "hosts", "justification", "expires", "ticket"}
_CONTROL_ID = re.compile(r"^PG-[A-Z]{2,5}-\d{3}$")


class WaiverError(ValueError):
    """The waiver file is malformed; the message names the file and entry index."""


@dataclass(frozen=True)
class Waiver:
    control: str
    hosts: tuple[str, ...] | None  # None: every host ("*")
    justification: str
    expires: date
    ticket: str

    def covers(self, host: str) -> bool:
        return self.hosts is None or host in self.hosts

    def expired(self, today: date) -> bool:
        return today > self.expires


@dataclass(frozen=True)
class WaiverOutcome:
    results: tuple[ControlResult, ...]
    problems: tuple[str, ...]


def _text(entry: dict[str, object], key: str, where: str) -> str:
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise WaiverError(f"{where}: {key} must be a non-empty string")
    return value.strip()


def parse_waivers(text: str, source: str = "waivers") -> tuple[Waiver, ...]:
    """Parse and validate waiver YAML; raises :class:`WaiverError`."""
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:  # PyYAML raises ValueError for 2027-02-30
        raise WaiverError(f"{source}: not valid YAML: {one_line(exc)}") from exc
    if data is None:
        return ()
    if isinstance(data, dict) and set(data) == {"waivers"}:
        data = data["waivers"] or []
    if not isinstance(data, list):
        raise WaiverError(f"{source}: expected a list of waivers")
    waivers: list[Waiver] = []
    for i, entry in enumerate(data):
        where = f"{source}: waiver #{i}"
        if not isinstance(entry, dict):
            raise WaiverError(f"{where}: must be a mapping")
        keys = {str(k) for k in entry}
        if keys - _KEYS:
            raise WaiverError(f"{where}: unknown key(s) {', '.join(sorted(keys - _KEYS))}")
        if _KEYS - keys:
            raise WaiverError(f"{where}: missing key(s) {', '.join(sorted(_KEYS - keys))}")
        control = _text(entry, "control", where)
        if not _CONTROL_ID.match(control):
            raise WaiverError(f"{where}: control {control!r} is not a control id")
        hosts_raw = entry["hosts"]
        hosts: tuple[str, ...] | None
        if hosts_raw == "*":
            hosts = None
        elif (
            isinstance(hosts_raw, list)
            and hosts_raw
            and all(isinstance(h, str) and h.strip() and h != "*" for h in hosts_raw)
        ):
            hosts = tuple(h.strip() for h in hosts_raw)
        else:
            raise WaiverError(f'{where}: hosts must be "*" or a non-empty list of host names')
        expires_raw = entry["expires"]
        if isinstance(expires_raw, date) and not isinstance(expires_raw, datetime):
            # PyYAML reads an unquoted YYYY-MM-DD as a date already.
            expires = expires_raw
        elif isinstance(expires_raw, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", expires_raw):
            try:
                expires = date.fromisoformat(expires_raw)
            except ValueError as exc:
                raise WaiverError(f"{where}: expires: {exc}") from exc
        else:
            raise WaiverError(f"{where}: expires must be a date YYYY-MM-DD")
        waivers.append(
            Waiver(
                control=control,
                hosts=hosts,
                justification=_text(entry, "justification", where),
                expires=expires,
                ticket=_text(entry, "ticket", where),
            )
        )
    return tuple(waivers)


def load_waivers(path: Path) -> tuple[Waiver, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WaiverError(f"{path}: cannot read: {exc}") from exc
    return parse_waivers(text, str(path))


def apply_waivers(
    results: Sequence[ControlResult],
    waivers: Sequence[Waiver],
    today: date,
    known_control_ids: Collection[str],
) -> WaiverOutcome:
    """Turn FAILs covered by a valid waiver into WAIVED; report what could not apply.

    Only FAIL is ever waived: an ERROR means nobody knows the state, and a waiver must
    not hide that. A FAIL covered only by an expired waiver stays FAIL with a note.
    """
    problems: list[str] = []
    usable: list[Waiver] = []
    for w in waivers:
        if w.control not in known_control_ids:
            problems.append(f"waiver {w.ticket} names unknown control {w.control}: not applied")
        elif w.expired(today):
            problems.append(f"waiver {w.ticket} for {w.control} expired on {w.expires}")
            usable.append(w)
        else:
            usable.append(w)
    out: list[ControlResult] = []
    for r in results:
        matching = [w for w in usable if w.control == r.control_id and w.covers(r.host)]
        if r.status != Status.FAIL or not matching:
            out.append(r)
            continue
        valid = [w for w in matching if not w.expired(today)]
        if valid:
            w = max(valid, key=lambda x: x.expires)
            out.append(
                replace(
                    r,
                    status=Status.WAIVED,
                    waiver=w.ticket,
                    summary=f"{r.summary} (waived by {w.ticket} until {w.expires})",
                )
            )
        else:
            w = max(matching, key=lambda x: x.expires)
            out.append(replace(r, summary=f"{r.summary} (waiver {w.ticket} expired {w.expires})"))
    return WaiverOutcome(tuple(out), tuple(problems))
