"""Crash safety, the proof: workers SIGKILLed at random moments and a Redis that loses every
message still publish each post exactly once per account, and none is left behind.

Real ``kairos worker`` processes consume from Redis; the dispatcher runs in this process (a
``workers.runtime.Pipeline`` with only its dispatcher started). Leases are a few seconds, so
the recovery paths (an attempt whose worker died, a message that never arrived) settle
within the test. X's own duplicate-content guard is switched off in the simulator while
these tests run: "no duplicates" must be Kairos's doing, not the platform's.

The session ``pipeline`` fixture is not used: its in-process workers would compete with the
processes under test. The workers here use a Redis database of their own, so workers of
other sessions on the same Redis server cannot take their messages (the flush test's
FLUSHALL still empties the whole server, as a Redis losing its data would).

Each account gets fewer than 100 tweets in all: ``PublishingService._find`` settles an
attempt by reading a single page of 100 posts from the account's timeline, so a post that
landed before 100 newer ones is not found and is posted again. More posts per account make
the first test fail on that limit, which is outside what these tests set out to prove.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import redis

from interfaces.local import sandbox_platform_settings
from tests.conftest import TEST_SECRET, Account, unique

REPO = Path(__file__).resolve().parents[2]
TERMINAL = {"published", "failed", "partial"}
LEASE = timedelta(seconds=3)
QUEUE_KEYS = ("dramatiq:publish", "dramatiq:deliver")  # starts, and deliveries
PAGE = 100
"""Posts per timeline page that ``PublishingService._find`` reads when settling an attempt."""


# ---- the processes under test ------------------------------------------------------------


def private_redis(url: str) -> str:
    """``url`` on a Redis database (1-15) of its own, away from other sessions' workers."""
    parts = urlsplit(url)
    db = str(random.randint(1, 15))
    if parts.scheme == "unix":
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"] + [("db", db)]
        # Not urlunsplit: with no host it writes "unix:/path", which redis-py refuses.
        return f"unix://{parts.path}?{urlencode(query)}"
    return urlunsplit(parts._replace(path=f"/{db}"))


