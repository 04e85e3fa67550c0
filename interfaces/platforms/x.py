"""The X (Twitter) adapter: OAuth 2.0 Authorization Code + PKCE and API v2 over httpx.

Works against the real X (``https://api.x.com``) or the ``sandbox/`` simulator
(``http://127.0.0.1:8001/x``): only the base URLs differ.

Tokens never appear in exception messages, and this module does not log.
"""

from __future__ import annotations

import base64
import html
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from application.platforms import (
    AccountProfile,
    AuthorizationExpired,
    ContentRejected,
    DuplicateContent,
    MediaPayload,
    OAuthExchangeFailed,
    PlatformError,
    PostMetrics,
    QuotaExceeded,
    RateLimited,
    RemotePost,
    TimelinePost,
    TokenSet,
    TransientPlatformError,
    UploadedMedia,
)
from interfaces.platforms.http import HttpAdapter, after, json_object, with_query

SCOPES = ("tweet.read", "tweet.write", "users.read", "offline.access", "media.write")
DUPLICATE_DETAIL = "You are not allowed to create a Tweet with duplicate content."
_AUTH_PROBLEMS = ("unsupported-authentication", "client-forbidden")
#: Bytes per ``append`` (X documents 1 MB in its samples; v1.1 allowed up to 5 MB).
MEDIA_CHUNK_SIZE = 4 * 1024 * 1024
_TCO_LINK = re.compile(r"https://t\.co/[A-Za-z0-9]+")
_POST_ID = re.compile(r"^[0-9]{1,19}$")
#: Post ids one lookup (``GET /2/tweets?ids=``) takes.
LOOKUP_BATCH = 100


class XDuplicateContent(DuplicateContent):
    """X refused the post as a duplicate of one the user posted recently."""


def post_url(post_id: str) -> str:
    return f"https://x.com/i/web/status/{post_id}"


