"""Attestation files: validated strictly; judged on the report date."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from parcelguard.reports.attestations import (
    AttestationError,
    judge,
    load_attestations,
    parse_attestations,
)
from parcelguard.reports.model import Attestation, AttestationState

EXAMPLE = Path(__file__).parents[3] / "docs" / "examples" / "attestations.yml"


def test_the_documented_example_parses() -> None:
    found = load_attestations(EXAMPLE)
    assert found
    assert all(a.attested_by and a.evidence_ref for a in found)


def test_entries_are_read_with_dates() -> None:
    text = """
attestations:
  - article: 17
    attested_by: Li Ming (security officer)
    date: 2026-06-01
    evidence_ref: DOC-2026-017
    expires: 2027-05-31
    note: tabletop exercise
"""
    (a,) = parse_attestations(text)
    assert a == Attestation(
        17,
        "Li Ming (security officer)",
        date(2026, 6, 1),
        "DOC-2026-017",
        date(2027, 5, 31),
        "tabletop exercise",
    )


def _entry(**changes: str) -> str:
    fields = {
        "article": "17",
        "attested_by": "a",
        "date": "2026-01-01",
        "evidence_ref": "r",
        "expires": "2027-01-01",
    } | changes
    return "- {" + ", ".join(f"{k}: {v}" for k, v in fields.items() if v != "-") + "}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_entry(article="29"), "not checked by attestation"),
        (_entry(expires="-"), "missing key"),
        (_entry(signed="yes"), "unknown key"),
        (_entry(date="2026-13-01"), "month must be in 1..12"),
        (_entry(date="2026-02-01", expires="2026-01-01"), "before date"),
        (_entry(attested_by="''"), "attested_by"),
        (_entry(article="'17'"), "article number"),
        ("article: 17", "expected a list"),
        ("- [unclosed", "not valid YAML"),
    ],
)
def test_malformed_files_are_refused_with_the_entry_named(text: str, message: str) -> None:
    with pytest.raises(AttestationError, match=message):
        parse_attestations(text, "att.yml")


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AttestationError, match="cannot read"):
        load_attestations(tmp_path / "missing.yml")


def _a(signed: date, expires: date, ref: str = "r") -> Attestation:
    return Attestation(17, "a", signed, ref, expires)


def test_newest_valid_attestation_wins() -> None:
    old, new = _a(date(2026, 1, 1), date(2027, 1, 1), "old"), _a(date(2026, 6, 1), date(2027, 1, 1))
    assert judge(17, [old, new], date(2026, 7, 1)) == (AttestationState.ATTESTED, new)


def test_expired_and_missing() -> None:
    gone = _a(date(2025, 1, 1), date(2025, 12, 31))
    assert judge(17, [gone], date(2026, 1, 1)) == (AttestationState.EXPIRED, gone)
    assert judge(17, [gone], date(2025, 12, 31))[0] is AttestationState.ATTESTED
    assert judge(18, [gone], date(2026, 1, 1)) == (AttestationState.MISSING, None)


def test_an_attestation_dated_after_the_report_does_not_count() -> None:
    future = _a(date(2027, 1, 1), date(2028, 1, 1))
    assert judge(17, [future], date(2026, 1, 1)) == (AttestationState.MISSING, None)
