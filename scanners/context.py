"""What a control knows about a host besides its facts: inventory data and thresholds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from parcelguard.scanners.policy import DEFAULT_ZONE_POLICY, Reachability, ZonePolicy

DEFAULT_DATA_PATHS: tuple[str, ...] = ("/srv/waybill", "/var/lib/postgresql")

# Accounts Debian 12 creates for its own packages, plus the ones our services bring.
# They are never "human" even when a package gives them a shell (postgres gets /bin/bash).
DEFAULT_SYSTEM_ACCOUNTS: tuple[str, ...] = (
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp",
    "proxy", "www-data", "backup", "list", "irc", "_apt", "nobody", "systemd-network",
    "systemd-timesync", "systemd-resolve", "messagebus", "sshd", "postgres", "clamav",
    "Debian-snmp", "redis", "mysql", "_chrony", "polkitd", "tss", "statd", "_rpc",
)  # fmt: skip

# Accounts that appliance and software vendors ship with well-known passwords.
DEFAULT_VENDOR_ACCOUNTS: tuple[str, ...] = (
    "support", "admin", "administrator", "test", "guest", "demo", "oracle", "pi",
    "ubuntu", "user", "vendor", "service", "operator", "default",
)  # fmt: skip


@dataclass(frozen=True)
class ScanSettings:
    """Thresholds and lists that controls judge against; defaults follow the Provisions."""

    signature_max_age_days: int = 7
    cert_min_days: int = 30
    # China's Cybersecurity Law (Art. 21) requires network logs to be kept six months.
    log_retention_days: int = 180
    sudo_groups: tuple[str, ...] = ("netadmin", "secadmin", "auditor")
    system_accounts: tuple[str, ...] = DEFAULT_SYSTEM_ACCOUNTS
    vendor_accounts: tuple[str, ...] = DEFAULT_VENDOR_ACCOUNTS
    data_paths: tuple[str, ...] = DEFAULT_DATA_PATHS
    waybill_database: str = "waybill"
    human_uid_min: int = 1000
    human_uid_max: int = 60000  # Debian's UID_MAX; 60000+ are dynamic/system ranges
    password_min_length: int = 12
    password_min_classes: int = 3
    password_max_days: int = 90
    password_min_days: int = 1
    faillock_max_deny: int = 5
    pwhistory_min_remember: int = 5


@dataclass(frozen=True)
class HostContext:
    """Inventory knowledge about the host a control judges, and the scan's clock."""

    host: str
    address: str
    now: datetime
    zones: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    policy: ZonePolicy = DEFAULT_ZONE_POLICY
    roster: frozenset[str] | None = None
    settings: ScanSettings = field(default_factory=ScanSettings)
    reachability: Reachability | None = None
