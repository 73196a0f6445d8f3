"""Roster parsing refuses anything doubtful, naming the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from parcelguard.scanners.roster import RosterError, load_roster, parse_roster


def test_valid_roster(tmp_path: Path) -> None:
    path = tmp_path / "staff.csv"
    path.write_text(
        "\ufeffusername,name,employee_id,department\n"
        "wangfang,王芳,E1001,operations\n"
        "\n"
        "zhaolei,赵磊,E1002,applications\n",
        encoding="utf-8",
    )
    roster = load_roster(path)
    assert roster.usernames == frozenset({"wangfang", "zhaolei"})
    assert roster.members[0].department == "operations"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty roster"),
        ("username\n", "header only"),
        ("name,department\nwangfang,ops\n", "no 'username' column"),
        ("username,role\nwangfang,admin\n", "unknown column"),
        (
            "username\nwangfang\nzhaolei\nwangfang\n",
            "line 4: duplicate username 'wangfang' .first on line 2",
        ),
        ("username\nWangFang\n", "line 2: invalid username"),
        ("username\nroot;rm\n", "line 2: invalid username"),
        ("username,name\nwangfang\n", "line 2: 1 field"),
        ("username\n" + "a" * 33 + "\n", "invalid username"),
    ],
)
def test_bad_rosters_are_refused(text: str, message: str) -> None:
    with pytest.raises(RosterError, match=message):
        parse_roster(text, "staff.csv")
