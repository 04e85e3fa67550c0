"""Waiting for TikTok to publish a post, and finding one a lost PULL_FROM_URL init
published anyway: how a post on its way becomes a ``RemotePost`` or a typed refusal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from application.platforms import (
    AuthorizationExpired,
    ContentRejected,
    PublishMedia,
    PublishProgress,
    PublishRequest,
    QuotaReached,
    RemotePost,
    TransientPlatformError,
)
from interfaces.platforms.tiktok.api import QUERY_BATCH, forget, next_day
from interfaces.platforms.tiktok.upload import ChunkUploader, media_type

STATUS_RETRIES = 3
PULL_MATCH_SLACK = timedelta(minutes=2)
HOLD_STEP = timedelta(seconds=30)
"""The claim is kept in steps this long while waiting on TikTok: a worker that dies while
waiting holds the delivery back this long at most, not the whole processing budget."""

FAIL_REASONS = {
    "file_format_check_failed": "TikTok could not read the video's format: send an MP4, MOV "
    "or WebM file (H.264 recommended)",
    "duration_check_failed": "TikTok refused the video's duration: it must be at least 3 "
    "seconds and at most the account's limit (3 to 10 minutes)",
    "frame_rate_check_failed": "TikTok refused the video's frame rate: it must be 23 to 60 fps",
    "picture_size_check_failed": "TikTok refused the picture size: each side of a video must "
    "be 360 to 4096 pixels, photos at most 1080p",
    "video_pull_failed": "TikTok could not download the video from its URL",
    "photo_pull_failed": "TikTok could not download the photos from their URLs",
    "publish_cancelled": "The post was cancelled on TikTok",
    "spam_risk_text": "TikTok flagged the caption as spam",
    "spam_risk": "TikTok flagged the post as spam",
    "spam_risk_user_banned_from_posting": "TikTok has banned this account from posting for now",
}


class PublishSettler(ChunkUploader):
    """Polls a post's status until it settles; looks for a post a lost init made."""

    _processing_timeout: float
    _post_id_timeout: float
    _pull_settle_timeout: float

    def _await(
        self,
        token: str,
        request: PublishRequest,
        publish_id: str,
        progress: PublishProgress,
        data: dict[str, Any] | None = None,
    ) -> RemotePost:
        """Poll the status until TikTok published the post (then, for a while, until its
        public id shows) or failed it; bounded, then transient: the checkpoint settles it."""
        processing = complete = held = 0.0
        errors = 0
        while True:
            if data is not None:
                status = data.get("status")
                post_id = _post_id(data)
                if status == "FAILED":
                    self._refuse_unless_restartable(data, request)
                    forget(progress)
                    raise TransientPlatformError(
                        "TikTok failed to process the post (internal error); it will be sent again"
                    )
                if status in ("PUBLISH_COMPLETE", "SEND_TO_USER_INBOX") and (
                    post_id or complete >= self._post_id_timeout
                ):
                    return remote_post(request, publish_id, post_id)
                if status == "PUBLISH_COMPLETE":
                    complete += self._status_interval
                else:
                    processing += self._status_interval
            if processing > self._processing_timeout:
                raise TransientPlatformError(
                    f"TikTok was still processing the post after {self._processing_timeout:g} "
                    "s; it will be checked again"
                )
            waited = processing + complete
            if waited + self._status_interval > held:
                progress.hold(HOLD_STEP)
                held = waited + HOLD_STEP.total_seconds()
            self._sleep(self._status_interval)
            try:
                data = self._status(token, publish_id)
                errors = 0
            except TransientPlatformError:
                errors += 1
                if errors > STATUS_RETRIES:
                    raise
                data = None
                processing += self._status_interval

    def _refuse_unless_restartable(self, data: dict[str, Any], request: PublishRequest) -> None:
        """Return when a FAILED publish may simply be sent again (TikTok's ``internal``, or
        an upload that never got all its bytes); raise the refusal otherwise."""
        reason = str(data.get("fail_reason") or "")
        uploaded = data.get("uploaded_bytes")
        size = request.media[0].payload.size if request.media else 0
        if reason == "internal" or (isinstance(uploaded, int) and uploaded < size):
            return
        if reason == "auth_removed":
            raise AuthorizationExpired("The TikTok account removed Kairos's access; reconnect it")
        if reason == "spam_risk_too_many_posts":
            raise QuotaReached(
                "TikTok's daily post limit for this account is reached", retry_at=next_day()
            )
        explained = FAIL_REASONS.get(reason, f"TikTok failed the post ({reason or 'no reason'})")
        raise ContentRejected(explained)

    def _find_pulled(
        self, token: str, request: PublishRequest, requested_at: datetime | None
    ) -> RemotePost | None:
        """A post a lost PULL_FROM_URL init published anyway: same title, created since the
        init was sent. Waits (while the checkpoint is young) for moderation to show it."""
        if requested_at is None:
            return None
        since = requested_at - PULL_MATCH_SLACK
        age = (datetime.now(UTC) - requested_at).total_seconds()
        budget = max(0.0, self._pull_settle_timeout - age)
        while True:
            found = self._list_since(token, request.text, since)
            if found is not None:
                return remote_post(request, found, found)
            if budget <= 0:
                return None
            delay = min(max(self._status_interval, 5.0), budget)
            self._sleep(delay)
            budget -= delay

    def _list_since(self, token: str, text: str, since: datetime) -> str | None:
        cursor: int | None = None
        wanted = " ".join(text.split())
        while True:
            body: dict[str, Any] = {"max_count": QUERY_BATCH}
            if cursor is not None:
                body["cursor"] = cursor
            data = self._call(
                "POST",
                "/v2/video/list/",
                token,
                action="list the account's videos",
                scope="video.list",
                params={"fields": "id,title,video_description,create_time"},
                json=body,
            )
            videos = [v for v in data.get("videos") or () if isinstance(v, dict)]
            for video in videos:
                created = video.get("create_time")
                if isinstance(created, int) and created < since.timestamp():
                    return None  # newest first: nothing older can match
                texts = (video.get("title"), video.get("video_description"))
                if any(isinstance(t, str) and " ".join(t.split()) == wanted for t in texts):
                    return str(video.get("id"))
            next_cursor = data.get("cursor")
            if not data.get("has_more") or not isinstance(next_cursor, int) or not videos:
                return None
            cursor = next_cursor


def video_url(username: str, post_id: str) -> str:
    return f"https://www.tiktok.com/@{quote(username, safe='._')}/video/{post_id}"


def profile_url(username: str) -> str:
    return f"https://www.tiktok.com/@{quote(username, safe='._')}"


def is_photo_post(media: Sequence[PublishMedia]) -> bool:
    return bool(media) and all(media_type(m.payload).startswith("image/") for m in media)


def remote_post(request: PublishRequest, publish_id: str, post_id: str | None) -> RemotePost:
    """The published post; while moderation hides its id, the publish id and the profile."""
    if post_id is None:
        return RemotePost(remote_id=publish_id, url=profile_url(request.username))
    url = video_url(request.username, post_id)
    if is_photo_post(request.media):
        url = url.replace("/video/", "/photo/")
    return RemotePost(remote_id=post_id, url=url)


def _post_id(data: dict[str, Any]) -> str | None:
    """The first of ``publicaly_available_post_id`` (sic): int64s above 2**53, as text."""
    ids = data.get("publicaly_available_post_id")
    if isinstance(ids, list) and ids and isinstance(ids[0], int | str) and str(ids[0]):
        return str(ids[0])
    return None
