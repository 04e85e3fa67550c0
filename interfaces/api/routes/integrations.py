"""``/api/integrations``: connected accounts: connecting one through OAuth (choosing the
account when the authorization reaches several), switching it on and off, disconnecting it,
and its history."""

from __future__ import annotations

import html
import json
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Form, Path, Query
from fastapi.responses import HTMLResponse, JSONResponse

from application.connections import (
    CHOICE_LIFETIME,
    AccountChoice,
    AuthorizationFailed,
    Connected,
    ScheduledPost,
)
from application.errors import NotFound, ServiceUnavailable
from application.plans import PlanLimitReached
from application.views import integration_details
from domain.errors import InvalidField
from domain.integration import Integration
from interfaces.api.deps import KairosDep, PrincipalDep
from interfaces.api.errors import UNAVAILABLE
from interfaces.api.routes.posts import ERRORS
from interfaces.api.schemas import (
    AccountCandidateOut,
    AccountChoiceEnvelope,
    AccountChoiceInput,
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


MAX_CHOICE = 256
ChoiceSecret = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_CHOICE,
        description="The single-use secret the callback handed out (the chooser page, or "
        "its kairos:integration-choice message to the opener)",
    ),
]


# Before the ``/{integration_id}`` routes: ``/choices/history`` must not be read as an
# integration's history.
@router.get("/choices/{choice}", response_model=AccountChoiceEnvelope)
def account_choice(
    choice: ChoiceSecret, kairos: KairosDep, principal: PrincipalDep
) -> AccountChoiceEnvelope:
    """The accounts an authorization reaches, while the user who authorized has yet to
    choose one (10 minutes). Unknown, used, expired or someone else's: 404."""
    pending = kairos.connections.account_choice(principal, choice)
    return AccountChoiceEnvelope(
        provider=pending.provider,
        accounts=[
            AccountCandidateOut(
                id=account.external_id,
                username=account.username,
                display_name=account.display_name,
                avatar_url=account.avatar_url,
                detail=account.detail,
            )
            for account in pending.accounts
        ],
        expires_at=pending.expires_at,
    )


@router.post(
    "/choices/{choice}",
    status_code=201,
    response_model=IntegrationEnvelope,
    responses={
        402: {"model": ErrorBody, "description": "The plan's account cap is reached"},
        **UNAVAILABLE,
    },
)
def choose_account(
    choice: ChoiceSecret, body: AccountChoiceInput, kairos: KairosDep, principal: PrincipalDep
) -> IntegrationEnvelope:
    """Connect the chosen account (``accountId``, one of the choice's accounts). A choice is
    made once; refused by the plan's cap (402), it stays open until it expires."""
    connected = kairos.connections.choose(choice, body.account_id, principal=principal)
    integration = kairos.connections.integration(principal, connected.integration_id)
    return IntegrationEnvelope(integration=_out(integration))


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
        result = kairos.connections.complete(provider, state=state, code=code, error=error)
    except AuthorizationFailed as exc:
        return _page(400, "Connection failed", exc.message, None)
    except PlanLimitReached as exc:
        return _page(402, "Plan limit reached", exc.message, None)
    except ServiceUnavailable as exc:
        return _page(503, "Try again", exc.message, None)
    if isinstance(result, AccountChoice):
        return _chooser_page(result, kairos.settings.public_base_url)
    return _connected_page(result, kairos.settings.public_base_url)


MAX_ACCOUNT_ID = 200
CHOICE_FIELD = {"maxLength": MAX_CHOICE}
ACCOUNT_ID_FIELD = {"maxLength": MAX_ACCOUNT_ID}


