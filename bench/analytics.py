"""``uv run python -m bench.analytics``: best times to post at a million engagement reads, and
how fast the engagement view keeps up with metric events.

Three parts, about 4–5 minutes in all on 2 cores:

- 1. ``GET /api/analytics/optimal-times`` against the API in its own process (``run_api``,
  as ``kairos api``), over real HTTP with ``ttp_`` tokens. The read model is filled straight
  with ``COPY``: 1,000,000 rows of ``engagement_observations`` over 100 organizations of 10
  X accounts (reads at 1 h, 6 h, 1 d, 3 d, 7 d and 14 d of age, none in the future), the
  matching ``engagement_latest`` and ``engagement_posts`` rows, and one large organization
  of ``LARGE_POSTS`` posts reported on its own. Warm (the organization's engagement has not
  changed, so the cache answers) and cold (its ``engagement_versions`` row is bumped before
  each request, as a new metric read would), next to the parts measured in this process:
  the SQL alone, the rows made into objects, ``analytics.recommend()`` alone.
- 2. ``next-optimal-time`` and ``weekly-schedule``, warm and cold, typical organizations.
- 3. Catch-up: ``CATCH_UP_POSTS`` posts published and read ``CATCH_UP_READS`` times each,
  saved through ``kairos.app`` as the publisher and collector save them (one save per read)
  with no projection running; then the engagement view alone catches up, as its runner
  does. Next to the same rows written with plain SQL, and the live lag of a runner.

Figures are informational: the exit status is 0 unless the benchmark itself failed.
``KAIROS_DATABASE_URL`` selects an external PostgreSQL server, else embedded pgserver; the
run creates its own database and drops it at the end.
"""

from __future__ import annotations

import gc
import importlib.metadata
import json
import logging
import os
import platform
import random
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from psycopg.sql import SQL, Composable, Identifier

from bench.common import (
    Row,
    background_load,
    child_process,
    cpu_model,
    fresh_database,
    ms,
    out,
    print_summary,
    section,
    server_facts,
    wait_http,
)
from bench.load import (
    ConnectionPool,
    HttpConnection,
    RunResult,
    Summary,
    build_request,
    open_loop,
    run,
)
from bench.media import ratio
from bench.publishing import CpuMeter, start_postgres
from bench.server import run_api, uvicorn_options
from sandbox.engagement import Audience, affinity, growth

TYPICAL_ORGANIZATIONS = 100
ACCOUNTS_PER_ORGANIZATION = 10
OBSERVATIONS_PER_ORGANIZATION = 10_000
LARGE_POSTS = 20_000
HISTORY_DAYS = 90
READ_AGES = (3_600, 21_600, 86_400, 259_200, 604_800, 1_209_600)
"""Seconds after publishing at which the collector reads a post's engagement."""
PEAK_HOURS = (9, 18)
PEAK_DAYS = (1, 3)
AUDIENCE = Audience(PEAK_HOURS, PEAK_DAYS)
"""Every account's audience peaks then (UTC hours; Tuesday and Thursday): the known answer.
Accounts differ in size only."""

WARM_REQUESTS = 2000
COLD_REQUESTS = 300
LARGE_WARM_REQUESTS = 1000
LARGE_COLD_REQUESTS = 40
OTHER_WARM_REQUESTS = 1000
OTHER_COLD_REQUESTS = 200
PART_SAMPLES = 150
LARGE_PART_SAMPLES = 20
OPEN_RATE = 200.0
OPEN_WARMUP = 1.0
OPEN_DURATION = 10.0

CATCH_UP_POSTS = 2000
CATCH_UP_READS = 5
PUBLISH_BATCH = 250
RAW_BATCH = 500
LAG_READS = 200
LAG_RATE = 50.0

TARGET_P99 = 0.010
TARGET_CATCH_UP = 5000.0
TARGET_LAG_P99 = 0.100

OPTIMAL = "/api/analytics/optimal-times?platform=twitter"
OPTIMAL_NEW_YORK = "/api/analytics/optimal-times?platform=twitter&timezone=America/New_York"
NEXT = "/api/analytics/next-optimal-time?platform=twitter"
WEEKLY = "/api/analytics/weekly-schedule?platform=twitter"
COUNTERS = ("likes", "comments", "shares", "views", "reach", "saves")
POST_COLUMNS = "post_id, account_id, organization_id, provider, published_at"
OBSERVATION_COLUMNS = (
    "post_id, account_id, collected_at, organization_id, provider, published_at, age_seconds, "
    + ", ".join(COUNTERS)
)
LATEST_COLUMNS = f"{POST_COLUMNS}, collected_at, {', '.join(COUNTERS)}"
UPSERT_LATEST = (
    "ON CONFLICT (post_id, account_id) DO UPDATE SET collected_at = EXCLUDED.collected_at, "
    + ", ".join(f"{name} = EXCLUDED.{name}" for name in COUNTERS)
    + " WHERE {0}.collected_at <= EXCLUDED.collected_at"
)
"""As ``EngagementView`` upserts ``engagement_latest``: a newer read replaces an older one."""
LATEST_SQL = (
    "SELECT post_id, account_id, provider, published_at, collected_at, "
    f"{', '.join(COUNTERS)} FROM {{0}} WHERE organization_id = %s AND provider = ANY(%s)"
)
"""The query of ``EngagementView.latest(organization, ("twitter",))``."""

T = TypeVar("T")


@dataclass
class Organization:
    id: UUID
    token: str
    posts: int = 0
    observations: int = 0


