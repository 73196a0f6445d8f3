"""Roster reconciliation: every human account on the fleet that is not on the roster.

"Human" means what the PG-STAFF controls mean (scanners.hostdata.human_accounts): a UID
in the human range, or a login shell with a password or keys. System accounts, the
accounts parcelguard connects as and the configured protected accounts are never
candidates. A roster that is empty, cut off or malformed aborts before anything is read
from a host, and a revocation larger than the configured limits needs confirmation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from parcelguard.offboard.model import ALWAYS_PROTECTED, OffboardError
from parcelguard.scanners import facts as facts_mod
from parcelguard.scanners import hostdata
from parcelguard.scanners.connection import ConnectionFailed, open_session
from parcelguard.scanners.context import ScanSettings
from parcelguard.scanners.facts import FactUnavailable
from parcelguard.scanners.roster import Roster, RosterError, parse_roster
from parcelguard.scanners.targets import Fleet, Target

SECTIONS = ("passwd", "shadow", "ssh-keys")


@dataclass(frozen=True)
class RosterFile:
    roster: Roster
    digest: str  # SHA-256 of the file, part of every event's idempotency key
    path: str


@dataclass(frozen=True)
class Reconciliation:
    departed: dict[str, tuple[str, ...]]  # login -> hosts where it has a human account
    humans: int  # distinct human accounts seen on the fleet
    unreadable: dict[str, str]  # host -> why its accounts could not be read


def load_roster_file(path: Path) -> RosterFile:
    """Read a roster; refuse one that looks cut off, not only one that is malformed."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OffboardError(f"{path}: cannot read roster: {exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OffboardError(f"{path}: roster is not UTF-8 text: {exc}") from exc
    if text.strip() and not text.endswith("\n"):
        # An export cut off mid-file ends without its newline: every name after the cut
        # would be revoked. A complete CSV file ends with one.
        raise OffboardError(
            f"{path}: the roster does not end with a newline: it may be truncated",
            "re-export the complete roster",
        )
    try:
        roster = parse_roster(text, str(path))
    except RosterError as exc:
        raise OffboardError(str(exc)) from exc
    return RosterFile(roster, hashlib.sha256(data).hexdigest(), str(path))


def find_departed(
    fleet: Fleet,
    roster: Roster,
    *,
    protected: Iterable[str] = (),
    settings: ScanSettings | None = None,
    known_hosts: Path | None = None,
    verify_host_keys: bool = True,
    connect_timeout: float = 10,
) -> Reconciliation:
    settings = settings or ScanSettings()
    staff = roster.usernames
    never = set(protected) | set(ALWAYS_PROTECTED) | set(settings.system_accounts)

    def one(t: Target) -> tuple[Target, set[str] | None, set[str], str]:
        session = open_session(
            t,
            known_hosts=known_hosts,
            verify_host_keys=verify_host_keys,
            connect_timeout=connect_timeout,
        )
        try:
            params = facts_mod.GatherParams(marker=facts_mod.new_marker())
            result = session.run("bash -c %s", facts_mod.gather_script(params, SECTIONS))
            host_facts = facts_mod.parse_gather_output(result.stdout, params.marker)
            humans = hostdata.human_accounts(
                hostdata.accounts(host_facts),
                hostdata.shadow(host_facts),
                hostdata.authorized_keys(host_facts),
                settings,
            )
        except (ConnectionFailed, FactUnavailable) as exc:
            return t, None, set(), str(exc)
        finally:
            session.close()
        names = {a.name for a in humans} - never - {t.user}
        return t, names - staff, names, ""

    departed: dict[str, list[str]] = {}
    humans: set[str] = set()
    unreadable: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(fleet.targets)))) as pool:
        for t, gone, seen, error in pool.map(one, fleet.targets):
            if gone is None:
                unreadable[t.name] = error
                continue
            humans |= seen
            for name in gone:
                departed.setdefault(name, []).append(t.name)
    return Reconciliation(
        {k: tuple(sorted(v)) for k, v in sorted(departed.items())}, len(humans), unreadable
    )


def check_limits(
    found: Reconciliation, *, max_count: int, max_share: float, confirmed: bool
) -> None:
    """Refuse a mass revocation without explicit confirmation (a wrong roster is likelier
    than a third of the company leaving on one day)."""
    count = len(found.departed)
    share = count / found.humans if found.humans else 0.0
    if confirmed or (count <= max_count and share <= max_share):
        return
    raise OffboardError(
        f"the roster would revoke {count} of {found.humans} human account(s) ({share:.0%}), "
        f"more than the limit of {max_count} or {max_share:.0%}: "
        f"{', '.join(list(found.departed)[:20])}",
        "check the roster; if it is right, run again with --yes",
    )
