"""Engagement on the simulated posts (reference §3.7): ``public_metrics`` for anyone, and
``non_public_metrics`` / ``organic_metrics`` for the author, on posts under 30 days old.

The figures come from ``sandbox.engagement`` read at the simulator's clock, so advancing
the clock grows them. Each user's audience is its default one (derived from its username)
unless set through ``/_sandbox/users/{username}/audience``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox.engagement import Audience, counters, default_audience
from sandbox.x.config import MetricsKeyStyle
from sandbox.x.db import Tweet
from sandbox.x.problems import PROBLEMS
from sandbox.x.state import XSim
from sandbox.x.text import link_entities

PRIVATE_METRICS = ("non_public_metrics", "organic_metrics")
#: X keeps the author-only metrics of a post for its first 30 days.
PRIVATE_METRICS_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class Engagement:
    """Everything X counts about one post at one moment."""

    impressions: int
    likes: int
    replies: int
    reposts: int
    quotes: int
    bookmarks: int
    profile_clicks: int
    link_clicks: int

    @property
    def engagements(self) -> int:
        """X's "engagements": every interaction, clicks included."""
        return (
            self.likes
            + self.replies
            + self.reposts
            + self.quotes
            + self.bookmarks
            + self.profile_clicks
            + self.link_clicks
        )


#: Only its keys matter: the metric names an authorization error lists.
_ZERO = Engagement(0, 0, 0, 0, 0, 0, 0, 0)


def audience_of(sim: XSim, user_id: str) -> Audience:
    stored = sim.store.get_audience(user_id)
    if stored is not None:
        return stored
    user = sim.store.get_user(user_id)
    return default_audience(user.username if user is not None else user_id)


def engagement(sim: XSim, tweet: Tweet) -> Engagement:
    audience = audience_of(sim, tweet.author_id)
    published = datetime.fromtimestamp(tweet.created_at, UTC)
    counted = counters(audience, tweet.id, published, datetime.fromtimestamp(sim.now(), UTC))
    has_link = bool(link_entities(tweet.text, [], None)[1])
    return Engagement(
        impressions=counted.views,
        likes=counted.likes,
        replies=counted.comments,
        reposts=counted.shares,
        quotes=counted.shares // 4,
        bookmarks=counted.saves,
        profile_clicks=int(counted.views * 0.005),
        link_clicks=int(counted.views * 0.012) if has_link else 0,
    )


def public_metrics(counted: Engagement, style: MetricsKeyStyle) -> dict[str, int]:
    return {
        f"{style}_count": counted.reposts,
        "reply_count": counted.replies,
        "like_count": counted.likes,
        "quote_count": counted.quotes,
        "bookmark_count": counted.bookmarks,
        "impression_count": counted.impressions,
    }


def private_metrics(name: str, counted: Engagement, style: MetricsKeyStyle) -> dict[str, int]:
    """``non_public_metrics`` or ``organic_metrics`` (the latter repeats the public counts
    that came from organic, not promoted, reach: all of them in the simulator)."""
    metrics = {
        "impression_count": counted.impressions,
        "url_link_clicks": counted.link_clicks,
        "user_profile_clicks": counted.profile_clicks,
        "engagements": counted.engagements,
    }
    if name == "organic_metrics":
        metrics.update(
            {
                "like_count": counted.likes,
                "reply_count": counted.replies,
                f"{style}_count": counted.reposts,
            }
        )
    return metrics


def may_see_private(tweet: Tweet, viewer_id: str | None, now: float) -> bool:
    return tweet.author_id == viewer_id and now - tweet.created_at < PRIVATE_METRICS_SECONDS


def field_errors(
    sim: XSim, tweet: Tweet, fields: Iterable[str], viewer_id: str | None, parameter: str
) -> list[dict[str, Any]]:
    """X's partial errors for author-only metrics asked of someone else's post, or of a
    post older than 30 days: one per metric, the post itself still in ``data``."""
    wanted = [name for name in PRIVATE_METRICS if name in fields]
    if not wanted or may_see_private(tweet, viewer_id, sim.now()):
        return []
    style = sim.config.metrics_key_style
    return [
        {
            "resource_type": "tweet",
            "field": f"{name}.{metric}",
            "parameter": parameter,
            "resource_id": tweet.id,
            "title": "Field Authorization Error",
            "section": "data",
            "detail": (
                f"Sorry, you are not authorized to access '{name}.{metric}' on the Tweet"
                f" with {parameter} : [{tweet.id}]."
            ),
            "value": tweet.id,
            "type": PROBLEMS + "not-authorized-for-field",
        }
        for name in wanted
        for metric in private_metrics(name, _ZERO, style)
    ]
