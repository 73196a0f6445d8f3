"""Independent, read-only verification that a person's access is gone from one host.

It shares nothing with the revocation module: facts come from the scanner's gathering
(the same parsers the PG-STAFF controls judge with), plus an SSH login attempt with each
public key the person held, made with OpenSSH against the host's recorded key. A check
that cannot be decided is an error with its reason, never a pass.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from parcelguard.scanners import facts as facts_mod
from parcelguard.scanners import hostdata
from parcelguard.scanners.connection import ConnectionFailed, open_session
from parcelguard.scanners.facts import FactUnavailable, HostFacts
from parcelguard.scanners.targets import LOCAL, Target

MAX_KEYS = 20  # offered at most; a zoning firewall throttles new SSH connections
KEYS_PER_LOGIN = 5  # below sshd's MaxAuthTries (6): one connection offers several keys
SECTIONS = (
    "passwd",
    "group",
    "shadow",
    "ssh-keys",
    "sudoers",
    "crontabs",
    "atq",
    "linger",
    "processes",
)
NOLOGIN_SHELLS = frozenset({"/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false"})
SUDO_GROUPS = ("sudo", "admin", "wheel")
_PUBKEY = re.compile(r"^(?:\S+\s+)?((?:ssh|ecdsa|sk-)[-\w@.]+)\s+([A-Za-z0-9+/=]{16,})(?:\s.*)?$")

# Extra read-only facts: the PostgreSQL role and the last login. ``$1`` is the name,
# already checked against LOGIN_NAME; it still only reaches psql as a variable.
_EXTRA = r"""
set -u
export LC_ALL=C
name=$1
if command -v psql >/dev/null 2>&1 && id postgres >/dev/null 2>&1; then
  out=$(printf "SELECT rolcanlogin FROM pg_roles WHERE rolname = :'n';\n" |
        (cd / && timeout 10 runuser -u postgres -- psql -X -A -t -q -v n="$name" -f - 2>&1))
  rc=$?
  if [ $rc -ne 0 ]; then
    # No answer: "none" when no cluster is installed or the server is not enabled
    # (nothing can log in); an enabled server that does not answer is undecided.
    if compgen -G "/etc/postgresql/*/*/postgresql.conf" >/dev/null &&
       systemctl is-enabled postgresql.service 2>/dev/null | grep -q '^enabled'; then
      echo "pg error $(printf %s "$out" | head -n1)"
    else
      echo "pg none"
    fi
  elif [ -z "$out" ]; then echo "pg norole"
  else echo "pg login=$out"; fi
else
  echo "pg none"
fi
echo "deny $(sshd -T -C "user=$name,host=localhost,addr=127.0.0.1" 2>/dev/null |
  awk '$1 == "denygroups" { $1 = ""; print }' | tr -s ' ' | sed 's/^ //')"
if command -v lastlog >/dev/null 2>&1; then
  line=$(timeout 10 lastlog -u "$name" 2>/dev/null | tail -n +2 | head -n1)
  echo "lastlog ${line:-none}"
