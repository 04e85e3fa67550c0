"""Test knobs under ``/_sandbox/`` — not part of Meta's API."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import asdict
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.engagement import Audience
from sandbox.instagram.config import (
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
from sandbox.instagram.db import Container, Media
from sandbox.instagram.graph import iso
from sandbox.instagram.oauth import FB_USERNAME_RE, IG_USERNAME_RE
from sandbox.instagram.state import InstagramSim
from sandbox.instagram.store import ACCOUNT_TYPES, Account

_RATES = ("fail_rate", "drop_response_rate", "error_rate")
_CHOICES: dict[str, tuple[object, ...]] = {
    "drop_response_mode": ("abort", "503"),
    "fail_status": FAIL_STATUSES,
    "refresh_fail_status": FAIL_STATUSES,
    "token_response_shape": ("data", "flat"),
}
PUBLISHED_TYPES = {"IMAGE": "FEED", "CAROUSEL_ALBUM": "FEED", "VIDEO": "REELS"}


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"{}")
    except ValueError:
        return _bad("body must be JSON")


async def _json_object(request: Request) -> dict[str, Any] | JSONResponse:
    body = await _json(request)
    if isinstance(body, JSONResponse):
        return body
    return body if isinstance(body, dict) else _bad("body must be a JSON object")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _valid(config: object, key: str, value: object) -> bool:
    current = getattr(config, key)
    if key in _RATES:
        return _is_number(value) and 0 <= value <= 1  # type: ignore[operator]
    if key in _CHOICES:
        return value in _CHOICES[key]
    if key == "redirect_uris":
        return value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))
    if key == "error_code":
        return isinstance(value, int) and not isinstance(value, bool)
    if key == "error_status":
        return isinstance(value, int) and 400 <= value <= 599
    if isinstance(config, UserTokens) and key.endswith("_ttl"):
        return value is None or (isinstance(value, int) and not isinstance(value, bool))
    if isinstance(current, bool):
        return isinstance(value, bool)
    if isinstance(current, float):
        return _is_number(value) and value >= 0  # type: ignore[operator]
    if isinstance(current, int):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return isinstance(value, type(current))


def _apply(config: object, body: dict[str, Any], allowed: tuple[str, ...]) -> str | None:
    """Set the given attributes after checking them; the error message or ``None``."""
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        return f"unknown keys: {', '.join(unknown)}"
    for key, value in body.items():
        if not _valid(config, key, value):
            return f"invalid value for {key}"
    for key, value in body.items():
        if key == "redirect_uris" and value:
            setattr(config, key, tuple(value))
        elif isinstance(getattr(config, key), float):
            setattr(config, key, float(value))
        else:
            setattr(config, key, value)
    return None


def _container(container: Container, now: float) -> dict[str, Any]:
    status_code, status = container.status(now)
    return {
        "id": container.id,
        "owner_id": container.owner_id,
        "kind": container.kind,
        "is_carousel_item": container.is_carousel_item,
        "caption": container.caption,
        "source_url": container.source_url,
        "children": list(container.children),
        "status_code": status_code,
        "status": status,
        "media_id": container.media_id,
        "width": container.width,
        "height": container.height,
        "duration_ms": container.duration_ms,
        "size": container.size,
        "created_at": iso(container.created_at),
    }


def _media(media: Media, accounts: dict[str, Account]) -> dict[str, Any]:
    owner = accounts.get(media.owner_id)
    return {
        "id": media.id,
        "owner_id": media.owner_id,
        "username": owner.username if owner else None,
        "container_id": media.container_id,
        "media_type": media.media_type,
        "media_product_type": media.product_type,
        "caption": media.caption,
        "permalink": media.permalink,
        "children": media.children,
        "via_api": media.via_api,
        "timestamp": iso(media.published_at),
    }


def build_admin_router(sim: InstagramSim) -> APIRouter:
    router = APIRouter(prefix="/_sandbox")
    config = sim.config

    @router.get("/media")
    async def media() -> Response:
        """Every published media; ``duplicates`` counts (account, caption) pairs published
        more than once through the API."""
        accounts = {account.id: account for account in sim.store.all_accounts()}
        published = sim.store.all_media()
        data = [_media(item, accounts) for item in published]
        repeats = Counter((m.owner_id, m.caption) for m in published if m.via_api)
        per_account = Counter(row["username"] for row in data)
        return JSONResponse(
            {
                "data": data,
                "count": len(data),
                "by_account": dict(per_account),
                "duplicates": sum(1 for seen in repeats.values() if seen > 1),
            }
        )

    @router.get("/containers")
    async def containers() -> Response:
        now = sim.now()
        data = [_container(container, now) for container in sim.store.all_containers()]
        return JSONResponse({"data": data, "count": len(data)})

    @router.get("/config")
    async def get_config() -> Response:
        return JSONResponse(public_config(config))

    @router.post("/config")
    async def set_config(request: Request) -> Response:
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        error = _apply(config, body, CONFIG_KEYS)
        return _bad(error) if error else JSONResponse(public_config(config))

    @router.get("/faults")
    async def get_faults() -> Response:
        return JSONResponse(sim.faults.snapshot())

    @router.post("/faults")
    async def set_faults(request: Request) -> Response:
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        error = _apply(config, body, FAULT_KEYS)
        return _bad(error) if error else JSONResponse(sim.faults.snapshot())

    @router.get("/faults/{endpoint}")
    async def get_endpoint_faults(endpoint: str) -> Response:
        if endpoint not in FAULT_ENDPOINTS:
            return _bad(f"unknown endpoint; one of: {', '.join(FAULT_ENDPOINTS)}")
        return JSONResponse(asdict(sim.faults.endpoints.get(endpoint, EndpointFault())))

    @router.post("/faults/{endpoint}")
    async def set_endpoint_faults(endpoint: str, request: Request) -> Response:
        """Faults of one endpoint, e.g. ``{"drop_response_rate": 1, "times": 1}`` (the
        next write commits, then its response is lost) or ``{"error_rate": 1,
        "error_code": 9007, "error_subcode": 2207027}``."""
        if endpoint not in FAULT_ENDPOINTS:
            return _bad(f"unknown endpoint; one of: {', '.join(FAULT_ENDPOINTS)}")
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        with sim.faults.lock:
            fault = dataclasses.replace(sim.faults.endpoints.get(endpoint, EndpointFault()))
            error = _apply(fault, body, ENDPOINT_FAULT_KEYS)
            if error:
                return _bad(error)
            sim.faults.set(endpoint, fault)
        return JSONResponse(asdict(fault))

    @router.delete("/faults/{endpoint}")
    async def clear_endpoint_faults(endpoint: str) -> Response:
        with sim.faults.lock:
            sim.faults.endpoints.pop(endpoint, None)
        return JSONResponse(asdict(EndpointFault()))

    @router.get("/clock")
    async def get_clock() -> Response:
        return JSONResponse({"now": sim.now(), "offset_seconds": sim.clock.offset})

    @router.post("/clock")
    async def advance_clock(request: Request) -> Response:
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        seconds = body.get("advance_seconds")
        if set(body) != {"advance_seconds"} or not isinstance(seconds, int | float) or seconds < 0:
            return _bad('expected {"advance_seconds": <non-negative number>}')
        sim.clock.advance(float(seconds))
        return JSONResponse({"now": sim.now(), "offset_seconds": sim.clock.offset})

    router.include_router(_instagram_users(sim))
    router.include_router(_facebook_users(sim))
    return router


def _token_routes(sim: InstagramSim, router: APIRouter, prefix: str, login: str) -> None:
    """``{prefix}/{username}/tokens`` and ``/revoke`` for one login path's accounts."""

    def subject(username: str) -> str | None:
        if login == "instagram":
            account = sim.store.find_account(username)
            return account.id if account else None
        user = sim.store.find_fb_user(username)
        return user.id if user else None

    @router.post(f"{prefix}/{{username}}/tokens")
    async def set_tokens(username: str, request: Request) -> Response:
        """Lifetimes of the tokens issued to this account from now on, and refresh failures;
        an account not seen yet is created, so its very first tokens can be short-lived."""
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        if login == "instagram":
            if not IG_USERNAME_RE.match(username):
                return _bad("usernames are 1 to 30 letters, digits, periods or underscores")
            key = f"instagram:{sim.store.get_or_create_account(username, sim.now()).id}"
        else:
            if not FB_USERNAME_RE.match(username):
                return _bad("names are 1 to 23 letters, digits, periods or underscores")
            key = f"facebook:{sim.store.get_or_create_fb_user(username, sim.now()).id}"
        with sim.lock:
            knobs = dataclasses.replace(sim.user_tokens.get(key, UserTokens()))
            error = _apply(knobs, body, USER_TOKEN_KEYS)
            if error:
                return _bad(error)
            sim.user_tokens[key] = knobs
        return JSONResponse({**asdict(knobs), "refresh_requests": sim.refresh_requests[key]})

    @router.post(f"{prefix}/{{username}}/revoke")
    async def revoke(username: str) -> Response:
        """The user removed the app: every token of this account stops working."""
        subject_id = subject(username)
        if subject_id is None:
            return _bad("no such account", 404)
        return JSONResponse(
            {"revoked_tokens": sim.store.revoke_subject(login, subject_id, sim.now())}
        )


