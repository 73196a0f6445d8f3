"""Masking hides personal data and secrets, idempotently."""

from __future__ import annotations

import pytest

from parcelguard.scanners.masking import mask


@pytest.mark.parametrize(
    ("raw", "hidden", "shown"),
    [
        ("收件人 13812345678 深圳", "13812345678", "138****5678"),
        ("tel:+8615912345678", "15912345678", "+86159****5678"),
        ("id 44030519900307123X ok", "44030519900307123X", "4403**********123X"),
        ("id=110105198801011234", "110105198801011234", "1101**********1234"),
        ("password=Sup3rS3cret!", "Sup3rS3cret!", "password=***"),
        ("DB_PASSWORD: 'hunter2'", "hunter2", "DB_PASSWORD: ***"),
        ("api_key = abcdef123456", "abcdef123456", "api_key = ***"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x.y", "eyJhbGci", "Bearer ***"),
        ("requirepass foobared", "foobared", "requirepass ***"),
        ("rocommunity s3cretcomm 198.18.10.0/24", "s3cretcomm", "rocommunity ***"),
        (
            "support:$y$j9T$abcdefghijklmnop$J8JPIQ.8IU6I7MrttS91IJOTcyqu1B.yB5aiKiboSR.:20000",
            "J8JPIQ",
            "$y$[REDACTED]",
        ),
        ("old $6$rounds=5000$salt$hashhashhash", "hashhash", "$6$[REDACTED]"),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
            "-----END OPENSSH PRIVATE KEY-----\nafter",
            "b3BlbnNzaC1rZXktdjEAAAAA",
            "after",
        ),
    ],
)
def test_sensitive_values_are_masked(raw: str, hidden: str, shown: str) -> None:
    masked = mask(raw)
    assert hidden not in masked
    assert shown in masked
    assert mask(masked) == masked  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "passwordauthentication no",
        "password [success=1 default=ignore] pam_unix.so obscure yescrypt",
        "256 SHA256:5c2xN0m8d8mJ4QJq3aWbMm0f0XhY9VwqkQpQjQ2r3uA ansible@mgmt1 (ED25519)",
        "notAfter=Mar 14 08:00:00 2027 GMT",
        "1795830000",
        "password_encryption scram-sha-256",
    ],
)
def test_ordinary_evidence_is_left_alone(text: str) -> None:
    assert mask(text) == text


def test_mask_never_raises() -> None:
    class Weird:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    assert mask(Weird()) == "[REDACTED]"
    assert mask(12345678901) == "12345678901"  # 11 digits but starts with 12: not mobile
    assert mask("\x00" * 10_000 + "13912345678").endswith("139****5678")
