"""The TikTok adapter: Login Kit v2 (OAuth 2.0 with PKCE, rotating refresh tokens), Direct
Post through the Content Posting API, and metrics from the Display API, over httpx.

Works against the real TikTok (``https://open.tiktokapis.com``) or the ``sandbox/``
simulator (``http://127.0.0.1:8001/tiktok``): only the base URLs differ.

Every v2 answer is an envelope ``{data, error: {code, message, log_id}}``: a ``code`` other
than ``ok`` is a failure even with HTTP 200. The token endpoint answers flat, and its
errors (``{error, error_description}``) may come with HTTP 200 too.

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

import math
import time
from collections.abc import Callable, Iterator, Sequence
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

SCOPES = ("user.info.basic", "user.info.profile", "video.publish", "video.upload", "video.list")
AUTHORIZE_URL = "https://www.tiktok.com/v2/auth/authorize/"
API_BASE_URL = "https://open.tiktokapis.com"
PROFILE_FIELDS = "open_id,union_id,avatar_url,display_name,username"
METRIC_FIELDS = "id,like_count,comment_count,share_count,view_count"
PUBLISH_ID = "publish_id"
PULL_REQUESTED_AT = "pull_requested_at"

MIB = 1024 * 1024
MIN_CHUNK = 5 * MIB
"""Files under this are uploaded whole; chunks are 5 to 64 MB, the last up to 128 MB."""
MAX_CHUNK = 64 * MIB
DEFAULT_CHUNK = 10 * MIB
MAX_CHUNKS = 1000
MAX_TITLE = 2200
MAX_PHOTOS = 35
QUERY_BATCH = 20
VIDEO_TYPES = ("video/mp4", "video/quicktime", "video/webm")
CHUNK_RETRIES = 3
STATUS_RETRIES = 3
RATE_WINDOW = timedelta(minutes=1)
PULL_MATCH_SLACK = timedelta(minutes=2)
HOLD_STEP = timedelta(seconds=30)
"""The claim is kept in steps this long while waiting on TikTok: a worker that dies while
waiting holds the delivery back this long at most, not the whole processing budget."""

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


class UnknownPublish(ContentRejected):
    """TikTok does not know the ``publish_id`` (``invalid_publish_id``)."""


def video_url(username: str, post_id: str) -> str:
    return f"https://www.tiktok.com/@{quote(username, safe='._')}/video/{post_id}"


def profile_url(username: str) -> str:
    return f"https://www.tiktok.com/@{quote(username, safe='._')}"


@dataclass(frozen=True)
class ChunkPlan:
    """A FILE_UPLOAD's ``source_info``: ``count = floor(size / chunk_size)`` chunks, the last
    absorbing the remainder."""

    size: int
    chunk_size: int
    count: int

    @classmethod
    def for_size(cls, size: int, preferred: int = DEFAULT_CHUNK) -> ChunkPlan:
        if size < MIN_CHUNK:
            return cls(size, size, 1)
        chunk = min(max(preferred, MIN_CHUNK, math.ceil(size / MAX_CHUNKS)), MAX_CHUNK, size)
        return cls(size, chunk, size // chunk)

    def bounds(self, index: int) -> tuple[int, int]:
        """The first byte and the byte after the last of chunk ``index``."""
        start = index * self.chunk_size
        return start, self.size if index == self.count - 1 else start + self.chunk_size

    def index_at(self, offset: int) -> int | None:
        """The chunk that starts at ``offset``, if one does."""
        index = offset // self.chunk_size
        return index if index < self.count and offset == index * self.chunk_size else None


class _ChunkReader:
    """Reads chunk after chunk of a payload in its plan's sizes, one chunk in memory."""

    def __init__(self, payload: MediaPayload, plan: ChunkPlan) -> None:
        self._payload = payload
        self._plan = plan
        self._restart()

    def _restart(self) -> None:
        self._pieces: Iterator[bytes] = iter(self._payload.chunks(min(self._plan.chunk_size, MIB)))
        self._buffer = bytearray()
        self._offset = 0

    def read(self, index: int) -> bytes:
        start, end = self._plan.bounds(index)
        if start < self._offset:
            self._restart()
        while self._offset + len(self._buffer) < end:
            piece = next(self._pieces, None)
            if piece is None:
                raise TransientPlatformError("The stored video ended before its recorded size")
            self._buffer += piece
            if self._offset < start:  # skipping chunks TikTok already has
                dropped = min(start - self._offset, len(self._buffer))
                del self._buffer[:dropped]
                self._offset += dropped
        data = bytes(self._buffer[start - self._offset : end - self._offset])
        del self._buffer[: end - self._offset]
        self._offset = end
        return data


