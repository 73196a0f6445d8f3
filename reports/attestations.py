"""Attestations: a person's signed statement that a manual article is met.

An attestation file is YAML: a list (or ``attestations:`` mapping to a list) of entries
with ``article`` (a manual article, see ``catalog.MANUAL_ARTICLES``), ``attested_by``,
``date`` and ``expires`` (YYYY-MM-DD), ``evidence_ref`` (where the evidence is filed) and
an optional ``note``. On the report date an article is ATTESTED by its newest unexpired
attestation, EXPIRED when all of its attestations have expired, MISSING without any.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import yaml

from parcelguard.errors import one_line
from parcelguard.reports.model import Attestation, AttestationState
from parcelguard.scanners.catalog import MANUAL_ARTICLES

_REQUIRED = {"article", "attested_by", "date", "evidence_ref", "expires"}
_KEYS = _REQUIRED | {"note"}


class AttestationError(ValueError):
    """The attestation file is malformed; the message names the file and entry."""


def _date(entry: dict[str, object], key: str, where: str) -> date:
    raw = entry[key]
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return raw  # PyYAML reads an unquoted YYYY-MM-DD as a date already
    if isinstance(raw, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        try:
            return date.fromisoformat(raw)
        except ValueError as exc:
            raise AttestationError(f"{where}: {key}: {exc}") from exc
    raise AttestationError(f"{where}: {key} must be a date YYYY-MM-DD")


def _text(entry: dict[str, object], key: str, where: str, required: bool = True) -> str:
    value = entry.get(key, "")
    if value is None or (not required and value == ""):
        return ""
    if not isinstance(value, str) or not value.strip():
        raise AttestationError(f"{where}: {key} must be a non-empty string")
    return " ".join(value.split())


def _entry(entry: object, where: str) -> Attestation:
    if not isinstance(entry, dict):
        raise AttestationError(f"{where}: must be a mapping")
    keys = {str(k) for k in entry}
    if keys - _KEYS:
        raise AttestationError(f"{where}: unknown key(s) {', '.join(sorted(keys - _KEYS))}")
    if _REQUIRED - keys:
        raise AttestationError(f"{where}: missing key(s) {', '.join(sorted(_REQUIRED - keys))}")
    article = entry["article"]
    if isinstance(article, bool) or not isinstance(article, int):
        raise AttestationError(f"{where}: article must be an article number")
    if article not in MANUAL_ARTICLES:
        manual = ", ".join(str(a) for a in sorted(MANUAL_ARTICLES))
        raise AttestationError(
            f"{where}: article {article} is not checked by attestation (manual articles: {manual})"
        )
    signed, expires = _date(entry, "date", where), _date(entry, "expires", where)
    if expires < signed:
        raise AttestationError(f"{where}: expires {expires} is before date {signed}")
    return Attestation(
        article=article,
        attested_by=_text(entry, "attested_by", where),
        date=signed,
        evidence_ref=_text(entry, "evidence_ref", where),
        expires=expires,
        note=_text(entry, "note", where, required=False),
    )


def parse_attestations(text: str, source: str = "attestations") -> tuple[Attestation, ...]:
    """Parse and validate attestation YAML; raises :class:`AttestationError`."""
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:  # PyYAML raises ValueError for 2027-02-30
        raise AttestationError(f"{source}: not valid YAML: {one_line(exc)}") from exc
    if data is None:
        return ()
    if isinstance(data, dict) and set(data) == {"attestations"}:
        data = data["attestations"] or []
    if not isinstance(data, list):
        raise AttestationError(f"{source}: expected a list of attestations")
    return tuple(_entry(e, f"{source}: attestation #{i}") for i, e in enumerate(data))


def load_attestations(path: Path) -> tuple[Attestation, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AttestationError(f"{path}: cannot read: {one_line(exc)}") from exc
    return parse_attestations(text, str(path))


def judge(
    article: int, attestations: Sequence[Attestation], today: date
) -> tuple[AttestationState, Attestation | None]:
    """The article's state on ``today`` and the attestation that decides it.

    The newest attestation in force (signed on or before ``today``, not expired) wins;
    failing that, the most recently expired one is shown as EXPIRED.
    """
    mine = [a for a in attestations if a.article == article and a.date <= today]
    valid = [a for a in mine if today <= a.expires]
    if valid:
        return AttestationState.ATTESTED, max(valid, key=lambda a: (a.date, a.expires))
    if mine:
        return AttestationState.EXPIRED, max(mine, key=lambda a: a.expires)
    return AttestationState.MISSING, None
