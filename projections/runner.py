"""Keeps read models caught up with the event store, and survives losing its connection.

One runner per read model. It drains the notification log in batches, then sleeps until
PostgreSQL NOTIFYs a new commit (or a second passes). Any failure, such as the LISTEN
connection being killed, is logged and the runner starts over from the view's tracking row,
which is always consistent with the view because both are written in one transaction.
"""

from __future__ import annotations

import logging
import threading

from psycopg.sql import SQL, Identifier

from projections.base import ReadModel, StaleBatch

log = logging.getLogger("kairos.projections")


class ProjectionRunner:
    def __init__(self, view: ReadModel, *, batch_size: int = 500, idle_wait: float = 1.0) -> None:
        self.view = view
        self.batch_size = batch_size
        self.idle_wait = idle_wait
        self.restarts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def catch_up_once(self) -> int:
        """Process at most one batch; return how many notifications it held."""
        app = self.view.app
        notifications = app.recorder.select_notifications(
            start=self.view.position, limit=self.batch_size, inclusive_of_start=False
        )
        try:
            self.view.process(notifications)
        except StaleBatch:
            return self.batch_size  # someone else advanced the view: read again at once
        return len(notifications)

    def catch_up(self) -> None:
        while self.catch_up_once() >= self.batch_size:
            pass

    def run(self) -> None:
        backoff = 0.1
        channel = self.view.app.recorder.channel_name  # type: ignore[attr-defined]
        while not self._stop.is_set():
            try:
                with self.view.datastore.get_connection() as conn:
                    conn.execute(SQL("LISTEN {0}").format(Identifier(channel)))
                    try:
                        backoff = 0.1
                        while not self._stop.is_set():
                            self.catch_up()
                            for _ in conn.notifies(timeout=self.idle_wait, stop_after=1):
                                pass
                    finally:
                        if not conn.closed:
                            conn.execute("UNLISTEN *")
            except Exception:
                self.restarts += 1
                log.exception("projection %s failed; restarting in %.1fs", self.view.name, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def start(self) -> ProjectionRunner:
        self._thread = threading.Thread(
            target=self.run, name=f"projection-{self.view.name}", daemon=True
        )
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
