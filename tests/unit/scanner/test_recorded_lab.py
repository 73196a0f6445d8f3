"""Controls judged on gather output recorded from real lab hosts in their neglected state.

The fixtures in tests/fixtures/recorded/ are what `facts.gather_script` printed on the
demo fleet (re-record with tests/fixtures/record_gather.py). They prove the parsers read
real Debian 12 output, and that each seeded weakness is judged by the right control.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from parcelguard.scanners.catalog import load_catalog
from parcelguard.scanners.context import HostContext
from parcelguard.scanners.engine import evaluate_host
from parcelguard.scanners.facts import parse_gather_output
from parcelguard.scanners.model import ControlResult, Status

RECORDED = Path(__file__).parents[2] / "fixtures" / "recorded"
CATALOG = load_catalog()
ROSTER = frozenset({"wangfang", "zhaolei"})
# Recorded on 2026-11-28; judging "now" at that date keeps age-based controls stable.
RECORDED_AT = datetime(2026, 11, 28, 21, 16, tzinfo=UTC)


def judge(host: str, zones: tuple[str, ...]) -> dict[str, ControlResult]:
    text = (RECORDED / f"neglected-{host}.gather").read_text(encoding="utf-8")
    marker = (RECORDED / f"neglected-{host}.marker").read_text(encoding="utf-8").strip()
    facts = parse_gather_output(text, marker)
    assert not facts.problems, facts.problems
    ctx = HostContext(host=host, address="198.18.0.10", now=RECORDED_AT, zones=zones, roster=ROSTER)
    return {r.control_id: r for r in evaluate_host(CATALOG, facts, ctx)}


HOSTS = {"db1": ("data",), "app1": ("app",), "web1": ("dmz",), "bastion1": ("mgmt",)}
# Seeded on every host (docs/lab.md) -> the control that must FAIL, and what its
# evidence or summary must name.
EVERYWHERE = {
    "PG-SSH-001": "password",
    "PG-SSH-002": "permitrootlogin yes",
    "PG-SSH-003": "hmac-sha1",
    "PG-CRED-002": "support",
    "PG-CRED-003": "support",
    "PG-ZONE-001": "nftables",
    "PG-ZONE-004": "SSH",
    "PG-AV-001": "clamav",
    "PG-PWD-001": "pwquality",
    "PG-PWD-002": "99999",
    "PG-PWD-003": "faillock",
    "PG-PWD-004": "history",
    "PG-PRIV-002": "lihua",
    "PG-PRIV-003": "netadmin",
    "PG-PRIV-005": "logging",
    "PG-STOR-003": "usb-storage",
    "PG-STAFF-001": "lihua",
    "PG-STAFF-002": "lihua",
    "PG-STAFF-003": "lihua",
    "PG-STAFF-004": "lihua",
    "PG-AUD-004": "forward",
}


def _text(r: ControlResult) -> str:
    return " ".join([r.summary, *(f"{e.label} {e.value}" for e in r.evidence)])


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_every_host_wide_weakness_fails_with_evidence(host: str) -> None:
    results = judge(host, HOSTS[host])
    for control_id, named in EVERYWHERE.items():
        r = results[control_id]
        assert r.status is Status.FAIL, f"{host} {control_id}: {r.status} {r.summary}"
        assert named.lower() in _text(r).lower(), f"{host} {control_id}: {_text(r)}"


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_what_is_sound_on_the_lab_passes(host: str) -> None:
    results = judge(host, HOSTS[host])
    for control_id in ("PG-CRED-001", "PG-PRIV-004", "PG-PWD-005"):
        assert results[control_id].status is Status.PASS, (control_id, results[control_id])


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_unknowable_live_state_is_error_never_pass(host: str) -> None:
    results = judge(host, HOSTS[host])
    # The lab has no kernel audit and no block devices to inspect.
    assert results["PG-STOR-002"].status is Status.ERROR
    assert results["PG-STOR-002"].reason
    # Without measured reachability, zone conformance cannot be judged.
    assert results["PG-ZONE-002"].status is Status.ERROR
    assert "not measured" in results["PG-ZONE-002"].reason


def test_database_host_weaknesses() -> None:
    results = judge("db1", HOSTS["db1"])
    assert results["PG-CRED-004"].status is Status.FAIL  # postgres/postgres
    assert results["PG-TLS-003"].status is Status.FAIL  # host all all 0.0.0.0/0 without ssl
    assert "0.0.0.0/0" in _text(results["PG-TLS-003"])
    assert results["PG-AUD-002"].status is Status.FAIL  # no pgaudit
    assert results["PG-STOR-001"].status is Status.FAIL


def test_app_host_plaintext_export_is_named() -> None:
    r = judge("app1", HOSTS["app1"])["PG-STOR-001"]
    assert r.status is Status.FAIL
    assert "/srv/waybill/exports/waybills-2026-10.csv" in _text(r)


def test_web_host_serves_without_tls() -> None:
    r = judge("web1", HOSTS["web1"])["PG-TLS-001"]
    assert r.status is Status.FAIL


def test_non_database_hosts_have_no_database_findings() -> None:
    for host in ("app1", "web1", "bastion1"):
        results = judge(host, HOSTS[host])
        assert results["PG-CRED-004"].status is Status.NOT_APPLICABLE
        assert results["PG-AUD-002"].status is Status.NOT_APPLICABLE


def test_evidence_shows_no_phone_or_id_number() -> None:
    pii = re.compile(r"(?<!\d)(1[3-9]\d{9}|\d{17}[\dXx])(?!\d)")
    for host in HOSTS:
        for r in judge(host, HOSTS[host]).values():
            assert not pii.search(_text(r)), (host, r.control_id)
