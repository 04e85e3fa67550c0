"""A read model: PostgreSQL tables plus a tracking row, updated together, exactly once.

Each batch of notifications is applied in one transaction that also advances the tracking
row (eventsourcing's single-row tracking refuses to move backwards, so a replayed batch
aborts instead of applying twice). Rows are materialised from the aggregate as it stood at
the newest version in the batch, so a read model cannot drift from the domain's own rules.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.persistence import Notification, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from application.app import KairosApplication


class StaleBatch(Exception):
    """Another runner advanced this view while the batch was being read; read again."""


class ReadModel(PostgresTrackingRecorder, ABC):
    name: ClassVar[str]
    """Stable name: prefix of the tracking table and of the advisory lock key."""

    topic_prefixes: ClassVar[tuple[str, ...]]
    """Module prefixes of the event topics whose aggregates this view materialises."""

    def __init__(
        self, datastore: PostgresDatastore, app: KairosApplication, *, prefix: str = ""
    ) -> None:
        super().__init__(datastore, tracking_table_name=f"{prefix}{self.name}_tracking")
        self.app = app
        self.prefix = prefix
        self.sql_create_statements.extend(
            SQL(statement).format() for statement in self.create_statements()
        )
        key = hashlib.sha256(f"kairos-projection/{prefix}{self.name}".encode()).digest()
        self._lock_key = int.from_bytes(key[:8], "big", signed=True)

    # ---- to implement -------------------------------------------------------------------

    @property
    @abstractmethod
    def tables(self) -> list[str]:
        """Tables this view owns, with the prefix applied, in creation order."""

    @abstractmethod
    def create_statements(self) -> list[str]: ...

    def materialize(self, curs: Cursor[DictRow], aggregate_id: UUID, version: int) -> None:
        """Write the rows of one aggregate as it stood at ``version`` (used by ``apply``)."""
        raise NotImplementedError(f"{type(self).__name__} overrides apply instead")

    # ---- processing ---------------------------------------------------------------------

    @property
    def position(self) -> int:
        return self.max_tracking_id(self.app.name) or 0

    def process(self, notifications: Sequence[Notification]) -> None:
        """Apply one batch atomically with its tracking row."""
        if not notifications:
            return
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            position = self._max_tracking_id(self.app.name, curs) or 0
            if notifications[0].id <= position:
                raise StaleBatch(f"{self.name} is already at {position}")
            self.apply(curs, notifications)
            self._insert_tracking(curs, Tracking(self.app.name, notifications[-1].id))

    def apply(self, curs: Cursor[DictRow], notifications: Sequence[Notification]) -> None:
        """Write what one batch changes, inside its transaction. By default each aggregate
        the batch touched is materialised once, at its newest version in the batch; a view
        that reacts to individual events (notifications) overrides this instead."""
        latest: dict[UUID, int] = {}
        for notification in notifications:
            if notification.topic.startswith(self.topic_prefixes):
                aggregate_id = UUID(str(notification.originator_id))
                latest[aggregate_id] = max(
                    latest.get(aggregate_id, 0), notification.originator_version
                )
        for aggregate_id, version in latest.items():
            self.materialize(curs, aggregate_id, version)

    def catch_up_to(self, position: int, timeout: float = 2.0) -> bool:
        """Block until this view has processed ``position``; False if the timeout passed."""
        deadline = time.monotonic() + timeout
        pause = 0.002
        while self.position < position:
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        return True

    def table(self, name: str) -> Identifier:
        return Identifier(self.datastore.schema, f"{self.prefix}{name}")

    def drop(self) -> None:
        """Drop this view's tables and tracking row (used for shadow rebuilds)."""
        with self.datastore.transaction(commit=True) as curs:
            for name in [*reversed(self.tables), self.tracking_table_name]:
                curs.execute(
                    SQL("DROP TABLE IF EXISTS {0}").format(Identifier(self.datastore.schema, name))
                )

    def rows(self, table: str, order_by: str) -> list[dict[str, Any]]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL("SELECT * FROM {0} ORDER BY {1}").format(
                    Identifier(self.datastore.schema, table),
                    SQL(order_by),
                )
            )
            return list(curs.fetchall())
