"""Roster reconciliation refuses a doubtful roster and a suspiciously large revocation."""

from __future__ import annotations

from pathlib import Path

import pytest

from parcelguard.offboard.model import OffboardError
from parcelguard.offboard.reconcile import Reconciliation, check_limits, load_roster_file


def roster(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "staff.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_a_good_roster_is_read_with_its_digest(tmp_path: Path) -> None:
    got = load_roster_file(
        roster(tmp_path, "username,name\nwangfang,Wang Fang\nzhaolei,Zhao Lei\n")
    )
    assert got.roster.usernames == {"wangfang", "zhaolei"} and len(got.digest) == 64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty roster"),
        ("username\n", "lists nobody"),
        ("username,name\nwangfang,Wang Fang\nzhao", "truncated"),  # cut mid-line
        ("name\nWang Fang\n", "no 'username' column"),
        ("username\nwangfang\nWang Fang\n", "invalid username"),
        ("username,name\nwangfang\n", "field"),
        (b"username\nwang\xff\n", "not UTF-8"),
    ],
)
def test_doubtful_rosters_abort(tmp_path: Path, text: str | bytes, message: str) -> None:
    with pytest.raises(OffboardError, match=message):
        load_roster_file(roster(tmp_path, text))


def test_a_missing_roster_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OffboardError, match="cannot read roster"):
        load_roster_file(tmp_path / "absent.csv")


def found(count: int, humans: int) -> Reconciliation:
    return Reconciliation({f"user{i}": ("web1",) for i in range(count)}, humans, {})


def test_small_revocations_pass_and_large_ones_need_confirmation() -> None:
    check_limits(found(2, 100), max_count=5, max_share=0.2, confirmed=False)
    with pytest.raises(OffboardError, match="6 of 100"):
        check_limits(found(6, 100), max_count=5, max_share=0.2, confirmed=False)
    with pytest.raises(OffboardError, match="--yes"):
        check_limits(found(3, 10), max_count=5, max_share=0.2, confirmed=False)
    check_limits(found(6, 100), max_count=5, max_share=0.2, confirmed=True)
