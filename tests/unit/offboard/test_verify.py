"""Verification judged on gather output recorded from lab hosts before and after revocation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from parcelguard.offboard import verify
from parcelguard.scanners.facts import HostFacts, parse_gather_output
from parcelguard.scanners.targets import Target

RECORDED = Path(__file__).parents[2] / "fixtures" / "recorded"
NOW = datetime(2026, 11, 29, tzinfo=UTC)


def recorded(label: str, host: str) -> HostFacts:
    text = (RECORDED / f"{label}-{host}.gather").read_text(encoding="utf-8")
    marker = (RECORDED / f"{label}-{host}.marker").read_text(encoding="utf-8").strip()
    return parse_gather_output(text, marker)


def by_name(checks: list[verify.Check]) -> dict[str, verify.Check]:
    return {c.name: c for c in checks}


@pytest.mark.parametrize("host", ["web1", "db1"])
def test_a_neglected_host_fails_every_check_the_seeded_access_touches(host: str) -> None:
    checks, account = verify.judge(recorded("neglected", host), "lihua", NOW, "parcelguard-revoked")
    got = by_name(checks)
    assert account
    # (No process of hers ran when these were recorded; the lab tests cover processes.)
    for name in (
        "expired",
        "password_locked",
        "no_login_shell",
        "in_deny_group",
        "no_ssh_keys",
        "no_scheduled_jobs",
        "no_sudo",
    ):
        assert got[name].ok is False, (name, got[name])
    assert verify.verdict(checks) == "failed"
    assert "crontab lines 1" in got["no_scheduled_jobs"].detail
    assert "90-lihua" in got["no_sudo"].detail


@pytest.mark.parametrize("host", ["web1", "db1"])
def test_a_revoked_host_passes_every_check(host: str) -> None:
    checks, account = verify.judge(
        recorded("offboarded", host), "lihua", NOW, "parcelguard-revoked"
    )
    assert account
    assert [c for c in checks if c.ok is not True] == []
    assert verify.verdict(checks) == "passed"


def test_someone_else_stays_untouched_and_is_judged_on_their_own() -> None:
    checks, _ = verify.judge(recorded("offboarded", "web1"), "wangfang", NOW, "parcelguard-revoked")
    got = by_name(checks)
    assert got["expired"].ok is False and got["no_login_shell"].ok is False


def test_an_unknown_person_has_nothing_to_verify() -> None:
    checks, account = verify.judge(recorded("offboarded", "web1"), "nobody1", NOW, "g")
    assert not account and verify.verdict(checks) == "passed"
    assert by_name(checks)["account"].detail == "no account of that name"


def test_missing_facts_are_an_error_never_a_pass() -> None:
    empty = parse_gather_output("", "m" * 16)
    checks, _ = verify.judge(empty, "lihua", NOW, "g")
    assert verify.verdict(checks) == "error"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("pg none\n", None),
        ("pg norole\n", True),
        ("pg login=f\n", True),
        ("pg login=t\n", False),
        ("pg error psql: FATAL: the database system is starting up\n", None),
        ("", None),
    ],
)
def test_database_role_check(extra: str, expected: bool | None) -> None:
    checks = verify.database_check(extra)
    if extra == "pg none\n":
        assert checks == []
        return
    assert checks[0].ok is expected


def test_last_login_is_read_from_lastlog() -> None:
    extra = (
        "pg none\n"
        "lastlog lihua            pts/0    198.18.0.1       Sat Nov 28 23:53:30 +0000 2026\n"
    )
    assert verify.last_login_of(extra) == datetime(2026, 11, 28, 23, 53, 30, tzinfo=UTC)
    assert verify.last_login_of("lastlog lihua **Never logged in**") is None


def test_a_local_target_needs_no_login_attempt_and_no_key_means_nothing_to_offer() -> None:
    local = Target("here", "127.0.0.1", connection="local")
    assert verify.login_attempts(local, "lihua", ["ssh-ed25519 AAAA"], None, True).ok is True
    remote = Target("web1", "198.18.0.10", known_hosts="/nonexistent")
    check = verify.login_attempts(remote, "lihua", ["not a key"], None, True)
    assert check.ok is True and "no public key" in check.detail


def test_the_sshd_deny_rule_must_be_in_force() -> None:
    assert verify.deny_rule_check("deny parcelguard-revoked\n", "parcelguard-revoked").ok is True
    assert verify.deny_rule_check("deny \n", "parcelguard-revoked").ok is False
    assert verify.deny_rule_check("pg none\n", "parcelguard-revoked").ok is None
