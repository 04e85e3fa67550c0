"""When domain events happen: the wall clock, unless a simulation says otherwise.

Every aggregate's events take their timestamp from ``event_time``. Normally that is the
current UTC time; inside ``simulated_clock`` (used by ``kairos sandbox seed-history`` and
tests that build a history weeks long in seconds) it is the simulation's clock. The
override is a context variable, so it applies only to the code that set it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

_clock: ContextVar[Callable[[], datetime] | None] = ContextVar("event_clock", default=None)


def event_time() -> datetime:
    clock = _clock.get()
    return clock() if clock is not None else datetime.now(UTC)


@contextmanager
def simulated_clock(clock: Callable[[], datetime]) -> Iterator[None]:
    """Events created inside take their timestamps from ``clock``."""
    token = _clock.set(clock)
    try:
        yield
    finally:
        _clock.reset(token)
