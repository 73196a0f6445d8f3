"""Small helpers shared by the area modules."""

from __future__ import annotations

from collections.abc import Iterable

from parcelguard.scanners.masking import mask
from parcelguard.scanners.model import Evidence


def ev(label: str, value: object) -> Evidence:
    """Evidence with its value masked."""
    return Evidence(label, mask(value))


def names(items: Iterable[str], limit: int = 10) -> str:
    """A sorted, de-duplicated, bounded list for summaries: ``a, b, c (+4 more)``."""
    unique = sorted(set(items))
    shown = ", ".join(unique[:limit])
    return shown + (f" (+{len(unique) - limit} more)" if len(unique) > limit else "")
