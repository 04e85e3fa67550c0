"""The simulators' clock: the wall clock plus an offset tests can move."""

from __future__ import annotations

import threading
import time


class SimClock:
    """Wall clock plus an offset that tests can advance."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def set(self, moment: float) -> float:
        """Make ``now()`` read ``moment`` (a Unix time, past or future) and run on from
        there: ``kairos sandbox seed-history`` plays weeks past through the simulators."""
        with self._lock:
            self._offset = moment - time.time()
            return self._offset

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._offset += seconds
            return self._offset

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset
