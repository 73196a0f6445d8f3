"""Typed readers for gathered sections: pure functions from section text to values.

Readers raise :class:`FactUnavailable` (through :func:`need`) when a section is missing or
failed, and skip lines they cannot read: host output is untrusted and may be partial.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from parcelguard.scanners.context import HostContext, ScanSettings
from parcelguard.scanners.facts import FactUnavailable, HostFacts, Section, need

NOLOGIN_SHELLS = frozenset(
    {"", "/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false", "/bin/sync"}
)


def _int(value: str) -> int | None:
    value = value.strip()
    if value.startswith("-") and value[1:].isdigit():
        return int(value)
    return int(value) if value.isdigit() else None


def split_files(text: str) -> dict[str, list[str]]:
    """Split a ``==> path <==`` listing into path -> lines; lines before any header go to ''."""
    result: dict[str, list[str]] = {}
    current = ""
    for line in text.split("\n"):
        m = re.match(r"^==> (.*) <==$", line)
        if m:
            current = m.group(1)
            result.setdefault(current, [])
        elif line.strip():
            result.setdefault(current, []).append(line)
    return result


def tab_rows(text: str, min_fields: int = 1) -> list[list[str]]:
    """Tab-separated rows with at least ``min_fields`` fields."""
    rows = [line.split("\t") for line in text.split("\n") if line.strip()]
    return [r for r in rows if len(r) >= min_fields]


# --- accounts -------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str
    shell: str

    @property
    def has_login_shell(self) -> bool:
        return self.shell not in NOLOGIN_SHELLS


@dataclass(frozen=True)
class Group:
    name: str
    gid: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class ShadowEntry:
    """The on-host analysis of one shadow line; the hash itself never leaves the host."""

    name: str
    scheme: str  # "$y$", "$6$", "des", "none", ...
    state: str  # empty | locked | disabled | usable
    last_change: int | None
    min_days: int | None
    max_days: int | None
    warn_days: int | None
    inactive_days: int | None
    expire_day: int | None
    match: str  # "-" none, "u" the account's own name, "N" candidate index, "?" unknown

    @property
    def has_password(self) -> bool:
        return self.state in ("usable", "empty")

    def expired(self, now: datetime) -> bool:
        today = (now.astimezone(UTC).date() - datetime(1970, 1, 1, tzinfo=UTC).date()).days
        return self.expire_day is not None and self.expire_day <= today


def accounts(facts: HostFacts) -> list[Account]:
    result = []
    for line in need(facts, "passwd").stdout.split("\n"):
        f = line.split(":")
        if len(f) == 7 and (uid := _int(f[2])) is not None and (gid := _int(f[3])) is not None:
            result.append(Account(f[0], uid, gid, f[5], f[6].strip()))
    if not result:
        raise FactUnavailable("passwd section holds no readable accounts")
    return result


def groups(facts: HostFacts) -> dict[str, Group]:
    result: dict[str, Group] = {}
    for line in need(facts, "group").stdout.split("\n"):
        f = line.split(":")
        if len(f) == 4 and (gid := _int(f[2])) is not None:
            members = tuple(m.strip() for m in f[3].split(",") if m.strip())
            result[f[0]] = Group(f[0], gid, members)
    if not result:
        raise FactUnavailable("group section holds no readable groups")
    return result


def group_members(facts: HostFacts, group: str) -> set[str]:
    """Members of ``group``: listed members and accounts whose primary group it is."""
    grp = groups(facts).get(group)
    if grp is None:
        return set()
    return set(grp.members) | {a.name for a in accounts(facts) if a.gid == grp.gid}


def shadow(facts: HostFacts) -> dict[str, ShadowEntry]:
    sec = need(facts, "shadow")
    lines = [line for line in sec.stdout.split("\n") if line.strip()]
    if not lines or not lines[0].startswith("shadow-analysis\t1\t"):
        raise FactUnavailable("shadow analysis output not recognised")
    if lines[0].endswith("nocrypt"):
        raise FactUnavailable("python3 on the host has no crypt module")
    result: dict[str, ShadowEntry] = {}
    for line in lines[1:]:
        f = line.split("\t")
        if len(f) != 10:
            continue
        last, low, high, warn, inactive, expire = (_int(x) if x else None for x in f[3:9])
        result[f[0]] = ShadowEntry(
            f[0], f[1], f[2], last, low, high, warn, inactive, expire, match=f[9]
        )
    return result


def authorized_keys(facts: HostFacts) -> dict[str, list[str]]:
    """Account -> fingerprint lines (``256 SHA256:... comment (ED25519)``)."""
    result: dict[str, list[str]] = {}
    for row in tab_rows(need(facts, "ssh-keys").stdout, 3):
        if row[0] == "key" and len(row) >= 4:
            result.setdefault(row[1], []).append(row[3])
        elif row[0] == "unreadable":
            result.setdefault(row[1], []).append(f"unparseable key file {row[2]}")
    return result


def human_accounts(
    accts: Iterable[Account],
    shadows: Mapping[str, ShadowEntry],
    keys: Mapping[str, list[str]],
    settings: ScanSettings,
) -> list[Account]:
    """Accounts a person could use: UID in the human range, or a login shell with a
    password or keys. Debian's own system accounts are never human."""
    result = []
    for a in accts:
        if a.name in settings.system_accounts:
            continue
        in_range = settings.human_uid_min <= a.uid < settings.human_uid_max
        entry = shadows.get(a.name)
        credentials = bool(keys.get(a.name)) or (entry is not None and entry.has_password)
        if in_range or (a.has_login_shell and credentials):
            result.append(a)
    return result