@dataclass
class Bench:
    kairos: Any
    values: dict[str, Any]
    user_id: UUID
    typical: list[Organization]
    large: Organization
    port: int = 0
    meter: Any = None
    rows: list[Row] = field(default_factory=list)

    @property
    def database_url(self) -> str:
        return str(self.values["database_url"])

    @property
    def view(self) -> Any:
        return self.kairos.engagement_view

    def row(self, figure: str, value: str, target: str, passed: bool | None) -> None:
        self.rows.append(Row(figure, value, target, passed))

    def target_row(self, figure: str, p99: float) -> None:
        self.row(figure, ms(p99), f"< {ms(TARGET_P99)}", p99 < TARGET_P99)

    def metered(self, phase: Callable[[], T]) -> tuple[T, str]:
        """Run ``phase`` and describe the CPU each party used meanwhile."""
        before = self.meter.snapshot()
        result = phase()
        return result, CpuMeter.describe(CpuMeter.cores(before, self.meter.snapshot()))


# ---- the read model, filled with COPY ------------------------------------------------------


def final_views(size: int, published_at: datetime, rng: random.Random) -> float:
    """``sandbox/engagement.py``'s ``counters()`` model with the per-post ±15 % drawn from a
    seeded RNG instead of a hash: the same known peak, at a fraction of the cost."""
    return size * affinity(AUDIENCE, published_at) * rng.uniform(0.85, 1.15)


def read_counters(final: float, age: float) -> tuple[int, ...]:
    """likes, comments, shares, views, reach, saves of a read ``age`` seconds after publishing."""
    views = final * growth(age)
    return (
        int(views * 0.06),
        int(views * 0.008),
        int(views * 0.004),
        int(views),
        int(views * 0.8),
        int(views * 0.01),
    )


@dataclass(frozen=True)
class Delivery:
    """One published (post, account) pair and the ages at which it was read."""

    post_id: UUID
    account_id: UUID
    organization_id: UUID
    published_at: datetime
    final: float
    ages: tuple[int, ...]


def deliveries(
    organization: Organization,
    rng: random.Random,
    now: datetime,
    *,
    observations: int = 0,
    posts: int = 0,
) -> list[Delivery]:
    """Posts at random times over the last ``HISTORY_DAYS``, round-robin over the accounts,
    until there are ``observations`` reads (the last post's cut short) and ``posts`` posts."""
    accounts = [UUID(int=rng.getrandbits(128), version=4) for _ in range(ACCOUNTS_PER_ORGANIZATION)]
    sizes = [rng.randrange(500, 50_000) for _ in accounts]
    made: list[Delivery] = []
    count = 0
    while count < observations or len(made) < posts:
        published_at = now - timedelta(seconds=rng.uniform(0, HISTORY_DAYS * 86_400))
        age_now = (now - published_at).total_seconds()
        ages = tuple(a for a in READ_AGES if a <= age_now)
        if observations:
            ages = ages[: observations - count]
        k = len(made) % ACCOUNTS_PER_ORGANIZATION
        made.append(
            Delivery(
                UUID(int=rng.getrandbits(128), version=4),
                accounts[k],
                organization.id,
                published_at,
                final_views(sizes[k], published_at, rng),
                ages,
            )
        )
        count += len(ages)
    organization.posts = len(made)
    organization.observations = count
    return made


def observation(d: Delivery, age: int) -> tuple[Any, ...]:
    """The ``engagement_observations`` row of the read of ``d`` at ``age`` seconds."""
    return (
        d.post_id,
        d.account_id,
        d.published_at + timedelta(seconds=age),
        d.organization_id,
        "twitter",
        d.published_at,
        age,
        *read_counters(d.final, age),
    )


def observation_rows(made: Sequence[Delivery]) -> Iterator[tuple[Any, ...]]:
    return (observation(d, age) for d in made for age in d.ages)


def copy_rows(curs: Any, table: Composable, columns: str, rows: Iterator[tuple[Any, ...]]) -> None:
    with curs.copy(SQL("COPY {0} ({1}) FROM STDIN").format(table, SQL(columns))) as copy:
        for row in rows:
            copy.write_row(row)


def as_latest(observation: tuple[Any, ...]) -> tuple[Any, ...]:
    """An ``engagement_observations`` row as the ``engagement_latest`` row it makes."""
    o = observation
    return (o[0], o[1], o[3], o[4], o[5], o[2], *o[7:])


def load_organization(b: Bench, organization: Organization, made: Sequence[Delivery]) -> None:
    view = b.view
    with psycopg.connect(b.database_url) as conn, conn.cursor() as curs:
        copy_rows(
            curs,
            view.table("engagement_posts"),
            POST_COLUMNS,
            ((d.post_id, d.account_id, d.organization_id, "twitter", d.published_at) for d in made),
        )
        copy_rows(
            curs, view.table("engagement_observations"), OBSERVATION_COLUMNS, observation_rows(made)
        )
        copy_rows(
            curs,
            view.table("engagement_latest"),
            LATEST_COLUMNS,
            (as_latest(observation(d, d.ages[-1])) for d in made if d.ages),
        )
        curs.execute(
            SQL("INSERT INTO {0} (organization_id, position) VALUES (%s, 1)").format(
                view.table("engagement_versions")
            ),
            (organization.id,),
        )


