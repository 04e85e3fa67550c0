"""Content publishing (reference §1.4): containers, ``media_publish`` and the rolling quota.

A container processes on the sandbox clock (images ``image_processing_secs``, videos
``video_processing_secs``), then reports ``FINISHED`` until it is published (``PUBLISHED``)
or 24 hours pass (``EXPIRED``). ``media_publish`` refuses a container still processing
(9007/2207027), one already published (100) and any over the quota (9/2207042).
"""

from __future__ import annotations

import re

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from sandbox.instagram import problems
from sandbox.instagram.checks import (
    Refusal,
    caption_refusal,
    fetch,
    image_refusal,
    video_problem,
)
from sandbox.instagram.config import HOUR
from sandbox.instagram.db import Container, NewContainer, Refused
from sandbox.instagram.graph import Caller, Graph, fixed_bucket, parse_fields
from sandbox.instagram.problems import GraphJSONResponse, graph_error, lost_response
from sandbox.instagram.store import Account

MEDIA_TYPES = ("", "IMAGE", "REELS", "VIDEO", "CAROUSEL")
#: container kind → (media_type, media_product_type) of the media it publishes.
PUBLISHED_AS = {
    "IMAGE": ("IMAGE", "FEED"),
    "REELS": ("VIDEO", "REELS"),
    "CAROUSEL": ("CAROUSEL_ALBUM", "FEED"),
}
NOT_READY = "The media is not ready for publishing, please wait for a moment"
ALREADY_PUBLISHED = "The media has already been published"


def _refused(refusal: Refusal, headers: dict[str, str]) -> Response:
    return graph_error(
        400,
        refusal.code,
        refusal.message,
        subcode=refusal.subcode,
        transient=refusal.transient,
        user_title=refusal.user_title,
        user_msg=refusal.user_msg,
        headers=headers,
    )


def _no_builder(creation_id: str, headers: dict[str, str]) -> Response:
    message = (
        f"The media builder with creation id = {creation_id} does not exist or has been expired."
    )
    return graph_error(
        400,
        24,
        message,
        subcode=2207008,
        user_title="Media builder expired",
        user_msg=message,
        headers=headers,
    )