class TikTokAdapter:
    """The ``PlatformAdapter``, ``StagedPublisher`` and ``MetricsSource`` for TikTok."""

    provider = "tiktok"

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
        self._client_key = client_key
        self._client_secret = client_secret
        self._authorize_url = authorize_url
        self._api = api_base_url.rstrip("/")
        self._pull_prefixes = tuple(prefix for prefix in pull_url_prefixes if prefix)
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout)
        self._timeout = timeout
        self._sleep = sleep
        self._chunk_size = chunk_size
        self._status_interval = max(status_interval, 2.0)
        self._processing_timeout = processing_timeout
        self._post_id_timeout = post_id_timeout
        self._pull_settle_timeout = pull_settle_timeout
        self._upload_rate_floor = upload_rate_floor

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> TikTokAdapter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def capabilities(self) -> tuple[str, ...]:
        return ("video",)

    def post_url(self, remote_id: str) -> str:
        """A post's URL without its author's name (TikTok resolves the video by id)."""
        return f"https://www.tiktok.com/@/video/{remote_id}"

    # -- OAuth ---------------------------------------------------------------------------

    def authorization_url(self, *, state: str, code_challenge: str, redirect_uri: str) -> str:
        query = urlencode(
            {
                "client_key": self._client_key,
                "response_type": "code",
                "scope": ",".join(SCOPES),
                "redirect_uri": redirect_uri,
                "state": state,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            },
            quote_via=quote,
        )
        separator = "&" if "?" in self._authorize_url else "?"
        return f"{self._authorize_url}{separator}{query}"

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
            expires_at=_after(requested_at, body.get("expires_in")),
            refresh_expires_at=_after(requested_at, body.get("refresh_expires_in")),
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
        body = _json_object(response)
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

    # -- publishing ----------------------------------------------------------------------

    def publish(
        self, access_token: str, request: PublishRequest, progress: PublishProgress
    ) -> RemotePost:
        """Publish one video (FILE_UPLOAD, or PULL_FROM_URL under a verified prefix) or a
        photo post (PULL_FROM_URL only), settling an earlier attempt from its checkpoints
        first (see the module docstring). ``ClaimLost`` from ``progress`` propagates."""
        photos = _is_photo_post(request.media)
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
                self._forget(progress)
                return None
            status = data.get("status")
            if status == "FAILED":
                self._refuse_unless_restartable(data, request)
                self._forget(progress)
                return None
            size = request.media[0].payload.size if request.media else 0
            uploaded = data.get("uploaded_bytes")
            if status == "PROCESSING_UPLOAD" and isinstance(uploaded, int) and uploaded < size:
                self._forget(progress)  # its upload URL died with the worker that had it
                return None
            progress.hold(HOLD_STEP)
            return self._await(token, request, publish_id, progress, data)
        requested = progress.get(PULL_REQUESTED_AT)
        if requested:
            return self._find_pulled(token, request, _parse_time(requested))
        return None

    def _forget(self, progress: PublishProgress) -> None:
        progress.record(PUBLISH_ID, "")
        if progress.get(PULL_REQUESTED_AT):
            progress.record(PULL_REQUESTED_AT, "")

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

    # -- upload --------------------------------------------------------------------------

    def _upload(
        self,
        token: str,
        publish_id: str,
        upload_url: str,
        payload: MediaPayload,
        plan: ChunkPlan,
        progress: PublishProgress,
    ) -> None:
        """PUT the chunks in order (206 each, 201 for the last). A 5xx retries the chunk; a
        416 resumes where TikTok's ``Content-Range`` says it stands; a lost answer asks the
        status endpoint how many bytes arrived."""
        reader = _ChunkReader(payload, plan)
        content_type = _media_type(payload)
        index, failures = 0, 0
        while index < plan.count:
            progress.check()  # a worker past its claim never completes an upload
            start, end = plan.bounds(index)
            response = self._put(upload_url, content_type, start, reader.read(index), plan.size)
            status = None if response is None else response.status_code
            if status == 201:
                return
            if status == 206:
                index, failures = index + 1, 0
                continue
            if status in (403, 404):
                self._forget(progress)
                raise TransientPlatformError(
                    "TikTok's upload URL expired before the video was uploaded; it will be "
                    "sent again",
                    status=status,
                )
            if status is not None and 400 <= status < 500 and status not in (416, 429):
                raise ContentRejected(
                    f"TikTok refused bytes {start}-{end - 1} of the video (HTTP {status})",
                    status=status,
                )
            failures += 1
            if failures > CHUNK_RETRIES:
                raise TransientPlatformError(
                    f"Uploading the video to TikTok kept failing (last: "
                    f"{'no answer' if status is None else f'HTTP {status}'})",
                    status=status,
                )
            if response is not None and status != 416:
                self._sleep(self._status_interval * failures)  # 5xx or 429: the same chunk
                continue
            stands = _range_end(response) if response is not None else None
            if stands is None:
                stands = self._uploaded_bytes(token, publish_id, plan.size)
            if stands >= plan.size:
                return
            resumed_at = plan.index_at(stands)
            if resumed_at is None:
                raise TransientPlatformError(f"TikTok holds {stands} bytes, not a whole chunk")
            index = resumed_at
        raise TransientPlatformError("TikTok did not confirm the video's last chunk")

    def _put(
        self, upload_url: str, content_type: str, start: int, data: bytes, total: int
    ) -> httpx.Response | None:
        headers = {
            "Content-Type": content_type,
            "Content-Length": str(len(data)),
            "Content-Range": f"bytes {start}-{start + len(data) - 1}/{total}",
        }
        timeout = self._timeout + len(data) / self._upload_rate_floor
        try:
            return self._http.put(upload_url, content=data, headers=headers, timeout=timeout)
        except httpx.TransportError:  # timeouts included: the chunk may or may not be there
            return None

    def _uploaded_bytes(self, token: str, publish_id: str, size: int) -> int:
        data = self._status(token, publish_id)
        uploaded = data.get("uploaded_bytes")
        if data.get("status") != "PROCESSING_UPLOAD":
            return size  # TikTok is past the upload
        return uploaded if isinstance(uploaded, int) else 0

    # -- status --------------------------------------------------------------------------

    def _status(self, token: str, publish_id: str) -> dict[str, Any]:
        return self._call(
            "POST",
            "/v2/post/publish/status/fetch/",
            token,
            action="check the post's status",
            scope="video.publish",
            json={"publish_id": publish_id},
        )

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
                    self._forget(progress)
                    raise TransientPlatformError(
                        "TikTok failed to process the post (internal error); it will be sent again"
                    )
                if status in ("PUBLISH_COMPLETE", "SEND_TO_USER_INBOX") and (
                    post_id or complete >= self._post_id_timeout
                ):
                    return _remote_post(request, publish_id, post_id)
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
                "TikTok's daily post limit for this account is reached", retry_at=_next_day()
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
                return _remote_post(request, found, found)
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

    # -- not used: TikTok publishes in stages --------------------------------------------

    def upload_media(self, access_token: str, media: MediaPayload) -> UploadedMedia:
        raise PlatformError("TikTok uploads media as part of publish(), not on its own")

    def create_post(
        self,
        access_token: str,
        *,
        text: str,
        in_reply_to: str | None = None,
        media_ids: Sequence[str] = (),
    ) -> RemotePost:
        raise PlatformError("TikTok posts are published in stages through publish()")

    def recent_posts(
        self,
        access_token: str,
        *,
        user_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
        max_results: int = 10,
    ) -> list[TimelinePost]:
        raise PlatformError("TikTok deliveries settle from their publish_id, not a timeline")

    # -- plumbing ------------------------------------------------------------------------

    def _send(self, method: str, path: str, *, action: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, self._api + path, timeout=self._timeout, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientPlatformError(f"TikTok timed out while trying to {action}") from exc
        except httpx.TransportError as exc:
            raise TransientPlatformError(
                f"Connection to TikTok failed while trying to {action} ({type(exc).__name__})"
            ) from exc

    def _call(
        self, method: str, path: str, token: str, *, action: str, scope: str, **kwargs: Any
    ) -> dict[str, Any]:
        """The ``data`` of a v2 call, or the typed error its envelope (or status) holds."""
        headers = {"Authorization": f"Bearer {token}"}
        response = self._send(method, path, action=action, headers=headers, **kwargs)
        status = response.status_code
        body = _json_object(response) or {}
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
            f"TikTok's limit on {which} posts is reached", retry_at=_next_day(), status=status
        )
    if code == "invalid_publish_id":
        return UnknownPublish(detail, status=status)
    if code in REFUSALS:
        return ContentRejected(REFUSALS[code], status=status)
    if status == 401:
        return AuthorizationExpired(detail, status=status)
    return ContentRejected(detail, status=status)


