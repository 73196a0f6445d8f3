"""Reading ansible-playbook's JSON output, recorded from a lab run with api1 paused."""

from __future__ import annotations

from pathlib import Path

import pytest

from parcelguard.offboard.model import OffboardError
from parcelguard.offboard.playbook import parse_output

RECORDED = Path(__file__).parents[2] / "fixtures" / "offboard" / "revoke-web1-db1-api1-down.json"


def test_every_host_gets_an_outcome_and_unreachable_is_never_done() -> None:
    out = parse_output(RECORDED.read_text(encoding="utf-8"), "", ["web1", "db1", "api1", "app9"])
    assert out["web1"].status == "revoked" and out["db1"].status == "revoked"
    assert out["api1"].status == "unreachable"
    assert "timed out" in out["api1"].error or "banner" in out["api1"].error
    # A host the run never mentions is not done either.
    assert out["app9"].status == "unreachable"


def test_each_step_carries_before_and_after_in_order() -> None:
    out = parse_output(RECORDED.read_text(encoding="utf-8"), "", ["web1", "db1"])
    web1 = out["web1"]
    assert web1.present and web1.changed
    assert [s["step"] for s in web1.steps] == [
        "block_logins",
        "remove_ssh_keys",
        "end_sessions",
        "remove_scheduled_jobs",
        "remove_privileges",
        "archive_home",
    ]
    block = web1.steps[0]
    assert block["before"]["expire"] == "" and block["after"]["expire"] == "1"
    assert (
        block["before"]["shell"] == "/bin/bash" and block["after"]["shell"] == "/usr/sbin/nologin"
    )
    sessions = web1.steps[2]
    assert sessions["before"]["processes"] > 0 and sessions["after"]["processes"] == 0
    assert any(k.startswith("ssh-ed25519 ") for k in web1.public_keys)
    assert web1.archive and len(web1.archive["sha256"]) == 64
    db_step = [s for s in out["db1"].steps if s["step"] == "revoke_database_role"]
    assert (
        db_step and db_step[0]["before"]["login"] is True and db_step[0]["after"]["login"] is False
    )


def test_output_that_is_not_the_json_document_is_an_error() -> None:
    with pytest.raises(OffboardError, match="before reaching any host: ERROR! the inventory"):
        parse_output("", "ERROR! the inventory is broken", ["web1"])
    with pytest.raises(OffboardError):
        parse_output("{not json", "", ["web1"])
