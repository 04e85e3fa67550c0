"""How an Instagram post is published: through media containers, checkpointed.

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

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from application.platforms import (
    ContentRejected,
    PlatformError,
    PublishMedia,
    PublishProgress,
    PublishRequest,
    QuotaReached,
    RateLimited,
    RemotePost,
    TransientPlatformError,
)
from interfaces.platforms.instagram.graph import (
    FRIENDLY,
    NEW_CONTAINER_SUBCODES,
    RETRY_SUBCODES,
    GraphFailure,
    int_or_none,
    next_cursor,
    parse_time,
)

if TYPE_CHECKING:
    from interfaces.platforms.instagram.publisher import InstagramPublisher

ITEM, CONTAINER, MEDIA = "item/{}", "container", "media"

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


class Publication:
    """One delivery of one post through containers, checkpointed through ``progress``."""

    def __init__(
        self,
        graph: InstagramPublisher,
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
                published = parse_time(item.get("timestamp")) if isinstance(item, dict) else None
                if (
                    published is not None
                    and published >= since
                    and isinstance(item.get("id"), str)
                    and _normalise(str(item.get("caption") or "")) == caption
                ):
                    matches.append(item)
            after = next_cursor(body)
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
        usage, total = int_or_none(row.get("quota_usage")), int_or_none(config.get("quota_total"))
        if usage is not None and total is not None and usage >= total:
            duration = int_or_none(config.get("quota_duration")) or 86_400
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


def _normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())