def _check_video(request: PublishRequest) -> None:
    if len(request.media) != 1:
        raise ContentRejected("A TikTok post takes exactly one video (or only photos)")
    if _media_type(request.media[0].payload) not in VIDEO_TYPES:
        raise ContentRejected("TikTok takes MP4, MOV or WebM videos")


def _is_photo_post(media: Sequence[PublishMedia]) -> bool:
    return bool(media) and all(_media_type(m.payload).startswith("image/") for m in media)


def _media_type(payload: MediaPayload) -> str:
    return payload.content_type.split(";", 1)[0].strip().lower()


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _remote_post(request: PublishRequest, publish_id: str, post_id: str | None) -> RemotePost:
    """The published post; while moderation hides its id, the publish id and the profile."""
    if post_id is None:
        return RemotePost(remote_id=publish_id, url=profile_url(request.username))
    url = video_url(request.username, post_id)
    if _is_photo_post(request.media):
        url = url.replace("/video/", "/photo/")
    return RemotePost(remote_id=post_id, url=url)


def _post_id(data: dict[str, Any]) -> str | None:
    """The first of ``publicaly_available_post_id`` (sic): int64s above 2**53, as text."""
    ids = data.get("publicaly_available_post_id")
    if isinstance(ids, list) and ids and isinstance(ids[0], int | str) and str(ids[0]):
        return str(ids[0])
    return None


def _range_end(response: httpx.Response) -> int | None:
    """How many bytes an upload answer's ``Content-Range`` says TikTok holds."""
    raw = response.headers.get("content-range", "")
    unit, _, spec = raw.partition(" ")
    span = spec.partition("/")[0]
    if unit != "bytes" or not span:
        return None
    if span == "*":
        return 0
    last = span.partition("-")[2]
    return int(last) + 1 if last.isdigit() else None


def _after(start: datetime, seconds: object) -> datetime | None:
    if isinstance(seconds, int | float) and not isinstance(seconds, bool):
        return start + timedelta(seconds=float(seconds))
    return None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _next_day() -> datetime:
    """TikTok's daily caps: try again after the next UTC midnight."""
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    return tomorrow.replace(hour=0, minute=5, second=0, microsecond=0)


def _parse_time(raw: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