class Workers:
    """``kairos worker`` subprocesses: started, SIGKILLed, replaced, and always reaped."""

    def __init__(self, env: dict[str, str], logs: Path, threads: int = 8) -> None:
        self.env = env
        self.logs = logs
        self.threads = threads
        self.running: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.started = 0
        self.kills_of_ready = 0
        self.killed_at: list[datetime] = []
        self.died: list[str] = []
        self._lock = threading.Lock()
        self._files: list[IO[bytes]] = []

    def spawn(self) -> None:
        with self._lock:
            self.started += 1
            log = self.logs / f"worker-{self.started}.log"
            out = log.open("wb")
            self._files.append(out)
            process = subprocess.Popen(
                [sys.executable, "-m", "interfaces", "worker", "--threads", str(self.threads)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=REPO,
            )
            self.running.append((process, log))

    @staticmethod
    def ready(log: Path) -> bool:
        return b"worker running" in log.read_bytes()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = [(p, log) for p, log in self.running if not self.ready(log)]
            if not pending:
                return
            for process, log in pending:
                if process.poll() is not None:
                    raise AssertionError(f"a worker exited at start:\n{self.output(log)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"workers not ready after {timeout}s:\n{self.tails()}")
            time.sleep(0.1)

    def kill_one(self) -> None:
        """SIGKILL a random worker (one that is consuming, if any is) and start another."""
        with self._lock:
            ready = [(p, log) for p, log in self.running if self.ready(log)]
            victim = random.choice(ready or self.running)
            os.kill(victim[0].pid, signal.SIGKILL)
            victim[0].wait()
            self.running.remove(victim)
            self.killed_at.append(datetime.now(UTC))
            self.kills_of_ready += bool(ready)
        self.spawn()

    @property
    def kills(self) -> int:
        return len(self.killed_at)

    def reap(self) -> None:
        """Replace workers that exited on their own (as a supervisor would), noting why."""
        with self._lock:
            dead = [(p, log) for p, log in self.running if p.poll() is not None]
            for victim in dead:
                self.running.remove(victim)
                self.died.append(self.cause(victim[1]))
        for _ in dead:
            self.spawn()

    def stop(self) -> None:
        with self._lock:
            for process, _ in self.running:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            for process, _ in self.running:
                process.wait(timeout=30)
            self.running = []
            for out in self._files:
                out.close()

    @staticmethod
    def output(log: Path, lines: int = 30) -> str:
        """The end of a worker's output: where a traceback says what killed it."""
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {log.name} ---\n" + "\n".join(tail)

    @staticmethod
    def cause(log: Path) -> str:
        """The error a worker died of: what follows its traceback, and where the rest is."""
        lines = log.read_text(errors="replace").splitlines()
        ends = [n for n, line in enumerate(lines) if line.startswith("╰")]
        error = lines[ends[-1] + 1 :] if ends else lines[-5:]
        return f"{log}: " + " ".join(line.strip() for line in error)

    def tails(self) -> str:
        return "\n".join(self.output(log) for _, log in self.running)


class Killer(threading.Thread):
    """SIGKILLs a random worker every 0.5-2 s and starts a replacement, for ``seconds``."""

    def __init__(self, workers: Workers, seconds: float) -> None:
        super().__init__(name="killer", daemon=True)
        self.workers = workers
        self.seconds = seconds
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            deadline = time.monotonic() + self.seconds
            while not self._stop_event.wait(random.uniform(0.5, 2.0)):
                if time.monotonic() > deadline:
                    return
                self.workers.reap()
                self.workers.kill_one()
        except BaseException as exc:  # reported by the test, never lost in a thread
            self.error = exc

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=30)


@pytest.fixture
def queue(redis_url: str) -> Iterator[str]:
    """The workers' Redis URL: a database of their own, emptied afterwards."""
    url = private_redis(redis_url)
    yield url
    with redis.Redis.from_url(url) as server:
        server.flushdb()


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Callable[[str], None]:
    """Write a summary line to the terminal, even while pytest captures the output."""

    def write(line: str) -> None:
        with capsys.disabled():
            sys.stdout.write(f"\n{line}\n")

    return write


@pytest.fixture
def worker_env(kairos: Any, database_url: str, sandbox_url: str) -> Callable[[str], dict[str, str]]:
    def env(redis_url: str) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("KAIROS_")}
        return {
            **inherited,
            "PYTHONUNBUFFERED": "1",
            "KAIROS_ENVIRONMENT": "test",
            "KAIROS_DATABASE_URL": database_url,
            "KAIROS_REDIS_URL": redis_url,
            "KAIROS_SECRET_KEY": TEST_SECRET,
            "KAIROS_VAULT_KEYS": kairos.settings.vault_keys.get_secret_value(),
            **{
                f"KAIROS_{name.upper()}": value
                for name, value in sandbox_platform_settings(sandbox_url).items()
            },
            # ISO 8601 durations: pydantic refuses a bare "3" read from the environment.
            "KAIROS_DELIVERY_LEASE": "PT3S",
            "KAIROS_DISPATCH_LEASE": "PT3S",
            "KAIROS_SETTLE_AFTER": "PT0.3S",
            "KAIROS_RETRY_FIRST_BACKOFF": "PT0.5S",
            "KAIROS_RETRY_MAX_BACKOFF": "PT2S",
            "KAIROS_MAX_ATTEMPTS": "20",
            # The files of posts with media: the same local store the API signs URLs for.
            "KAIROS_MEDIA_DIR": str(kairos.settings.media_dir),
            "KAIROS_PUBLIC_BASE_URL": kairos.settings.public_base_url,
        }

    return env


@pytest.fixture
def dispatcher(kairos: Any) -> Iterator[Callable[[str], Any]]:
    """Start the due-work dispatcher in this process (no workers), stopped at the end."""
    from workers.runtime import Pipeline

    started: list[Pipeline] = []

    def start(redis_url: str) -> Pipeline:
        pipeline = Pipeline(kairos.publishing, kairos.datastore, redis_url, lease=LEASE)
        pipeline.start_dispatcher()
        started.append(pipeline)
        return pipeline

    yield start
    for pipeline in started:
        pipeline.stop()


