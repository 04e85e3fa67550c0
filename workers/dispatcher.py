"""The due-work dispatcher (``kairos scheduler``): turns due rows into messages.

It claims due rows with ``FOR UPDATE SKIP LOCKED`` and a lease, sends one message per row,
and sleeps until the next row is due or PostgreSQL NOTIFYs new work; there is no fixed
tick. Any number of copies may run: a row is claimed by one of them at a time. A message
lost on the way (a Redis flush, a crash right after the claim) is re-sent when its lease
ends, because only the events that finish the work delete the row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore

from application.due import DUE_CHANNEL, WAKE_HORIZON, WorkKind
from interfaces.postgres.listen import ListenLoop

log = logging.getLogger("kairos.dispatcher")

MAX_SLEEP = WAKE_HORIZON.total_seconds()

CLAIM = """
WITH due AS (
    SELECT kind, subject_id, key FROM due_work
    WHERE due_at <= now() AND (claimed_until IS NULL OR claimed_until <= now())
      -- While the broker is backlogged, a row already sent for its current due time is most
      -- likely still queued: re-sending it would only deepen the queue.
      AND (dispatches = 0 OR NOT %(backlogged)s)
    ORDER BY due_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE due_work AS d
SET claimed_until = now() + %(lease)s, dispatches = d.dispatches + 1
FROM due
WHERE d.kind = due.kind AND d.subject_id = due.subject_id AND d.key = due.key
RETURNING d.kind, d.subject_id, d.key, d.due_at
"""

NEXT_DUE = """
SELECT EXTRACT(EPOCH FROM min(GREATEST(due_at, COALESCE(claimed_until, due_at))) - now())
    AS seconds
FROM due_work
"""


@dataclass(frozen=True)
class DueItem:
    kind: WorkKind
    subject_id: UUID
    key: str
    due_at: datetime


class Dispatcher:
    def __init__(
        self,
        datastore: PostgresDatastore,
        send: Callable[[WorkKind, UUID, str], None],
        *,
        lease: timedelta = timedelta(seconds=30),
        batch: int = 500,
        backlog: Callable[[], int] = lambda: 0,
        backlog_limit: int = 1000,
    ) -> None:
        self._datastore = datastore
        self._send = send
        self._backlog = backlog
        self.backlog_limit = backlog_limit
        self.lease = lease
        self.batch = batch
        self.dispatched = 0
        self._loop = ListenLoop(datastore, DUE_CHANNEL, self._step, name="dispatcher", log=log)

    def claim(self) -> list[DueItem]:
        with self._datastore.transaction(commit=True) as curs:
            backlogged = self._backlog() > self.backlog_limit
            params = {"limit": self.batch, "lease": self.lease, "backlogged": backlogged}
            curs.execute(CLAIM, params, prepare=True)
            rows = curs.fetchall()
        return [
            DueItem(WorkKind(row["kind"]), row["subject_id"], row["key"], row["due_at"])
            for row in rows
        ]

    def dispatch_due(self) -> int:
        """Claim and send everything due now; return how many messages went out."""
        sent = 0
        while True:
            items = self.claim()
            for item in items:
                # A failed send leaves the row claimed: it is sent again when the lease ends.
                self._send(item.kind, item.subject_id, item.key)
                sent += 1
            if len(items) < self.batch:
                break
        self.dispatched += sent
        return sent

    def seconds_until_next(self) -> float:
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(NEXT_DUE)
            row = curs.fetchone()
        seconds = row["seconds"] if row else None
        return MAX_SLEEP if seconds is None else max(0.0, min(float(seconds), MAX_SLEEP))

    def _step(self) -> float:
        self.dispatch_due()
        return self.seconds_until_next()

    def run(self) -> None:
        self._loop.run()

    def start(self) -> Dispatcher:
        self._loop.start()
        return self

    @property
    def alive(self) -> bool:
        return self._loop.alive

    @property
    def restarts(self) -> int:
        return self._loop.restarts

    def stop(self, timeout: float = 5.0) -> None:
        self._loop.stop(timeout)
