"""OAuth 2.0 Authorization Code + PKCE: consent page, token and revoke endpoints."""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Mapping
from html import escape
from urllib.parse import unquote, urlsplit

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from sandbox.common.consent import ConsentCopy, page, redirect, s256
from sandbox.common.consent import consent_page as shared_consent_page
from sandbox.x.api import injected_failure
from sandbox.x.config import KNOWN_SCOPES, XSimConfig
from sandbox.x.problems import XJSONResponse, server_error
from sandbox.x.state import XSim
from sandbox.x.store import CodeGrant, IssuedTokens, RefreshOutcome

AUTHORIZE_FIELDS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)
USERNAME_RE = re.compile(r"^[A-Za-z0-9_]{1,15}$")
BAD_CODE = "Value passed for the authorization code was invalid."
BAD_TOKEN = "Value passed for the token was invalid."
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}

_CONSENT = ConsentCopy(
    brand="X",
    title="X / Authorize an application",
    lead="This App will be able to:",
    allow="Authorize app",
    max_username=15,
)


def _error_page(message: str) -> HTMLResponse:
    body = (
        "<h1>Something went wrong</h1>"
        "<p>You weren&rsquo;t able to give access to the App. Go back and try logging in again.</p>"
        f'<p class="error">{escape(message)}</p>'
    )
    return page("X", "X / Error", body, status=400)


def _token_error(description: str, status: int = 400, error: str = "invalid_request") -> Response:
    body = {"error": error, "error_description": description}
    return XJSONResponse(body, status_code=status, headers=NO_STORE)


def _unauthorized_client() -> Response:
    return _token_error("Missing valid authorization header", 401, "unauthorized_client")


def validate_authorize(config: XSimConfig, params: Mapping[str, str]) -> str | None:
    """Why these authorize parameters are unacceptable, or ``None``."""
    missing = [name for name in AUTHORIZE_FIELDS if not params.get(name)]
    if missing:
        return f"Missing required parameter(s): {', '.join(missing)}"
    if params["response_type"] != "code":
        return "response_type must be 'code'"
    if params["client_id"] != config.client_id:
        return "Unknown client_id"
    redirect = urlsplit(params["redirect_uri"])
    if redirect.scheme not in ("http", "https") or not redirect.netloc or redirect.fragment:
        return "redirect_uri must be an absolute http(s) URL without a fragment"
    if config.redirect_uris is not None and params["redirect_uri"] not in config.redirect_uris:
        return "redirect_uri does not match a callback URL registered for this App"
    unknown = [s for s in params["scope"].split(" ") if s not in KNOWN_SCOPES]
    if unknown:
        return f"Unknown scope(s): {', '.join(unknown)}"
    if len(params["state"]) > 500:
        return "state must be at most 500 characters"
    if params["code_challenge_method"] not in ("S256", "plain"):
        return "code_challenge_method must be S256 or plain"
    if len(params["code_challenge"]) > 128:
        return "code_challenge is too long"
    return None


def consent_page(
    config: XSimConfig, action: str, params: Mapping[str, str], username: str, error: str = ""
) -> HTMLResponse:
    heading = f"Authorize {config.app_name} to access your X account?"
    fields = {name: params[name] for name in AUTHORIZE_FIELDS}
    scopes = params["scope"].split(" ")
    return shared_consent_page(_CONSENT, heading, action, fields, scopes, username, error)


