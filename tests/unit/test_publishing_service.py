"""``PublishingService`` over in-memory fakes: the event store (POPO), a scripted platform, the
credential vault, the refresh locks, the late-publishing setting and the clock.

Each scenario drives ``start`` and ``deliver`` the way the workers do and checks both what the
platform saw (every call, in order) and what the event store recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Aggregate

from application.app import KairosApplication
from application.credentials import AccessTokens
from application.due import DueChange, WorkKind
from application.media import MediaChanged
from application.platforms import (
    AccountProfile,
    AuthorizationExpired,
    ContentRejected,
    DuplicateContent,
    MediaPayload,
    OAuthExchangeFailed,
    PlatformError,
    RateLimited,
    RemotePost,
    TimelinePost,
    TokenSet,
    TransientPlatformError,
    UploadedMedia,
)
from application.publishing import PublishingPolicy, PublishingService
from domain.integration import Integration, IntegrationStatus
from domain.post import DeliveryStatus, Post, PostStatus

ORG = UUID("00000000-0000-4000-8000-000000000001")
AUTHOR = UUID("00000000-0000-4000-8000-000000000002")
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
"""Every post is scheduled for T0 and the clock starts there."""
LEASE = timedelta(minutes=2)
SETTLE = timedelta(seconds=5)
FIRST_BACKOFF = timedelta(seconds=30)
LOST_MESSAGE = "connection reset before the response arrived"


# --- the fakes ---------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class WorkerCrashed(Exception):
    """Raised by the fake platform to stop the worker dead, as a killed process would."""


LOST = "lost"
"""Script step: the post lands, then the answer is lost (TransientPlatformError)."""
CRASH_AFTER = "crash-after"
"""Script step: the post lands, then the worker dies."""
CRASH_BEFORE = "crash-before"
"""Script step: the worker dies before the platform gets the request."""


@dataclass
class During:
    """Script step: run ``hook`` while the request is in flight, then answer with ``then``."""

    hook: Callable[[], None]
    then: Step = "ok"


Step = str | PlatformError | During


@dataclass(frozen=True)
class Landed:
    remote_id: str
    user_id: str
    text: str
    in_reply_to: str | None
    created_at: datetime
    media_ids: tuple[str, ...] = ()


@dataclass
class FakePlatform:
    """One platform holding every account's timeline. ``script`` answers ``create_post`` calls
    in order ("ok" once it runs out); ``calls`` logs every call the service made."""

    clock: Clock
    provider: str = "twitter"
    script: list[Step] = field(default_factory=list)
    users_by_token: dict[str, str] = field(default_factory=dict)
    refreshes: dict[str, TokenSet | PlatformError] = field(default_factory=dict)
    landed: list[Landed] = field(default_factory=list)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    upload_script: list[Step] = field(default_factory=list)
    uploads: list[tuple[str, str]] = field(default_factory=list)
    """(media id, content type) of every upload that reached the platform."""
    attached: list[tuple[str, ...]] = field(default_factory=list)
    """The media ids each successful create attached."""

    def capabilities(self) -> tuple[str, ...]:
        return ("text", "threads")

    def authorization_url(self, *, state: str, code_challenge: str, redirect_uri: str) -> str:
        raise AssertionError("publishing never authorizes")

    def exchange_code(self, *, code: str, code_verifier: str, redirect_uri: str) -> TokenSet:
        raise AssertionError("publishing never exchanges codes")

    def fetch_profile(self, access_token: str) -> AccountProfile:
        raise AssertionError("publishing never fetches profiles")

    def refresh(self, refresh_token: str) -> TokenSet:
        self.calls.append(("refresh", refresh_token))
        outcome = self.refreshes[refresh_token]
        if isinstance(outcome, PlatformError):
            raise outcome
        return outcome

    def upload_media(self, access_token: str, media: MediaPayload) -> UploadedMedia:
        self.calls.append(("upload", access_token, media.content_type))
        step = self.upload_script.pop(0) if self.upload_script else "ok"
        if isinstance(step, During):
            step.hook()
            step = step.then
        if isinstance(step, PlatformError):
            raise step
        if step == CRASH_BEFORE:
            raise WorkerCrashed
        body = b"".join(media.chunks(1024))
        assert len(body) == media.size
        media_id = f"m{len(self.uploads) + 1}"
        self.uploads.append((media_id, media.content_type))
        if step == CRASH_AFTER:
            raise WorkerCrashed
        return UploadedMedia(media_id, self.clock() + MEDIA_LIFETIME)

    def create_post(
        self,
        access_token: str,
        *,
        text: str,
        in_reply_to: str | None = None,
        media_ids: Sequence[str] = (),
    ) -> RemotePost:
        self.calls.append(("create", access_token, text, in_reply_to))
        user_id = self.users_by_token.get(access_token)
        if user_id is None:
            raise AuthorizationExpired("invalid or revoked token", status=401)
        step = self.script.pop(0) if self.script else "ok"
        if isinstance(step, During):
            step.hook()
            step = step.then
        if isinstance(step, PlatformError):
            raise step
        if step == CRASH_BEFORE:
            raise WorkerCrashed
        remote_id = str(len(self.landed) + 1)
        self.landed.append(
            Landed(remote_id, user_id, text, in_reply_to, self.clock(), tuple(media_ids))
        )
        if step == LOST:
            raise TransientPlatformError(LOST_MESSAGE)
        if step == CRASH_AFTER:
            raise WorkerCrashed
        assert step == "ok", step
        self.attached.append(tuple(media_ids))
        return RemotePost(remote_id=remote_id, url=self.post_url(remote_id))

    def post_url(self, remote_id: str) -> str:
        return f"https://x.test/status/{remote_id}"

    def recent_posts(
        self,
        access_token: str,
        *,
        user_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
        max_results: int = 10,
    ) -> list[TimelinePost]:
        # The window is not applied: these scenarios are about whether Kairos looks at all.
        self.calls.append(("recent", access_token, user_id, since))
        mine = [p for p in reversed(self.landed) if p.user_id == user_id]
        return [
            TimelinePost(p.remote_id, p.text, p.created_at, self.post_url(p.remote_id), p.media_ids)
            for p in mine[:max_results]
        ]

    def created(self) -> list[tuple[str, str, str | None]]:
        """The create_post calls as (token, text, in_reply_to)."""
        return [call[1:] for call in self.calls if call[0] == "create"]

    def copies_of(self, text: str) -> int:
        return sum(p.text == text for p in self.landed)


class FakeVault:
    def __init__(self) -> None:
        self.tokens: dict[UUID, TokenSet] = {}
        self.replaced: list[tuple[UUID, TokenSet]] = []

    def read(self, credential_id: UUID) -> TokenSet:
        return self.tokens[credential_id]

    def replace(self, credential_id: UUID, tokens: TokenSet) -> None:
        self.tokens[credential_id] = tokens
        self.replaced.append((credential_id, tokens))


class FakeLocks:
    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self.taken: list[str] = []

    @contextmanager
    def exclusive(self, key: str) -> Iterator[None]:
        lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            self.taken.append(key)
            yield


class FakeLatePublishing:
    def __init__(self) -> None:
        self.organizations: set[UUID] = set()
        self.quota_waiters: set[UUID] = set()
        self.asked: list[UUID] = []

    def publishes_late(self, organization_id: UUID) -> bool:
        self.asked.append(organization_id)
        return organization_id in self.organizations

    def delays_on_quota(self, organization_id: UUID) -> bool:
        return organization_id in self.quota_waiters


MEDIA_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True)
class FakeMedia:
    content_type: str
    size: int
    url: str = ""
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        yield from (
            b"\0" * min(chunk_size, self.size - at) for at in range(0, self.size, chunk_size)
        )


class FakeMediaLibrary:
    """Every URL is a stored file whose type follows its extension; ``missing`` ones are
    gone from storage."""

    def __init__(self) -> None:
        self.missing: set[str] = set()

    def payloads(self, organization_id: UUID, urls: Sequence[str]) -> list[FakeMedia]:
        for url in urls:
            if url in self.missing:
                raise MediaChanged(f"{url} was deleted after the post was scheduled")
        return [
            FakeMedia("video/mp4" if url.endswith(".mp4") else "image/jpeg", 3000) for url in urls
        ]


class World:
    def __init__(self, policy: PublishingPolicy | None = None) -> None:
        self.clock = Clock(T0)
        self.app = KairosApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        self.x = FakePlatform(self.clock)
        adapters = {"twitter": self.x}
        self.vault = FakeVault()
        self.locks = FakeLocks()
        self.late = FakeLatePublishing()
        self.media = FakeMediaLibrary()
        tokens = AccessTokens(self.app, adapters, self.vault, self.locks, self.clock)
        self.service = PublishingService(
            self.app,
            adapters,
            tokens,
            self.late,
            self.clock,
            policy or PublishingPolicy(),
            self.media,
        )

    # --- given ---

    def connect(
        self, name: str, *, expires_at: datetime | None = None, refresh_token: str | None = None
    ) -> str:
        """Connect an X account; returns its account id as posts know it."""
        credential_id = uuid4()
        integration = Integration.connect(
            organization_id=ORG,
            provider="twitter",
            external_account_id=f"ext-{name}",
            account_name=name,
            display_name=name.title(),
            avatar_url=None,
            credential_id=credential_id,
            token_expires_at=expires_at,
            scopes=["tweet.write"],
            capabilities=["text", "threads"],
        )
        self.app.save_all(integration)
        self.vault.tokens[credential_id] = TokenSet(f"token-{name}", refresh_token, expires_at)
        self.x.users_by_token[f"token-{name}"] = f"ext-{name}"
        return str(integration.id)

    def schedule(
        self,
        *account_ids: str,
        content: str = "hello",
        thread: tuple[str, ...] = (),
        media: tuple[str, ...] = (),
    ) -> UUID:
        post = Post.draft(
            organization_id=ORG,
            author_id=AUTHOR,
            content=content,
            thread=list(thread),
            media_urls=list(media),
            accounts=dict.fromkeys(account_ids, "twitter"),
        )
        post.schedule(T0, now=T0 - timedelta(hours=1))
        self.app.save_all(post)
        return post.id

    def started(
        self,
        *account_ids: str,
        content: str = "hello",
        thread: tuple[str, ...] = (),
        media: tuple[str, ...] = (),
    ) -> UUID:
        """Publishing started, every delivery waiting for ``deliver`` (the fan-out path;
        ``start`` itself takes a single-account post straight through, tested below)."""
        post_id = self.schedule(*account_ids, content=content, thread=thread, media=media)
        post = self.post(post_id)
        post.start_publishing()
        self.app.save_all(post)
        assert self.post(post_id).status is PostStatus.PUBLISHING
        return post_id

    # --- then ---

    def post(self, post_id: UUID) -> Post:
        post = self.app.get_post(post_id)
        assert post is not None
        return post

    def integration(self, account_id: str) -> Integration:
        integration = self.app.get_integration(UUID(account_id))
        assert integration is not None
        return integration

    def events(self, aggregate_id: UUID, since: int = 0) -> list[Aggregate.Event]:
        """Stored events after version ``since``."""
        return [e for e in self.app.history(aggregate_id) if e.originator_version > since]

    def names(self, aggregate_id: UUID, since: int = 0) -> list[str]:
        return [type(e).__name__ for e in self.events(aggregate_id, since)]

    def deliver_when_due(self, post_id: UUID, account_id: str) -> None:
        """Move the clock to when the delivery comes due (as the dispatcher would), deliver."""
        due = self.post(post_id).deliveries[account_id].next_attempt_at
        if due is not None and due > self.clock():
            self.clock.now = due
        self.service.deliver(post_id, account_id)


@pytest.fixture(autouse=True)
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff jitter at its maximum (1.0), so retry times are exact: 30 s, 60 s, 120 s..."""
    monkeypatch.setattr("application.publishing._jitter", SimpleNamespace(random=lambda: 1.0))


