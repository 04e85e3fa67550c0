"""Test knobs under ``/_sandbox/`` — not part of Meta's API."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.common.admin import (
    bad,
    clock_routes,
    endpoint_fault_routes,
    json_object,
    knob_routes,
    read_json,
)
from sandbox.common.knobs import KnobRules, fits, is_rate, is_strings
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


def _valid(config: object, key: str, value: object) -> bool:
    if key in _RATES:
        return is_rate(value)
    if key in _CHOICES:
        return value in _CHOICES[key]
    if key == "redirect_uris":
        return value is None or is_strings(value)
    if key == "error_code":
        return isinstance(value, int) and not isinstance(value, bool)
    if key == "error_status":
        return isinstance(value, int) and 400 <= value <= 599
    if isinstance(config, UserTokens) and key.endswith("_ttl"):
        return value is None or (isinstance(value, int) and not isinstance(value, bool))
    return fits(getattr(config, key), value)


def _stored(config: object, key: str, value: Any) -> Any:
    if key == "redirect_uris" and value:
        return tuple(value)
    if isinstance(getattr(config, key), float):
        return float(value)
    return value


_RULES = KnobRules(_valid, _stored)


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

    router.include_router(
        knob_routes("/config", config, CONFIG_KEYS, _RULES, lambda: public_config(config))
    )
    router.include_router(knob_routes("/faults", config, FAULT_KEYS, _RULES, sim.faults.snapshot))
    router.include_router(
        endpoint_fault_routes(
            sim.faults, FAULT_ENDPOINTS, EndpointFault, ENDPOINT_FAULT_KEYS, _RULES
        )
    )
    router.include_router(clock_routes(sim.clock))
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
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        if login == "instagram":
            if not IG_USERNAME_RE.match(username):
                return bad("usernames are 1 to 30 letters, digits, periods or underscores")
            key = f"instagram:{sim.store.get_or_create_account(username, sim.now()).id}"
        else:
            if not FB_USERNAME_RE.match(username):
                return bad("names are 1 to 23 letters, digits, periods or underscores")
            key = f"facebook:{sim.store.get_or_create_fb_user(username, sim.now()).id}"
        with sim.lock:
            knobs = _RULES.edited(sim.user_tokens.get(key, UserTokens()), body, USER_TOKEN_KEYS)
            if isinstance(knobs, str):
                return bad(knobs)
            sim.user_tokens[key] = knobs
        return JSONResponse({**asdict(knobs), "refresh_requests": sim.refresh_requests[key]})

    @router.post(f"{prefix}/{{username}}/revoke")
    async def revoke(username: str) -> Response:
        """The user removed the app: every token of this account stops working."""
        subject_id = subject(username)
        if subject_id is None:
            return bad("no such account", 404)
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
            return bad("no such account", 404)
        return JSONResponse(_account_json(sim, account))

    @router.post("/users/{username}")
    async def set_user(username: str, request: Request) -> Response:
        """Create or change an Instagram account: ``account_type`` (BUSINESS,
        MEDIA_CREATOR or PERSONAL), ``name``, ``quota_total`` (its publishing quota)."""
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        if not IG_USERNAME_RE.match(username):
            return bad("usernames are 1 to 30 letters, digits, periods or underscores")
        unknown = sorted(set(body) - {"account_type", "name", "quota_total"})
        if unknown:
            return bad(f"unknown keys: {', '.join(unknown)}")
        if "account_type" in body and body["account_type"] not in ACCOUNT_TYPES:
            return bad(f"account_type must be one of {', '.join(ACCOUNT_TYPES)}")
        if "name" in body and not isinstance(body["name"], str):
            return bad("name must be a string")
        quota = body.get("quota_total")
        if quota is not None and (not isinstance(quota, int) or quota < 0):
            return bad("quota_total must be a non-negative integer or null")
        account = sim.store.get_or_create_account(username, sim.now())
        if body:
            account = sim.store.update_account(account.id, body)
        return JSONResponse(_account_json(sim, account))

    @router.post("/users/{username}/audience")
    async def set_audience(username: str, request: Request) -> Response:
        """When this account's followers are around (``sandbox.engagement.Audience``)."""
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            audience = Audience.from_json(body)
        except ValueError as exc:
            return bad(str(exc))
        if not IG_USERNAME_RE.match(username):
            return bad("usernames are 1 to 30 letters, digits, periods or underscores")
        account = sim.store.get_or_create_account(username, sim.now())
        account = sim.store.update_account(account.id, {"audience": audience})
        return JSONResponse(_account_json(sim, account))

    @router.post("/users/{username}/media")
    async def seed_media(username: str, request: Request) -> Response:
        """A post published in the app (not through the API) at ``published_at`` (ISO 8601
        or Unix seconds): an account's history, e.g. for ``seed-history``."""
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        account = sim.store.find_account(username)
        if account is None:
            return bad("no such account", 404)
        media_type = body.get("media_type", "IMAGE")
        published = body.get("published_at", sim.now())
        try:
            published_at = (
                datetime.fromisoformat(published).timestamp()
                if isinstance(published, str)
                else float(published)
            )
        except (TypeError, ValueError):
            return bad("published_at must be ISO 8601 or Unix seconds")
        if media_type not in PUBLISHED_TYPES or not isinstance(body.get("caption", ""), str):
            return bad(f"media_type must be one of {', '.join(PUBLISHED_TYPES)}")
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
        return bad("no such user", 404) if user is None else JSONResponse(user_json(user.id))

    @router.put("/facebook-users/{username}/pages")
    async def set_pages(username: str, request: Request) -> Response:
        """Replace the user's Pages: ``[{"name": "...", "instagram": "<username>" | null}]``
        (an empty list, or no linked account, is a user with nothing to publish to)."""
        body = await read_json(request)
        if isinstance(body, JSONResponse):
            return body
        if not FB_USERNAME_RE.match(username):
            return bad("names are 1 to 23 letters, digits, periods or underscores")
        pages: list[tuple[str, str | None]] = []
        for item in body if isinstance(body, list) else [None]:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                return bad('expected [{"name": "...", "instagram": "<username>" | null}]')
            linked = item.get("instagram")
            if linked is not None and (
                not isinstance(linked, str) or not IG_USERNAME_RE.match(linked)
            ):
                return bad("instagram must be an Instagram username or null")
            pages.append((item["name"], linked))
        user = sim.store.get_or_create_fb_user(username, sim.now())
        sim.store.replace_pages(user.id, pages, sim.now())
        return JSONResponse(user_json(user.id))

    _token_routes(sim, router, "/facebook-users", "facebook")
    return router