class XAdapter(HttpAdapter):
    """The ``PlatformAdapter`` for X. One instance per configured X app."""

    provider = "twitter"
    _platform = "X"

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        authorize_url: str,
        api_base_url: str,
        http: httpx.Client | None = None,
        timeout: float = 10.0,
        media_processing_timeout: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``media_processing_timeout`` caps how long :meth:`upload_media` waits (in total
        ``sleep`` seconds) for X to process a video or GIF before giving up as transient."""
        super().__init__(http=http, timeout=timeout, sleep=sleep)
        self._client_id = client_id
        self._client_secret = client_secret
        self._authorize_url = authorize_url
        self._api = api_base_url.rstrip("/")
        self._media_processing_timeout = media_processing_timeout

    def capabilities(self) -> tuple[str, ...]:
        return ("text", "images", "video", "threads")

    # -- OAuth ---------------------------------------------------------------------------

    def authorization_url(self, *, state: str, code_challenge: str, redirect_uri: str) -> str:
        return with_query(
            self._authorize_url,
            {
                "response_type": "code",
                "client_id": self._client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(SCOPES),
                "state": state,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            },
        )

    def exchange_code(self, *, code: str, code_verifier: str, redirect_uri: str) -> TokenSet:
        return self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            },
            action="exchange the authorization code",
        )

    def refresh(self, refresh_token: str) -> TokenSet:
        return self._token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token},
            action="refresh the token",
        )

    def revoke(self, token: str) -> None:
        """Revoke an access or refresh token (revoking a refresh token ends the grant)."""
        response = self._send(
            "POST",
            "/2/oauth2/revoke",
            data={"token": token},
            headers={"Authorization": self._basic_auth()},
            action="revoke the token",
        )
        if response.status_code >= 400:
            raise self._token_error(response, "revoke the token")

    def _basic_auth(self) -> str:
        pair = f"{quote(self._client_id, safe='')}:{quote(self._client_secret, safe='')}"
        return "Basic " + base64.b64encode(pair.encode()).decode()

    def _token_request(self, form: dict[str, str], *, action: str) -> TokenSet:
        requested_at = datetime.now(UTC)
        response = self._send(
            "POST",
            "/2/oauth2/token",
            data=form,
            headers={"Authorization": self._basic_auth()},
            action=action,
        )
        if response.status_code >= 400:
            raise self._token_error(response, action)
        body = json_object(response)
        access_token = body.get("access_token") if body else None
        if not isinstance(access_token, str) or not access_token:
            raise TransientPlatformError(
                f"X token endpoint returned no access token while trying to {action}",
                status=response.status_code,
            )
        expires_at = after(requested_at, body.get("expires_in") if body else None)
        refresh_token = body.get("refresh_token") if body else None
        scope = body.get("scope") if body else None
        return TokenSet(
            access_token=access_token,
            refresh_token=refresh_token if isinstance(refresh_token, str) else None,
            expires_at=expires_at,
            scopes=tuple(scope.split()) if isinstance(scope, str) else (),
        )

    def _token_error(self, response: httpx.Response, action: str) -> PlatformError:
        status = response.status_code
        if status == 429:
            return RateLimited(
                f"X rate-limited the token endpoint while trying to {action}",
                reset_at=_reset_at(response),
                status=status,
            )
        if status >= 500:
            return TransientPlatformError(
                f"X token endpoint failed with HTTP {status} while trying to {action}",
                status=status,
            )
        body = json_object(response) or {}
        error = body.get("error")
        description = body.get("error_description")
        reason = ": ".join(str(part) for part in (error, description) if isinstance(part, str))
        return OAuthExchangeFailed(
            f"X refused to {action} (HTTP {status}{', ' + reason if reason else ''})",
            status=status,
        )

    # -- API -----------------------------------------------------------------------------

    def fetch_profile(self, access_token: str) -> AccountProfile:
        response = self._send(
            "GET",
            "/2/users/me",
            params={"user.fields": "profile_image_url"},
            headers=_bearer(access_token),
            action="fetch the profile",
        )
        body = self._check(response, "fetch the profile", forbidden_is_auth=True)
        data = body.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise TransientPlatformError("X returned a profile without an id", status=200)
        username = str(data.get("username", ""))
        avatar = data.get("profile_image_url")
        return AccountProfile(
            external_id=data["id"],
            username=username,
            display_name=str(data.get("name") or username),
            avatar_url=avatar if isinstance(avatar, str) else None,
        )

    def post_url(self, remote_id: str) -> str:
        return post_url(remote_id)

    def create_post(
        self,
        access_token: str,
        *,
        text: str,
        in_reply_to: str | None = None,
        media_ids: Sequence[str] = (),
    ) -> RemotePost:
        payload: dict[str, Any] = {}
        if text or not media_ids:  # X requires text unless media is attached
            payload["text"] = text
        if in_reply_to is not None:
            payload["reply"] = {"in_reply_to_tweet_id": in_reply_to}
        if media_ids:
            payload["media"] = {"media_ids": list(media_ids)}
        response = self._send(
            "POST", "/2/tweets", json=payload, headers=_bearer(access_token), action="create a post"
        )
        body = self._check(response, "create a post")
        data = body.get("data")
        post_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(post_id, str) or not post_id:
            # Accepted (2xx) but unreadable: the post may exist, so this is "outcome unknown".
            raise TransientPlatformError(
                "X accepted the post but returned no id", status=response.status_code
            )
        return RemotePost(remote_id=post_id, url=post_url(post_id))

    # -- media ---------------------------------------------------------------------------

    def upload_media(self, access_token: str, media: MediaPayload) -> UploadedMedia:
        """Chunked upload (initialize, append, finalize), then STATUS polls until X has
        processed a video or GIF. Each call starts a new upload: X cannot resume one."""
        headers = _bearer(access_token)
        requested_at = datetime.now(UTC)
        started = self._media_call(
            "POST",
            "/2/media/upload/initialize",
            "start a media upload",
            headers,
            json={
                "media_type": media.content_type.split(";", 1)[0].strip().lower(),
                "total_bytes": media.size,
                "media_category": media_category(media.content_type),
            },
        )
        media_id = started.get("id")
        if not isinstance(media_id, str) or not media_id:
            raise TransientPlatformError("X started a media upload but returned no id")
        sent = 0
        for index, chunk in enumerate(media.chunks(MEDIA_CHUNK_SIZE)):
            self._media_call(
                "POST",
                f"/2/media/upload/{quote(media_id, safe='')}/append",
                "upload a media segment",
                headers,
                data={"segment_index": str(index)},
                files={"media": ("segment", chunk, "application/octet-stream")},
            )
            sent += len(chunk)
        if sent != media.size:
            # The stored file changed under us or was read short: a retry may read it whole.
            raise TransientPlatformError(f"Media payload gave {sent} bytes, not {media.size}")
        finished = self._media_call(
            "POST",
            f"/2/media/upload/{quote(media_id, safe='')}/finalize",
            "finish a media upload",
            headers,
        )
        self._await_processing(media_id, finished, headers)
        expires_in = finished.get("expires_after_secs", started.get("expires_after_secs"))
        return UploadedMedia(remote_id=media_id, expires_at=after(requested_at, expires_in))

    def _await_processing(
        self, media_id: str, data: dict[str, Any], headers: dict[str, str]
    ) -> None:
        """Poll STATUS as X asks (``check_after_secs``) until the media is usable."""
        waited = 0.0
        info = data.get("processing_info")
        while isinstance(info, dict) and info.get("state") != "succeeded":
            if info.get("state") == "failed":
                error = info.get("error")
                reason = error.get("message") if isinstance(error, dict) else None
                raise ContentRejected(f"X could not process the media: {reason or 'failed'}")
            remaining = self._media_processing_timeout - waited
            if remaining <= 0:
                raise TransientPlatformError(f"X was still processing the media after {waited:g} s")
            check_after = info.get("check_after_secs")
            delay = float(check_after) if isinstance(check_after, int | float) else 1.0
            delay = min(max(delay, 1.0), remaining)
            self._sleep(delay)
            waited += delay
            status = self._media_call(
                "GET",
                "/2/media/upload",
                "check media processing",
                headers,
                params={"command": "STATUS", "media_id": media_id},
            )
            info = status.get("processing_info")

    def _media_call(
        self, method: str, path: str, action: str, headers: dict[str, str], **kwargs: Any
    ) -> dict[str, Any]:
        """The ``data`` object of a media endpoint's answer. A plain 403 there most likely
        means the grant lacks ``media.write``: the token still posts text, so only this
        delivery fails, with advice to reconnect (which asks for every scope again)."""
        response = self._send(method, path, action=action, headers=headers, **kwargs)
        try:
            body = self._check(response, action)
        except ContentRejected as exc:
            if exc.status != 403:
                raise
            raise ContentRejected(
                f"{exc.message}; the account may lack X's media permission (media.write): "
                "reconnect it to grant it, then republish",
                status=exc.status,
            ) from exc
        data = body.get("data")
        if not isinstance(data, dict):
            raise TransientPlatformError(
                f"X returned no data while trying to {action}", status=response.status_code
            )
        return data

    def recent_posts(
        self,
        access_token: str,
        *,
        user_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
        max_results: int = 10,
    ) -> list[TimelinePost]:
        """The user's posts between ``since`` and ``until``, newest first, following
        ``next_token`` pages up to ``max_results``: how a publish in doubt is settled."""
        params: dict[str, str | int] = {"tweet.fields": "created_at,entities,attachments"}
        if since is not None:
            params["start_time"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if until is not None:
            params["end_time"] = until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        posts: list[TimelinePost] = []
        while len(posts) < max_results:
            params["max_results"] = min(max(max_results - len(posts), 5), 100)
            body = self._check(
                self._send(
                    "GET",
                    f"/2/users/{quote(user_id, safe='')}/tweets",
                    params=params,
                    headers=_bearer(access_token),
                    action="list recent posts",
                ),
                "list recent posts",
            )
            posts.extend(_timeline_posts(body))
            next_token = (body.get("meta") or {}).get("next_token")
            if not isinstance(next_token, str):
                break
            params["pagination_token"] = next_token
        return posts[:max_results]

    def post_metrics(
        self, access_token: str, *, account_id: str, remote_ids: Sequence[str]
    ) -> list[PostMetrics]:
        """The public metrics of the posts, looked up 100 ids at a time, in the order
        asked. Posts X does not have (deleted, or never an X post id) are left out. X
        looks posts up by id alone: ``account_id`` is not needed."""
        wanted = list(dict.fromkeys(rid for rid in remote_ids if _POST_ID.match(rid)))
        metrics: list[PostMetrics] = []
        for start in range(0, len(wanted), LOOKUP_BATCH):
            response = self._send(
                "GET",
                "/2/tweets",
                params={
                    "ids": ",".join(wanted[start : start + LOOKUP_BATCH]),
                    "tweet.fields": "public_metrics",
                },
                headers=_bearer(access_token),
                action="read post metrics",
            )
            metrics.extend(_post_metrics(self._check(response, "read post metrics")))
        return metrics

    # -- plumbing ------------------------------------------------------------------------

    def _send(self, method: str, path: str, *, action: str, **kwargs: Any) -> httpx.Response:
        return self._request(method, self._api + path, action=action, **kwargs)

    def _check(
        self, response: httpx.Response, action: str, *, forbidden_is_auth: bool = False
    ) -> dict[str, Any]:
        """The JSON body of a successful response, or the typed error for a failed one."""
        status = response.status_code
        if status < 300:
            body = json_object(response)
            if body is None:
                raise TransientPlatformError(
                    f"X returned an unreadable response while trying to {action}", status=status
                )
            return body
        problem = json_object(response) or {}
        detail = problem.get("detail") or problem.get("title") or _first_error(problem)
        if status == 400 and _first_error(problem):
            detail = f"{detail} {_first_error(problem)}"
        problem_type = str(problem.get("type", ""))
        message = f"X refused to {action} (HTTP {status}{': ' + str(detail) if detail else ''})"
        if status == 401:
            raise AuthorizationExpired(message, status=status)
        if status == 429:
            if "usage-capped" in problem_type or problem.get("title") == "UsageCapExceeded":
                raise QuotaExceeded(message, status=status)
            raise RateLimited(message, reset_at=_reset_at(response), status=status)
        if status >= 500:
            raise TransientPlatformError(message, status=status)
        if status == 403 and (
            forbidden_is_auth or any(kind in problem_type for kind in _AUTH_PROBLEMS)
        ):
            raise AuthorizationExpired(message, status=status)
        if status == 403 and detail == DUPLICATE_DETAIL:
            raise XDuplicateContent(message, status=status)
        raise ContentRejected(message, status=status)


def media_category(content_type: str) -> str:
    """X's ``media_category`` for a file: GIFs animate, other images are photos."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "image/gif":
        return "tweet_gif"
    return "tweet_image" if kind.startswith("image/") else "tweet_video"


