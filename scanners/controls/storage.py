"""Storage security (Art. 36): data permissions, encryption at rest, USB storage."""

from __future__ import annotations

import json
from typing import Any

from parcelguard.scanners.catalog import ControlMeta, control
from parcelguard.scanners.context import HostContext
from parcelguard.scanners.controls._common import ev, names
from parcelguard.scanners.facts import HostFacts, need
from parcelguard.scanners.hostdata import tab_rows
from parcelguard.scanners.model import Outcome, Severity

AREA = "STOR"

ENCRYPTED_FSTYPES = frozenset({"ecryptfs", "fuse.gocryptfs", "fuse.encfs", "fuse.cryfs"})
# Filesystems whose backing device the host cannot name: containers, RAM, network.
OPAQUE_FSTYPES = frozenset({"overlay", "tmpfs", "fuse-overlayfs", "nfs", "nfs4", "cifs", "9p"})
BLOCKING_INSTALL = ("/bin/false", "/usr/bin/false", "/bin/true", "/usr/bin/true")


@control(
    ControlMeta(
        id="PG-STOR-001",
        title="User-data paths are not readable or writable by other users",
        area=AREA,
        articles=(36, 37),
        severity=Severity.HIGH,
        rationale="Waybill exports and database files hold every delivery user's "
        "information; any local account could copy them if they were world-readable.",
        evidence="Mode and owner of each data path, and entries up to three levels "
        "below it that grant read or write to others (names masked).",
        remediation_role="storage_security",
        remediation_tag="pg-stor-001",
    )
)
def data_permissions(facts: HostFacts, ctx: HostContext) -> Outcome:
    rows = tab_rows(need(facts, "data-paths").stdout, 2)
    tops = [r for r in rows if r[0] == "top" and len(r) >= 3]
    if not tops:
        return Outcome.not_applicable("none of the user-data paths exists on this host")
    open_entries = sorted({r[1] for r in rows if r[0] == "open"})
    unfinished = [r[1] for r in rows if r[0] == "find" and len(r) >= 3 and r[2] != "0"]
    evidence = [ev(r[1], r[2]) for r in tops]
    evidence += [ev("open to others", e) for e in open_entries[:20]]
    if open_entries:
        return Outcome.failed(
            f"{len(open_entries)} data entr{'y' if len(open_entries) == 1 else 'ies'} "
            "readable or writable by others",
            *evidence,
        )
    if unfinished:
        return Outcome.error(f"permission walk did not finish under {names(unfinished)}", *evidence)
    return Outcome.passed("data paths are closed to other users", *evidence)


def _crypt_devices(tree: list[Any], ancestors: tuple[dict[str, Any], ...] = ()) -> dict[str, bool]:
    """lsblk device name -> whether it or a device below it in the stack is encrypted."""
    result: dict[str, bool] = {}
    for dev in tree:
        if not isinstance(dev, dict):
            continue
        chain = (*ancestors, dev)
        encrypted = any(d.get("type") == "crypt" or d.get("fstype") == "crypto_LUKS" for d in chain)
        # The LUKS container itself is not where data is readable: its child is.
        if dev.get("fstype") == "crypto_LUKS" and not dev.get("children"):
            encrypted = True
        result[str(dev.get("name"))] = encrypted
        result.update(_crypt_devices(dev.get("children") or [], chain))
    return result


