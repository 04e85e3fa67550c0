"""Browser sessions, organizations, and personal API tokens (session-only management)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, Response

from application.errors import AuthenticationFailed
from interfaces.api.deps import SESSION_COOKIE, KairosDep, PrincipalDep
from interfaces.api.routes.posts import ERRORS
from interfaces.api.schemas import (
    DeletedEnvelope,
    Envelope,
    LoginInput,
    OrganizationCreateInput,
    OrganizationEnvelope,
    OrganizationOut,
    OrganizationSettingsEnvelope,
    OrganizationSettingsInput,
    SessionEnvelope,
    SwitchOrganizationInput,
    TokenCreatedEnvelope,
    TokenCreateInput,
    TokenListEnvelope,
    TokenOut,
)

router = APIRouter(prefix="/api", tags=["account"], responses=ERRORS)


def _session_envelope(
    kairos: KairosDep, user_id: UUID, organization_id: UUID, csrf: str | None
) -> SessionEnvelope:
    user = kairos.identity.user(user_id)
    organizations = kairos.identity.organizations(user_id)
    return SessionEnvelope(
        user_id=user_id,
        email=user.email if user else "",
        organization_id=organization_id,
        organizations=[
            OrganizationOut(id=o.id, name=o.name, plan=o.plan, role=o.role) for o in organizations
        ],
        csrf_token=csrf,
    )


@router.post("/auth/login", response_model=SessionEnvelope)
def log_in(body: LoginInput, kairos: KairosDep, response: Response) -> SessionEnvelope:
    """Start a browser session (HttpOnly cookie). Send ``csrfToken`` as X-CSRF-Token on writes."""
    key, session = kairos.identity.log_in(body.email, body.password)
    response.set_cookie(
        SESSION_COOKIE,
        key,
        httponly=True,
        secure=kairos.settings.cookie_secure,
        samesite="lax",
        expires=session.expires_at,
        path="/",
    )
    return _session_envelope(kairos, session.user_id, session.organization_id, session.csrf_token)


@router.post("/auth/logout", response_model=Envelope)
def log_out(
    request: Request, response: Response, kairos: KairosDep, principal: PrincipalDep
) -> Envelope:
    key = request.cookies.get(SESSION_COOKIE)
    if key:
        kairos.identity.log_out(key)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return Envelope()


@router.get("/auth/me", response_model=SessionEnvelope)
def me(kairos: KairosDep, principal: PrincipalDep) -> SessionEnvelope:
    return _session_envelope(
        kairos, principal.user_id, principal.organization_id, principal.csrf_token
    )


@router.post("/organizations", response_model=OrganizationEnvelope, status_code=201)
def create_organization(
    body: OrganizationCreateInput, kairos: KairosDep, principal: PrincipalDep
) -> OrganizationEnvelope:
    o = kairos.identity.create_organization(principal.user_id, body.name)
    return OrganizationEnvelope(
        organization=OrganizationOut(id=o.id, name=o.name, plan=o.plan, role=o.role)
    )


@router.patch("/organization", response_model=OrganizationSettingsEnvelope)
def update_organization(
    body: OrganizationSettingsInput, kairos: KairosDep, principal: PrincipalDep
) -> OrganizationSettingsEnvelope:
    """Settings of the caller's active organization; fields left out stay as they are."""
    settings = kairos.identity.update_settings(
        principal, publish_late=body.publish_late, delay_on_quota=body.delay_on_quota
    )
    return OrganizationSettingsEnvelope(
        publish_late=settings.publish_late, delay_on_quota=settings.delay_on_quota
    )


@router.post("/organizations/active", response_model=SessionEnvelope)
def switch_organization(
    body: SwitchOrganizationInput, request: Request, kairos: KairosDep, principal: PrincipalDep
) -> SessionEnvelope:
    """Change the active organization of this browser session (API tokens keep theirs)."""
    key = request.cookies.get(SESSION_COOKIE)
    if principal.via != "session" or not key:
        raise AuthenticationFailed("switching organization needs a browser session")
    kairos.identity.switch_organization(principal, key, body.organization_id)
    return _session_envelope(kairos, principal.user_id, body.organization_id, principal.csrf_token)


@router.get("/tokens", response_model=TokenListEnvelope)
def list_tokens(kairos: KairosDep, principal: PrincipalDep) -> TokenListEnvelope:
    return TokenListEnvelope(
        tokens=[TokenOut.model_validate(t) for t in kairos.identity.list_tokens(principal)]
    )


@router.post("/tokens", response_model=TokenCreatedEnvelope, status_code=201)
def create_token(
    body: TokenCreateInput, kairos: KairosDep, principal: PrincipalDep
) -> TokenCreatedEnvelope:
    """Browser session only: an API token cannot mint tokens (403)."""
    issued = kairos.identity.issue_token(
        principal, name=body.name, expires_in_days=body.expires_in_days
    )
    return TokenCreatedEnvelope(
        token=issued.secret, api_token=TokenOut.model_validate(issued.token)
    )


@router.delete("/tokens/{token_id}", response_model=DeletedEnvelope)
def revoke_token(token_id: UUID, kairos: KairosDep, principal: PrincipalDep) -> DeletedEnvelope:
    kairos.identity.revoke_token(principal, token_id)
    return DeletedEnvelope(id=token_id)
