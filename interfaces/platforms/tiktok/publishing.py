"""Publishing a TikTok post, settling an earlier attempt from its checkpoints first.

Publishing (:meth:`TikTokAdapter.publish`) checkpoints through ``PublishProgress``:

``publish_id``
    TikTok's handle of the post, recorded the moment an init answers, before any byte is
    uploaded. A later attempt fetches its status instead of posting again:
    PUBLISH_COMPLETE is the outcome; FAILED with ``internal`` (or without all its bytes)
    is forgotten and the post starts over, any other reason is refused for good;
    PROCESSING_UPLOAD short of the video's size is forgotten too (the upload URL died with
    the worker that had it: it is a credential and never saved, and TikTok publishes
    nothing without every byte); fully uploaded or PROCESSING_DOWNLOAD is waited for. An
    id TikTok does not know (``invalid_publish_id``) is forgotten. Within one attempt, a
    FAILED ``internal`` forgets the checkpoint and raises ``TransientPlatformError``, so
    Kairos sends the post again later; ``progress.check()`` runs before every chunk, so a
    worker that outlived its claim never completes an upload the next one restarts.
``pull_requested_at``
    When a PULL_FROM_URL init was sent, recorded *before* sending it: TikTok fetches the
    file itself, so an init whose answer was lost can still publish. A later attempt that
    has this but no ``publish_id`` looks for a video with the same title created since in
    ``/v2/video/list/`` (which only shows posts past moderation: the search waits up to
    ``pull_settle_timeout`` after the checkpoint) before initiating again.

A FILE_UPLOAD init whose answer was lost needs nothing: its upload URL is gone, so it can
never publish. Tokens and upload URLs never appear in exception messages; this module does
not log.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from application.platforms import (
    ContentRejected,
    PublishProgress,
    PublishRequest,
    RemotePost,
    TransientPlatformError,
)
from interfaces.platforms.tiktok.api import (
    PUBLISH_ID,
    PULL_REQUESTED_AT,
    UnknownPublish,
    forget,
)
from interfaces.platforms.tiktok.settling import HOLD_STEP, PublishSettler, is_photo_post
from interfaces.platforms.tiktok.upload import ChunkPlan, media_type

MAX_TITLE = 2200
MAX_PHOTOS = 35
VIDEO_TYPES = ("video/mp4", "video/quicktime", "video/webm")


class TikTokPublisher(PublishSettler):
    """The ``StagedPublisher`` part of the adapter: Direct Post of a video or photos."""

    _pull_prefixes: tuple[str, ...]
    _chunk_size: int

    def publish(
        self, access_token: str, request: PublishRequest, progress: PublishProgress
    ) -> RemotePost:
        """Publish one video (FILE_UPLOAD, or PULL_FROM_URL under a verified prefix) or a
        photo post (PULL_FROM_URL only), settling an earlier attempt from its checkpoints
        first (see the module docstring). ``ClaimLost`` from ``progress`` propagates."""
        photos = is_photo_post(request.media)
        if photos:
            if not all(self._pullable(media.url) for media in request.media):
                raise ContentRejected(
                    "TikTok photo posts need images under a URL prefix verified with TikTok"
                )
            if len(request.media) > MAX_PHOTOS:
                raise ContentRejected(f"A TikTok photo post takes at most {MAX_PHOTOS} images")
        else:
            _check_video(request)
        if utf16_length(request.text) > MAX_TITLE:
            raise ContentRejected(f"TikTok captions are at most {MAX_TITLE} characters")
        settled = self._resume(access_token, request, progress)
        if settled is not None:
            return settled
        return self._start(access_token, request, progress, photos=photos)

    def _pullable(self, url: str) -> bool:
        return any(url.startswith(prefix) for prefix in self._pull_prefixes)

    def _resume(
        self, token: str, request: PublishRequest, progress: PublishProgress
    ) -> RemotePost | None:
        """The outcome of an earlier attempt, or ``None`` when the post must start over."""
        publish_id = progress.get(PUBLISH_ID)
        if publish_id:
            try:
                data = self._status(token, publish_id)
            except UnknownPublish:
                forget(progress)
                return None
            status = data.get("status")
            if status == "FAILED":
                self._refuse_unless_restartable(data, request)
                forget(progress)
                return None
            size = request.media[0].payload.size if request.media else 0
            uploaded = data.get("uploaded_bytes")
            if status == "PROCESSING_UPLOAD" and isinstance(uploaded, int) and uploaded < size:
                forget(progress)  # its upload URL died with the worker that had it
                return None
            progress.hold(HOLD_STEP)
            return self._await(token, request, publish_id, progress, data)
        requested = progress.get(PULL_REQUESTED_AT)
        if requested:
            return self._find_pulled(token, request, _parse_time(requested))
        return None

    def _start(
        self, token: str, request: PublishRequest, progress: PublishProgress, *, photos: bool
    ) -> RemotePost:
        progress.check()
        post_info = self._post_info(token, request)
        media = request.media[0]
        pull = photos or self._pullable(media.url)
        progress.check()
        if pull:
            progress.record(PULL_REQUESTED_AT, datetime.now(UTC).isoformat())
            publish_id = self._init_pull(token, request, post_info, photos=photos)
            progress.record(PUBLISH_ID, publish_id)
            progress.hold(HOLD_STEP)
        else:
            plan = ChunkPlan.for_size(media.payload.size, self._chunk_size)
            publish_id, upload_url = self._init_upload(token, post_info, plan)
            progress.record(PUBLISH_ID, publish_id)
            transfer = media.payload.size / self._upload_rate_floor
            progress.hold(timedelta(seconds=transfer) + HOLD_STEP)
            self._upload(token, publish_id, upload_url, media.payload, plan, progress)
        return self._await(token, request, publish_id, progress)

    def _post_info(self, token: str, request: PublishRequest) -> dict[str, Any]:
        """Creator info (required before each post): the privacy level to post with and
        the interactions the creator has switched off; refuses a video too long."""
        info = self._call(
            "POST",
            "/v2/post/publish/creator_info/query/",
            token,
            action="read the creator's posting options",
            scope="video.publish",
        )
        options = [str(o) for o in info.get("privacy_level_options") or () if isinstance(o, str)]
        if not options:
            raise ContentRejected("TikTok offers this account no privacy level to post with")
        longest = info.get("max_video_post_duration_sec")
        duration_ms = request.media[0].duration_ms
        if isinstance(longest, int) and duration_ms is not None and duration_ms > longest * 1000:
            raise ContentRejected(
                f"The video is {duration_ms / 1000:g} s long; this TikTok account can post "
                f"videos of at most {longest} s"
            )
        return {
            "title": request.text,
            "privacy_level": "PUBLIC_TO_EVERYONE"
            if "PUBLIC_TO_EVERYONE" in options
            else options[0],
            "disable_duet": bool(info.get("duet_disabled")),
            "disable_comment": bool(info.get("comment_disabled")),
            "disable_stitch": bool(info.get("stitch_disabled")),
            "brand_content_toggle": False,
            "brand_organic_toggle": False,
        }

    def _init_upload(
        self, token: str, post_info: dict[str, Any], plan: ChunkPlan
    ) -> tuple[str, str]:
        source = {
            "source": "FILE_UPLOAD",
            "video_size": plan.size,
            "chunk_size": plan.chunk_size,
            "total_chunk_count": plan.count,
        }
        data = self._init(token, "/v2/post/publish/video/init/", post_info, source)
        upload_url = data.get("upload_url")
        if not isinstance(upload_url, str) or not upload_url:
            raise TransientPlatformError("TikTok started a video post but gave no upload URL")
        return str(data["publish_id"]), upload_url

    def _init_pull(
        self, token: str, request: PublishRequest, post_info: dict[str, Any], *, photos: bool
    ) -> str:
        if not photos:
            source = {"source": "PULL_FROM_URL", "video_url": request.media[0].url}
            return str(
                self._init(token, "/v2/post/publish/video/init/", post_info, source)[PUBLISH_ID]
            )
        photo_info = {
            "description": request.text,
            "privacy_level": post_info["privacy_level"],
            "disable_comment": post_info["disable_comment"],
        }
        images: dict[str, Any] = {
            "source": "PULL_FROM_URL",
            "photo_cover_index": 0,
            "photo_images": [media.url for media in request.media],
        }
        extra = {"post_mode": "DIRECT_POST", "media_type": "PHOTO"}
        data = self._init(token, "/v2/post/publish/content/init/", photo_info, images, extra)
        return str(data[PUBLISH_ID])

    def _init(
        self,
        token: str,
        path: str,
        post_info: dict[str, Any],
        source: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        data = self._call(
            "POST",
            path,
            token,
            action="start the post",
            scope="video.publish",
            json={"post_info": post_info, "source_info": source, **(extra or {})},
        )
        if not isinstance(data.get(PUBLISH_ID), str) or not data[PUBLISH_ID]:
            raise TransientPlatformError("TikTok started a post but returned no publish_id")
        return data


def _check_video(request: PublishRequest) -> None:
    if len(request.media) != 1:
        raise ContentRejected("A TikTok post takes exactly one video (or only photos)")
    if media_type(request.media[0].payload) not in VIDEO_TYPES:
        raise ContentRejected("TikTok takes MP4, MOV or WebM videos")


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _parse_time(raw: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
