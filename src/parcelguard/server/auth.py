"""Bearer tokens: random, shown once, stored as SHA-256, compared in constant time.

A token has 256 bits of entropy, so a plain SHA-256 is the right store (a slow password
hash protects guessable secrets; it adds nothing here but latency on every request).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

PREFIX = "pgt_"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer_of(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def match_token(token: str | None, digests: Mapping[str, str]) -> str | None:
    """The name of the stored token ``token`` is, or None. Every digest is compared, in
    constant time, so timing says nothing about which one nearly matched."""
    if not token or len(token) > 512:
        return None
    digest = token_digest(token)
    found = None
    for stored, name in digests.items():
        if hmac.compare_digest(stored, digest):
            found = name
    return found
