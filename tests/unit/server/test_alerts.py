"""Alerts: once per new condition, closed when fixed, raised again when it comes back."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from parcelguard.scanners.model import ScanResult, Severity, Status
from parcelguard.server import webhook
from parcelguard.server.alerts import (
    Alert,
    AlertStore,
    WebhookChannel,
    cleared,
    scan_conditions,
)

SCAN = Path(__file__).parents[2] / "fixtures" / "scans" / "lab-neglected.json"


def scan() -> ScanResult:
    return ScanResult.from_json(SCAN.read_text(encoding="utf-8"))


def with_status(base: ScanResult, host: str, control: str, status: Status, sid: str) -> ScanResult:
    hosts = []
    for h in base.hosts:
        results = tuple(
            dataclasses.replace(r, status=status)
            if h.host == host and r.control_id == control
            else r
            for r in h.results
        )
        hosts.append(dataclasses.replace(h, results=results))
    return dataclasses.replace(base, hosts=tuple(hosts), scan_id=sid)


def unreachable(base: ScanResult, host: str, sid: str) -> ScanResult:
    hosts = tuple(
        dataclasses.replace(h, reachable=False, error="timed out", results=())
        if h.host == host
        else h
        for h in base.hosts
    )
    return dataclasses.replace(base, hosts=hosts, scan_id=sid)


def a_passing(base: ScanResult) -> tuple[str, str]:
    for h in base.hosts:
        for r in h.results:
            if r.status is Status.PASS:
                return h.host, r.control_id
    raise AssertionError("the recorded scan has no PASS")


def test_the_first_scan_alerts_on_severe_failures_only() -> None:
    first = scan()
    found = scan_conditions(None, first, Severity.CRITICAL)
    assert found and {c.kind for c in found} == {"new_fail"}
    assert all(c.severity == "critical" for c in found)


def test_nothing_new_means_no_condition() -> None:
    assert scan_conditions(scan(), scan(), Severity.LOW) == []


def test_a_fixed_control_that_fails_again_is_a_regression() -> None:
    base = scan()
    host, control = a_passing(base)
    broken = with_status(base, host, control, Status.FAIL, "s2")
    found = scan_conditions(base, broken, Severity.CRITICAL)
    assert [(c.kind, c.host, c.control_id) for c in found] == [("regression", host, control)]


def test_a_host_that_stops_answering_is_a_condition() -> None:
    base = scan()
    host = base.hosts[0].host
    found = scan_conditions(base, unreachable(base, host, "s2"), Severity.CRITICAL)
    assert [(c.kind, c.host) for c in found] == [("unreachable", host)]


def test_each_condition_alerts_once_until_it_clears(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db", ["webhook"])
    base = scan()
    host, control = a_passing(base)
    broken = with_status(base, host, control, Status.FAIL, "s2")
    first = store.update(
        "nightly", "s2", scan_conditions(base, broken, Severity.CRITICAL), cleared(broken)
    )
    assert len(first) == 1 and len(store.deliveries()) == 1
    # The next scan still finds it failing: no new alert, no new delivery.
    again = store.update(
        "nightly", "s3", scan_conditions(broken, broken, Severity.CRITICAL), cleared(broken)
    )
    assert again == [] and len(store.deliveries()) == 1
    # Fixed: the alert closes. Broken again later: a new alert.
    store.update("nightly", "s4", scan_conditions(broken, base, Severity.CRITICAL), cleared(base))
    assert store.alerts(open_only=True) == [] or all(
        a.control_id != control for a in store.alerts(open_only=True)
    )
    back = store.update(
        "nightly", "s5", scan_conditions(base, broken, Severity.CRITICAL), cleared(broken)
    )
    assert len(back) == 1 and back[0].id != first[0].id


class Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    status = 204

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(Receiver.status)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received = []
    Receiver.status = 204
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()


def regression(store: AlertStore) -> tuple[ScanResult, str, str, Alert]:
    """A passing control of the recorded scan FAILs in scan s2: its one alert, raised.
    Returns the broken scan, the host, the control and the alert."""
    base = scan()
    host, control = a_passing(base)
    broken = with_status(base, host, control, Status.FAIL, "s2")
    (alert,) = store.update(
        "n", "s2", scan_conditions(base, broken, Severity.CRITICAL), cleared(broken)
    )
    return broken, host, control, alert


def test_webhook_alerts_are_signed_and_failures_are_retried(tmp_path: Path, receiver: str) -> None:
    key = webhook.decode_secret(webhook.new_secret())
    channel = WebhookChannel(receiver, key)
    store = AlertStore(tmp_path / "a.db", ["webhook"])
    _, _, control, alert = regression(store)
    Receiver.status = 503
    with pytest.raises(OSError, match="503"):
        channel.send(alert, "https://dash.example/scans/s2")
    Receiver.status = 204
    channel.send(alert, "https://dash.example/scans/s2")
    headers, body = Receiver.received[-1]
    # The receiver can check it with the shared secret, as our own webhook does.
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    doc = json.loads(body)
    assert doc["alert"]["kind"] == "regression" and doc["alert"]["control"] == control
    assert doc["alert"]["evidence"] == "https://dash.example/scans/s2"


def test_a_failed_delivery_waits_before_the_next_attempt(tmp_path: Path) -> None:
    import time

    store = AlertStore(tmp_path / "a.db", ["webhook"])
    regression(store)
    ((delivery_id, _, _),) = store.due(time.time())
    store.failed(delivery_id, "connection refused")
    assert store.due(time.time()) == []
    assert store.due(time.time() + 31)  # 30 s backoff, then again
    store.delivered(delivery_id)
    assert store.due(time.time() + 10_000) == []


def test_the_first_scan_is_a_baseline_not_a_flood(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db", ["webhook"])
    first = scan()
    raised = store.update(
        "nightly", "s1", scan_conditions(None, first, Severity.HIGH), cleared(first), deliver=False
    )
    assert raised  # recorded as open...
    assert {d["state"] for d in store.deliveries()} == {"baseline"}  # ...and sent nowhere
    import time

    assert store.due(time.time() + 10_000) == []


def test_an_unanswered_host_or_an_error_keeps_alerts_open(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db", ["webhook"])
    broken, host, control, alert = regression(store)
    down = unreachable(broken, host, "s3")
    store.update("n", "s3", scan_conditions(broken, down, Severity.CRITICAL), cleared(down))
    errored = with_status(broken, host, control, Status.ERROR, "s4")
    store.update("n", "s4", scan_conditions(down, errored, Severity.CRITICAL), cleared(errored))
    assert alert.id in {a.id for a in store.alerts(open_only=True)}
    # Back and still failing: the same alert, nothing new to send.
    again = store.update(
        "n", "s5", scan_conditions(errored, broken, Severity.CRITICAL), cleared(broken)
    )
    assert again == []


def test_redirects_are_failures_and_retries_keep_their_id(tmp_path: Path, receiver: str) -> None:
    key = webhook.decode_secret(webhook.new_secret())
    store = AlertStore(tmp_path / "a.db", ["webhook"])
    _, _, _, alert = regression(store)
    Receiver.status = 302
    with pytest.raises(OSError, match="302"):
        WebhookChannel(receiver, key).send(alert, "x")
    Receiver.status = 204
    WebhookChannel(receiver, key).send(alert, "x")
    ids = [h["webhook-id"] for h, _ in Receiver.received]
    assert len(ids) == 2 and ids[0] == ids[1] == f"parcelguard-alert-{alert.id}"