def disabled(entry: ShadowEntry | None, now: datetime) -> bool:
    """Locked (or without a password) and expired: the state that stops key logins too."""
    if entry is None:
        return False
    return entry.state in ("locked", "disabled") and entry.expired(now)


# --- simple configuration formats -----------------------------------------------------


def words_config(lines: Iterable[str]) -> dict[str, str]:
    """``KEY value`` lines (login.defs, sshd -T, clamd.conf); the last one wins."""
    result: dict[str, str] = {}
    for line in lines:
        parts = line.strip().split(None, 1)
        if parts and not parts[0].startswith("#"):
            result[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return result


def ini_values(lines: Iterable[str]) -> dict[str, str]:
    """``key = value`` lines (pwquality.conf, faillock.conf, journald.conf); last wins."""
    result: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if line.startswith(("#", ";", "[")) or not line:
            continue
        if "=" in line:
            key, value = line.split("=", 1)
            result[key.strip()] = value.strip()
        else:
            result[line] = ""
    return result


def login_defs(facts: HostFacts) -> dict[str, str]:
    return words_config(split_files(need(facts, "login-defs").stdout).get("/etc/login.defs", []))


def sshd_config(facts: HostFacts) -> dict[str, str]:
    config = words_config(need(facts, "sshd").stdout.split("\n"))
    if "passwordauthentication" not in config:
        raise FactUnavailable("sshd -T output not recognised")
    return config


# --- PAM ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PamLine:
    file: str
    type: str
    control: str
    module: str
    args: tuple[str, ...]

    def arg(self, name: str) -> str | None:
        for a in self.args:
            if a == name:
                return ""
            if a.startswith(name + "="):
                return a.split("=", 1)[1]
        return None


_PAM = re.compile(r"^-?(auth|account|password|session)\s+(\[[^\]]*\]|\S+)\s+(\S+)\s*(.*)$")


def pam_lines(facts: HostFacts, file: str) -> list[PamLine]:
    """Rules of one PAM file, e.g. ``common-password``, in order."""
    path = f"/etc/pam.d/{file}"
    result = []
    for line in split_files(need(facts, "pam").stdout).get(path, []):
        m = _PAM.match(line.strip())
        if m:
            module = m.group(3).rsplit("/", 1)[-1]
            result.append(PamLine(path, m.group(1), m.group(2), module, tuple(m.group(4).split())))
    return result


def pam_module(facts: HostFacts, file: str, module: str, kind: str) -> list[PamLine]:
    return [p for p in pam_lines(facts, file) if p.module == module and p.type == kind]


def security_conf(facts: HostFacts, name: str) -> dict[str, str]:
    """Merged ``key = value`` settings of /etc/security/<name>.conf and its .d/ drop-ins."""
    merged: dict[str, str] = {}
    files = split_files(need(facts, "security-conf").stdout)
    for path in sorted(files):
        if path == f"/etc/security/{name}.conf" or path.startswith(f"/etc/security/{name}.conf.d/"):
            merged.update(ini_values(files[path]))
    return merged


# --- sudoers ------------------------------------------------------------------------


@dataclass(frozen=True)
class SudoRule:
    file: str
    users: tuple[str, ...]
    text: str  # the whole rule, comments stripped

    @property
    def nopasswd_all(self) -> bool:
        _, _, rhs = self.text.partition("=")
        after = re.split(r"\bNOPASSWD\s*:", rhs, maxsplit=1)
        if len(after) < 2:
            return False
        for cmd in after[1].split(","):
            cmd = re.sub(r"^\s*(\([^)]*\))?\s*", "", cmd)
            cmd = re.sub(r"^([A-Z_]+\s*:\s*)+", "", cmd).strip()
            if cmd == "ALL":
                return True
        return False


@dataclass(frozen=True)
class Sudoers:
    rules: tuple[SudoRule, ...]
    defaults: tuple[str, ...]
    user_aliases: Mapping[str, tuple[str, ...]]

    def expand(self, user: str, depth: int = 0) -> set[str]:
        """Expand a User_Alias into its members; other names stand for themselves."""
        if user in self.user_aliases and depth < 8:
            out: set[str] = set()
            for member in self.user_aliases[user]:
                out |= self.expand(member, depth + 1)
            return out
        return {user}


_ALIAS = re.compile(r"^(User_Alias|Runas_Alias|Host_Alias|Cmnd_Alias|Cmd_Alias)\s+(.*)$")
_RULE = re.compile(r"^((?:[^\s,=]+\s*,\s*)*[^\s,=]+)\s+[^=]+=")


def sudoers(facts: HostFacts) -> Sudoers:
    files = split_files(need(facts, "sudoers").stdout)
    if "/etc/sudoers" not in files:
        raise FactUnavailable("/etc/sudoers is missing or unreadable")
    rules: list[SudoRule] = []
    defaults: list[str] = []
    aliases: dict[str, tuple[str, ...]] = {}
    for path, lines in files.items():
        base = path.rsplit("/", 1)[-1]
        # sudo skips files in an includedir whose name contains '.' or ends with '~'.
        if path.startswith("/etc/sudoers.d/") and ("." in base or base.endswith("~")):
            continue
        joined: list[str] = []
        for line in lines:
            if joined and joined[-1].endswith("\\"):
                joined[-1] = joined[-1][:-1] + " " + line.strip()
            else:
                joined.append(line.strip())
        for line in joined:
            if line.startswith(("@include", "#include")):
                continue
            if line.startswith("Defaults"):
                defaults.append(line)
                continue
            if m := _ALIAS.match(line):
                if m.group(1) == "User_Alias":
                    for part in m.group(2).split(":"):
                        name, _, members = part.partition("=")
                        aliases[name.strip()] = tuple(
                            x.strip() for x in members.split(",") if x.strip()
                        )
                continue
            if m := _RULE.match(line):
                users = tuple(u.strip() for u in m.group(1).split(","))
                rules.append(SudoRule(path, users, line))
    return Sudoers(tuple(rules), tuple(defaults), aliases)


# --- services, processes, schedules --------------------------------------------------


@dataclass(frozen=True)
class UnitState:
    enabled: str  # enabled | disabled | masked | static | not-found | ...
    active: str  # active | inactive | failed | unknown | ...

    @property
    def running(self) -> bool:
        return self.active == "active"

    @property
    def present(self) -> bool:
        return self.enabled != "not-found"


def units(facts: HostFacts) -> dict[str, UnitState]:
    return {r[0]: UnitState(r[1], r[2]) for r in tab_rows(need(facts, "units").stdout, 3)}


def unit(facts: HostFacts, name: str) -> UnitState:
    return units(facts).get(name, UnitState("not-found", "unknown"))


def processes(facts: HostFacts) -> list[tuple[str, str, str]]:
    """(user, pid, command) of every process."""
    result = []
    for line in need(facts, "processes").stdout.split("\n"):
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1].isdigit():
            result.append((parts[0], parts[1], parts[2]))
    return result