fi
"""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: could not be decided
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def verdict(checks: Sequence[Check]) -> str:
    if any(c.ok is False for c in checks):
        return "failed"
    if any(c.ok is None for c in checks):
        return "error"
    return "passed"


def verify_host(
    target: Target,
    username: str,
    public_keys: Sequence[str],
    left_at: datetime | None,
    *,
    known_hosts: Path | None = None,
    verify_host_keys: bool = True,
    connect_timeout: float = 10,
    deny_group: str = "parcelguard-revoked",
) -> dict[str, Any]:
    """Verify on ``target``; returns {"result", "checks", "account", "checked_at", ...}."""
    now = datetime.now(UTC)
    session = open_session(
        target,
        known_hosts=known_hosts,
        verify_host_keys=verify_host_keys,
        connect_timeout=connect_timeout,
        command_timeout=120,
    )
    try:
        params = facts_mod.GatherParams(marker=facts_mod.new_marker())
        result = session.run("bash -c %s", facts_mod.gather_script(params, SECTIONS))
        host_facts = facts_mod.parse_gather_output(result.stdout, params.marker)
        extra = session.run("bash -c %s verify %s", _EXTRA, username)
    except ConnectionFailed as exc:
        return {
            "result": "unreachable",
            "checks": [],
            "error": str(exc),
            "checked_at": now.isoformat(timespec="seconds"),
        }
    finally:
        session.close()
    checks, account = judge(host_facts, username, now, deny_group)
    checks += database_check(extra.stdout)
    if account:
        checks.append(deny_rule_check(extra.stdout, deny_group))
    last_login = last_login_of(extra.stdout)
    checks.append(login_attempts(target, username, public_keys, known_hosts, verify_host_keys))
    logins_after: bool | None
    if left_at is None or not lastlog_answered(extra.stdout):
        logins_after = None  # unknown: never reported as "no"
    else:
        logins_after = last_login is not None and last_login > left_at
    return {
        "result": verdict(checks),
        "account": account,
        "checks": [c.as_dict() for c in checks],
        "last_login": last_login.isoformat() if last_login else None,
        "login_after_leaving": logins_after,
        "checked_at": now.isoformat(timespec="seconds"),
    }


def judge(
    host_facts: HostFacts, username: str, now: datetime, deny_group: str
) -> tuple[list[Check], bool]:
    """The OS-level checks on gathered facts; (checks, whether the account exists)."""
    checks: list[Check] = []
    try:
        account = next((a for a in hostdata.accounts(host_facts) if a.name == username), None)
    except FactUnavailable as exc:
        return [Check("account", None, str(exc))], False

    def check(name: str, fn: Any) -> None:
        try:
            ok, detail = fn()
        except FactUnavailable as exc:
            ok, detail = None, str(exc)
        checks.append(Check(name, ok, detail))

    if account is not None:
        entry_holder: dict[str, Any] = {}

        def shadow_entry() -> Any:
            if "e" not in entry_holder:
                entry_holder["e"] = hostdata.shadow(host_facts).get(username)
            return entry_holder["e"]

        def expired() -> tuple[bool, str]:
            e = shadow_entry()
            if e is None:
                return False, "no shadow entry"
            return e.expired(now), f"expiry day {e.expire_day}"

        def locked() -> tuple[bool, str]:
            e = shadow_entry()
            if e is None:
                return False, "no shadow entry"
            return e.state in ("locked", "disabled"), e.state

        check("expired", expired)
        check("password_locked", locked)
        check(
            "no_login_shell",
            lambda: (account.shell in NOLOGIN_SHELLS, account.shell),
        )
        check(
            "in_deny_group",
            lambda: (
                username in hostdata.group_members(host_facts, deny_group),
                f"member of {deny_group}"
                if username in hostdata.group_members(host_facts, deny_group)
                else f"not in {deny_group}",
            ),
        )
    else:
        checks.append(Check("account", True, "no account of that name"))

    def keys() -> tuple[bool, str]:
        found = hostdata.authorized_keys(host_facts).get(username, [])
        return not found, f"{len(found)} authorized key(s)"

    def processes() -> tuple[bool, str]:
        running = [c for u, _p, c in hostdata.processes(host_facts) if u == username]
        return not running, f"{len(running)} process(es)" + (
            f": {', '.join(sorted(set(running))[:5])}" if running else ""
        )

    def jobs() -> tuple[bool, str]:
        cron = hostdata.crontabs(host_facts).get(username, [])
        at = [j for j, u in hostdata.at_jobs(host_facts) if u == username]
        linger = username in facts_mod.need(host_facts, "linger").stdout.split()
        ok = not cron and not at and not linger
        return ok, f"crontab lines {len(cron)}, at jobs {len(at)}, lingering {linger}"

    def sudo() -> tuple[bool, str]:
        rules = hostdata.sudoers(host_facts)
        named = [r.file for r in rules.rules for who in r.users if username in rules.expand(who)]
        granting = set(SUDO_GROUPS) | {
            n[1:]
            for r in rules.rules
            for who in r.users
            for n in rules.expand(who)
            if n.startswith("%")
        }
        member = sorted(g for g in granting if username in hostdata.group_members(host_facts, g))
        ok = not named and not member
        detail = f"rules in {', '.join(sorted(set(named)))}; " if named else "no sudo rule; "
        return ok, detail + (f"member of {', '.join(member)}" if member else "no sudo group")

    def groups() -> tuple[bool, str]:
        others = sorted(
            g.name
            for g in hostdata.groups(host_facts).values()
            if username in g.members and g.name != deny_group
        )
        return not others, "supplementary groups: " + (", ".join(others) or "none")

    check("no_ssh_keys", keys)
    check("no_processes", processes)
    check("no_scheduled_jobs", jobs)
    check("no_sudo", sudo)
    if account is not None:
        check("no_supplementary_groups", groups)
    return checks, account is not None


def deny_rule_check(extra: str, deny_group: str) -> Check:
    line = next((ln for ln in extra.splitlines() if ln.startswith("deny")), None)
    if line is None:
        return Check("sshd_denies_group", None, "sshd -T gave no answer")
    groups = line[4:].split()
    ok = deny_group in groups
    return Check(
        "sshd_denies_group",
        ok,
        f"sshd refuses {deny_group}" if ok else f"sshd DenyGroups: {' '.join(groups) or 'none'}",
    )


def database_check(extra: str) -> list[Check]:
    line = next((ln for ln in extra.splitlines() if ln.startswith("pg ")), "pg error no answer")
    value = line[3:]
    if value == "none":
        return []
    if value == "norole":
        return [Check("database_role", True, "no PostgreSQL role of that name")]
    if value.startswith("login="):
        login = value == "login=t"
        return [Check("database_role", not login, "role can log in" if login else "NOLOGIN")]
    return [Check("database_role", None, f"PostgreSQL did not answer: {value[6:][:200]}")]


_LASTLOG = re.compile(r"(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d [+-]\d{4} \d{4})\s*$")


def lastlog_answered(extra: str) -> bool:
    """Whether lastlog gave an answer: a login time, or "Never logged in"."""
    line = next((ln for ln in extra.splitlines() if ln.startswith("lastlog ")), "")
    return bool(_LASTLOG.search(line)) or "Never logged in" in line


def last_login_of(extra: str) -> datetime | None:
    line = next((ln for ln in extra.splitlines() if ln.startswith("lastlog ")), "")
    m = _LASTLOG.search(line)
    if not m:
        return None
    try:
        return datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %z %Y")
    except ValueError:
        return None


def login_attempts(
    target: Target,
    username: str,
    public_keys: Sequence[str],
    known_hosts: Path | None,
    verify_host_keys: bool,
) -> Check:
    """Offer each of the person's public keys to sshd: the login must be refused.

    OpenSSH asks the server whether it would accept a key before it signs with it
    (RFC 4252 section 7). "Server accepts key" means the key still opens the account.
    """
    if target.connection == LOCAL:
        return Check("ssh_key_login_refused", True, "local host: no SSH login to attempt")
    unique: dict[tuple[str, str], None] = {}
    for k in public_keys:
        m = _PUBKEY.match(k.strip())
        if m:
            unique.setdefault((m.group(1), m.group(2)), None)
    keys = list(unique)[:MAX_KEYS]
    if not keys:
        return Check("ssh_key_login_refused", True, "no public key of this person was ever found")
    chosen = known_hosts or (Path(target.known_hosts) if target.known_hosts else None)
    if chosen is None and verify_host_keys:
        return Check("ssh_key_login_refused", None, "no known_hosts to verify the host key with")
    accepted: list[str] = []
    refused = 0
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="parcelguard-verify-") as tmp:
        for first in range(0, len(keys), KEYS_PER_LOGIN):
            batch = keys[first : first + KEYS_PER_LOGIN]
            identities: list[str] = []
            names: dict[str, str] = {}
            for i, (kind, body) in enumerate(batch, start=first):
                path = Path(tmp) / f"key{i}.pub"
                path.write_text(f"{kind} {body}\n", encoding="utf-8")
                path.chmod(0o600)
                identities += ["-i", str(path)]
                names[str(path)] = f"{kind} …{body[-12:]}"
            argv = [
                "ssh",
                "-v",
                "-F",
                "/dev/null",
                *identities,
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
                "-o",
                "BatchMode=yes",
                "-o",
                "PreferredAuthentications=publickey",
                "-o",
                "ConnectTimeout=10",
                "-o",
                f"StrictHostKeyChecking={'yes' if verify_host_keys else 'no'}",
                "-o",
                f"UserKnownHostsFile={chosen or '/dev/null'}",
                "-p",
                str(target.port),
                "-l",
                username,
                "--",
                target.address,
                "true",
            ]
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                problems.append(f"ssh could not run: {exc}")
                continue
            hits = [n for path, n in names.items() if f"Server accepts key: {path}" in proc.stderr]
            if hits or proc.returncode == 0:
                accepted += hits or list(names.values())
            elif "Permission denied" in proc.stderr:
                refused += len(batch)
            else:
                tail = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
                problems.append(tail[0][:200])
    if accepted:
        return Check("ssh_key_login_refused", False, f"sshd accepts key(s): {'; '.join(accepted)}")
    if problems:
        return Check("ssh_key_login_refused", None, f"login attempt inconclusive: {problems[0]}")
    return Check("ssh_key_login_refused", True, f"{refused} key(s) offered, every one refused")
