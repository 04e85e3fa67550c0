"""TikTok's v2 API: every answer is an envelope ``{data, error: {code, message, log_id}}``,
and a ``code`` other than ``ok`` is a failure even with HTTP 200; this maps it to the
taxonomy's errors. Also the handle of a post on its way (``publish_id``): its status, and
the checkpoints that remember it. Tokens never appear in exception messages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from application.platforms import (
    AuthorizationExpired,
    ContentRejected,
    PlatformError,
    PublishProgress,
    QuotaReached,
    RateLimited,
    TransientPlatformError,
)
from interfaces.platforms.http import HttpAdapter, json_object

PUBLISH_ID = "publish_id"
PULL_REQUESTED_AT = "pull_requested_at"
QUERY_BATCH = 20
RATE_WINDOW = timedelta(minutes=1)

_QUOTA_CODES = ("spam_risk_too_many_posts", "reached_active_user_cap")
_SCOPE_CODES = ("scope_not_authorized", "scope_permission_missed")
#: What a user is told when TikTok refuses the content or the account for good.
REFUSALS = {
    "spam_risk_user_banned_from_posting": "TikTok has banned this account from posting for now",
    "privacy_level_option_mismatch": "TikTok refused the privacy level chosen for this account",
    "unaudited_client_can_only_post_to_private_accounts": "This Kairos app is not audited by "
    "TikTok yet: it can only post to private accounts (visible to the creator only)",
    "url_ownership_unverified": "The media URL is not under a domain or URL prefix verified "
    "with TikTok for this app",
    "invalid_file_upload": "TikTok refused the uploaded file",
}


class UnknownPublish(ContentRejected):
    """TikTok does not know the ``publish_id`` (``invalid_publish_id``)."""


class TikTokApi(HttpAdapter):
    """Calls to TikTok's v2 API, each answer's envelope read into data or a typed error."""

    _platform = "TikTok"

    def __init__(
        self,
        *,
        api_base_url: str,
        http: httpx.Client | None,
        timeout: float,
        sleep: Callable[[float], None],
    ) -> None:
        super().__init__(http=http, timeout=timeout, sleep=sleep)
        self._api = api_base_url.rstrip("/")

    def _send(self, method: str, path: str, *, action: str, **kwargs: Any) -> httpx.Response:
        return self._request(method, self._api + path, action=action, **kwargs)

    def _call(
        self, method: str, path: str, token: str, *, action: str, scope: str, **kwargs: Any
    ) -> dict[str, Any]:
        """The ``data`` of a v2 call, or the typed error its envelope (or status) holds."""
        headers = {"Authorization": f"Bearer {token}"}
        response = self._send(method, path, action=action, headers=headers, **kwargs)
        status = response.status_code
        body = json_object(response) or {}
        error = body.get("error")
        code = str(error.get("code")) if isinstance(error, dict) else None
        if status < 300 and code == "ok":
            data = body.get("data")
            return data if isinstance(data, dict) else {}
        if status < 300 and code is None:
            raise TransientPlatformError(
                f"TikTok answered unreadably while trying to {action}", status=status
            )
        message = error.get("message") if isinstance(error, dict) else None
        raise _api_error(status, code, str(message or ""), action, scope)

    def _status(self, token: str, publish_id: str) -> dict[str, Any]:
        return self._call(
            "POST",
            "/v2/post/publish/status/fetch/",
            token,
            action="check the post's status",
            scope="video.publish",
            json={"publish_id": publish_id},
        )


def forget(progress: PublishProgress) -> None:
    """Drop the checkpoints of a post that must start over."""
    progress.record(PUBLISH_ID, "")
    if progress.get(PULL_REQUESTED_AT):
        progress.record(PULL_REQUESTED_AT, "")


def _api_error(
    status: int, code: str | None, message: str, action: str, scope: str
) -> PlatformError:
    reason = code or f"HTTP {status}"
    detail = f"TikTok refused to {action} ({reason}{': ' + message if message else ''})"
    if code == "rate_limit_exceeded" or status == 429:
        reset_at = datetime.now(UTC) + RATE_WINDOW
        return RateLimited(
            f"TikTok's per-minute limit was reached while trying to {action}",
            reset_at=reset_at,
            status=status,
        )
    if code == "internal_error" or status >= 500:
        return TransientPlatformError(f"TikTok failed while trying to {action}", status=status)
    if code == "access_token_invalid":
        return AuthorizationExpired(
            "TikTok no longer accepts this account's authorization; reconnect the account",
            status=status,
        )
    if code in _SCOPE_CODES:
        return AuthorizationExpired(
            f"The TikTok account did not grant the {scope} "
            f"{'permissions' if ' and ' in scope else 'permission'} needed to {action}: "
            "reconnect it and allow every permission asked",
            status=status,
        )
    if code in _QUOTA_CODES:
        which = "this app's daily" if code == "reached_active_user_cap" else "the account's daily"
        return QuotaReached(
            f"TikTok's limit on {which} posts is reached", retry_at=next_day(), status=status
        )
    if code == "invalid_publish_id":
        return UnknownPublish(detail, status=status)
    if code in REFUSALS:
        return ContentRejected(REFUSALS[code], status=status)
    if status == 401:
        return AuthorizationExpired(detail, status=status)
    return ContentRejected(detail, status=status)


def next_day() -> datetime:
    """TikTok's daily caps: try again after the next UTC midnight."""
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    return tomorrow.replace(hour=0, minute=5, second=0, microsecond=0)
