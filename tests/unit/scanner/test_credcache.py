from __future__ import annotations

import json
import stat
from pathlib import Path

from parcelguard.scanners.credcache import CredentialCache

D1, D2 = "1" * 64, "2" * 64


def test_round_trip_keeps_key_and_verdicts_private(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    cache = CredentialCache(path, ["a", "b"])
    cache.update("web1", [(D1, "u"), (D2, "-")])
    cache.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = CredentialCache(path, ["a", "b"])
    assert again.key == cache.key
    assert again.known("web1") == ((D1, "u"), (D2, "-"))
    assert again.known("db1") == ()


def test_a_new_candidate_list_changes_the_key(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    CredentialCache(path, ["a"]).save()
    assert CredentialCache(path, ["a"]).key != CredentialCache(path, ["a", "b"]).key


def test_a_corrupt_cache_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    path.write_text("{not json")
    cache = CredentialCache(path, ["a"])
    assert cache.known("web1") == ()
    assert len(cache.key) == 64
    cache.save()
    assert json.loads(path.read_text())["hosts"] == {}


def test_update_replaces_and_empty_forgets(tmp_path: Path) -> None:
    cache = CredentialCache(tmp_path / "c.json", ["a"])
    cache.update("h", [(D1, "u")])
    cache.update("h", [(D2, "3")])
    assert cache.known("h") == ((D2, "3"),)
    cache.update("h", [])
    assert cache.known("h") == ()
