"""The Post aggregate as given recorded events / when a command / then new events or an error.

Every scenario also replays the whole history from scratch and checks it rebuilds exactly the
state the live aggregate reached, and every refused command is checked to have changed nothing.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest

from domain.errors import DomainError, InvalidField, PostAlreadyDeleted, PostNotEditable
from domain.post import Delivery, DeliveryStatus, Post, PostStatus
from tests.unit.scenarios import (
    Command,
    Event,
    assert_replay_rebuilds,
    facts,
    names,
    replay,
    state_of,
    when,
    when_refused,
)

ORG = UUID("00000000-0000-4000-8000-000000000001")
AUTHOR = UUID("00000000-0000-4000-8000-000000000002")
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
IN_AN_HOUR = NOW + timedelta(hours=1)
IN_TWO_HOURS = NOW + timedelta(hours=2)
LEASE = NOW + timedelta(minutes=5)
X = "acct-x"
TIKTOK = "acct-tiktok"
ACCOUNTS = {X: "twitter", TIKTOK: "tiktok"}


# --- given / when / then ---------------------------------------------------------------


def draft(**overrides: Any) -> Post:
    values: dict[str, Any] = {
        "organization_id": ORG,
        "author_id": AUTHOR,
        "content": "hello",
        "thread": ["second"],
        "media_urls": ["https://cdn.example.com/a.mp4"],
        "accounts": dict(ACCOUNTS),
        **overrides,
    }
    return Post.draft(**values)


def given(*steps: Command, **draft_overrides: Any) -> list[Event]:
    """The events a freshly drafted post records through ``steps``: the 'given' history."""
    post = draft(**draft_overrides)
    for step in steps:
        step(post)
    return list(post.collect_events())


def schedule(at: datetime = IN_AN_HOUR) -> Command:
    return lambda post: post.schedule(at, now=NOW)


def start(post: Post) -> None:
    post.schedule(IN_AN_HOUR, now=NOW)
    post.start_publishing()


def attempt(account_id: str, key: str = "k1") -> Command:
    return lambda post: post.attempt(account_id, attempt_key=key, lease_until=LEASE)


def published(account_id: str) -> Command:
    return lambda post: post.record_published(
        account_id, remote_id=f"remote-{account_id}", url=f"https://example.com/{account_id}"
    )


def failed(account_id: str, *, retryable: bool = False) -> Command:
    return lambda post: post.record_failed(
        account_id, category="rejected", retryable=retryable, message="media too large"
    )


def in_doubt(account_id: str) -> Command:
    return lambda post: post.record_in_doubt(
        account_id, reason="timeout after upload", reconcile_at=datetime(2030, 1, 1, tzinfo=UTC)
    )


def edit(**changes: Any) -> Command:
    values: dict[str, Any] = {
        "content": "hello",
        "thread": ["second"],
        "media_urls": ["https://cdn.example.com/a.mp4"],
        "accounts": dict(ACCOUNTS),
        **changes,
    }
    return lambda post: post.edit(**values)


def delete(post: Post) -> None:
    post.delete()


def unschedule(post: Post) -> None:
    post.unschedule()


def start_publishing(post: Post) -> None:
    post.start_publishing()


# --- drafting -------------------------------------------------------------------------------


def test_a_draft_without_a_time_is_a_draft() -> None:
    post = draft(post_id=UUID("00000000-0000-4000-8000-0000000000aa"), request_fingerprint="fp")
    events = list(post.collect_events())

    assert facts(events) == [
        (
            "PostDrafted",
            {
                "organization_id": ORG,
                "author_id": AUTHOR,
                "content": "hello",
                "thread": ["second"],
                "media_urls": ["https://cdn.example.com/a.mp4"],
                "accounts": ACCOUNTS,
                "request_fingerprint": "fp",
            },
        )
    ]
    assert post.id == UUID("00000000-0000-4000-8000-0000000000aa")
    assert post.status is PostStatus.DRAFT
    assert post.scheduled_at is None
    assert post.deliveries == {}
    assert post.version == 1
    assert post.providers == ["twitter", "tiktok"]
    assert_replay_rebuilds(post, events)


def test_a_draft_needs_at_least_one_account() -> None:
    with pytest.raises(InvalidField) as refused:
        draft(accounts={})
    assert refused.value.field == "accountIds"


def test_draft_then_schedule_in_the_future_is_scheduled() -> None:
    post = draft()
    post.schedule(IN_AN_HOUR, now=NOW)
    events = list(post.collect_events())

    assert names(events) == ["PostDrafted", "PostScheduled"]
    assert facts(events)[1] == ("PostScheduled", {"scheduled_at": IN_AN_HOUR})
    assert post.status is PostStatus.SCHEDULED
    assert post.scheduled_at == IN_AN_HOUR
    assert post.version == 2
    assert_replay_rebuilds(post, events)


# --- scheduling -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "at",
    [NOW - timedelta(seconds=1), NOW, NOW - timedelta(days=365)],
    ids=["a-second-ago", "exactly-now", "last-year"],
)
def test_scheduling_at_or_before_now_is_refused(at: datetime) -> None:
    refused = when_refused(given(), schedule(at), InvalidField)
    assert refused.field == "scheduledAt"
    assert refused.message == "scheduledAt must be in the future"


def test_scheduling_with_a_naive_datetime_is_refused() -> None:
    naive = datetime(2030, 1, 1, 13, 0)
    refused = when_refused(given(), schedule(naive), InvalidField)
    assert refused.field == "scheduledAt"
    assert "timezone" in refused.message


def test_rescheduling_records_the_previous_time() -> None:
    then, post = when(given(schedule(IN_AN_HOUR)), schedule(IN_TWO_HOURS))

    assert facts(then) == [
        ("PostRescheduled", {"scheduled_at": IN_TWO_HOURS, "previous_scheduled_at": IN_AN_HOUR})
    ]
    assert post.scheduled_at == IN_TWO_HOURS
    assert post.status is PostStatus.SCHEDULED


def test_scheduling_to_the_same_time_records_nothing() -> None:
    then, post = when(given(schedule(IN_AN_HOUR)), schedule(IN_AN_HOUR))
    assert then == []
    assert post.scheduled_at == IN_AN_HOUR


def test_scheduling_to_the_same_instant_in_another_timezone_records_nothing() -> None:
    same_instant = IN_AN_HOUR.astimezone(timezone(timedelta(hours=2)))
    then, _ = when(given(schedule(IN_AN_HOUR)), schedule(same_instant))
    assert then == []


def test_unscheduling_returns_the_post_to_draft() -> None:
    then, post = when(given(schedule()), unschedule)

    assert facts(then) == [("PostUnscheduled", {})]
    assert post.status is PostStatus.DRAFT
    assert post.scheduled_at is None


def test_unscheduling_a_draft_records_nothing() -> None:
    then, post = when(given(), unschedule)
    assert then == []
    assert post.status is PostStatus.DRAFT


def test_scheduling_again_after_unscheduling_is_a_fresh_schedule() -> None:
    then, post = when(given(schedule(IN_AN_HOUR), unschedule), schedule(IN_TWO_HOURS))
    assert facts(then) == [("PostScheduled", {"scheduled_at": IN_TWO_HOURS})]
    assert post.status is PostStatus.SCHEDULED


# --- editing ---------------------------------------------------------------------------------


def test_editing_records_the_new_content() -> None:
    new_accounts = {X: "twitter"}
    then, post = when(
        given(schedule()),
        edit(content="changed", thread=[], media_urls=[], accounts=new_accounts),
    )

    assert facts(then) == [
        (
            "PostEdited",
            {"content": "changed", "thread": [], "media_urls": [], "accounts": new_accounts},
        )
    ]
    assert post.content == "changed"
    assert post.accounts == new_accounts
    assert post.status is PostStatus.SCHEDULED


@pytest.mark.parametrize(
    "changes",
    [
        {"content": "changed"},
        {"thread": ["second", "third"]},
        {"media_urls": []},
        {"accounts": {X: "twitter"}},
    ],
    ids=["content", "thread", "media", "accounts"],
)
def test_any_single_change_is_an_edit(changes: dict[str, Any]) -> None:
    then, _ = when(given(), edit(**changes))
    assert names(then) == ["PostEdited"]


def test_editing_without_changes_records_nothing() -> None:
    then, post = when(given(schedule()), edit())
    assert then == []
    assert post.version == 2


def test_editing_to_no_accounts_is_refused() -> None:
    refused = when_refused(given(), edit(accounts={}), InvalidField)
    assert refused.field == "accountIds"


# --- deleting --------------------------------------------------------------------------------


def test_deleting_records_post_deleted() -> None:
    then, post = when(given(schedule()), delete)
    assert facts(then) == [("PostDeleted", {})]
    assert post.deleted is True


def test_deleting_twice_is_refused() -> None:
    when_refused(given(delete), delete, PostAlreadyDeleted)


@pytest.mark.parametrize(
    "command",
    [edit(content="changed"), schedule(), unschedule],
    ids=["edit", "schedule", "unschedule"],
)
def test_a_deleted_post_cannot_be_changed(command: Command) -> None:
    when_refused(given(schedule(), delete), command, PostAlreadyDeleted)


# --- starting to publish ------------------------------------------------------------------


def test_start_publishing_a_scheduled_post_opens_one_pending_delivery_per_account() -> None:
    then, post = when(given(schedule()), start_publishing)

    assert facts(then) == [("PublishingStarted", {"accounts": ACCOUNTS})]
    assert post.status is PostStatus.PUBLISHING
    assert post.publishing_started_at == then[0].timestamp
    assert post.deliveries == {
        X: Delivery(account_id=X, provider="twitter"),
        TIKTOK: Delivery(account_id=TIKTOK, provider="tiktok"),
    }


@pytest.mark.parametrize(
    "history",
    [
        given(),
        given(schedule(), unschedule),
        given(start),
        given(start, attempt(X), published(X), attempt(TIKTOK), published(TIKTOK)),
    ],
    ids=["draft", "unscheduled", "publishing", "published"],
)
def test_only_a_scheduled_post_can_start_publishing(history: list[Event]) -> None:
    when_refused(history, start_publishing, PostNotEditable)


def test_a_deleted_post_never_starts_publishing() -> None:
    when_refused(given(schedule(), delete), start_publishing, PostAlreadyDeleted)


# --- the publishing protocol ----------------------------------------------------------------


def test_the_first_attempt_is_number_one() -> None:
    then, post = when(given(start), attempt(X, key="key-1"))

    assert facts(then) == [
        (
            "AccountPublishAttempted",
            {"account_id": X, "attempt": 1, "attempt_key": "key-1", "lease_until": LEASE},
        )
    ]
    assert post.deliveries[X].status is DeliveryStatus.PUBLISHING
    assert post.deliveries[X].attempts == 1
    assert post.deliveries[TIKTOK].status is DeliveryStatus.PENDING
    assert post.status is PostStatus.PUBLISHING


def test_attempt_numbers_increase() -> None:
    history = given(start, attempt(X, "key-1"), in_doubt(X), attempt(X, "key-2"))
    then, post = when(history, attempt(X, key="key-3"))

    assert [e.attempt for e in then] == [3]  # type: ignore[attr-defined]
    assert post.deliveries[X].attempts == 3
    assert replay(history).attempt(X, attempt_key="key-3", lease_until=LEASE) == 3


def test_publishing_to_every_account_publishes_the_post() -> None:
    history = given(start, attempt(X), attempt(TIKTOK), published(X))
    then, post = when(history, published(TIKTOK))

    assert facts(then) == [
        (
            "AccountPublished",
            {
                "account_id": TIKTOK,
                "remote_id": "remote-acct-tiktok",
                "url": "https://example.com/acct-tiktok",
            },
        ),
        ("PostPublished", {}),
    ]
    assert post.status is PostStatus.PUBLISHED
    assert post.published_at == then[-1].timestamp
    assert post.deliveries[TIKTOK] == Delivery(
        account_id=TIKTOK,
        provider="tiktok",
        status=DeliveryStatus.PUBLISHED,
        attempts=1,
        remote_id="remote-acct-tiktok",
        url="https://example.com/acct-tiktok",
        published_at=then[0].timestamp,
        last_attempt_at=post.deliveries[TIKTOK].last_attempt_at,
        lease_until=LEASE,
    )


def test_one_published_account_of_two_is_still_publishing() -> None:
    then, post = when(given(start, attempt(X), attempt(TIKTOK)), published(X))
    assert names(then) == ["AccountPublished"]
    assert post.status is PostStatus.PUBLISHING
    assert post.published_at is None


def test_failing_on_every_account_fails_the_post() -> None:
    history = given(start, attempt(X), attempt(TIKTOK), failed(X))
    then, post = when(history, failed(TIKTOK, retryable=True))

    assert facts(then) == [
        (
            "AccountPublishFailed",
            {
                "account_id": TIKTOK,
                "category": "rejected",
                "retryable": True,
                "message": "media too large",
            },
        ),
        ("PostFailed", {}),
    ]
    assert post.status is PostStatus.FAILED
    assert post.published_at is None
    assert post.deliveries[TIKTOK].status is DeliveryStatus.FAILED
    assert post.deliveries[TIKTOK].error_category == "rejected"
    assert post.deliveries[TIKTOK].error_message == "media too large"
    assert post.deliveries[TIKTOK].retryable is True


def test_published_on_some_and_failed_on_others_is_partially_published() -> None:
    history = given(start, attempt(X), attempt(TIKTOK), published(X))
    then, post = when(history, failed(TIKTOK))

    assert names(then) == ["AccountPublishFailed", "PostPartiallyPublished"]
    assert post.status is PostStatus.PARTIAL
    assert post.published_at == then[-1].timestamp


def test_an_in_doubt_delivery_keeps_the_post_publishing() -> None:
    history = given(start, attempt(X), attempt(TIKTOK), published(TIKTOK))
    then, post = when(history, in_doubt(X))

    assert facts(then) == [
        (
            "AccountPublishInDoubt",
            {
                "account_id": X,
                "reason": "timeout after upload",
                "reconcile_at": datetime(2030, 1, 1, tzinfo=UTC),
            },
        )
    ]
    assert post.status is PostStatus.PUBLISHING
    assert post.deliveries[X].status is DeliveryStatus.IN_DOUBT
    assert post.deliveries[X].error_message == "timeout after upload"
    assert post.published_at is None


def test_an_in_doubt_delivery_reconciled_as_published_concludes_the_post() -> None:
    history = given(start, attempt(X), attempt(TIKTOK), published(TIKTOK), in_doubt(X))
    then, post = when(history, published(X))

    assert names(then) == ["AccountPublished", "PostPublished"]
    assert post.status is PostStatus.PUBLISHED
    assert post.deliveries[X].error_message is None


def extend_lease(account_id: str, until: datetime) -> Command:
    return lambda post: post.extend_lease(account_id, lease_until=until)


def test_a_claim_s_lease_is_extended_for_a_long_upload() -> None:
    later = LEASE + timedelta(minutes=3)
    then, post = when(given(start, attempt(X)), extend_lease(X, later))

    assert facts(then) == [("AccountLeaseExtended", {"account_id": X, "lease_until": later})]
    delivery = post.deliveries[X]
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PUBLISHING, 1)
    assert delivery.next_attempt_at == delivery.lease_until == later


def test_a_lease_is_never_shortened() -> None:
    then, post = when(given(start, attempt(X)), extend_lease(X, LEASE - timedelta(minutes=1)))

    assert then == []
    assert post.deliveries[X].next_attempt_at == LEASE


@pytest.mark.parametrize(
    "steps",
    [(), (in_doubt(X),), (published(X),)],
    ids=["unclaimed", "in-doubt", "published"],
)
def test_only_a_live_claim_has_a_lease_to_extend(steps: tuple[Command, ...]) -> None:
    history = given(start, *((attempt(X),) if steps else ()), *steps)
    when_refused(history, extend_lease(X, LEASE + timedelta(hours=1)), PostNotEditable)


def test_checkpointed_media_ids_are_listed_per_part_in_order() -> None:
    history = given(start, attempt(X))
    post = replay(history)
    for part, index, remote_id in [(0, 1, "b"), (1, 0, "z"), (0, 0, "a")]:
        post.record_media_uploaded(X, part=part, index=index, remote_id=remote_id, expires_at=NOW)

    delivery = post.deliveries[X]
    assert (delivery.media_ids(0), delivery.media_ids(1), delivery.media_ids(2)) == (
        ("a", "b"),
        ("z",),
        (),
    )


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (edit(content="changed"), PostNotEditable),
        (delete, PostNotEditable),
        (schedule(IN_TWO_HOURS), PostNotEditable),
        (unschedule, PostNotEditable),
    ],
    ids=["edit", "delete", "schedule", "unschedule"],
)
def test_a_publishing_post_cannot_be_changed(command: Command, error: type[DomainError]) -> None:
    when_refused(given(start, attempt(X)), command, error)


def test_a_concluded_post_cannot_be_edited() -> None:
    history = given(start, attempt(X), attempt(TIKTOK), published(X), published(TIKTOK))
    when_refused(history, edit(content="changed"), PostNotEditable)


@pytest.mark.parametrize(
    "history",
    [
        given(start, attempt(X), published(X)),
        given(start, attempt(X), failed(X)),
    ],
    ids=["published", "failed"],
)
def test_a_terminal_delivery_cannot_be_attempted_again(history: list[Event]) -> None:
    when_refused(history, attempt(X, key="again"), PostNotEditable)


@pytest.mark.parametrize(
    "command",
    [attempt("nope"), published("nope"), failed("nope"), in_doubt("nope")],
    ids=["attempt", "published", "failed", "in-doubt"],
)
def test_an_account_the_post_does_not_deliver_to_is_refused(command: Command) -> None:
    refused = when_refused(given(start), command, InvalidField)
    assert refused.field == "accountId"
    assert "nope" in refused.message


def test_a_delivery_before_publishing_started_is_refused() -> None:
    refused = when_refused(given(schedule()), attempt(X), InvalidField)
    assert refused.field == "accountId"


# --- a recorded outcome is final ----------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [published(X), failed(X), in_doubt(X)],
    ids=["published-again", "failed-after-published", "in-doubt-after-published"],
)
def test_an_outcome_once_recorded_is_not_overturned(command: Command) -> None:
    """A redelivered or late worker report must neither add a second outcome event nor
    change a concluded post: it is refused (like ``attempt`` on a terminal delivery) or
    records nothing."""
    history = given(start, attempt(X), attempt(TIKTOK), published(X), published(TIKTOK))
    concluded = replay(history)
    post = replay(history)
    with contextlib.suppress(DomainError):
        command(post)
    new = list(post.collect_events())

    assert names(new) == []
    assert state_of(post) == state_of(concluded)
