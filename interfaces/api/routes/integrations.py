"""``/api/integrations``: connected accounts: connecting one through OAuth, switching it on
and off, disconnecting it, and its history."""

from __future__ import annotations

import html
import json
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse

from application.connections import AuthorizationFailed, ScheduledPost
from application.errors import NotFound, ServiceUnavailable
from application.plans import PlanLimitReached
from application.views import integration_details
from domain.integration import Integration
from interfaces.api.deps import KairosDep, PrincipalDep
from interfaces.api.errors import UNAVAILABLE
from interfaces.api.routes.posts import ERRORS
from interfaces.api.schemas import (
    AuthUrlEnvelope,
    DisconnectedEnvelope,
    ErrorBody,
    HistoryEvent,
    IntegrationEnvelope,
    IntegrationHistoryEnvelope,
    IntegrationInUseBody,
    IntegrationListEnvelope,
    IntegrationOut,
    IntegrationUpdate,
    ScheduledPostOut,
)

router = APIRouter(prefix="/api/integrations", tags=["integrations"], responses=ERRORS)


@router.get("", response_model=IntegrationListEnvelope)
def list_integrations(kairos: KairosDep, principal: PrincipalDep) -> IntegrationListEnvelope:
    """Each integration: id, provider, accountName, status, capabilities. Never a token."""
    kairos.integrations_view.catch_up_to(
        kairos.app.last_position(), kairos.settings.read_your_writes_timeout
    )
    rows = kairos.integrations_view.list_integrations(principal.organization_id)
    return IntegrationListEnvelope(integrations=[IntegrationOut.model_validate(r) for r in rows])


def _out(integration: Integration) -> IntegrationOut:
    return IntegrationOut.model_validate(integration_details(integration))


def _scheduled(posts: list[ScheduledPost]) -> list[ScheduledPostOut]:
    return [ScheduledPostOut.model_validate(post) for post in posts]


@router.get("/{integration_id}", response_model=IntegrationEnvelope)
def get_integration(
    integration_id: UUID, kairos: KairosDep, principal: PrincipalDep
) -> IntegrationEnvelope:
    integration = kairos.connections.integration(principal, integration_id)
    return IntegrationEnvelope(integration=_out(integration))


@router.patch(
    "/{integration_id}",
    response_model=IntegrationEnvelope,
    responses={409: {"model": ErrorBody, "description": "The account is disconnected"}},
)
def update_integration(
    integration_id: UUID, body: IntegrationUpdate, kairos: KairosDep, principal: PrincipalDep
) -> IntegrationEnvelope:
    """``{"active": false}`` leaves the account out of new posts aimed at its platform or its
    collections (naming it in ``accountIds`` is refused); posts already scheduled to it
    still publish. ``{"active": true}`` takes it back."""
    integration, _ = kairos.connections.set_active(principal, integration_id, body.active)
    return IntegrationEnvelope(integration=_out(integration))


@router.delete(
    "/{integration_id}",
    response_model=DisconnectedEnvelope,
    responses={
        409: {
            "model": IntegrationInUseBody,
            "description": "Posts are scheduled to the account; they are listed",
        },
        **UNAVAILABLE,
    },
)
def disconnect_integration(
    integration_id: UUID,
    kairos: KairosDep,
    principal: PrincipalDep,
    force: Annotated[
        bool, Query(description="Disconnect even though posts are scheduled to the account")
    ] = False,
) -> DisconnectedEnvelope:
    """Disconnect the account and delete its stored credential. Refused (409, listing the
    posts) while posts are scheduled to it, unless ``?force=true``: their delivery to this
    account then fails, saying it is disconnected. Connecting the same account again later
    continues the same integration."""
    done = kairos.connections.disconnect(principal, integration_id, force=force)
    return DisconnectedEnvelope(
        id=integration_id,
        integration=_out(done.integration),
        scheduled_posts=_scheduled(done.orphaned_posts),
    )


