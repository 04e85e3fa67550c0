"""Engagement the simulators report for published posts: counters that grow over the hours
after publishing, larger when the post went out at an hour and on a day the account's
audience is around.

Every simulated account has an ``Audience``: the UTC hours and weekdays its followers are
most active, and its size. By default it is derived from the account's name, so it is stable
across restarts and differs between accounts; tests and ``kairos sandbox seed-history`` set
it through each simulator's ``/_sandbox/users/{name}/audience`` to know the true answer.

The numbers are deterministic: the same post, published at the same time and read at the
same age, always reports the same counters, so a test can predict them and an analytics
rebuild sees exactly what the first run saw.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

HOUR = 3600.0
GROWTH_HOURS = 6.0
"""Counters reach 1 - 1/e of their final value this many hours after publishing."""


@dataclass(frozen=True)
class Audience:
    best_hours: tuple[int, ...]
    """UTC hours (0-23) when the account's audience is most active."""
    best_days: tuple[int, ...]
    """Weekdays (0 = Monday) when it is most active."""
    size: int = 2_000
    """Views a post at the best hour on a best day reaches in the end."""

    def as_json(self) -> dict[str, Any]:
        return {
            "best_hours": list(self.best_hours),
            "best_days": list(self.best_days),
            "size": self.size,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Audience:
        """Validate an admin request body; raises ``ValueError`` naming what is wrong."""
        hours = body.get("best_hours")
        days = body.get("best_days")
        size = body.get("size", 2_000)
        if not isinstance(hours, list) or not hours or len(hours) > 24:
            raise ValueError("best_hours must be a non-empty list of UTC hours (0-23)")
        if not all(isinstance(h, int) and not isinstance(h, bool) and 0 <= h <= 23 for h in hours):
            raise ValueError("best_hours must hold integers from 0 to 23")
        if not isinstance(days, list) or not days or len(days) > 7:
            raise ValueError("best_days must be a non-empty list of weekdays (0 = Monday)")
        if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in days):
            raise ValueError("best_days must hold integers from 0 (Monday) to 6 (Sunday)")
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 10**9:
            raise ValueError("size must be an integer from 1 to 1000000000")
        return cls(tuple(sorted(set(hours))), tuple(sorted(set(days))), size)


def default_audience(account: str) -> Audience:
    """A stable audience for an account no one configured: two peak hours about eight
    hours apart, and two best days, chosen from the account's name."""
    digest = hashlib.sha256(f"audience/{account}".encode()).digest()
    first = digest[0] % 24
    second = (first + 7 + digest[1] % 4) % 24
    day = digest[2] % 7
    other = (day + 2 + digest[3] % 3) % 7
    size = 500 + int.from_bytes(digest[4:6], "big") % 5_000
    return Audience(tuple(sorted({first, second})), tuple(sorted({day, other})), size)


def affinity(audience: Audience, published_at: datetime) -> float:
    """How well a post published at ``published_at`` (UTC) meets its audience, 0.15 to 1.

    Each best hour is a bump two hours wide (the clock wraps at midnight); best days
    count fully, other days at 55 %."""
    hour = published_at.hour + published_at.minute / 60
    closeness = max(
        math.exp(-(min(abs(hour - best), 24 - abs(hour - best)) ** 2) / (2 * 1.5**2))
        for best in audience.best_hours
    )
    day_factor = 1.0 if published_at.weekday() in audience.best_days else 0.55
    return (0.15 + 0.85 * closeness) * day_factor


def growth(age_seconds: float) -> float:
    """The share of its final counters a post has this long after publishing."""
    if age_seconds <= 0:
        return 0.0
    return 1 - math.exp(-(age_seconds / HOUR) / GROWTH_HOURS)


@dataclass(frozen=True)
class Counters:
    views: int
    reach: int
    likes: int
    comments: int
    shares: int
    saves: int


def counters(audience: Audience, post_id: str, published_at: datetime, now: datetime) -> Counters:
    """What a post reports at ``now``: its final engagement (audience size x affinity x a
    +-15 % per-post variation) times how far it has grown."""
    digest = hashlib.sha256(f"post/{post_id}".encode()).digest()
    noise = 0.85 + 0.30 * (int.from_bytes(digest[:4], "big") / 0xFFFFFFFF)
    final_views = audience.size * affinity(audience, published_at) * noise
    views = final_views * growth((now - published_at).total_seconds())
    return Counters(
        views=int(views),
        reach=int(views * 0.8),
        likes=int(views * 0.06),
        comments=int(views * 0.008),
        shares=int(views * 0.004),
        saves=int(views * 0.01),
    )
