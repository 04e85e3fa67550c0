"""The Dramatiq actors. Messages carry ids only; the event store holds everything else.

Dramatiq's own retries are off: a retry is an event plus a due-work row, visible to users
and auditors, and a message that is lost or duplicated is harmless (the dispatcher re-sends
when a lease ends; the aggregate's optimistic concurrency turns duplicates into no-ops).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

import dramatiq

from application.due import WorkKind
from application.metrics import EngagementCollector
from application.publishing import PublishingService
from application.upkeep import AccountUpkeep

START_QUEUE = "publish"
DELIVER_QUEUE = "deliver"
ACCOUNTS_QUEUE = "accounts"
"""Refreshes, health checks and expiry warnings: never queued behind a burst of posts."""
METRICS_QUEUE = "metrics"
"""Engagement reads of published posts: plentiful, never urgent, never ahead of a post."""
QUEUES = frozenset({START_QUEUE, DELIVER_QUEUE, ACCOUNTS_QUEUE, METRICS_QUEUE})
"""Deliveries have their own queue, so a burst of starts does not hold them back."""
TIME_LIMIT_MS = 5 * 60 * 1000
"""Account upkeep: a few quick HTTP calls."""
PUBLISH_TIME_LIMIT_MS = 30 * 60 * 1000
"""Publishing may upload a large video: X takes up to 512 MB, which at the 1 MB/s the
publishing policy plans for is ~9 min, plus up to 2 min of X processing. Killing such a
worker would only make the next claim upload again. A worker that truly hangs is no risk
to the delivery (its lease runs out and another worker settles it), so this limit is only
a backstop that frees the thread."""


@dataclass(frozen=True)
class Actors:
    broker: dramatiq.Broker
    start_publishing: dramatiq.Actor
    deliver: dramatiq.Actor
    keep_account: dramatiq.Actor
    collect_metrics: dramatiq.Actor

    def send(self, kind: WorkKind, subject_id: UUID, key: str) -> None:
        match kind:
            case WorkKind.PUBLISH:
                self.start_publishing.send(str(subject_id))
            case WorkKind.DELIVER:
                self.deliver.send(str(subject_id), key)
            case WorkKind.REFRESH | WorkKind.HEALTH_CHECK | WorkKind.EXPIRY_WARNING:
                self.keep_account.send(kind.value, str(subject_id))
            case WorkKind.METRICS:
                self.collect_metrics.send(str(subject_id), key)


def register_actors(
    broker: dramatiq.Broker,
    publishing: Callable[[], PublishingService],
    upkeep: Callable[[], AccountUpkeep | None] = lambda: None,
    metrics: Callable[[], EngagementCollector | None] = lambda: None,
) -> Actors:
    """Every actor is registered, so any process can send any message; a process without
    ``upkeep`` must not consume ``ACCOUNTS_QUEUE``, nor one without ``metrics`` the
    ``METRICS_QUEUE`` (``workers/runtime.py`` sees to it)."""

    def start_publishing(post_id: str) -> None:
        publishing().start(UUID(post_id))

    def deliver(post_id: str, account_id: str) -> None:
        publishing().deliver(UUID(post_id), account_id)

    def keep_account(kind: str, integration_id: str) -> None:
        service = upkeep()
        if service is None:
            raise RuntimeError("this worker was started without the account upkeep service")
        work = {
            WorkKind.REFRESH: service.refresh,
            WorkKind.HEALTH_CHECK: service.health_check,
            WorkKind.EXPIRY_WARNING: service.warn_expiry,
        }[WorkKind(kind)]
        work(UUID(integration_id))

    def collect_metrics(post_id: str, account_id: str) -> None:
        collector = metrics()
        if collector is None:
            raise RuntimeError("this worker was started without the engagement collector")
        collector.collect(UUID(post_id), account_id)

    options = {"broker": broker, "max_retries": 0}
    publish = {**options, "time_limit": PUBLISH_TIME_LIMIT_MS}
    return Actors(
        broker=broker,
        start_publishing=dramatiq.actor(
            start_publishing, actor_name="start_publishing", queue_name=START_QUEUE, **publish
        ),
        deliver=dramatiq.actor(deliver, actor_name="deliver", queue_name=DELIVER_QUEUE, **publish),
        keep_account=dramatiq.actor(
            keep_account,
            actor_name="keep_account",
            queue_name=ACCOUNTS_QUEUE,
            **options,
            time_limit=TIME_LIMIT_MS,
        ),
        collect_metrics=dramatiq.actor(
            collect_metrics,
            actor_name="collect_metrics",
            queue_name=METRICS_QUEUE,
            **options,
            time_limit=TIME_LIMIT_MS,
        ),
    )
