"""SSH (Art. 31): no passwords, no direct root, modern crypto, logged remote access.

Judged on ``sshd -T``, the effective configuration after includes and defaults, so a
drop-in such as Debian's ``sshd_config.d/*.conf`` cannot hide a setting.
"""

from __future__ import annotations

import re

from parcelguard.scanners.catalog import ControlMeta, control
from parcelguard.scanners.context import HostContext
from parcelguard.scanners.controls._common import ev, names
from parcelguard.scanners.facts import HostFacts, need
from parcelguard.scanners.hostdata import ini_values, split_files, sshd_config
from parcelguard.scanners.model import Outcome, Severity

AREA = "SSH"

# Allow-lists in the spirit of Mozilla's "modern" OpenSSH guideline and dev-sec's
# ssh-hardening: AEAD or CTR ciphers, SHA-2 MACs (ETM preferred), curve25519,
# sntrup761 and the large finite-field groups. OpenSSH 9.2 (Debian 12) defaults also
# offer umac-64 and hmac-sha1 variants, which are not on the list.
ALLOWED_CIPHERS = frozenset(
    {
        "chacha20-poly1305@openssh.com",
        "aes256-gcm@openssh.com",
        "aes128-gcm@openssh.com",
        "aes256-ctr",
        "aes192-ctr",
        "aes128-ctr",
    }
)
ALLOWED_MACS = frozenset(
    {
        "hmac-sha2-512-etm@openssh.com",
        "hmac-sha2-256-etm@openssh.com",
        "umac-128-etm@openssh.com",
        "hmac-sha2-512",
        "hmac-sha2-256",
    }
)
ALLOWED_KEX = frozenset(
    {
        "sntrup761x25519-sha512@openssh.com",
        # Debian 12's OpenSSH 9.2 security updates also offer the name OpenSSH 9.9 adopted.
        "sntrup761x25519-sha512",
        "curve25519-sha256",
        "curve25519-sha256@libssh.org",
        "diffie-hellman-group16-sha512",
        "diffie-hellman-group18-sha512",
        "diffie-hellman-group-exchange-sha256",
        "ecdh-sha2-nistp521",
        "ecdh-sha2-nistp384",
        "ecdh-sha2-nistp256",
    }
)


@control(
    ControlMeta(
        id="PG-SSH-001",
        title="SSH refuses password and keyboard-interactive logins",
        area=AREA,
        articles=(31, 35),
        severity=Severity.HIGH,
        rationale="Keys cannot be guessed or phished like passwords; with UsePAM, "
        "keyboard-interactive is a password login under another name.",
        evidence="passwordauthentication and kbdinteractiveauthentication from sshd -T.",
        remediation_role="encrypted_transport",
        remediation_tag="pg-ssh-001",
    )
)
def no_password_login(facts: HostFacts, ctx: HostContext) -> Outcome:
    cfg = sshd_config(facts)
    pw = cfg.get("passwordauthentication", "")
    kbd = cfg.get("kbdinteractiveauthentication", cfg.get("challengeresponseauthentication", ""))
    evidence = (ev("passwordauthentication", pw), ev("kbdinteractiveauthentication", kbd))
    if pw != "no" or kbd == "yes":
        return Outcome.failed("sshd accepts password logins", *evidence)
    return Outcome.passed("sshd accepts keys only", *evidence)


@control(
    ControlMeta(
        id="PG-SSH-002",
        title="SSH does not allow root to log in with a password",
        area=AREA,
        articles=(31, 34),
        severity=Severity.HIGH,
        rationale="Direct root logins are anonymous (no personal account in the log) and "
        "the most guessed target.",
        evidence="permitrootlogin from sshd -T.",
        remediation_role="encrypted_transport",
        remediation_tag="pg-ssh-002",
    )
)
def root_login(facts: HostFacts, ctx: HostContext) -> Outcome:
    value = sshd_config(facts).get("permitrootlogin", "")
    evidence = ev("permitrootlogin", value)
    # sshd -T prints the historic alias "without-password" for prohibit-password.
    if value in ("no", "prohibit-password", "without-password", "forced-commands-only"):
        return Outcome.passed(f"root login is {value}", evidence)
    return Outcome.failed(f"root may log in with a password (permitrootlogin {value})", evidence)


