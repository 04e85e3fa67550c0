"""The two ways into an Instagram professional account: Instagram Login
(``graph.instagram.com``, provider ``instagram``) and Facebook Login for Business
(``graph.facebook.com``, provider ``instagram-facebook``). Both then publish the same way."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import ClassVar

import httpx

from application.platforms import (
    AccountProfile,
    OAuthExchangeFailed,
    PersonalAccountRefused,
    TokenSet,
    TransientPlatformError,
)
from interfaces.platforms.http import with_query
from interfaces.platforms.instagram.graph import API_VERSION, next_cursor
from interfaces.platforms.instagram.publisher import InstagramPublisher

INSTAGRAM_SCOPES = (
    "instagram_business_basic",
    "instagram_business_content_publish",
    "instagram_business_manage_insights",
)
FACEBOOK_SCOPES = (
    "instagram_basic",
    "instagram_content_publish",
    "instagram_manage_insights",
    "pages_show_list",
    "pages_read_engagement",
    "business_management",
)
PERSONAL_ADVICE = (
    "Instagram only lets apps publish to professional accounts. Switch it to a Business or "
    "Creator account in the Instagram app (Settings, Account type and tools), then connect "
    "it again."
)
NO_LINKED_ACCOUNT = (
    "None of the Facebook Pages you shared has an Instagram professional account linked to "
    "it. Switch your Instagram account to a Business or Creator account, link it to a "
    "Facebook Page (Page settings, Linked accounts), then connect again and choose that Page."
)


class _MetaLogin(InstagramPublisher):
    """A Meta login for one app: its credentials and its authorization dialog."""

    _scopes: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        authorize_url: str,
        graph_url: str,
        api_version: str,
        http: httpx.Client | None,
        timeout: float,
        sleep: Callable[[float], None],
        processing_timeout: float,
    ) -> None:
        super().__init__(
            graph_url=graph_url,
            api_version=api_version,
            http=http,
            timeout=timeout,
            sleep=sleep,
            processing_timeout=processing_timeout,
        )
        self._client_id = client_id
        self._client_secret = client_secret
        self._authorize_url = authorize_url

    def authorization_url(self, *, state: str, code_challenge: str, redirect_uri: str) -> str:
        """Meta's logins have no PKCE: ``code_challenge`` is not sent (Kairos checks state)."""
        return with_query(
            self._authorize_url,
            {
                "client_id": self._client_id,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": ",".join(self._scopes),
                "state": state,
            },
        )


class InstagramAdapter(_MetaLogin):
    """Instagram API with Instagram Login: the professional account logs in itself."""

    provider = "instagram"
    _scopes = INSTAGRAM_SCOPES

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        authorize_url: str = "https://www.instagram.com/oauth/authorize",
        token_url: str = "https://api.instagram.com/oauth/access_token",  # noqa: S107
        graph_url: str = "https://graph.instagram.com",
        api_version: str = API_VERSION,
        http: httpx.Client | None = None,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        processing_timeout: float = 300.0,
    ) -> None:
        """``processing_timeout`` caps how long (in ``sleep`` seconds) ``publish`` waits for
        Instagram to process a container before giving up as transient."""
        super().__init__(
            client_id=client_id,
            client_secret=client_secret,
            authorize_url=authorize_url,
            graph_url=graph_url,
            api_version=api_version,
            http=http,
            timeout=timeout,
            sleep=sleep,
            processing_timeout=processing_timeout,
        )
        self._token_url = token_url

    def exchange_code(self, *, code: str, code_verifier: str, redirect_uri: str) -> TokenSet:
        """Code → short-lived token (1 h) → long-lived token (60 days)."""
        body = self._token_call(
            "POST",
            self._token_url,
            action="exchange the authorization code",
            data={
                "client_id": self._client_id,
                "client_secret": self._client_secret,
                "grant_type": "authorization_code",
                "redirect_uri": redirect_uri,
                "code": code.removesuffix("#_"),
            },
        )
        # Documented as {"data": [{...}]}; some answers are the flat object.
        rows = body.get("data")
        short = rows[0] if isinstance(rows, list) and rows and isinstance(rows[0], dict) else body
        token = short.get("access_token")
        if not isinstance(token, str) or not token:
            raise TransientPlatformError("Instagram returned no access token for the code")
        permissions = short.get("permissions")
        if isinstance(permissions, list):
            permissions = ",".join(str(p) for p in permissions)
        requested_at = datetime.now(UTC)
        long_lived = self._token_call(
            "GET",
            f"{self._root}/access_token",
            action="get a long-lived token",
            params={
                "grant_type": "ig_exchange_token",
                "client_secret": self._client_secret,
                "access_token": token,
            },
        )
        tokens = self._token_set(
            long_lived, requested_at, refreshable=True, action="get a long-lived token"
        )
        scopes = tuple(p for p in str(permissions or "").split(",") if p)
        return TokenSet(
            tokens.access_token,
            tokens.refresh_token,
            tokens.expires_at,
            tokens.refresh_expires_at,
            scopes,
        )

    def refresh(self, refresh_token: str) -> TokenSet:
        """A new long-lived token (Instagram refreshes one at least 24 hours old)."""
        requested_at = datetime.now(UTC)
        body = self._token_call(
            "GET",
            f"{self._root}/refresh_access_token",
            action="refresh the token",
            params={"grant_type": "ig_refresh_token", "access_token": refresh_token},
        )
        return self._token_set(body, requested_at, refreshable=True, action="refresh the token")

    def fetch_profile(self, access_token: str) -> AccountProfile:
        body = self._call(
            "GET",
            "/me",
            access_token,
            action="fetch the profile",
            params={"fields": "user_id,username,name,account_type,profile_picture_url"},
        )
        user_id = body.get("user_id") or body.get("id")
        if user_id is None:
            raise TransientPlatformError("Instagram returned a profile without an id")
        username = str(body.get("username") or "")
        if str(body.get("account_type") or "").upper() == "PERSONAL":
            raise PersonalAccountRefused(
                f"@{username} is a personal Instagram account. {PERSONAL_ADVICE}"
            )
        avatar = body.get("profile_picture_url")
        return AccountProfile(
            external_id=str(user_id),
            username=username,
            display_name=str(body.get("name") or username),
            avatar_url=avatar if isinstance(avatar, str) else None,
        )


