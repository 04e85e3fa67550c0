"""Test knobs under ``/_sandbox/`` — not part of X's API."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.common.admin import bad, clock_routes, endpoint_fault_routes, json_object, knob_routes
from sandbox.common.knobs import KnobRules, fits, is_count, is_rate, is_strings
from sandbox.engagement import Audience, default_audience
from sandbox.x.api import iso
from sandbox.x.config import (
    CONFIG_KEYS,
    ENDPOINT_FAULT_KEYS,
    FAIL_STATUSES,
    FAULT_ENDPOINTS,
    FAULT_KEYS,
    USER_TOKEN_KEYS,
    EndpointFault,
    UserTokens,
    public_config,
)
from sandbox.x.db import TWITTER_EPOCH_MS, Media
from sandbox.x.media import processing_info
from sandbox.x.oauth import USERNAME_RE
from sandbox.x.state import XSim

_RATES = ("fail_rate", "drop_response_rate")
_MAX_SEEDED = 1000


def _attached(media: Media) -> dict[str, Any]:
    return {
        "id": media.id,
        "media_type": media.media_type,
        "size": media.total_bytes,
        "sha256": media.sha256,
        "width": media.width,
        "height": media.height,
    }


def _upload(media: Media, now: float) -> dict[str, Any]:
    state = media.state
    if state != "uploading" and media.ready_at is not None:
        state = processing_info(media, now)["state"]
    return {
        **_attached(media),
        "media_key": media.key,
        "owner_id": media.owner_id,
        "media_category": media.category,
        "state": state,
        "error": media.error,
        "duration_ms": media.duration_ms,
        "created_at": iso(media.created_at),
        "expires_at": iso(media.expires_at),
    }


def _valid(config: object, key: str, value: Any) -> bool:
    if key in _RATES:
        return is_rate(value)
    if key == "drop_response_mode":
        return value in ("abort", "503")
    if key in ("fail_status", "refresh_fail_status"):
        return value in FAIL_STATUSES
    if isinstance(config, UserTokens) and key in ("access_token_ttl", "refresh_token_ttl"):
        return value is None or is_count(value)
    if key == "client_type":
        return value in ("confidential", "public")
    if key == "metrics_key_style":
        return value in ("retweet", "repost")
    if key == "redirect_uris":
        return value is None or is_strings(value)
    return fits(getattr(config, key), value)


def _stored(_config: object, key: str, value: Any) -> Any:
    return tuple(value) if key == "redirect_uris" and value else value


_RULES = KnobRules(_valid, _stored)


def build_admin_router(sim: XSim) -> APIRouter:
    router = APIRouter(prefix="/_sandbox")
    config = sim.config

    @router.get("/tweets")
    async def tweets() -> Response:
        recorded = sim.store.all_tweets()
        attached = sim.store.tweet_media([t.id for t in recorded])
        data = [
            {
                "id": t.id,
                "author_id": t.author_id,
                "text": t.text,
                "in_reply_to": t.in_reply_to,
                "conversation_id": t.conversation_id,
                "created_at": iso(t.created_at),
                "media": [_attached(media) for media in attached.get(t.id, [])],
            }
            for t in recorded
        ]
        return JSONResponse(
            {"data": data, "count": len(data), "duplicates": sim.store.duplicate_groups()}
        )

    @router.get("/media")
    async def media() -> Response:
        now = sim.now()
        data = [_upload(item, now) for item in sim.store.all_media()]
        return JSONResponse({"data": data, "count": len(data)})

    router.include_router(knob_routes("/faults", config, FAULT_KEYS, _RULES, sim.faults.snapshot))
    router.include_router(
        endpoint_fault_routes(
            sim.faults, FAULT_ENDPOINTS, EndpointFault, ENDPOINT_FAULT_KEYS, _RULES
        )
    )
    router.include_router(
        knob_routes("/config", config, CONFIG_KEYS, _RULES, lambda: public_config(config))
    )
    router.include_router(clock_routes(sim.clock))
    router.include_router(_user_routes(sim))
    router.include_router(_engagement_routes(sim))
    return router


def _user_routes(sim: XSim) -> APIRouter:
    """Per-user knobs: token lifetimes, refresh failures, revocation."""
    router = APIRouter()

    def user_tokens(user_id: str) -> dict[str, Any]:
        return {
            **asdict(sim.user_tokens.get(user_id, UserTokens())),
            "refresh_requests": sim.refresh_requests[user_id],
        }

    @router.get("/users/{username}")
    async def get_user(username: str) -> Response:
        user = sim.store.find_user(username)
        if user is None:
            return JSONResponse({"error": "no such user"}, status_code=404)
        return JSONResponse(
            {
                "id": user.id,
                "username": user.username,
                "name": user.name,
                "tokens": user_tokens(user.id),
            }
        )

    @router.post("/users/{username}/tokens")
    async def set_user_tokens(username: str, request: Request) -> Response:
        """Per-user token lifetimes and refresh failures; a user not seen yet is created,
        so its very first tokens can be short-lived."""
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        if not USERNAME_RE.match(username):
            return bad("usernames are 1 to 15 letters, digits or underscores")
        user = sim.store.get_or_create_user(username, sim.now())
        with sim.lock:
            knobs = _RULES.edited(sim.user_tokens.get(user.id, UserTokens()), body, USER_TOKEN_KEYS)
            if isinstance(knobs, str):
                return bad(knobs)
            sim.user_tokens[user.id] = knobs
        return JSONResponse(user_tokens(user.id))

    @router.delete("/users/{username}/tokens")
    async def clear_user_tokens(username: str) -> Response:
        user = sim.store.find_user(username)
        if user is not None:
            with sim.lock:
                sim.user_tokens.pop(user.id, None)
        return JSONResponse(asdict(UserTokens()))

    @router.post("/users/{username}/revoke")
    async def revoke_user(username: str, request: Request) -> Response:
        """Revoke every grant of the user (``{"tokens": "all"}``, the default), or only its
        refresh tokens (``{"tokens": "refresh"}``): access tokens then work until they expire
        and nothing can renew them."""
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        which = body.get("tokens", "all")
        if set(body) - {"tokens"} or which not in ("all", "refresh"):
            return bad('expected {"tokens": "all" | "refresh"}')
        user = sim.store.find_user(username)
        if user is None:
            return JSONResponse({"error": "no such user"}, status_code=404)
        if which == "refresh":
            count = sim.store.revoke_user_refresh_tokens(user.id, sim.now())
            return JSONResponse({"revoked_refresh_tokens": count})
        revoked = sim.store.revoke_user(user.id, sim.now())
        return JSONResponse({"revoked_grants": revoked})

    return router


def _seed_posts(body: dict[str, Any], now: float) -> list[tuple[str, float]] | str:
    """``(text, created_at)`` of each post to seed, or what is wrong with the body."""
    tweets = body.get("tweets")
    if set(body) != {"tweets"} or not isinstance(tweets, list):
        return 'expected {"tweets": [{"text": "...", "created_at": "<RFC 3339>"}, ...]}'
    if not 1 <= len(tweets) <= _MAX_SEEDED:
        return f"tweets must hold 1 to {_MAX_SEEDED} posts"
    posts = []
    for index, item in enumerate(tweets):
        if (
            not isinstance(item, dict)
            or set(item) - {"text", "created_at"}
            or not isinstance(item.get("text"), str)
            or not item["text"]
        ):
            return f"tweets[{index}] must be an object with a text and an optional created_at"
        raw = item.get("created_at")
        created_at = now if raw is None else _timestamp(raw)
        if created_at is None or not TWITTER_EPOCH_MS / 1000 <= created_at <= now:
            return (
                f"tweets[{index}].created_at must be an RFC 3339 timestamp with a time zone,"
                " from 2010-11-04 to the simulator's now"
            )
        posts.append((item["text"], created_at))
    return posts


def _timestamp(raw: object) -> float | None:
    try:
        moment = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    return None if moment is None or moment.tzinfo is None else moment.timestamp()


def _engagement_routes(sim: XSim) -> APIRouter:
    """Each user's audience (which the metrics of its posts follow), and posts made in the
    past: what a metrics test, or a demo's seeded history, needs to know the true answer."""
    router = APIRouter()

    def audience_body(username: str) -> dict[str, Any]:
        user = sim.store.find_user(username)
        stored = None if user is None else sim.store.get_audience(user.id)
        audience = stored or default_audience(user.username if user else username)
        return {**audience.as_json(), "default": stored is None}

    @router.get("/users/{username}/audience")
    async def get_audience(username: str) -> Response:
        """The audience set for the user, or the default one its name gives it."""
        if not USERNAME_RE.match(username):
            return bad("usernames are 1 to 15 letters, digits or underscores")
        return JSONResponse(audience_body(username))

    @router.post("/users/{username}/audience")
    async def set_audience(username: str, request: Request) -> Response:
        """``{"best_hours": [UTC hours], "best_days": [0 = Monday ...], "size": views}``;
        kept in the simulator's file. A user not seen yet is created."""
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        if not USERNAME_RE.match(username):
            return bad("usernames are 1 to 15 letters, digits or underscores")
        try:
            audience = Audience.from_json(body)
        except ValueError as exc:
            return bad(str(exc))
        user = sim.store.get_or_create_user(username, sim.now())
        sim.store.set_audience(user.id, audience)
        return JSONResponse(audience_body(username))

    @router.delete("/users/{username}/audience")
    async def clear_audience(username: str) -> Response:
        user = sim.store.find_user(username)
        if user is not None:
            sim.store.set_audience(user.id, None)
        return JSONResponse(audience_body(username))

    @router.post("/users/{username}/tweets")
    async def seed_tweets(username: str, request: Request) -> Response:
        """Posts the user made in the past, ``{"tweets": [{"text", "created_at"}]}`` (1 to
        1000; ``created_at`` defaults to now and may not be in the simulator's future).
        Stored as given: no length or duplicate checks, no rate limit. A user not seen yet
        is created."""
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        if not USERNAME_RE.match(username):
            return bad("usernames are 1 to 15 letters, digits or underscores")
        posts = _seed_posts(body, sim.now())
        if isinstance(posts, str):
            return bad(posts)
        user = sim.store.get_or_create_user(username, sim.now())
        seeded = sim.store.seed_tweets(user.id, posts)
        data = [{"id": t.id, "text": t.text, "created_at": iso(t.created_at)} for t in seeded]
        return JSONResponse({"data": data, "count": len(data)})

    return router
