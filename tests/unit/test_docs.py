"""The docs name what the code does: every control, every command."""

from __future__ import annotations

from pathlib import Path

from parcelguard.scanners.catalog import load_catalog

ROOT = Path(__file__).parents[2]


def test_scanner_doc_lists_every_control_with_its_title_and_articles() -> None:
    doc = (ROOT / "docs" / "scanner.md").read_text(encoding="utf-8")
    for c in load_catalog().controls:
        arts = ", ".join(str(a) for a in c.meta.articles)
        row = f"| {c.meta.id} | {arts} | {c.meta.severity.value} | {c.meta.title} |"
        assert row in doc, f"docs/scanner.md is out of date for {c.meta.id}"


def test_readme_commands_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "bash scripts/setup && .venv/bin/parcelguard scan" in readme
    assert "bash scripts/setup --dev && .venv/bin/pytest" in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash scripts/setup --dev" in ci and ".venv/bin/pytest" in ci


def test_the_example_inventory_is_what_the_scanner_and_roles_read() -> None:
    from parcelguard.scanners.targets import load_inventory

    fleet = load_inventory(ROOT / "inventory" / "example" / "hosts.yml")
    assert {t.name for t in fleet.targets} == {"web1", "waybill1", "waybill2", "pg1", "bastion1"}
    assert fleet.policy_declared
    assert {t.name: t.zones for t in fleet.targets}["pg1"] == ("data",)
    assert fleet.policy.partner_networks("shop-platform")
    assert all(t.user == "opsadmin" and t.known_hosts for t in fleet.targets)


def test_readme_names_every_command_and_offboarding_action() -> None:
    import argparse

    from parcelguard.cli import build_parser
    from parcelguard.offboard.cli import ACTIONS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command in sub.choices:
        assert f"`parcelguard {command}" in readme, f"README lacks `parcelguard {command}`"
    for action in ACTIONS:
        assert action in readme or action in ("revoke", "reconcile"), action


def test_the_offboarding_doc_shows_every_service_setting() -> None:
    import re

    from parcelguard.server.config import OFFBOARDING, TOP

    doc = (ROOT / "docs" / "offboarding.md").read_text(encoding="utf-8")
    example = doc.split("# serve.yml", 1)[1].split("```", 1)[0]
    assert set(re.findall(r"^(\w+):", example, re.MULTILINE)) == set(TOP)
    for key in OFFBOARDING:
        assert key in example, key
