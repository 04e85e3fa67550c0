"""Direct Post: video init (FILE_UPLOAD or PULL_FROM_URL), photo init, and the upload URL.

An upload URL takes the video's chunks in order, each a ``PUT`` with ``Content-Range``:
206 for each chunk but the last, 201 for the last, 416 when the range is not where the
upload stands (the answer's ``Content-Range`` says where that is), 400 when the chunk is
not the size the init announced, 403 once the URL expired (an hour after init).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sandbox.tiktok import envelope
from sandbox.tiktok.api import ApiRoutes, json_body, max_duration, posting_refusal, privacy_options
from sandbox.tiktok.config import PRIVACY_LEVELS, TikTokSimConfig
from sandbox.tiktok.db import NewPublish, Publish
from sandbox.tiktok.envelope import error, invalid_params, lost_response, ok
from sandbox.tiktok.processing import VIDEO_TYPES, Puller, examine
from sandbox.tiktok.state import TikTokSim
from sandbox.tiktok.store import AccessGrant

PUBLISH_SCOPES = ("video.publish",)
MAX_TITLE = 2200
MAX_PHOTO_TITLE = 90
MAX_PHOTO_DESCRIPTION = 4000
MAX_PHOTOS = 35
MAX_CHUNKS = 1000
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_BOOLEANS = (
    "disable_duet",
    "disable_comment",
    "disable_stitch",
    "brand_content_toggle",
    "brand_organic_toggle",
    "is_aigc",
    "auto_add_music",
)


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def chunk_problem(config: TikTokSimConfig, size: int, chunk: int, count: int) -> str | None:
    """Why a FILE_UPLOAD's ``source_info`` breaks TikTok's chunk rules, or ``None``."""
    if not 1 <= size <= config.max_video_size:
        return f"video_size must be from 1 to {config.max_video_size} bytes"
    if size < config.min_chunk_size:
        if chunk != size or count != 1:
            return (
                f"A video under {config.min_chunk_size} bytes is uploaded whole: chunk_size"
                " must equal video_size and total_chunk_count must be 1"
            )
        return None
    if not config.min_chunk_size <= chunk <= config.max_chunk_size:
        return f"chunk_size must be from {config.min_chunk_size} to {config.max_chunk_size} bytes"
    if count != size // chunk:
        return f"total_chunk_count must be floor(video_size / chunk_size) = {size // chunk}"
    if not 1 <= count <= MAX_CHUNKS:
        return f"total_chunk_count must be from 1 to {MAX_CHUNKS}"
    last = size - (count - 1) * chunk
    if last > config.max_final_chunk_size:
        return f"The last chunk would be {last} bytes, over {config.max_final_chunk_size}"
    return None


def post_info_problem(info: Any, *, max_title: int, photo: bool) -> str | None:
    if not isinstance(info, dict):
        return "post_info must be an object"
    if info.get("privacy_level") not in PRIVACY_LEVELS:
        return f"post_info.privacy_level must be one of {', '.join(PRIVACY_LEVELS)}"
    title = info.get("title", "")
    if not isinstance(title, str) or utf16_length(title) > max_title:
        return f"post_info.title must be a string of at most {max_title} UTF-16 units"
    description = info.get("description", "")
    if not isinstance(description, str) or (
        photo and utf16_length(description) > MAX_PHOTO_DESCRIPTION
    ):
        return f"post_info.description must be at most {MAX_PHOTO_DESCRIPTION} UTF-16 units"
    for name in _BOOLEANS:
        if name in info and not isinstance(info[name], bool):
            return f"post_info.{name} must be a boolean"
    cover = info.get("video_cover_timestamp_ms", 0)
    if not isinstance(cover, int) or isinstance(cover, bool) or cover < 0:
        return "post_info.video_cover_timestamp_ms must be a non-negative integer"
    return None


def verified(config: TikTokSimConfig, url: object) -> bool:
    """Whether ``url`` is an http(s) URL under a verified prefix (loopback http allowed)."""
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        return False
    return any(url.startswith(prefix) for prefix in config.verified_url_prefixes)


class PublishRoutes:
    def __init__(self, api: ApiRoutes) -> None:
        self.api = api
        self.sim: TikTokSim = api.sim
        self.store = api.sim.store

    def router(self) -> APIRouter:
        config = self.sim.config
        router = APIRouter()
        for path, endpoint, handler in (
            ("/v2/post/publish/video/init/", "video_init", self.video_init),
            ("/v2/post/publish/content/init/", "content_init", self.content_init),
        ):
            route = self.api.guarded(
                endpoint, "init", lambda: config.init_per_min, PUBLISH_SCOPES, handler
            )
            router.add_api_route(path, route, methods=["POST"], name=endpoint)
        router.add_api_route("/upload/video/", self.upload, methods=["PUT"], name="upload_video")
        return router

    def _refusal(self, grant: AccessGrant, privacy_level: str) -> Response | None:
        """The 403 for a user who may not post now, or may not post at this privacy level."""
        open_id = grant.user.open_id
        refusal = posting_refusal(self.sim, open_id)
        if refusal is not None:
            return error(refusal, 403)
        if self.sim.config.unaudited_client and privacy_level != "SELF_ONLY":
            return error("unaudited_client_can_only_post_to_private_accounts", 403)
        if privacy_level not in privacy_options(self.sim, open_id):
            return error("privacy_level_option_mismatch", 403)
        return None

    async def video_init(self, request: Request, grant: AccessGrant) -> Response:
        body = await json_body(request)
        if body is None:
            return invalid_params("The body must be a JSON object")
        info, source = body.get("post_info"), body.get("source_info")
        problem = post_info_problem(info, max_title=MAX_TITLE, photo=False)
        if problem is None and not isinstance(source, dict):
            problem = "source_info must be an object"
        if problem:
            return invalid_params(problem)
        assert isinstance(info, dict)
        assert isinstance(source, dict)
        new = NewPublish(
            open_id=grant.user.open_id,
            media_type="VIDEO",
            source=str(source.get("source")),
            title=info.get("title", ""),
            description="",
            privacy_level=info["privacy_level"],
        )
        if new.source == "FILE_UPLOAD":
            sizes = _integers(source, ("video_size", "chunk_size", "total_chunk_count"))
            if sizes is None:
                return invalid_params("video_size, chunk_size and total_chunk_count are integers")
            problem = chunk_problem(self.sim.config, *sizes)
            new = replace(new, video_size=sizes[0], chunk_size=sizes[1], chunk_count=sizes[2])
        elif new.source == "PULL_FROM_URL":
            url = source.get("video_url")
            if not isinstance(url, str) or not url:
                return invalid_params("source_info.video_url is required")
            new = replace(new, urls=(url,))
        else:
            problem = "source_info.source must be FILE_UPLOAD or PULL_FROM_URL"
        if problem:
            return invalid_params(problem)
        return self._create(request, grant, new, "video_init")

    async def content_init(self, request: Request, grant: AccessGrant) -> Response:
        body = await json_body(request)
        if body is None:
            return invalid_params("The body must be a JSON object")
        info, source = body.get("post_info"), body.get("source_info")
        problem = post_info_problem(info, max_title=MAX_PHOTO_TITLE, photo=True)
        if problem is None:
            problem = _photo_source_problem(body, source)
        if problem:
            return invalid_params(problem)
        assert isinstance(info, dict)
        assert isinstance(source, dict)
        new = NewPublish(
            open_id=grant.user.open_id,
            media_type="PHOTO",
            source="PULL_FROM_URL",
            title=info.get("title", ""),
            description=info.get("description", ""),
            privacy_level=info["privacy_level"],
            urls=tuple(source["photo_images"]),
        )
        return self._create(request, grant, new, "content_init")

    def _create(
        self, request: Request, grant: AccessGrant, new: NewPublish, fault: str
    ) -> Response:
        refusal = self._refusal(grant, new.privacy_level)
        if refusal is not None:
            return refusal
        pulled = new.urls if new.source == "PULL_FROM_URL" else ()
        if not all(verified(self.sim.config, url) for url in pulled):
            return error("url_ownership_unverified", 403)
        publish, upload_token = self.store.create_publish(
            new, self.sim.now(), self.sim.config.upload_url_ttl
        )
        data = {"publish_id": publish.publish_id}
        if publish.upload_id is not None:
            query = urlencode({"upload_id": publish.upload_id, "upload_token": upload_token})
            data["upload_url"] = f"{request.url_for('upload_video')}?{query}"
        else:
            Puller(self.sim, publish, max_duration(self.sim, grant.user.open_id)).start()
        mode = self.sim.faults.drop(fault)
        return lost_response(mode) if mode is not None else ok(data)

    # -- the upload URL ------------------------------------------------------------------

    async def upload(self, request: Request) -> Response:
        await self.sim.delay()
        query = request.query_params
        publish = self.store.find_upload(query.get("upload_id", ""), query.get("upload_token", ""))
        if publish is None:
            return error("invalid_params", 404, "No upload task matches this upload_url.")
        if publish.upload_expires_at is not None and publish.upload_expires_at <= self.sim.now():
            return error("invalid_params", 403, "The upload_url has expired.")
        if publish.stage != "uploading":
            return _range_mismatch(publish)
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type not in VIDEO_TYPES:
            return invalid_params(f"Content-Type must be one of {', '.join(VIDEO_TYPES)}")
        match = _RANGE.match(request.headers.get("content-range", ""))
        if match is None:
            return invalid_params("Content-Range must be 'bytes {first}-{last}/{total}'")
        first, last, total = (int(group) for group in match.groups())
        if total != publish.video_size or last < first or last >= total:
            return invalid_params(f"Content-Range does not fit a {publish.video_size}-byte video")
        if first != publish.received_bytes:
            return _range_mismatch(publish)
        final = first // publish.chunk_size >= publish.chunk_count - 1
        expected = total - first if final else publish.chunk_size
        if last - first + 1 != expected:
            return invalid_params(f"This chunk must be {expected} bytes, not {last - first + 1}")
        body = await request.body()
        declared = request.headers.get("content-length")
        if declared != str(expected) or len(body) != expected:
            return invalid_params(f"Content-Length must be {expected} and match the body")
        endpoint = "upload_final" if final else "upload_chunk"
        failure = self.sim.faults.failure(endpoint)
        if failure is not None:
            return envelope.server_error(failure)
        path = self.sim.media_dir / f"{publish.publish_id}.upload"
        await run_in_threadpool(_write_at, path, first, body)
        if not self.store.advance_received(publish.publish_id, first, last + 1):
            return _range_mismatch(publish)  # another request moved the upload meanwhile
        if final:
            self.store.set_stage(publish.publish_id, "processing")
            limit = max_duration(self.sim, publish.open_id)
            await run_in_threadpool(examine, self.sim, publish, [path], limit)
        mode = self.sim.faults.drop(endpoint)
        if mode is not None:
            return lost_response(mode)
        headers = {"content-range": f"bytes 0-{last}/{total}"}
        return Response(status_code=201 if final else 206, headers=headers)


def _integers(source: dict[str, Any], keys: tuple[str, str, str]) -> tuple[int, int, int] | None:
    values = [source.get(key) for key in keys]
    found = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    return (found[0], found[1], found[2]) if len(found) == len(keys) else None


def _photo_source_problem(body: dict[str, Any], source: Any) -> str | None:
    if body.get("media_type") != "PHOTO":
        return "media_type must be PHOTO"
    if body.get("post_mode", "DIRECT_POST") != "DIRECT_POST":
        return "post_mode must be DIRECT_POST (the sandbox has no inbox)"
    if not isinstance(source, dict) or source.get("source") != "PULL_FROM_URL":
        return "source_info.source must be PULL_FROM_URL: photos are pulled, never uploaded"
    images = source.get("photo_images")
    if not isinstance(images, list) or not 1 <= len(images) <= MAX_PHOTOS:
        return f"source_info.photo_images must hold 1 to {MAX_PHOTOS} URLs"
    if not all(isinstance(url, str) and url for url in images):
        return "source_info.photo_images must hold URLs"
    cover = source.get("photo_cover_index", 0)
    if not isinstance(cover, int) or isinstance(cover, bool) or not 0 <= cover < len(images):
        return "source_info.photo_cover_index must index photo_images"
    return None


def _range_mismatch(publish: Publish) -> Response:
    """416, with where the upload stands in ``Content-Range``."""
    received, total = publish.received_bytes, publish.video_size
    stands = f"bytes 0-{received - 1}/{total}" if received else f"bytes */{total}"
    response = error("invalid_params", 416, "Content-Range does not match the upload so far.")
    response.headers["content-range"] = stands
    return response


def _write_at(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b" if path.exists() else "wb") as out:
        out.seek(offset)
        out.write(data)
        out.truncate()


def build_publish_router(api: ApiRoutes) -> APIRouter:
    return PublishRoutes(api).router()