class PublishingRoutes:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.sim = graph.sim
        self.store = graph.store

    def router(self) -> APIRouter:
        router = APIRouter()
        routes = [
            ("POST", "/{version}/{node_id}/media", "media", self.create),
            ("POST", "/{version}/{node_id}/media_publish", "media_publish", self.publish),
            (
                "GET",
                "/{version}/{node_id}/content_publishing_limit",
                "publishing_limit",
                self.limit,
            ),
        ]
        for method, path, bucket, handler in routes:
            endpoint = self.graph.guarded(fixed_bucket(bucket), handler)
            router.add_api_route(path, endpoint, methods=[method], name=handler.__name__)
        return router

    def _publisher(self, caller: Caller, node_id: str) -> Account | Response:
        account = self.graph.ig_account(caller, node_id)
        if account is None:
            return problems.unsupported(node_id, "post")
        if not caller.allowed("publish") or not account.professional:
            return problems.no_permission()
        return account

    # -- containers ----------------------------------------------------------------------

    async def create(self, request: Request, caller: Caller, node_id: str) -> Response:
        account = self._publisher(caller, node_id)
        if isinstance(account, Response):
            return account
        config, now = self.sim.config, self.sim.now()
        if self.store.containers_since(account.id, now - 24 * HOUR) >= config.containers_per_day:
            message = (
                f"(#4) The account reached the limit of {config.containers_per_day} media"
                " containers in 24 hours"
            )
            return graph_error(400, 4, message, transient=True, headers=caller.headers)
        decided = await self._decide(caller, account, now)
        if isinstance(decided, Response):
            return decided
        container = self.store.create_container(account.id, decided, now, config.container_ttl)
        mode = self.sim.faults.drop("media")
        if mode is not None:
            return lost_response(mode, caller.headers)
        return GraphJSONResponse({"id": container.id}, headers=caller.headers)

    async def _decide(
        self, caller: Caller, account: Account, now: float
    ) -> NewContainer | Response:
        """What container these parameters make, or why Instagram refuses it."""
        params, headers = caller.params, caller.headers
        media_type = params.get("media_type", "").upper()
        carousel_item = params.get("is_carousel_item", "").lower() in ("true", "1")
        caption = "" if carousel_item else params.get("caption", "")
        if media_type == "STORIES":
            return problems.invalid_parameter("(#100) The sandbox does not simulate stories")
        if media_type not in MEDIA_TYPES:
            return problems.invalid_parameter(
                "(#100) Param media_type must be one of {CAROUSEL, REELS, STORIES, VIDEO}"
            )
        refusal = caption_refusal(caption)
        if refusal is not None:
            return _refused(refusal, headers)
        if media_type == "CAROUSEL":
            return self._carousel(params.get("children", ""), account, caption, now, headers)
        if media_type in ("REELS", "VIDEO"):
            return await self._video(params, media_type, carousel_item, caption, now)
        return await self._image(params, carousel_item, caption, now, headers)

    def _unknown_type(self) -> Response:
        return problems.invalid_parameter(
            "(#100) The media type is unknown or not supported: publish a video as"
            " media_type=REELS (or media_type=VIDEO in a carousel).",
            2207023,
        )

    async def _image(
        self,
        params: dict[str, str],
        carousel_item: bool,
        caption: str,
        now: float,
        headers: dict[str, str],
    ) -> NewContainer | Response:
        config = self.sim.config
        url = params.get("image_url", "")
        if not url:
            if params.get("video_url"):
                return self._unknown_type()
            return problems.invalid_parameter("(#100) The parameter image_url is required.")
        fetched = await fetch(url, self.sim.fetch_dir, config.max_image_bytes, config.fetch_timeout)
        refusal = image_refusal(fetched, url, config.max_image_bytes)
        if refusal is not None:
            return _refused(refusal, headers)
        facts = fetched.facts
        return NewContainer(
            kind="IMAGE",
            is_carousel_item=carousel_item,
            caption=caption,
            source_url=url,
            children=(),
            ready_at=now + config.image_processing_secs,
            width=facts.width if facts else None,
            height=facts.height if facts else None,
            size=fetched.size,
        )

    async def _video(
        self,
        params: dict[str, str],
        media_type: str,
        carousel_item: bool,
        caption: str,
        now: float,
    ) -> NewContainer | Response:
        config = self.sim.config
        if (media_type == "VIDEO") != carousel_item:
            return self._unknown_type()
        url = params.get("video_url", "")
        if not url:
            return problems.invalid_parameter("(#100) The parameter video_url is required.")
        fetched = await fetch(url, self.sim.fetch_dir, config.max_video_bytes, config.fetch_timeout)
        facts = fetched.facts
        return NewContainer(
            kind=media_type,
            is_carousel_item=carousel_item,
            caption=caption,
            source_url=url,
            children=(),
            ready_at=now + config.video_processing_secs,
            error=video_problem(fetched, url, config.max_video_bytes, carousel_item),
            width=facts.width if facts else None,
            height=facts.height if facts else None,
            duration_ms=facts.duration_ms if facts else None,
            size=fetched.size,
        )

    def _carousel(
        self, raw: str, account: Account, caption: str, now: float, headers: dict[str, str]
    ) -> NewContainer | Response:
        ids = [child for child in re.split(r"[\s,\[\]\"]+", raw) if child]
        if not 2 <= len(ids) <= 10:
            return _refused(
                Refusal(
                    100,
                    2207028,
                    "The carousel must have between 2 and 10 items.",
                    "Carousel validation failed",
                    f"A carousel needs 2 to 10 photos or videos; it has {len(ids)}.",
                ),
                headers,
            )
        children: list[Container] = []
        for child_id in ids:
            child = self.store.get_container(child_id) if child_id.isdigit() else None
            if (
                child is None
                or child.owner_id != account.id
                or not child.is_carousel_item
                or child.media_id is not None
                or now >= child.expires_at
            ):
                message = f"The media with id {child_id} cannot be found."
                return graph_error(400, 24, message, subcode=2207006, headers=headers)
            children.append(child)
        errors = [child.error for child in children if child.error is not None]
        return NewContainer(
            kind="CAROUSEL",
            is_carousel_item=False,
            caption=caption,
            source_url=None,
            children=tuple(ids),
            ready_at=max(
                [child.ready_at for child in children]
                + [now + self.sim.config.image_processing_secs]
            ),
            error=errors[0] if errors else None,
        )

    # -- publishing ----------------------------------------------------------------------

    async def publish(self, request: Request, caller: Caller, node_id: str) -> Response:
        account = self._publisher(caller, node_id)
        if isinstance(account, Response):
            return account
        headers, now = caller.headers, self.sim.now()
        creation_id = caller.params.get("creation_id", "")
        if not creation_id:
            return problems.invalid_parameter("(#100) The parameter creation_id is required.")
        container = self.store.get_container(creation_id) if creation_id.isdigit() else None
        if container is None or container.owner_id != account.id:
            return _no_builder(creation_id, headers)
        if container.is_carousel_item:
            return problems.invalid_parameter(
                "(#100) A carousel item cannot be published on its own", 2207023
            )
        status, _ = container.status(now)
        refusal = self._unpublishable(container, status, headers)
        if refusal is not None:
            return refusal
        config = self.sim.config
        quota = (
            config.quota_total if account.quota_total is None else account.quota_total,
            float(config.quota_duration),
        )
        outcome = self.store.publish(container, PUBLISHED_AS[container.kind], now, quota)
        if outcome is Refused.ALREADY_PUBLISHED:
            return graph_error(400, 100, ALREADY_PUBLISHED, headers=headers)
        if outcome is Refused.QUOTA:
            return graph_error(
                400,
                9,
                "Application request limit reached",
                subcode=2207042,
                user_title="Max posts reached",
                user_msg=f"The account has reached its limit of {quota[0]} API-published posts"
                " in 24 hours.",
                headers=headers,
            )
        mode = self.sim.faults.drop("media_publish")
        if mode is not None:
            return lost_response(mode, headers)
        return GraphJSONResponse({"id": outcome.id}, headers=headers)

    def _unpublishable(
        self, container: Container, status: str, headers: dict[str, str]
    ) -> Response | None:
        if status == "PUBLISHED":
            return graph_error(400, 100, ALREADY_PUBLISHED, headers=headers)
        if status == "EXPIRED":
            message = "The media has expired. Please upload it again."
            return graph_error(400, -2, message, subcode=2207020, headers=headers)
        if status == "IN_PROGRESS":
            return graph_error(
                400,
                9007,
                NOT_READY,
                subcode=2207027,
                user_title="Media ID is not available",
                user_msg=NOT_READY,
                headers=headers,
            )
        if status == "ERROR" and container.error is not None:
            error = container.error
            return graph_error(
                400, error.code, error.message, subcode=error.subcode, headers=headers
            )
        return None

    async def limit(self, request: Request, caller: Caller, node_id: str) -> Response:
        """``content_publishing_limit``: API publishes in the rolling window (or ``since``)."""
        account = self._publisher(caller, node_id)
        if isinstance(account, Response):
            return account
        config, now = self.sim.config, self.sim.now()
        start = now - config.quota_duration
        since = caller.params.get("since")
        if since:
            try:
                since_ts = float(since)
            except ValueError:
                since_ts = -1.0
            if since_ts < start - 1 or since_ts > now + 60:
                return problems.invalid_parameter(
                    "(#100) since must be a Unix timestamp within the last 24 hours"
                )
            start = max(start, since_ts)
        values = {
            "quota_usage": len(self.store.api_publishes_since(account.id, start)),
            "config": {
                "quota_total": config.quota_total
                if account.quota_total is None
                else account.quota_total,
                "quota_duration": config.quota_duration,
            },
        }
        row = {}
        for name, _sub in parse_fields(caller.params.get("fields", "")) or [("quota_usage", None)]:
            if name not in values:
                return problems.nonexisting_field(name, "ContentPublishingLimit")
            row[name] = values[name]
        return GraphJSONResponse({"data": [row]}, headers=caller.headers)
