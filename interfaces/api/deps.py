"""Request-scoped dependencies: the wired components and the authenticated caller."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from application.errors import PermissionDenied
from application.identity import Principal
from interfaces.api.errors import Unauthorized
from interfaces.bootstrap import Kairos

SESSION_COOKIE = "kairos_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_kairos(request: Request) -> Kairos:
    """Async on purpose: it does no I/O, so it need not hop to the thread pool."""
    kairos: Kairos = request.app.state.kairos
    return kairos


KairosDep = Annotated[Kairos, Depends(get_kairos)]


def authenticate(request: Request, kairos: KairosDep) -> Principal:
    """Bearer API token, else browser session cookie (with CSRF check on writes)."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, credentials = authorization.partition(" ")
        principal = (
            kairos.identity.authenticate_token(credentials.strip())
            if scheme.lower() == "bearer"
            else None
        )
        if principal is None:
            raise Unauthorized("invalid, expired or revoked API token")
        return principal
    session_key = request.cookies.get(SESSION_COOKIE)
    if session_key:
        principal = kairos.identity.authenticate_session(session_key)
        if principal is None:
            raise Unauthorized("your session expired; log in again")
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not principal.csrf_token or not hmac.compare_digest(sent, principal.csrf_token):
                raise PermissionDenied(
                    f"missing or wrong {CSRF_HEADER} header for a cookie session"
                )
        return principal
    raise Unauthorized("missing API token: send 'Authorization: Bearer ttp_…'")


PrincipalDep = Annotated[Principal, Depends(authenticate)]
