"""Both login paths (reference §1.2, §1.3): consent pages, code exchanges, long-lived
tokens and the Instagram refresh.

Instagram Login: ``/oauth/authorize`` → ``POST /oauth/access_token`` (short-lived, 1 h) →
``GET /graph/access_token?grant_type=ig_exchange_token`` (long-lived, 60 days) →
``GET /graph/refresh_access_token`` (once the token is 24 h old).
Facebook Login for Business: ``/facebook/{v}/dialog/oauth`` →
``GET /facebook-graph/{v}/oauth/access_token`` (code, then ``fb_exchange_token``); no refresh.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape
from urllib.parse import urlsplit

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from sandbox.common.consent import ConsentCopy, page, redirect
from sandbox.common.consent import consent_page as shared_consent_page
from sandbox.instagram import problems
from sandbox.instagram.config import (
    FACEBOOK_SCOPES,
    INSTAGRAM_SCOPES,
    SERVER_ERROR,
    UNAVAILABLE,
    InstagramSimConfig,
)
from sandbox.instagram.problems import GraphJSONResponse, graph_error, legacy_error
from sandbox.instagram.state import InstagramSim
from sandbox.instagram.store import CodeGrant, CodeOutcome, TokenGrant

IG_AUTHORIZE_FIELDS = ("client_id", "redirect_uri", "response_type", "scope", "state")
FB_AUTHORIZE_FIELDS = ("client_id", "redirect_uri", "response_type", "scope", "state")
IG_USERNAME_RE = re.compile(r"^[A-Za-z0-9._]{1,30}$")
#: Facebook sandbox names leave room for the ``_studio`` / ``_shop`` Instagram accounts.
FB_USERNAME_RE = re.compile(r"^[A-Za-z0-9._]{1,23}$")
VERSION_RE = re.compile(r"^v\d{1,2}\.\d$")
NO_STORE = {"cache-control": "no-store"}
REDIRECT_MISMATCH = (
    "Error validating verification code. Please make sure your redirect_uri is identical to"
    " the one you used in the OAuth dialog request"
)


@dataclass(frozen=True)
class _Login:
    """What differs between the two login paths' consent pages."""

    name: str
    site: str
    denied: dict[str, str]
    fragment: str
    username_re: re.Pattern[str]
    username_error: str


_INSTAGRAM = _Login(
    name="instagram",
    site="Instagram",
    denied={
        "error": "access_denied",
        "error_reason": "user_denied",
        "error_description": "The user denied your request.",
    },
    fragment="_",
    username_re=IG_USERNAME_RE,
    username_error="Usernames are 1 to 30 letters, digits, periods or underscores",
)
_FACEBOOK = _Login(
    name="facebook",
    site="Facebook",
    denied={
        "error": "access_denied",
        "error_code": "200",
        "error_description": "Permissions error",
        "error_reason": "user_denied",
    },
    fragment="_=_",
    username_re=FB_USERNAME_RE,
    username_error="Names are 1 to 23 letters, digits, periods or underscores",
)


def _error_page(brand: str, message: str) -> HTMLResponse:
    body = (
        "<h1>Sorry, this page isn&rsquo;t available</h1>"
        f'<p class="error">Invalid Request: Request parameters are invalid: {escape(message)}</p>'
    )
    return page(brand, f"{brand} / Error", body, status=400)


def split_scopes(raw: str) -> list[str]:
    """Meta accepts scopes separated by commas or (URL-encoded) spaces."""
    return [scope for scope in re.split(r"[,\s]+", raw) if scope]


