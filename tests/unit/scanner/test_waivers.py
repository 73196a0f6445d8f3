"""Waiver validation and application."""

from __future__ import annotations

from datetime import date

import pytest

from parcelguard.scanners.model import ControlResult, Severity, Status
from parcelguard.scanners.waivers import WaiverError, apply_waivers, parse_waivers

GOOD = """
- control: PG-STOR-002
  hosts: [data1]
  justification: Disk encryption arrives with the storage migration in Q1.
  expires: 2026-12-31
  ticket: SEC-1042
- control: PG-ZONE-004
  hosts: "*"
  justification: fail2ban replaced by the upstream firewall's rate limit.
  expires: 2026-11-01
  ticket: SEC-977
- control: PG-XXX-001
  hosts: "*"
  justification: typo in the control id
  expires: 2027-01-01
  ticket: SEC-1
"""


def _entry(**fields: str) -> str:
    values = {
        "control": "PG-SSH-001",
        "hosts": "'*'",
        "justification": "j",
        "expires": "2027-01-01",
        "ticket": "T",
    }
    values.update(fields)
    return "- {" + ", ".join(f"{k}: {v}" for k, v in values.items()) + "}"


KNOWN = {"PG-STOR-002", "PG-ZONE-004", "PG-SSH-001"}
TODAY = date(2026, 11, 28)


def _result(cid: str, host: str = "data1", status: Status = Status.FAIL) -> ControlResult:
    return ControlResult(cid, host, status, "summary", Severity.HIGH, (36,))


def test_valid_waiver_waives_matching_fail_only() -> None:
    waivers = parse_waivers(GOOD, "waivers.yml")
    results = [
        _result("PG-STOR-002"),
        _result("PG-STOR-002", host="data2"),
        _result("PG-STOR-002", status=Status.ERROR),
        _result("PG-SSH-001"),
    ]
    out = apply_waivers(results, waivers, TODAY, KNOWN)
    assert [r.status for r in out.results] == [
        Status.WAIVED,
        Status.FAIL,
        Status.ERROR,
        Status.FAIL,
    ]
    assert out.results[0].waiver == "SEC-1042"
    assert "SEC-1042" in out.results[0].summary


def test_expired_waiver_leaves_fail_with_a_note_and_a_problem() -> None:
    out = apply_waivers([_result("PG-ZONE-004")], parse_waivers(GOOD), TODAY, KNOWN)
    assert out.results[0].status == Status.FAIL
    assert "expired" in out.results[0].summary
    assert any("SEC-977" in p and "expired" in p for p in out.problems)


def test_unknown_control_is_reported_not_applied() -> None:
    out = apply_waivers([_result("PG-XXX-001")], parse_waivers(GOOD), TODAY, KNOWN)
    assert out.results[0].status == Status.FAIL
    assert any("PG-XXX-001" in p and "unknown" in p for p in out.problems)


def test_waiver_is_valid_through_its_expiry_day() -> None:
    waivers = parse_waivers(GOOD)
    assert (
        apply_waivers([_result("PG-STOR-002")], waivers, date(2026, 12, 31), KNOWN)
        .results[0]
        .status
        == Status.WAIVED
    )
    assert (
        apply_waivers([_result("PG-STOR-002")], waivers, date(2027, 1, 1), KNOWN).results[0].status
        == Status.FAIL
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- control: PG-SSH-001\n", r"waiver #0: missing key"),
        ("[1, 2]", r"waiver #0: must be a mapping"),
        ("control: x", "expected a list"),
        (
            "- {control: PG-SSH-001, hosts: [], justification: j, expires: 2027-01-01, ticket: T}",
            "hosts must be",
        ),
        (
            "- {control: PG-SSH-001, hosts: '*', justification: j, expires: 2027-02-30, ticket: T}",
            "day is out of range",
        ),
        (
            "- {control: PG-SSH-001, hosts: '*', justification: j, expires: tomorrow, ticket: T}",
            "expires must be a date",
        ),
        (
            _entry(justification="''"),
            "justification must be a non-empty",
        ),
        (
            _entry(control="ssh"),
            "not a control id",
        ),
        (
            _entry()[:-1] + ", owner: me}",
            "unknown key",
        ),
        ("- [unclosed", "not valid YAML"),
        (
            _entry(expires="2027-01-01 10:00:00"),
            "expires must be a date",
        ),
    ],
)
def test_malformed_waivers_are_refused(text: str, message: str) -> None:
    with pytest.raises(WaiverError, match=message):
        parse_waivers(text, "w.yml")


def test_second_entry_is_named_by_index() -> None:
    text = GOOD + "- {control: PG-SSH-001}\n"
    with pytest.raises(WaiverError, match=r"w.yml: waiver #3"):
        parse_waivers(text, "w.yml")
