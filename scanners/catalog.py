"""The control catalog: every control's metadata, validated before any host is judged.

Each area module under ``parcelguard.scanners.controls`` declares ``AREA`` (its id
prefix) and an explicit ``CONTROLS`` tuple. :func:`load_catalog` imports the modules
named in :data:`AREA_MODULES` and refuses the catalog, naming the control, when ids,
areas, articles, roles or tags disagree, or when a technical article has no control.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from parcelguard.scanners.model import Outcome, Severity

if TYPE_CHECKING:
    from parcelguard.scanners.context import HostContext
    from parcelguard.scanners.facts import HostFacts

CheckFn = Callable[["HostFacts", "HostContext"], Outcome]

# Articles of the Provisions that machines check, with a short English title each.
TECHNICAL_ARTICLES: dict[int, str] = {
    29: "Security zones and effective isolation; block attacks from inside and outside",
    30: "Anti-virus and anti-malware protection",
    31: "No default passwords or parameters; encrypted transport; monitored remote access",
    33: "Internal security audit system and timely rectification",
    34: "Minimum authority and separation of authority",
    35: "High-security password policy and regular change",
    36: "Secure storage: separate area, encryption, control of media and output interfaces",
    37: "Audit of bulk export, copy and destruction of user information",
    38: "Audit departed staff and disable their accounts in time",
    39: "Secure interconnection with partners and access review",
}

# Articles no machine can check: reports show them as MANUAL rows backed by attestations.
MANUAL_ARTICLES: dict[int, str] = {
    8: "Information security systems, responsibilities and assessment",
    9: "Security clauses in franchise agreements",
    10: "Confidentiality agreements with employees",
    11: "Security training and professional ethics education",
    12: "Complaint handling mechanism for information security",
    13: "Security clauses with entrusting e-commerce operators",
    14: "Security clauses when a third party inputs or transmits user information",
    15: "No disclosure of user information without legal authority or consent",
    16: "Cooperation with public security, state security and procuratorial organs",
    17: "Emergency mechanism and incident reporting",
    18: "Registration and tracking of blank waybills",
    19: "Access control to processing and storage places",
    20: "Delivery process that limits contact with physical information",
    21: "Technical measures against disclosure of physical information in delivery",
    22: "Safety monitoring of physical information processing",
    23: "Centralised, closed management of physical waybill files",
    24: "A designated keeper of physical waybill archives",
    25: "Inquiry registration for physical waybill files",
    26: "Retention and recorded destruction of physical waybill files",
    27: "Regular self-inspection of physical information security",
    32: "Confidentiality agreements with suppliers",
}

ROLES: frozenset[str] = frozenset(
    {
        "zoning",
        "antivirus",
        "default_credentials",
        "encrypted_transport",
        "least_privilege",
        "password_policy",
        "audit_logging",
        "storage_security",
        "account_revocation",
    }
)

# The area modules, in report order. Adding an area means adding it here.
AREA_MODULES: tuple[str, ...] = (
    "parcelguard.scanners.controls.zoning",
    "parcelguard.scanners.controls.antivirus",
    "parcelguard.scanners.controls.credentials",
    "parcelguard.scanners.controls.ssh",
    "parcelguard.scanners.controls.tls",
    "parcelguard.scanners.controls.privilege",
    "parcelguard.scanners.controls.passwords",
    "parcelguard.scanners.controls.storage",
    "parcelguard.scanners.controls.audit",
    "parcelguard.scanners.controls.staff",
    "parcelguard.scanners.controls.partner",
)

_ID = re.compile(r"^PG-([A-Z]{2,5})-\d{3}$")


class CatalogError(ValueError):
    """The catalog is inconsistent; the message names the control at fault."""


@dataclass(frozen=True)
class ControlMeta:
    id: str
    title: str  # states the secure state
    area: str  # the id's area prefix, e.g. "SSH"
    articles: tuple[int, ...]
    severity: Severity
    rationale: str
    evidence: str  # what the control records
    remediation_role: str
    remediation_tag: str  # the control id in lower case; role tasks carry it


@dataclass(frozen=True)
class Control:
    meta: ControlMeta
    check: CheckFn

    @property
    def id(self) -> str:
        return self.meta.id


def control(meta: ControlMeta) -> Callable[[CheckFn], Control]:
    """Decorate a check function so that it becomes a :class:`Control` with ``meta``."""

    def wrap(fn: CheckFn) -> Control:
        return Control(meta, fn)

    return wrap


@dataclass(frozen=True)
class Catalog:
    controls: tuple[Control, ...]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.controls)

    def get(self, control_id: str) -> Control | None:
        return next((c for c in self.controls if c.id == control_id), None)

    def for_article(self, article: int) -> tuple[Control, ...]:
        return tuple(c for c in self.controls if article in c.meta.articles)


def validate_control(ctl: Control, area: str) -> None:
    """Raise :class:`CatalogError` when ``ctl`` does not belong in area ``area``."""
    meta = ctl.meta
    name = meta.id or "<control without id>"
    m = _ID.match(meta.id)
    if m is None:
        raise CatalogError(f"{name}: id must match PG-<AREA>-<NNN>")
    if m.group(1) != area or meta.area != area:
        raise CatalogError(
            f"{name}: id prefix {m.group(1)!r} and area {meta.area!r} must both be "
            f"the module's area {area!r}"
        )
    for label, text in (
        ("title", meta.title),
        ("rationale", meta.rationale),
        ("evidence", meta.evidence),
    ):
        if not text.strip():
            raise CatalogError(f"{name}: {label} is empty")
    if not meta.articles:
        raise CatalogError(f"{name}: names no article")
    stray = [a for a in meta.articles if a not in TECHNICAL_ARTICLES]
    if stray:
        raise CatalogError(f"{name}: article(s) {stray} are not technical articles")
    if not isinstance(meta.severity, Severity):
        raise CatalogError(f"{name}: severity must be a Severity")
    if meta.remediation_role not in ROLES:
        raise CatalogError(f"{name}: unknown remediation role {meta.remediation_role!r}")
    if meta.remediation_tag != meta.id.lower():
        raise CatalogError(f"{name}: remediation tag must be {meta.id.lower()!r}")
    if not callable(ctl.check):
        raise CatalogError(f"{name}: check is not callable")


def validate_catalog(areas: Iterable[tuple[str, Sequence[Control]]]) -> Catalog:
    """Validate (area prefix, controls) groups and return them as one :class:`Catalog`."""
    controls: list[Control] = []
    seen: set[str] = set()
    for area, group in areas:
        for ctl in group:
            validate_control(ctl, area)
            if ctl.id in seen:
                raise CatalogError(f"{ctl.id}: duplicate control id")
            seen.add(ctl.id)
            controls.append(ctl)
    covered = {a for c in controls for a in c.meta.articles}
    missing = sorted(set(TECHNICAL_ARTICLES) - covered)
    if missing:
        raise CatalogError(f"technical article(s) {missing} have no control")
    return Catalog(tuple(controls))


def load_catalog(modules: Sequence[str] = AREA_MODULES) -> Catalog:
    """Import the area modules and return the validated catalog."""
    groups: list[tuple[str, Sequence[Control]]] = []
    for name in modules:
        module = importlib.import_module(name)
        area = getattr(module, "AREA", None)
        controls = getattr(module, "CONTROLS", None)
        if not isinstance(area, str) or not isinstance(controls, tuple):
            raise CatalogError(f"{name}: must define AREA (str) and CONTROLS (tuple)")
        if not all(isinstance(c, Control) for c in controls):
            raise CatalogError(f"{name}: CONTROLS must hold Control objects only")
        groups.append((area, controls))
    return validate_catalog(groups)