def _account_json(sim: InstagramSim, account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "username": account.username,
        "name": account.name,
        "account_type": account.account_type,
        "quota_total": sim.config.quota_total
        if account.quota_total is None
        else account.quota_total,
        "audience": sim.audience(account).as_json(),
    }


def _instagram_users(sim: InstagramSim) -> APIRouter:
    router = APIRouter()

    @router.get("/users/{username}")
    async def get_user(username: str) -> Response:
        account = sim.store.find_account(username)
        if account is None:
            return _bad("no such account", 404)
        return JSONResponse(_account_json(sim, account))

    @router.post("/users/{username}")
    async def set_user(username: str, request: Request) -> Response:
        """Create or change an Instagram account: ``account_type`` (BUSINESS,
        MEDIA_CREATOR or PERSONAL), ``name``, ``quota_total`` (its publishing quota)."""
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        if not IG_USERNAME_RE.match(username):
            return _bad("usernames are 1 to 30 letters, digits, periods or underscores")
        unknown = sorted(set(body) - {"account_type", "name", "quota_total"})
        if unknown:
            return _bad(f"unknown keys: {', '.join(unknown)}")
        if "account_type" in body and body["account_type"] not in ACCOUNT_TYPES:
            return _bad(f"account_type must be one of {', '.join(ACCOUNT_TYPES)}")
        if "name" in body and not isinstance(body["name"], str):
            return _bad("name must be a string")
        quota = body.get("quota_total")
        if quota is not None and (not isinstance(quota, int) or quota < 0):
            return _bad("quota_total must be a non-negative integer or null")
        account = sim.store.get_or_create_account(username, sim.now())
        if body:
            account = sim.store.update_account(account.id, body)
        return JSONResponse(_account_json(sim, account))

    @router.post("/users/{username}/audience")
    async def set_audience(username: str, request: Request) -> Response:
        """When this account's followers are around (``sandbox.engagement.Audience``)."""
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            audience = Audience.from_json(body)
        except ValueError as exc:
            return _bad(str(exc))
        if not IG_USERNAME_RE.match(username):
            return _bad("usernames are 1 to 30 letters, digits, periods or underscores")
        account = sim.store.get_or_create_account(username, sim.now())
        account = sim.store.update_account(account.id, {"audience": audience})
        return JSONResponse(_account_json(sim, account))

    @router.post("/users/{username}/media")
    async def seed_media(username: str, request: Request) -> Response:
        """A post published in the app (not through the API) at ``published_at`` (ISO 8601
        or Unix seconds): an account's history, e.g. for ``seed-history``."""
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        account = sim.store.find_account(username)
        if account is None:
            return _bad("no such account", 404)
        media_type = body.get("media_type", "IMAGE")
        published = body.get("published_at", sim.now())
        try:
            published_at = (
                datetime.fromisoformat(published).timestamp()
                if isinstance(published, str)
                else float(published)
            )
        except (TypeError, ValueError):
            return _bad("published_at must be ISO 8601 or Unix seconds")
        if media_type not in PUBLISHED_TYPES or not isinstance(body.get("caption", ""), str):
            return _bad(f"media_type must be one of {', '.join(PUBLISHED_TYPES)}")
        seeded = sim.store.seed_media(
            account.id,
            body.get("caption", ""),
            media_type,
            PUBLISHED_TYPES[media_type],
            published_at,
        )
        return JSONResponse(_media(seeded, {account.id: account}))

    _token_routes(sim, router, "/users", "instagram")
    return router


