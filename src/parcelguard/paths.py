"""Where parcelguard keeps its state and caches (XDG base directories)."""

from __future__ import annotations

import os
from pathlib import Path


def state_home() -> Path:
    """$XDG_STATE_HOME/parcelguard (default ~/.local/state/parcelguard)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "parcelguard"


def cache_home() -> Path:
    """$XDG_CACHE_HOME/parcelguard (default ~/.cache/parcelguard)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "parcelguard"
