"""The Graph API as both Instagram logins reach it: requests with the token in a header,
error answers read into :class:`GraphFailure` and mapped to the taxonomy's errors, and
the token endpoints' answers. Tokens never appear in exception messages."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from application.platforms import (
    AuthorizationExpired,
    ContentRejected,
    OAuthExchangeFailed,
    PlatformError,
    QuotaReached,
    RateLimited,
    TokenSet,
    TransientPlatformError,
)
from interfaces.platforms.http import HttpAdapter, after, json_object

API_VERSION = "v25.0"
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80001, 80002, 80006})
AUTH_CODES = frozenset({102, 190})
#: Subcodes Meta documents as "retry" (reference §1.7).
RETRY_SUBCODES = frozenset({2207001, 2207003, 2207052, 2207082})
#: Subcodes meaning the container is gone or unusable: create a new one.
NEW_CONTAINER_SUBCODES = frozenset({2207006, 2207008, 2207020, 2207032, 2207053})
QUOTA_SUBCODE = 2207042
NOT_READY_SUBCODE = 2207027
FRIENDLY = {
    2207004: "The photo is larger than Instagram's 8 MB limit.",
    2207005: "Instagram accepts only JPEG photos.",
    2207009: "The photo's aspect ratio is outside what Instagram accepts (4:5 to 1.91:1);"
    " crop it and publish again.",
    2207010: "The caption is over Instagram's limits (2,200 characters, 30 hashtags,"
    " 20 @mentions).",
    2207040: "The caption tags more than 20 accounts with @.",
    2207028: "An Instagram carousel needs 2 to 10 photos or videos.",
    2207026: "Instagram cannot use this video (MP4 or MOV, 3 s to 15 min, at most 300 MB).",
    2207023: "Instagram does not accept this kind of media.",
    2207050: "The Instagram account is restricted.",
    2207051: "Instagram restricted this activity to protect its community.",
    2207057: "The reel's cover frame is out of range.",
}


@dataclass(frozen=True)
class GraphFailure:
    """A Graph API error answer (``{"error": {...}}``, or the older Instagram shape)."""

    status: int
    code: int | None
    subcode: int | None
    message: str
    user_message: str | None
    transient: bool
    reset_at: datetime | None

    @classmethod
    def of(cls, response: httpx.Response, secret: str | None = None) -> GraphFailure:
        body = json_object(response) or {}
        error = body.get("error")
        code = subcode = None
        user_message, transient = None, False
        if isinstance(error, dict):
            code, subcode = int_or_none(error.get("code")), int_or_none(error.get("error_subcode"))
            message = str(error.get("message") or "")
            user = error.get("error_user_msg")
            user_message = str(user) if user else None
            transient = error.get("is_transient") is True
        else:
            message = str(body.get("error_message") or body.get("error_description") or "")
        if secret:
            message = message.replace(secret, "[token]")
        return cls(
            status=response.status_code,
            code=code,
            subcode=subcode,
            message=message or f"HTTP {response.status_code}",
            user_message=user_message,
            transient=transient,
            reset_at=_reset_at(response.headers),
        )

    @property
    def not_ready(self) -> bool:
        return self.code == 9007 or self.subcode == NOT_READY_SUBCODE

    @property
    def already_published(self) -> bool:
        return self.code == 100 and "already been published" in self.message.lower()

    @property
    def quota(self) -> bool:
        return self.subcode == QUOTA_SUBCODE or (self.code == 9 and self.subcode is None)

    @property
    def gone(self) -> bool:
        """The node does not exist (or is not this token's to see)."""
        return self.subcode in NEW_CONTAINER_SUBCODES or (self.code == 100 and self.subcode == 33)

    def describe(self) -> str:
        codes = f"code {self.code}" + (f"/{self.subcode}" if self.subcode else "")
        text = self.user_message or self.message
        friendly = FRIENDLY.get(self.subcode or 0)
        if friendly:
            return f"{friendly} (Instagram: {text}; {codes})"
        return f"{text} ({codes})" if self.code is not None else text

    def error(self, action: str) -> PlatformError:
        """The taxonomy's error for this answer to an attempt to ``action``."""
        code, status = self.code, self.status
        message = f"Instagram refused to {action}: {self.describe()}"
        if code in AUTH_CODES:
            return AuthorizationExpired(
                f"Instagram no longer accepts this account's authorization ({self.message});"
                " reconnect the account",
                status=status,
            )
        if code == 100 and self.subcode == 33:  # the account node: the login no longer reaches it
            return AuthorizationExpired(
                f"{message}; the account is no longer reachable with this login (on Facebook"
                " Login, check that its Page is still linked), reconnect it",
                status=status,
            )
        if self.quota:
            return QuotaReached(message, retry_at=None, status=status)
        if code in RATE_LIMIT_CODES and self.subcode != 2207051:
            return RateLimited(message, reset_at=self.reset_at, status=status)
        if code == 10 or (code is not None and 200 <= code <= 299):
            return AuthorizationExpired(
                f"{message}; reconnect the account and grant every permission Kairos asks for",
                status=status,
            )
        if (
            status >= 500
            or self.transient
            or code in (1, 2, -1, -2, 9007)
            or self.subcode in RETRY_SUBCODES | NEW_CONTAINER_SUBCODES
        ):
            return TransientPlatformError(message, status=status)
        return ContentRejected(message, status=status)


class Graph(HttpAdapter):
    """One Graph API host: requests with the token in a header, answers mapped to errors."""

    _platform = "Instagram"
    #: Whose login the token endpoints belong to, for messages.
    _login = "Instagram"

    def __init__(
        self,
        *,
        graph_url: str,
        api_version: str,
        http: httpx.Client | None,
        timeout: float,
        sleep: Callable[[float], None],
        processing_timeout: float,
    ) -> None:
        super().__init__(http=http, timeout=timeout, sleep=sleep)
        self._root = graph_url.rstrip("/")
        self._api = f"{self._root}/{api_version}"
        self._processing_timeout = processing_timeout

    def _attempt(
        self,
        method: str,
        path: str,
        token: str,
        *,
        action: str,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> dict[str, Any] | GraphFailure:
        """The answer to one API call, or its failure for the caller to look at."""
        response = self._request(
            method,
            self._api + path,
            action=action,
            params=params,
            data=data,
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.status_code >= 300:
            return GraphFailure.of(response, token)
        body = json_object(response)
        if body is None:
            raise TransientPlatformError(
                f"Instagram returned an unreadable answer while trying to {action}",
                status=response.status_code,
            )
        return body

    def _call(
        self,
        method: str,
        path: str,
        token: str,
        *,
        action: str,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        outcome = self._attempt(method, path, token, action=action, params=params, data=data)
        if isinstance(outcome, GraphFailure):
            raise outcome.error(action)
        return outcome

    def _token_call(self, method: str, url: str, *, action: str, **kwargs: Any) -> dict[str, Any]:
        """A token endpoint's answer; a refusal is ``OAuthExchangeFailed``."""
        response = self._request(method, url, action=action, **kwargs)
        if response.status_code >= 300:
            failure = GraphFailure.of(response)
            if failure.code in RATE_LIMIT_CODES:
                raise failure.error(action)
            if failure.status >= 500 or failure.transient:
                raise TransientPlatformError(
                    f"{self._login}'s token endpoint failed while trying to {action}"
                    f" (HTTP {failure.status})",
                    status=failure.status,
                )
            raise OAuthExchangeFailed(
                f"{self._login} refused to {action} (HTTP {failure.status}: {failure.message})",
                status=failure.status,
            )
        body = json_object(response)
        if body is None:
            raise TransientPlatformError(
                f"{self._login}'s token endpoint returned an unreadable answer while trying to"
                f" {action}",
                status=response.status_code,
            )
        return body

    @staticmethod
    def _token_set(
        body: dict[str, Any], requested_at: datetime, *, refreshable: bool, action: str
    ) -> TokenSet:
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise TransientPlatformError(
                f"Instagram returned no access token while trying to {action}"
            )
        expires_at = after(requested_at, body.get("expires_in"))
        # An Instagram Login long-lived token refreshes itself: it is its own refresh token.
        return TokenSet(
            access_token=token,
            refresh_token=token if refreshable else None,
            expires_at=expires_at,
            refresh_expires_at=expires_at if refreshable else None,
        )


def next_cursor(body: dict[str, Any]) -> str | None:
    paging = body.get("paging")
    if not isinstance(paging, dict) or not paging.get("next"):
        return None
    cursors = paging.get("cursors")
    after = cursors.get("after") if isinstance(cursors, dict) else None
    return after if isinstance(after, str) and after else None


def parse_time(raw: object) -> datetime | None:
    """Graph timestamps look like ``2024-05-01T12:34:56+0000``."""
    if not isinstance(raw, str):
        return None
    try:
        return datetime.strptime(raw, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        try:
            return datetime.fromisoformat(raw)
        except ValueError:
            return None


def int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def _reset_at(headers: httpx.Headers) -> datetime | None:
    """When a rate limit lifts, from ``X-Business-Use-Case-Usage`` (minutes to regain
    access, per business object); ``X-App-Usage`` carries no time."""
    raw = headers.get("x-business-use-case-usage")
    if not raw:
        return None
    try:
        usage = json.loads(raw)
    except ValueError:
        return None
    minutes = [
        entry.get("estimated_time_to_regain_access")
        for entries in (usage.values() if isinstance(usage, dict) else ())
        for entry in (entries if isinstance(entries, list) else ())
        if isinstance(entry, dict)
    ]
    longest = max((m for m in minutes if isinstance(m, int | float) and m > 0), default=None)
    return datetime.now(UTC) + timedelta(minutes=longest) if longest else None
