"""`parcelguard serve` refuses a doubtful configuration at start-up, with one clear line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from parcelguard.server.config import ConfigError, load_config, parse_config
from parcelguard.server.webhook import new_secret

NO_DASHBOARD = {"dashboard": {"enabled": False}}


@pytest.fixture
def inventory(tmp_path: Path) -> str:
    path = tmp_path / "inventory.yml"
    path.write_text("all:\n  hosts:\n    web1: {ansible_host: 192.0.2.10}\n", encoding="utf-8")
    return str(path)


def test_a_minimal_configuration_listens_on_loopback(inventory: str, tmp_path: Path) -> None:
    config = parse_config(
        {**NO_DASHBOARD, "inventory": inventory, "database": str(tmp_path / "o.db")}
    )
    assert (config.host, config.port, config.webhook_key) == ("127.0.0.1", 8750, None)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "inventory is required"),
        ({"inventory": "/nonexistent.yml"}, "does not exist"),
        ({"inventory": "INV", "listen": "8750"}, "HOST:PORT"),
        ({"inventory": "INV", "listen": "127.0.0.1:99999"}, "HOST:PORT"),
        ({"inventory": "INV", "listen": "0.0.0.0:8750"}, "without TLS"),
        ({"inventory": "INV", "tls": {"certificate": "/x"}}, "both certificate and key"),
        ({"inventory": "INV", "webhook": {"tolerance_seconds": 60}}, "secret_file is required"),
        ({"inventory": "INV", "webhook": {"secret_file": "/nonexistent"}}, "does not exist"),
        ({"inventory": "INV", "offboarding": {"forks": 0}}, "forks must be a number"),
        ({"inventory": "INV", "offboarding": {"protected": "ansible"}}, "list of login names"),
        ({"inventory": "INV", "offboarding": {"retries": 3}}, "unknown key"),
        ({"inventory": "INV", "schedule": "daily"}, "unknown key"),
        (["inventory"], "must be a mapping"),
    ],
)
def test_bad_configurations_are_refused(inventory: str, data: Any, message: str) -> None:
    if isinstance(data, dict):
        data = {k: (inventory if v == "INV" else v) for k, v in data.items()}
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_a_world_readable_webhook_secret_is_refused(inventory: str, tmp_path: Path) -> None:
    secret = tmp_path / "whsec"
    secret.write_text(new_secret(), encoding="utf-8")
    secret.chmod(0o644)
    with pytest.raises(Exception, match="readable by others"):
        parse_config(
            {**NO_DASHBOARD, "inventory": inventory, "webhook": {"secret_file": str(secret)}}
        )
    secret.chmod(0o600)
    config = parse_config(
        {**NO_DASHBOARD, "inventory": inventory, "webhook": {"secret_file": str(secret)}}
    )
    assert config.webhook_key is not None


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "serve.yml"
    path.write_text("inventory: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line"):
        load_config(path)


def test_schedules_and_alerts_are_read(inventory: str, tmp_path: Path) -> None:
    secret = tmp_path / "alerts.secret"
    secret.write_text(new_secret(), encoding="utf-8")
    secret.chmod(0o600)
    config = parse_config(
        {
            **NO_DASHBOARD,
            "inventory": inventory,
            "schedules": [{"name": "nightly", "cron": "0 2 * * *"}],
            "alerts": {
                "min_severity": "critical",
                "webhook": {"url": "https://siem.example/hooks/pg", "secret_file": str(secret)},
                "email": {"host": "smtp.example", "from": "pg@example", "to": ["sec@example"]},
            },
        }
    )
    assert [s.name for s in config.schedules] == ["nightly"]
    assert [c.name for c in config.alerts.channels] == ["webhook", "email"]


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        ({"min_severity": "urgent"}, "min_severity"),
        ({"webhook": {"url": "http://siem.example/x", "secret_file": "/x"}}, "https://"),
        ({"webhook": {"url": "https://siem.example/x"}}, "secret_file is required"),
        ({"webhook": {"url": "http://127.evil.example/x", "secret_file": "/x"}}, "https://"),
        ({"webhook": {"url": "http://localhost.evil.example/", "secret_file": "/x"}}, "https://"),
        ({"webhook": {"url": "http://localhost@evil.example/", "secret_file": "/x"}}, "https://"),
        ({"webhook": {"url": "https://u:p@siem.example/", "secret_file": "/x"}}, "https://"),
        (
            {"email": {"host": "smtp.example", "from": "a@b", "to": ["c@d"], "username": "pg"}},
            "needs password_file",
        ),
        ({"email": {"host": "smtp.example", "from": "a@b"}}, "email.to is required"),
        ({"email": {"host": "smtp.example", "from": "a@b", "to": "sec"}}, "list of addresses"),
        ({"pager": {}}, "unknown key"),
    ],
)
def test_bad_alert_settings_are_refused(
    inventory: str, alerts: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({**NO_DASHBOARD, "inventory": inventory, "alerts": alerts})


def test_an_invalid_schedule_stops_the_service_at_start_up(inventory: str) -> None:
    with pytest.raises(ConfigError, match="invalid cron expression"):
        parse_config(
            {
                **NO_DASHBOARD,
                "inventory": inventory,
                "schedules": [{"name": "x", "cron": "0 25 * * *"}],
            }
        )