def _facebook_users(sim: InstagramSim) -> APIRouter:
    router = APIRouter()

    def user_json(user_id: str) -> dict[str, Any]:
        user = sim.store.get_fb_user(user_id)
        assert user is not None
        pages = []
        for page in sim.store.pages(user_id):
            linked = sim.store.get_account(page.ig_account_id) if page.ig_account_id else None
            pages.append(
                {
                    "id": page.id,
                    "name": page.name,
                    "instagram": linked.username if linked else None,
                    "instagram_id": linked.id if linked else None,
                }
            )
        return {"id": user.id, "username": user.username, "name": user.name, "pages": pages}

    @router.get("/facebook-users/{username}")
    async def get_user(username: str) -> Response:
        user = sim.store.find_fb_user(username)
        return _bad("no such user", 404) if user is None else JSONResponse(user_json(user.id))

    @router.put("/facebook-users/{username}/pages")
    async def set_pages(username: str, request: Request) -> Response:
        """Replace the user's Pages: ``[{"name": "...", "instagram": "<username>" | null}]``
        (an empty list, or no linked account, is a user with nothing to publish to)."""
        body = await _json(request)
        if isinstance(body, JSONResponse):
            return body
        if not FB_USERNAME_RE.match(username):
            return _bad("names are 1 to 23 letters, digits, periods or underscores")
        pages: list[tuple[str, str | None]] = []
        for item in body if isinstance(body, list) else [None]:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                return _bad('expected [{"name": "...", "instagram": "<username>" | null}]')
            linked = item.get("instagram")
            if linked is not None and (
                not isinstance(linked, str) or not IG_USERNAME_RE.match(linked)
            ):
                return _bad("instagram must be an Instagram username or null")
            pages.append((item["name"], linked))
        user = sim.store.get_or_create_fb_user(username, sim.now())
        sim.store.replace_pages(user.id, pages, sim.now())
        return JSONResponse(user_json(user.id))

    _token_routes(sim, router, "/facebook-users", "facebook")
    return router