def crontabs(facts: HostFacts) -> dict[str, list[str]]:
    return {u: lines for u, lines in split_files(need(facts, "crontabs").stdout).items() if u}


def at_jobs(facts: HostFacts) -> list[tuple[str, str]]:
    """(job id, owner) from ``atq`` run as root."""
    sec = need(facts, "atq")
    result = []
    for line in sec.stdout.split("\n"):
        parts = line.split()
        if len(parts) >= 3 and parts[0].isdigit():
            result.append((parts[0], parts[-1]))
    return result


def listening_ports(facts: HostFacts) -> set[int]:
    ports = set()
    for line in need(facts, "listening").stdout.split("\n"):
        parts = line.split()
        if len(parts) >= 5:
            port = _int(parts[4].rsplit(":", 1)[-1])
            if port is not None:
                ports.add(port)
    return ports


# --- PostgreSQL and other services -----------------------------------------------------


def service_absent(sec: Section) -> bool:
    return sec.rc == 127 or sec.stdout.strip() == "absent"


def pg_running(facts: HostFacts) -> bool | None:
    """Whether a PostgreSQL server runs here; None when it cannot be told."""
    sec = facts.section("pg-settings")
    if sec is not None and sec.ok:
        return True
    if sec is not None and service_absent(sec):
        return False
    try:
        state = unit(facts, "postgresql")
        if not state.running and 5432 not in listening_ports(facts):
            return False
    except FactUnavailable:
        return None
    return None


def pg_settings(facts: HostFacts) -> dict[str, str]:
    return {r[0]: r[1] for r in tab_rows(need(facts, "pg-settings").stdout, 2)}