def phase_load(b: Bench) -> None:
    section("Loading the engagement read model (COPY, no events: part 3 measures the event path)")
    rng = random.Random(20_261_122)
    now = datetime.now(UTC)
    started = time.perf_counter()
    for organization in b.typical:
        made = deliveries(organization, rng, now, observations=OBSERVATIONS_PER_ORGANIZATION)
        load_organization(b, organization, made)
    made = deliveries(b.large, rng, now, posts=LARGE_POSTS)
    load_organization(b, b.large, made)
    loaded = time.perf_counter() - started
    typical_posts = sum(o.posts for o in b.typical)
    observations = sum(o.observations for o in b.typical)
    out(
        f"  {TYPICAL_ORGANIZATIONS} organizations × {ACCOUNTS_PER_ORGANIZATION} X accounts: "
        f"{observations:,} observations, {typical_posts:,} posts "
        f"({typical_posts / TYPICAL_ORGANIZATIONS:,.0f} per organization), "
        f"publish times over the last {HISTORY_DAYS} days"
    )
    out(
        f"  large organization: {b.large.posts:,} posts, {b.large.observations:,} observations; "
        f"audiences peak at {PEAK_HOURS} UTC on Tuesdays and Thursdays"
    )
    started = time.perf_counter()
    tables = SQL(", ").join(Identifier(b.view.datastore.schema, t) for t in b.view.tables)
    with psycopg.connect(b.database_url, autocommit=True) as conn:
        conn.execute(SQL("VACUUM (ANALYZE) {0}").format(tables))
        vacuumed = time.perf_counter() - started
        # Flush the load's dirty pages now rather than during the measurements.
        try:
            conn.execute("CHECKPOINT")
            checkpoint = f"CHECKPOINT {time.perf_counter() - started - vacuumed:.1f}s"
        except psycopg.errors.InsufficientPrivilege:
            checkpoint = "CHECKPOINT not permitted"
        sizes = conn.execute(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relname = ANY(%s)",
            (b.view.tables,),
        ).fetchall()
    out(
        f"  generate + COPY {loaded:.1f}s ({(observations + b.large.observations) / loaded:,.0f} "
        f"observations/s); VACUUM (ANALYZE) {vacuumed:.1f}s; {checkpoint}"
    )
    out("  sizes with indexes: " + ", ".join(f"{n} {s / 2**20:,.0f} MB" for n, s in sorted(sizes)))
    b.row("data load (generate + COPY)", f"{loaded:.1f}s", "-", None)
    print_plan(b, b.typical[0], "typical organization")
    print_plan(b, b.large, "large organization")


def print_plan(b: Bench, organization: Organization, label: str) -> None:
    query = SQL("EXPLAIN (ANALYZE, BUFFERS) " + LATEST_SQL).format(
        b.view.table("engagement_latest")
    )
    with psycopg.connect(b.database_url, autocommit=True) as conn:
        lines = [r[0] for r in conn.execute(query, (organization.id, ["twitter"])).fetchall()]
    scan = lines[0].split("  (")[0].strip()
    buffers = next((line.strip() for line in lines if line.strip().startswith("Buffers")), "")
    executed = [line.strip() for line in lines if line.startswith("Execution")]
    details = [buffers, *executed]
    out(f"  plan, {label}: {scan}; {'; '.join(details)}")


# ---- HTTP ----------------------------------------------------------------------------------


def get(b: Bench, path: str, organization: Organization) -> bytes:
    return build_request(
        "GET",
        path,
        host=f"127.0.0.1:{b.port}",
        headers={"Authorization": f"Bearer {organization.token}", "Accept": "application/json"},
    )


async def sequential(
    port: int, requests: Sequence[bytes], before: Callable[[int], None] | None = None
) -> tuple[list[float], Counter[str], bytes]:
    """One client, one keep-alive connection; ``before(i)`` runs outside the clock."""
    conn = HttpConnection("127.0.0.1", port)
    await conn.connect()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    body = b""
    try:
        for i, raw in enumerate(requests):
            if before is not None:
                before(i)
            sent = time.perf_counter()
            try:
                status, body = await conn.request(raw)
                outcome = "" if status == 200 else f"HTTP {status}"
            except (OSError, EOFError, ValueError) as exc:
                conn.close()
                outcome = type(exc).__name__
            latencies.append(time.perf_counter() - sent)
            if outcome:
                errors[outcome] += 1
    finally:
        conn.close()
    return latencies, errors, body


@dataclass(frozen=True)
class Measured:
    summary: Summary
    errors: int


def hold_clear_of_time_step(seconds: float) -> None:
    """Answers are cached per 5-minute step: a warm run that crossed a step would pay one
    cold answer per organization, so it starts after the step when one is near."""
    from application.insights import TIME_STEP

    step = TIME_STEP.total_seconds()
    left = step - time.time() % step
    if left < seconds:
        out(f"  (waiting {left:.0f}s for the next {step / 60:.0f}-minute step of the cache)")
        time.sleep(left + 1)


def measure(
    b: Bench,
    label: str,
    path: str,
    organizations: Sequence[Organization],
    count: int,
    *,
    cold: bool,
) -> Measured:
    """Sequential requests round-robin over ``organizations``. Warm: each organization is
    asked once first (not counted), so the cache holds every answer. Cold: every request
    follows a version bump."""
    requests = [get(b, path, organizations[i % len(organizations)]) for i in range(count)]
    bump = SQL("UPDATE {0} SET position = position + 1 WHERE organization_id = %s").format(
        b.view.table("engagement_versions")
    )
    with psycopg.connect(b.database_url, autocommit=True) as conn:

        def new_read(i: int) -> None:
            """Move the organization's engagement version, as a new metric read does."""
            conn.execute(bump, (organizations[i % len(organizations)].id,))

        before = new_read if cold else None
        if cold:
            run(lambda: sequential(b.port, requests[:3], before))  # not counted
        else:
            hold_clear_of_time_step(count * 0.005 + len(organizations) * 0.05 + 2)
            run(lambda: sequential(b.port, [get(b, path, o) for o in organizations]))
        started = b.meter.snapshot()
        latencies, errors, body = run(lambda: sequential(b.port, requests, before))
        finished = b.meter.snapshot()
    used = CpuMeter.cores(started, finished)
    summary = Summary.of(latencies)
    api_cpu = (finished["api"] - started["api"]) / count
    out(f"  {label}, N={count}: {summary.ms()}")
    out(
        f"    errors {sum(errors.values())}{' ' + str(dict(errors)) if errors else ''}; "
        f"API CPU {api_cpu * 1e3:,.2f} ms per request; {CpuMeter.describe(used)}"
    )
    if errors and body:
        out(f"    last response: {body[:300]!r}")
    return Measured(summary, sum(errors.values()))


