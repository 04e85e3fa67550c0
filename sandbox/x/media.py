"""X API v2 media upload: chunked (initialize, append, finalize, STATUS) and one-shot images.

Segments are files under ``<data dir>/x-media/<media id>/``; finalize joins them, reads what
X would check (``sandbox.x.sniff``), records the outcome in SQLite and deletes the bytes.
Photos are ready at once. Videos and animated GIFs go pending → in_progress → succeeded or
failed as the sandbox clock passes ``media_processing_secs``, and their checks (duration,
dimensions, aspect ratio, GIF frames) only surface as a failed processing state, as on X.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from sandbox.x.api import ApiRoutes, Handler, lost_response
from sandbox.x.db import Media, MediaOutcome
from sandbox.x.problems import XJSONResponse, invalid_request, not_found_error
from sandbox.x.sniff import COMPATIBLE, Facts, detect, inspect
from sandbox.x.state import XSim
from sandbox.x.store import AccessGrant
from sandbox.x.validation import check_object, is_id

MEDIA_SCOPES = ("media.write",)
#: ``media_type`` values X's MediaUploadInitialize schema lists.
MEDIA_TYPES = (
    "video/mp4",
    "video/webm",
    "video/mp2t",
    "video/quicktime",
    "text/srt",
    "text/vtt",
    "image/jpeg",
    "image/gif",
    "image/bmp",
    "image/png",
    "image/webp",
    "image/pjpeg",
    "image/tiff",
    "model/gltf-binary",
    "model/vnd.usdz+zip",
)
#: The categories a post's media can have, the types each takes and its size limit.
CATEGORY_TYPES = {
    "tweet_image": ("image/jpeg", "image/pjpeg", "image/png", "image/webp", "image/gif"),
    "tweet_gif": ("image/gif",),
    "tweet_video": ("video/mp4", "video/quicktime", "video/webm", "video/mp2t"),
}
MAX_BYTES = {
    "tweet_image": 5 * 1024 * 1024,
    "tweet_gif": 15 * 1024 * 1024,
    "tweet_video": 512 * 1024 * 1024,
}
MAX_SEGMENT_INDEX = 999
INVALID_MEDIA = "InvalidMedia"


@dataclass(frozen=True)
class InitializeRequest:
    media_type: str
    total_bytes: int
    category: str


def parse_initialize(body: object) -> InitializeRequest | list[dict[str, Any]]:
    """A valid ``POST /2/media/upload/initialize`` body, or its invalid-request errors."""
    if not isinstance(body, dict):
        return [{"message": "$: object expected"}]
    allowed = {
        "media_type": str,
        "total_bytes": int,
        "media_category": str,
        "shared": bool,
        "additional_owners": list,
    }
    errors = check_object(body, "$", allowed, required=("media_type", "total_bytes"))
    if errors:
        return errors
    media_type: str = body["media_type"]
    total_bytes: int = body["total_bytes"]
    category: str = body.get("media_category") or default_category(media_type)
    if media_type not in MEDIA_TYPES:
        return [{"message": "$.media_type: does not have a value in the enumeration"}]
    if category not in CATEGORY_TYPES:
        return [{"message": "$.media_category: does not have a value in the enumeration"}]
    if media_type not in CATEGORY_TYPES[category]:
        message = f"media_type {media_type} cannot be uploaded as media_category {category}."
        parameters = {"media_type": [media_type], "media_category": [category]}
        return [{"parameters": parameters, "message": message}]
    if not 1 <= total_bytes <= MAX_BYTES[category]:
        message = (
            f"total_bytes must be between 1 and {MAX_BYTES[category]} for {category},"
            f" got {total_bytes}."
        )
        return [{"parameters": {"total_bytes": [str(total_bytes)]}, "message": message}]
    return InitializeRequest(media_type, total_bytes, category)


def default_category(media_type: str) -> str:
    if media_type == "image/gif":
        return "tweet_gif"
    return "tweet_video" if media_type.startswith("video/") else "tweet_image"


def processing_problem(category: str, facts: Facts) -> str | None:
    """Why X's processing of a video or animated GIF fails (reference §3.4 media specs)."""
    if facts.unreadable is not None:
        return facts.unreadable
    width, height = facts.width or 0, facts.height or 0
    if category == "tweet_gif":
        if width > 1280 or height > 1080:
            return f"GIF dimensions {width}x{height} exceed the 1280x1080 maximum."
        if (facts.frames or 0) > 350:
            return f"GIF has {facts.frames} frames; at most 350 are allowed."
        return None
    if facts.duration_ms is None:  # WebM, MPEG-TS: not inspected
        return None
    seconds = facts.duration_ms / 1000
    if not 0.5 <= seconds <= 140:
        return f"Video duration {seconds:g} s is outside 0.5-140 s."
    long_side, short_side = max(width, height), min(width, height)
    if short_side < 32 or long_side > 1280 or short_side > 1024:
        return f"Video dimensions {width}x{height} are outside 32x32-1280x1024."
    if not 1 / 3 <= width / height <= 3:
        return f"Video aspect ratio {width}:{height} is outside 1:3-3:1."
    return None


