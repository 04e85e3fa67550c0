"""One simulator's SQLite file: a single connection behind a lock, in WAL mode.

Secrets (codes, tokens) are stored as :func:`digest`, so a file never holds a usable
credential, yet every token survives a restart of the process.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class SqliteFile:
    """Thread-safe access to one SQLite file (one connection, one lock, WAL journal)."""

    def __init__(self, path: Path, schema: str, *, foreign_keys: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        if foreign_keys:
            self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(schema)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _one(self, sql: str, params: Sequence[object]) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
            return row

    def _all(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params))