async def warm_open_loop(b: Bench, path: str) -> RunResult:
    requests = [get(b, path, o) for o in b.typical]
    pool = ConnectionPool("127.0.0.1", b.port)
    await pool.prewarm(8)

    def make(i: int) -> bytes:
        return requests[i % len(requests)]

    await open_loop(pool, make, rate=OPEN_RATE, duration=OPEN_WARMUP, first_index=10**9)
    result = await open_loop(pool, make, rate=OPEN_RATE, duration=OPEN_DURATION)
    pool.close()
    return result


def show_answer(b: Bench, path: str, organization: Organization) -> None:
    _, _, body = run(lambda: sequential(b.port, [get(b, path, organization)]))
    found = json.loads(body)["recommendation"]
    hours = [h["hour"] for h in found["bestHours"]]
    days = [d["day"][:3] for d in found["bestDays"]]
    out(
        f"  answer ({path.split('?', 1)[1]}): best hours {hours}, best days {days}, "
        f"dataPoints {found['dataPoints']:,}"
    )


# ---- 1. optimal-times ----------------------------------------------------------------------


def phase_optimal_times(b: Bench) -> dict[str, Measured]:
    typical = b.typical
    per_org = sum(o.posts for o in typical) / len(typical)
    section(
        f"1a. GET {OPTIMAL}, {len(typical)} typical organizations (~{per_org:,.0f} posts, "
        f"{OBSERVATIONS_PER_ORGANIZATION:,} observations each)"
    )
    show_answer(b, OPTIMAL, typical[0])
    show_answer(b, OPTIMAL_NEW_YORK, typical[0])
    found = {
        "warm": measure(
            b, "warm (cache answers), UTC", OPTIMAL, typical, WARM_REQUESTS, cold=False
        ),
        "warm NY": measure(
            b, "warm, America/New_York", OPTIMAL_NEW_YORK, typical, WARM_REQUESTS, cold=False
        ),
    }
    hold_clear_of_time_step(OPEN_WARMUP + OPEN_DURATION + len(typical) * 0.05 + 3)
    run(lambda: sequential(b.port, [get(b, OPTIMAL, o) for o in typical]))
    result, used = b.metered(lambda: run(lambda: warm_open_loop(b, OPTIMAL)))
    opened = Summary.of(result.latencies)
    out(
        f"  warm, open loop at {OPEN_RATE:.0f} req/s for {OPEN_DURATION:.0f}s "
        f"(+{OPEN_WARMUP:.0f}s warm-up), round-robin: sent {result.sent}, ok {result.ok}, "
        f"errors {result.error_text()}, connections {result.connections}"
    )
    out(f"    latency from scheduled send: {opened.ms()}")
    out(f"    {used}")
    found["cold"] = measure(
        b, "cold (version bumped before each), UTC", OPTIMAL, typical, COLD_REQUESTS, cold=True
    )
    found["cold NY"] = measure(
        b, "cold, America/New_York", OPTIMAL_NEW_YORK, typical, COLD_REQUESTS, cold=True
    )

    section(
        f"1b. GET {OPTIMAL}, the large organization ({b.large.posts:,} posts, "
        f"{b.large.observations:,} observations)"
    )
    show_answer(b, OPTIMAL, b.large)
    large = [b.large]
    found["large warm"] = measure(b, "warm", OPTIMAL, large, LARGE_WARM_REQUESTS, cold=False)
    found["large cold"] = measure(b, "cold", OPTIMAL, large, LARGE_COLD_REQUESTS, cold=True)

    b.target_row("optimal-times p99, warm, sequential", found["warm"].summary.p99)
    b.target_row("optimal-times p99, warm, New York", found["warm NY"].summary.p99)
    b.target_row(f"optimal-times p99, warm @ {OPEN_RATE:.0f}/s", opened.p99)
    b.target_row("optimal-times p99, cold", found["cold"].summary.p99)
    b.target_row("optimal-times p99, cold, New York", found["cold NY"].summary.p99)
    b.target_row(
        f"optimal-times p99, {b.large.posts:,} posts, warm", found["large warm"].summary.p99
    )
    b.target_row(
        f"optimal-times p99, {b.large.posts:,} posts, cold", found["large cold"].summary.p99
    )
    errors = sum(m.errors for m in found.values()) + result.error_count
    b.row("  errors (all of part 1)", str(errors), "0", errors == 0)
    return found


def observations(rows: Sequence[Any]) -> list[Any]:
    """The rows made into ``analytics.Observation``, as ``Insights`` makes them."""
    from application.analytics import Observation

    return [
        Observation(
            account_id=str(row.account_id),
            provider=row.provider,
            published_at=row.published_at,
            likes=row.likes,
            comments=row.comments,
            shares=row.shares,
            views=row.views,
            reach=row.reach,
            saves=row.saves,
        )
        for row in rows
    ]


PARTS = (
    ("sql", "SQL alone (psycopg, tuple rows)"),
    ("latest", "EngagementView.latest() (SQL, dict rows, LatestEngagement)"),
    ("objects", "rows → Observation objects"),
    ("recommend", "analytics.recommend() alone"),
    ("insights", "Insights.optimal_times(), empty cache"),
)


@contextmanager
def gc_pauses() -> Iterator[list[tuple[int, float]]]:
    """(generation, seconds) of every collection of Python's cyclic GC in this process."""
    pauses: list[tuple[int, float]] = []
    began = [0.0]

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses.append((info["generation"], time.perf_counter() - began[0]))

    gc.callbacks.append(note)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(note)


@dataclass(frozen=True)
class Parts:
    latency: dict[str, Summary]
    pauses: list[tuple[int, float]]
    """The GC's collections over all the rounds (every part of each)."""
    used: str


