"""``uv run python -m bench``: Kairos performance figures next to their targets.

One run takes about 1.5 minutes:

- main process: PostgreSQL setup, the sandbox platform (idle during load), the raw
  event-store baseline, seeding, and the load generator (a raw asyncio HTTP client);
- API process (spawned): ``build`` + ``create_api`` + projection runners under uvicorn;
- null-server process (spawned briefly): calibrates what the load generator can push.

Figures are informational: the exit status is 0 unless the benchmark itself failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import secrets
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
from psycopg.sql import SQL, Composed

from bench.baseline import Rate, raw_saves, seed_posts, service_creates
from bench.census import select_one_latency, take_census
from bench.common import (
    Row,
    background_load,
    child_process,
    cpu_model,
    fresh_database,
    masked,
    ms,
    out,
    print_summary,
    section,
    server_facts,
    wait_http,
)
from bench.load import (
    ConnectionPool,
    RequestFactory,
    RunResult,
    Summary,
    build_request,
    closed_loop,
    httpx_closed_loop,
    open_loop,
    run,
)
from bench.server import run_api, run_null, run_projector, uvicorn_options

RAW_SAVES = 2000
SERVICE_CREATES = 500
POST_CONCURRENCY = 32
POST_WARMUP = 2.0
POST_DURATION = 10.0
OPEN_RATE = 200.0
OPEN_WARMUP = 1.0
OPEN_DURATION = 10.0
GET_CAPACITY_CLIENTS = 8
GET_CAPACITY_SECONDS = 5.0
SEEDED_POSTS = 10_000
SEED_BATCH = 250
LAG_POSTS = 300
LAG_RATE = 50.0
CALIBRATION_SECONDS = 2.0

TARGET_POST_RPS = 600.0
TARGET_POST_P99 = 0.025
TARGET_POST_P50 = 0.005
TARGET_GET_P99 = 0.015
TARGET_LAG_P99 = 0.100
TARGET_CATCH_UP = 5000.0

SCHEDULED_AT = "2030-07-01T15:00:00.000Z"


# ---- PostgreSQL --------------------------------------------------------------------------


def start_server(stack: ExitStack, tmp: Path) -> tuple[str, str]:
    """The server URL and its description: ``KAIROS_DATABASE_URL``, else embedded pgserver."""
    url = os.environ.get("KAIROS_DATABASE_URL")
    if url:
        return url, f"external server from KAIROS_DATABASE_URL ({masked(url)})"
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver

    server: Any = pgserver.get_server(tmp / "pgdata", cleanup_mode="stop")
    stack.callback(server.cleanup)
    return str(server.get_uri()), f"embedded pgserver (data dir {tmp / 'pgdata'})"


# ---- hardware and CPU accounting -----------------------------------------------------------


class CpuMeter:
    """CPU used by the load generator, the API process, this PostgreSQL server, the rest.

    PostgreSQL is the postmaster of the benchmark database and its children (found through
    a backend's parent), so other servers on the machine count as "other". "steal" is time
    the hypervisor gave to other guests.
    """

    def __init__(self, api_pid: int, projector_pid: int, database_url: str) -> None:
        import psutil

        self._psutil = psutil
        self._me = psutil.Process()
        self._api = psutil.Process(api_pid)
        self._projector = psutil.Process(projector_pid)
        self._postmaster: Any = None
        with (
            contextlib.suppress(psutil.Error, psycopg.Error),
            psycopg.connect(database_url) as conn,
        ):
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            if row:
                self._postmaster = psutil.Process(int(row[0])).parent()

    @staticmethod
    def _seconds(proc: Any) -> float:
        times = proc.cpu_times()
        return float(times.user + times.system)

    def _postgres(self) -> float:
        if self._postmaster is None:
            return math.nan
        total = 0.0
        for proc in [self._postmaster, *self._postmaster.children()]:
            with contextlib.suppress(self._psutil.Error):
                total += self._seconds(proc)
        return total

    def snapshot(self) -> dict[str, float]:
        machine = self._psutil.cpu_times()
        return {
            "client": self._seconds(self._me),
            "api": self._seconds(self._api),
            "projector": self._seconds(self._projector),
            "postgres": self._postgres(),
            "machine": float(machine.user + machine.system + getattr(machine, "nice", 0.0))
            + float(getattr(machine, "irq", 0.0) + getattr(machine, "softirq", 0.0)),
            "steal": float(getattr(machine, "steal", 0.0)),
            "wall": time.perf_counter(),
        }

    @staticmethod
    def cores(before: dict[str, float], after: dict[str, float]) -> str:
        wall = after["wall"] - before["wall"]
        used = {name: (after[name] - before[name]) / wall for name in before if name != "wall"}
        other = (
            used["machine"]
            - used["client"]
            - used["api"]
            - used["projector"]
            - (used["postgres"] or 0.0)
        )
        text = (
            f"cores busy: client {used['client']:.2f}  api {used['api']:.2f}  "
            f"projector {used['projector']:.2f}  "
            f"postgres {used['postgres']:.2f}  other {max(other, 0.0):.2f}  "
            f"(machine {used['machine']:.2f} of {os.cpu_count()}, steal {used['steal']:.2f})"
        )
        if other > 0.25:
            text += (
                "\n  WARNING: other processes were busy meanwhile; these figures are contaminated"
            )
        return text


# ---- processes, accounts, requests ---------------------------------------------------------


@dataclass(frozen=True)
class BenchAccount:
    user_id: UUID
    organization_id: UUID
    token: str
    account_id: UUID


def make_account(kairos: Any, api_url: str, label: str) -> BenchAccount:
    """User + organization + API token, and a sandbox X account connected via real OAuth."""
    from interfaces.consent import approve

    email = f"{label}-{secrets.token_hex(4)}@example.com"
    user, org = kairos.identity.create_user(
        email=email, password=secrets.token_urlsafe(16), name=label
    )
    token = kairos.identity.issue_token_for(user.id, org.id, name="bench", expires_in_days=None)
    username = f"{label[:8]}_{secrets.token_hex(3)}"  # X usernames: at most 15 characters
    headers = {"Authorization": f"Bearer {token.secret}"}
    with httpx.Client(base_url=api_url, headers=headers, timeout=15) as http:
        url = http.get("/api/integrations/twitter/auth").json()["url"]
        page = http.get(approve(url, username=username))
        if page.status_code != 200:
            raise RuntimeError(f"OAuth callback failed: HTTP {page.status_code}: {page.text[:300]}")
        integrations = http.get("/api/integrations").json()["integrations"]
    account_id = next(i["id"] for i in integrations if i["accountName"] == username)
    return BenchAccount(user.id, org.id, token.secret, UUID(account_id))


def wait_for_projection(kairos: Any, timeout: float = 180.0) -> float:
    """Seconds until the posts view has processed every event committed so far."""
    head = kairos.app.last_position()
    start = time.perf_counter()
    while kairos.posts_view.position < head:
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"posts projection still behind after {timeout:.0f}s")
        time.sleep(0.01)
    return time.perf_counter() - start


def post_request(host: str, account: BenchAccount, prefix: str) -> RequestFactory:
    """POST /api/posts for one X account, scheduled, with a unique Idempotency-Key each."""
    headers = {
        "Authorization": f"Bearer {account.token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }

    def make(i: int) -> bytes:
        body = json.dumps(
            {
                "content": f"Benchmark post {prefix}-{i}: hello from the load generator",
                "accountIds": [str(account.account_id)],
                "scheduledAt": SCHEDULED_AT,
            }
        ).encode()
        return build_request(
            "POST",
            "/api/posts",
            host=host,
            headers={**headers, "Idempotency-Key": f"{prefix}-{i}"},
            body=body,
        )

    return make


async def run_open_loop(port: int, make: RequestFactory, *, rate: float) -> RunResult:
    """Warm up for ``OPEN_WARMUP`` seconds (not counted), then measure ``OPEN_DURATION``."""
    pool = ConnectionPool("127.0.0.1", port)
    await pool.prewarm(8)
    await open_loop(pool, make, rate=rate, duration=OPEN_WARMUP, first_index=10**9)
    result = await open_loop(pool, make, rate=rate, duration=OPEN_DURATION)
    pool.close()
    return result


# ---- report ------------------------------------------------------------------------------


def print_open(result: RunResult, *, rate: float, capacity: float | None) -> None:
    latency = Summary.of(result.latencies)
    service = Summary.of(result.service)
    late = Summary.of(result.send_lag)
    out(
        f"  sent {result.sent} at {rate:.0f}/s; ok {result.ok}; errors {result.error_text()}; "
        f"last response {result.wall:.2f}s after the first send "
        f"(completion rate {result.ok / result.wall:.0f}/s); connections {result.connections}"
    )
    out(f"  latency from scheduled send: {latency.ms()}")
    out(f"  service time (sent→response): {service.ms()}")
    out(
        f"  generator lateness (sent-scheduled): p99 {ms(late.p99)}, max {ms(late.max)}; "
        f"client CPU {result.client_cores:.2f} cores"
    )
    if capacity is not None and capacity < rate:
        out(
            f"  NOTE: {rate:.0f}/s is above the measured capacity ({capacity:.0f} req/s): the "
            "queue grows for the whole run, so the percentiles are mostly queueing time."
        )


@dataclass
class Bench:
    """State shared by the phases of one run."""

    kairos: Any
    database_url: str
    port: int
    writer: BenchAccount
    reader: BenchAccount
    cpu: CpuMeter
    raw: Rate
    client_capacity: float = 0.0
    post_capacity: float = 0.0
    rows: list[Row] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}"

    def row(self, figure: str, value: str, target: str, passed: bool | None) -> None:
        self.rows.append(Row(figure, value, target, passed))

    def measured(self, phase: Callable[[], Any]) -> tuple[Any, str]:
        """Run ``phase`` and describe the CPU each party used meanwhile."""
        before = self.cpu.snapshot()
        result = phase()
        return result, CpuMeter.cores(before, self.cpu.snapshot())


# ---- phases --------------------------------------------------------------------------------


def print_header(facts: dict[str, str], db_label: str, env: dict[str, str], busy: float) -> None:
    import psutil
    import uvicorn

    options = uvicorn_options()
    section("Kairos benchmark")
    out(
        f"  CPU: {os.cpu_count()} logical ({len(os.sched_getaffinity(0))} usable), "
        f"{cpu_model()}; RAM {psutil.virtual_memory().total / 2**30:.1f} GiB; "
        f"{platform.platform()}"
    )
    out(
        f"  Python {platform.python_version()} ({sys.implementation.name}); "
        f"PostgreSQL {facts['server_version']}; "
        f"eventsourcing {importlib.metadata.version('eventsourcing')}; psycopg "
        f"{psycopg.__version__} (impl {psycopg.pq.__impl__}, libpq {psycopg.pq.version()})"
    )
    out(
        f"  uvicorn {uvicorn.__version__} (loop {options['loop']}, http {options['http']}), "
        f"fastapi {importlib.metadata.version('fastapi')}; "
        "1 API process + 1 projector process (as kairos api + kairos projector)"
    )
    out(
        f"  PostgreSQL: fsync={facts['fsync']} synchronous_commit={facts['synchronous_commit']} "
        f"wal_sync_method={facts['wal_sync_method']} shared_buffers={facts['shared_buffers']}"
    )
    out(f"  DB: {db_label}; database {facts['database']} (dropped afterwards)")
    out(
        f"  event store: POSTGRES_ENABLE_DB_FUNCTIONS={env['POSTGRES_ENABLE_DB_FUNCTIONS']}, "
        f"PRE_PING={env['POSTGRES_PRE_PING']}, "
        f"pool {env['POSTGRES_POOL_SIZE']}+{env['POSTGRES_MAX_OVERFLOW']}"
    )
    warning = "  WARNING: the machine is not idle" if busy > 0.2 else ""
    out(f"  background load before start: {busy:.2f} cores busy{warning}")


def phase_raw_baseline(env: dict[str, str]) -> Rate:
    section(
        f"1. Raw baseline: eventsourcing app.save() of a new 1-event aggregate, "
        f"1 thread, N={RAW_SAVES}"
    )
    raw = raw_saves(env, RAW_SAVES)
    out(f"  {raw.per_second:,.0f} saves/s   latency {raw.latency.ms()}")
    return raw


def phase_census(b: Bench, env: dict[str, str]) -> None:
    section("Database round trips per operation (psycopg Connection.wait calls, bench process)")
    rtt = select_one_latency(b.database_url)
    census = take_census(
        b.kairos,
        env,
        token=b.writer.token,
        organization_id=b.writer.organization_id,
        user_id=b.writer.user_id,
        account_id=b.writer.account_id,
    )
    post = census.auth + census.create + census.projection
    read = census.auth + census.list_reads
    out(f"  SELECT 1 round trip on one connection: {rtt.ms()}")
    out(f"  raw app.save() of a 1-event aggregate:        {census.raw_save:5.1f}")
    out(f"  API token authentication (every request):     {census.auth:5.1f}")
    out(f"  posts.create (target lookup + save):          {census.create:5.1f}")
    out(f"  posts projection of that one post:            {census.projection:5.1f}")
    out(f"  GET /api/posts reads (read-your-writes+page): {census.list_reads:5.1f}")
    out(
        f"  => one created post costs {post:.0f} round trips ({census.raw_save:.0f} for a raw "
        f"save); one list page {read:.0f}. At the SELECT 1 p50 that is at least "
        f"{post * rtt.p50 * 1e3:.1f} ms and {read * rtt.p50 * 1e3:.1f} ms of waiting."
    )
    b.row(
        "DB round trips per created post", f"{post:.0f}", f"raw save: {census.raw_save:.0f}", None
    )


def phase_calibrate(b: Bench) -> None:
    from interfaces.serving import free_port

    section(
        f"Load-generator calibration: closed loop, {POST_CONCURRENCY} connections, "
        "null HTTP server in its own process"
    )
    port = free_port()
    with child_process(run_null, port) as null:
        wait_http(f"http://127.0.0.1:{port}/", null, method="POST")
        sample = post_request(f"127.0.0.1:{port}", b.writer, "null")
        raw = run(
            lambda: closed_loop(
                "127.0.0.1",
                port,
                sample,
                concurrency=POST_CONCURRENCY,
                duration=CALIBRATION_SECONDS,
                warmup=0.3,
            )
        )
        body = sample(0).split(b"\r\n\r\n", 1)[1]
        hx = run(
            lambda: httpx_closed_loop(
                f"http://127.0.0.1:{port}",
                "/api/posts",
                body,
                concurrency=POST_CONCURRENCY,
                duration=CALIBRATION_SECONDS,
            )
        )
    b.client_capacity = raw.throughput
    for label, result in (("raw asyncio client (used)", raw), ("one httpx.AsyncClient", hx)):
        per_request = result.client_cpu / max(result.ok, 1) * 1e6
        out(
            f"  {label:<26} {result.throughput:8,.0f} req/s, "
            f"{per_request:6.0f} µs of client CPU per request"
        )


def phase_service(b: Bench) -> None:
    section(
        f"Application layer without HTTP: kairos.posts.create() in the bench process, "
        f"1 thread, N={SERVICE_CREATES}"
    )
    rate = service_creates(
        b.kairos, b.writer.organization_id, b.writer.user_id, b.writer.account_id, SERVICE_CREATES
    )
    out(f"  {rate.per_second:,.0f} creates/s   latency {rate.latency.ms()}")
    out("  (reads the target integration, saves 2 events [drafted, scheduled] in one")
    out("   transaction; the API process projects them meanwhile)")
    wait_for_projection(b.kairos)


def phase_seed(b: Bench) -> None:
    section(f"Seeding {SEEDED_POSTS:,} posts for the reader organization")
    seconds = seed_posts(
        b.kairos,
        b.reader.organization_id,
        b.reader.user_id,
        b.reader.account_id,
        SEEDED_POSTS,
        batch=SEED_BATCH,
    )
    events = SEEDED_POSTS + sum(1 for i in range(SEEDED_POSTS) if i % 3)
    out(
        f"  saved {SEEDED_POSTS:,} posts ({events:,} events) in {seconds:.2f}s, "
        f"{SEED_BATCH} posts per transaction"
    )
    catch_up = wait_for_projection(b.kairos)
    total = seconds + catch_up
    rate = events / total
    out(
        f"  projection caught up {catch_up:.2f}s after the last save: "
        f"{rate:,.0f} events/s, {SEEDED_POSTS / total:,.0f} posts/s from first save to visible"
    )
    with b.kairos.datastore.transaction() as curs:
        curs.execute(
            SQL("SELECT count(*) AS n FROM {} WHERE organization_id = %s").format(
                b.kairos.posts_view.table("posts")
            ),
            (b.reader.organization_id,),
        )
        row = curs.fetchone()
    visible = row["n"] if row else 0
    if visible != SEEDED_POSTS:
        raise RuntimeError(f"expected {SEEDED_POSTS} rows in the posts view, found {visible}")
    out(f"  list query plan, fresh statistics missing: {list_plan(b)}")
    with b.kairos.datastore.transaction(commit=True) as curs:
        curs.execute(SQL("ANALYZE {}").format(b.kairos.posts_view.table("posts")))
    out(f"  list query plan after ANALYZE:             {list_plan(b)}")
    out("  (the GET figures below use the analysed table, as autovacuum would within minutes)")
    b.row(
        "projection catch-up (seeding)",
        f"{rate:,.0f} events/s",
        f"≥ {TARGET_CATCH_UP:,.0f} (anchor)",
        rate >= TARGET_CATCH_UP,
    )


def list_plan(b: Bench) -> str:
    """The plan nodes and execution time of the first page query of the reader's posts."""
    query = SQL(
        "EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM {} WHERE organization_id = %s "
        "ORDER BY created_at DESC, id DESC LIMIT 51"
    ).format(b.kairos.posts_view.table("posts"))
    with b.kairos.datastore.transaction() as curs:
        curs.execute(query, (b.reader.organization_id,))
        lines = [str(next(iter(row.values()))) for row in curs.fetchall()]
    nodes = [
        line.strip().removeprefix("->").strip().split("  (")[0]
        for line in lines
        if not line.strip().startswith(("Planning", "Execution", "Sort Key", "Index Cond"))
        and ":" not in line
    ]
    executed = next((line for line in lines if line.startswith("Execution Time")), "")
    return " > ".join(nodes) + f"; {executed.replace('Execution Time: ', 'executes in ')}"


def phase_post_closed(b: Bench) -> None:
    section(
        f"2a. POST /api/posts max throughput: closed loop, {POST_CONCURRENCY} clients, "
        f"{POST_WARMUP:.0f}s warm-up + {POST_DURATION:.0f}s"
    )
    make = post_request(b.host, b.writer, f"closed-{secrets.token_hex(3)}")
    result, cores = b.measured(
        lambda: run(
            lambda: closed_loop(
                "127.0.0.1",
                b.port,
                make,
                concurrency=POST_CONCURRENCY,
                duration=POST_DURATION,
                warmup=POST_WARMUP,
            )
        )
    )
    b.post_capacity = result.throughput
    ratio = result.throughput / b.raw.per_second
    out(
        f"  {result.throughput:,.0f} req/s (target ≥ {TARGET_POST_RPS:.0f}); "
        f"errors {result.error_text()}"
    )
    out(f"  latency at saturation: {Summary.of(result.latencies).ms()}")
    out(
        f"  ratio create-req/s ÷ raw saves/s = {result.throughput:,.0f} / "
        f"{b.raw.per_second:,.0f} = {ratio:.2f}"
    )
    out(f"  {cores}")
    share = result.throughput / b.client_capacity if b.client_capacity else 0.0
    verdict = "the client may be capping this figure" if share > 0.5 else "not the limit"
    out(
        f"  load generator: {result.client_cores:.2f} cores, {share:.1%} of its null-server "
        f"capacity: {verdict}"
    )
    out(f"  projection backlog drained {wait_for_projection(b.kairos):.2f}s after the run")
    b.row(
        f"POST /api/posts max ({POST_CONCURRENCY} clients)",
        f"{result.throughput:,.0f} req/s",
        f"≥ {TARGET_POST_RPS:.0f} req/s",
        result.throughput >= TARGET_POST_RPS,
    )
    b.row("  ratio to raw app.save()", f"{ratio:.2f}", "-", None)


def phase_post_open(b: Bench) -> None:
    section(
        f"2b. POST /api/posts open loop at {OPEN_RATE:.0f} req/s for {OPEN_DURATION:.0f}s "
        f"(+{OPEN_WARMUP:.0f}s warm-up)"
    )
    make = post_request(b.host, b.writer, f"open-{secrets.token_hex(3)}")
    result, cores = b.measured(lambda: run(lambda: run_open_loop(b.port, make, rate=OPEN_RATE)))
    print_open(result, rate=OPEN_RATE, capacity=b.post_capacity)
    out(f"  {cores}")
    latency = Summary.of(result.latencies)
    b.row(
        f"POST p99 @ {OPEN_RATE:.0f} req/s",
        ms(latency.p99),
        f"< {ms(TARGET_POST_P99)}",
        latency.p99 < TARGET_POST_P99,
    )
    b.row(
        f"POST p50 @ {OPEN_RATE:.0f} req/s",
        ms(latency.p50),
        f"< {ms(TARGET_POST_P50)} (anchor)",
        latency.p50 < TARGET_POST_P50,
    )
    b.row(
        f"POST errors @ {OPEN_RATE:.0f} req/s",
        str(result.error_count),
        "0",
        result.error_count == 0,
    )
    out(f"  projection backlog drained {wait_for_projection(b.kairos):.2f}s after the run")


def phase_get(b: Bench) -> None:
    section(
        f"3. GET /api/posts, organization with {SEEDED_POSTS:,} posts, default page size: "
        f"open loop at {OPEN_RATE:.0f} req/s for {OPEN_DURATION:.0f}s (+{OPEN_WARMUP:.0f}s warm-up)"
    )
    request = build_request(
        "GET",
        "/api/posts",
        host=b.host,
        headers={"Authorization": f"Bearer {b.reader.token}", "Accept": "application/json"},
    )
    with httpx.Client(
        base_url=b.api_url, headers={"Authorization": f"Bearer {b.reader.token}"}
    ) as http:
        page = http.get("/api/posts")
    posts = page.json()["posts"]
    out(
        f"  one page: {len(posts)} posts, {len(page.content):,} bytes of JSON, "
        f"nextCursor {'set' if page.json()['nextCursor'] else 'missing'}"
    )
    capacity = run(
        lambda: closed_loop(
            "127.0.0.1",
            b.port,
            lambda _i: request,
            concurrency=GET_CAPACITY_CLIENTS,
            duration=GET_CAPACITY_SECONDS,
            warmup=0.5,
        )
    )
    out(
        f"  capacity first (closed loop, {GET_CAPACITY_CLIENTS} clients, "
        f"{GET_CAPACITY_SECONDS:.0f}s): {capacity.throughput:,.0f} req/s, "
        f"{Summary.of(capacity.latencies).ms()}"
    )
    result, cores = b.measured(
        lambda: run(lambda: run_open_loop(b.port, lambda _i: request, rate=OPEN_RATE))
    )
    print_open(result, rate=OPEN_RATE, capacity=capacity.throughput)
    out(f"  {cores}")
    latency = Summary.of(result.latencies)
    b.row(
        f"GET /api/posts (10k) p99 @ {OPEN_RATE:.0f}/s",
        ms(latency.p99),
        f"< {ms(TARGET_GET_P99)}",
        latency.p99 < TARGET_GET_P99,
    )
    b.row("  GET capacity (8 clients)", f"{capacity.throughput:,.0f} req/s", "-", None)
    b.row(
        f"GET errors @ {OPEN_RATE:.0f} req/s",
        str(result.error_count),
        "0",
        result.error_count == 0,
    )


async def _poll_until_seen(
    conn: psycopg.AsyncConnection[Any],
    query: Composed,
    pending: dict[str, float],
    lags: list[float],
    done: asyncio.Event,
) -> None:
    """Poll the posts table (about every millisecond) for each id whose POST returned."""
    while not (done.is_set() and not pending):
        if not pending:
            await asyncio.sleep(0.001)
            continue
        cursor = await conn.execute(query, (list(pending),), prepare=True)
        rows = await cursor.fetchall()
        seen = time.perf_counter()
        for (post_id,) in rows:
            lags.append(seen - pending.pop(str(post_id)))
        await asyncio.sleep(0.0005)


async def measure_lag(b: Bench, make: RequestFactory) -> tuple[RunResult, list[float], int]:
    pending: dict[str, float] = {}
    lags: list[float] = []
    done = asyncio.Event()
    query = SQL("SELECT id FROM {} WHERE id = ANY(%s::uuid[])").format(
        b.kairos.posts_view.table("posts")
    )

    def returned(_i: int, status: int, body: bytes, at: float) -> None:
        if status == 201:
            pending[json.loads(body)["post"]["id"]] = at

    async with await psycopg.AsyncConnection.connect(b.database_url, autocommit=True) as conn:
        poller = asyncio.create_task(_poll_until_seen(conn, query, pending, lags, done))
        pool = ConnectionPool("127.0.0.1", b.port)
        await pool.prewarm(4)
        result = await open_loop(
            pool, make, rate=LAG_RATE, duration=LAG_POSTS / LAG_RATE, on_response=returned
        )
        pool.close()
        done.set()
        try:
            await asyncio.wait_for(poller, timeout=10)
        except TimeoutError:
            poller.cancel()
    return result, lags, len(pending)


def phase_lag(b: Bench) -> None:
    section(
        f"4. Projection lag: {LAG_POSTS} posts at {LAG_RATE:.0f}/s, "
        "from POST returned to the row in the posts table"
    )
    make = post_request(b.host, b.writer, f"lag-{secrets.token_hex(3)}")
    (result, lags, missing), cores = b.measured(lambda: run(lambda: measure_lag(b, make)))
    lag = Summary.of(lags)
    out(f"  {len(lags)} posts seen, {missing} never seen; POST errors {result.error_text()}")
    out(f"  lag: {lag.ms()}")
    out(f"  POST latency meanwhile: {Summary.of(result.latencies).ms()}")
    out(f"  {cores}")
    b.row(
        f"projection lag p99 @ {LAG_RATE:.0f} posts/s",
        ms(lag.p99),
        f"< {ms(TARGET_LAG_P99)}",
        lag.p99 < TARGET_LAG_P99 and missing == 0,
    )
    b.row(f"  projection lag p50 @ {LAG_RATE:.0f}/s", ms(lag.p50), "-", None)


def main() -> int:
    started = time.perf_counter()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kairos-bench-")))
        server_url, db_label = start_server(stack, tmp)
        database_url = stack.enter_context(fresh_database(server_url))

        from interfaces.api.app import create_api  # noqa: F401 - fail early if it is broken
        from interfaces.bootstrap import build, postgres_env
        from interfaces.config import Settings
        from interfaces.postgres.vault import new_vault_key
        from interfaces.serving import free_port, serve
        from sandbox.app import create_sandbox_app

        sandbox_url = stack.enter_context(serve(create_sandbox_app(tmp / "sandbox")))
        port = free_port()
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": database_url,
            "secret_key": secrets.token_urlsafe(36),
            "vault_keys": new_vault_key("k1"),
            "x_authorize_url": f"{sandbox_url}/x/i/oauth2/authorize",
            "x_api_base_url": f"{sandbox_url}/x",
            "public_base_url": f"http://127.0.0.1:{port}",
            "cookie_secure": False,
        }
        settings = Settings(**values)
        env = postgres_env(database_url, settings)
        print_header(server_facts(database_url), db_label, env, background_load())

        # The bench's own handle (no projections here): creates the tables before the API
        # process starts, then creates users, seeds, and reads the view's position.
        kairos = build(settings)
        stack.callback(kairos.close)

        raw = phase_raw_baseline(env)  # before the API process exists: a quiet machine

        projector = stack.enter_context(child_process(run_projector, values))
        api = stack.enter_context(child_process(run_api, values, port))
        wait_http(f"http://127.0.0.1:{port}/healthz", api)
        b = Bench(
            kairos=kairos,
            database_url=database_url,
            port=port,
            writer=make_account(kairos, f"http://127.0.0.1:{port}", "writer"),
            reader=make_account(kairos, f"http://127.0.0.1:{port}", "reader"),
            cpu=CpuMeter(api.pid, projector.pid, database_url),
            raw=raw,
        )
        b.row("raw app.save() (1 thread)", f"{raw.per_second:,.0f} saves/s", "baseline", None)
        phase_calibrate(b)
        phase_census(b, env)
        phase_service(b)
        phase_seed(b)
        phase_post_closed(b)
        phase_post_open(b)
        phase_get(b)
        phase_lag(b)
        print_summary(b.rows, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
