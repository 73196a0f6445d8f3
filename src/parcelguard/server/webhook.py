"""The signed leaver webhook (Standard Webhooks scheme, https://www.standardwebhooks.com).

Request: ``POST /webhook/leaver`` with a JSON body ``{"username": "lihua", "ticket":
"HR-1", "left_at": "2026-11-28T09:00:00+08:00"}`` (``left_at`` optional) and headers

- ``webhook-id``: a unique message id (the idempotency key; a replay is refused),
- ``webhook-timestamp``: Unix seconds, within ``tolerance`` of this server's clock,
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, several
  space-separated signatures allowed during a secret rotation.

The secret is ``whsec_`` + base64 of at least 24 random bytes. The signature is checked
over the raw body, in constant time, before the body is parsed or the id remembered.
(Written with hmac/hashlib: the reference ``standardwebhooks`` package pulls in an HTTP
client and three other libraries for these dozen lines.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from parcelguard.offboard.model import LOGIN_NAME, OffboardError

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
MAX_BODY = 16 * 1024
FIELDS = frozenset({"username", "ticket", "left_at", "type"})


class WebhookRejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Leaver:
    message_id: str
    username: str
    ticket: str
    left_at: datetime | None


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def decode_secret(text: str) -> bytes:
    text = text.strip()
    if not text.startswith(SECRET_PREFIX):
        raise OffboardError(f"a webhook secret starts with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(text[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise OffboardError("the webhook secret is not valid base64") from exc
    if len(key) < 24:
        raise OffboardError("the webhook secret is too short (at least 24 bytes)")
    return key


def load_secret(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OffboardError(f"cannot read webhook secret {path}: {exc}") from exc
    if mode & 0o077:
        raise OffboardError(
            f"webhook secret {path} is readable by others (mode {mode & 0o777:o})",
            f"chmod 600 {path}",
        )
    return decode_secret(text)


def sign(key: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def verify(
    key: bytes,
    headers: dict[str, str],
    body: bytes,
    *,
    tolerance: float = 300,
    now: float | None = None,
) -> Leaver:
    """Check the signature and timestamp, then parse the body; raise WebhookRejected."""
    message_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not message_id or not stamp or not signatures:
        raise WebhookRejected(
            400, "webhook-id, webhook-timestamp and webhook-signature are required"
        )
    if len(message_id) > 200 or not message_id.isprintable():
        raise WebhookRejected(400, "webhook-id must be printable and at most 200 characters")
    if not stamp.isdigit():
        raise WebhookRejected(400, "webhook-timestamp must be Unix seconds")
    expected = sign(key, message_id, stamp, body)
    ok = False
    for candidate in signatures.split():
        ok |= hmac.compare_digest(candidate.encode(), expected.encode())
    if not ok:
        raise WebhookRejected(401, "signature does not match")
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > tolerance:
        raise WebhookRejected(401, f"timestamp outside the {tolerance:.0f} s window")
    return parse_body(message_id, body)


def parse_body(message_id: str, body: bytes) -> Leaver:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookRejected(400, f"body is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise WebhookRejected(400, "body must be a JSON object")
    unknown = sorted(set(doc) - FIELDS)
    if unknown:
        raise WebhookRejected(400, f"unknown field(s): {', '.join(unknown)}")
    if doc.get("type", "employee.left") != "employee.left":
        raise WebhookRejected(400, "type must be employee.left")
    username, ticket = doc.get("username"), doc.get("ticket")
    if not isinstance(username, str) or not LOGIN_NAME.fullmatch(username):
        raise WebhookRejected(400, "username must be a plain login name")
    if not isinstance(ticket, str) or not ticket.strip() or len(ticket) > 200:
        raise WebhookRejected(400, "ticket must be a non-empty string of at most 200 characters")
    left_at = None
    if doc.get("left_at") is not None:
        try:
            left_at = datetime.fromisoformat(str(doc["left_at"]))
        except ValueError as exc:
            raise WebhookRejected(400, "left_at must be an ISO 8601 time") from exc
        if left_at.tzinfo is None:
            left_at = left_at.replace(tzinfo=UTC)
    return Leaver(message_id, username, ticket.strip(), left_at)