def measure_parts(b: Bench, organizations: Sequence[Organization], n: int) -> Parts:
    """Each part of a cold answer on its own, in this process (the API process is idle)."""
    from application import analytics
    from application.identity import Principal
    from application.insights import TIME_STEP, Insights
    from interfaces.bootstrap import utc_now

    query = Insights.query("twitter", None)
    step = TIME_STEP.total_seconds()
    now = datetime.fromtimestamp(time.time() // step * step, UTC)
    sql = SQL(LATEST_SQL).format(b.view.table("engagement_latest"))
    samples: dict[str, list[float]] = {key: [] for key, _ in PARTS}

    def rounds() -> None:
        for i in range(n):
            organization = organizations[i % len(organizations)]
            principal = Principal(b.user_id, organization.id, "token")
            marks = [time.perf_counter()]
            conn.execute(sql, (organization.id, ["twitter"])).fetchall()
            marks.append(time.perf_counter())
            rows = b.view.latest(organization.id, query.providers)
            marks.append(time.perf_counter())
            made = observations(rows)
            marks.append(time.perf_counter())
            analytics.recommend(made, now=now, timezone=query.zone)
            marks.append(time.perf_counter())
            Insights(b.view, b.kairos.plans, utc_now).optimal_times(principal, query)
            marks.append(time.perf_counter())
            for part, (key, _) in enumerate(PARTS):
                samples[key].append(marks[part + 1] - marks[part])

    with psycopg.connect(b.database_url, autocommit=True) as conn:
        for organization in organizations[:5]:  # warm-up, not counted
            conn.execute(sql, (organization.id, ["twitter"])).fetchall()
            b.view.latest(organization.id, ("twitter",))
        with gc_pauses() as pauses:
            _, used = b.metered(rounds)
    return Parts({key: Summary.of(values) for key, values in samples.items()}, pauses, used)


def print_parts(label: str, parts: Parts, endpoint: Measured) -> None:
    latency = parts.latency
    out(f"  {label}, in this process:{'p50':>27}{'p99':>11}")
    for key, name in PARTS:
        out(f"    {name:<58}{ms(latency[key].p50):>10} {ms(latency[key].p99):>10}")
    cold = endpoint.summary
    out(f"    {'the endpoint, cold (HTTP, from above)':<58}{ms(cold.p50):>10} {ms(cold.p99):>10}")
    sql, objects, recommend = latency["sql"], latency["objects"], latency["recommend"]
    out(
        f"    ratio endpoint ÷ (SQL + recommend): p50 {ratio(cold.p50, sql.p50 + recommend.p50)}, "
        f"p99 {ratio(cold.p99, sql.p99 + recommend.p99)}"
    )
    rest = cold.p50 - latency["latest"].p50 - objects.p50 - recommend.p50
    out(
        f"    endpoint p50 {ms(cold.p50)} = SQL {ms(sql.p50)} + dict rows and LatestEngagement "
        f"{ms(latency['latest'].p50 - sql.p50)} + Observation objects {ms(objects.p50)} + "
        f"recommend {ms(recommend.p50)} + by difference, the rest (HTTP, token, plan, version, "
        f"JSON) {ms(rest)}"
    )
    full = [seconds for generation, seconds in parts.pauses if generation == 2]
    rounds = latency["sql"].n
    out(
        f"    Python's cyclic GC over the {rounds} rounds: {len(parts.pauses):,} collections, "
        f"{ms(sum(s for _, s in parts.pauses) / rounds)} per round; {len(full)} full (gen 2), "
        f"the longest {ms(max(full, default=0.0))}"
    )
    out(f"    {parts.used}")


def phase_parts(b: Bench, found: dict[str, Measured]) -> None:
    section("1c. Where a cold answer's time goes: its parts alone, next to the endpoint")
    typical = measure_parts(b, b.typical, PART_SAMPLES)
    print_parts(f"typical organizations, N={PART_SAMPLES}", typical, found["cold"])
    large = measure_parts(b, [b.large], LARGE_PART_SAMPLES)
    print_parts(f"large organization, N={LARGE_PART_SAMPLES}", large, found["large cold"])
    t, big = typical.latency, large.latency
    b.row("  SQL alone p99, typical", ms(t["sql"].p99), "baseline", None)
    b.row("  recommend() alone p99, typical", ms(t["recommend"].p99), "baseline", None)
    b.row(
        "  ratio cold endpoint p99 ÷ (SQL + recommend)",
        ratio(found["cold"].summary.p99, t["sql"].p99 + t["recommend"].p99),
        "-",
        None,
    )
    b.row("  SQL alone p99, large", ms(big["sql"].p99), "baseline", None)
    b.row("  recommend() alone p99, large", ms(big["recommend"].p99), "baseline", None)


# ---- 2. the other best-time routes ----------------------------------------------------------


def phase_other_routes(b: Bench) -> None:
    section("2. next-optimal-time and weekly-schedule, typical organizations")
    for name, path in (("next-optimal-time", NEXT), ("weekly-schedule", WEEKLY)):
        warm = measure(b, f"{name}, warm", path, b.typical, OTHER_WARM_REQUESTS, cold=False)
        cold = measure(b, f"{name}, cold", path, b.typical, OTHER_COLD_REQUESTS, cold=True)
        b.target_row(f"{name} p99, warm", warm.summary.p99)
        b.target_row(f"{name} p99, cold", cold.summary.p99)
        b.row("  errors", str(warm.errors + cold.errors), "0", warm.errors + cold.errors == 0)


# ---- 3. catch-up of the engagement view -----------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Drain:
    events: int
    wall: float
    read: float
    """Seconds in ``select_notifications`` (the read and the decoding of the rows)."""
    batches: Summary
    """Seconds per ``view.process(batch)``: apply and commit, with the tracking row."""

    @property
    def rate(self) -> float:
        return self.events / self.wall if self.wall else 0.0


def drain(view: Any, stop: int) -> Drain:
    """What the view's runner does until it reaches ``stop``, in this thread, timed."""
    from projections.runner import ProjectionRunner

    batch_size = ProjectionRunner(view).batch_size
    position = view.position
    events = 0
    read = 0.0
    batches: list[float] = []
    started = time.perf_counter()
    while position < stop:
        t0 = time.perf_counter()
        batch = view.app.recorder.select_notifications(
            start=position, stop=stop, limit=batch_size, inclusive_of_start=False
        )
        t1 = time.perf_counter()
        if not batch:
            break
        view.process(batch)
        read += t1 - t0
        batches.append(time.perf_counter() - t1)
        events += len(batch)
        position = batch[-1].id
    return Drain(events, time.perf_counter() - started, read, Summary.of(batches))


def record_read(post: Any, account: str, clock: Clock, published_at: datetime, k: int) -> None:
    """The ``k``-th read of the post, at its age ``READ_AGES[k]`` on the simulated clock."""
    clock.now = published_at + timedelta(seconds=READ_AGES[k])
    following = (
        published_at + timedelta(seconds=READ_AGES[k + 1]) if k + 1 < len(READ_AGES) else None
    )
    likes, comments, shares, views, reach, saves = read_counters(5_000.0, READ_AGES[k])
    post.record_metrics(
        account,
        likes=likes,
        comments=comments,
        shares=shares,
        views=views,
        reach=reach,
        saves=saves,
        next_collection_at=following,
    )


def raw_reads(organization_id: UUID, rng: random.Random, now: datetime) -> list[tuple[Any, ...]]:
    """The observation rows of ``CATCH_UP_POSTS`` × ``CATCH_UP_READS`` reads, in the order
    the collector makes them (every post's first read, then every post's second...)."""
    posts = [
        (
            UUID(int=rng.getrandbits(128), version=4),
            UUID(int=rng.getrandbits(128), version=4),
            now - timedelta(days=rng.uniform(15, HISTORY_DAYS)),
        )
        for _ in range(CATCH_UP_POSTS)
    ]
    return [
        (
            post_id,
            account_id,
            published_at + timedelta(seconds=age),
            organization_id,
            "twitter",
            published_at,
            age,
            *read_counters(5_000.0, age),
        )
        for age in READ_AGES[:CATCH_UP_READS]
        for post_id, account_id, published_at in posts
    ]


def raw_inserts(b: Bench, reads: Sequence[tuple[Any, ...]]) -> float:
    """Plain SQL: per read, one INSERT of the observation and one upsert of the latest row,
    ``RAW_BATCH`` reads per transaction. Returns the wall time."""
    observation = SQL(
        f"INSERT INTO {{0}} ({OBSERVATION_COLUMNS}) VALUES ({', '.join(['%s'] * 13)})"
    ).format(b.view.table("engagement_observations"))
    latest = SQL(
        f"INSERT INTO {{0}} ({LATEST_COLUMNS}) VALUES ({', '.join(['%s'] * 12)}) {UPSERT_LATEST}"
    ).format(b.view.table("engagement_latest"))
    with psycopg.connect(b.database_url) as conn, conn.cursor() as curs:
        started = time.perf_counter()
        for first in range(0, len(reads), RAW_BATCH):
            for read in reads[first : first + RAW_BATCH]:
                curs.execute(observation, read)
                curs.execute(latest, as_latest(read))
            conn.commit()
        return time.perf_counter() - started


def raw_copies(b: Bench, reads: Sequence[tuple[Any, ...]]) -> float:
    """Set-based SQL, the floor: per ``RAW_BATCH`` reads, a COPY of the observations and one
    ``INSERT … SELECT … ON CONFLICT`` of the latest rows from a COPY-filled temp table."""
    with psycopg.connect(b.database_url) as conn, conn.cursor() as curs:
        curs.execute(
            SQL("CREATE TEMP TABLE raw_latest (LIKE {0}) ON COMMIT DELETE ROWS").format(
                b.view.table("engagement_latest")
            )
        )
        conn.commit()
        upsert = SQL(
            f"INSERT INTO {{0}} ({LATEST_COLUMNS}) SELECT {LATEST_COLUMNS} FROM raw_latest "
            + UPSERT_LATEST
        ).format(b.view.table("engagement_latest"))
        started = time.perf_counter()
        for first in range(0, len(reads), RAW_BATCH):
            batch = reads[first : first + RAW_BATCH]
            copy_rows(
                curs, b.view.table("engagement_observations"), OBSERVATION_COLUMNS, iter(batch)
            )
            copy_rows(curs, SQL("raw_latest"), LATEST_COLUMNS, (as_latest(r) for r in batch))
            curs.execute(upsert)
            conn.commit()
        return time.perf_counter() - started


def publish_posts(b: Bench, organization_id: UUID, clock: Clock) -> list[tuple[Any, str, datetime]]:
    """``CATCH_UP_POSTS`` posts drafted, scheduled, started and published on one of 10
    accounts, 15 to 90 days ago, saved ``PUBLISH_BATCH`` per transaction."""
    from domain.post import Post

    rng = random.Random(5)
    accounts = [str(UUID(int=rng.getrandbits(128), version=4)) for _ in range(10)]
    now = datetime.now(UTC)
    made: list[tuple[Any, str, datetime]] = []
    for i in range(CATCH_UP_POSTS):
        account = accounts[i % len(accounts)]
        published_at = now - timedelta(days=rng.uniform(15, HISTORY_DAYS))
        clock.now = published_at - timedelta(minutes=5)
        post = Post.draft(
            organization_id=organization_id,
            author_id=b.user_id,
            content=f"Catch-up post {i}: a typical social post of ordinary length.",
            thread=[],
            media_urls=[],
            accounts={account: "twitter"},
        )
        post.schedule(published_at, now=clock.now)
        clock.now = published_at
        post.start_publishing()
        post.record_published(account, remote_id=f"{i}", url=f"https://x.test/{i}")
        made.append((post, account, published_at))
    for first in range(0, len(made), PUBLISH_BATCH):
        b.kairos.app.save(*(post for post, _, _ in made[first : first + PUBLISH_BATCH]))
    return made


def run_engagement_runner(settings_values: dict[str, Any]) -> None:
    """A projector process with the engagement view's runner only, until SIGTERM."""
    import signal
    import threading

    from interfaces.bootstrap import build
    from interfaces.config import Settings
    from projections.runner import ProjectionRunner

    logging.basicConfig(level=logging.WARNING)
    kairos = build(Settings(**settings_values))
    runner = ProjectionRunner(kairos.engagement_view).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    runner.stop()
    kairos.close()


def live_lag(b: Bench, organization_id: UUID, made: Sequence[Any], clock: Clock) -> Summary:
    """Each post's sixth read saved at ``LAG_RATE``/s; the clock runs from the save's return
    until the organization's engagement version (what the cache watches) shows it."""
    from domain.clock import simulated_clock

    query = SQL("SELECT position FROM {0} WHERE organization_id = %s").format(
        b.view.table("engagement_versions")
    )
    lags: list[float] = []
    with (
        child_process(run_engagement_runner, b.values) as projector,
        psycopg.connect(b.database_url, autocommit=True) as conn,
        simulated_clock(clock),
    ):
        started = time.perf_counter()
        for i in range(-1, LAG_READS):  # -1: waits for the runner to be up; not counted
            post, account, published_at = made[i]
            record_read(post, account, clock, published_at, CATCH_UP_READS)
            position = b.kairos.app.save_all(post)
            saved = time.perf_counter()
            deadline = saved + (60 if i < 0 else 10)
            while True:
                row = conn.execute(query, (organization_id,)).fetchone()
                if row is not None and row[0] >= position:
                    break
                if time.perf_counter() > deadline or not projector.is_alive():
                    raise RuntimeError(f"the engagement runner did not show read {i} in time")
                time.sleep(0.001)
            if i < 0:
                started = time.perf_counter()
                continue
            lags.append(time.perf_counter() - saved)
            pause = started + (i + 1) / LAG_RATE - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
    return Summary.of(lags)


@dataclass(frozen=True)
class Backlog:
    made: list[tuple[Any, str, datetime]]
    """Each post, its account and when it was published."""
    published_head: int
    """The last publishing event's position; metric events follow it."""
    head: int
    save_rate: float


def save_backlog(b: Bench, organization_id: UUID, clock: Clock) -> Backlog:
    """The posts published, then every post's reads in turn, one save per read."""
    from domain.clock import simulated_clock

    app = b.kairos.app
    before = b.view.position
    saves: list[float] = []
    with simulated_clock(clock):
        started = time.perf_counter()
        made = publish_posts(b, organization_id, clock)
        published = time.perf_counter() - started
        published_head = app.recorder.max_notification_id()

        def read_all() -> None:
            for k in range(CATCH_UP_READS):
                for post, account, published_at in made:
                    record_read(post, account, clock, published_at, k)
                    began = time.perf_counter()
                    app.save_all(post)
                    saves.append(time.perf_counter() - began)

        _, used = b.metered(read_all)
    rate = len(saves) / sum(saves)
    backlog = Backlog(made, published_head, app.recorder.max_notification_id(), rate)
    out(
        f"  saved {published_head - before:,} publishing events ({CATCH_UP_POSTS:,} posts, "
        f"{PUBLISH_BATCH} per save) in {published:.1f}s; {len(saves):,} metric reads, one save "
        f"each, at {backlog.save_rate:,.0f} saves/s: {Summary.of(saves).ms()}"
    )
    out(f"    {used}")
    out(f"  the view was {backlog.head - before:,} events behind")
    return backlog


def view_complete(b: Bench, organization_id: UUID) -> bool:
    counts = {}
    with psycopg.connect(b.database_url, autocommit=True) as conn:
        for table in ("engagement_observations", "engagement_latest"):
            row = conn.execute(
                SQL("SELECT count(*) FROM {0} WHERE organization_id = %s").format(
                    b.view.table(table)
                ),
                (organization_id,),
            ).fetchone()
            counts[table] = int(row[0]) if row else 0
    complete = counts == {
        "engagement_observations": CATCH_UP_POSTS * CATCH_UP_READS,
        "engagement_latest": CATCH_UP_POSTS,
    }
    out(
        f"  the view holds {counts['engagement_observations']:,} observations and "
        f"{counts['engagement_latest']:,} latest rows for them: "
        f"{'complete' if complete else 'INCOMPLETE'}"
    )
    return complete


def phase_catch_up(b: Bench, organization_id: UUID) -> None:
    section(
        f"3. Catch-up: the engagement view over {CATCH_UP_POSTS:,} posts published and read "
        f"{CATCH_UP_READS} times each (no runner while saving)"
    )
    view = b.view
    drain(view, b.kairos.app.recorder.max_notification_id() or 0)  # what came before: nothing
    clock = Clock()
    backlog = save_backlog(b, organization_id, clock)
    publishing, used_publishing = b.metered(lambda: drain(view, backlog.published_head))
    reads, used_reads = b.metered(lambda: drain(view, backlog.head))
    publishing_label = f"publishing events ({CATCH_UP_POSTS:,} AccountPublished among them)"
    for label, d, used in (
        (publishing_label, publishing, used_publishing),
        ("metric events", reads, used_reads),
    ):
        out(
            f"  {label}: {d.events:,} in {d.wall:.2f}s = {d.rate:,.0f} events/s; reading "
            f"{d.read:.2f}s, applying {d.wall - d.read:.2f}s; per batch of up to 500: "
            f"{d.batches.ms()}"
        )
        out(f"    {used}")
    total = publishing.wall + reads.wall
    out(
        f"  caught up on all {publishing.events + reads.events:,} events in {total:.1f}s "
        f"({(publishing.events + reads.events) / total:,.0f} events/s)"
    )
    complete = view_complete(b, organization_id)

    rng = random.Random(11)
    now = datetime.now(UTC)
    count = CATCH_UP_POSTS * CATCH_UP_READS
    plain = count / raw_inserts(b, raw_reads(UUID(int=rng.getrandbits(128), version=4), rng, now))
    floor = count / raw_copies(b, raw_reads(UUID(int=rng.getrandbits(128), version=4), rng, now))
    out(
        f"  raw baseline, the same {count:,} reads (1 observation + 1 latest upsert each), "
        f"{RAW_BATCH} per transaction: plain INSERTs {plain:,.0f} reads/s; COPY + one "
        f"set-based upsert {floor:,.0f} reads/s"
    )
    out(
        f"  ratio catch-up ÷ plain INSERTs {ratio(reads.rate, plain)}; "
        f"÷ COPY {ratio(reads.rate, floor)}"
    )
    lag = live_lag(b, organization_id, backlog.made, clock)
    out(
        f"  live lag, the view's runner in its own process (LISTEN/NOTIFY), {LAG_READS} reads "
        f"at {LAG_RATE:.0f}/s, save returned → engagement version moved: {lag.ms()}"
    )
    b.row(
        "metric events catch-up",
        f"{reads.rate:,.0f} ev/s",
        f"≥ {TARGET_CATCH_UP:,.0f} ev/s",
        reads.rate >= TARGET_CATCH_UP,
    )
    b.row("  publishing events catch-up", f"{publishing.rate:,.0f} ev/s", "-", None)
    b.row("  raw plain INSERTs", f"{plain:,.0f} reads/s", "baseline", None)
    b.row("  ratio catch-up ÷ raw", ratio(reads.rate, plain), "-", None)
    b.row("  metric read saves (collector)", f"{backlog.save_rate:,.0f} saves/s", "-", None)
    b.row("  view complete after catch-up", "yes" if complete else "no", "yes", complete)
    b.row("live lag p99", ms(lag.p99), f"< {ms(TARGET_LAG_P99)}", lag.p99 < TARGET_LAG_P99)
    b.row("  live lag p50", ms(lag.p50), "-", None)


# ---- the run -------------------------------------------------------------------------------


def print_header(facts: dict[str, str], db_label: str, busy: float) -> None:
    import psutil
    import uvicorn

    options = uvicorn_options()
    section("Kairos analytics benchmark")
    out(
        f"  CPU: {os.cpu_count()} logical ({len(os.sched_getaffinity(0))} usable), "
        f"{cpu_model()}; RAM {psutil.virtual_memory().total / 2**30:.1f} GiB; "
        f"{platform.platform()}"
    )
    out(
        f"  Python {platform.python_version()}; PostgreSQL {facts['server_version']} "
        f"(fsync={facts['fsync']}, synchronous_commit={facts['synchronous_commit']}, "
        f"shared_buffers={facts['shared_buffers']}); eventsourcing "
        f"{importlib.metadata.version('eventsourcing')}; psycopg {psycopg.__version__} "
        f"({psycopg.pq.__impl__}); uvicorn {uvicorn.__version__} (API process: loop "
        f"{options['loop']}, http {options['http']})"
    )
    out(f"  DB: {db_label}; database {facts['database']} (dropped afterwards)")
    warning = "  WARNING: the machine is not idle" if busy > 0.2 else ""
    out(f"  background load before start: {busy:.2f} cores busy{warning}")


def make_organizations(kairos: Any) -> tuple[UUID, list[Organization], Organization, UUID]:
    """One user owning every organization (one password hash), a token for each."""
    user, first = kairos.identity.create_user(
        email=f"analytics-{secrets.token_hex(4)}@example.com",
        password=secrets.token_urlsafe(16),
        name="analytics",
    )
    ids = [first.id] + [
        kairos.identity.create_organization(user.id, f"organization {n}").id
        for n in range(1, TYPICAL_ORGANIZATIONS + 1)
    ]
    made = [
        Organization(
            org_id,
            kairos.identity.issue_token_for(
                user.id, org_id, name="bench", expires_in_days=None
            ).secret,
        )
        for org_id in ids
    ]
    catch_up = kairos.identity.create_organization(user.id, "catch-up").id
    return user.id, made[:-1], made[-1], catch_up


def main() -> int:
    started = time.perf_counter()
    logging.basicConfig(level=logging.WARNING)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kairos-analytics-")))
        server_url, db_label = start_postgres(stack, tmp)
        database_url = stack.enter_context(fresh_database(server_url))

        from interfaces.bootstrap import build
        from interfaces.config import Settings
        from interfaces.postgres.vault import new_vault_key
        from interfaces.serving import free_port

        port = free_port()
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": database_url,
            "secret_key": secrets.token_urlsafe(36),
            "vault_keys": new_vault_key("k1"),
            "public_base_url": f"http://127.0.0.1:{port}",
            "media_dir": str(tmp / "media"),
            "cookie_secure": False,
        }
        # This process's handle (no projection runners): creates the tables, the
        # organizations and tokens, loads the read model, and runs part 3.
        kairos = build(Settings(**values))
        stack.callback(kairos.close)
        print_header(server_facts(database_url), db_label, background_load())
        user_id, typical, large, catch_up = make_organizations(kairos)
        b = Bench(kairos, values, user_id, typical, large)
        phase_load(b)

        with child_process(run_api, values, port) as api:
            wait_http(f"http://127.0.0.1:{port}/healthz", api)
            b.port = port
            b.meter = CpuMeter({"bench": os.getpid(), "api": api.pid}, database_url)
            found = phase_optimal_times(b)
            phase_parts(b, found)
            phase_other_routes(b)
        phase_catch_up(b, catch_up)
        print_summary(b.rows, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