def _bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def _first_error(problem: dict[str, Any]) -> str | None:
    errors = problem.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        message = errors[0].get("message") or errors[0].get("detail")
        return str(message) if message else None
    return None


def _reset_at(response: httpx.Response) -> datetime | None:
    raw = response.headers.get("x-rate-limit-reset")
    try:
        return datetime.fromtimestamp(int(raw), UTC) if raw else None
    except (ValueError, OverflowError, OSError):
        return None


def _parse_time(raw: str) -> datetime | None:
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        return None


def _post_metrics(body: dict[str, Any]) -> list[PostMetrics]:
    """The counters of each post in a lookup's ``data``; the ids in its ``errors`` (not
    found, not visible) simply have none."""
    found = []
    for item in body.get("data") or []:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        counts = item.get("public_metrics")
        counts = counts if isinstance(counts, dict) else {}
        # X's docs say retweet_count; its OpenAPI 2.167 says repost_count.
        reposts = _count(counts, "retweet_count", "repost_count")
        quotes = _count(counts, "quote_count")
        shares = None if reposts is None and quotes is None else (reposts or 0) + (quotes or 0)
        found.append(
            PostMetrics(
                remote_id=item["id"],
                likes=_count(counts, "like_count"),
                comments=_count(counts, "reply_count"),
                shares=shares,
                views=_count(counts, "impression_count"),
                saves=_count(counts, "bookmark_count"),
            )
        )
    return found


