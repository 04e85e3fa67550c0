"""Test knobs under ``/_sandbox/`` — not part of TikTok's API."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.common.admin import bad, clock_routes, endpoint_fault_routes, json_object, knob_routes
from sandbox.common.knobs import KnobRules, fits, is_count, is_rate, is_strings
from sandbox.engagement import Audience
from sandbox.tiktok.api import publish_status
from sandbox.tiktok.config import (
    CONFIG_KEYS,
    ENDPOINT_FAULT_KEYS,
    ERROR_STATUSES,
    FAIL_REASONS,
    FAIL_STATUSES,
    FAULT_ENDPOINTS,
    KNOWN_SCOPES,
    USER_KNOB_KEYS,
    EndpointFault,
    UserKnobs,
    public_config,
)
from sandbox.tiktok.db import Video
from sandbox.tiktok.oauth import USERNAME_RE
from sandbox.tiktok.state import TikTokSim

_RATES = ("fail_rate", "drop_response_rate")
_TUPLES = ("redirect_uris", "verified_url_prefixes", "withheld_scopes")
_OPTIONAL_INTS = ("access_token_ttl", "refresh_token_ttl", "max_video_post_duration_sec")


def _valid(config: object, key: str, value: Any) -> bool:
    if key in _RATES:
        return is_rate(value)
    if key == "drop_response_mode":
        return value in ("abort", "503")
    if key in ("fail_status", "refresh_fail_status"):
        return value in FAIL_STATUSES
    if key == "error_code":
        return value == "" or value in ERROR_STATUSES
    if key == "error_status":
        return isinstance(value, int) and (value == 0 or 200 <= value <= 599)
    if key in _TUPLES:
        nullable = key == "redirect_uris"
        strings = is_strings(value)
        if key == "withheld_scopes":
            strings = strings and all(v in KNOWN_SCOPES for v in value)
        return strings or (nullable and value is None)
    if key in _OPTIONAL_INTS and isinstance(config, UserKnobs):
        return value is None or is_count(value)
    return fits(getattr(config, key), value)


def _stored(_config: object, key: str, value: Any) -> Any:
    return tuple(value) if key in _TUPLES and value is not None else value


_RULES = KnobRules(_valid, _stored)


def _video(video: Video, username: str) -> dict[str, Any]:
    return {
        "id": str(video.id),
        "open_id": video.open_id,
        "username": username,
        "publish_id": video.publish_id,
        "media_type": video.media_type,
        "title": video.title,
        "description": video.description,
        "privacy_level": video.privacy_level,
        "published_at": video.published_at,
        "public_at": video.public_at,
        "duration_ms": video.duration_ms,
        "width": video.width,
        "height": video.height,
        "sha256": video.sha256,
    }


def build_admin_router(sim: TikTokSim) -> APIRouter:
    router = APIRouter(prefix="/_sandbox")
    config = sim.config

    @router.get("/videos")
    async def videos() -> Response:
        """Every published video, its user, and how many each user has with the same
        title and bytes (a double post shows as a count above one)."""
        names = {}
        data = []
        for video in sim.store.all_videos(sim.now()):
            if video.open_id not in names:
                user = sim.store.get_user(video.open_id)
                names[video.open_id] = user.username if user else video.open_id
            data.append(_video(video, names[video.open_id]))
        per_user = Counter(item["username"] for item in data)
        same = Counter((item["username"], item["title"], item["sha256"]) for item in data)
        duplicates = sum(1 for count in same.values() if count > 1)
        body = {"data": data, "count": len(data), "by_user": per_user, "duplicates": duplicates}
        return JSONResponse(body)

    @router.get("/publishes")
    async def publishes() -> Response:
        data = [
            {
                "publish_id": publish.publish_id,
                "open_id": publish.open_id,
                "media_type": publish.media_type,
                "source": publish.source,
                "title": publish.title,
                "privacy_level": publish.privacy_level,
                "video_size": publish.video_size,
                "chunk_size": publish.chunk_size,
                "total_chunk_count": publish.chunk_count,
                "created_at": publish.created_at,
                "video_id": None if publish.video_id is None else str(publish.video_id),
                **publish_status(sim, publish),
            }
            for publish in sim.store.all_publishes()
        ]
        return JSONResponse({"data": data, "count": len(data)})

    @router.post("/fail_reasons")
    async def force_fail_reason(request: Request) -> Response:
        """The next ``count`` publishes to finish processing fail with ``fail_reason``."""
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        reason, count = body.get("fail_reason"), body.get("count", 1)
        if reason not in FAIL_REASONS or not isinstance(count, int) or count < 1:
            return bad(f"expected fail_reason in {', '.join(FAIL_REASONS)} and a count >= 1")
        with sim.lock:
            sim.forced_fail_reasons.extend([reason] * count)
            return JSONResponse({"pending": list(sim.forced_fail_reasons)})

    @router.delete("/fail_reasons")
    async def clear_fail_reasons() -> Response:
        with sim.lock:
            sim.forced_fail_reasons.clear()
        return JSONResponse({"pending": []})

    router.include_router(
        knob_routes("/config", config, CONFIG_KEYS, _RULES, lambda: public_config(config))
    )
    router.include_router(clock_routes(sim.clock))
    router.include_router(_fault_routes(sim))
    router.include_router(_user_routes(sim))
    return router


def _fault_routes(sim: TikTokSim) -> APIRouter:
    router = APIRouter()

    @router.get("/faults")
    async def all_faults() -> Response:
        with sim.faults.lock:
            return JSONResponse({k: asdict(v) for k, v in sim.faults.endpoints.items()})

    @router.delete("/faults")
    async def clear_all_faults() -> Response:
        with sim.faults.lock:
            sim.faults.endpoints.clear()
        return JSONResponse({})

    router.include_router(
        endpoint_fault_routes(
            sim.faults, FAULT_ENDPOINTS, EndpointFault, ENDPOINT_FAULT_KEYS, _RULES
        )
    )
    return router


def _user_routes(sim: TikTokSim) -> APIRouter:
    """Per-user knobs (token lifetimes, refresh failures, private account, ban, scopes the
    user withholds), audience and revocation."""
    router = APIRouter()

    def described(open_id: str) -> dict[str, Any]:
        knobs = asdict(sim.knobs(open_id))
        knobs["withheld_scopes"] = list(knobs["withheld_scopes"])
        return {**knobs, "refresh_requests": sim.refresh_requests[open_id]}

    @router.get("/users/{username}")
    async def get_user(username: str) -> Response:
        user = sim.store.find_user(username)
        if user is None:
            return bad("no such user", 404)
        body = {**asdict(user), "knobs": described(user.open_id)}
        body["audience"] = sim.audience(user.open_id, user.username).as_json()
        return JSONResponse(body)

    @router.post("/users/{username}")
    async def set_user(username: str, request: Request) -> Response:
        """Set the user's knobs; a user not seen yet is created, so that even its first
        tokens or its first creator info follow them."""
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        if not USERNAME_RE.match(username):
            return bad("usernames are 2 to 24 letters, digits, underscores or periods")
        user = sim.store.get_or_create_user(username, sim.config.client_key, sim.now())
        with sim.lock:
            knobs = _RULES.edited(sim.users.get(user.open_id) or UserKnobs(), body, USER_KNOB_KEYS)
            if isinstance(knobs, str):
                return bad(knobs)
            sim.users[user.open_id] = knobs
        return JSONResponse(described(user.open_id))

    @router.delete("/users/{username}")
    async def clear_user(username: str) -> Response:
        user = sim.store.find_user(username)
        if user is not None:
            with sim.lock:
                sim.users.pop(user.open_id, None)
        return JSONResponse(asdict(UserKnobs()) | {"withheld_scopes": []})

    @router.post("/users/{username}/audience")
    async def set_audience(username: str, request: Request) -> Response:
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        if not USERNAME_RE.match(username):
            return bad("usernames are 2 to 24 letters, digits, underscores or periods")
        try:
            audience = Audience.from_json(body)
        except ValueError as exc:
            return bad(str(exc))
        user = sim.store.get_or_create_user(username, sim.config.client_key, sim.now())
        with sim.lock:
            sim.audiences[user.open_id] = audience
        return JSONResponse(audience.as_json())

    @router.post("/users/{username}/revoke")
    async def revoke_user(username: str, request: Request) -> Response:
        """Revoke all the user's tokens (``{"tokens": "all"}``, the default), or only its
        refresh tokens (``{"tokens": "refresh"}``)."""
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        which = body.get("tokens", "all")
        if set(body) - {"tokens"} or which not in ("all", "refresh"):
            return bad('expected {"tokens": "all" | "refresh"}')
        user = sim.store.find_user(username)
        if user is None:
            return bad("no such user", 404)
        revoked = sim.store.revoke_user(user.open_id, sim.now(), refresh_only=which == "refresh")
        return JSONResponse({"revoked_tokens": revoked})

    return router
