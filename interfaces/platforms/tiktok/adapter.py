"""The TikTok adapter: Login Kit v2 (OAuth 2.0 with PKCE, rotating refresh tokens), the
profile, metrics from the Display API, and publishing (:mod:`.publishing`). The token
endpoint answers flat, and its errors (``{error, error_description}``) may come with HTTP
200 too."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from application.platforms import (
    AccountProfile,
    OAuthExchangeFailed,
    PostMetrics,
    RateLimited,
    TokenSet,
    TransientPlatformError,
)
from interfaces.platforms.http import after, json_object, with_query
from interfaces.platforms.staged import StagedOnly
from interfaces.platforms.tiktok.api import QUERY_BATCH, RATE_WINDOW
from interfaces.platforms.tiktok.publishing import TikTokPublisher
from interfaces.platforms.tiktok.upload import DEFAULT_CHUNK

SCOPES = ("user.info.basic", "user.info.profile", "video.publish", "video.upload", "video.list")
AUTHORIZE_URL = "https://www.tiktok.com/v2/auth/authorize/"
API_BASE_URL = "https://open.tiktokapis.com"
PROFILE_FIELDS = "open_id,union_id,avatar_url,display_name,username"
METRIC_FIELDS = "id,like_count,comment_count,share_count,view_count"


class TikTokAdapter(StagedOnly, TikTokPublisher):
    """The ``PlatformAdapter``, ``StagedPublisher`` and ``MetricsSource`` for TikTok."""

    provider = "tiktok"
    _upload_refusal = "TikTok uploads media as part of publish(), not on its own"
    _post_refusal = "TikTok posts are published in stages through publish()"
    _timeline_refusal = "TikTok deliveries settle from their publish_id, not a timeline"

    def __init__(
        self,
        *,
        client_key: str,
        client_secret: str,
        authorize_url: str = AUTHORIZE_URL,
        api_base_url: str = API_BASE_URL,
        pull_url_prefixes: Sequence[str] = (),
        http: httpx.Client | None = None,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        chunk_size: int = DEFAULT_CHUNK,
        status_interval: float = 3.0,
        processing_timeout: float = 300.0,
        post_id_timeout: float = 60.0,
        pull_settle_timeout: float = 120.0,
        upload_rate_floor: int = 1_000_000,
    ) -> None:
        """Waits are counted in ``sleep`` seconds: status polls ``status_interval`` apart
        (TikTok allows 30 a minute per token) for up to ``processing_timeout`` until TikTok
        publishes, then up to ``post_id_timeout`` for the public post id (after that the
        publish id stands in for it). ``upload_rate_floor`` (bytes/s) sizes the claim held
        for an upload."""
        super().__init__(api_base_url=api_base_url, http=http, timeout=timeout, sleep=sleep)
        self._client_key = client_key
        self._client_secret = client_secret
        self._authorize_url = authorize_url
        self._pull_prefixes = tuple(prefix for prefix in pull_url_prefixes if prefix)
        self._chunk_size = chunk_size
        self._status_interval = max(status_interval, 2.0)
        self._processing_timeout = processing_timeout
        self._post_id_timeout = post_id_timeout
        self._pull_settle_timeout = pull_settle_timeout
        self._upload_rate_floor = upload_rate_floor

    def capabilities(self) -> tuple[str, ...]:
        return ("video",)

    def post_url(self, remote_id: str) -> str:
        """A post's URL without its author's name (TikTok resolves the video by id)."""
        return f"https://www.tiktok.com/@/video/{remote_id}"

    # -- OAuth ---------------------------------------------------------------------------

    def authorization_url(self, *, state: str, code_challenge: str, redirect_uri: str) -> str:
        return with_query(
            self._authorize_url,
            {
                "client_key": self._client_key,
                "response_type": "code",
                "scope": ",".join(SCOPES),
                "redirect_uri": redirect_uri,
                "state": state,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            },
        )

    def exchange_code(self, *, code: str, code_verifier: str, redirect_uri: str) -> TokenSet:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        return self._token_request(form, action="exchange the authorization code")

    def refresh(self, refresh_token: str) -> TokenSet:
        """New tokens; TikTok rotates the refresh token (the old one stops working), so the
        returned ``refresh_token`` and ``refresh_expires_at`` replace the old ones."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self._token_request(form, action="refresh the token")

    def revoke(self, token: str) -> None:
        """End the app's authorization by the token's user."""
        response = self._send(
            "POST", "/v2/oauth/revoke/", data=self._client_form(token=token), action="revoke"
        )
        self._token_body(response, "revoke the authorization")

    def _client_form(self, **fields: str) -> dict[str, str]:
        return {"client_key": self._client_key, "client_secret": self._client_secret, **fields}

    def _token_request(self, form: dict[str, str], *, action: str) -> TokenSet:
        requested_at = datetime.now(UTC)
        response = self._send(
            "POST", "/v2/oauth/token/", data=self._client_form(**form), action=action
        )
        body = self._token_body(response, action)
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise TransientPlatformError(
                f"TikTok's token endpoint returned no access token while trying to {action}",
                status=response.status_code,
            )
        refresh_token = body.get("refresh_token")
        scope = body.get("scope")
        return TokenSet(
            access_token=access_token,
            refresh_token=refresh_token if isinstance(refresh_token, str) else None,
            expires_at=after(requested_at, body.get("expires_in")),
            refresh_expires_at=after(requested_at, body.get("refresh_expires_in")),
            scopes=tuple(s for s in scope.split(",") if s) if isinstance(scope, str) else (),
        )

    def _token_body(self, response: httpx.Response, action: str) -> dict[str, Any]:
        """The token endpoint's flat answer, or the error it holds (HTTP 200 or not)."""
        status = response.status_code
        if status == 429:
            raise RateLimited(
                f"TikTok rate-limited its token endpoint while trying to {action}",
                reset_at=datetime.now(UTC) + RATE_WINDOW,
            )
        if status >= 500:
            raise TransientPlatformError(
                f"TikTok's token endpoint failed with HTTP {status} while trying to {action}",
                status=status,
            )
        body = json_object(response)
        if body is None:
            raise TransientPlatformError(
                f"TikTok's token endpoint answered unreadably while trying to {action}",
                status=status,
            )
        error = body.get("error")
        if isinstance(error, dict):  # a v2 envelope
            code = error.get("code")
            if code == "ok":
                return body
            if code == "internal_error":
                raise TransientPlatformError(f"TikTok failed while trying to {action}")
            error = code
        if error or status >= 400:
            description = body.get("error_description")
            reason = ": ".join(str(part) for part in (error, description) if part)
            raise OAuthExchangeFailed(
                f"TikTok refused to {action} (HTTP {status}{', ' + reason if reason else ''})",
                status=status,
            )
        return body

    # -- profile and metrics -------------------------------------------------------------

    def fetch_profile(self, access_token: str) -> AccountProfile:
        data = self._call(
            "GET",
            "/v2/user/info/",
            access_token,
            action="read the profile",
            scope="user.info.basic and user.info.profile",
            params={"fields": PROFILE_FIELDS},
        )
        user = data.get("user")
        if not isinstance(user, dict) or not isinstance(user.get("open_id"), str):
            raise TransientPlatformError("TikTok returned a profile without an open_id")
        username = str(user.get("username") or "")
        avatar = user.get("avatar_url")
        return AccountProfile(
            external_id=user["open_id"],
            username=username,
            display_name=str(user.get("display_name") or username),
            avatar_url=avatar if isinstance(avatar, str) and avatar else None,
        )

    def post_metrics(
        self, access_token: str, *, account_id: str, remote_ids: Sequence[str]
    ) -> list[PostMetrics]:
        """Counters of the account's videos, 20 ids per query. Ids TikTok does not return
        (deleted, private, or a publish id standing in for a post id) are left out."""
        ids = [remote_id for remote_id in dict.fromkeys(remote_ids) if remote_id.isdigit()]
        metrics = []
        for offset in range(0, len(ids), QUERY_BATCH):
            data = self._call(
                "POST",
                "/v2/video/query/",
                access_token,
                action="read post metrics",
                scope="video.list",
                params={"fields": METRIC_FIELDS},
                json={"filters": {"video_ids": ids[offset : offset + QUERY_BATCH]}},
            )
            for video in data.get("videos") or ():
                if isinstance(video, dict) and video.get("id") is not None:
                    metrics.append(
                        PostMetrics(
                            remote_id=str(video["id"]),
                            likes=_count(video.get("like_count")),
                            comments=_count(video.get("comment_count")),
                            shares=_count(video.get("share_count")),
                            views=_count(video.get("view_count")),
                        )
                    )
        return metrics


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
