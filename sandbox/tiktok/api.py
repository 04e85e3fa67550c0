"""The bearer-token endpoints: user info, creator info, publish status and cancel, and the
Display API's video list and query. Publishing itself lives in ``sandbox.tiktok.publish``
and reuses :meth:`ApiRoutes.guarded`.

Rate limits count per token in a sliding minute; errors come in TikTok's ``{data, error}``
envelope, some of them (creator info's spam risks) with HTTP 200, as TikTok answers them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from sandbox.engagement import counters
from sandbox.tiktok import envelope
from sandbox.tiktok.config import PRIVATE_OPTIONS, PUBLIC_OPTIONS
from sandbox.tiktok.db import Outcome, Publish, Video
from sandbox.tiktok.envelope import error, invalid_params, lost_response, ok
from sandbox.tiktok.state import TikTokSim
from sandbox.tiktok.store import AccessGrant, User

DEFAULT_AVATAR = "https://p16-sign.tiktokcdn-us.com/tos-useast5-avt-0068-tx/sandbox.jpeg"
PUBLISH_SCOPES = ("video.publish",)
STATUS_SCOPES = ("video.publish", "video.upload")
#: User fields and the scope each needs.
USER_FIELDS = {
    "open_id": "user.info.basic",
    "union_id": "user.info.basic",
    "avatar_url": "user.info.basic",
    "avatar_url_100": "user.info.basic",
    "avatar_large_url": "user.info.basic",
    "display_name": "user.info.basic",
    "bio_description": "user.info.profile",
    "profile_deep_link": "user.info.profile",
    "is_verified": "user.info.profile",
    "username": "user.info.profile",
    "follower_count": "user.info.stats",
    "following_count": "user.info.stats",
    "likes_count": "user.info.stats",
    "video_count": "user.info.stats",
}
VIDEO_FIELDS = frozenset(
    {
        "id",
        "create_time",
        "cover_image_url",
        "share_url",
        "video_description",
        "duration",
        "height",
        "width",
        "title",
        "embed_html",
        "embed_link",
        "like_count",
        "comment_count",
        "share_count",
        "view_count",
    }
)
MAX_VIDEOS = 20

Handler = Callable[[Request, AccessGrant], Awaitable[Response]]


def privacy_options(sim: TikTokSim, open_id: str) -> tuple[str, ...]:
    if sim.config.unaudited_client:
        return ("SELF_ONLY",)
    return PRIVATE_OPTIONS if sim.knobs(open_id).private_account else PUBLIC_OPTIONS


def max_duration(sim: TikTokSim, open_id: str) -> int:
    own = sim.knobs(open_id).max_video_post_duration_sec
    return sim.config.max_video_post_duration_sec if own is None else own


def posting_refusal(sim: TikTokSim, open_id: str) -> str | None:
    """The spam-risk error code that stops this user posting now, if any."""
    if sim.knobs(open_id).banned_from_posting:
        return "spam_risk_user_banned_from_posting"
    now = sim.now()
    midnight = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if sim.store.posts_since(open_id, midnight.timestamp(), now) >= sim.config.daily_post_cap:
        return "spam_risk_too_many_posts"
    return None


def publish_status(sim: TikTokSim, publish: Publish) -> dict[str, Any]:
    """The ``data`` of the status endpoint: a post id once public, byte counts, the reason."""
    now = sim.now()
    status = publish.status(now)
    data: dict[str, Any] = {"status": status}
    if status == "FAILED":
        data["fail_reason"] = publish.fail_reason
    post_ids: list[int] = []
    if status == "PUBLISH_COMPLETE" and publish.video_id is not None:
        video = sim.store.get_video(publish.video_id)
        public = video is not None and video.public_at <= now
        if public and publish.privacy_level != "SELF_ONLY":
            post_ids.append(publish.video_id)  # an int64 above 2**53, as TikTok sends it
    data["publicaly_available_post_id"] = post_ids  # sic: TikTok's spelling
    key = "uploaded_bytes" if publish.source == "FILE_UPLOAD" else "downloaded_bytes"
    data[key] = publish.received_bytes
    return data


def render_video(sim: TikTokSim, video: Video, user: User, fields: Iterable[str]) -> dict[str, Any]:
    now = sim.now()
    counted = counters(
        sim.audience(user.open_id, user.username),
        str(video.id),
        datetime.fromtimestamp(video.published_at, UTC),
        datetime.fromtimestamp(now, UTC),
    )
    share_url = f"https://www.tiktok.com/@{user.username}/video/{video.id}"
    values: dict[str, Any] = {
        "id": str(video.id),
        "create_time": int(video.published_at),
        "cover_image_url": f"https://p16-sign.tiktokcdn-us.com/sandbox/{video.id}.jpeg",
        "share_url": share_url,
        "video_description": video.description or video.title,
        "duration": (video.duration_ms or 0) // 1000,
        "height": video.height or 0,
        "width": video.width or 0,
        "title": video.title,
        "embed_html": f'<blockquote class="tiktok-embed" cite="{share_url}"></blockquote>',
        "embed_link": f"https://www.tiktok.com/player/v1/{video.id}",
        "like_count": counted.likes,
        "comment_count": counted.comments,
        "share_count": counted.shares,
        "view_count": counted.views,
    }
    return {name: values[name] for name in fields}


def parse_fields(raw: str | None, known: Iterable[str]) -> list[str] | str:
    """The requested ``fields``, or why they are invalid."""
    names = [name for name in (raw or "").split(",") if name]
    if not names:
        return "fields is required"
    unknown = [name for name in names if name not in set(known)]
    if unknown:
        return f"Invalid fields: {', '.join(unknown)}"
    return names


async def json_body(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


class ApiRoutes:
    """The guarded endpoints; each handler runs after :meth:`guard` let the request through."""

    def __init__(self, sim: TikTokSim) -> None:
        self.sim = sim
        self.config = sim.config
        self.store = sim.store

    def router(self) -> APIRouter:
        config = self.config
        routes: list[tuple[str, str, str, str, Callable[[], int], tuple[str, ...], Handler]] = [
            (
                "GET",
                "/v2/user/info/",
                "user_info",
                "user_info",
                lambda: config.user_info_per_min,
                ("user.info.basic",),
                self.user_info,
            ),
            (
                "POST",
                "/v2/post/publish/creator_info/query/",
                "creator_info",
                "creator_info",
                lambda: config.creator_info_per_min,
                PUBLISH_SCOPES,
                self.creator_info,
            ),
            (
                "POST",
                "/v2/post/publish/status/fetch/",
                "status_fetch",
                "status_fetch",
                lambda: config.status_per_min,
                STATUS_SCOPES,
                self.status_fetch,
            ),
            (
                "POST",
                "/v2/post/publish/cancel/",
                "cancel",
                "status_fetch",
                lambda: config.status_per_min,
                STATUS_SCOPES,
                self.cancel,
            ),
            (
                "POST",
                "/v2/video/list/",
                "video_list",
                "video_list",
                lambda: config.video_list_per_min,
                ("video.list",),
                self.video_list,
            ),
            (
                "POST",
                "/v2/video/query/",
                "video_query",
                "video_query",
                lambda: config.video_query_per_min,
                ("video.list",),
                self.video_query,
            ),
        ]
        router = APIRouter()
        for method, path, endpoint, bucket, limit, scopes, handler in routes:
            router.add_api_route(
                path,
                self.guarded(endpoint, bucket, limit, scopes, handler),
                methods=[method],
                name=handler.__name__,
            )
        return router

    def guarded(
        self,
        endpoint: str,
        bucket: str,
        limit: Callable[[], int],
        scopes: tuple[str, ...],
        handler: Handler,
    ) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            outcome = await self.guard(request, endpoint, bucket, limit(), scopes)
            if isinstance(outcome, Response):
                return outcome
            return await handler(request, outcome)

        return route

    async def guard(
        self, request: Request, endpoint: str, bucket: str, limit: int, scopes: tuple[str, ...]
    ) -> AccessGrant | Response:
        """Latency, bearer auth, forced errors, the token's sliding minute, scopes (any of
        ``scopes``), injected 5xx."""
        sim = self.sim
        await sim.delay()
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        grant = None
        if scheme.lower() == "bearer" and token.strip():
            grant = self.store.authenticate(token.strip(), sim.now())
        if grant is None:
            return error("access_token_invalid", 401)
        forced = sim.faults.forced_error(endpoint)
        if forced is not None:
            return error(*forced)
        if not sim.hit(grant.token_digest, bucket, limit):
            return error("rate_limit_exceeded", 429)
        if not set(scopes) & set(grant.scopes):
            return error("scope_not_authorized", 401)
        failure = sim.faults.failure(endpoint)
        if failure is not None:
            return envelope.server_error(failure)
        return grant

    async def user_info(self, request: Request, grant: AccessGrant) -> Response:
        fields = parse_fields(request.query_params.get("fields"), USER_FIELDS)
        if isinstance(fields, str):
            return invalid_params(fields)
        if any(USER_FIELDS[name] not in grant.scopes for name in fields):
            return error("scope_not_authorized", 401)
        user = grant.user
        values: dict[str, Any] = {
            "open_id": user.open_id,
            "union_id": user.union_id,
            "avatar_url": DEFAULT_AVATAR,
            "avatar_url_100": DEFAULT_AVATAR,
            "avatar_large_url": DEFAULT_AVATAR,
            "display_name": user.display_name,
            "bio_description": "",
            "profile_deep_link": f"https://vm.tiktok.com/sandbox/{user.username}",
            "is_verified": False,
            "username": user.username,
            "follower_count": self.sim.audience(user.open_id, user.username).size,
            "following_count": 0,
            "likes_count": 0,
            "video_count": self.store.video_count(user.open_id, self.sim.now()),
        }
        return ok({"user": {name: values[name] for name in fields}})

    async def creator_info(self, _request: Request, grant: AccessGrant) -> Response:
        refusal = posting_refusal(self.sim, grant.user.open_id)
        if refusal is not None:
            return error(refusal, 200)  # TikTok answers these with HTTP 200, on purpose
        user = grant.user
        return ok(
            {
                "creator_avatar_url": DEFAULT_AVATAR,
                "creator_username": user.username,
                "creator_nickname": user.display_name,
                "privacy_level_options": list(privacy_options(self.sim, user.open_id)),
                "comment_disabled": False,
                "duet_disabled": False,
                "stitch_disabled": False,
                "max_video_post_duration_sec": max_duration(self.sim, user.open_id),
            }
        )

    def _owned_publish(self, body: dict[str, Any] | None, grant: AccessGrant) -> Publish | Response:
        publish_id = body.get("publish_id") if body else None
        if not isinstance(publish_id, str) or not publish_id:
            return invalid_params("publish_id is required")
        publish = self.store.get_publish(publish_id)
        if publish is None:
            return error("invalid_publish_id", 400)
        if publish.open_id != grant.user.open_id:
            return error("token_not_authorized_for_specified_publish_id", 400)
        return publish

    async def status_fetch(self, request: Request, grant: AccessGrant) -> Response:
        publish = self._owned_publish(await json_body(request), grant)
        if isinstance(publish, Response):
            return publish
        data = publish_status(self.sim, publish)
        mode = self.sim.faults.drop("status_fetch")
        if mode is not None:
            return lost_response(mode)
        return ok(data)

    async def cancel(self, request: Request, grant: AccessGrant) -> Response:
        publish = self._owned_publish(await json_body(request), grant)
        if isinstance(publish, Response):
            return publish
        if publish.stage not in ("uploading", "downloading"):
            return error("publish_not_cancellable", 400)
        self.store.finish(publish.publish_id, Outcome("publish_cancelled", self.sim.now()))
        return ok({})

    async def video_list(self, request: Request, grant: AccessGrant) -> Response:
        fields = parse_fields(request.query_params.get("fields"), VIDEO_FIELDS)
        if isinstance(fields, str):
            return invalid_params(fields)
        body = await json_body(request)
        if body is None:
            return invalid_params("The body must be a JSON object")
        max_count, cursor = body.get("max_count", 10), body.get("cursor")
        if not isinstance(max_count, int) or not 1 <= max_count <= MAX_VIDEOS:
            return invalid_params(f"max_count must be from 1 to {MAX_VIDEOS}")
        if cursor is not None and (not isinstance(cursor, int) or cursor < 0):
            return invalid_params("cursor must be a timestamp in milliseconds")
        before = cursor / 1000 if cursor else float("inf")
        found = self.store.user_videos(grant.user.open_id, self.sim.now(), before, max_count + 1)
        page = found[:max_count]
        next_cursor = int(page[-1].published_at * 1000) if page else (cursor or 0)
        data = {
            "videos": [render_video(self.sim, video, grant.user, fields) for video in page],
            "cursor": next_cursor,
            "has_more": len(found) > max_count,
        }
        mode = self.sim.faults.drop("video_list")
        return lost_response(mode) if mode is not None else ok(data)

    async def video_query(self, request: Request, grant: AccessGrant) -> Response:
        fields = parse_fields(request.query_params.get("fields"), VIDEO_FIELDS)
        if isinstance(fields, str):
            return invalid_params(fields)
        body = await json_body(request)
        filters = body.get("filters") if body else None
        ids = filters.get("video_ids") if isinstance(filters, dict) else None
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_VIDEOS:
            return invalid_params(f"filters.video_ids must hold 1 to {MAX_VIDEOS} video ids")
        if not all(isinstance(value, str) and value.isdigit() for value in ids):
            return invalid_params("video_ids must be strings of digits")
        now, videos = self.sim.now(), []
        for value in ids:
            video = self.store.get_video(int(value))
            visible = video is not None and video.published_at <= now and video.public_at <= now
            if video is not None and visible and video.open_id == grant.user.open_id:
                videos.append(render_video(self.sim, video, grant.user, fields))
        mode = self.sim.faults.drop("video_query")
        return lost_response(mode) if mode is not None else ok({"videos": videos})
