"""SCIM 2.0 (RFC 7643/7644) Users endpoint on scim2-server, wired to offboarding.

The protocol (discovery, filters, paging, PATCH semantics, errors) is scim2-server's and
scim2-models'; this module adds what a courier's identity feed needs:

- users persist in the offboarding store, so a restart loses no one;
- a user going from active to ``active: false`` (PATCH, or a PUT carrying it), or being
  DELETEd, becomes a leaver event, recorded durably *before* the response is sent (if it
  cannot be recorded the request fails and the identity provider retries);
- a PUT without ``active`` keeps the stored value (Okta's custom apps send such PUTs);
- reactivation is recorded but restores nothing: access comes back only through the
  normal joiner process;
- deactivated users stay listable and filterable (``filter=active eq false``).

Okta's and Entra ID's habits (``"op": "Replace"``, ``"active": "False"``, path-less
replace with a value object) are accepted by scim2-models itself; the tests replay them.
Only Users are served: group provisioning should be turned off at the identity provider.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scim2_models import (
    AuthenticationScheme,
    EnterpriseUser,
    External,
    InvalidValueException,
    Reference,
    Resource,
    ResourceType,
    ScimProvider,
    ServiceProviderConfig,
    UnauthorizedException,
    UniquenessException,
    User,
)
from scim2_server.applications.wsgi import WSGIApplication
from scim2_server.memory import InMemoryStorage
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse

from parcelguard.offboard.model import ALWAYS_PROTECTED, LOGIN_NAME, OffboardError
from parcelguard.offboard.store import OffboardStore
from parcelguard.server.auth import bearer_of, match_token

log = logging.getLogger("parcelguard.scim")

BEARER = AuthenticationScheme(
    type=AuthenticationScheme.Type.oauthbearertoken,
    name="OAuth Bearer Token",
    description="A token from `parcelguard offboard token add NAME`",
    spec_uri=Reference[External]("https://www.rfc-editor.org/rfc/rfc6750"),
    primary=True,
)
MAX_RESULTS = 200
MAX_BODY = 256 * 1024

_actor = threading.local()


@dataclass(frozen=True)
class Deactivation:
    """What the storage hands to offboarding: a person the identity provider says left."""

    scim_id: str
    user_name: str
    login: str | None  # None when userName maps to no plain login name
    key: str
    reason: str  # "deactivated" or "deleted"
    actor: str


def login_of(user_name: str | None, domains: frozenset[str]) -> str | None:
    """The Linux login a SCIM userName stands for, or None.

    ``lihua`` stands for itself; ``lihua@corp.example`` for ``lihua`` only when
    ``corp.example`` is one of the configured ``scim.domains`` (so a contractor
    ``lihua@vendor.example`` is never taken for the employee). Case is folded.
    """
    if not user_name:
        return None
    local, at, domain = user_name.strip().lower().rpartition("@")
    if not at:
        local = domain
    elif domain not in domains:
        return None
    if not LOGIN_NAME.fullmatch(local) or local in ALWAYS_PROTECTED:
        return None
    return local


def provider() -> ScimProvider:
    config = ServiceProviderConfig.model_validate(
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": True},
            "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": True, "maxResults": MAX_RESULTS},
            "changePassword": {"supported": False},
            "sort": {"supported": False},
            "etag": {"supported": False},
        }
    )
    config.authentication_schemes = [BEARER]
    return ScimProvider(
        models=[User, EnterpriseUser],
        resource_types=[ResourceType.from_resource(User[EnterpriseUser])],
        config=config,
    )


class OffboardingStorage(InMemoryStorage):
    """scim2-server's in-memory storage, written through to SQLite, reporting leavers."""

    def __init__(
        self,
        store: OffboardStore,
        model: type[Resource[Any]],
        on_leaver: Callable[[Deactivation], None],
        domains: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__()
        self.store = store
        self.on_leaver = on_leaver
        self.domains = domains
        loaded = [model.model_validate(json.loads(doc)) for doc in store.scim_documents()]
        self.resources = loaded

    def next_version(self) -> str:
        # Unique across restarts: versions are part of the leaver events' keys.
        return f'W/"{time.time_ns():x}"'

    def _persist(self, resource: Resource[Any]) -> None:
        assert resource.id is not None
        self.store.scim_put(resource.id, resource.model_dump_json(by_alias=True))

    @staticmethod
    def _without_password(resource: Resource[Any]) -> Resource[Any]:
        # Password sync (Okta sends one) has no use here: never kept, never stored.
        if getattr(resource, "password", None) is not None:
            return resource.model_copy(update={"password": None})
        return resource

    def _check_unique_login(self, resource: Resource[Any]) -> None:
        """Two active SCIM users may not stand for the same login: deactivating one
        would revoke the other."""
        if getattr(resource, "active", None) is False:
            return
        login = login_of(getattr(resource, "user_name", None), self.domains)
        if login is None:
            return
        for other in self.resources:
            if other.id == resource.id or getattr(other, "active", None) is False:
                continue
            if login_of(getattr(other, "user_name", None), self.domains) == login:
                raise UniquenessException(
                    detail=f"another active user already stands for the login {login!r}"
                )

    def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        with self.lock:
            resource = self._without_password(resource)
            self._check_unique_login(resource)
            created = super().create(resource_type, resource)
            self._persist(created)
            return created

    def update(
        self,
        resource_type: ResourceType,
        resource: Resource[Any],
        *,
        expected_version: str | None = None,
    ) -> Resource[Any]:
        with self.lock:
            assert resource.id is not None
            old = self.get(resource_type, resource.id)
            was = getattr(old, "active", None)
            put = getattr(_actor, "method", "") == "PUT"
            if put and getattr(resource, "active", None) is None and was is not None:
                # Okta's custom apps PUT the whole user without `active`: no change.
                # (A PATCH that removes `active` does remove it: that is not a deactivation.)
                resource = resource.model_copy(update={"active": was})
            resource = self._without_password(resource)
            self._check_unique_login(resource)
            now = getattr(resource, "active", None)
            if now is False and was is not False:
                # Durable first: if this raises, nothing is stored and the IdP retries.
                self._leaver(old, "deactivated")
            updated = super().update(resource_type, resource, expected_version=expected_version)
            self._persist(updated)
            if was is False and now is True:
                self.store.record(
                    "scim_reactivated",
                    {
                        "scim_id": resource.id,
                        "userName": getattr(updated, "user_name", None),
                        "note": "reactivation restores no access; grant it through onboarding",
                        "actor": current_actor(),
                    },
                )
            return updated

    def delete(
        self, resource_type: ResourceType, resource_id: str, *, expected_version: str | None = None
    ) -> None:
        with self.lock:
            old = self.get(resource_type, resource_id)
            self._leaver(old, "deleted")
            super().delete(resource_type, resource_id, expected_version=expected_version)
            self.store.scim_delete(resource_id)

    def _leaver(self, old: Resource[Any], reason: str) -> None:
        assert old.id is not None and old.meta is not None
        user_name = str(getattr(old, "user_name", "") or "")
        self.on_leaver(
            Deactivation(
                scim_id=old.id,
                user_name=user_name,
                login=login_of(user_name, self.domains),
                key=f"scim:{old.id}:{reason}:{old.meta.version}",
                reason=reason,
                actor=current_actor(),
            )
        )


def current_actor() -> str:
    return str(getattr(_actor, "name", "scim"))


class ScimApplication(WSGIApplication):
    """scim2-server's WSGI application with bearer tokens from the offboarding store."""

    def __init__(self, storage: OffboardingStorage, store: OffboardStore) -> None:
        super().__init__(storage, provider())
        self.store = store

    def check_auth(self, request: ScimRequest) -> None:
        name = match_token(bearer_of(request.header("Authorization")), self.store.token_digests())
        if name is None:
            raise UnauthorizedException(detail="a valid bearer token is required")
        _actor.name = f"scim token {name}"

    def dispatch_request(self, request: ScimRequest) -> ScimResponse:
        _actor.method = request.method.upper()
        try:
            return super().dispatch_request(request)
        finally:
            _actor.method = ""


def leaver_handler(
    submit: Callable[[str, str, str, str, dict[str, Any]], None], store: OffboardStore
) -> Callable[[Deactivation], None]:
    """Turn a SCIM deactivation into a leaver event (or a recorded refusal)."""

    def handle(d: Deactivation) -> None:
        detail = {"scim_id": d.scim_id, "userName": d.user_name, "reason": d.reason}
        if d.login is None:
            store.record(
                "scim_unmapped",
                {**detail, "actor": d.actor, "error": "userName maps to no plain login name"},
            )
            log.warning("SCIM %s of %r: no login name to revoke", d.reason, d.user_name)
            return
        try:
            submit(d.login, d.key, d.actor, f"scim-{d.reason}", detail)
        except OffboardError as exc:
            # Refused whole: nothing is stored, and the identity provider shows why.
            raise InvalidValueException(
                detail=f"offboarding refused this change: {exc.message}"
            ) from exc

    return handle


def utcnow() -> datetime:
    return datetime.now(UTC)
