"""The event recorder, extended to keep the due-work index in the events' own transaction.

Selected through eventsourcing's ``APPLICATION_RECORDER_TOPIC``. ``KairosApplication.save``
derives the index changes from the pending events and hands them over as ``due_changes``;
they are written before the events in the same transaction, so a save that loses an
optimistic-concurrency race rolls its index rows back with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier, Literal

from application.due import DUE_CHANNEL, WAKE_HORIZON, DueChange

SCHEMA_LOCK = 7215004


@contextmanager
def schema_lock(datastore: PostgresDatastore) -> Iterator[None]:
    """Serialise schema creation across every Kairos process sharing the database."""
    with datastore.get_connection() as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))


class KairosRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        table = Identifier(datastore.schema, "due_work")
        self.due_table = table
        self.sql_create_statements.extend(
            [
                SQL(
                    "CREATE TABLE IF NOT EXISTS {0} ("
                    "kind text NOT NULL, "
                    "subject_id uuid NOT NULL, "
                    "key text NOT NULL, "
                    "due_at timestamptz NOT NULL, "
                    "claimed_until timestamptz, "
                    "dispatches integer NOT NULL DEFAULT 0, "
                    "PRIMARY KEY (kind, subject_id, key))"
                ).format(table),
                # Only when missing: CREATE INDEX IF NOT EXISTS takes a SHARE lock on the
                # table even when the index exists, which deadlocks against running saves.
                SQL(
                    "DO $$ BEGIN IF to_regclass({0}) IS NULL THEN "
                    "CREATE INDEX due_work_by_time ON {1} (due_at); END IF; END $$"
                ).format(Literal(f"{datastore.schema}.due_work_by_time"), table),
            ]
        )
        self._upsert = SQL(
            "INSERT INTO {0} (kind, subject_id, key, due_at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (kind, subject_id, key) DO UPDATE "
            "SET due_at = EXCLUDED.due_at, claimed_until = NULL, dispatches = 0"
        ).format(table)
        self._delete = SQL(
            "DELETE FROM {0} WHERE kind = %s AND subject_id = %s AND key = %s"
        ).format(table)

    def create_table(self) -> None:
        # Processes start concurrently (api, projector, workers); their DDL must not race.
        with schema_lock(self.datastore):
            super().create_table()

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        changes: Sequence[DueChange] = kwargs.get("due_changes", ())
        for change in changes:
            if change.due_at is None:
                curs.execute(
                    self._delete, (change.kind, change.subject_id, change.key), prepare=True
                )
            else:
                curs.execute(
                    self._upsert,
                    (change.kind, change.subject_id, change.key, change.due_at),
                    prepare=True,
                )
        # NOTIFY takes a database-wide lock at commit: send it only for work the sleeping
        # dispatcher would otherwise reach late (anything later, it finds when it next wakes).
        horizon = datetime.now(UTC) + WAKE_HORIZON
        if any(change.due_at is not None and change.due_at < horizon for change in changes):
            curs.execute(SQL("NOTIFY {0}").format(Identifier(DUE_CHANNEL)))
        super()._insert_events(curs, stored_events, **kwargs)