def _redirect_problem(config: InstagramSimConfig, redirect_uri: str) -> bool:
    parts = urlsplit(redirect_uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        return True
    return config.redirect_uris is not None and redirect_uri not in config.redirect_uris


def validate_instagram(config: InstagramSimConfig, params: Mapping[str, str]) -> str | None:
    if params.get("client_id") != config.client_id:
        return "Invalid platform app"
    if not params.get("redirect_uri") or _redirect_problem(config, params["redirect_uri"]):
        return "Invalid redirect_uri"
    if params.get("response_type") != "code":
        return "Invalid response_type"
    scopes = split_scopes(params.get("scope", ""))
    unknown = [scope for scope in scopes if scope not in INSTAGRAM_SCOPES]
    if unknown:
        return f"Invalid Scopes: {', '.join(unknown)}"
    if "instagram_business_basic" not in scopes:
        return "Invalid Scopes: instagram_business_basic is required"
    return None


def validate_facebook(config: InstagramSimConfig, params: Mapping[str, str]) -> str | None:
    if params.get("client_id") != config.client_id:
        return "Invalid App ID: The provided app ID does not look like a valid app ID."
    if not params.get("redirect_uri") or _redirect_problem(config, params["redirect_uri"]):
        return (
            "URL Blocked: This redirect failed because the redirect URI is not whitelisted in"
            " the app's Client OAuth Settings."
        )
    if params.get("response_type", "code") not in ("", "code"):
        return "Invalid response_type"
    unknown = [s for s in split_scopes(params.get("scope", "")) if s not in FACEBOOK_SCOPES]
    if unknown:
        return f"Invalid Scopes: {', '.join(unknown)}"
    return None


def consent_page(
    brand: str,
    heading: str,
    action: str,
    params: Mapping[str, str],
    username: str,
    error: str = "",
) -> HTMLResponse:
    copy = ConsentCopy(brand, f"{brand} / Allow access", "This app will be able to:", "Allow", 30)
    scopes = split_scopes(params.get("scope", ""))
    return shared_consent_page(copy, heading, action, params, scopes, username, error)


class OAuthRoutes:
    def __init__(self, sim: InstagramSim) -> None:
        self.sim = sim
        self.config = sim.config
        self.store = sim.store

    def router(self) -> APIRouter:
        router = APIRouter()
        html = HTMLResponse
        for method in ("GET", "POST"):
            router.add_api_route(
                "/oauth/authorize", self.instagram_consent, methods=[method], response_class=html
            )
            router.add_api_route(
                "/facebook/{version}/dialog/oauth",
                self.facebook_consent,
                methods=[method],
                response_class=html,
            )
            router.add_api_route(
                "/facebook-graph/{version}/oauth/access_token",
                self.facebook_token,
                methods=[method],
            )
        router.add_api_route("/oauth/access_token", self.instagram_code, methods=["POST"])
        router.add_api_route("/graph/access_token", self.instagram_long_lived, methods=["GET"])
        router.add_api_route("/graph/refresh_access_token", self.instagram_refresh, methods=["GET"])
        return router

    # -- consent pages -------------------------------------------------------------------

    async def _params(self, request: Request, fields: tuple[str, ...]) -> dict[str, str]:
        source: Mapping[str, object] = request.query_params
        if request.method == "POST":
            source = await request.form()
        return {name: str(source[name]) for name in fields if name in source}

    async def instagram_consent(self, request: Request) -> Response:
        await self.sim.delay("oauth_token")
        params = await self._params(request, IG_AUTHORIZE_FIELDS)
        return await self._consent(
            request,
            params,
            validate_instagram(self.config, params),
            _INSTAGRAM,
            f"Allow {self.config.app_name} to access your Instagram account?",
            lambda username: self.store.get_or_create_account(username, self.sim.now()).id,
        )

    async def facebook_consent(self, request: Request, version: str) -> Response:
        await self.sim.delay("oauth_token")
        params = await self._params(request, FB_AUTHORIZE_FIELDS)
        problem = "Unknown API version" if not VERSION_RE.match(version) else None
        return await self._consent(
            request,
            params,
            problem or validate_facebook(self.config, params),
            _FACEBOOK,
            f"{self.config.app_name} is requesting access to your Pages and Instagram",
            lambda username: self.store.get_or_create_fb_user(username, self.sim.now()).id,
        )

    async def _consent(
        self,
        request: Request,
        params: dict[str, str],
        problem: str | None,
        login: _Login,
        heading: str,
        subject: Callable[[str], str],
    ) -> Response:
        """One login path's consent page (GET) and decision (POST)."""
        if problem:
            return _error_page(login.site, problem)
        if request.method == "GET":
            return consent_page(login.site, heading, request.url.path, params, "sandbox_user")
        form = await request.form()
        state = {"state": params["state"]} if params.get("state") else {}
        action = str(form.get("action", ""))
        if action == "deny":
            return redirect(params["redirect_uri"], {**login.denied, **state}, login.fragment)
        username = str(form.get("username", "")).strip()
        if action != "allow" or not login.username_re.match(username):
            return consent_page(
                login.site, heading, request.url.path, params, username, login.username_error
            )
        code = self._code(login.name, params, subject(username))
        # Meta appends "#_" (Instagram) or "#_=_" (Facebook) to the redirect; not the code.
        return redirect(params["redirect_uri"], {"code": code, **state}, login.fragment)

    def _code(self, login: str, params: Mapping[str, str], subject_id: str) -> str:
        return self.store.create_code(
            CodeGrant(
                login=login,
                client_id=params["client_id"],
                redirect_uri=params["redirect_uri"],
                scopes=tuple(split_scopes(params.get("scope", ""))),
                subject_id=subject_id,
                expires_at=self.sim.now() + self.config.code_ttl,
            )
        )

    # -- Instagram Login tokens ----------------------------------------------------------

    def _secret_ok(self, secret: str) -> bool:
        return hmac.compare_digest(secret.encode(), self.config.client_secret.encode())

    async def _fault(self) -> Response | None:
        await self.sim.delay("oauth_token")
        failure = self.sim.faults.before("oauth_token")
        return problems.injected(failure) if failure is not None else None

    async def instagram_code(self, request: Request) -> Response:
        if (failure := await self._fault()) is not None:
            return failure
        form = {key: str(value) for key, value in (await request.form()).items()}
        if form.get("client_id") != self.config.client_id:
            return legacy_error("Invalid platform app")
        if not self._secret_ok(form.get("client_secret", "")):
            return legacy_error("Error validating client secret.")
        if form.get("grant_type") != "authorization_code":
            return legacy_error("Unsupported grant_type")
        code = form.get("code", "").removesuffix("#_")
        outcome, grant = self.store.redeem_code(code, "instagram", self.sim.now())
        if outcome is CodeOutcome.USED:
            return legacy_error("This authorization code has been used")
        if grant is None:
            return legacy_error("Invalid authorization code")
        if grant.expires_at <= self.sim.now():
            return legacy_error("This authorization code has expired")
        if grant.redirect_uri != form.get("redirect_uri"):
            return legacy_error(REDIRECT_MISMATCH)
        short_ttl, _ = self.sim.token_ttls(f"instagram:{grant.subject_id}")
        token = self.store.issue_token(
            "instagram", "short", grant.subject_id, grant.scopes, self.sim.now(), short_ttl
        )
        issued = {
            "access_token": token,
            "user_id": grant.subject_id,
            "permissions": ",".join(grant.scopes),
        }
        body = {"data": [issued]} if self.config.token_response_shape == "data" else issued
        return GraphJSONResponse(body, headers=NO_STORE)

    def _valid(self, token: str, login: str) -> TokenGrant | Response:
        now = self.sim.now()
        grant = self.store.token(token) if token else None
        if grant is None or grant.login != login:
            return problems.unparsable_token()
        if grant.revoked_at is not None:
            return problems.revoked_token(self.config.app_name)
        if grant.expires_at <= now:
            return problems.expired_token(grant.expires_at, now)
        return grant

    def _long_lived(self, login: str, grant: TokenGrant) -> Response:
        _, long_ttl = self.sim.token_ttls(f"{login}:{grant.subject_id}")
        token = self.store.issue_token(
            login, "long", grant.subject_id, grant.scopes, self.sim.now(), long_ttl
        )
        body = {"access_token": token, "token_type": "bearer", "expires_in": long_ttl}
        return GraphJSONResponse(body, headers=NO_STORE)

    async def instagram_long_lived(self, request: Request) -> Response:
        if (failure := await self._fault()) is not None:
            return failure
        query = request.query_params
        if query.get("grant_type") != "ig_exchange_token":
            return problems.invalid_parameter("Unsupported grant_type: use ig_exchange_token")
        if not self._secret_ok(query.get("client_secret", "")):
            return graph_error(400, 1, "Error validating client secret.")
        grant = self._valid(query.get("access_token", ""), "instagram")
        if isinstance(grant, Response):
            return grant
        if grant.lifetime != "short":
            return problems.invalid_parameter("Only a short-lived token can be exchanged")
        return self._long_lived("instagram", grant)

    async def instagram_refresh(self, request: Request) -> Response:
        if (failure := await self._fault()) is not None:
            return failure
        query = request.query_params
        if query.get("grant_type") != "ig_refresh_token":
            return problems.invalid_parameter("Unsupported grant_type: use ig_refresh_token")
        grant = self._valid(query.get("access_token", ""), "instagram")
        if isinstance(grant, Response):
            return grant
        failed = self.sim.count_refresh(f"instagram:{grant.subject_id}")
        if failed is not None:
            message = SERVER_ERROR if failed == 500 else UNAVAILABLE
            return graph_error(failed, 2, message, transient=True)
        if grant.lifetime != "long":
            return problems.invalid_parameter("Only a long-lived token can be refreshed")
        if self.sim.now() - grant.created_at < self.config.refresh_min_age:
            hours = self.config.refresh_min_age / 3600
            return problems.invalid_parameter(
                f"The access token can be refreshed once it is at least {hours:g} hours old"
            )
        return self._long_lived("instagram", grant)

    # -- Facebook Login tokens -----------------------------------------------------------

    async def facebook_token(self, request: Request, version: str) -> Response:
        if (failure := await self._fault()) is not None:
            return failure
        if not VERSION_RE.match(version):
            return problems.unknown_path(request.url.path)
        params: dict[str, str] = dict(request.query_params)
        if request.method == "POST":
            params.update({key: str(value) for key, value in (await request.form()).items()})
        if params.get("client_id") != self.config.client_id:
            return graph_error(400, 101, "Error validating application. Invalid application ID.")
        if not self._secret_ok(params.get("client_secret", "")):
            return graph_error(400, 1, "Error validating client secret.")
        if params.get("grant_type") == "fb_exchange_token":
            grant = self._valid(params.get("fb_exchange_token", ""), "facebook")
            return grant if isinstance(grant, Response) else self._long_lived("facebook", grant)
        outcome, code = self.store.redeem_code(params.get("code", ""), "facebook", self.sim.now())
        if outcome is CodeOutcome.USED:
            return problems.invalid_parameter("This authorization code has been used.", 36009)
        if code is None:
            return problems.invalid_parameter("Invalid verification code format.")
        if code.expires_at <= self.sim.now():
            return problems.invalid_parameter("This authorization code has expired.", 36007)
        if code.redirect_uri != params.get("redirect_uri"):
            return problems.invalid_parameter(REDIRECT_MISMATCH, 36008)
        short_ttl, _ = self.sim.token_ttls(f"facebook:{code.subject_id}")
        token = self.store.issue_token(
            "facebook", "short", code.subject_id, code.scopes, self.sim.now(), short_ttl
        )
        body = {"access_token": token, "token_type": "bearer", "expires_in": short_ttl}
        return GraphJSONResponse(body, headers=NO_STORE)


def build_oauth_router(sim: InstagramSim) -> APIRouter:
    return OAuthRoutes(sim).router()