@control(
    ControlMeta(
        id="PG-SSH-003",
        title="SSH offers only modern ciphers, MACs and key exchanges",
        area=AREA,
        articles=(31, 36),
        severity=Severity.MEDIUM,
        rationale="CBC ciphers, SHA-1 MACs and SHA-1 key exchanges have practical "
        "attacks; user information in transit must use current cryptography.",
        evidence="Algorithms from sshd -T that are outside the allow-lists.",
        remediation_role="encrypted_transport",
        remediation_tag="pg-ssh-003",
    )
)
def modern_crypto(facts: HostFacts, ctx: HostContext) -> Outcome:
    cfg = sshd_config(facts)
    weak: list[str] = []
    evidence = []
    for key, allowed in (
        ("ciphers", ALLOWED_CIPHERS),
        ("macs", ALLOWED_MACS),
        ("kexalgorithms", ALLOWED_KEX),
    ):
        if key not in cfg:
            return Outcome.error(f"sshd -T printed no {key}")
        offered = [a for a in cfg[key].split(",") if a]
        bad = [a for a in offered if a not in allowed]
        weak += bad
        evidence.append(ev(key, ",".join(offered)))
        if bad:
            evidence.append(ev(f"{key} outside allow-list", ",".join(bad)))
    if weak:
        return Outcome.failed(f"weak or unlisted algorithms offered: {names(weak, 6)}", *evidence)
    return Outcome.passed("only allow-listed algorithms are offered", *evidence)


_AUTH_SELECTOR = re.compile(r"^\s*([^\s]*\bauth(priv)?\b[^\s]*)\s+-?/\S+")


@control(
    ControlMeta(
        id="PG-SSH-004",
        title="Remote access is logged and the log survives reboots",
        area=AREA,
        articles=(31, 37),
        severity=Severity.MEDIUM,
        rationale="Art. 31 asks to examine and monitor remote access: every login needs "
        "a record with user, source and key, kept on disk.",
        evidence="sshd loglevel; journald storage; rsyslog auth selectors writing to files.",
        remediation_role="audit_logging",
        remediation_tag="pg-ssh-004",
    )
)
def remote_access_logged(facts: HostFacts, ctx: HostContext) -> Outcome:
    level = sshd_config(facts).get("loglevel", "").upper()
    journald = split_files(need(facts, "journald").stdout)
    storage = ini_values(
        line for path, lines in sorted(journald.items()) if path for line in lines
    ).get("Storage", "auto")
    journal_dir = any("journal-dir\tpresent" in line for line in journald.get("", []))
    persistent = storage == "persistent" or (storage == "auto" and journal_dir)
    rsyslog_lines = [
        line
        for path, lines in split_files(need(facts, "rsyslog").stdout).items()
        for line in lines
        if _AUTH_SELECTOR.match(line)
    ]
    evidence = (
        ev("sshd loglevel", level),
        ev(
            "journald storage",
            f"{storage} (journal directory {'present' if journal_dir else 'absent'})",
        ),
        ev("rsyslog auth rules", len(rsyslog_lines)),
    )
    if level not in ("INFO", "VERBOSE"):
        return Outcome.failed(f"sshd loglevel {level or 'unknown'} does not log logins", *evidence)
    if not persistent and not rsyslog_lines:
        return Outcome.failed("login records are kept in memory only", *evidence)
    return Outcome.passed("logins are logged to persistent storage", *evidence)


CONTROLS = (no_password_login, root_login, modern_crypto, remote_access_logged)