class FacebookInstagramAdapter(_MetaLogin):
    """Instagram API with Facebook Login for Business: a Facebook user grants access to the
    professional accounts linked to their Pages, and chooses one."""

    provider = "instagram-facebook"
    _login = "Facebook"
    _scopes = FACEBOOK_SCOPES

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        authorize_url: str = f"https://www.facebook.com/{API_VERSION}/dialog/oauth",
        graph_url: str = "https://graph.facebook.com",
        api_version: str = API_VERSION,
        http: httpx.Client | None = None,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        processing_timeout: float = 300.0,
    ) -> None:
        super().__init__(
            client_id=client_id,
            client_secret=client_secret,
            authorize_url=authorize_url,
            graph_url=graph_url,
            api_version=api_version,
            http=http,
            timeout=timeout,
            sleep=sleep,
            processing_timeout=processing_timeout,
        )

    def exchange_code(self, *, code: str, code_verifier: str, redirect_uri: str) -> TokenSet:
        """Code → user token → long-lived user token (about 60 days, not refreshable)."""
        credentials = {"client_id": self._client_id, "client_secret": self._client_secret}
        short = self._token_call(
            "GET",
            f"{self._api}/oauth/access_token",
            action="exchange the authorization code",
            params={**credentials, "redirect_uri": redirect_uri, "code": code},
        )
        token = short.get("access_token")
        if not isinstance(token, str) or not token:
            raise TransientPlatformError("Facebook returned no access token for the code")
        requested_at = datetime.now(UTC)
        long_lived = self._token_call(
            "GET",
            f"{self._api}/oauth/access_token",
            action="get a long-lived token",
            params={**credentials, "grant_type": "fb_exchange_token", "fb_exchange_token": token},
        )
        return self._token_set(
            long_lived, requested_at, refreshable=False, action="get a long-lived token"
        )

    def refresh(self, refresh_token: str) -> TokenSet:
        raise OAuthExchangeFailed("Facebook Login tokens cannot be refreshed; reconnect")

    def fetch_profile(self, access_token: str) -> AccountProfile:
        """The Facebook user behind the token: only proves the token still works."""
        body = self._call(
            "GET", "/me", access_token, action="fetch the profile", params={"fields": "id,name"}
        )
        if body.get("id") is None:
            raise TransientPlatformError("Facebook returned a profile without an id")
        name = str(body.get("name") or "")
        return AccountProfile(external_id=str(body["id"]), username=name, display_name=name)

    def connectable_accounts(self, access_token: str) -> list[AccountProfile]:
        """One account per Page with a linked Instagram professional account."""
        params = {
            "fields": "id,name,instagram_business_account{id,username,name,profile_picture_url}",
            "limit": "100",
        }
        accounts: dict[str, AccountProfile] = {}
        for _page in range(10):
            body = self._call(
                "GET",
                "/me/accounts",
                access_token,
                action="list your Facebook Pages",
                params=params,
            )
            for page in body.get("data") or []:
                linked = page.get("instagram_business_account") if isinstance(page, dict) else None
                if not isinstance(linked, dict) or linked.get("id") is None:
                    continue
                ig_id = str(linked["id"])
                username = str(linked.get("username") or "")
                avatar = linked.get("profile_picture_url")
                accounts.setdefault(
                    ig_id,
                    AccountProfile(
                        external_id=ig_id,
                        username=username,
                        display_name=str(linked.get("name") or username),
                        avatar_url=avatar if isinstance(avatar, str) else None,
                        detail=f"via the Facebook Page '{page.get('name', '')}'",
                    ),
                )
            after = next_cursor(body)
            if after is None:
                break
            params["after"] = after
        if not accounts:
            raise PersonalAccountRefused(NO_LINKED_ACCOUNT)
        return list(accounts.values())
