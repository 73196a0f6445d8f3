"""The revocation module's sudoers editing, on text (its effect on hosts is tested in the lab)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

MODULE = (
    Path(__file__).parents[3]
    / "roles"
    / "account_revocation"
    / "library"
    / "parcelguard_revoke_account.py"
)


@pytest.fixture(scope="module")
def module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("parcelguard_revoke_account", MODULE)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class FakeModule:
    check_mode = False
    params: ClassVar[dict[str, Any]] = {"name": "lihua"}


def strip(module: ModuleType, text: str) -> tuple[str, int]:
    rev = module.Revocation(FakeModule())
    result: tuple[str, int] = rev.strip_sudoers(text)
    return result


def test_the_persons_rules_go_and_everything_else_stays(module: ModuleType) -> None:
    text = (
        "# admins\n"
        "Defaults use_pty\n"
        "lihua ALL=(ALL:ALL) NOPASSWD: ALL\n"
        "lihuang ALL=(ALL) /usr/bin/true\n"
        "wangfang ALL=(ALL) /usr/sbin/nft list *\n"
        "%netadmin ALL=(ALL) /usr/sbin/ip\n"
    )
    new, hits = strip(module, text)
    assert hits == 1
    assert "lihua ALL" not in new
    assert "lihuang ALL" in new and "wangfang ALL" in new and "%netadmin" in new


def test_alias_membership_is_removed_and_an_emptied_alias_dropped(module: ModuleType) -> None:
    new, hits = strip(
        module,
        "User_Alias OPS = wangfang, lihua, zhaolei\nUser_Alias SOLO = lihua\nOPS ALL=(ALL) ALL\n",
    )
    assert hits == 2
    assert "User_Alias OPS = wangfang, zhaolei\n" in new
    assert "SOLO" not in new and "OPS ALL=(ALL) ALL" in new


def test_nothing_of_the_person_changes_nothing(module: ModuleType) -> None:
    text = "root ALL=(ALL:ALL) ALL\n"
    assert strip(module, text) == (text, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bob, lihua ALL=(ALL) ALL\n", "bob ALL=(ALL) ALL\n"),
        ("lihua,bob ALL=(ALL) ALL\n", "bob ALL=(ALL) ALL\n"),
        ("Defaults:lihua !requiretty\nroot ALL=(ALL) ALL\n", "root ALL=(ALL) ALL\n"),
        ("Defaults:bob,lihua !lecture\n", "Defaults:bob !lecture\n"),
        (
            "lihua ALL = (ALL) \\\n    /usr/bin/true, \\\n    /usr/bin/id\nbob ALL=(ALL) ALL\n",
            "bob ALL=(ALL) ALL\n",
        ),
        (
            "#includedir /etc/sudoers.d\n@includedir /etc/sudoers.d\n",
            "#includedir /etc/sudoers.d\n@includedir /etc/sudoers.d\n",
        ),
        ("Cmnd_Alias LIHUA = /usr/bin/true\n", "Cmnd_Alias LIHUA = /usr/bin/true\n"),
    ],
)
def test_user_lists_defaults_and_continued_lines(
    module: ModuleType, text: str, expected: str
) -> None:
    assert strip(module, text)[0] == expected


class Ent:
    def __init__(self, home: Path, uid: int = 0) -> None:
        self.pw_dir = str(home)
        self.pw_uid = uid


def test_links_and_foreign_files_under_the_home_are_refused(
    module: ModuleType, tmp_path: Path
) -> None:
    home, other = tmp_path / "lihua", tmp_path / "deploy"
    (other / ".ssh").mkdir(parents=True)
    (other / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAA deploy\n")
    home.mkdir()
    unsafe = module.Revocation.unsafe_path
    assert unsafe(str(home / ".ssh" / "authorized_keys"), Ent(home)) is None  # absent
    (home / ".ssh").symlink_to(other / ".ssh")
    why = unsafe(str(home / ".ssh" / "authorized_keys"), Ent(home))
    assert why and "symbolic link" in why
    (home / ".ssh").unlink()
    (home / ".ssh").mkdir()
    (home / ".ssh" / "authorized_keys").hardlink_to(other / ".ssh" / "authorized_keys")
    why = unsafe(str(home / ".ssh" / "authorized_keys"), Ent(home))
    assert why and "hard links" in why
    if os.geteuid() == 0:
        (home / ".ssh" / "authorized_keys").unlink()
        (home / ".ssh" / "authorized_keys").write_text("x")
        os.chown(home / ".ssh" / "authorized_keys", 4242, 4242)
        why = unsafe(str(home / ".ssh" / "authorized_keys"), Ent(home))
        assert why and "UID 4242" in why


def test_only_key_lines_are_read_back(module: ModuleType, tmp_path: Path) -> None:
    keys = tmp_path / "authorized_keys"
    keys.write_text(
        "# comment\nroot:$y$j9T$secret:19000:0:99999:7:::\n"
        'from="10.0.0.1" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMMdcvD1Q7ZmQlFW7P lihua\n'
    )
    rev = module.Revocation(FakeModule())
    assert rev.read_keys(str(keys)) == [
        'from="10.0.0.1" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMMdcvD1Q7ZmQlFW7P lihua'
    ]