@pytest.fixture
def world() -> World:
    return World()


def backoff(attempts: int) -> timedelta:
    return FIRST_BACKOFF * (1 << (attempts - 1))


# --- the store ---------------------------------------------------------------------------------


def test_saving_hands_the_due_changes_to_the_recorder_which_popo_ignores(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []
    insert_events = world.app.recorder.insert_events

    def spy(stored_events: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return insert_events(stored_events, **kwargs)

    monkeypatch.setattr(world.app.recorder, "insert_events", spy)
    alice = world.connect("alice")
    post_id = world.schedule(alice)

    connected = world.events(UUID(alice))[0].timestamp
    assert [kwargs.get("due_changes") for kwargs in seen] == [
        [  # a token that never expires: nothing to refresh, a check tomorrow
            DueChange(WorkKind.EXPIRY_WARNING, UUID(alice), "", None),
            DueChange(WorkKind.HEALTH_CHECK, UUID(alice), "", connected + timedelta(hours=24)),
            DueChange(WorkKind.REFRESH, UUID(alice), "", None),
        ],
        [DueChange(WorkKind.PUBLISH, post_id, "", T0)],
    ]
    assert world.names(post_id) == ["PostDrafted", "PostScheduled"]
    assert world.post(post_id).status is PostStatus.SCHEDULED


# --- the happy paths ---------------------------------------------------------------------------


def test_a_single_post_is_claimed_posted_checkpointed_and_published(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice)
    assert world.names(post_id) == ["PostDrafted", "PostScheduled", "PublishingStarted"]

    world.service.deliver(post_id, alice)

    assert world.x.calls == [("create", "token-alice", "hello", None)]
    assert world.names(post_id, since=3) == [
        "AccountPublishAttempted",
        "ThreadSegmentPosted",
        "AccountPublished",
        "PostPublished",
    ]
    claim = world.events(post_id, since=3)[0]
    assert vars(claim)["attempt"] == 1
    assert vars(claim)["attempt_key"] == f"{post_id}/{alice}/1"
    assert vars(claim)["lease_until"] == T0 + LEASE
    post = world.post(post_id)
    delivery = post.deliveries[alice]
    assert post.status is PostStatus.PUBLISHED
    assert delivery.status is DeliveryStatus.PUBLISHED
    assert delivery.attempts == 1
    assert delivery.remote_id == "1"
    assert delivery.url == "https://x.test/status/1"
    assert delivery.segments == ["1"]
    assert delivery.last_attempt_at == claim.timestamp


def test_a_thread_is_posted_part_by_part_each_replying_to_the_last(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice, content="one", thread=("two", "three"))

    world.service.deliver(post_id, alice)

    assert world.x.created() == [
        ("token-alice", "one", None),
        ("token-alice", "two", "1"),
        ("token-alice", "three", "2"),
    ]
    assert [(p.remote_id, p.in_reply_to) for p in world.x.landed] == [
        ("1", None),
        ("2", "1"),
        ("3", "2"),
    ]
    assert world.names(post_id, since=3) == [
        "AccountPublishAttempted",
        "ThreadSegmentPosted",
        "ThreadSegmentPosted",
        "ThreadSegmentPosted",
        "AccountPublished",
        "PostPublished",
    ]
    delivery = world.post(post_id).deliveries[alice]
    assert delivery.segments == ["1", "2", "3"]
    assert delivery.remote_id == "1"
    assert delivery.url == "https://x.test/status/1"
    assert world.post(post_id).status is PostStatus.PUBLISHED


def test_each_account_of_a_post_is_delivered_on_its_own(world: World) -> None:
    alice = world.connect("alice")
    bob = world.connect("bob")
    post_id = world.started(alice, bob)

    world.service.deliver(post_id, alice)
    assert world.post(post_id).status is PostStatus.PUBLISHING
    world.service.deliver(post_id, bob)

    assert world.x.created() == [("token-alice", "hello", None), ("token-bob", "hello", None)]
    post = world.post(post_id)
    assert post.status is PostStatus.PUBLISHED
    assert [post.deliveries[a].remote_id for a in (alice, bob)] == ["1", "2"]


# --- lost answers and crashes ---------------------------------------------------------------


def test_a_lost_answer_leaves_the_delivery_in_doubt(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice)
    world.x.script = [LOST]

    world.service.deliver(post_id, alice)

    assert world.x.copies_of("hello") == 1
    assert world.names(post_id, since=3) == ["AccountPublishAttempted", "AccountPublishInDoubt"]
    in_doubt = vars(world.events(post_id, since=4)[0])
    assert in_doubt["reason"] == f"no clear answer from the platform: {LOST_MESSAGE}"
    assert in_doubt["reconcile_at"] == T0 + SETTLE + backoff(1)
    post = world.post(post_id)
    assert post.status is PostStatus.PUBLISHING
    assert post.deliveries[alice].status is DeliveryStatus.IN_DOUBT
    assert post.deliveries[alice].next_attempt_at == T0 + SETTLE + backoff(1)


def test_an_in_doubt_post_that_landed_is_found_and_never_posted_again(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice)
    world.x.script = [LOST]
    world.service.deliver(post_id, alice)
    first_claim = world.post(post_id).deliveries[alice].last_attempt_at
    assert first_claim is not None

    world.deliver_when_due(post_id, alice)

    assert world.clock() == T0 + SETTLE + backoff(1)
    assert world.x.calls == [
        ("create", "token-alice", "hello", None),
        ("recent", "token-alice", "ext-alice", first_claim - timedelta(minutes=1)),
    ]
    assert world.x.copies_of("hello") == 1
    assert world.names(post_id, since=5) == [
        "AccountPublishAttempted",
        "ThreadSegmentPosted",
        "AccountPublished",
        "PostPublished",
    ]
    delivery = world.post(post_id).deliveries[alice]
    assert delivery.status is DeliveryStatus.PUBLISHED
    assert delivery.remote_id == "1"
    assert delivery.attempts == 2
    assert delivery.error_message is None


def test_an_in_doubt_post_that_did_not_land_is_posted_after_looking(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice)
    world.x.script = [TransientPlatformError("503 Service Unavailable", status=503)]
    world.service.deliver(post_id, alice)
    assert world.post(post_id).deliveries[alice].status is DeliveryStatus.IN_DOUBT

    world.deliver_when_due(post_id, alice)

    assert [call[0] for call in world.x.calls] == ["create", "recent", "create"]
    assert world.x.copies_of("hello") == 1
    assert world.post(post_id).deliveries[alice].remote_id == "1"
    assert world.post(post_id).status is PostStatus.PUBLISHED


def test_a_post_found_while_reconciling_is_matched_on_whitespace_normalised_text(
    world: World,
) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice, content="hello   there\nfriend")
    world.x.script = [LOST]
    world.service.deliver(post_id, alice)
    world.x.landed[0] = Landed("1", "ext-alice", "hello there friend", None, T0)

    world.deliver_when_due(post_id, alice)

    assert world.x.created() == [("token-alice", "hello   there\nfriend", None)]
    assert world.post(post_id).deliveries[alice].remote_id == "1"


@pytest.mark.parametrize(
    ("crash", "creates"), [(CRASH_AFTER, 1), (CRASH_BEFORE, 2)], ids=["after-landing", "before"]
)
def test_a_worker_that_died_holding_the_claim_is_reconciled_before_any_retry(
    world: World, crash: str, creates: int
) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice)
    world.x.script = [crash]

    with pytest.raises(WorkerCrashed):
        world.service.deliver(post_id, alice)

    assert world.names(post_id, since=3) == ["AccountPublishAttempted"]
    assert world.post(post_id).deliveries[alice].status is DeliveryStatus.PUBLISHING

    world.clock.advance(LEASE)  # the due row comes back when the lease ends
    world.service.deliver(post_id, alice)

    assert [call[0] for call in world.x.calls] == ["create", "recent", "create"][: creates + 1]
    assert world.x.copies_of("hello") == 1
    post = world.post(post_id)
    assert post.status is PostStatus.PUBLISHED
    assert post.deliveries[alice].attempts == 2
    assert post.deliveries[alice].remote_id == "1"


