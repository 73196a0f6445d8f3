"""The active-staff roster (Art. 38): who may hold an account on the fleet.

A CSV file with a header; ``username`` is required, ``name``, ``employee_id`` and
``department`` are optional. Anything doubtful is refused with the line number, because
a wrong roster either hides a departed employee or locks out a present one.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
COLUMNS = ("username", "name", "employee_id", "department")


class RosterError(ValueError):
    """The roster file is unusable; the message names the file and line."""


@dataclass(frozen=True)
class StaffMember:
    username: str
    name: str = ""
    employee_id: str = ""
    department: str = ""


@dataclass(frozen=True)
class Roster:
    members: tuple[StaffMember, ...]

    @property
    def usernames(self) -> frozenset[str]:
        return frozenset(m.username for m in self.members)


def parse_roster(text: str, source: str = "roster") -> Roster:
    """Parse roster CSV text; raises :class:`RosterError` naming ``source`` and the line."""
    text = text.removeprefix("\ufeff")  # spreadsheet exports start with a BOM
    if not text.strip():
        raise RosterError(f"{source}: empty roster")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except (StopIteration, csv.Error) as exc:
        raise RosterError(f"{source}: line 1: unreadable header ({exc})") from exc
    if "username" not in header:
        raise RosterError(f"{source}: line 1: header has no 'username' column")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise RosterError(f"{source}: line 1: unknown column(s) {', '.join(unknown)}")
    if len(set(header)) != len(header):
        raise RosterError(f"{source}: line 1: duplicate column names")
    members: list[StaffMember] = []
    seen: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise RosterError(
                    f"{source}: line {line}: {len(row)} field(s), header has {len(header)}"
                )
            record = {h: cell.strip() for h, cell in zip(header, row, strict=True)}
            username = record["username"]
            if not USERNAME.match(username):
                raise RosterError(f"{source}: line {line}: invalid username {username!r}")
            if username in seen:
                raise RosterError(
                    f"{source}: line {line}: duplicate username {username!r} "
                    f"(first on line {seen[username]})"
                )
            seen[username] = line
            members.append(StaffMember(**record))
    except csv.Error as exc:
        raise RosterError(f"{source}: line {reader.line_num}: {exc}") from exc
    if not members:
        raise RosterError(f"{source}: the roster lists nobody (header only)")
    return Roster(tuple(members))


def load_roster(path: Path) -> Roster:
    """Read and parse a roster file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RosterError(f"{path}: cannot read roster: {exc}") from exc
    return parse_roster(text, str(path))
