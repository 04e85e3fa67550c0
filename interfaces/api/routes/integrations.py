"""``/api/integrations``: connected accounts, and connecting one through OAuth."""

from __future__ import annotations

import html
import json
from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from application.connections import AuthorizationFailed
from application.errors import NotFound
from application.views import integration_details
from interfaces.api.deps import KairosDep, PrincipalDep
from interfaces.api.routes.posts import ERRORS
from interfaces.api.schemas import (
    AuthUrlEnvelope,
    IntegrationEnvelope,
    IntegrationListEnvelope,
    IntegrationOut,
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


@router.get("/{integration_id}", response_model=IntegrationEnvelope)
def get_integration(
    integration_id: UUID, kairos: KairosDep, principal: PrincipalDep
) -> IntegrationEnvelope:
    integration = kairos.connections.integration(principal, integration_id)
    return IntegrationEnvelope(
        integration=IntegrationOut.model_validate(integration_details(integration))
    )


@router.get("/{provider}/auth", response_model=AuthUrlEnvelope)
def authorization_url(provider: str, kairos: KairosDep, principal: PrincipalDep) -> AuthUrlEnvelope:
    """An authorization URL to open in a popup. Single-use, expires in 10 minutes."""
    if provider not in kairos.connections.providers:
        raise NotFound(f"unknown provider '{provider}'")
    return AuthUrlEnvelope(url=kairos.connections.start(principal, provider), provider=provider)


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
        404: {"description": "Unknown platform", **HTML},
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
