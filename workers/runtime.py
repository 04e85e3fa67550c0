"""Wiring of the pipeline in one process: the broker, the actors, workers and dispatcher.

``kairos worker`` runs workers on Redis; ``kairos scheduler`` runs the dispatcher;
``kairos up`` runs both in-process on an in-memory broker, with the very same actors.
"""

from __future__ import annotations

from datetime import timedelta

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from eventsourcing.postgres import PostgresDatastore

from application.metrics import EngagementCollector
from application.publishing import PublishingService
from application.upkeep import AccountUpkeep
from workers.actors import ACCOUNTS_QUEUE, METRICS_QUEUE, QUEUES, Actors, register_actors
from workers.dispatcher import Dispatcher


def make_broker(redis_url: str | None) -> dramatiq.Broker:
    if redis_url:
        return RedisBroker(url=redis_url)
    broker = StubBroker()
    broker.emit_after("process_boot")
    return broker


class Pipeline:
    def __init__(
        self,
        publishing: PublishingService,
        datastore: PostgresDatastore,
        redis_url: str | None,
        *,
        lease: timedelta = timedelta(seconds=30),
        upkeep: AccountUpkeep | None = None,
        metrics: EngagementCollector | None = None,
    ) -> None:
        """Without ``upkeep`` the workers leave account work (refreshes, health checks) to
        processes that have it, and without ``metrics`` the engagement reads; the
        dispatcher still sends both."""
        self.broker = make_broker(redis_url)
        self.actors: Actors = register_actors(
            self.broker, lambda: publishing, lambda: upkeep, lambda: metrics
        )
        queues = set(QUEUES)
        if upkeep is None:
            queues.discard(ACCOUNTS_QUEUE)
        if metrics is None:
            queues.discard(METRICS_QUEUE)
        self.queues = frozenset(queues)
        self.dispatcher = Dispatcher(datastore, self.actors.send, lease=lease, backlog=self.backlog)
        self._worker: dramatiq.Worker | None = None

    def backlog(self) -> int:
        """Messages waiting in the broker's queues (not yet taken by a worker)."""
        if isinstance(self.broker, RedisBroker):
            keys = [f"{self.broker.namespace}:{queue}" for queue in QUEUES]
            return sum(int(self.broker.client.llen(key)) for key in keys)
        if isinstance(self.broker, StubBroker):
            return sum(self.broker.queues[q].qsize() for q in QUEUES if q in self.broker.queues)
        return 0

    def start_workers(self, threads: int = 8) -> None:
        self._worker = dramatiq.Worker(self.broker, queues=set(self.queues), worker_threads=threads)
        self._worker.start()

    def start_dispatcher(self) -> None:
        self.dispatcher.start()

    def stop(self) -> None:
        self.dispatcher.stop()
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        self.broker.close()