@dataclass(frozen=True)
class HbaRule:
    line: str
    type: str
    database: str
    user: str
    address: str
    auth: str
    error: str


def _hba_address(address: str, netmask: str) -> str:
    """pg_hba_file_rules splits ``0.0.0.0/0`` into address and netmask; join them again."""
    if not address or not netmask:
        return address
    try:
        return str(ipaddress.ip_network(f"{address}/{netmask}", strict=False))
    except ValueError:
        return f"{address}/{netmask}"


def pg_hba(facts: HostFacts) -> list[HbaRule]:
    return [
        HbaRule(r[0], r[1], r[2], r[3], _hba_address(r[4], r[5]), r[6], r[7])
        for r in tab_rows(need(facts, "pg-hba").stdout, 8)
    ]


def login_attempts(sec: Section) -> list[tuple[str, str]]:
    """(candidate label, outcome) rows of a default-password login section."""
    return [(r[0], r[1]) for r in tab_rows(sec.stdout, 2)]


# --- logging -----------------------------------------------------------------------

_SPAN_UNITS = {
    "us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "s": 1, "sec": 1, "second": 1,
    "seconds": 1, "m": 60, "min": 60, "minute": 60, "minutes": 60, "h": 3600, "hr": 3600,
    "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400, "w": 604800,
    "week": 604800, "weeks": 604800, "M": 2629800, "month": 2629800, "months": 2629800,
    "y": 31557600, "year": 31557600, "years": 31557600,
}  # fmt: skip


def timespan_days(value: str) -> float | None:
    """A systemd time span (``180d``, ``6month``, ``1y 2w``, bare seconds) in days."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return int(value) / 86400
    total = 0.0
    for number, unit_name in re.findall(r"(\d+(?:\.\d+)?)\s*([A-Za-z]+)", value):
        if unit_name not in _SPAN_UNITS:
            return None
        total += float(number) * _SPAN_UNITS[unit_name]
    if re.sub(r"(\d+(?:\.\d+)?)\s*([A-Za-z]+)", "", value).strip():
        return None
    return total / 86400


_PERIOD_DAYS = {"daily": 1, "weekly": 7, "monthly": 28, "yearly": 365}  # a month is >= 28 days


def logrotate_days(files: Mapping[str, list[str]], target: str) -> tuple[int | None, str]:
    """Days of history logrotate keeps for ``target`` (rotate x period, capped by maxage).

    Returns (None, why) when no rule covers the file or its period is size-based only.
    """
    defaults: dict[str, int] = {}
    found: tuple[dict[str, int], str] | None = None
    ordered = sorted(files, key=lambda p: (p != "/etc/logrotate.conf", p))
    for path in ordered:
        patterns: list[str] = []
        block: dict[str, int] | None = None
        in_script = False
        for raw in files[path]:
            line = raw.strip()
            if in_script:
                in_script = line != "endscript"
                continue
            if line in ("postrotate", "prerotate", "firstaction", "lastaction", "preremove"):
                in_script = True
                continue
            if block is None and "{" in line:
                patterns += line.split("{", 1)[0].split()
                block = dict(defaults)
                line = line.split("{", 1)[1].strip()
                if not line:
                    continue
            if block is not None and line.startswith("}"):
                if found is None and any(fnmatch.fnmatch(target, p) for p in patterns):
                    found = (block, path)
                patterns, block = [], None
                continue
            if block is None and line.startswith("/"):
                patterns += line.split()
                continue
            target_dict = block if block is not None else defaults
            parts = line.split()
            if not parts:
                continue
            if parts[0] in _PERIOD_DAYS:
                target_dict["period"] = _PERIOD_DAYS[parts[0]]
            elif parts[0] in ("rotate", "maxage") and len(parts) > 1:
                n = _int(parts[1])
                if n is not None:
                    target_dict[parts[0]] = n
    if found is None:
        return None, f"no logrotate rule covers {target}"
    block, path = found
    if "period" not in block:
        return None, f"{path}: {target} rotates by size only, its age is unknown"
    days = block.get("rotate", 1) * block["period"]
    if "maxage" in block:
        days = min(days, block["maxage"])
    return days, f"{path}: rotate {block.get('rotate', 1)} x {block['period']} day(s)"


# --- time -------------------------------------------------------------------------


def days_until(when: datetime, ctx: HostContext) -> float:
    now = ctx.now if ctx.now.tzinfo else ctx.now.replace(tzinfo=UTC)
    return (when - now).total_seconds() / 86400


def parse_openssl_date(value: str) -> datetime | None:
    """``Nov 25 20:58:11 2034 GMT`` (openssl x509 -enddate) as an aware datetime."""
    try:
        parsed = datetime.strptime(" ".join(value.split()), "%b %d %H:%M:%S %Y GMT")
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC)
