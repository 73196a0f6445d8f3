"""The service's configuration file, validated at start-up with one clear error each.

listen: 127.0.0.1:8750              # host:port
tls:                                # optional; without it, listen on loopback only
  certificate: /etc/parcelguard/tls.crt
  key: /etc/parcelguard/tls.key
inventory: /etc/parcelguard/inventory.yml
limit: null                         # an Ansible host pattern, optional
database: /var/lib/parcelguard/offboarding.db
known_hosts: null                   # default: the inventory's
webhook:
  secret_file: /etc/parcelguard/webhook.secret   # mode 0600, whsec_...
  tolerance_seconds: 300
scim:
  domains: [corp.example]           # lihua@corp.example stands for the login lihua
offboarding:
  protected: [ansible]              # never revoked, whatever a trigger says
  retry_base_seconds: 30
  retry_max_seconds: 900
  forks: 50
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from parcelguard.dashboard.accounts import NAME as ACCOUNT_NAME
from parcelguard.errors import ParcelguardError, one_line
from parcelguard.offboard.store import default_db
from parcelguard.scanners.model import Severity
from parcelguard.server.alerts import EmailChannel, WebhookChannel
from parcelguard.server.schedule import Schedule, ScheduleError, parse_schedules
from parcelguard.server.webhook import load_secret

TOP = frozenset(
    {
        "listen",
        "tls",
        "inventory",
        "limit",
        "database",
        "known_hosts",
        "webhook",
        "scim",
        "offboarding",
        "scans_database",
        "schedules",
        "alerts",
        "dashboard",
    }
)
DASHBOARD = frozenset(
    {
        "enabled",
        "admin_user",
        "admin_password_file",
        "session_idle_minutes",
        "session_max_hours",
        "public_url",
    }
)
ALERTS = frozenset(
    {"min_severity", "offboarding_overdue_minutes", "evidence_url", "webhook", "email"}
)
EMAIL = frozenset({"host", "port", "from", "to", "username", "password_file", "cafile"})
DOMAIN = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
OFFBOARDING = frozenset({"protected", "retry_base_seconds", "retry_max_seconds", "forks"})


class ConfigError(ParcelguardError):
    pass


@dataclass(frozen=True)
class AlertSettings:
    min_severity: Severity = Severity.HIGH
    overdue_minutes: float = 60.0
    evidence_url: str = ""
    channels: tuple[WebhookChannel | EmailChannel, ...] = ()


@dataclass(frozen=True)
class DashboardSettings:
    enabled: bool
    admin_user: str = "admin"
    admin_password: str = field(default="", repr=False)
    idle_seconds: float = 30 * 60
    absolute_seconds: float = 12 * 3600
    public_url: str = ""  # scheme://host[:port] people use, behind a TLS proxy


@dataclass(frozen=True)
class ServeConfig:
    host: str
    port: int
    certificate: Path | None
    key: Path | None
    inventory: Path
    limit: str | None
    database: Path
    known_hosts: Path | None
    webhook_key: bytes | None
    webhook_tolerance: float
    scim_domains: frozenset[str]
    scans_database: str | None
    schedules: tuple[Schedule, ...]
    alerts: AlertSettings
    protected: frozenset[str]
    retry_base: float
    retry_max: float
    forks: int
    source: str
    dashboard: DashboardSettings


def _mapping(value: Any, where: str, allowed: frozenset[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}")
    return value


def _number(value: Any, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"{where} must be a number from {low:g} to {high:g}")
    return float(value)


def _path(value: Any, where: str, must_exist: bool = True) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} must be a file path")
    path = Path(value).expanduser()
    if must_exist and not path.exists():
        raise ConfigError(f"{where}: {path} does not exist")
    return path


def load_config(path: Path) -> ServeConfig:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {one_line(exc)}") from exc
    return parse_config(data, str(path))


def parse_config(data: Any, source: str = "config") -> ServeConfig:
    top = _mapping(data, source, TOP)
    if "inventory" not in top:
        raise ConfigError(f"{source}: inventory is required (the fleet offboarding acts on)")
    listen = str(top.get("listen", "127.0.0.1:8750"))
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{source}: listen must be HOST:PORT, got {listen!r}")
    host = host.strip("[]")
    tls = _mapping(top.get("tls"), f"{source}: tls", frozenset({"certificate", "key"}))
    certificate = key = None
    if tls:
        if set(tls) != {"certificate", "key"}:
            raise ConfigError(f"{source}: tls needs both certificate and key")
        certificate = _path(tls["certificate"], "tls.certificate")
        key = _path(tls["key"], "tls.key")
    elif not _loopback(host):
        raise ConfigError(
            f"{source}: listening on {host} without TLS would send bearer tokens in clear",
            "add tls.certificate and tls.key, or listen on 127.0.0.1 behind a TLS proxy",
        )
    hook = _mapping(
        top.get("webhook"), f"{source}: webhook", frozenset({"secret_file", "tolerance_seconds"})
    )
    webhook_key = None
    if hook:
        if "secret_file" not in hook:
            raise ConfigError(f"{source}: webhook.secret_file is required to accept webhooks")
        webhook_key = load_secret(_path(hook["secret_file"], "webhook.secret_file"))
    scim = _mapping(top.get("scim"), f"{source}: scim", frozenset({"domains"}))
    domains = scim.get("domains", [])
    if not isinstance(domains, list) or not all(
        isinstance(d, str) and DOMAIN.fullmatch(d.lower()) for d in domains
    ):
        raise ConfigError(f"{source}: scim.domains must be a list of domain names")
    try:
        schedules = parse_schedules(top.get("schedules"), source)
    except ScheduleError as exc:
        raise ConfigError(exc.message, exc.hint) from exc
    alerts = _alerts(top.get("alerts"), source)
    scans_db = top.get("scans_database")
    if scans_db is not None and not isinstance(scans_db, str):
        raise ConfigError(f"{source}: scans_database must be a path or sqlite:/// URL")
    off = _mapping(top.get("offboarding"), f"{source}: offboarding", OFFBOARDING)
    protected = off.get("protected", [])
    if not isinstance(protected, list) or not all(isinstance(p, str) for p in protected):
        raise ConfigError(f"{source}: offboarding.protected must be a list of login names")
    limit = top.get("limit")
    if limit is not None and not isinstance(limit, str):
        raise ConfigError(f"{source}: limit must be an Ansible host pattern")
    return ServeConfig(
        host=host,
        port=int(port_text),
        certificate=certificate,
        key=key,
        inventory=_path(top["inventory"], "inventory"),
        limit=limit,
        database=_path(top["database"], "database", must_exist=False)
        if top.get("database")
        else default_db(),
        known_hosts=_path(top["known_hosts"], "known_hosts") if top.get("known_hosts") else None,
        webhook_key=webhook_key,
        webhook_tolerance=_number(
            hook.get("tolerance_seconds", 300), "webhook.tolerance_seconds", 10, 3600
        ),
        scim_domains=frozenset(d.lower() for d in domains),
        scans_database=scans_db,
        schedules=schedules,
        alerts=alerts,
        protected=frozenset(protected),
        retry_base=_number(
            off.get("retry_base_seconds", 30), "offboarding.retry_base_seconds", 1, 3600
        ),
        retry_max=_number(
            off.get("retry_max_seconds", 900), "offboarding.retry_max_seconds", 1, 86400
        ),
        forks=int(_number(off.get("forks", 50), "offboarding.forks", 1, 500)),
        source=source,
        dashboard=_dashboard(top.get("dashboard"), source),
    )


def _dashboard(data: Any, source: str) -> DashboardSettings:
    """The dashboard is on unless switched off, and never without an admin secret: there
    is no default account or password."""
    where = f"{source}: dashboard"
    d = _mapping(data, where, DASHBOARD)
    enabled = d.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}.enabled must be true or false")
    if not enabled:
        return DashboardSettings(enabled=False)
    if "admin_password_file" not in d:
        raise ConfigError(
            f"{where}.admin_password_file is required: the dashboard has no default password",
            "parcelguard serve --new-admin-secret /etc/parcelguard/admin.secret, then name it "
            "under dashboard.admin_password_file (or set dashboard.enabled: false)",
        )
    admin = d.get("admin_user", "admin")
    if not isinstance(admin, str) or not ACCOUNT_NAME.fullmatch(admin):
        raise ConfigError(f"{where}.admin_user must be a lower-case account name")
    secret = load_secret_text(_path(d["admin_password_file"], f"{where}.admin_password_file"))
    if len(secret) < 12:
        raise ConfigError(
            f"{where}.admin_password_file holds fewer than 12 characters",
            "write a long random one: parcelguard serve --new-admin-secret FILE",
        )
    public = d.get("public_url", "")
    if public:
        parsed = urlsplit(public) if isinstance(public, str) else None
        if (
            parsed is None
            or parsed.scheme not in ("https", "http")
            or not parsed.hostname
            or parsed.username
            or parsed.password
            or parsed.path not in ("", "/")
            or parsed.query
            or (parsed.scheme == "http" and not _loopback(parsed.hostname))
        ):
            raise ConfigError(
                f"{where}.public_url must be https://HOST[:PORT] (the TLS proxy's address; "
                "plain http only on this machine), without a path"
            )
        public = f"{parsed.scheme}://{parsed.netloc}"
    return DashboardSettings(
        enabled=True,
        public_url=public,
        admin_user=admin,
        admin_password=secret,
        idle_seconds=60
        * _number(d.get("session_idle_minutes", 30), f"{where}.session_idle_minutes", 1, 1440),
        absolute_seconds=3600
        * _number(d.get("session_max_hours", 12), f"{where}.session_max_hours", 1, 168),
    )


def _alerts(data: Any, source: str) -> AlertSettings:
    where = f"{source}: alerts"
    a = _mapping(data, where, ALERTS)
    if not a:
        return AlertSettings()
    try:
        severity = Severity(str(a.get("min_severity", "high")).lower())
    except ValueError as exc:
        raise ConfigError(f"{where}.min_severity must be low, medium, high or critical") from exc
    channels: list[WebhookChannel | EmailChannel] = []
    hook = _mapping(a.get("webhook"), f"{where}.webhook", frozenset({"url", "secret_file"}))
    if hook:
        url = hook.get("url")
        if not isinstance(url, str) or not _acceptable_url(url):
            raise ConfigError(
                f"{where}.webhook.url must be https:// (plain http only to this machine), "
                "without user or password in it"
            )
        if "secret_file" not in hook:
            raise ConfigError(f"{where}.webhook.secret_file is required: alerts are signed")
        channels.append(WebhookChannel(url, load_secret(_path(hook["secret_file"], "secret_file"))))
    mail = _mapping(a.get("email"), f"{where}.email", EMAIL)
    if mail:
        for key in ("host", "from", "to"):
            if key not in mail:
                raise ConfigError(f"{where}.email.{key} is required")
        to = mail["to"]
        if (
            not isinstance(to, list)
            or not to
            or not all(isinstance(t, str) and "@" in t for t in to)
        ):
            raise ConfigError(f"{where}.email.to must be a list of addresses")
        password = None
        if mail.get("username") and not mail.get("password_file"):
            raise ConfigError(f"{where}.email.username needs password_file (mode 0600)")
        if mail.get("password_file"):
            password = load_secret_text(_path(mail["password_file"], "email.password_file"))
        channels.append(
            EmailChannel(
                host=str(mail["host"]),
                port=int(_number(mail.get("port", 587), f"{where}.email.port", 1, 65535)),
                sender=str(mail["from"]),
                recipients=tuple(to),
                username=str(mail["username"]) if mail.get("username") else None,
                password=password,
                cafile=str(_path(mail["cafile"], "email.cafile")) if mail.get("cafile") else None,
            )
        )
    url = a.get("evidence_url", "")
    if not isinstance(url, str):
        raise ConfigError(f"{where}.evidence_url must be a URL")
    return AlertSettings(
        min_severity=severity,
        overdue_minutes=_number(
            a.get("offboarding_overdue_minutes", 60),
            f"{where}.offboarding_overdue_minutes",
            1,
            100000,
        ),
        evidence_url=url.rstrip("/"),
        channels=tuple(channels),
    )


def _acceptable_url(url: str) -> bool:
    parsed = urlsplit(url)
    if parsed.username or parsed.password or not parsed.hostname:
        return False
    if parsed.scheme == "https":
        return True
    return parsed.scheme == "http" and _loopback(parsed.hostname)


def load_secret_text(path: Path) -> str:
    """A password file: private to its owner, first line only."""
    mode = path.stat().st_mode
    if mode & 0o077:
        raise ConfigError(
            f"{path} is readable by others (mode {mode & 0o777:o})", f"chmod 600 {path}"
        )
    return path.read_text(encoding="utf-8").splitlines()[0] if path.stat().st_size else ""


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
