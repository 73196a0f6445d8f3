"""SCIM 2.0 under `parcelguard serve`: replayed Okta and Entra ID requests, bad input, and
an independent conformance checker (scim2-tester through scim2-client).

No worker runs here: a deactivation must become a queued job, and nothing else. The
inventory names TEST-NET addresses that are never contacted.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parcelguard.offboard.model import JobState, Source
from parcelguard.server import webhook
from parcelguard.server.app import Service
from parcelguard.server.auth import new_token, token_digest
from parcelguard.server.config import parse_config

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
INVENTORY = """\
all:
  hosts:
    web1: {ansible_host: 192.0.2.10}
    db1: {ansible_host: 192.0.2.11}
"""


class Client:
    def __init__(self, service: Service, token: str) -> None:
        self.service = service
        self.token = token

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = "default",
        raw: bytes | None = None,
        query: str = "",
        content_type: str = "application/scim+json",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        environ = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "8750",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": content_type,
            "CONTENT_LENGTH": str(len(data)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(data),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in (headers or {}).items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        if token is not None:
            environ["HTTP_AUTHORIZATION"] = f"Bearer {self.token if token == 'default' else token}"
        status: list[str] = []
        chunks = self.service(environ, lambda s, _h, _e=None: status.append(s))  # type: ignore[arg-type]
        text = b"".join(chunks)
        return int(status[0].split()[0]), (json.loads(text) if text else None)

    def create(self, user_name: str, active: bool = True, **extra: Any) -> str:
        code, doc = self.call(
            "POST",
            "/scim/v2/Users",
            {"schemas": [USER], "userName": user_name, "active": active, **extra},
        )
        assert code == 201, doc
        return str(doc["id"])

    def jobs(self) -> list[Any]:
        return self.service.store.jobs()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY, encoding="utf-8")
    secret = tmp_path / "whsec"
    secret.write_text(webhook.new_secret(), encoding="utf-8")
    secret.chmod(0o600)
    config = parse_config(
        {
            "webhook": {"secret_file": str(secret)},
            "inventory": str(inventory),
            "database": str(tmp_path / "off.db"),
            "offboarding": {"protected": ["deploy"]},
            "scim": {"domains": ["corp.example"]},
            "dashboard": {"enabled": False},
        }
    )
    service = Service(config, progress=lambda _m: None)
    token = new_token()
    service.store.add_token("okta", token_digest(token))
    yield Client(service, token)


# -- what Okta sends ------------------------------------------------------------------


def test_okta_connection_test_pages_with_integers_and_a_stable_order(client: Client) -> None:
    ids = [client.create(f"user{i}@corp.example") for i in range(3)]
    code, doc = client.call("GET", "/scim/v2/Users", query="startIndex=1&count=2")
    assert code == 200
    assert (doc["totalResults"], doc["startIndex"], doc["itemsPerPage"]) == (3, 1, 2)
    first = [r["id"] for r in doc["Resources"]]
    _, page2 = client.call("GET", "/scim/v2/Users", query="startIndex=3&count=2")
    assert len(first) == 2 and len(page2["Resources"]) == 1
    assert sorted([*first, page2["Resources"][0]["id"]]) == sorted(ids)
    _, again = client.call("GET", "/scim/v2/Users", query="startIndex=1&count=2")
    assert [r["id"] for r in again["Resources"]] == first


def test_okta_pathless_replace_deactivates_and_queues_one_job(client: Client) -> None:
    uid = client.create("lihua@corp.example")
    body = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
    code, _ = client.call("PATCH", f"/scim/v2/Users/{uid}", body)
    assert code in (200, 204)
    jobs = client.jobs()
    assert len(jobs) == 1
    job = jobs[0]
    assert (job.username, job.source, job.state) == ("lihua", Source.SCIM, JobState.QUEUED)
    assert job.actor == "scim token okta" and [h.host for h in job.hosts] == ["db1", "web1"]
    # Okta retries the same PATCH: nothing new starts.
    client.call("PATCH", f"/scim/v2/Users/{uid}", body)
    assert len(client.jobs()) == 1


def test_okta_put_without_active_changes_nothing(client: Client) -> None:
    uid = client.create("lihua@corp.example")
    put = {"schemas": [USER], "userName": "lihua@corp.example", "displayName": "Li Hua"}
    code, doc = client.call("PUT", f"/scim/v2/Users/{uid}", put)
    assert code == 200 and doc["active"] is True and client.jobs() == []
    # ...and a full PUT that does carry active: false deactivates.
    code, doc = client.call("PUT", f"/scim/v2/Users/{uid}", {**put, "active": False})
    assert code == 200 and doc["active"] is False
    assert [j.username for j in client.jobs()] == ["lihua"]
    # A PUT without active on a deactivated user does not reactivate them either.
    _, doc = client.call("PUT", f"/scim/v2/Users/{uid}", put)
    assert doc["active"] is False


# -- what Microsoft Entra ID sends --------------------------------------------------------


def test_entra_capitalised_replace_with_string_false_deactivates(client: Client) -> None:
    uid = client.create("zhaolei@corp.example")
    body = {
        "schemas": [PATCH],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
    }
    code, _ = client.call("PATCH", f"/scim/v2/Users/{uid}", body)
    assert code in (200, 204)
    assert [j.username for j in client.jobs()] == ["zhaolei"]


def test_entra_connection_test_with_a_random_guid_gets_an_empty_list(client: Client) -> None:
    client.create("lihua@corp.example")
    code, doc = client.call(
        "GET", "/scim/v2/Users", query='filter=userName eq "3f2b7c1e-8d4a-4b8e-9f4e-2a1b0c9d8e7f"'
    )
    assert code == 200 and doc["totalResults"] == 0 and doc["Resources"] == []


def test_deactivated_users_stay_listable_and_filterable(client: Client) -> None:
    uid = client.create("lihua@corp.example")
    client.create("wangfang@corp.example")
    body = {
        "schemas": [PATCH],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
    }
    client.call("PATCH", f"/scim/v2/Users/{uid}", body)
    _, doc = client.call("GET", "/scim/v2/Users", query='filter=userName eq "lihua@corp.example"')
    assert doc["totalResults"] == 1 and doc["Resources"][0]["active"] is False
    _, doc = client.call("GET", "/scim/v2/Users", query="filter=active eq false")
    assert [r["userName"] for r in doc["Resources"]] == ["lihua@corp.example"]
    code, doc = client.call("GET", f"/scim/v2/Users/{uid}", query="attributes=userName")
    assert code == 200 and doc["userName"] == "lihua@corp.example" and "active" not in doc


def test_reactivation_restores_nothing_and_is_recorded(client: Client) -> None:
    uid = client.create("lihua@corp.example")
    off = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
    on = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": True}}]}
    client.call("PATCH", f"/scim/v2/Users/{uid}", off)
    client.call("PATCH", f"/scim/v2/Users/{uid}", on)
    assert len(client.jobs()) == 1  # no job to "restore" anything
    kinds = [e.kind for e in client.service.store.trail()]
    assert "scim_reactivated" in kinds


def test_delete_starts_revocation_and_the_user_is_gone(client: Client) -> None:
    uid = client.create("lihua@corp.example")
    code, _ = client.call("DELETE", f"/scim/v2/Users/{uid}")
    assert code == 204 and [j.username for j in client.jobs()] == ["lihua"]
    code, _ = client.call("GET", f"/scim/v2/Users/{uid}")
    assert code == 404


def test_users_survive_a_restart(client: Client, tmp_path: Path) -> None:
    uid = client.create("lihua@corp.example")
    again = Service(client.service.config, progress=lambda _m: None)
    code, doc = Client(again, client.token).call("GET", f"/scim/v2/Users/{uid}")
    assert code == 200 and doc["userName"] == "lihua@corp.example"


# -- bad input: clear errors, nothing revoked ------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong", "pgt_" + "x" * 43, ""])
def test_missing_or_wrong_tokens_are_refused(client: Client, token: str | None) -> None:
    code, doc = client.call("GET", "/scim/v2/Users", token=token)
    assert code == 401 and "bearer token" in doc["detail"]


def test_a_wrong_token_cannot_deactivate(client: Client) -> None:
    uid = client.create("lihua@corp.example")
    body = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
    code, _ = client.call("PATCH", f"/scim/v2/Users/{uid}", body, token="wrong")
    assert code == 401 and client.jobs() == []


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}',
        b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": '
        b'[{"op": "replace", "path": "active", "value": "maybe"}]}',
        b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": '
        b'[{"op": "explode", "path": "active", "value": false}]}',
        b"[]",
    ],
)
def test_malformed_patch_bodies_are_refused_and_revoke_nothing(client: Client, raw: bytes) -> None:
    uid = client.create("lihua@corp.example")
    code, doc = client.call("PATCH", f"/scim/v2/Users/{uid}", raw=raw)
    assert code == 400, doc
    assert doc["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert client.jobs() == []
    _, user = client.call("GET", f"/scim/v2/Users/{uid}")
    assert user["active"] is True


def test_an_unknown_user_is_404_and_revokes_nothing(client: Client) -> None:
    body = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
    code, _ = client.call("PATCH", "/scim/v2/Users/does-not-exist", body)
    assert code == 404 and client.jobs() == []


def test_a_user_name_that_maps_to_no_login_is_recorded_not_revoked(client: Client) -> None:
    uid = client.create("Li Hua (contractor)@corp.example")
    body = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
    client.call("PATCH", f"/scim/v2/Users/{uid}", body)
    assert client.jobs() == []
    assert "scim_unmapped" in [e.kind for e in client.service.store.trail()]


def test_a_protected_account_is_never_revoked_and_the_idp_is_told(client: Client) -> None:
    uid = client.create("deploy@corp.example")
    body = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
    code, doc = client.call("PATCH", f"/scim/v2/Users/{uid}", body)
    assert code == 400 and "protected account" in doc["detail"] and client.jobs() == []
    _, user = client.call("GET", f"/scim/v2/Users/{uid}")
    assert user["active"] is True  # nothing stored: the change was refused whole


def test_only_configured_domains_map_to_logins(client: Client) -> None:
    uid = client.create("lihua@vendor.example")  # a contractor with the employee's name
    body = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
    client.call("PATCH", f"/scim/v2/Users/{uid}", body)
    assert client.jobs() == []
    assert "scim_unmapped" in [e.kind for e in client.service.store.trail()]


def test_two_active_users_cannot_stand_for_one_login(client: Client) -> None:
    client.create("lihua@corp.example")
    code, doc = client.call(
        "POST",
        "/scim/v2/Users",
        {"schemas": [USER], "userName": "LiHua@CORP.example", "active": True},
    )
    assert code == 409 and "lihua" in doc["detail"]


def test_passwords_are_never_stored(client: Client) -> None:
    client.create("lihua@corp.example", password="Sup3r-secret-sync")
    stored = b"".join(p.read_bytes() for p in client.service.store.path.parent.glob("off.db*"))
    assert b"Sup3r-secret-sync" not in stored
    _, listed = client.call("GET", "/scim/v2/Users")
    assert "password" not in json.dumps(listed)


def test_an_oversized_body_is_refused_before_parsing(client: Client) -> None:
    code, _ = client.call("POST", "/scim/v2/Users", raw=b"{" + b" " * (300 * 1024) + b"}")
    assert code == 413


def test_a_chunked_body_is_refused(client: Client) -> None:
    code, doc = client.call(
        "POST", "/scim/v2/Users", raw=b"", headers={"Transfer-Encoding": "chunked"}
    )
    assert code == 411 and "Content-Length" in doc["error"]


def test_groups_are_not_served(client: Client) -> None:
    code, _ = client.call("GET", "/scim/v2/Groups")
    assert code == 404


# -- the signed webhook, through the service ----------------------------------------------


def hook(client: Client, body: bytes, message_id: str, key: bytes | None = None) -> tuple[int, Any]:
    import time

    stamp = str(int(time.time()))
    assert client.service.config.webhook_key is not None
    signature = webhook.sign(key or client.service.config.webhook_key, message_id, stamp, body)
    return client.call(
        "POST",
        "/webhook/leaver",
        raw=body,
        token=None,
        content_type="application/json",
        headers={
            "webhook-id": message_id,
            "webhook-timestamp": stamp,
            "webhook-signature": signature,
        },
    )


def test_a_signed_webhook_queues_once_and_a_replay_is_refused(client: Client) -> None:
    body = b'{"username": "lihua", "ticket": "HR-1"}'
    code, doc = hook(client, body, "msg-1")
    assert code == 202 and doc["created"]
    code, doc = hook(client, body, "msg-1")
    assert code == 409 and "already received" in doc["error"]
    assert len(client.jobs()) == 1
    assert "event_duplicate" in [e.kind for e in client.service.store.trail()]


def test_refused_webhooks_queue_nothing_and_do_not_grow_the_trail(client: Client) -> None:
    wrong = webhook.decode_secret(webhook.new_secret())
    before = len(client.service.store.trail())
    assert hook(client, b'{"username": "lihua", "ticket": "HR-1"}', "m1", key=wrong)[0] == 401
    assert hook(client, b'{"username": "lihua\\n", "ticket": "HR-1"}', "m2")[0] == 400
    assert hook(client, b'{"username": "root", "ticket": "HR-1"}', "m3")[0] == 422
    assert client.jobs() == [] and len(client.service.store.trail()) == before
    code, _ = client.call(
        "POST", "/webhook/leaver", raw=b"{}", token=None, content_type="text/plain"
    )
    assert code == 415


# -- an independent checker --------------------------------------------------------------


def test_scim2_tester_finds_no_error(client: Client) -> None:
    from scim2_client.engines.wsgi import WSGISCIMClient
    from scim2_tester import check_server
    from scim2_tester.utils import Status

    scim = WSGISCIMClient(
        client.service,
        base_url="http://localhost/scim/v2",
        headers={"Authorization": f"Bearer {client.token}"},
    )
    results = check_server(scim)
    assert len(results) > 10
    bad = [(r.title, r.reason) for r in results if r.status in (Status.ERROR, Status.CRITICAL)]
    assert bad == []
