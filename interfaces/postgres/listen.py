"""A supervised background loop woken by PostgreSQL NOTIFY: the due-work dispatcher and the
email outbox both run one.

``step`` does the work and returns how long to wait before it runs again; a NOTIFY on the
channel cuts the wait short. A failure (a dropped connection, a restarted server) restarts
the loop with backoff. ``stop`` wakes the loop with a NOTIFY of its own, so it stops now
rather than at the end of its wait, before the database may go away under it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from eventsourcing.postgres import PostgresDatastore
from psycopg.sql import SQL, Identifier


class ListenLoop:
    def __init__(
        self,
        datastore: PostgresDatastore,
        channel: str,
        step: Callable[[], float],
        *,
        name: str,
        log: logging.Logger,
    ) -> None:
        self._datastore = datastore
        self._channel = channel
        self._step = step
        self._name = name
        self._log = log
        self.restarts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                with self._datastore.get_connection() as conn:
                    conn.execute(SQL("LISTEN {0}").format(Identifier(self._channel)))
                    try:
                        backoff = 0.1
                        while not self._stop.is_set():
                            wait = self._step()
                            if wait > 0 and not self._stop.is_set():
                                for _ in conn.notifies(timeout=wait, stop_after=1):
                                    pass
                    finally:
                        if not conn.closed:
                            conn.execute("UNLISTEN *")
            except Exception:
                self.restarts += 1
                self._log.exception("%s failed; restarting in %.1fs", self._name, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name=self._name, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        # Other loops on the channel just look again.
        with contextlib.suppress(Exception), self._datastore.transaction(commit=True) as curs:
            curs.execute(SQL("NOTIFY {0}").format(Identifier(self._channel)))
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
