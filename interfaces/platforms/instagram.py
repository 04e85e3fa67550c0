"""The Instagram adapters: Instagram Login (``graph.instagram.com``, provider ``instagram``)
and Facebook Login for Business (``graph.facebook.com``, provider ``instagram-facebook``).
Both publish the same way, through containers; only the login and the host differ.

Works against Meta or the ``sandbox/`` simulator (``http://127.0.0.1:8001/instagram/...``):
only the base URLs differ. Tokens never appear in exception messages; this module does
not log.

Publishing checkpoints (``PublishProgress`` keys), each recorded the moment its id is known:

- ``item/<n>``: the container of the carousel's n-th photo or video (from 0);
- ``container``: the container to publish (the single photo or reel, or the carousel);
- ``media``: the published media id, once ``media_publish`` answered.

How an attempt settles what an earlier one left behind:

- ``media`` recorded: the post is live; only its permalink is read.
- ``container`` recorded: its status decides. ``PUBLISHED``: the post is live but its id
  may be unknown, so the account's recent media are searched (newest first, published at
  or after the earliest unsettled attempt minus a margin) for the caption, compared after
  whitespace normalisation; no match yet is a transient error, checked again later.
  ``FINISHED``: straight to the quota check and ``media_publish``. ``IN_PROGRESS``: wait.
  ``ERROR`` / ``EXPIRED``: forget every checkpoint and create the containers again (an
  unpublished container is invisible and expires on its own). A container Instagram no
  longer knows at all is looked for among the recent media first, as for ``PUBLISHED``,
  and only re-created when no post matches.
- ``item/<n>`` without ``container``: the items still processing or finished are reused.
- ``media_publish`` answering "already published", or failing in a way that leaves the
  outcome unknown (5xx, timeout, dropped connection) while the container now says
  ``PUBLISHED``: settled as above. Otherwise the transient error is raised: the next
  attempt reads the container's status before anything else.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from application.platforms import (
    AccountProfile,
    AuthorizationExpired,
    ContentRejected,
    MediaPayload,
    OAuthExchangeFailed,
    PersonalAccountRefused,
    PlatformError,
    PostMetrics,
    PublishMedia,
    PublishProgress,
    PublishRequest,
    QuotaReached,
    RateLimited,
    RemotePost,
    TimelinePost,
    TokenSet,
    TransientPlatformError,
    UploadedMedia,
)

API_VERSION = "v25.0"
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
ITEM, CONTAINER, MEDIA = "item/{}", "container", "media"
INSIGHT_METRICS = ("views", "reach", "likes", "comments", "shares", "saved")

IMAGE_POLL_SECONDS = 1.0
VIDEO_POLL_SECONDS = 5.0
#: How long an image may process before the lease is extended (a video extends it at once).
IMAGE_GRACE_SECONDS = 10.0
HOLD_STEP = timedelta(seconds=30)
NOT_READY_RETRIES = 5
NOT_READY_WAIT_SECONDS = 3.0
#: How much earlier than the attempt a post found while settling may have been published
#: (clock differences between Kairos and Meta).
SETTLE_MARGIN = timedelta(minutes=5)
SETTLE_PAGES = 4

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


def post_url(remote_id: str) -> str:
    """A media's URL when its permalink is unknown (Meta's permalinks use a shortcode)."""
    return f"https://www.instagram.com/p/{remote_id}/"


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
        body = _json_object(response) or {}
        error = body.get("error")
        code = subcode = None
        user_message, transient = None, False
        if isinstance(error, dict):
            code, subcode = _int(error.get("code")), _int(error.get("error_subcode"))
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


class _Graph:
    """One Graph API host: requests with the token in a header, answers mapped to errors."""

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
        self._root = graph_url.rstrip("/")
        self._api = f"{self._root}/{api_version}"
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout)
        self._timeout = timeout
        self._sleep = sleep
        self._processing_timeout = processing_timeout

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def _send(self, method: str, url: str, *, action: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, url, timeout=self._timeout, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientPlatformError(f"Instagram timed out while trying to {action}") from exc
        except httpx.TransportError as exc:
            raise TransientPlatformError(
                f"Connection to Instagram failed while trying to {action} ({type(exc).__name__})"
            ) from exc

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
        response = self._send(
            method,
            self._api + path,
            action=action,
            params=params,
            data=data,
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.status_code >= 300:
            return GraphFailure.of(response, token)
        body = _json_object(response)
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
        response = self._send(method, url, action=action, **kwargs)
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
        body = _json_object(response)
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
        expires_in = body.get("expires_in")
        expires_at = None
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            expires_at = requested_at + timedelta(seconds=float(expires_in))
        # An Instagram Login long-lived token refreshes itself: it is its own refresh token.
        return TokenSet(
            access_token=token,
            refresh_token=token if refreshable else None,
            expires_at=expires_at,
            refresh_expires_at=expires_at if refreshable else None,
        )


class _InstagramPublisher(_Graph):
    """Publishing, reconciliation and metrics: identical on both hosts."""

    def capabilities(self) -> tuple[str, ...]:
        return ("images", "video", "carousel")

    def post_url(self, remote_id: str) -> str:
        return post_url(remote_id)

    def upload_media(self, access_token: str, media: MediaPayload) -> UploadedMedia:
        raise PlatformError("Instagram fetches media from its URL while publishing (publish)")

    def create_post(
        self,
        access_token: str,
        *,
        text: str,
        in_reply_to: str | None = None,
        media_ids: Sequence[str] = (),
    ) -> RemotePost:
        raise PlatformError("Instagram publishes through containers (publish)")

    def publish(
        self, access_token: str, request: PublishRequest, progress: PublishProgress
    ) -> RemotePost:
        if not request.media:
            raise ContentRejected("An Instagram post needs a photo or a video")
        if len(request.media) > 10:
            raise ContentRejected("An Instagram carousel holds at most 10 photos or videos")
        return _Publication(self, access_token, request, progress).run()

    def recent_posts(
        self,
        access_token: str,
        *,
        user_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
        max_results: int = 10,
    ) -> list[TimelinePost]:
        """The account's media, newest first, across as many pages as ``max_results`` needs."""
        params = {"fields": "id,caption,timestamp,permalink", "limit": str(min(max_results, 100))}
        if since is not None:
            params["since"] = str(int(since.timestamp()))
        if until is not None:
            params["until"] = str(int(until.timestamp()) + 1)
        posts: list[TimelinePost] = []
        while len(posts) < max_results:
            body = self._call(
                "GET",
                f"/{quote(user_id, safe='')}/media",
                access_token,
                action="list recent posts",
                params=params,
            )
            for item in body.get("data") or []:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    posts.append(_timeline_post(item))
            after = _next_cursor(body)
            if after is None:
                break
            params["after"] = after
        return posts[:max_results]

    def post_metrics(
        self, access_token: str, *, account_id: str, remote_ids: Sequence[str]
    ) -> list[PostMetrics]:
        """Insights of each media, one call each; media Instagram no longer has are left out."""
        found = []
        for remote_id in remote_ids:
            metrics = self._media_metrics(access_token, remote_id)
            if metrics is not None:
                found.append(metrics)
        return found

    def _media_metrics(self, token: str, remote_id: str) -> PostMetrics | None:
        path = f"/{quote(remote_id, safe='')}"
        names = list(INSIGHT_METRICS)
        while names:
            outcome = self._attempt(
                "GET",
                f"{path}/insights",
                token,
                action="read a post's insights",
                params={"metric": ",".join(names)},
            )
            if not isinstance(outcome, GraphFailure):
                return _insights(remote_id, outcome)
            if outcome.gone or outcome.code == 24:
                return None
            unsupported = set(names) & set(re.findall(r"[a-z_]+", outcome.message))
            if outcome.code == 100 and "not support" in outcome.message and unsupported:
                # One unsupported metric fails the whole call: ask again without it.
                names = [name for name in names if name not in unsupported]
                continue
            if outcome.code == 10 and "viewers" in outcome.message.lower():
                break  # too few viewers for insights: the plain counters still tell something
            raise outcome.error("read a post's insights")
        body = self._call(
            "GET",
            path,
            token,
            action="read a post's counters",
            params={"fields": "like_count,comments_count"},
        )
        return PostMetrics(
            remote_id=remote_id,
            likes=_int(body.get("like_count")),
            comments=_int(body.get("comments_count")),
        )


class _Publication:
    """One delivery of one post through containers, checkpointed through ``progress``."""

    def __init__(
        self,
        graph: _InstagramPublisher,
        token: str,
        request: PublishRequest,
        progress: PublishProgress,
    ) -> None:
        self.graph = graph
        self.token = token
        self.request = request
        self.progress = progress
        self.user = quote(request.account_id, safe="")
        self.started = datetime.now(UTC)
        self.video = any(_is_video(item) for item in request.media)

    def _get(self, key: str) -> str | None:
        return self.progress.get(key) or None

    def run(self) -> RemotePost:
        media_id = self._get(MEDIA)
        if media_id is not None:
            return self._posted(media_id)
        container = self._get(CONTAINER)
        if container is not None:
            state, _ = self._status(container)
            if state == "PUBLISHED":
                return self._settle()
            if state == "GONE":  # no status to trust: the account's media tell
                found = self._find_published()
                if found is not None:
                    return found
            if state in ("ERROR", "EXPIRED", "GONE"):
                self._forget()  # re-creating containers is harmless; publishing twice is not
                container = None
        for _round in range(2):
            if container is None:
                container = self._create()
            state = self._await(container, self.video)
            if state == "PUBLISHED":
                return self._settle()
            if state == "FINISHED":
                self._check_quota()
                published = self._media_publish(container)
                if published is not None:
                    return published
            self._forget()  # expired or gone before it was published: build it again
            container = None
        raise TransientPlatformError("Instagram kept losing the post's media container")

    # -- containers ----------------------------------------------------------------------

    def _create(self) -> str:
        media, caption = self.request.media, self.request.text
        if len(media) == 1:
            return self._container(
                CONTAINER, {**_params(media[0], child=False), "caption": caption}
            )
        children = []
        for index, item in enumerate(media):
            known = self._get(ITEM.format(index))
            if known is not None and self._status(known)[0] in ("IN_PROGRESS", "FINISHED"):
                children.append(known)
            else:
                children.append(self._container(ITEM.format(index), _params(item, child=True)))
        for index, child in enumerate(children):
            state = self._await(child, _is_video(media[index]))
            if state != "FINISHED":
                self._forget()
                raise TransientPlatformError(f"Instagram lost carousel item {index + 1}; retrying")
        params = {"media_type": "CAROUSEL", "children": ",".join(children), "caption": caption}
        return self._container(CONTAINER, params)

    def _container(self, key: str, params: dict[str, str]) -> str:
        self.progress.check()
        body = self.graph._call(
            "POST",
            f"/{self.user}/media",
            self.token,
            action="create a media container",
            data=params,
        )
        container = body.get("id")
        if not isinstance(container, str) or not container:
            raise TransientPlatformError("Instagram created a media container but gave no id")
        self.progress.record(key, container)
        return container

    def _forget(self) -> None:
        keys = [CONTAINER, *(ITEM.format(index) for index in range(len(self.request.media)))]
        for key in keys:
            if self._get(key) is not None:
                self.progress.record(key, "")

    def _status(self, container: str) -> tuple[str, str]:
        outcome = self.graph._attempt(
            "GET",
            f"/{quote(container, safe='')}",
            self.token,
            action="check a media container",
            params={"fields": "status_code,status"},
        )
        if isinstance(outcome, GraphFailure):
            if outcome.gone or outcome.code == 24:
                return "GONE", outcome.message
            raise outcome.error("check a media container")
        return str(outcome.get("status_code") or "IN_PROGRESS"), str(outcome.get("status") or "")

    def _await(self, container: str, video: bool) -> str:
        """Poll until the container is no longer processing; ``ERROR`` raises."""
        interval = VIDEO_POLL_SECONDS if video else IMAGE_POLL_SECONDS
        waited, held = 0.0, 0.0 if video else IMAGE_GRACE_SECONDS
        while True:
            state, status = self._status(container)
            if state == "ERROR":
                raise _processing_failed(status)
            if state != "IN_PROGRESS":
                return state
            if waited >= self.graph._processing_timeout:
                raise TransientPlatformError(
                    f"Instagram was still processing the media after {waited:g} s"
                )
            if waited + interval > held:
                self.progress.hold(HOLD_STEP)
                held = waited + HOLD_STEP.total_seconds()
            self.graph._sleep(interval)
            waited += interval

    # -- publishing ----------------------------------------------------------------------

    def _media_publish(self, container: str) -> RemotePost | None:
        """``media_publish`` the finished container; ``None`` if Instagram lost it."""
        for _ in range(NOT_READY_RETRIES):
            self.progress.check()
            try:
                outcome = self.graph._attempt(
                    "POST",
                    f"/{self.user}/media_publish",
                    self.token,
                    action="publish the post",
                    data={"creation_id": container},
                )
            except TransientPlatformError as exc:
                return self._in_doubt(container, exc)
            if not isinstance(outcome, GraphFailure):
                media_id = outcome.get("id")
                if not isinstance(media_id, str) or not media_id:
                    unreadable = TransientPlatformError("Instagram answered without a media id")
                    return self._in_doubt(container, unreadable)
                self.progress.record(MEDIA, media_id)
                return self._posted(media_id)
            if outcome.not_ready:
                self.graph._sleep(NOT_READY_WAIT_SECONDS)
                continue
            if outcome.already_published:
                return self._settle()
            if outcome.quota:
                self._check_quota()
                raise self._quota_reached(None, None, None)
            if outcome.subcode in NEW_CONTAINER_SUBCODES:
                return self._settle() if self._status(container)[0] == "PUBLISHED" else None
            error = outcome.error("publish the post")
            if isinstance(error, TransientPlatformError):
                return self._in_doubt(container, error)
            raise error
        raise TransientPlatformError("Instagram kept answering that the media is not ready")

    def _in_doubt(self, container: str, error: TransientPlatformError) -> RemotePost:
        """``media_publish`` may or may not have happened: the container knows."""
        try:
            state, _ = self._status(container)
        except PlatformError:
            raise error from None
        if state == "PUBLISHED":
            return self._settle()
        raise error

    def _posted(self, media_id: str) -> RemotePost:
        """The post is live: its permalink, or the account's page if Instagram will not say
        (a post's URL uses a shortcode that cannot be derived from its id)."""
        try:
            body = self.graph._call(
                "GET",
                f"/{quote(media_id, safe='')}",
                self.token,
                action="read the post's permalink",
                params={"fields": "permalink"},
            )
        except PlatformError:
            body = {}
        permalink = body.get("permalink")
        if isinstance(permalink, str):
            return RemotePost(media_id, permalink)
        account = quote(self.request.username, safe="")
        return RemotePost(media_id, f"https://www.instagram.com/{account}/" if account else "")

    def _settle(self) -> RemotePost:
        """The container is published: find the media it became by its caption."""
        media_id = self._get(MEDIA)
        if media_id is not None:
            return self._posted(media_id)
        found = self._find_published()
        if found is None:
            raise TransientPlatformError(
                "Instagram reports the post as published but does not list it yet;"
                " checking again later"
            )
        return found

    def _find_published(self) -> RemotePost | None:
        """The earliest media with this post's caption published since the earliest
        unsettled attempt began (less a margin), recorded as ``media``; or None."""
        earliest = self.progress.attempt_started or self.started
        since = min(earliest, self.started) - SETTLE_MARGIN
        caption = _normalise(self.request.text)
        params = {
            "fields": "id,caption,timestamp,permalink",
            "limit": "50",
            "since": str(int(since.timestamp())),
        }
        matches: list[dict[str, Any]] = []
        for _page in range(SETTLE_PAGES):
            body = self.graph._call(
                "GET",
                f"/{self.user}/media",
                self.token,
                action="look for the published post",
                params=params,
            )
            for item in body.get("data") or []:
                published = _parse_time(item.get("timestamp")) if isinstance(item, dict) else None
                if (
                    published is not None
                    and published >= since
                    and isinstance(item.get("id"), str)
                    and _normalise(str(item.get("caption") or "")) == caption
                ):
                    matches.append(item)
            after = _next_cursor(body)
            if after is None:
                break
            params["after"] = after
        if not matches:
            return None
        first = matches[-1]  # newest first: the last match is the earliest publish
        self.progress.record(MEDIA, first["id"])
        permalink = first.get("permalink")
        if isinstance(permalink, str):
            return RemotePost(first["id"], permalink)
        return self._posted(first["id"])

    # -- quota ---------------------------------------------------------------------------

    def _check_quota(self) -> None:
        body = self.graph._call(
            "GET",
            f"/{self.user}/content_publishing_limit",
            self.token,
            action="read the publishing quota",
            params={"fields": "quota_usage,config"},
        )
        rows = body.get("data")
        row = rows[0] if isinstance(rows, list) and rows and isinstance(rows[0], dict) else {}
        config: dict[str, Any] = row["config"] if isinstance(row.get("config"), dict) else {}
        usage, total = _int(row.get("quota_usage")), _int(config.get("quota_total"))
        if usage is not None and total is not None and usage >= total:
            duration = _int(config.get("quota_duration")) or 86_400
            raise self._quota_reached(usage, total, duration)

    def _quota_reached(
        self, usage: int | None, total: int | None, duration: int | None
    ) -> QuotaReached:
        now = datetime.now(UTC)
        retry_at = None
        if usage is not None and total is not None and duration is not None:
            retry_at = self._next_slot(usage - total, duration, now)
        retry_at = retry_at or now + timedelta(hours=1)
        window = f"{(duration or 86_400) / 3600:g} hours"
        used = (
            f"@{self.request.username} has used {usage}"
            if usage is not None
            else (f"@{self.request.username} has used them all")
        )
        return QuotaReached(
            f"Instagram allows {total if total is not None else 'a limited number of'} API"
            f" posts per {window}; {used}. The next slot frees up around"
            f" {retry_at:%Y-%m-%d %H:%M} UTC",
            retry_at=retry_at,
        )

    def _next_slot(self, over: int, duration: int, now: datetime) -> datetime | None:
        """When the oldest post still counted leaves the rolling window (best effort)."""
        since = now - timedelta(seconds=duration)
        try:
            posts = self.graph.recent_posts(
                self.token, user_id=self.request.account_id, since=since, max_results=100
            )
        except (TransientPlatformError, RateLimited, ContentRejected):
            return None
        times = sorted(post.created_at for post in posts if post.created_at is not None)
        if not 0 <= over < len(times):
            return None
        return max(times[over] + timedelta(seconds=duration, minutes=1), now + timedelta(minutes=1))


