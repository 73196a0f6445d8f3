"""The signed webhook: only a correctly signed, fresh, well-formed message becomes an event."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from parcelguard.offboard.model import OffboardError
from parcelguard.server import webhook

SECRET = webhook.new_secret()
KEY = webhook.decode_secret(SECRET)
NOW = 1_800_000_000


def signed(
    body: dict[str, object] | bytes, *, key: bytes = KEY, mid: str = "msg-1", stamp: int = NOW
) -> tuple[dict[str, str], bytes]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {
        "webhook-id": mid,
        "webhook-timestamp": str(stamp),
        "webhook-signature": webhook.sign(key, mid, str(stamp), raw),
    }
    return headers, raw


def test_a_signed_leaver_is_accepted() -> None:
    headers, raw = signed(
        {"username": "lihua", "ticket": "HR-1", "left_at": "2026-11-28T09:00:00+08:00"}
    )
    leaver = webhook.verify(KEY, headers, raw, now=NOW + 10)
    assert (leaver.username, leaver.ticket, leaver.message_id) == ("lihua", "HR-1", "msg-1")
    assert leaver.left_at is not None and leaver.left_at.utcoffset() is not None


def test_one_of_several_signatures_may_match_during_a_secret_rotation() -> None:
    headers, raw = signed({"username": "lihua", "ticket": "HR-1"})
    other = webhook.sign(webhook.decode_secret(webhook.new_secret()), "msg-1", str(NOW), raw)
    headers["webhook-signature"] = f"{other} {headers['webhook-signature']}"
    assert webhook.verify(KEY, headers, raw, now=NOW).username == "lihua"


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        (lambda h, b: ({**h, "webhook-signature": "v1,AAAA"}, b), 401, "signature"),
        (lambda h, b: (h, b.replace(b"lihua", b"wangf")), 401, "signature"),  # body altered
        (lambda h, b: ({**h, "webhook-id": "msg-2"}, b), 401, "signature"),  # id altered
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-id"}, b), 400, "required"),
        (lambda h, b: ({**h, "webhook-timestamp": "soon"}, b), 400, "Unix seconds"),
    ],
)
def test_tampered_or_incomplete_requests_are_refused(change, status: int, message: str) -> None:  # type: ignore[no-untyped-def]
    headers, raw = signed({"username": "lihua", "ticket": "HR-1"})
    headers, raw = change(headers, raw)
    with pytest.raises(webhook.WebhookRejected) as info:
        webhook.verify(KEY, headers, raw, now=NOW)
    assert info.value.status == status and message in info.value.message


def test_a_wrong_secret_is_refused() -> None:
    headers, raw = signed(
        {"username": "lihua", "ticket": "HR-1"}, key=webhook.decode_secret(webhook.new_secret())
    )
    with pytest.raises(webhook.WebhookRejected, match="signature"):
        webhook.verify(KEY, headers, raw, now=NOW)


@pytest.mark.parametrize("age", [-301, 301, 86400])
def test_stale_or_future_timestamps_are_refused(age: int) -> None:
    headers, raw = signed({"username": "lihua", "ticket": "HR-1"})
    with pytest.raises(webhook.WebhookRejected, match="window"):
        webhook.verify(KEY, headers, raw, now=NOW + age)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        ({"username": "lihua"}, "ticket"),
        ({"username": "Li Hua", "ticket": "HR-1"}, "plain login name"),
        ({"username": "root;id", "ticket": "HR-1"}, "plain login name"),
        ({"username": "lihua", "ticket": "HR-1", "shell": "/bin/sh"}, "unknown field"),
        ({"username": "lihua", "ticket": "HR-1", "type": "employee.joined"}, "employee.left"),
        ({"username": "lihua", "ticket": "HR-1", "left_at": "yesterday"}, "ISO 8601"),
    ],
)
def test_malformed_bodies_are_refused_even_when_signed(body: object, message: str) -> None:
    headers, raw = signed(body if isinstance(body, bytes) else dict(body))  # type: ignore[call-overload]
    with pytest.raises(webhook.WebhookRejected, match=message) as info:
        webhook.verify(KEY, headers, raw, now=NOW)
    assert info.value.status == 400


def test_secrets_must_be_well_formed_and_private(tmp_path: Path) -> None:
    for bad in ("secret", "whsec_!!!", "whsec_" + "QUJD"):
        with pytest.raises(OffboardError):
            webhook.decode_secret(bad)
    path = tmp_path / "whsec"
    path.write_text(SECRET + "\n", encoding="utf-8")
    os.chmod(path, 0o644)
    with pytest.raises(OffboardError, match="readable by others"):
        webhook.load_secret(path)
    os.chmod(path, 0o600)
    assert webhook.load_secret(path) == KEY
