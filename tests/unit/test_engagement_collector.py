"""``EngagementCollector`` over the in-memory event store and a scripted platform: each read
is recorded on the post and plans the next one; a rate limit or an outage defers it; a post
that is gone stops it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import pytest

from application.app import KairosApplication
from application.credentials import AccessTokens
from application.due import DueChange, WorkKind, due_changes
from application.metrics import EngagementCollector
from application.platforms import (
    PlatformError,
    PostMetrics,
    RateLimited,
    TokenSet,
    TransientPlatformError,
)
from domain.integration import Integration
from domain.post import Post
from tests.unit.test_publishing_service import AUTHOR, ORG, T0, Clock, FakeLocks, FakeVault


@dataclass
class FakeMetrics:
    """Answers ``post_metrics`` from ``likes`` (by remote id), or raises the next scripted
    error."""

    provider: str = "twitter"
    likes: dict[str, int] = field(default_factory=dict)
    errors: list[PlatformError] = field(default_factory=list)
    asked: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)

    def post_metrics(
        self, access_token: str, *, account_id: str, remote_ids: Sequence[str]
    ) -> list[PostMetrics]:
        self.asked.append((access_token, account_id, tuple(remote_ids)))
        if self.errors:
            raise self.errors.pop(0)
        return [
            PostMetrics(r, likes=self.likes[r], comments=1, shares=0, views=self.likes[r] * 20)
            for r in remote_ids
            if r in self.likes
        ]


class World:
    def __init__(self) -> None:
        self.clock = Clock(T0)
        self.app = KairosApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        self.platform = FakeMetrics()
        adapters = {"twitter": self.platform}
        self.vault = FakeVault()
        tokens = AccessTokens(self.app, adapters, self.vault, FakeLocks(), self.clock)  # type: ignore[arg-type]
        self.collector = EngagementCollector(self.app, adapters, tokens, self.clock)  # type: ignore[arg-type]

    def published(self) -> tuple[UUID, str]:
        credential_id = uuid4()
        integration = Integration.connect(
            organization_id=ORG,
            provider="twitter",
            external_account_id="ext-1",
            account_name="kairos",
            display_name="Kairos",
            avatar_url=None,
            credential_id=credential_id,
            token_expires_at=None,
            scopes=[],
            capabilities=["text"],
        )
        self.vault.tokens[credential_id] = TokenSet("token-1", None, None)
        account = str(integration.id)
        post = Post.draft(
            organization_id=ORG,
            author_id=AUTHOR,
            content="hello",
            thread=[],
            media_urls=[],
            accounts={account: "twitter"},
        )
        post.schedule(T0 + timedelta(minutes=1), now=T0)
        post.start_publishing()
        post.record_published(account, remote_id="101", url="https://x.com/i/web/status/101")
        self.app.save_all(integration, post)
        self.platform.likes["101"] = 5
        return post.id, account

    def post(self, post_id: UUID) -> Post:
        post = self.app.get_post(post_id)
        assert post is not None
        return post

    def published_at(self, post_id: UUID, account: str) -> datetime:
        at = self.post(post_id).deliveries[account].published_at
        assert at is not None
        return at

    def last_event(self, post_id: UUID) -> object:
        return list(self.app.history(post_id))[-1]


@pytest.fixture
def world() -> World:
    return World()


def test_a_read_is_recorded_and_plans_the_next_one(world: World) -> None:
    post_id, account = world.published()
    published_at = world.published_at(post_id, account)
    world.clock.now = published_at + timedelta(hours=1)

    world.collector.collect(post_id, account)

    event = world.last_event(post_id)
    assert isinstance(event, Post.AccountMetricsCollected)
    assert (event.likes, event.comments, event.views) == (5, 1, 100)
    assert event.next_collection_at == published_at + timedelta(hours=6)
    assert due_changes([event]) == [
        DueChange(WorkKind.METRICS, post_id, account, published_at + timedelta(hours=6))
    ]
    assert world.platform.asked == [("token-1", "ext-1", ("101",))]


def test_the_last_read_plans_none_and_a_duplicate_message_reads_nothing(world: World) -> None:
    post_id, account = world.published()
    world.clock.now = world.published_at(post_id, account) + timedelta(days=14, minutes=5)

    world.collector.collect(post_id, account)
    world.collector.collect(post_id, account)

    assert len(world.platform.asked) == 1
    delivery = world.post(post_id).deliveries[account]
    assert (delivery.metrics_collected, delivery.next_metrics_at) == (1, None)


def test_a_message_before_the_planned_read_reads_nothing(world: World) -> None:
    post_id, account = world.published()
    world.clock.now = world.published_at(post_id, account) + timedelta(hours=1)
    world.collector.collect(post_id, account)

    world.clock.advance(timedelta(minutes=10))  # a duplicate, hours early
    world.collector.collect(post_id, account)

    assert len(world.platform.asked) == 1


def test_a_rate_limit_defers_the_read_to_the_reset(world: World) -> None:
    post_id, account = world.published()
    world.clock.now = world.published_at(post_id, account) + timedelta(hours=1)
    reset = world.clock.now + timedelta(minutes=40)
    world.platform.errors = [RateLimited("too many requests", reset_at=reset)]

    world.collector.collect(post_id, account)

    event = world.last_event(post_id)
    assert isinstance(event, Post.AccountMetricsDeferred)
    assert event.retry_at == reset
    assert world.post(post_id).deliveries[account].metrics_collected == 0


def test_an_outage_defers_the_read_by_half_an_hour(world: World) -> None:
    post_id, account = world.published()
    world.clock.now = world.published_at(post_id, account) + timedelta(hours=1)
    world.platform.errors = [TransientPlatformError("503")]

    world.collector.collect(post_id, account)

    event = world.last_event(post_id)
    assert isinstance(event, Post.AccountMetricsDeferred)
    assert event.retry_at == world.clock.now + timedelta(minutes=30)


def test_a_post_gone_from_the_platform_stops_the_reads(world: World) -> None:
    post_id, account = world.published()
    world.clock.now = world.published_at(post_id, account) + timedelta(hours=1)
    del world.platform.likes["101"]

    world.collector.collect(post_id, account)

    event = world.last_event(post_id)
    assert isinstance(event, Post.AccountMetricsStopped)
    assert "no longer has the post" in event.reason
    assert due_changes([event]) == [DueChange(WorkKind.METRICS, post_id, account, None)]


def test_a_deleted_post_stops_the_reads_without_asking_the_platform(world: World) -> None:
    post_id, account = world.published()
    post = world.post(post_id)
    post.delete()
    world.app.save_all(post)
    world.clock.now = world.published_at(post_id, account) + timedelta(hours=1)

    world.collector.collect(post_id, account)

    assert isinstance(world.last_event(post_id), Post.AccountMetricsStopped)
    assert world.platform.asked == []