class OAuthRoutes:
    def __init__(self, sim: XSim) -> None:
        self.sim = sim
        self.config = sim.config

    def router(self) -> APIRouter:
        router = APIRouter()
        html = HTMLResponse
        router.add_api_route(
            "/i/oauth2/authorize", self.authorize_page, methods=["GET"], response_class=html
        )
        router.add_api_route(
            "/i/oauth2/authorize", self.authorize_decision, methods=["POST"], response_class=html
        )
        router.add_api_route("/2/oauth2/token", self.token, methods=["POST"])
        router.add_api_route("/2/oauth2/revoke", self.revoke, methods=["POST"])
        return router

    async def authorize_page(self, request: Request) -> Response:
        await self.sim.delay()
        params = {name: request.query_params.get(name, "") for name in AUTHORIZE_FIELDS}
        problem = validate_authorize(self.config, params)
        if problem:
            return _error_page(problem)
        return consent_page(self.config, request.url.path, params, "sandbox_user")

    async def authorize_decision(self, request: Request) -> Response:
        await self.sim.delay()
        form = await request.form()
        params = {name: str(form.get(name, "")) for name in AUTHORIZE_FIELDS}
        problem = validate_authorize(self.config, params)
        if problem:
            return _error_page(problem)
        action = str(form.get("action", ""))
        if action == "deny":
            target = {"error": "access_denied", "state": params["state"]}
            return redirect(params["redirect_uri"], target)
        if action != "allow":
            return _error_page("Choose Authorize app or Cancel")
        username = str(form.get("username", "")).strip()
        if not USERNAME_RE.match(username):
            error = "Usernames are 1 to 15 letters, digits or underscores"
            return consent_page(self.config, request.url.path, params, username, error)
        now = self.sim.now()
        user = self.sim.store.get_or_create_user(username, now)
        code = self.sim.store.create_code(
            CodeGrant(
                client_id=params["client_id"],
                redirect_uri=params["redirect_uri"],
                scopes=tuple(params["scope"].split(" ")),
                code_challenge=params["code_challenge"],
                challenge_method=params["code_challenge_method"],
                user_id=user.id,
                expires_at=now + self.config.code_ttl,
            )
        )
        return redirect(params["redirect_uri"], {"state": params["state"], "code": code})

    def authenticate_client(self, request: Request, form: Mapping[str, str]) -> str | None:
        """The authenticated client id: HTTP Basic, or ``client_id`` for public clients."""
        config = self.config
        header = request.headers.get("authorization")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "basic":
                return None
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            client_id, sep, secret = decoded.partition(":")
            client_id, secret = unquote(client_id), unquote(secret)
            ok = sep and hmac.compare_digest(
                f"{client_id}:{secret}".encode(),
                f"{config.client_id}:{config.client_secret}".encode(),
            )
            return client_id if ok else None
        if config.client_type == "public" and form.get("client_id") == config.client_id:
            return config.client_id
        return None

    def token_response(self, tokens: IssuedTokens, access_ttl: int) -> JSONResponse:
        body: dict[str, object] = {
            "token_type": "bearer",
            "expires_in": access_ttl,
            "access_token": tokens.access_token,
            "scope": " ".join(tokens.scopes),
        }
        if tokens.refresh_token is not None:
            body["refresh_token"] = tokens.refresh_token
        return XJSONResponse(body, headers=NO_STORE)

    async def _client_form(self, request: Request) -> tuple[str, dict[str, str]] | Response:
        """Latency and 500 faults, then the form and the authenticated client."""
        await self.sim.delay()
        if self.sim.faults.should_fail():
            return server_error()
        form = {key: str(value) for key, value in (await request.form()).items()}
        client_id = self.authenticate_client(request, form)
        if client_id is None:
            return _unauthorized_client()
        return client_id, form

    async def token(self, request: Request) -> Response:
        outcome = await self._client_form(request)
        if isinstance(outcome, Response):
            return outcome
        client_id, form = outcome
        grant_type = form.get("grant_type", "")
        if grant_type == "authorization_code":
            return self._exchange_code(client_id, form)
        if grant_type == "refresh_token":
            return self._refresh(client_id, form.get("refresh_token", ""))
        return _token_error("Value passed for the grant type was invalid.")

    def _refresh(self, client_id: str, refresh_token: str) -> Response:
        if not refresh_token:
            return _token_error(BAD_TOKEN)
        user_id = self.sim.store.refresh_token_user(refresh_token)
        if user_id is not None:
            failure = self.sim.count_refresh(user_id)
            if failure is not None:  # the platform is down: nothing is spent
                return injected_failure(failure, dict(NO_STORE))
        access_ttl, refresh_ttl = self.sim.token_ttls(user_id or "")
        outcome, rotated = self.sim.store.rotate_refresh(
            refresh_token, client_id, self.sim.now(), access_ttl, refresh_ttl
        )
        if outcome is not RefreshOutcome.OK or rotated is None:
            return _token_error(BAD_TOKEN)
        return self.token_response(rotated, access_ttl)

    def _exchange_code(self, client_id: str, form: Mapping[str, str]) -> Response:
        store, now = self.sim.store, self.sim.now()
        code = form.get("code", "")
        grant = store.redeem_code(code, now) if code else None
        verifier = form.get("code_verifier", "")
        if (
            grant is None
            or grant.expires_at <= now
            or grant.client_id != client_id
            or grant.redirect_uri != form.get("redirect_uri")
            or not verifier
            or not hmac.compare_digest(
                s256(verifier) if grant.challenge_method == "S256" else verifier,
                grant.code_challenge,
            )
        ):
            return _token_error(BAD_CODE)
        family = store.start_family(code, grant.user_id, client_id, grant.scopes, now)
        access_ttl, refresh_ttl = self.sim.token_ttls(grant.user_id)
        issued = store.issue_tokens(family, now, access_ttl, refresh_ttl)
        return self.token_response(issued, access_ttl)

    async def revoke(self, request: Request) -> Response:
        outcome = await self._client_form(request)
        if isinstance(outcome, Response):
            return outcome
        client_id, form = outcome
        token_value = form.get("token", "")
        if not token_value:
            return _token_error(BAD_TOKEN)
        self.sim.store.revoke_token(token_value, client_id, self.sim.now())
        return XJSONResponse({"revoked": True})


def build_oauth_router(sim: XSim) -> APIRouter:
    return OAuthRoutes(sim).router()
