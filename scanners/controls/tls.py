"""TLS (Art. 31, 36): web and database connections carry user information encrypted."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from parcelguard.scanners.catalog import ControlMeta, control
from parcelguard.scanners.context import HostContext
from parcelguard.scanners.controls._common import ev, names
from parcelguard.scanners.facts import HostFacts, need
from parcelguard.scanners.hostdata import (
    days_until,
    parse_openssl_date,
    pg_hba,
    pg_running,
    pg_settings,
    unit,
)
from parcelguard.scanners.model import Outcome, Severity

AREA = "TLS"

# nginx 1.22 (Debian 12) enables TLSv1 and TLSv1.1 when ssl_protocols is not set.
NGINX_DEFAULT_PROTOCOLS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
GOOD_PROTOCOLS = frozenset({"TLSv1.2", "TLSv1.3"})
WEAK_CIPHER_PARTS = frozenset(
    {"RC4", "DES", "3DES", "CBC3", "MD5", "NULL", "ENULL", "ANULL", "EXP", "EXPORT",
     "ADH", "AECDH", "LOW", "MEDIUM", "ALL", "COMPLEMENTOFALL", "IDEA", "SEED", "RC2"}
)  # fmt: skip


@dataclass
class _Server:
    file: str
    tls: bool = False
    protocols: tuple[str, ...] | None = None
    ciphers: str | None = None
    listens: list[str] = field(default_factory=list)


@dataclass
class _Nginx:
    http_protocols: tuple[str, ...] | None = None
    http_ciphers: str | None = None
    servers: list[_Server] = field(default_factory=list)


def _nginx(facts: HostFacts) -> _Nginx | Outcome:
    """The TLS view of ``nginx -T``, or NOT_APPLICABLE when nginx is absent or stopped."""
    sec = facts.section("nginx")
    if sec is not None and sec.complete and sec.rc == 127:
        return Outcome.not_applicable("nginx is not installed")
    if not unit(facts, "nginx").running:
        return Outcome.not_applicable("nginx is not running")
    sec = need(facts, "nginx")
    conf = _Nginx()
    current_file = ""
    stack: list[str] = []
    server: _Server | None = None
    words: list[str] = []
    for line in sec.stdout.split("\n"):
        if m := re.match(r"^# configuration file (.*):$", line):
            current_file, stack, server, words = m.group(1), [], None, []
            continue
        line = line.split("#", 1)[0]
        for tok in re.findall(r"[{};]|[^\s{};]+", line):
            if tok == "{":
                stack.append(words[0] if words else "")
                # Site files hold server blocks at top level: nginx.conf includes
                # them inside http {}. mail/stream servers do not speak HTTPS.
                if stack[-1] == "server" and not {"mail", "stream"} & set(stack):
                    server = _Server(current_file)
                    conf.servers.append(server)
                words = []
            elif tok == "}":
                if stack and stack.pop() == "server":
                    server = None
                words = []
            elif tok == ";":
                _directive(conf, server, words)
                words = []
            else:
                words.append(tok)
    return conf


def _directive(conf: _Nginx, server: _Server | None, words: list[str]) -> None:
    if not words:
        return
    name, args = words[0], words[1:]
    if name == "ssl_protocols":
        if server is None:
            conf.http_protocols = tuple(args)
        else:
            server.protocols = tuple(args)
    elif name == "ssl_ciphers" and args:
        value = args[0].strip("'\"")
        if server is None:
            conf.http_ciphers = value
        else:
            server.ciphers = value
    elif server is not None and name == "listen":
        server.listens.append(" ".join(args))
        if "ssl" in args or "quic" in args:
            server.tls = True
    elif server is not None and name == "ssl" and args == ["on"]:
        server.tls = True


@control(
    ControlMeta(
        id="PG-TLS-001",
        title="nginx serves TLS 1.2 or later only",
        area=AREA,
        articles=(31, 36),
        severity=Severity.HIGH,
        rationale="User information crossing public networks must be encrypted; TLS 1.0 "
        "and 1.1 are deprecated (RFC 8996).",
        evidence="TLS listeners and the effective ssl_protocols of each server block.",
        remediation_role="encrypted_transport",
        remediation_tag="pg-tls-001",
    )
)
def nginx_protocols(facts: HostFacts, ctx: HostContext) -> Outcome:
    conf = _nginx(facts)
    if isinstance(conf, Outcome):
        return conf
    tls_servers = [s for s in conf.servers if s.tls]
    if not tls_servers:
        return Outcome.failed(
            "nginx runs without any TLS listener: traffic is in clear text",
            ev("listeners", names(lst for s in conf.servers for lst in s.listens)),
        )
    bad, evidence = [], []
    for s in tls_servers:
        protocols = s.protocols or conf.http_protocols or NGINX_DEFAULT_PROTOCOLS
        evidence.append(ev(f"{s.file} {names(s.listens, 3)}", " ".join(protocols)))
        if not set(protocols) <= GOOD_PROTOCOLS:
            bad.append(" ".join(sorted(set(protocols) - GOOD_PROTOCOLS)))
    if bad:
        return Outcome.failed(f"nginx allows {names(bad)}", *evidence)
    return Outcome.passed("nginx allows TLS 1.2 and 1.3 only", *evidence)


def weak_cipher_tokens(spec: str) -> list[str]:
    """OpenSSL cipher-string entries that add weak suites (exclusions are ignored)."""
    weak = []
    for token in re.split(r"[:,\s]+", spec):
        if not token or token[0] in "!-":
            continue
        parts = {p.upper() for p in re.split(r"[-+]", token.lstrip("+"))}
        if parts & WEAK_CIPHER_PARTS:
            weak.append(token)
    return weak


@control(
    ControlMeta(
        id="PG-TLS-002",
        title="nginx offers no weak cipher suites",
        area=AREA,
        articles=(31, 36),
        severity=Severity.MEDIUM,
        rationale="RC4, DES/3DES, export, NULL and anonymous suites can be broken or "
        "offer no authentication.",
        evidence="ssl_ciphers of each TLS server block (nginx default HIGH:!aNULL:!MD5).",
        remediation_role="encrypted_transport",
        remediation_tag="pg-tls-002",
    )
)
def nginx_ciphers(facts: HostFacts, ctx: HostContext) -> Outcome:
    conf = _nginx(facts)
    if isinstance(conf, Outcome):
        return conf
    tls_servers = [s for s in conf.servers if s.tls]
    if not tls_servers:
        return Outcome.not_applicable("nginx has no TLS listener (see PG-TLS-001)")
    weak: list[str] = []
    evidence = []
    for s in tls_servers:
        spec = s.ciphers or conf.http_ciphers or "HIGH:!aNULL:!MD5"
        evidence.append(ev(f"{s.file} ciphers", spec))
        weak += weak_cipher_tokens(spec)
    if weak:
        return Outcome.failed(f"weak cipher entries: {names(weak)}", *evidence)
    return Outcome.passed("no weak cipher suites are enabled", *evidence)


_LOCAL = ("127.0.0.1", "::1", "")


@control(
    ControlMeta(
        id="PG-TLS-003",
        title="PostgreSQL requires TLS for every remote connection",
        area=AREA,
        articles=(31, 36),
        severity=Severity.HIGH,
        rationale="Waybill data flowing from the application zone to the database must "
        "be encrypted in transit (Art. 36(2)).",
        evidence="ssl setting; pg_hba rules for non-local addresses that are not hostssl.",
        remediation_role="encrypted_transport",
        remediation_tag="pg-tls-003",
    )
)
def postgres_tls(facts: HostFacts, ctx: HostContext) -> Outcome:
    if pg_running(facts) is False:
        return Outcome.not_applicable("PostgreSQL is not running on this host")
    settings = pg_settings(facts)
    rules = pg_hba(facts)
    if "ssl" not in settings or not rules:
        return Outcome.error("pg_settings or pg_hba_file_rules returned nothing")
    clear = [
        r
        for r in rules
        if r.type in ("host", "hostnossl", "hostgssenc")
        and r.address.split("/")[0] not in _LOCAL
        and r.auth != "reject"
    ]
    errors = [r for r in rules if r.error]
    evidence = [ev("ssl", settings["ssl"])]
    evidence += [
        ev(f"pg_hba line {r.line}", f"{r.type} {r.database} {r.user} {r.address} {r.auth}")
        for r in clear[:10]
    ]
    if settings["ssl"] != "on":
        return Outcome.failed("PostgreSQL has ssl = off", *evidence)
    if clear:
        return Outcome.failed(
            f"{len(clear)} pg_hba rule(s) admit remote clients without TLS", *evidence
        )
    if errors:
        return Outcome.error(f"pg_hba.conf has {len(errors)} unparseable line(s)", *evidence)
    return Outcome.passed("remote PostgreSQL connections must use TLS", *evidence)


@control(
    ControlMeta(
        id="PG-TLS-004",
        title="TLS certificates are valid and not about to expire",
        area=AREA,
        articles=(31, 36),
        severity=Severity.MEDIUM,
        rationale="An expired certificate breaks clients or teaches users to accept "
        "warnings, which invites interception.",
        evidence="Subject and notAfter of certificates used by nginx and PostgreSQL.",
        remediation_role="encrypted_transport",
        remediation_tag="pg-tls-004",
    )
)
def certificates_valid(facts: HostFacts, ctx: HostContext) -> Outcome:
    sec = need(facts, "certificates")
    certs: list[tuple[str, str]] = []  # (path, notAfter)
    missing = []
    path = ""
    for line in sec.stdout.split("\n"):
        if line.startswith("cert\t"):
            path = line.split("\t", 1)[1]
            certs.append((path, ""))
        elif line.startswith("missing\t"):
            missing.append(line.split("\t", 1)[1])
        elif line.startswith("notAfter=") and certs and certs[-1][0] == path:
            certs[-1] = (path, line.split("=", 1)[1])
    if not certs and not missing:
        return Outcome.not_applicable("no TLS certificate is configured")
    evidence = [ev(p, f"notAfter {end or 'unreadable'}") for p, end in certs]
    evidence += [ev(p, "configured but missing") for p in missing]
    expiring, unreadable = [], []
    for p, end in certs:
        when = parse_openssl_date(end)
        if when is None:
            unreadable.append(p)
        elif days_until(when, ctx) < ctx.settings.cert_min_days:
            expiring.append(p)
    if missing or expiring:
        return Outcome.failed(
            f"certificate(s) missing or expiring within {ctx.settings.cert_min_days} days: "
            f"{names(missing + expiring)}",
            *evidence,
        )
    if unreadable:
        return Outcome.error(f"could not read the expiry of {names(unreadable)}", *evidence)
    return Outcome.passed(
        f"all certificates are valid for more than {ctx.settings.cert_min_days} days", *evidence
    )


CONTROLS = (nginx_protocols, nginx_ciphers, postgres_tls, certificates_valid)
