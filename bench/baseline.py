"""In-process measurements without HTTP: the raw event-store baseline, and seeding.

The raw baseline saves a tiny one-event aggregate through a separate eventsourcing
``Application`` (its own ``kairosbench_events`` table) configured exactly like Kairos's
(same ``postgres_env``: pool, no DB functions), in the same database, one thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from bench.load import Summary


class BenchThing(Aggregate):
    """The smallest useful aggregate: one ``Created`` event with one short string."""

    @event("Created")
    def __init__(self, name: str) -> None:
        self.name = name


class BenchApplication(Application[UUID]):
    name = "KairosBench"


@dataclass(frozen=True)
class Rate:
    count: int
    wall: float
    latency: Summary

    @property
    def per_second(self) -> float:
        return self.count / self.wall if self.wall else 0.0


def timed_loop(count: int, step: Callable[[int], object], *, warmup: int = 50) -> Rate:
    """Call ``step(i)`` ``count`` times on this thread, timing each call."""
    for i in range(warmup):
        step(-1 - i)
    latencies: list[float] = []
    start = time.perf_counter()
    for i in range(count):
        began = time.perf_counter()
        step(i)
        latencies.append(time.perf_counter() - began)
    wall = time.perf_counter() - start
    return Rate(count, wall, Summary.of(latencies))


def raw_saves(env: dict[str, str], count: int) -> Rate:
    """``app.save()`` of a new ``BenchThing``, one at a time (the ratio baseline)."""
    app = BenchApplication(env=env)
    try:
        return timed_loop(count, lambda i: app.save(BenchThing(name=f"thing-{i}")))
    finally:
        app.close()


def service_creates(
    kairos: Any, organization_id: UUID, user_id: UUID, account_id: UUID, count: int
) -> Rate:
    """``kairos.posts.create`` in-process: POST /api/posts minus HTTP, auth and JSON."""
    from application.posts import PostInput

    scheduled_at = datetime.now(UTC) + timedelta(days=365)

    def create(i: int) -> None:
        kairos.posts.create(
            organization_id,
            user_id,
            PostInput(
                content=f"service post {i}", account_ids=[account_id], scheduled_at=scheduled_at
            ),
            idempotency_key=f"bench-service-{i}",
            fingerprint="bench",
        )

    return timed_loop(count, create, warmup=20)


def seed_posts(
    kairos: Any,
    organization_id: UUID,
    user_id: UUID,
    account_id: UUID,
    count: int,
    *,
    batch: int = 250,
) -> float:
    """Create ``count`` posts with the domain factory, saved ``batch`` per transaction.

    Every third post is a draft, the rest are scheduled, so the list mixes statuses.
    Returns the wall time in seconds.
    """
    from domain.post import Post

    now = datetime.now(UTC)
    accounts = {str(account_id): "twitter"}
    start = time.perf_counter()
    for first in range(0, count, batch):
        posts = []
        for i in range(first, min(first + batch, count)):
            post = Post.draft(
                organization_id=organization_id,
                author_id=user_id,
                content=f"Seeded post {i}: a calendar entry of typical length for a social post.",
                thread=[],
                media_urls=[],
                accounts=accounts,
            )
            if i % 3:
                post.schedule(now + timedelta(days=1, minutes=i), now=now)
            posts.append(post)
        kairos.app.save(*posts)
    return time.perf_counter() - start
