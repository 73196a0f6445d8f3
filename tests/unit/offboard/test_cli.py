"""`parcelguard offboard` and `serve` on the command line: shorthands, clear errors, the
store's views. (Revocations themselves run against the lab: tests/integration.)"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from parcelguard.cli import main
from parcelguard.offboard.cli import rewrite_argv
from parcelguard.offboard.model import HostState, JobState, LeaverEvent, Source
from parcelguard.offboard.store import OffboardStore


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["offboard", "lihua", "--ticket", "T"], ["offboard", "revoke", "lihua", "--ticket", "T"]),
        (["offboard", "--roster", "s.csv"], ["offboard", "reconcile", "--roster", "s.csv"]),
        (["offboard", "--roster=s.csv"], ["offboard", "reconcile", "--roster=s.csv"]),
        (["offboard", "status"], ["offboard", "status"]),
        (
            ["offboard", "revoke", "status", "--ticket", "T"],
            ["offboard", "revoke", "status", "--ticket", "T"],
        ),
        (["offboard", "--help"], ["offboard", "--help"]),
        (["scan", "lihua"], ["scan", "lihua"]),
    ],
)
def test_shorthands(argv: list[str], expected: list[str]) -> None:
    assert rewrite_argv(argv) == expected


def test_every_offboard_action_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for action in ("revoke", "reconcile", "status", "report", "resume", "verify-trail", "token"):
        with pytest.raises(SystemExit) as exit_info:
            main(["offboard", action, "--help"])
        assert exit_info.value.code == 0
    assert "--ticket" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["offboard", "Li Hua", "--ticket", "T", "-i", "x"], "invalid account name"),
        (["offboard", "root", "--ticket", "T", "-i", "x"], "protected account"),
        (["offboard", "lihua", "--ticket", "T"], "needs an inventory"),
        (["offboard", "lihua", "--ticket", "T", "-i", "/nonexistent.yml"], "does not exist"),
        (["offboard", "lihua", "--ticket", "T\nX", "-i", "x"], "one printable line"),
        (["offboard", "token", "add"], "needs a token NAME"),
        (["serve"], "needs --config"),
    ],
)
def test_bad_input_is_one_clear_error(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--db", str(tmp_path / "o.db")] if argv[0] == "offboard" else []
    assert main([*argv, *db]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not OffboardStore(tmp_path / "o.db").jobs() if db else True


def test_a_missing_ticket_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["offboard", "lihua", "-i", "x"])
    assert exit_info.value.code == 2 and "--ticket" in capsys.readouterr().err


def populated(tmp_path: Path) -> Path:
    path = tmp_path / "o.db"
    store = OffboardStore(path)
    event = LeaverEvent("lihua", Source.WEBHOOK, "hr", '=HYPERLINK("x")', "k1", datetime.now(UTC))
    job_id = store.enqueue(event, inventory="inv.yml", hosts=["web1", "db1"]).job_id
    store.update_host(
        job_id,
        "web1",
        HostState.VERIFIED,
        verification={"login_after_leaving": True},
        trail_kind="host_verified",
        trail_data={},
    )
    store.release(job_id, JobState.PENDING, 0)
    return path


def test_status_lists_jobs_and_details_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(populated(tmp_path))
    assert main(["offboard", "status", "--db", db]) == 0
    assert "lihua" in capsys.readouterr().out
    assert main(["offboard", "status", "1", "--json", "--db", db]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["state"] == "pending" and [e["kind"] for e in doc["trail"]][:2] == [
        "event_received",
        "job_created",
    ]
    assert main(["offboard", "status", "9", "--db", db]) == 2


def test_report_rows_and_csv_cells_are_safe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(populated(tmp_path))
    assert main(["offboard", "report", "--format", "csv", "--db", db]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["host"], r["state"]) for r in rows] == [("db1", "pending"), ("web1", "verified")]
    assert rows[1]["login_after_leaving"] == "True"
    assert all(r["ticket"].startswith("'=") for r in rows)  # no formula runs in a spreadsheet
    assert main(["offboard", "report", "--db", db]) == 0
    assert "**yes**" in capsys.readouterr().out


def test_verify_trail_passes_then_detects_tampering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    db = populated(tmp_path)
    assert main(["offboard", "verify-trail", "--db", str(db)]) == 0
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER trail_no_update")
        conn.execute("UPDATE trail SET at = '2020-01-01T00:00:00+00:00' WHERE seq = 1")
    assert main(["offboard", "verify-trail", "--db", str(db)]) == 1
    assert "TAMPERED: entry 1" in capsys.readouterr().out


def test_tokens_are_shown_once_and_stored_hashed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "o.db")
    assert main(["offboard", "token", "add", "okta", "--db", db]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("pgt_") and len(token) > 40
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("o.db*"))  # the WAL too
    assert b"okta" in stored and token.encode() not in stored
    assert main(["offboard", "token", "list", "--db", db]) == 0
    assert "okta" in capsys.readouterr().out
    assert main(["offboard", "token", "remove", "okta", "--db", db]) == 0
    assert main(["offboard", "token", "remove", "okta", "--db", db]) == 2
