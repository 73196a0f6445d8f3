"""Masking of personal data and secrets in evidence, summaries and reasons.

Everything a control records passes through :func:`mask` before it reaches a result, so a
report never carries a delivery user's phone or ID number (Art. 3), a password, a key or
a password hash. Masking is idempotent: masking masked text changes nothing.
"""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"

_PEM_PRIVATE = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----(?!\[REDACTED\])"
    r".*?(?:-----END \1PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
# crypt(5) prefixes: yescrypt, gost-yescrypt, scrypt, sha512/256crypt, bcrypt, md5crypt, ...
_CRYPT_HASH = re.compile(r"\$(y|gy|7|6|5|2[abxy]?|1|md5|sha1)\$[./A-Za-z0-9$=,]+")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")
# key=value and key: value pairs whose value is a secret.
_SECRET_KV = re.compile(
    r"""(?ix)
    \b((?:[a-z0-9_.-]*[_.-])?(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key
        |access[_-]?key|private[_-]?key|auth[_-]?key|credentials?))
    (\s*[=:]\s*)
    ("[^"]*"|'[^']*'|[^\s,;&]+)
    """
)
# Config keys whose next word is a secret (redis requirepass/masterauth, SNMP communities).
_SECRET_WORD = re.compile(
    r"(?im)^(\s*(?:requirepass|masterauth|rocommunity6?|rwcommunity6?))(\s+)(\S+)"
)
# 18-character resident ID numbers (GB 11643): 17 digits and a digit or X check character.
_RESIDENT_ID = re.compile(r"(?<![0-9A-Za-z])(\d{4})\d{10}(\d{3}[\dXx])(?![0-9A-Za-z])")
# Mainland mobile numbers: 1[3-9] and 9 more digits, optionally prefixed with (+)86.
_MOBILE = re.compile(r"(?<![\d])((?:\+?86[- ]?)?1[3-9]\d)\d{4}(\d{4})(?!\d)")


def mask(value: object) -> str:
    """Return ``value`` as text with personal data and secrets masked; never raises.

    Mobile numbers keep their first three and last four digits (``138****5678``),
    resident ID numbers their first four and last four characters
    (``4403**********123X``); private keys, crypt hashes, bearer tokens and secret
    key-value pairs are replaced by ``[REDACTED]`` or ``***``.
    """
    try:
        text = value if isinstance(value, str) else str(value)
        text = _PEM_PRIVATE.sub(
            lambda m: f"-----BEGIN {m.group(1)}PRIVATE KEY-----{REDACTED}", text
        )
        text = _CRYPT_HASH.sub(lambda m: f"${m.group(1)}${REDACTED}", text)
        text = _BEARER.sub(lambda m: f"{m.group(1)} ***", text)
        text = _SECRET_KV.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
        text = _SECRET_WORD.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
        text = _RESIDENT_ID.sub(lambda m: f"{m.group(1)}{'*' * 10}{m.group(2)}", text)
        return _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)
    except Exception:  # masking must never break a report; hide what could not be masked
        return REDACTED