class MediaFiles:
    """Appended segments on disk until finalize has read them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _part(self, media_id: str, index: int) -> Path:
        return self.root / media_id / f"{index:03d}.part"

    def write_segment(self, media_id: str, index: int, source: BinaryIO) -> int:
        """Store one segment (replacing an earlier one with the same index); its size."""
        target = self._part(media_id, index)
        target.parent.mkdir(exist_ok=True)
        temporary = target.with_name(f"{target.name}.{uuid.uuid4().hex}")
        with temporary.open("wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
            size = out.tell()
        temporary.replace(target)
        return size

    def assemble(self, media_id: str, indices: list[int]) -> tuple[Path, str]:
        """Join the segments in index order into one file; its path and SHA-256."""
        joined = self.root / f"{media_id}.bin"
        digest = hashlib.sha256()
        with joined.open("wb") as out:
            for index in indices:
                with self._part(media_id, index).open("rb") as part:
                    while chunk := part.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
        return joined, digest.hexdigest()

    def discard(self, media_id: str) -> None:
        shutil.rmtree(self.root / media_id, ignore_errors=True)
        (self.root / f"{media_id}.bin").unlink(missing_ok=True)


class MediaRoutes:
    """The media endpoints, behind the same guard (auth, rate limit, scope, faults) as the rest."""

    def __init__(self, api: ApiRoutes) -> None:
        self.api = api
        self.sim: XSim = api.sim
        self.store = api.store
        self.files = MediaFiles(api.sim.media_dir)

    def router(self) -> APIRouter:
        routes: list[tuple[str, str, str, Handler]] = [
            ("POST", "/2/media/upload/initialize", "media_initialize", self.initialize),
            ("POST", "/2/media/upload/{media_id}/append", "media_append", self.append),
            ("POST", "/2/media/upload/{media_id}/finalize", "media_finalize", self.finalize),
            ("GET", "/2/media/upload", "media_status", self.status),
            ("POST", "/2/media/upload", "media_upload", self.upload),
        ]
        router = APIRouter()
        for method, path, bucket, handler in routes:
            endpoint = self.api.guarded(bucket, self._limit(bucket), MEDIA_SCOPES, handler)
            router.add_api_route(path, endpoint, methods=[method], name=handler.__name__)
        return router

    def _limit(self, bucket: str) -> Callable[[], int]:
        """The bucket's current 15-minute limit: the ``<bucket>_per_15min`` config knob."""
        config, knob = self.sim.config, f"{bucket}_per_15min"
        return lambda: int(getattr(config, knob))

    # -- endpoints -----------------------------------------------------------------------

    async def initialize(
        self, request: Request, grant: AccessGrant, headers: dict[str, str]
    ) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            message = "Your request body could not be parsed as JSON."
            return invalid_request([{"message": message}], headers)
        parsed = parse_initialize(body)
        if isinstance(parsed, list):
            return invalid_request(parsed, headers)
        now = self.sim.now()
        media = self.store.create_media(
            grant.user.id,
            parsed.media_type,
            parsed.category,
            parsed.total_bytes,
            now,
            self.sim.config.media_ttl,
        )
        mode = self.sim.faults.drop("media_initialize")
        if mode is not None:
            return lost_response(mode, headers)
        data = {
            "id": media.id,
            "media_key": media.key,
            "expires_after_secs": _remaining(media, now),
        }
        return XJSONResponse({"data": data}, headers=headers)

    async def append(
        self, request: Request, grant: AccessGrant, headers: dict[str, str]
    ) -> Response:
        media_id = request.path_params["media_id"]
        media = self._owned(media_id, grant)
        if media is None:
            return invalid_request([not_found_error("media", "id", media_id)], headers)
        if media.state != "uploading":
            return invalid_request([_finalized(media_id)], headers)
        async with request.form() as form:
            raw_index = form.get("segment_index")
            index = _segment_index(raw_index)
            if index is None:
                message = (
                    f"The `segment_index` value [{raw_index}] is not between 0 and"
                    f" {MAX_SEGMENT_INDEX}"
                )
                error = {"parameters": {"segment_index": [str(raw_index)]}, "message": message}
                return invalid_request([error], headers)
            upload = form.get("media")
            if not isinstance(upload, UploadFile):
                return invalid_request([_MISSING_MEDIA], headers)
            size = await run_in_threadpool(self.files.write_segment, media_id, index, upload.file)
        self.store.record_segment(media_id, index, size)
        mode = self.sim.faults.drop("media_append")
        if mode is not None:
            return lost_response(mode, headers)
        return XJSONResponse({"data": {"expires_at": int(media.expires_at)}}, headers=headers)

    async def finalize(
        self, request: Request, grant: AccessGrant, headers: dict[str, str]
    ) -> Response:
        media_id = request.path_params["media_id"]
        media = self._owned(media_id, grant)
        if media is None:
            return invalid_request([not_found_error("media", "id", media_id)], headers)
        if media.state == "uploading":
            segments = self.store.segments(media_id)
            received = sum(size for _, size in segments)
            if received != media.total_bytes:
                message = (
                    "Segments do not add up to provided total file size"
                    f" ({received} of {media.total_bytes} bytes)."
                )
                error = {"parameters": {"total_bytes": [str(media.total_bytes)]}}
                return invalid_request([{**error, "message": message}], headers)
            indices = [index for index, _ in segments]
            outcome = await run_in_threadpool(self._examine, media, indices)
            media = self.store.finish_media(media_id, outcome, self.sim.now())
            if _rejected(media):
                return invalid_request([_rejection(media)], headers)
            mode = self.sim.faults.drop("media_finalize")
            if mode is not None:
                return lost_response(mode, headers)
        elif _rejected(media):
            return invalid_request([_rejection(media)], headers)
        return XJSONResponse({"data": self.describe(media)}, headers=headers)

    async def status(
        self, request: Request, grant: AccessGrant, headers: dict[str, str]
    ) -> Response:
        command = request.query_params.get("command", "")
        media_id = request.query_params.get("media_id", "")
        if command != "STATUS":
            message = f"The `command` query parameter value [{command}] is not one of [STATUS]"
            error = {"parameters": {"command": [command]}, "message": message}
            return invalid_request([error], headers)
        if not is_id(media_id):
            message = f"The `media_id` query parameter value [{media_id}] is not valid"
            error = {"parameters": {"media_id": [media_id]}, "message": message}
            return invalid_request([error], headers)
        media = self._owned(media_id, grant)
        if media is None:
            return invalid_request([not_found_error("media", "media_id", media_id)], headers)
        if media.state == "uploading":
            message = "The media upload has not been finalized."
            error = {"parameters": {"media_id": [media_id]}, "message": message}
            return invalid_request([error], headers)
        if _rejected(media):
            return invalid_request([_rejection(media)], headers)
        return XJSONResponse({"data": self.describe(media)}, headers=headers)

    async def upload(
        self, request: Request, grant: AccessGrant, headers: dict[str, str]
    ) -> Response:
        """One-shot upload of a photo: ``media`` + ``media_category`` (+ ``media_type``)."""
        async with request.form() as form:
            category = str(form.get("media_category", ""))
            upload = form.get("media")
            if category != "tweet_image":
                message = (
                    f"media_category [{category}] cannot be uploaded in one request; use"
                    " initialize, append and finalize for tweet_video and tweet_gif."
                )
                error = {"parameters": {"media_category": [category]}, "message": message}
                return invalid_request([error], headers)
            if not isinstance(upload, UploadFile):
                return invalid_request([_MISSING_MEDIA], headers)
            head = await upload.read(512)
            await upload.seek(0)
            declared = form.get("media_type")
            media_type = str(declared) if declared else detect(head) or "unknown"
            size = upload.size if upload.size is not None else 0
            parsed = parse_initialize(
                {"media_type": media_type, "total_bytes": size, "media_category": category}
            )
            if isinstance(parsed, list):
                return invalid_request(parsed, headers)
            now = self.sim.now()
            media = self.store.create_media(
                grant.user.id, media_type, category, size, now, self.sim.config.media_ttl
            )
            written = await run_in_threadpool(self.files.write_segment, media.id, 0, upload.file)
        self.store.record_segment(media.id, 0, written)
        outcome = await run_in_threadpool(self._examine, media, [0])
        media = self.store.finish_media(media.id, outcome, self.sim.now())
        if _rejected(media):
            return invalid_request([_rejection(media)], headers)
        mode = self.sim.faults.drop("media_upload")
        if mode is not None:
            return lost_response(mode, headers)
        return XJSONResponse({"data": self.describe(media)}, headers=headers)

    # -- helpers -------------------------------------------------------------------------

    def _owned(self, media_id: str, grant: AccessGrant) -> Media | None:
        """The user's own upload with this id, unless it expired."""
        media = self.store.get_media(media_id)
        if media is None or media.owner_id != grant.user.id:
            return None
        return media if self.sim.now() < media.expires_at else None

    def _examine(self, media: Media, indices: list[int]) -> MediaOutcome:
        """Join, hash and inspect the upload, then drop its bytes (runs in a worker thread).

        A file that is not what ``media_type`` says, or a picture without readable
        dimensions, is rejected at once (``ready_at`` stays ``None``); a video or GIF that
        breaks X's limits fails only when its processing ends."""
        try:
            joined, sha256 = self.files.assemble(media.id, indices)
            facts = inspect(joined)
        finally:
            self.files.discard(media.id)
        now = self.sim.now()
        if facts.detected not in COMPATIBLE.get(media.media_type, set()):
            found = facts.detected or "an unrecognised format"
            message = f"Invalid media: media_type is {media.media_type} but the file is {found}."
            return MediaOutcome("failed", None, sha256, error=message)
        measured = MediaOutcome(
            "succeeded",
            now,
            sha256,
            width=facts.width,
            height=facts.height,
            duration_ms=facts.duration_ms,
        )
        if media.category == "tweet_video" or (media.is_async and facts.unreadable is None):
            problem = processing_problem(media.category, facts)
            ready_at = now + self.sim.config.media_processing_secs
            state = "failed" if problem else "succeeded"
            return dataclasses.replace(measured, state=state, ready_at=ready_at, error=problem)
        if facts.unreadable is not None or facts.width is None:
            message = f"Invalid media: {facts.unreadable or 'no dimensions found.'}"
            return MediaOutcome("failed", None, sha256, error=message)
        return measured

    def describe(self, media: Media) -> dict[str, Any]:
        """The ``data`` of finalize, STATUS and one-shot upload responses."""
        now = self.sim.now()
        data: dict[str, Any] = {
            "id": media.id,
            "media_key": media.key,
            "size": media.total_bytes,
            "expires_after_secs": _remaining(media, now),
        }
        if media.kind == "photo":
            data["image"] = {"image_type": media.media_type, "w": media.width, "h": media.height}
            return data
        info = processing_info(media, now)
        if info["state"] == "succeeded":
            data["video"] = {"video_type": media.media_type}
        data["processing_info"] = info
        return data