def test_a_thread_interrupted_after_part_two_resumes_with_part_three_only(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice, content="one", thread=("two", "three"))
    world.x.script = ["ok", "ok", RateLimited("too many requests", reset_at=None)]
    world.service.deliver(post_id, alice)
    assert world.post(post_id).deliveries[alice].segments == ["1", "2"]
    assert world.post(post_id).deliveries[alice].status is DeliveryStatus.PENDING
    world.x.calls.clear()

    world.deliver_when_due(post_id, alice)

    # A delivery tried before is settled against the timeline first, then resumes at part 3.
    assert [call[0] for call in world.x.calls] == ["recent", "create"]
    assert world.x.calls[1] == ("create", "token-alice", "three", "2")
    delivery = world.post(post_id).deliveries[alice]
    assert delivery.segments == ["1", "2", "3"]
    assert delivery.remote_id == "1"
    assert [(p.text, p.in_reply_to) for p in world.x.landed] == [
        ("one", None),
        ("two", "1"),
        ("three", "2"),
    ]
    assert world.post(post_id).status is PostStatus.PUBLISHED


def test_a_thread_whose_third_part_landed_unanswered_finds_it_and_concludes(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice, content="one", thread=("two", "three"))
    world.x.script = ["ok", "ok", LOST]
    world.service.deliver(post_id, alice)
    assert world.post(post_id).deliveries[alice].status is DeliveryStatus.IN_DOUBT
    world.x.calls.clear()

    world.deliver_when_due(post_id, alice)

    assert [call[0] for call in world.x.calls] == ["recent"]
    assert world.x.copies_of("three") == 1
    assert world.post(post_id).deliveries[alice].segments == ["1", "2", "3"]
    assert world.post(post_id).status is PostStatus.PUBLISHED


# --- retries and failures -------------------------------------------------------------------


def test_a_rate_limit_retries_no_earlier_than_the_reset_time(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice)
    reset_at = T0 + timedelta(minutes=15)
    world.x.script = [RateLimited("too many requests", reset_at=reset_at)]

    world.service.deliver(post_id, alice)

    assert world.names(post_id, since=3) == [
        "AccountPublishAttempted",
        "AccountPublishFailed",
        "AccountRetryScheduled",
    ]
    delivery = world.post(post_id).deliveries[alice]
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.next_attempt_at == reset_at
    assert delivery.error_category == "rate_limited"
    assert delivery.retryable is True
    assert delivery.error_message == "too many requests (attempt 1; retrying at 12:15:00 UTC)"
    assert world.post(post_id).status is PostStatus.PUBLISHING

    world.clock.now = reset_at - timedelta(seconds=1)
    world.service.deliver(post_id, alice)
    assert len(world.x.created()) == 1

    world.clock.now = reset_at
    world.service.deliver(post_id, alice)
    assert len(world.x.created()) == 2
    assert world.post(post_id).status is PostStatus.PUBLISHED
    assert world.post(post_id).deliveries[alice].attempts == 2


def test_a_rate_limit_that_resets_sooner_than_the_backoff_waits_for_the_backoff(
    world: World,
) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice)
    world.x.script = [RateLimited("slow down", reset_at=T0 + timedelta(seconds=1))]

    world.service.deliver(post_id, alice)

    assert world.post(post_id).deliveries[alice].next_attempt_at == T0 + backoff(1)


def test_retries_back_off_and_give_up_after_max_attempts(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice)
    world.x.script = [RateLimited("too many requests", reset_at=None) for _ in range(5)]
    retry_times = []

    world.service.deliver(post_id, alice)
    for _ in range(4):
        failed_at = world.clock()
        due = world.post(post_id).deliveries[alice].next_attempt_at
        assert due is not None
        retry_times.append(due - failed_at)
        world.deliver_when_due(post_id, alice)

    assert retry_times == [backoff(1), backoff(2), backoff(3), backoff(4)]
    assert retry_times == [timedelta(seconds=s) for s in (30, 60, 120, 240)]
    assert len(world.x.created()) == 5
    post = world.post(post_id)
    delivery = post.deliveries[alice]
    assert post.status is PostStatus.FAILED
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.attempts == 5
    assert delivery.retryable is False
    assert delivery.error_category == "rate_limited"
    assert delivery.error_message == "too many requests (gave up after 5 attempts)"
    assert world.names(post_id)[-2:] == ["AccountPublishFailed", "PostFailed"]

    world.clock.advance(timedelta(days=1))
    world.service.deliver(post_id, alice)
    assert len(world.x.created()) == 5


def test_backoff_is_capped() -> None:
    world = World(PublishingPolicy(max_attempts=10, max_backoff=timedelta(minutes=1)))
    alice = world.connect("alice")
    post_id = world.started(alice)
    world.x.script = [RateLimited("slow", reset_at=None) for _ in range(3)]
    waits = []
    world.service.deliver(post_id, alice)
    for _ in range(2):
        due = world.post(post_id).deliveries[alice].next_attempt_at
        assert due is not None
        waits.append(due - world.clock())
        world.deliver_when_due(post_id, alice)
    due = world.post(post_id).deliveries[alice].next_attempt_at
    assert due is not None
    waits.append(due - world.clock())

    assert waits == [timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=1)]


def test_rejected_content_fails_for_good(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice)
    world.x.script = [ContentRejected("text is too long", status=400)]

    world.service.deliver(post_id, alice)

    delivery = world.post(post_id).deliveries[alice]
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.error_category == "content_rejected"
    assert delivery.error_message == "text is too long"
    assert delivery.retryable is False
    assert world.names(post_id)[-2:] == ["AccountPublishFailed", "PostFailed"]


def test_a_duplicate_refusal_for_a_post_already_there_is_a_success(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice)
    world.x.landed.append(Landed("77", "ext-alice", "hello", None, T0 - timedelta(minutes=3)))
    world.x.script = [DuplicateContent("duplicate content", status=403)]

    world.service.deliver(post_id, alice)

    assert world.x.calls == [
        ("create", "token-alice", "hello", None),
        ("recent", "token-alice", "ext-alice", T0 - timedelta(days=1)),
    ]
    delivery = world.post(post_id).deliveries[alice]
    assert delivery.remote_id == "77"
    assert delivery.url == "https://x.test/status/77"
    assert world.post(post_id).status is PostStatus.PUBLISHED


def test_a_duplicate_refusal_with_nothing_to_find_is_rejected_content(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice)
    world.x.script = [DuplicateContent("duplicate content", status=403)]

    world.service.deliver(post_id, alice)

    delivery = world.post(post_id).deliveries[alice]
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.error_category == "content_rejected"
    assert delivery.error_message == "duplicate content"


# --- tokens and accounts ----------------------------------------------------------------


def test_an_expiring_token_is_refreshed_once_under_the_lock_before_publishing(
    world: World,
) -> None:
    alice = world.connect("alice", expires_at=T0 + timedelta(minutes=1), refresh_token="rt-1")
    renewed = TokenSet("token-alice-2", "rt-2", T0 + timedelta(hours=2))
    world.x.refreshes["rt-1"] = renewed
    world.x.users_by_token["token-alice-2"] = "ext-alice"
    first = world.started(alice)
    second = world.started(alice, content="again")

    world.service.deliver(first, alice)
    world.service.deliver(second, alice)

    assert world.x.calls == [
        ("refresh", "rt-1"),
        ("create", "token-alice-2", "hello", None),
        ("create", "token-alice-2", "again", None),
    ]
    integration = world.integration(alice)
    assert integration.credential_id is not None
    assert world.vault.replaced == [(integration.credential_id, renewed)]
    assert world.vault.tokens[integration.credential_id] == renewed
    assert world.locks.taken == [f"refresh/{alice}"]
    assert world.names(UUID(alice)) == ["IntegrationConnected", "TokenRefreshed"]
    assert vars(world.events(UUID(alice))[-1])["token_expires_at"] == T0 + timedelta(hours=2)
    assert integration.token_expires_at == T0 + timedelta(hours=2)
    assert world.post(first).status is PostStatus.PUBLISHED
    assert world.post(second).status is PostStatus.PUBLISHED


def test_a_token_far_from_expiry_is_used_without_refreshing(world: World) -> None:
    alice = world.connect("alice", expires_at=T0 + timedelta(minutes=3), refresh_token="rt-1")
    post_id = world.started(alice)

    world.service.deliver(post_id, alice)

    assert [call[0] for call in world.x.calls] == ["create"]
    assert world.locks.taken == []
    assert world.post(post_id).status is PostStatus.PUBLISHED


@pytest.mark.parametrize(
    ("refresh_token", "reason"),
    [
        ("rt-1", "the platform refused to refresh: invalid_grant"),
        (None, "the access token expired and cannot be refreshed"),
    ],
    ids=["refresh-refused", "no-refresh-token"],
)
def test_an_unrefreshable_token_expires_the_account_and_fails_only_its_delivery(
    world: World, refresh_token: str | None, reason: str
) -> None:
    alice = world.connect(
        "alice", expires_at=T0 - timedelta(minutes=1), refresh_token=refresh_token
    )
    bob = world.connect("bob")
    world.x.refreshes["rt-1"] = OAuthExchangeFailed("invalid_grant", status=400)
    post_id = world.started(alice, bob)

    world.service.deliver(post_id, alice)
    world.service.deliver(post_id, bob)

    assert world.x.created() == [("token-bob", "hello", None)]
    assert world.x.calls.count(("refresh", "rt-1")) == (1 if refresh_token else 0)
    assert world.vault.replaced == []
    assert world.names(UUID(alice)) == ["IntegrationConnected", "TokenExpired"]
    assert world.integration(alice).status is IntegrationStatus.EXPIRED
    assert world.integration(alice).last_error == reason
    assert world.integration(bob).status is IntegrationStatus.CONNECTED
    post = world.post(post_id)
    failed = post.deliveries[alice]
    assert failed.status is DeliveryStatus.FAILED
    assert failed.error_category == "auth_expired"
    assert failed.retryable is False
    assert failed.error_message == (
        f"the X account @alice needs reconnecting ({reason}); reconnect it, then republish"
    )
    assert post.deliveries[bob].status is DeliveryStatus.PUBLISHED
    assert post.status is PostStatus.PARTIAL
    assert world.names(post_id)[-1] == "PostPartiallyPublished"


def test_a_token_the_platform_revoked_expires_the_account(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice)
    world.x.users_by_token.clear()

    world.service.deliver(post_id, alice)

    assert world.integration(alice).status is IntegrationStatus.EXPIRED
    delivery = world.post(post_id).deliveries[alice]
    assert delivery.error_category == "auth_expired"
    assert world.post(post_id).status is PostStatus.FAILED


def test_a_disconnected_account_fails_its_delivery_without_calling_the_platform(
    world: World,
) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice)
    integration = world.integration(alice)
    integration.disconnect()
    world.app.save_all(integration)

    world.service.deliver(post_id, alice)

    assert world.x.calls == []
    assert world.names(post_id, since=3) == ["AccountPublishFailed", "PostFailed"]
    delivery = world.post(post_id).deliveries[alice]
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.attempts == 0
    assert delivery.error_category == "account_unusable"
    assert delivery.retryable is False
    assert delivery.error_message == (
        "the X account @alice is disconnected; reconnect it, then republish"
    )


def test_an_account_that_no_longer_exists_fails_its_delivery(world: World) -> None:
    gone = str(uuid4())
    post_id = world.started(gone)

    world.service.deliver(post_id, gone)

    assert world.x.calls == []
    delivery = world.post(post_id).deliveries[gone]
    assert delivery.error_category == "account_unusable"
    assert delivery.error_message == "the account no longer exists in this organization"


# --- stale, early and duplicated messages ---------------------------------------------------


@pytest.mark.parametrize("outcome", ["ok", ContentRejected("no")], ids=["published", "failed"])
def test_a_duplicate_message_for_an_ended_delivery_does_nothing(
    world: World, outcome: Step
) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice)
    world.x.script = [outcome]
    world.service.deliver(post_id, alice)
    calls, version = list(world.x.calls), world.post(post_id).version

    world.service.deliver(post_id, alice)
    world.service.start(post_id)

    assert world.x.calls == calls
    assert world.post(post_id).version == version