@callback_router.post(
    "/{provider}/choose",
    response_class=HTMLResponse,
    responses={
        200: {"description": "Connected; the page tells the opener and closes", **HTML},
        400: {"description": "Unknown, used or expired choice, or another account", **HTML},
        402: {"description": "A new account would pass the plan's cap", **HTML},
        404: {"description": "Unknown platform", **HTML},
        503: {"description": "Kairos could not check the plan's cap just now", **HTML},
    },
)
def choose_account_page(
    provider: str,
    kairos: KairosDep,
    choice: Annotated[str, Form(json_schema_extra=CHOICE_FIELD)] = "",
    account_id: Annotated[str, Form(alias="accountId", json_schema_extra=ACCOUNT_ID_FIELD)] = "",
) -> HTMLResponse:
    """Where the chooser page's forms post. The ``choice`` secret identifies the caller, as
    the ``state`` does at the callback. Lengths are checked here, not by the validator, so
    the browser gets a page rather than JSON."""
    if provider not in kairos.connections.providers:
        return _page(404, "Unknown platform", f"Kairos has no provider named {provider!r}.", None)
    if not choice or len(choice) > MAX_CHOICE or not account_id or len(account_id) > MAX_ACCOUNT_ID:
        return _page(400, "Connection failed", "The choice was malformed.", None)
    try:
        connected = kairos.connections.choose(choice, account_id, provider=provider)
    except (AuthorizationFailed, InvalidField) as exc:
        return _page(400, "Connection failed", exc.message, None)
    except PlanLimitReached as exc:
        return _page(402, "Plan limit reached", exc.message, None)
    except ServiceUnavailable as exc:
        return _page(503, "Try again", exc.message, None)
    return _connected_page(connected, kairos.settings.public_base_url)


def _connected_page(connected: Connected, origin: str) -> HTMLResponse:
    message = {
        "type": "kairos:integration-connected",
        "integrationId": str(connected.integration_id),
        "provider": connected.provider,
        "reconnected": connected.reconnected,
    }
    verb = "Reconnected" if connected.reconnected else "Connected"
    return _page(
        200, f"{verb} @{connected.account_name}", "You can close this window.", (message, origin)
    )


ACCOUNT_KINDS = {"instagram-facebook": "Instagram account", "instagram": "Instagram account"}


def _chooser_page(pending: AccountChoice, origin: str) -> HTMLResponse:
    """One form per account. The opener also learns the choice, so an app may show its own
    chooser through ``/api/integrations/choices/{choice}``; the page stays open."""
    action = html.escape(f"/api/integrations/{pending.provider}/choose")
    secret = html.escape(pending.choice)
    forms = "".join(
        f"<form method='post' action='{action}' data-username='{html.escape(a.username)}'>"
        f"<input type='hidden' name='choice' value='{secret}'>"
        f"<input type='hidden' name='accountId' value='{html.escape(a.external_id)}'>"
        f"<p><strong>@{html.escape(a.username)}</strong> {html.escape(a.display_name)}"
        + (f"<br><small>{html.escape(a.detail)}</small>" if a.detail else "")
        + f"</p><button type='submit'>Connect @{html.escape(a.username)}</button></form>"
        for a in pending.accounts
    )
    message: dict[str, object] = {
        "type": "kairos:integration-choice",
        "choice": pending.choice,
        "provider": pending.provider,
    }
    kind = ACCOUNT_KINDS.get(pending.provider, "account")
    return _page(
        200,
        f"Choose the {kind}",
        "This authorization reaches several accounts; choose the one to connect within "
        f"{CHOICE_LIFETIME.seconds // 60} minutes.",
        (message, origin),
        close=False,
        extra=forms,
    )


def _page(
    status: int,
    title: str,
    text: str,
    notify: tuple[dict[str, object], str] | None,
    *,
    close: bool = True,
    extra: str = "",
) -> HTMLResponse:
    """``extra`` is markup already escaped; ``notify`` is posted to the opener's origin."""
    script = ""
    if notify is not None:
        payload, origin = notify
        then_close = " window.close();" if close else ""
        script = (
            "<script>if (window.opener) { window.opener.postMessage("
            f"{_script_json(payload)}, {_script_json(origin)});{then_close} }}</script>"
        )
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{extra}{script}"
        "</body></html>"
    )
    return HTMLResponse(body, status_code=status)


def _script_json(value: object) -> str:
    """JSON safe inside a ``<script>`` element: no ``</script>`` or ``<!--`` can form."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
