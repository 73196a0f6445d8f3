"""A real service (its stores in a temporary folder) with two stored lab scans, the
second with one regression on web1, and one account of each role."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from parcelguard.dashboard.accounts import Role
from parcelguard.dashboard.web import create_app
from parcelguard.scanners.model import ScanResult, Status
from parcelguard.scanners.store import ScanStore
from parcelguard.server.app import Service
from parcelguard.server.config import parse_config

SCAN = Path(__file__).parents[2] / "fixtures" / "scans" / "lab-neglected.json"
ADMIN_SECRET = "correct horse battery staple 42"


def passing(base: ScanResult, host: str) -> str:
    h = next(h for h in base.hosts if h.host == host)
    return next(r.control_id for r in h.results if r.status is Status.PASS)


def regress(base: ScanResult, host: str, control: str, sid: str) -> ScanResult:
    hosts = []
    for h in base.hosts:
        results = tuple(
            dataclasses.replace(r, status=Status.FAIL, summary="regressed in the test")
            if h.host == host and r.control_id == control
            else r
            for r in h.results
        )
        hosts.append(dataclasses.replace(h, results=results))
    return dataclasses.replace(
        base,
        hosts=tuple(hosts),
        scan_id=sid,
        started=base.started + timedelta(hours=1),
        finished=base.finished + timedelta(hours=1),
    )


@dataclasses.dataclass
class Dash:
    service: Service
    app: Flask
    passwords: dict[str, str]
    first: ScanResult
    second: ScanResult
    regressed: str  # the control that regressed on web1

    def client(self, role: str | None = None) -> FlaskClient:
        client = self.app.test_client()
        if role is not None:
            assert login(client, role, self.passwords[role]).status_code == 302
        return client


def login(client: FlaskClient, name: str, password: str) -> TestResponse:
    page = client.get("/login").get_data(as_text=True)
    nonce = re.search(r'name="nonce" value="([^"]+)"', page)
    assert nonce
    return client.post(
        "/login", data={"nonce": nonce.group(1), "username": name, "password": password}
    )


def csrf_of(client: FlaskClient, path: str = "/") -> str:
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def make_service(tmp_path: Path, admin_secret: str = ADMIN_SECRET) -> Service:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  children:\n    web:\n      hosts:\n"
        "        web1: {ansible_host: 192.0.2.10}\n        web2: {ansible_host: 192.0.2.11}\n"
    )
    roster = tmp_path / "staff.csv"
    roster.write_text("login,name\nwangfang,Wang Fang\n")
    secret = tmp_path / "admin.secret"
    secret.write_text(admin_secret + "\n")
    os.chmod(secret, 0o600)
    config = parse_config(
        {
            "inventory": str(inventory),
            "database": str(tmp_path / "service.db"),
            "scans_database": str(tmp_path / "scans.db"),
            "schedules": [
                {"name": "web", "every": "1d", "group": "web", "roster": str(roster)},
                {"name": "roster", "every": "1h", "action": "reconcile", "roster": str(roster)},
            ],
            "dashboard": {"admin_password_file": str(secret)},
        }
    )
    return Service(config, progress=lambda _m: None)


@pytest.fixture
def dash(tmp_path: Path) -> Iterator[Dash]:
    service = make_service(tmp_path)
    first = ScanResult.from_json(SCAN.read_text(encoding="utf-8"))
    control = passing(first, "web1")
    second = regress(first, "web1", control, "scan-two")
    store = ScanStore(tmp_path / "scans.db")
    store.save(first)
    store.save(second)
    passwords = {"admin": ADMIN_SECRET}
    for role in (Role.AUDITOR, Role.OPERATOR):
        passwords[role.value] = service.accounts.create(role.value, role, "test")
    yield Dash(service, create_app(service), passwords, first, second, control)