@pytest.fixture
def sandbox(sandbox_url: str) -> Iterator[Callable[..., None]]:
    """Set simulator faults and config; everything is put back afterwards."""
    admin = f"{sandbox_url}/x/_sandbox"
    faults = httpx.get(f"{admin}/faults").json()
    config = httpx.get(f"{admin}/config").json()

    changed: set[str] = set()

    def configure(**values: Any) -> None:
        fault_keys = {k: v for k, v in values.items() if k in faults}
        config_keys = {k: v for k, v in values.items() if k not in faults}
        changed.update(config_keys)
        if fault_keys:
            httpx.post(f"{admin}/faults", json=fault_keys).raise_for_status()
        if config_keys:
            httpx.post(f"{admin}/config", json=config_keys).raise_for_status()

    yield configure
    httpx.post(f"{admin}/faults", json=faults).raise_for_status()
    if changed:
        restore = {key: config[key] for key in changed}
        httpx.post(f"{admin}/config", json=restore).raise_for_status()


# ---- posts and what the platform received -------------------------------------------------


def create_posts(
    account: Account, account_ids: list[str], count: int, *, threads_every: int, lead: float
) -> dict[str, dict[str, Any]]:
    """``count`` posts with unique texts, each due ``lead`` seconds after its creation, each
    to the one or two accounts with the fewest tweets planned so far."""
    tag = secrets.token_hex(3)
    planned = Counter(dict.fromkeys(account_ids, 0))
    plan: list[tuple[list[str], list[str]]] = []
    for n in range(count):
        length = 3 if n % threads_every == 0 else 1
        targets = sorted(account_ids, key=lambda a: (planned[a], random.random()))
        targets = targets[: random.randint(1, 2)]
        planned.update(dict.fromkeys(targets, length))
        plan.append(([f"crash {tag} post {n} part {i}" for i in range(length)], targets))
    # Settling an attempt reads one page (100 posts) of the account's timeline: a post with
    # more than that after it is out of the protocol's reach (see the module docstring).
    assert max(planned.values()) < PAGE, f"more than {PAGE - 1} tweets per account: {planned}"
    created: dict[str, dict[str, Any]] = {}
    for parts, targets in plan:
        due = datetime.now(UTC) + timedelta(seconds=lead)
        response = account.http.post(
            "/api/posts",
            json={
                "content": parts[0],
                "thread": parts[1:],
                "accountIds": targets,
                "scheduledAt": due.isoformat(),
            },
        )
        assert response.status_code == 201, response.text
        post = response.json()["post"]
        created[post["id"]] = post
    return created


def statuses(account: Account) -> dict[str, dict[str, Any]]:
    posts: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = account.http.get("/api/posts", params=params).json()
        posts.update({p["id"]: p for p in page["posts"]})
        cursor = page.get("nextCursor")
        if not cursor:
            return posts


def wait_until_terminal(
    account: Account, ids: set[str], timeout: float, on_tick: Callable[[], None] = lambda: None
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        posts = statuses(account)
        if all(posts[i]["status"] in TERMINAL for i in ids) or time.monotonic() > deadline:
            return {i: posts[i] for i in ids}
        on_tick()
        time.sleep(0.5)


def describe_stuck(posts: dict[str, dict[str, Any]], database_url: str) -> str:
    stuck = {i: p for i, p in posts.items() if p["status"] not in TERMINAL}
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT subject_id::text, kind, key, due_at, claimed_until, dispatches, now() "
            "FROM due_work WHERE subject_id = ANY(%s::uuid[])",
            (list(stuck),),
        ).fetchall()
    due = defaultdict(list)
    for row in rows:
        due[row[0]].append(row[1:])
    lines = [
        f"{i} {p['status']} due_work={due.get(i)} results="
        + str([(r["status"], r["attempts"], r["error"]) for r in p["results"]])
        for i, p in list(stuck.items())[:20]
    ]
    return f"{len(stuck)} posts not terminal:\n" + "\n".join(lines)


def sandbox_tweets(sandbox_url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{sandbox_url}/x/_sandbox/tweets", timeout=30).json()
    return body


def check_exactly_once(
    account: Account, posts: dict[str, dict[str, Any]], authors: dict[str, str], sandbox_url: str
) -> tuple[int, int]:
    """Every part on every account once, chained as a thread; nothing else on those accounts.

    ``authors`` maps integration ids to sandbox user ids. Returns the tweets on those
    accounts and the simulator's count of duplicated texts (all accounts, whole session).
    """
    posted = sandbox_tweets(sandbox_url)
    ours = [t for t in posted["data"] if t["author_id"] in set(authors.values())]
    by_text: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for tweet in ours:
        by_text[(tweet["author_id"], tweet["text"])].append(tweet)
    problems: list[str] = []
    expected = 0
    for post in posts.values():
        if post["status"] != "published":
            continue
        parts = [post["content"], *post["thread"]]
        results = {r["accountId"]: r for r in post["results"]}
        for account_id in post["accountIds"]:
            found = [by_text.get((authors[account_id], text), []) for text in parts]
            expected += len(parts)
            chain = [copies[0] for copies in found if copies]
            replies = [t["in_reply_to"] for t in chain]
            wrong = None
            if any(len(copies) != 1 for copies in found):
                wrong = f"copies per part {[len(copies) for copies in found]}"
            elif replies != [None, *(t["id"] for t in chain[:-1])]:
                wrong = f"not chained: {replies}"
            elif results[account_id]["remoteId"] != chain[0]["id"]:
                wrong = "the result is not the first part"
            if wrong is not None:
                problems.append(f"post {post['id']} on {account_id}: {wrong}")
                if len(problems) <= 3:
                    problems.append(explain(account, post["id"], account_id, found))
    assert not problems, "deliveries wrong:\n" + "\n".join(problems[:40])
    assert len(ours) == expected, f"{len(ours)} tweets on the accounts, {expected} expected"
    return len(ours), int(posted["duplicates"])


def explain(
    account: Account, post_id: str, account_id: str, found: list[list[dict[str, Any]]]
) -> str:
    """The delivery's events and the tweets it left, to tell how a duplicate came about."""
    events = account.http.get(f"/api/posts/{post_id}/history").json()["events"]
    keys = ("attempt", "leaseUntil", "lease_until", "index", "remoteId", "remote_id", "reason")
    lines = [
        f"    {e['timestamp']} {e['type']} "
        + str({k: v for k, v in e["data"].items() if k in keys})
        for e in events
        if e["data"].get("accountId", e["data"].get("account_id")) in (account_id, None)
    ]
    lines += [
        f"    tweet part {n}: {t['id']} at {t['created_at']} replying to {t['in_reply_to']}"
        for n, copies in enumerate(found)
        for t in copies
    ]
    return "\n".join(lines)


def connect(account: Account, sandbox_url: str, count: int) -> dict[str, str]:
    """Connect ``count`` fresh sandbox X accounts: integration id -> sandbox user id."""
    authors = {}
    for n in range(count):
        username = unique(f"crash{n}")
        integration = account.connect_x(username)
        user = httpx.get(f"{sandbox_url}/x/_sandbox/users/{username}").json()
        authors[integration["id"]] = user["id"]
    return authors


def summary(posts: dict[str, dict[str, Any]]) -> Counter[str]:
    return Counter(p["status"] for p in posts.values())


def publishing_window(posts: dict[str, dict[str, Any]]) -> tuple[datetime, datetime]:
    """From the first post's time to the last account's publication."""
    first = min(datetime.fromisoformat(p["scheduledAt"]) for p in posts.values())
    published = [r["publishedAt"] for p in posts.values() for r in p["results"] if r["publishedAt"]]
    return first, max(map(datetime.fromisoformat, published), default=first)


def lateness(posts: dict[str, dict[str, Any]]) -> str:
    """How long after its time each account got its post: median, 95th percentile, max."""
    late = sorted(
        (
            datetime.fromisoformat(r["publishedAt"]) - datetime.fromisoformat(p["scheduledAt"])
        ).total_seconds()
        for p in posts.values()
        for r in p["results"]
        if r["publishedAt"]
    )
    if not late:
        return "none published"

    def pick(quantile: float) -> float:
        return late[min(len(late) - 1, int(quantile * len(late)))]

    return f"late by {pick(0.5):.1f}s median, {pick(0.95):.1f}s p95, {late[-1]:.1f}s max"


# ---- the proofs ---------------------------------------------------------------------------

POSTS = 210
ACCOUNTS = 6
KILL_FOR = 20.0
SETTLE_TIMEOUT = 180.0


def test_workers_sigkilled_at_random_moments_publish_every_post_exactly_once(
    account: Account,
    sandbox_url: str,
    database_url: str,
    queue: str,
    worker_env: Callable[[str], dict[str, str]],
    dispatcher: Callable[[str], Any],
    sandbox: Callable[..., None],
    report: Callable[[str], None],
    tmp_path: Path,
) -> None:
    began = time.monotonic()
    sandbox(latency_ms=150, duplicate_check=False, tweets_per_15min=100_000)
    authors = connect(account, sandbox_url, ACCOUNTS)
    duplicates_before = sandbox_tweets(sandbox_url)["duplicates"]
    workers = Workers(worker_env(queue), tmp_path)
    killer = Killer(workers, KILL_FOR)
    try:
        for _ in range(3):
            workers.spawn()
        workers.wait_ready()
        pipeline = dispatcher(queue)
        killer.start()
        created = create_posts(account, list(authors), POSTS, threads_every=3, lead=2.0)
        created_in = time.monotonic() - began
        killer.join(timeout=KILL_FOR + 60)
        assert killer.error is None, f"the killer failed: {killer.error!r}"
        posts = wait_until_terminal(account, set(created), SETTLE_TIMEOUT, on_tick=workers.reap)
        elapsed = time.monotonic() - began
        counts = summary(posts)
        start, end = publishing_window(posts)
        during = sum(start <= moment <= end for moment in workers.killed_at)
        report(
            f"crash safety: {len(posts)} posts {dict(counts)} in {elapsed:.1f}s "
            f"(created by {created_in:.1f}s); "
            f"{workers.kills} SIGKILLs ({workers.kills_of_ready} of consuming workers, {during} "
            f"while posts were publishing), {workers.started} workers started; "
            f"{pipeline.dispatcher.dispatched} messages dispatched; {lateness(posts)}"
        )
        assert all(p["status"] in TERMINAL for p in posts.values()), describe_stuck(
            posts, database_url
        )
        tweets, duplicates = check_exactly_once(account, posts, authors, sandbox_url)
        new = duplicates - duplicates_before
        assert new == 0, f"the platform now holds {new} more duplicated texts"
        failed = {i: p["results"] for i, p in posts.items() if p["status"] != "published"}
        # No fault makes the platform refuse anything here: every post must get through.
        assert not failed, f"{len(failed)} posts not published: {list(failed.items())[:10]}"
        assert during >= 5, f"only {during} of {workers.kills} kills hit the publishing"
        report(f"crash safety: {tweets} tweets, each exactly once")
        workers.reap()
        # Replacements start while others publish: each must come up (a supervisor would
        # restart one that died, but one dying at start under load is a defect).
        assert not workers.died, "workers died on their own:\n" + "\n".join(workers.died)
    finally:
        killer.stop()
        workers.stop()


def test_a_redis_flush_mid_run_loses_no_post(
    account: Account,
    sandbox_url: str,
    database_url: str,
    queue: str,
    worker_env: Callable[[str], dict[str, str]],
    dispatcher: Callable[[str], Any],
    sandbox: Callable[..., None],
    report: Callable[[str], None],
    tmp_path: Path,
) -> None:
    began = time.monotonic()
    sandbox(latency_ms=150, duplicate_check=False, tweets_per_15min=100_000)
    authors = connect(account, sandbox_url, 2)
    duplicates_before = sandbox_tweets(sandbox_url)["duplicates"]
    workers = Workers(worker_env(queue), tmp_path)
    try:
        for _ in range(2):
            workers.spawn()
        workers.wait_ready()
        pipeline = dispatcher(queue)
        created = create_posts(account, list(authors), 50, threads_every=3, lead=3.0)
        due = max(datetime.fromisoformat(p["scheduledAt"]) for p in created.values())
        first_due = min(datetime.fromisoformat(p["scheduledAt"]) for p in created.values())
        lost = []
        with redis.Redis.from_url(queue) as server:
            for at in (first_due + timedelta(seconds=0.3), due + timedelta(seconds=0.3)):
                time.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()))
                # Count the messages waiting in the queue and flush everything, atomically.
                transaction = server.pipeline(transaction=True)
                for key in QUEUE_KEYS:
                    transaction.llen(key)
                transaction.flushall()
                *queued, _ = transaction.execute()
                lost.append(sum(queued))
        posts = wait_until_terminal(account, set(created), 60, on_tick=workers.reap)
        counts = summary(posts)
        report(
            f"redis flush: {len(posts)} posts {dict(counts)} in {time.monotonic() - began:.1f}s;"
            f" messages flushed {lost}; {pipeline.dispatcher.dispatched} dispatched; "
            f"{lateness(posts)}"
        )
        assert all(p["status"] in TERMINAL for p in posts.values()), describe_stuck(
            posts, database_url
        )
        assert sum(lost) > 0, "no message was waiting when Redis was flushed: nothing proven"
        assert counts == {"published": len(created)}, counts
        tweets, duplicates = check_exactly_once(account, posts, authors, sandbox_url)
        new = duplicates - duplicates_before
        assert new == 0, f"the platform now holds {new} more duplicated texts"
        report(f"redis flush: {tweets} tweets, each exactly once")
        workers.reap()
        assert not workers.died, "workers died on their own:\n" + "\n".join(workers.died)
    finally:
        workers.stop()


# ---- Instagram and TikTok: staged deliveries ----------------------------------------------

STAGED_POSTS = 36


@pytest.fixture
def staged_sandbox(sandbox_url: str) -> Iterator[Callable[[str, str, dict[str, Any]], None]]:
    """Set an Instagram or TikTok simulator's ``config`` or ``faults``; every change is
    put back after."""
    saved: dict[str, dict[str, Any]] = {}

    def configure(platform: str, kind: str, values: dict[str, Any]) -> None:
        url = f"{sandbox_url}/{platform}/_sandbox/{kind}"
        before = httpx.get(url).json()
        saved.setdefault(url, {k: before[k] for k in values})
        httpx.post(url, json=values).raise_for_status()

    yield configure
    for url, values in saved.items():
        httpx.post(url, json=values).raise_for_status()


def test_workers_sigkilled_mid_instagram_and_tiktok_deliveries_publish_each_once(
    account: Account,
    sandbox_url: str,
    database_url: str,
    queue: str,
    worker_env: Callable[[str], dict[str, str]],
    dispatcher: Callable[[str], Any],
    staged_sandbox: Callable[[str, str, dict[str, Any]], None],
    report: Callable[[str], None],
    tmp_path: Path,
) -> None:
    """Kills land between container creation and publish (Instagram processes each video
    for a second and answers slowly) and between upload and status (TikTok processes for a
    second): every post is published once per account, and nothing is lost."""
    from sandbox.samples import mp4_bytes
    from tests.integration.api.test_media import upload

    began = time.monotonic()
    staged_sandbox("instagram", "config", {"video_processing_secs": 1.0, "quota_total": 1000})
    staged_sandbox("instagram", "faults", {"latency_ms": 150})
    staged_sandbox(
        "tiktok",
        "config",
        {
            "processing_secs": 1.0,
            "moderation_secs": 0.5,
            "init_per_min": 10_000,
            "creator_info_per_min": 10_000,
            "status_per_min": 10_000,
            "daily_post_cap": 10_000,
            "latency_ms": 150,
        },
    )
    names = {
        account.connect_instagram(unique("igk0"))["id"]: ("instagram", 0),
        account.connect_instagram(unique("igk1"))["id"]: ("instagram", 1),
        account.connect_tiktok(unique("ttk0"))["id"]: ("tiktok", 0),
        account.connect_tiktok(unique("ttk1"))["id"]: ("tiktok", 1),
    }
    facebook_user = unique("fbk")
    page = account.connect_instagram_facebook(facebook_user, f"{facebook_user}_shop")
    names[page["id"]] = ("instagram", 2)
    usernames = {
        i["id"]: i["accountName"]
        for i in account.http.get("/api/integrations").json()["integrations"]
    }
    clip = upload(account, mp4_bytes(1280, 720, 4_000), "video/mp4", "crash.mp4")
    workers = Workers(worker_env(queue), tmp_path)
    killer = Killer(workers, KILL_FOR)
    try:
        for _ in range(3):
            workers.spawn()
        workers.wait_ready()
        dispatched = dispatcher(queue)
        killer.start()
        tag = secrets.token_hex(3)
        created: dict[str, dict[str, Any]] = {}
        for n in range(STAGED_POSTS):
            targets = random.sample(sorted(names), random.randint(1, 2))
            response = account.http.post(
                "/api/posts",
                json={
                    "content": f"staged crash {tag} post {n}",
                    "accountIds": targets,
                    "mediaUrls": [clip],
                    "scheduledAt": (datetime.now(UTC) + timedelta(seconds=2)).isoformat(),
                },
            )
            assert response.status_code == 201, response.text
            created[response.json()["post"]["id"]] = response.json()["post"]
            time.sleep(KILL_FOR / STAGED_POSTS / 2)
        killer.join(timeout=KILL_FOR + 60)
        assert killer.error is None, f"the killer failed: {killer.error!r}"
        posts = wait_until_terminal(account, set(created), 240, on_tick=workers.reap)
        counts = summary(posts)
        report(
            f"staged crash safety: {len(posts)} posts {dict(counts)} in "
            f"{time.monotonic() - began:.1f}s; {workers.kills} SIGKILLs "
            f"({workers.kills_of_ready} of consuming workers); "
            f"{dispatched.dispatcher.dispatched} messages dispatched; {lateness(posts)}"
        )
        assert all(p["status"] in TERMINAL for p in posts.values()), describe_stuck(
            posts, database_url
        )
        failed = {i: p["results"] for i, p in posts.items() if p["status"] != "published"}
        assert not failed, f"{len(failed)} posts not published: {list(failed.items())[:5]}"
        media = httpx.get(f"{sandbox_url}/instagram/_sandbox/media").json()["data"]
        videos = httpx.get(f"{sandbox_url}/tiktok/_sandbox/videos").json()["data"]
        on_platform: Counter[tuple[str, str]] = Counter()
        for item in media:
            on_platform[(item["username"], item["caption"])] += 1
        for item in videos:
            on_platform[(item["username"], item["title"])] += 1
        expected = Counter(
            (usernames[account_id], post["content"])
            for post in posts.values()
            for account_id in post["accountIds"]
        )
        ours = Counter({key: n for key, n in on_platform.items() if tag in key[1]})
        assert ours == expected, {
            "duplicated": {k: n for k, n in ours.items() if n > 1},
            "missing": [k for k in expected if k not in ours],
        }
        checkpoints = sum(
            e["type"] == "AccountPublishCheckpointed"
            for post_id in posts
            for e in account.http.get(f"/api/posts/{post_id}/history").json()["events"]
        )
        report(
            f"staged crash safety: {sum(expected.values())} deliveries (Instagram reels and "
            f"TikTok videos), each exactly once; {checkpoints} checkpoints recorded"
        )
        workers.reap()
        assert not workers.died, "workers died on their own:\n" + "\n".join(workers.died)
    finally:
        killer.stop()
        workers.stop()