class InstagramAdapter(_InstagramPublisher):
    """Instagram API with Instagram Login: the professional account logs in itself."""

    provider = "instagram"

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
        self._token_url = token_url

    def __enter__(self) -> InstagramAdapter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def authorization_url(self, *, state: str, code_challenge: str, redirect_uri: str) -> str:
        """Instagram Login has no PKCE: ``code_challenge`` is not sent (Kairos checks state)."""
        query = urlencode(
            {
                "client_id": self._client_id,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": ",".join(INSTAGRAM_SCOPES),
                "state": state,
            },
            quote_via=quote,
        )
        separator = "&" if "?" in self._authorize_url else "?"
        return f"{self._authorize_url}{separator}{query}"

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


class FacebookInstagramAdapter(_InstagramPublisher):
    """Instagram API with Facebook Login for Business: a Facebook user grants access to the
    professional accounts linked to their Pages, and chooses one."""

    provider = "instagram-facebook"
    _login = "Facebook"

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

    def __enter__(self) -> FacebookInstagramAdapter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def authorization_url(self, *, state: str, code_challenge: str, redirect_uri: str) -> str:
        query = urlencode(
            {
                "client_id": self._client_id,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": ",".join(FACEBOOK_SCOPES),
                "state": state,
            },
            quote_via=quote,
        )
        separator = "&" if "?" in self._authorize_url else "?"
        return f"{self._authorize_url}{separator}{query}"

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
            after = _next_cursor(body)
            if after is None:
                break
            params["after"] = after
        if not accounts:
            raise PersonalAccountRefused(NO_LINKED_ACCOUNT)
        return list(accounts.values())