@router.get("/{integration_id}/history", response_model=IntegrationHistoryEnvelope)
def integration_history(
    integration_id: UUID, kairos: KairosDep, principal: PrincipalDep
) -> JSONResponse:
    """Every event of the account, oldest first: type, version, time and data. Events
    reference the stored credential by id; no token is ever part of them."""
    entries = kairos.connections.history(principal, integration_id)
    envelope = IntegrationHistoryEnvelope(
        integration_id=integration_id,
        events=[
            HistoryEvent(type=e.type, version=e.version, timestamp=e.timestamp, data=e.data)
            for e in entries
        ],
    )
    return JSONResponse(envelope.model_dump(mode="json", by_alias=True))


@router.get(
    "/{provider}/auth",
    response_model=AuthUrlEnvelope,
    responses={
        402: {"model": ErrorBody, "description": "The plan's account cap is reached"},
        **UNAVAILABLE,
    },
)
def authorization_url(
    provider: str,
    kairos: KairosDep,
    principal: PrincipalDep,
    integration_id: Annotated[
        UUID | None,
        Query(
            alias="integrationId",
            description="The account to reconnect: a reconnect is allowed at the plan's cap",
        ),
    ] = None,
) -> AuthUrlEnvelope:
    """An authorization URL to open in a popup. Single-use, expires in 10 minutes."""
    if provider not in kairos.connections.providers:
        raise NotFound(f"unknown provider '{provider}'")
    url = kairos.connections.start(principal, provider, reconnect=integration_id)
    return AuthUrlEnvelope(url=url, provider=provider)


MAX_CALLBACK_PARAM = 2048

# The browser lands here, so every answer is an HTML page (the popup), never JSON.
callback_router = APIRouter(prefix="/api/integrations", tags=["integrations"])
HTML = {"content": {"text/html": {"schema": {"type": "string"}}}}


@callback_router.get(
    "/{provider}/callback",
    response_class=HTMLResponse,
    responses={
        200: {"description": "Connected; the page tells the opener and closes", **HTML},
        400: {"description": "Denied, expired, reused or forged authorization", **HTML},
        402: {"description": "A new account would pass the plan's cap", **HTML},
        404: {"description": "Unknown platform", **HTML},
        503: {"description": "Kairos could not check the plan's cap just now", **HTML},
    },
)
def oauth_callback(
    provider: str,
    kairos: KairosDep,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> HTMLResponse:
    """Where the platform sends the browser back. The ``state`` identifies the caller."""
    if provider not in kairos.connections.providers:
        return _page(404, "Unknown platform", f"Kairos has no provider named {provider!r}.", None)
    if any(len(value or "") > MAX_CALLBACK_PARAM for value in (code, state, error)):
        return _page(400, "Connection failed", "The platform's answer was malformed.", None)
    try:
        connected = kairos.connections.complete(provider, state=state, code=code, error=error)
    except AuthorizationFailed as exc:
        return _page(400, "Connection failed", exc.message, None)
    except PlanLimitReached as exc:
        return _page(402, "Plan limit reached", exc.message, None)
    except ServiceUnavailable as exc:
        return _page(503, "Try again", exc.message, None)
    message = {
        "type": "kairos:integration-connected",
        "integrationId": str(connected.integration_id),
        "provider": connected.provider,
        "reconnected": connected.reconnected,
    }
    verb = "Reconnected" if connected.reconnected else "Connected"
    return _page(
        200,
        f"{verb} @{connected.account_name}",
        "You can close this window.",
        (message, kairos.settings.public_base_url),
    )


def _page(
    status: int, title: str, text: str, notify: tuple[dict[str, object], str] | None
) -> HTMLResponse:
    script = ""
    if notify is not None:
        payload, origin = notify
        script = (
            "<script>if (window.opener) { window.opener.postMessage("
            f"{json.dumps(payload)}, {json.dumps(origin)}); window.close(); }}</script>"
        )
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{script}</body></html>"
    )
    return HTMLResponse(body, status_code=status)
