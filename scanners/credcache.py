"""A controller-side cache for the default-password check of shadow hashes.

Checking a hash against the candidate passwords costs one slow hash per candidate
(yescrypt: ~11 ms each on Debian 12) on every scan of every host. The hash itself never
leaves the host: the host reports a keyed digest (HMAC-SHA256 of ``name:hash`` under this
cache's key) with the verdict, and on the next scan the controller hands the known digests
back, so an unchanged hash is not checked again. A changed password or candidate list
gives new digests, and the check runs afresh.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from parcelguard.paths import state_home

MAX_PER_HOST = 200


def default_path() -> Path:
    return state_home() / "credential-cache.json"


class CredentialCache:
    """Known (digest, verdict) pairs per host, kept in one 0600 JSON file."""

    def __init__(self, path: Path, candidates: Iterable[str]) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, str]] = {}
        master = b""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            master = bytes.fromhex(str(data["key"]))
            self._entries = {
                str(h): {str(d): str(m) for d, m in dict(e).items()}
                for h, e in dict(data["hosts"]).items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self._entries = {}  # missing or unreadable: start afresh, never fail a scan
        self._master = master if len(master) == 32 else secrets.token_bytes(32)
        # The key depends on the candidate list: a new list invalidates every verdict.
        digest = hashlib.sha256("\n".join(candidates).encode()).digest()
        self.key = hmac.new(self._master, digest, hashlib.sha256).hexdigest()

    def known(self, host: str) -> tuple[tuple[str, str], ...]:
        with self._lock:
            return tuple(sorted(self._entries.get(host, {}).items()))

    def update(self, host: str, pairs: Iterable[tuple[str, str]]) -> None:
        """Replace what is known for host with what its latest scan reported."""
        fresh = dict(list(pairs)[:MAX_PER_HOST])
        with self._lock:
            if fresh:
                self._entries[host] = fresh
            else:
                self._entries.pop(host, None)

    def save(self) -> None:
        """Write the cache atomically, readable by its owner only."""
        with self._lock:
            data = {"key": self._master.hex(), "hosts": self._entries}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".credential-cache.", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out)
            Path(tmp).replace(self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
