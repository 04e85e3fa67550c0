"""What both Instagram logins share past the login: publishing (through
:mod:`.publishing`), the account's recent media, and each post's insights."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from application.platforms import (
    ContentRejected,
    PostMetrics,
    PublishProgress,
    PublishRequest,
    RemotePost,
    TimelinePost,
)
from interfaces.platforms.instagram.graph import (
    Graph,
    GraphFailure,
    int_or_none,
    next_cursor,
    parse_time,
)
from interfaces.platforms.instagram.publishing import Publication
from interfaces.platforms.staged import StagedOnly

INSIGHT_METRICS = ("views", "reach", "likes", "comments", "shares", "saved")


def post_url(remote_id: str) -> str:
    """A media's URL when its permalink is unknown (Meta's permalinks use a shortcode)."""
    return f"https://www.instagram.com/p/{remote_id}/"


class InstagramPublisher(StagedOnly, Graph):
    """Publishing, reconciliation and metrics: identical on both hosts."""

    _upload_refusal = "Instagram fetches media from its URL while publishing (publish)"
    _post_refusal = "Instagram publishes through containers (publish)"

    def capabilities(self) -> tuple[str, ...]:
        return ("images", "video", "carousel")

    def post_url(self, remote_id: str) -> str:
        return post_url(remote_id)

    def publish(
        self, access_token: str, request: PublishRequest, progress: PublishProgress
    ) -> RemotePost:
        if not request.media:
            raise ContentRejected("An Instagram post needs a photo or a video")
        if len(request.media) > 10:
            raise ContentRejected("An Instagram carousel holds at most 10 photos or videos")
        return Publication(self, access_token, request, progress).run()

    def recent_posts(
        self,
        access_token: str,
        *,
        user_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
        max_results: int = 10,
    ) -> list[TimelinePost]:
        """The account's media, newest first, across as many pages as ``max_results`` needs."""
        params = {"fields": "id,caption,timestamp,permalink", "limit": str(min(max_results, 100))}
        if since is not None:
            params["since"] = str(int(since.timestamp()))
        if until is not None:
            params["until"] = str(int(until.timestamp()) + 1)
        posts: list[TimelinePost] = []
        while len(posts) < max_results:
            body = self._call(
                "GET",
                f"/{quote(user_id, safe='')}/media",
                access_token,
                action="list recent posts",
                params=params,
            )
            for item in body.get("data") or []:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    posts.append(_timeline_post(item))
            after = next_cursor(body)
            if after is None:
                break
            params["after"] = after
        return posts[:max_results]

    def post_metrics(
        self, access_token: str, *, account_id: str, remote_ids: Sequence[str]
    ) -> list[PostMetrics]:
        """Insights of each media, one call each; media Instagram no longer has are left out."""
        found = []
        for remote_id in remote_ids:
            metrics = self._media_metrics(access_token, remote_id)
            if metrics is not None:
                found.append(metrics)
        return found

    def _media_metrics(self, token: str, remote_id: str) -> PostMetrics | None:
        path = f"/{quote(remote_id, safe='')}"
        names = list(INSIGHT_METRICS)
        while names:
            outcome = self._attempt(
                "GET",
                f"{path}/insights",
                token,
                action="read a post's insights",
                params={"metric": ",".join(names)},
            )
            if not isinstance(outcome, GraphFailure):
                return _insights(remote_id, outcome)
            if outcome.gone or outcome.code == 24:
                return None
            unsupported = set(names) & set(re.findall(r"[a-z_]+", outcome.message))
            if outcome.code == 100 and "not support" in outcome.message and unsupported:
                # One unsupported metric fails the whole call: ask again without it.
                names = [name for name in names if name not in unsupported]
                continue
            if outcome.code == 10 and "viewers" in outcome.message.lower():
                break  # too few viewers for insights: the plain counters still tell something
            raise outcome.error("read a post's insights")
        body = self._call(
            "GET",
            path,
            token,
            action="read a post's counters",
            params={"fields": "like_count,comments_count"},
        )
        return PostMetrics(
            remote_id=remote_id,
            likes=int_or_none(body.get("like_count")),
            comments=int_or_none(body.get("comments_count")),
        )


def _insights(remote_id: str, body: dict[str, Any]) -> PostMetrics:
    values: dict[str, int | None] = {}
    for item in body.get("data") or []:
        if not isinstance(item, dict):
            continue
        value = None
        series = item.get("values")
        if isinstance(series, list) and series and isinstance(series[0], dict):
            value = series[0].get("value")
        total = item.get("total_value")
        if value is None and isinstance(total, dict):
            value = total.get("value")
        values[str(item.get("name"))] = int_or_none(value)
    return PostMetrics(
        remote_id=remote_id,
        likes=values.get("likes"),
        comments=values.get("comments"),
        shares=values.get("shares"),
        views=values.get("views"),
        reach=values.get("reach"),
        saves=values.get("saved"),
    )


def _timeline_post(item: dict[str, Any]) -> TimelinePost:
    permalink = item.get("permalink")
    return TimelinePost(
        remote_id=item["id"],
        text=str(item.get("caption") or ""),
        created_at=parse_time(item.get("timestamp")),
        url=permalink if isinstance(permalink, str) else post_url(item["id"]),
    )
