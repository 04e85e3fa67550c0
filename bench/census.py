"""How chatty each operation is with PostgreSQL: round trips per call, and what one costs.

Counted in the bench process by wrapping ``psycopg.Connection.wait`` (every statement, pool
pre-ping, BEGIN/COMMIT/ROLLBACK and pipeline sync goes through it once). The projection is
counted on a shadow copy of the posts view (table prefix ``census_``), dropped afterwards,
so the API process's own projector is untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from bench.baseline import BenchApplication, BenchThing
from bench.load import Summary


@contextmanager
def counting_round_trips() -> Iterator[list[int]]:
    """Yields a one-item list holding the number of ``Connection.wait`` calls so far."""
    count = [0]
    original = psycopg.Connection.wait

    def wait(self: Any, *args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return original(self, *args, **kwargs)

    psycopg.Connection.wait = wait  # type: ignore[method-assign]
    try:
        yield count
    finally:
        psycopg.Connection.wait = original  # type: ignore[method-assign]


def round_trips(step: Callable[[int], object], repeat: int = 20) -> float:
    """Average round trips of ``step(i)`` (after one warm-up call)."""
    step(-1)
    with counting_round_trips() as count:
        for i in range(repeat):
            step(i)
    return count[0] / repeat


def select_one_latency(database_url: str, count: int = 2000) -> Summary:
    """``SELECT 1`` on one autocommit connection: the floor of any round trip here."""
    latencies: list[float] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        for _ in range(100):
            conn.execute("SELECT 1")
        for _ in range(count):
            began = time.perf_counter()
            conn.execute("SELECT 1")
            latencies.append(time.perf_counter() - began)
    return Summary.of(latencies)


@dataclass(frozen=True)
class Census:
    auth: float
    create: float
    projection: float
    list_reads: float
    raw_save: float


def take_census(
    kairos: Any,
    env: dict[str, str],
    *,
    token: str,
    organization_id: UUID,
    user_id: UUID,
    account_id: UUID,
) -> Census:
    from application.posts import PostInput
    from projections.posts import PostsView
    from projections.runner import ProjectionRunner

    when = datetime.now(UTC) + timedelta(days=365)

    def create(i: int) -> None:
        kairos.posts.create(
            organization_id,
            user_id,
            PostInput(content=f"census {i}", account_ids=[account_id], scheduled_at=when),
            idempotency_key=f"census-{i}-{time.perf_counter_ns()}",
            fingerprint="census",
        )

    # What GET /api/posts does: wait until the view has every committed write, then read.
    catch_up_to = getattr(kairos.posts_view, "catch_up_to", None) or kairos.posts_view.wait

    def list_reads(_i: int) -> None:
        catch_up_to(kairos.app.last_position(), 2.0)
        kairos.posts_view.list_posts(organization_id)

    shadow = PostsView(kairos.datastore, kairos.app, prefix="census_")
    shadow.create_table()
    try:
        runner = ProjectionRunner(shadow)
        runner.catch_up()

        counted = 0
        repeat = 10
        for i in range(repeat):
            create(1000 + i)
            with counting_round_trips() as count:
                runner.catch_up()
            counted += count[0]
        projection = counted / repeat
    finally:
        shadow.drop()
    raw_app = BenchApplication(env=env)
    try:
        raw_save = round_trips(lambda i: raw_app.save(BenchThing(name=f"census-{i}")))
    finally:
        raw_app.close()
    return Census(
        auth=round_trips(lambda _i: kairos.identity.authenticate_token(token)),
        create=round_trips(create),
        projection=projection,
        list_reads=round_trips(list_reads),
        raw_save=raw_save,
    )