# -- helpers ------------------------------------------------------------------------------


def _is_video(media: PublishMedia) -> bool:
    return media.payload.content_type.split(";", 1)[0].strip().lower().startswith("video/")


def _params(media: PublishMedia, *, child: bool) -> dict[str, str]:
    """Container parameters for one file: a photo, a reel, or a carousel item."""
    if _is_video(media):
        params = {"media_type": "VIDEO" if child else "REELS", "video_url": media.url}
    else:
        params = {"image_url": media.url}
    if child:
        params["is_carousel_item"] = "true"
    return params


def _processing_failed(status: str) -> PlatformError:
    match = re.search(r"error code (\d+)", status)
    subcode = int(match.group(1)) if match else None
    if subcode in RETRY_SUBCODES | NEW_CONTAINER_SUBCODES:
        return TransientPlatformError(f"Instagram could not process the media: {status}")
    friendly = FRIENDLY.get(subcode or 0)
    reason = f"{friendly} (Instagram: {status})" if friendly else status
    return ContentRejected(f"Instagram could not process the media: {reason}")


def _insights(remote_id: str, body: dict[str, Any]) -> PostMetrics:
    values: dict[str, int | None] = {}
    for item in body.get("data") or []:
        if not isinstance(item, dict):
            continue
        value = None
        series = item.get("values")
        if isinstance(series, list) and series and isinstance(series[0], dict):
            value = series[0].get("value")
        total = item.get("total_value")
        if value is None and isinstance(total, dict):
            value = total.get("value")
        values[str(item.get("name"))] = _int(value)
    return PostMetrics(
        remote_id=remote_id,
        likes=values.get("likes"),
        comments=values.get("comments"),
        shares=values.get("shares"),
        views=values.get("views"),
        reach=values.get("reach"),
        saves=values.get("saved"),
    )


def _timeline_post(item: dict[str, Any]) -> TimelinePost:
    permalink = item.get("permalink")
    return TimelinePost(
        remote_id=item["id"],
        text=str(item.get("caption") or ""),
        created_at=_parse_time(item.get("timestamp")),
        url=permalink if isinstance(permalink, str) else post_url(item["id"]),
    )


def _next_cursor(body: dict[str, Any]) -> str | None:
    paging = body.get("paging")
    if not isinstance(paging, dict) or not paging.get("next"):
        return None
    cursors = paging.get("cursors")
    after = cursors.get("after") if isinstance(cursors, dict) else None
    return after if isinstance(after, str) and after else None


def _normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def _parse_time(raw: object) -> datetime | None:
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


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


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
