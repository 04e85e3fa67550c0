"""Deployment-wide exclusive locks: PostgreSQL advisory locks on a held connection.

Session-level, so the lock is released if the holding process dies with its connection.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from eventsourcing.postgres import PostgresDatastore


class PostgresLocks:
    def __init__(self, datastore: PostgresDatastore) -> None:
        self._datastore = datastore

    @contextmanager
    def exclusive(self, key: str) -> Iterator[None]:
        lock_id = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        with self._datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (lock_id,))
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (lock_id,))
