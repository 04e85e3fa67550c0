"""Reading published posts' engagement from the platforms, on a schedule.

Publishing a post to an account plans its first read an hour later (``application/due.py``,
``METRICS_SCHEDULE``); each read is recorded on the post as ``AccountMetricsCollected`` and
plans the next, so the reads are as durable as the publishing and an auditor sees them in
the post's history. A platform that is rate limiting or down defers the read (it never
counts against the schedule); a post that is gone, or an account that is disconnected,
stops it. The analytics read model projects these events (``projections/engagement.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from application.app import KairosApplication
from application.credentials import AccessTokens
from application.due import next_metrics_at
from application.platforms import (
    AuthorizationExpired,
    MetricsSource,
    PlatformAdapter,
    PlatformError,
    RateLimited,
)
from domain.integration import IntegrationStatus
from domain.post import DeliveryStatus, Post

SAVE_RETRIES = 5
RETRY_AFTER_ERROR = timedelta(minutes=30)
RETRY_AFTER_RATE_LIMIT = timedelta(minutes=15)
RETRY_WHILE_EXPIRED = timedelta(hours=12)
"""An expired account may be reconnected: its posts' reads wait rather than stop."""


class EngagementCollector:
    def __init__(
        self,
        app: KairosApplication,
        adapters: Mapping[str, PlatformAdapter],
        tokens: AccessTokens,
        clock: Callable[[], datetime],
    ) -> None:
        self._app = app
        self._adapters = adapters
        self._tokens = tokens
        self._clock = clock

    def collect(self, post_id: UUID, account_id: str) -> None:
        """Read the post's engagement on the account now and plan the next read."""
        post = self._app.get_post(post_id)
        if post is None:
            return
        delivery = post.deliveries.get(account_id)
        if delivery is None or delivery.status is not DeliveryStatus.PUBLISHED:
            return  # nothing was published there: no row should exist
        now = self._clock()
        planned = delivery.next_metrics_at
        if planned is None and delivery.metrics_collected:
            return  # a duplicated message after the last read
        if planned is not None and planned > now + timedelta(minutes=1):
            return  # a duplicated message: the next read is not due yet
        if post.deleted:
            reason = "the post was deleted"
            self._record(post_id, lambda p: p.stop_metrics(account_id, reason=reason))
            return
        integration = self._app.get_integration(UUID(account_id))
        if integration is None or integration.status is IntegrationStatus.DISCONNECTED:
            reason = "the account was disconnected"
            self._record(post_id, lambda p: p.stop_metrics(account_id, reason=reason))
            return
        adapter = self._adapters.get(integration.provider)
        if not isinstance(adapter, MetricsSource):
            reason = f"{integration.provider} reports no engagement to Kairos"
            self._record(post_id, lambda p: p.stop_metrics(account_id, reason=reason))
            return
        if integration.status is IntegrationStatus.EXPIRED:
            self._defer(post_id, account_id, now + RETRY_WHILE_EXPIRED, "the account is expired")
            return
        assert delivery.remote_id is not None
        assert delivery.published_at is not None
        try:
            token = self._tokens.for_publishing(integration)
            found = adapter.post_metrics(
                token, account_id=integration.external_account_id, remote_ids=[delivery.remote_id]
            )
        except RateLimited as exc:
            retry_at = max(exc.reset_at or now, now + RETRY_AFTER_RATE_LIMIT)
            self._defer(post_id, account_id, retry_at, f"rate limited: {exc.message}")
            return
        except AuthorizationExpired as exc:
            self._defer(post_id, account_id, now + RETRY_WHILE_EXPIRED, exc.message)
            return
        except PlatformError as exc:
            self._defer(post_id, account_id, now + RETRY_AFTER_ERROR, exc.message)
            return
        if not found:
            reason = "the platform no longer has the post"
            self._record(post_id, lambda p: p.stop_metrics(account_id, reason=reason))
            return
        metrics = found[0]
        upcoming = next_metrics_at(delivery.published_at, now)
        self._record(
            post_id,
            lambda p: p.record_metrics(
                account_id,
                likes=metrics.likes,
                comments=metrics.comments,
                shares=metrics.shares,
                views=metrics.views,
                reach=metrics.reach,
                saves=metrics.saves,
                next_collection_at=upcoming,
            ),
        )

    def request(self, post_id: UUID, account_id: str, at: datetime) -> bool:
        """Read the post's engagement on the account at ``at`` (a backfill), whatever the
        schedule says; False when there is nothing published there to read."""
        post = self._app.get_post(post_id)
        if post is None or post.deleted:
            return False
        delivery = post.deliveries.get(account_id)
        if delivery is None or delivery.status is not DeliveryStatus.PUBLISHED:
            return False
        self._defer(post_id, account_id, at, "requested by a backfill")
        return True

    def _defer(self, post_id: UUID, account_id: str, retry_at: datetime, reason: str) -> None:
        self._record(
            post_id, lambda p: p.defer_metrics(account_id, retry_at=retry_at, reason=reason)
        )

    def _record(self, post_id: UUID, command: Callable[[Post], None]) -> None:
        """Apply and save, retrying on a fresh copy when another delivery of the same post
        saved first."""
        for _ in range(SAVE_RETRIES):
            post = self._app.get_post(post_id)
            if post is None:
                return
            command(post)
            try:
                self._app.save_all(post)
            except IntegrityError:
                continue
            return