def processing_info(media: Media, now: float) -> dict[str, Any]:
    """Where a finalized video or GIF stands: pending for the first half of its processing
    time, in_progress for the second, then its outcome."""
    started = media.finalized_at or now
    ready = media.ready_at if media.ready_at is not None else now
    if now >= ready:
        if media.state == "succeeded":
            return {"state": "succeeded", "progress_percent": 100}
        error = {"code": 1, "name": INVALID_MEDIA, "message": media.error or INVALID_MEDIA}
        return {"state": "failed", "progress_percent": 100, "error": error}
    halfway = started + (ready - started) / 2
    if now < halfway:
        return {"state": "pending", "check_after_secs": max(1, math.ceil(halfway - now))}
    return {
        "state": "in_progress",
        "check_after_secs": max(1, math.ceil(ready - now)),
        "progress_percent": int(100 * (now - started) / (ready - started)),
    }


def build_media_router(api: ApiRoutes) -> APIRouter:
    return MediaRoutes(api).router()


def _rejected(media: Media) -> bool:
    """Refused at finalize (as opposed to failing in processing)."""
    return media.state == "failed" and media.ready_at is None


def _rejection(media: Media) -> dict[str, Any]:
    return {"parameters": {"media_type": [media.media_type]}, "message": media.error}


def _remaining(media: Media, now: float) -> int:
    return max(0, int(media.expires_at - now))


def _segment_index(raw: object) -> int | None:
    if not isinstance(raw, str) or not raw.isdigit() or len(raw) > 3:
        return None
    return int(raw)


_MISSING_MEDIA = {"message": "$.media: is missing but it is required"}


def _finalized(media_id: str) -> dict[str, Any]:
    message = "The media upload has already been finalized."
    return {"parameters": {"id": [media_id]}, "message": message}