def _count(counts: dict[str, Any], *keys: str) -> int | None:
    """The first of ``keys`` that holds a count."""
    for key in keys:
        value = counts.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _timeline_posts(body: dict[str, Any]) -> list[TimelinePost]:
    posts = []
    for item in body.get("data") or []:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        created = item.get("created_at")
        attachments = item.get("attachments")
        keys = attachments.get("media_keys") if isinstance(attachments, dict) else None
        posts.append(
            TimelinePost(
                remote_id=item["id"],
                text=_text_as_written(item),
                created_at=_parse_time(created) if isinstance(created, str) else None,
                url=post_url(item["id"]),
                # A media key is "<kind>_<media id>": the id is what the upload returned.
                media_ids=tuple(
                    key.partition("_")[2] for key in keys or () if isinstance(key, str)
                ),
            )
        )
    return posts


def _text_as_written(item: dict[str, Any]) -> str:
    """A post's text as it was sent: X shows each link as a t.co link (``entities.urls``
    says what it stands for) and appends one more for attached media, which is dropped."""
    text = str(item.get("text", ""))
    entities = item.get("entities")
    urls = entities.get("urls") if isinstance(entities, dict) else None
    written: dict[str, str] = {}
    for entity in urls if isinstance(urls, list) else ():
        if not isinstance(entity, dict) or not isinstance(entity.get("url"), str):
            continue
        expanded = entity.get("expanded_url")
        if "media_key" in entity or _is_media_page(expanded, item["id"]):
            written[entity["url"]] = ""
        elif isinstance(expanded, str):
            written[entity["url"]] = expanded
    rebuilt = _TCO_LINK.sub(lambda link: written.get(link[0], link[0]), text)
    return html.unescape(rebuilt).strip()  # X sends & < > escaped


def _is_media_page(expanded: object, post_id: str) -> bool:
    """Whether a link is X's own link to the post's photo or video."""
    return isinstance(expanded, str) and any(
        f"/status/{post_id}/{kind}/" in expanded for kind in ("photo", "video")
    )
