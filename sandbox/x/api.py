"""The X API v2 resource endpoints: users/me, create tweet, timeline, lookup (metrics).

Media upload lives in ``sandbox.x.media`` and reuses :meth:`ApiRoutes.guarded`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from sandbox.common.faults import DropMode
from sandbox.x import problems
from sandbox.x.db import Media, Tweet
from sandbox.x.metrics import (
    PRIVATE_METRICS,
    engagement,
    field_errors,
    may_see_private,
    private_metrics,
    public_metrics,
)
from sandbox.x.problems import XJSONResponse, invalid_request, not_found_error, rate_headers
from sandbox.x.state import XSim
from sandbox.x.store import AccessGrant, User
from sandbox.x.text import is_too_long, link_entities
from sandbox.x.validation import (
    TWEET_FIELDS,
    USER_FIELDS,
    attachment_problem,
    is_id,
    parse_fields,
    parse_ids,
    parse_timeline_query,
    validate_tweet_body,
)

DEFAULT_AVATAR = "https://abs.twimg.com/sticky/default_profile_images/default_profile_normal.png"
READ_SCOPES = ("tweet.read", "users.read")
WRITE_SCOPES = ("tweet.read", "tweet.write", "users.read")

Guarded = tuple[AccessGrant, dict[str, str]]


def iso(ts: float) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def render_user(user: User, fields: Iterable[str]) -> dict[str, Any]:
    data: dict[str, Any] = {"id": user.id, "name": user.name, "username": user.username}
    extra: dict[str, Any] = {
        "profile_image_url": DEFAULT_AVATAR,
        "description": "",
        "protected": False,
        "verified": False,
    }
    data.update({name: extra[name] for name in fields if name in extra})
    return data


def render_tweet(
    sim: XSim, tweet: Tweet, fields: Iterable[str], viewer_id: str | None = None
) -> dict[str, Any]:
    """The post as X shows it to ``viewer_id``: author-only metrics only to its author."""
    attached = sim.store.tweet_media([tweet.id]).get(tweet.id, [])
    media_keys = [media.key for media in attached]
    text, urls = link_entities(tweet.text, media_keys, _media_page(sim, tweet, attached))
    data: dict[str, Any] = {
        "id": tweet.id,
        # X returns text HTML-escaped: & < > as &amp; &lt; &gt;.
        "text": text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
        "edit_history_tweet_ids": [tweet.id],
    }
    for name in fields:
        if name == "attachments":
            if attached:
                data[name] = {"media_keys": media_keys}
        elif name == "entities":
            if urls:
                data[name] = {"urls": urls}
        elif name == "created_at":
            data[name] = iso(tweet.created_at)
        elif name == "author_id":
            data[name] = tweet.author_id
        elif name == "conversation_id":
            data[name] = tweet.conversation_id
        elif name == "public_metrics":
            data[name] = public_metrics(engagement(sim, tweet), sim.config.metrics_key_style)
        elif name in PRIVATE_METRICS and may_see_private(tweet, viewer_id, sim.now()):
            counted = engagement(sim, tweet)
            data[name] = private_metrics(name, counted, sim.config.metrics_key_style)
        elif name in ("in_reply_to_user_id", "referenced_tweets") and tweet.in_reply_to:
            parent = sim.store.get_tweet(tweet.in_reply_to)
            if name == "referenced_tweets":
                data[name] = [{"type": "replied_to", "id": tweet.in_reply_to}]
            elif parent is not None:
                data[name] = parent.author_id
    return data


def _media_page(sim: XSim, tweet: Tweet, attached: list[Media]) -> str | None:
    """Where X's appended media link leads: the post's first photo or video."""
    if not attached:
        return None
    author = sim.store.get_user(tweet.author_id)
    if author is None:
        return None
    kind = "photo" if attached[0].kind == "photo" else "video"
    return f"https://x.com/{author.username}/status/{tweet.id}/{kind}/1"


Handler = Callable[[Request, AccessGrant, dict[str, str]], Awaitable[Response]]


def injected_failure(status: int, headers: dict[str, str]) -> Response:
    if status == 500:
        return problems.server_error(headers)
    titles = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
    title = titles.get(status, "Error")
    return problems.problem(status, title, title, headers=headers)


def lost_response(mode: DropMode, headers: dict[str, str]) -> Response:
    """What the client sees of a write that committed but whose response got lost."""
    return problems.LOST_ANSWER.response(mode, headers)


class ApiRoutes:
    """The guarded resource endpoints; each handler runs after :meth:`guard` let it through."""

    def __init__(self, sim: XSim) -> None:
        self.sim = sim
        self.config = sim.config
        self.store = sim.store

    def router(self) -> APIRouter:
        config = self.config
        routes: list[tuple[str, str, str, Callable[[], int], tuple[str, ...], Handler]] = [
            (
                "GET",
                "/2/users/me",
                "users_me",
                lambda: config.users_me_per_15min,
                READ_SCOPES,
                self.users_me,
            ),
            (
                "POST",
                "/2/tweets",
                "create_tweet",
                lambda: config.tweets_per_15min,
                WRITE_SCOPES,
                self.create_tweet,
            ),
            (
                "GET",
                "/2/tweets",
                "tweet_lookup",
                lambda: config.tweet_lookup_per_15min,
                READ_SCOPES,
                self.lookup,
            ),
            (
                "GET",
                "/2/tweets/{tweet_id}",
                "tweet_lookup",
                lambda: config.tweet_lookup_per_15min,
                READ_SCOPES,
                self.lookup_one,
            ),
            (
                "GET",
                "/2/users/{user_id}/tweets",
                "user_tweets",
                lambda: config.user_tweets_per_15min,
                READ_SCOPES,
                self.user_tweets,
            ),
        ]
        router = APIRouter()
        for method, path, bucket, limit, scopes, handler in routes:
            router.add_api_route(
                path,
                self.guarded(bucket, limit, scopes, handler),
                methods=[method],
                name=handler.__name__,
                status_code=201 if method == "POST" else 200,
            )
        return router

    def guarded(
        self, bucket: str, limit: Callable[[], int], scopes: tuple[str, ...], handler: Handler
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            outcome = await self.guard(request, bucket, limit(), scopes)
            if isinstance(outcome, Response):
                return outcome
            grant, headers = outcome
            return await handler(request, grant, headers)

        return endpoint

    async def guard(
        self, request: Request, bucket: str, limit: int, scopes: tuple[str, ...]
    ) -> Guarded | Response:
        """Latency, bearer auth, the per-user 15-minute window, scopes, injected 500s."""
        sim = self.sim
        await sim.delay()
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        grant = None
        if scheme.lower() == "bearer" and token.strip():
            grant = self.store.authenticate(token.strip(), sim.now())
        if grant is None:
            return problems.unauthorized()
        decision = self.store.hit_rate_limit(grant.user.id, bucket, limit, sim.now())
        headers = rate_headers(decision)
        if not decision.allowed:
            return problems.too_many_requests(headers)
        if not set(scopes) <= set(grant.scopes):
            return problems.forbidden("Forbidden", headers)
        failure = sim.faults.failure(bucket)
        if failure is not None:
            return injected_failure(failure, headers)
        return grant, headers

    async def users_me(
        self, request: Request, grant: AccessGrant, headers: dict[str, str]
    ) -> Response:
        fields = parse_fields(request.query_params.get("user.fields"), USER_FIELDS)
        if isinstance(fields, list):
            return invalid_request(fields, headers)
        return XJSONResponse({"data": render_user(grant.user, fields)}, headers=headers)

    async def create_tweet(
        self, request: Request, grant: AccessGrant, headers: dict[str, str]
    ) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            message = "Your request body could not be parsed as JSON."
            return invalid_request([{"message": message}], headers)
        rejection = self._reject_tweet(body, grant)
        if rejection is not None:
            return rejection(headers)
        text: str = body.get("text", "")
        reply_to: str | None = body.get("reply", {}).get("in_reply_to_tweet_id")
        media_ids: list[str] = body.get("media", {}).get("media_ids", [])
        tweet = self.store.insert_tweet(grant.user.id, text, reply_to, self.sim.now(), media_ids)
        mode = self.sim.faults.drop("create_tweet")
        if mode is not None:
            return lost_response(mode, headers)
        data = {"id": tweet.id, "text": tweet.text, "edit_history_tweet_ids": [tweet.id]}
        return XJSONResponse({"data": data}, status_code=201, headers=headers)

    def _reject_tweet(
        self, body: Any, grant: AccessGrant
    ) -> Callable[[dict[str, str]], Response] | None:
        """Why X would refuse this post (as a response factory), or ``None``."""
        errors = validate_tweet_body(body)
        if errors:
            return partial(invalid_request, errors)
        if "media" in body:
            ids: list[str] = body["media"]["media_ids"]
            found = [self.store.get_media(media_id) for media_id in ids]
            message = attachment_problem(ids, found, grant.user.id, self.sim.now())
            if message is not None:
                error = {"parameters": {"media.media_ids": ids}, "message": message}
                return partial(invalid_request, [error])
        quoted = body.get("quote_tweet_id")
        if quoted is not None and self.store.get_tweet(quoted) is None:
            return partial(invalid_request, [not_found_error("tweet", "quote_tweet_id", quoted)])
        text: str = body.get("text", "")
        if is_too_long(text):
            return partial(problems.forbidden, problems.TOO_LONG_DETAIL)
        reply_to: str | None = body.get("reply", {}).get("in_reply_to_tweet_id")
        if reply_to is not None:
            parent = self.store.get_tweet(reply_to)
            if parent is None:
                return partial(problems.forbidden, problems.REPLY_MISSING_DETAIL)
            mentioned = f"@{grant.user.username}".lower() in parent.text.lower()
            own = parent.author_id == grant.user.id
            if self.config.restrict_replies and not own and not mentioned:
                return partial(problems.forbidden, problems.REPLY_RESTRICTED_DETAIL)
        since = self.sim.now() - self.config.duplicate_window
        # A post of media alone has no text to be a duplicate of.
        checked = self.config.duplicate_check and bool(text.strip() or "media" not in body)
        if checked and self.store.has_duplicate(grant.user.id, text, since):
            return partial(problems.forbidden, problems.DUPLICATE_DETAIL)
        return None

    async def user_tweets(
        self, request: Request, grant: AccessGrant, headers: dict[str, str]
    ) -> Response:
        user_id = request.path_params["user_id"]
        query = parse_timeline_query(user_id, request.query_params)
        if isinstance(query, list):
            return invalid_request(query, headers)
        if self.store.get_user(user_id) is None:
            body = {"errors": [not_found_error("user", "id", user_id)]}
            return XJSONResponse(body, headers=headers)
        tweets = self.store.timeline(
            user_id,
            limit=query.max_results + 1,
            start_time=query.start_time,
            end_time=query.end_time,
            since_id=query.since_id,
            until_id=query.until_id,
            exclude_replies=query.exclude_replies,
        )
        page, more = tweets[: query.max_results], len(tweets) > query.max_results
        meta: dict[str, Any] = {"result_count": len(page)}
        if not page:
            return XJSONResponse({"meta": meta}, headers=headers)
        meta = {"newest_id": page[0].id, "oldest_id": page[-1].id, **meta}
        if more:
            meta["next_token"] = encode_cursor(int(page[-1].id))
        viewer = grant.user.id
        data = [render_tweet(self.sim, tweet, query.fields, viewer) for tweet in page]
        errors = [
            error
            for tweet in page
            for error in field_errors(self.sim, tweet, query.fields, viewer, "id")
        ]
        refused = {"errors": errors} if errors else {}
        return XJSONResponse({"data": data, **refused, "meta": meta}, headers=headers)

    async def lookup(
        self, request: Request, grant: AccessGrant, headers: dict[str, str]
    ) -> Response:
        ids, errors = parse_ids(request.query_params.get("ids"))
        fields = parse_fields(request.query_params.get("tweet.fields"), TWEET_FIELDS)
        if isinstance(fields, list):
            errors.extend(fields)
        if errors or isinstance(fields, list):
            return invalid_request(errors, headers)
        body = _lookup_body(self.sim, ids, fields, grant.user.id, "ids")
        return XJSONResponse(body, headers=headers)

    async def lookup_one(
        self, request: Request, grant: AccessGrant, headers: dict[str, str]
    ) -> Response:
        fields = parse_fields(request.query_params.get("tweet.fields"), TWEET_FIELDS)
        if isinstance(fields, list):
            return invalid_request(fields, headers)
        tweet_id = request.path_params["tweet_id"]
        if not is_id(tweet_id):
            message = f"The `id` query parameter value [{tweet_id}] is not valid"
            error = {"parameters": {"id": [tweet_id]}, "message": message}
            return invalid_request([error], headers)
        body = _lookup_body(self.sim, [tweet_id], fields, grant.user.id, "id")
        if "data" in body:
            body["data"] = body["data"][0]
        return XJSONResponse(body, headers=headers)


def build_api_router(sim: XSim) -> APIRouter:
    return ApiRoutes(sim).router()


def _lookup_body(
    sim: XSim, ids: list[str], fields: set[str], viewer_id: str, parameter: str
) -> dict[str, Any]:
    """The found posts in ``data``; in ``errors``, the ids X could not find and the
    author-only metrics the viewer may not see (a 200 with both, as X answers)."""
    found, errors = [], []
    for tweet_id in ids:
        tweet = sim.store.get_tweet(tweet_id)
        if tweet is None:
            errors.append(not_found_error("tweet", parameter, tweet_id))
        else:
            found.append(render_tweet(sim, tweet, fields, viewer_id))
            errors.extend(field_errors(sim, tweet, fields, viewer_id, parameter))
    body: dict[str, Any] = {}
    if found:
        body["data"] = found
    if errors:
        body["errors"] = errors
    return body


def encode_cursor(value: int) -> str:
    """An opaque pagination token: the id to continue below, in base 36."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while value:
        value, rem = divmod(value, 36)
        out = digits[rem] + out
    return out or "0"