def test_messages_for_unknown_posts_accounts_or_deleted_posts_do_nothing(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.schedule(alice)
    post = world.post(post_id)
    post.delete()
    world.app.save_all(post)

    world.service.start(uuid4())
    world.service.deliver(uuid4(), alice)
    world.service.start(post_id)
    world.service.deliver(post_id, alice)
    started = world.started(alice)
    world.service.deliver(started, str(uuid4()))

    assert world.x.calls == []
    assert world.names(post_id) == ["PostDrafted", "PostScheduled", "PostDeleted"]
    assert world.names(started) == ["PostDrafted", "PostScheduled", "PublishingStarted"]


def test_a_message_before_the_delivery_is_due_does_nothing(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice)
    world.x.script = [RateLimited("slow", reset_at=T0 + timedelta(minutes=10))]
    world.service.deliver(post_id, alice)
    version = world.post(post_id).version

    world.clock.now = T0 + timedelta(minutes=9, seconds=59)
    world.service.deliver(post_id, alice)

    assert world.post(post_id).version == version
    assert len(world.x.created()) == 1


def test_a_message_before_the_scheduled_time_does_not_start(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.schedule(alice)
    world.clock.now = T0 - timedelta(seconds=1)

    world.service.start(post_id)

    assert world.post(post_id).status is PostStatus.SCHEDULED
    assert world.names(post_id) == ["PostDrafted", "PostScheduled"]


# --- the missed window --------------------------------------------------------------------


def test_a_post_started_too_late_is_missed(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.schedule(alice)
    world.clock.now = T0 + timedelta(hours=1, minutes=1)

    world.service.start(post_id)

    assert world.late.asked == [ORG]
    assert world.names(post_id, since=2) == ["PostMissed", "PostFailed"]
    assert vars(world.events(post_id, since=2)[0])["reason"] == (
        "not published: Kairos could not start it within 1:00:00 of its scheduled time "
        "(it was 1 h 1 min late); republish it or allow late publishing for the organization"
    )
    post = world.post(post_id)
    assert post.status is PostStatus.FAILED
    assert post.deliveries[alice].error_category == "missed"

    world.service.deliver(post_id, alice)
    assert world.x.calls == []


def test_a_late_post_is_started_when_the_organization_publishes_late(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.schedule(alice)
    world.late.organizations.add(ORG)
    world.clock.now = T0 + timedelta(hours=5)

    world.service.start(post_id)

    assert world.late.asked == [ORG]
    # One account: started and claimed in one save, published by the same worker.
    assert world.names(post_id, since=2)[:2] == ["PublishingStarted", "AccountPublishAttempted"]
    world.service.deliver(post_id, alice)  # a later delivery message changes nothing
    assert world.post(post_id).status is PostStatus.PUBLISHED


@pytest.mark.parametrize(
    "late_by", [timedelta(minutes=30), timedelta(hours=1)], ids=["half-an-hour", "exactly-1h"]
)
def test_a_post_within_the_window_starts_without_asking(world: World, late_by: timedelta) -> None:
    alice = world.connect("alice")
    post_id = world.schedule(alice)
    world.clock.now = T0 + late_by

    world.service.start(post_id)

    assert world.late.asked == []
    assert world.names(post_id, since=2)[:2] == ["PublishingStarted", "AccountPublishAttempted"]


def test_a_missed_post_republished_is_delivered(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.schedule(alice)
    world.clock.now = T0 + timedelta(hours=2)
    world.service.start(post_id)
    post = world.post(post_id)
    assert post.republish() == [alice]
    world.app.save_all(post)

    world.service.deliver(post_id, alice)

    assert world.x.created() == [("token-alice", "hello", None)]
    assert world.post(post_id).status is PostStatus.PUBLISHED


# --- bugs these tests found (now fixed) ---------------------------------------------------


def test_a_duplicate_message_during_a_live_claim_does_nothing(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice)
    # While the first worker's request is in flight (well within its lease), the dispatcher's
    # re-sent message for the same delivery reaches a second worker.
    world.x.script = [During(lambda: world.service.deliver(post_id, alice))]

    world.service.deliver(post_id, alice)

    assert len(world.x.created()) == 1
    assert world.x.copies_of("hello") == 1


def test_a_worker_that_lost_its_claim_posts_nothing_more(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice, content="one", thread=("two",))

    def lease_ends_and_another_worker_takes_over() -> None:
        world.clock.advance(LEASE + timedelta(seconds=1))
        world.service.deliver(post_id, alice)  # its answer is lost: in doubt

    world.x.script = [During(lease_ends_and_another_worker_takes_over), LOST]

    world.service.deliver(post_id, alice)

    # First worker's part one, and the second worker's part one (answer lost) - then the
    # first worker's checkpoint save fails and it must stop.
    assert [text for _, text, _ in world.x.created()] == ["one", "one"]
    assert world.names(post_id, since=4) == ["AccountPublishAttempted", "AccountPublishInDoubt"]


def test_a_lost_answer_on_the_last_attempt_is_never_posted_twice() -> None:
    world = World(PublishingPolicy(max_attempts=1))
    alice = world.connect("alice")
    post_id = world.started(alice)
    world.x.script = [LOST]
    world.service.deliver(post_id, alice)
    post = world.post(post_id)
    if post.status is PostStatus.FAILED:
        post.republish()
        world.app.save_all(post)
    world.clock.advance(timedelta(minutes=10))

    world.deliver_when_due(post_id, alice)

    assert world.x.copies_of("hello") == 1
    assert world.post(post_id).status is PostStatus.PUBLISHED


# --- start(): a single-account post goes straight through ----------------------------------


def test_start_publishes_a_single_account_post_in_the_same_worker(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.schedule(alice, content="solo")
    world.clock.now = T0 + timedelta(minutes=5)

    world.service.start(post_id)

    post = world.post(post_id)
    assert post.status is PostStatus.PUBLISHED
    assert [p.text for p in world.x.landed] == ["solo"]
    types = [type(e).__name__ for e in world.app.history(post_id)]
    # Started and claimed in one save, then the part and the outcome in one more.
    assert types[-5:] == [
        "PublishingStarted",
        "AccountPublishAttempted",
        "ThreadSegmentPosted",
        "AccountPublished",
        "PostPublished",
    ]


def test_start_fans_a_multi_account_post_out_to_deliveries(world: World) -> None:
    alice, bob = world.connect("alice"), world.connect("bob")
    post_id = world.schedule(alice, bob, content="both")
    world.clock.now = T0 + timedelta(minutes=5)

    world.service.start(post_id)

    assert world.post(post_id).status is PostStatus.PUBLISHING
    assert world.x.landed == []


# --- media --------------------------------------------------------------------------------------


def test_media_is_uploaded_checkpointed_and_attached_to_the_first_part(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice, content="look", thread=("more",), media=("a.jpg", "b.jpg"))

    world.service.deliver(post_id, alice)

    assert world.x.uploads == [("m1", "image/jpeg"), ("m2", "image/jpeg")]
    assert world.x.attached == [("m1", "m2"), ()]
    assert world.names(post_id, since=3) == [
        "AccountPublishAttempted",
        "AccountLeaseExtended",  # once: the lease already covers the second file
        "AccountMediaUploaded",
        "AccountMediaUploaded",
        "ThreadSegmentPosted",
        "ThreadSegmentPosted",
        "AccountPublished",
        "PostPublished",
    ]


@pytest.mark.parametrize(
    ("script", "uploads"),
    [([CRASH_BEFORE], 2), ([CRASH_AFTER], 3)],
    ids=["died-before-uploading", "died-after-upload-before-checkpoint"],
)
def test_a_retry_reuses_checkpointed_media_and_uploads_only_the_rest(
    world: World, script: list[Step], uploads: int
) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice, content="pics", media=("a.jpg", "b.jpg"))
    world.x.upload_script = ["ok", *script]

    with pytest.raises(WorkerCrashed):
        world.service.deliver(post_id, alice)
    assert world.post(post_id).deliveries[alice].media.keys() == {"0/0"}

    world.deliver_when_due(post_id, alice)  # when the lease, extended for the upload, ends

    assert len(world.x.uploads) == uploads  # the first file is never uploaded twice
    assert world.x.attached == [("m1", f"m{uploads}")]
    assert world.post(post_id).status is PostStatus.PUBLISHED


def test_a_retry_after_a_failed_create_attaches_the_same_media(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice, content="vid", media=("clip.mp4",))
    world.x.script = [RateLimited("slow down", reset_at=None)]

    world.service.deliver(post_id, alice)
    world.deliver_when_due(post_id, alice)

    assert world.x.uploads == [("m1", "video/mp4")]
    assert world.x.attached == [("m1",)]
    assert world.post(post_id).status is PostStatus.PUBLISHED


def test_media_the_platform_has_forgotten_is_uploaded_again(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice, content="late", media=("a.jpg",))
    world.x.script = [RateLimited("slow down", reset_at=T0 + MEDIA_LIFETIME + timedelta(hours=1))]

    world.service.deliver(post_id, alice)
    world.deliver_when_due(post_id, alice)

    assert [media_id for media_id, _ in world.x.uploads] == ["m1", "m2"]
    assert world.x.attached == [("m2",)]


def test_media_the_platform_refuses_fails_that_account_with_its_reason(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice, content="bad", media=("a.jpg",))
    world.x.upload_script = [ContentRejected("InvalidMedia: aspect ratio 4:1 is not supported")]

    world.service.deliver(post_id, alice)

    delivery = world.post(post_id).deliveries[alice]
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.error_category == "content_rejected"
    assert "aspect ratio" in (delivery.error_message or "")
    assert world.x.created() == []


def test_media_deleted_from_storage_fails_clearly_without_posting(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice, content="gone", media=("a.jpg",))
    world.media.missing.add("a.jpg")

    world.service.deliver(post_id, alice)

    delivery = world.post(post_id).deliveries[alice]
    assert (delivery.status, delivery.error_category) == (DeliveryStatus.FAILED, "media_changed")
    assert not delivery.retryable
    assert world.x.calls == []


# --- uploads that outlast the lease --------------------------------------------------------


def test_an_upload_longer_than_the_lease_holds_the_claim_and_happens_once(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice, content="big video", media=("clip.mp4",))

    def slow_upload_while_the_dispatcher_resends() -> None:
        world.clock.advance(LEASE + timedelta(minutes=1))
        world.service.deliver(post_id, alice)  # the due row's message, re-sent meanwhile

    world.x.upload_script = [During(slow_upload_while_the_dispatcher_resends)]

    world.service.deliver(post_id, alice)

    assert world.x.uploads == [("m1", "video/mp4")]
    assert [p.text for p in world.x.landed] == ["big video"]
    assert world.x.attached == [("m1",)]
    assert world.names(post_id, since=3) == [
        "AccountPublishAttempted",
        "AccountLeaseExtended",
        "AccountMediaUploaded",
        "ThreadSegmentPosted",
        "AccountPublished",
        "PostPublished",
    ]
    # Long enough to send 3000 bytes at 1 MB/s and let X process a video for 2 minutes.
    extended = vars(world.events(post_id, since=4)[0])
    assert extended["lease_until"] == T0 + LEASE + timedelta(seconds=120.003)
    assert world.post(post_id).deliveries[alice].attempts == 1


def test_an_image_upload_is_given_the_time_its_size_needs(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice, content="photo", media=("a.jpg",))

    world.service.deliver(post_id, alice)

    extended = vars(world.events(post_id, since=4)[0])
    assert extended["lease_until"] == T0 + LEASE + timedelta(seconds=0.003)


@pytest.mark.parametrize(
    ("last_crash", "outcome"),
    [(CRASH_BEFORE, DeliveryStatus.FAILED), (CRASH_AFTER, DeliveryStatus.PUBLISHED)],
    ids=["never-landed", "landed-on-the-last-claim"],
)
def test_claims_that_keep_running_out_of_time_end_after_settling(
    last_crash: str, outcome: DeliveryStatus
) -> None:
    world = World(PublishingPolicy(max_attempts=2))  # at most 2 x 2 claims
    alice = world.connect("alice")
    post_id = world.started(alice)
    world.x.script = [CRASH_BEFORE, CRASH_BEFORE, CRASH_BEFORE, last_crash]
    for _ in range(4):
        with pytest.raises(WorkerCrashed):
            world.deliver_when_due(post_id, alice)

    world.deliver_when_due(post_id, alice)

    assert len(world.x.created()) == 4  # the fifth claim only looked
    assert world.x.calls[-1][0] == "recent"
    delivery = world.post(post_id).deliveries[alice]
    assert delivery.status is outcome
    assert delivery.attempts == 5
    if outcome is DeliveryStatus.FAILED:
        assert (delivery.error_category, delivery.retryable) == ("timed_out", False)
        assert "gave up after 4 attempts: they kept running out of time" in (
            delivery.error_message or ""
        )
        assert world.post(post_id).status is PostStatus.FAILED
    else:
        assert delivery.remote_id == "1"


# --- settling matches the whole post, not the text around its links ---------------------------


def test_an_in_doubt_post_is_not_settled_as_a_post_differing_only_in_its_link(
    world: World,
) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice, content="New article: https://ex.com/b")
    world.x.script = [TransientPlatformError("503 Service Unavailable", status=503)]
    world.service.deliver(post_id, alice)  # nothing landed
    world.x.landed.append(Landed("9", "ext-alice", "New article: https://ex.com/a", None, T0))

    world.deliver_when_due(post_id, alice)

    assert [call[0] for call in world.x.calls] == ["create", "recent", "create"]
    assert world.x.copies_of("New article: https://ex.com/b") == 1
    assert world.post(post_id).deliveries[alice].remote_id == "2"


def test_a_link_given_back_with_a_scheme_still_matches(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice, content="Read example.com/launch")
    world.x.script = [LOST]
    world.service.deliver(post_id, alice)
    world.x.landed[0] = Landed("1", "ext-alice", "Read http://example.com/launch", None, T0)

    world.deliver_when_due(post_id, alice)

    assert len(world.x.created()) == 1
    assert world.post(post_id).deliveries[alice].remote_id == "1"


def test_an_in_doubt_media_post_matches_only_a_post_with_its_media(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice, content="", media=("a.jpg",))
    world.x.script = [TransientPlatformError("503 Service Unavailable", status=503)]
    world.service.deliver(post_id, alice)  # m1 uploaded and checkpointed; nothing landed
    # Another post of media alone, made meanwhile: its text is empty too.
    world.x.landed.append(Landed("9", "ext-alice", "", None, T0, ("m7",)))

    world.deliver_when_due(post_id, alice)

    assert world.x.attached == [("m1",)]
    assert world.post(post_id).deliveries[alice].remote_id == "2"


def test_an_in_doubt_media_post_that_landed_is_found_by_its_media(world: World) -> None:
    alice = world.connect("alice")
    post_id = world.started(alice, content="", media=("a.jpg",))
    world.x.script = [LOST]
    world.service.deliver(post_id, alice)

    world.deliver_when_due(post_id, alice)

    assert [call[0] for call in world.x.calls] == ["upload", "create", "recent"]
    assert world.post(post_id).deliveries[alice].remote_id == "1"
