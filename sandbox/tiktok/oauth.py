"""Login Kit v2: the consent page, the token endpoint (codes with PKCE, rotating refresh
tokens) and revocation. Token-endpoint errors are Login Kit's flat ``{error,
error_description}``, with HTTP 200 when ``oauth_errors_http_200`` is set."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from html import escape
from urllib.parse import urlsplit

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from sandbox.common.consent import ConsentCopy, page, redirect, s256
from sandbox.common.consent import consent_page as shared_consent_page
from sandbox.tiktok.config import KNOWN_SCOPES, TikTokSimConfig
from sandbox.tiktok.envelope import TikTokJSONResponse, lost_response, oauth_error, server_error
from sandbox.tiktok.state import TikTokSim
from sandbox.tiktok.store import CodeGrant, IssuedTokens

AUTHORIZE_FIELDS = (
    "client_key",
    "response_type",
    "scope",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
)
REQUIRED_FIELDS = ("client_key", "response_type", "scope", "redirect_uri")
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.]{2,24}$")
Issued = tuple[IssuedTokens, int, int]
"""Tokens just issued, with their access and refresh lifetimes."""

_CONSENT = ConsentCopy(
    brand="TikTok",
    title="TikTok / Authorize",
    lead="It will be able to:",
    allow="Continue",
    max_username=24,
)


def challenge_matches(verifier: str, challenge: str) -> bool:
    """PKCE S256: base64url of SHA-256, or its hex form (TikTok's desktop docs use hex)."""
    raw = hashlib.sha256(verifier.encode("ascii", errors="replace")).digest()
    candidates = (s256(verifier), raw.hex())
    return any(hmac.compare_digest(candidate, challenge) for candidate in candidates)


def _error_page(message: str) -> HTMLResponse:
    body = f'<h1>Something went wrong</h1><p class="error">{escape(message)}</p>'
    return page("TikTok", "TikTok / Error", body, status=400)


def validate_authorize(config: TikTokSimConfig, params: Mapping[str, str]) -> str | None:
    """Why these authorize parameters are unacceptable, or ``None``."""
    missing = [name for name in REQUIRED_FIELDS if not params.get(name)]
    if missing:
        return f"Missing required parameter(s): {', '.join(missing)}"
    if params["response_type"] != "code":
        return "response_type must be 'code'"
    if params["client_key"] != config.client_key:
        return "client_key is not valid"
    redirect = urlsplit(params["redirect_uri"])
    if redirect.scheme not in ("http", "https") or not redirect.netloc or redirect.fragment:
        return "redirect_uri must be an absolute http(s) URL without a fragment"
    if len(params["redirect_uri"]) >= 512:
        return "redirect_uri must be shorter than 512 characters"
    if config.redirect_uris is not None and params["redirect_uri"] not in config.redirect_uris:
        return "redirect_uri is not registered for this app"
    unknown = [s for s in params["scope"].split(",") if s not in KNOWN_SCOPES]
    if unknown:
        return f"Unknown scope(s): {', '.join(unknown)}"
    challenge, method = params.get("code_challenge", ""), params.get("code_challenge_method", "")
    if (challenge or method) and method != "S256":
        return "code_challenge_method must be S256"
    if method and not challenge:
        return "code_challenge is missing"
    return None


def consent_page(
    config: TikTokSimConfig, action: str, params: Mapping[str, str], username: str, error: str = ""
) -> HTMLResponse:
    heading = f"{config.app_name} would like to access your TikTok account"
    fields = {name: params.get(name, "") for name in AUTHORIZE_FIELDS}
    scopes = params["scope"].split(",")
    return shared_consent_page(_CONSENT, heading, action, fields, scopes, username, error)


class OAuthRoutes:
    def __init__(self, sim: TikTokSim) -> None:
        self.sim = sim
        self.config = sim.config

    def router(self) -> APIRouter:
        router = APIRouter()
        html = HTMLResponse
        router.add_api_route(
            "/v2/auth/authorize/", self.authorize_page, methods=["GET"], response_class=html
        )
        router.add_api_route(
            "/v2/auth/authorize/", self.authorize_decision, methods=["POST"], response_class=html
        )
        router.add_api_route("/v2/oauth/token/", self.token, methods=["POST"])
        router.add_api_route("/v2/oauth/revoke/", self.revoke, methods=["POST"])
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
            target = {
                "error": "access_denied",
                "error_description": "The user denied the request.",
                "state": params["state"],
            }
            return redirect(params["redirect_uri"], target)
        if action != "allow":
            return _error_page("Choose Continue or Cancel")
        username = str(form.get("username", "")).strip()
        if not USERNAME_RE.match(username):
            error = "Usernames are 2 to 24 letters, digits, underscores or periods"
            return consent_page(self.config, request.url.path, params, username, error)
        now = self.sim.now()
        user = self.sim.store.get_or_create_user(username, self.config.client_key, now)
        withheld = set(self.sim.knobs(user.open_id).withheld_scopes)
        granted = tuple(s for s in params["scope"].split(",") if s not in withheld)
        code = self.sim.store.create_code(
            CodeGrant(
                redirect_uri=params["redirect_uri"],
                scopes=granted,
                code_challenge=params["code_challenge"],
                challenge_method=params["code_challenge_method"],
                open_id=user.open_id,
                expires_at=now + self.config.code_ttl,
            )
        )
        target = {"code": code, "scopes": ",".join(granted), "state": params["state"]}
        return redirect(params["redirect_uri"], target)

    def _oauth_error(self, code: str, description: str, status: int = 400) -> JSONResponse:
        return oauth_error(code, description, status, as_200=self.config.oauth_errors_http_200)

    async def _client_form(self, request: Request) -> dict[str, str] | Response:
        """Latency and injected faults, then the form of an authenticated client."""
        await self.sim.delay()
        failure = self.sim.faults.failure("oauth_token")
        if failure is not None:
            return server_error(failure)
        forced = self.sim.faults.forced_error("oauth_token")
        if forced is not None:
            return self._oauth_error(forced[0], "Forced by the sandbox.", forced[1])
        form = {key: str(value) for key, value in (await request.form()).items()}
        key_ok = hmac.compare_digest(form.get("client_key", ""), self.config.client_key)
        secret_ok = hmac.compare_digest(form.get("client_secret", ""), self.config.client_secret)
        if not (key_ok and secret_ok):
            return self._oauth_error("invalid_client", "Client key or secret is invalid.", 401)
        return form

    async def token(self, request: Request) -> Response:
        form = await self._client_form(request)
        if isinstance(form, Response):
            return form
        grant_type = form.get("grant_type", "")
        if grant_type == "authorization_code":
            outcome = self._exchange_code(form)
        elif grant_type == "refresh_token":
            outcome = self._refresh(form.get("refresh_token", ""))
        else:
            return self._oauth_error("unsupported_grant_type", "Grant type is not supported.")
        if isinstance(outcome, Response):
            return outcome
        mode = self.sim.faults.drop("oauth_token")  # issued (a refresh token spent), then lost
        if mode is not None:
            return lost_response(mode)
        return _token_response(*outcome)

    def _exchange_code(self, form: Mapping[str, str]) -> Issued | Response:
        store, now = self.sim.store, self.sim.now()
        code = form.get("code", "")
        grant = store.redeem_code(code, now) if code else None
        if grant is None or grant.expires_at <= now:
            return self._oauth_error("invalid_grant", "Authorization code is expired or invalid.")
        if grant.redirect_uri != form.get("redirect_uri"):
            return self._oauth_error("invalid_grant", "redirect_uri does not match.")
        if grant.code_challenge and not challenge_matches(
            form.get("code_verifier", ""), grant.code_challenge
        ):
            return self._oauth_error("invalid_grant", "Code verifier or code is invalid.")
        access_ttl, refresh_ttl = self.sim.token_ttls(grant.open_id)
        issued = store.issue_tokens(grant.open_id, grant.scopes, now, access_ttl, refresh_ttl)
        return issued, access_ttl, refresh_ttl

    def _refresh(self, refresh_token: str) -> Issued | Response:
        if not refresh_token:
            return self._oauth_error("invalid_request", "refresh_token is missing.")
        open_id = self.sim.store.refresh_token_user(refresh_token)
        if open_id is not None:
            failure = self.sim.count_refresh(open_id)
            if failure is not None:  # TikTok is down: nothing is spent
                return server_error(failure)
        access_ttl, refresh_ttl = self.sim.token_ttls(open_id or "")
        rotated = self.sim.store.rotate_refresh(
            refresh_token, self.sim.now(), access_ttl, refresh_ttl
        )
        if rotated is None:
            return self._oauth_error("invalid_grant", "Refresh token is invalid or expired.")
        return rotated, access_ttl, refresh_ttl

    async def revoke(self, request: Request) -> Response:
        form = await self._client_form(request)
        if isinstance(form, Response):
            return form
        token = form.get("token", "")
        if not token:
            return self._oauth_error("invalid_request", "token is missing.")
        self.sim.store.revoke_token(token, self.sim.now())
        return TikTokJSONResponse({})


def _token_response(tokens: IssuedTokens, access_ttl: int, refresh_ttl: int) -> JSONResponse:
    body = {
        "open_id": tokens.open_id,
        "scope": ",".join(tokens.scopes),
        "access_token": tokens.access_token,
        "expires_in": access_ttl,
        "refresh_token": tokens.refresh_token,
        "refresh_expires_in": refresh_ttl,
        "token_type": "Bearer",
    }
    return TikTokJSONResponse(body, headers={"cache-control": "no-store"})


def build_oauth_router(sim: TikTokSim) -> APIRouter:
    return OAuthRoutes(sim).router()