@control(
    ControlMeta(
        id="PG-STOR-002",
        title="User data is stored on encrypted filesystems",
        area=AREA,
        articles=(36,),
        severity=Severity.HIGH,
        rationale="Art. 36(2) requires user information to be stored encrypted, so a "
        "stolen or scrapped disk reveals nothing.",
        evidence="For each data path: its mount, filesystem type, the block-device stack "
        "(dm-crypt/LUKS) or filesystem-level encryption (fscrypt, eCryptfs, gocryptfs).",
        remediation_role="storage_security",
        remediation_tag="pg-stor-002",
    )
)
def encrypted_at_rest(facts: HostFacts, ctx: HostContext) -> Outcome:
    rows = tab_rows(need(facts, "mounts").stdout, 3)
    mounts = {r[1]: r[2] for r in rows if r[0] == "mount"}
    attrs = {r[1]: r[2] for r in rows if r[0] == "attr"}
    if not mounts:
        return Outcome.not_applicable("none of the user-data paths exists on this host")
    devices: dict[str, bool] | None = None
    lsblk = facts.section("lsblk")
    if lsblk is not None and lsblk.ok:
        try:
            data = json.loads(lsblk.stdout)
            devices = _crypt_devices(data.get("blockdevices", []))
        except (json.JSONDecodeError, AttributeError):
            devices = None
    plain, unknown, evidence = [], [], []
    for path, mount in sorted(mounts.items()):
        parts = mount.split()
        if len(parts) < 3:
            unknown.append(path)
            evidence.append(ev(path, "mount not found"))
            continue
        target, source, fstype = parts[0], parts[1], parts[2]
        evidence.append(ev(path, f"{source} on {target} type {fstype}"))
        if fstype in ENCRYPTED_FSTYPES or "E" in attrs.get(path, ""):
            continue  # filesystem-level encryption (lsattr 'E' is fscrypt)
        name = source.rsplit("/", 1)[-1]
        if devices is not None and source.startswith("/dev/") and name in devices:
            if not devices[name]:
                plain.append(path)
            continue
        unknown.append(path)
        why = (
            f"{fstype} hides the backing device"
            if fstype in OPAQUE_FSTYPES
            else "backing device not in lsblk"
        )
        evidence.append(ev(f"{path} undetermined", why))
    if plain:
        return Outcome.failed(f"unencrypted block device under {names(plain)}", *evidence)
    if unknown:
        return Outcome.error(
            f"encryption of {names(unknown)} cannot be determined from inside the host", *evidence
        )
    return Outcome.passed("every data path is on encrypted storage", *evidence)


@control(
    ControlMeta(
        id="PG-STOR-003",
        title="USB mass storage is blocked",
        area=AREA,
        articles=(36,),
        severity=Severity.MEDIUM,
        rationale="Art. 36(3) asks to restrict equipment output interfaces: a USB stick "
        "is the simplest way to carry the waybill database away.",
        evidence="modprobe configuration for usb-storage; whether the module is loaded "
        "or built in.",
        remediation_role="storage_security",
        remediation_tag="pg-stor-003",
    )
)
def usb_storage_blocked(facts: HostFacts, ctx: HostContext) -> Outcome:
    rows = tab_rows(need(facts, "usb-storage").stdout, 2)
    values = {r[0]: r[1] for r in rows if r[0] != "config"}
    config = [r[1].strip() for r in rows if r[0] == "config"]
    if "loaded" not in values:
        return Outcome.error("usb-storage probe output not recognised")
    installs = [c for c in config if c.split()[:1] == ["install"]]
    blocked = any(c.split()[-1] in BLOCKING_INSTALL for c in installs if len(c.split()) >= 3)
    blacklisted = any(c.split()[:1] == ["blacklist"] for c in config)
    evidence = (
        ev("config", "; ".join(config) or "none"),
        ev("loaded", values.get("loaded")),
        ev("built in", values.get("builtin", "unknown")),
    )
    if values.get("builtin") == "yes":
        return Outcome.failed(
            "usb-storage is built into the kernel; modprobe cannot block it", *evidence
        )
    if not blocked and not blacklisted:
        return Outcome.failed("usb-storage is not blocked in modprobe configuration", *evidence)
    if values["loaded"] == "yes":
        return Outcome.failed("usb-storage is blocked for the future but loaded now", *evidence)
    if values["loaded"] != "no":
        return Outcome.error(
            "configuration blocks usb-storage, but /proc/modules is unreadable so the "
            "live state is unknown",
            *evidence,
        )
    how = "install override" if blocked else "blacklist (a manual modprobe could still load it)"
    return Outcome.passed(f"usb-storage is blocked by {how} and not loaded", *evidence)


CONTROLS = (data_permissions, encrypted_at_rest, usb_storage_blocked)
