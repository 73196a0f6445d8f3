"""The revocation module's sudoers editing, on text (its effect on hosts is tested in the lab)."""

from __future__ import annotations

import importlib.util
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
