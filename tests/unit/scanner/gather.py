"""Assemble recorded command output into a full gather answer, as a host would print it.

Profiles live in tests/fixtures/gather/<profile>/: ``<section>.out`` holds the recorded
stdout, optional ``<section>.rc`` and ``<section>.err`` the exit code and stderr. The
``neglected`` profile overlays ``hardened`` (a lab host before hardening).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from parcelguard.scanners.context import HostContext
from parcelguard.scanners.facts import SECTION_NAMES, HostFacts, parse_gather_output
from parcelguard.scanners.policy import DEFAULT_ZONE_POLICY, Reachability

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "gather"
MARKER = "5f1c0a9e3b7d42c8a6e1f0b9d2c4e7a1"
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
ROSTER = frozenset({"wangfang", "zhaolei"})
FLEET = {"mgmt1": ("mgmt",), "web1": ("dmz",), "app1": ("app",), "data1": ("data",)}


@dataclass(frozen=True)
class Sec:
    out: str = ""
    rc: int = 0
    err: str = ""
    cut: bool = False  # the END line never came


def load_profile(profile: str) -> dict[str, Sec]:
    sections: dict[str, Sec] = {}
    for name in ("hardened", profile) if profile != "hardened" else ("hardened",):
        directory = FIXTURES / name
        for out in sorted(directory.glob("*.out")):
            section = out.name[: -len(".out")]
            rc_file, err_file = out.with_suffix(".rc"), out.with_suffix(".err")
            sections[section] = Sec(
                out=out.read_text(encoding="utf-8"),
                rc=int(rc_file.read_text().strip()) if rc_file.exists() else 0,
                err=err_file.read_text(encoding="utf-8") if err_file.exists() else "",
            )
    return sections


def render(sections: Mapping[str, Sec], marker: str = MARKER, done: bool = True) -> str:
    """The text the gather script prints for these sections."""
    parts = []
    for name in [n for n in SECTION_NAMES if n in sections] + [
        n for n in sections if n not in SECTION_NAMES
    ]:
        s = sections[name]
        parts.append(f"{marker} BEGIN {name} {s.rc} 0\n{s.out}\n{marker} STDERR {name}\n{s.err}\n")
        if not s.cut:
            parts.append(f"{marker} END {name}\n")
    if done:
        parts.append(f"{marker} DONE\n")
    return "".join(parts)


def facts_for(
    profile: str = "hardened", overrides: Mapping[str, Sec | None] | None = None
) -> HostFacts:
    """Parsed facts of a profile, with sections replaced (Sec) or removed (None)."""
    sections = load_profile(profile)
    for name, sec in (overrides or {}).items():
        if sec is None:
            sections.pop(name, None)
        else:
            sections[name] = sec
    return parse_gather_output(render(sections), MARKER)


def measured_ok() -> dict[tuple[str, str, int], bool | None]:
    return {
        ("mgmt1", "data1", 22): True,
        ("app1", "data1", 5432): True,
        ("web1", "data1", 5432): False,
        ("web1", "data1", 22): False,
        ("app1", "data1", 22): False,
    }


def ctx_for(
    roster: frozenset[str] | None = ROSTER,
    measured: Mapping[tuple[str, str, int], bool | None] | None = None,
    reachability: bool = True,
    zones: tuple[str, ...] = ("data",),
) -> HostContext:
    reach = (
        Reachability(hosts=FLEET, measured=measured if measured is not None else measured_ok())
        if reachability
        else None
    )
    return HostContext(
        host="data1",
        address="198.18.40.11",
        now=NOW,
        zones=zones,
        groups=("data",),
        policy=DEFAULT_ZONE_POLICY,
        roster=roster,
        reachability=reach,
    )
