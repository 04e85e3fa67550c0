"""The publishing protocol inside the Post aggregate, as given events / when a command / then
new events or an error: thread checkpoints, scheduled retries, missed posts and republishing.

Every scenario also replays the whole history from scratch and checks it rebuilds exactly the
state the live aggregate reached, and every refused command is checked to have changed nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from domain.errors import InvalidField, PostAlreadyDeleted, PostNotEditable
from domain.post import Delivery, DeliveryStatus, Post, PostStatus
from tests.unit.scenarios import (
    Command,
    Event,
    facts,
    names,
    replay,
    when,
    when_refused,
)

ORG = UUID("00000000-0000-4000-8000-000000000001")
AUTHOR = UUID("00000000-0000-4000-8000-000000000002")
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
IN_AN_HOUR = NOW + timedelta(hours=1)
LEASE = NOW + timedelta(minutes=5)
RECONCILE_AT = NOW + timedelta(seconds=35)
RETRY_AT = NOW + timedelta(minutes=15)
LATER_RETRY_AT = NOW + timedelta(minutes=45)
X = "acct-x"
TIKTOK = "acct-tiktok"
ACCOUNTS = {X: "twitter", TIKTOK: "tiktok"}
ONLY_X = {X: "twitter"}
MISSED = "not published: Kairos could not start it in time"


# --- given / when / then (as in test_post.py) ----------------------------------------------


def draft(**overrides: Any) -> Post:
    values: dict[str, Any] = {
        "organization_id": ORG,
        "author_id": AUTHOR,
        "content": "one",
        "thread": ["two", "three"],
        "media_urls": [],
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


def schedule(post: Post) -> None:
    post.schedule(IN_AN_HOUR, now=NOW)


def start(post: Post) -> None:
    post.schedule(IN_AN_HOUR, now=NOW)
    post.start_publishing()


def unschedule(post: Post) -> None:
    post.unschedule()


def delete(post: Post) -> None:
    post.delete()


def attempt(account_id: str, key: str = "k1") -> Command:
    return lambda post: post.attempt(account_id, attempt_key=key, lease_until=LEASE)


def segment(account_id: str, index: int, remote_id: str | None = None) -> Command:
    return lambda post: post.record_segment(
        account_id, index=index, remote_id=remote_id or f"r{index}"
    )


def published(account_id: str, remote_id: str = "r0") -> Command:
    return lambda post: post.record_published(
        account_id, remote_id=remote_id, url=f"https://example.com/{remote_id}"
    )


def failed(account_id: str) -> Command:
    return lambda post: post.record_failed(
        account_id, category="content_rejected", retryable=False, message="too long"
    )


def rate_limited(account_id: str, retry_at: datetime = RETRY_AT) -> Command:
    return lambda post: post.record_failed(
        account_id,
        category="rate_limited",
        retryable=True,
        message="too many requests",
        retry_at=retry_at,
    )


def in_doubt(account_id: str) -> Command:
    return lambda post: post.record_in_doubt(
        account_id, reason="connection reset", reconcile_at=RECONCILE_AT
    )


def miss(post: Post) -> None:
    post.miss(MISSED)


def republish(post: Post) -> None:
    post.republish()


PARTIAL = (start, attempt(X), attempt(TIKTOK), published(X), failed(TIKTOK))


# --- parts --------------------------------------------------------------------------------


def test_the_parts_are_the_content_then_each_thread_part() -> None:
    assert draft().parts == ["one", "two", "three"]
    assert draft(thread=[]).parts == ["one"]


# --- thread checkpoints ---------------------------------------------------------------------


def test_each_posted_part_is_checkpointed_in_order() -> None:
    history = given(start, attempt(X))
    then, post = when(history, segment(X, 0, "remote-1"))

    assert facts(then) == [
        ("ThreadSegmentPosted", {"account_id": X, "index": 0, "remote_id": "remote-1"})
    ]
    assert post.deliveries[X].segments == ["remote-1"]
    assert post.deliveries[X].status is DeliveryStatus.PUBLISHING
    assert post.deliveries[TIKTOK].segments == []
    assert post.status is PostStatus.PUBLISHING

    history = [*history, *then]
    then, post = when(history, segment(X, 1, "remote-2"))
    assert facts(then) == [
        ("ThreadSegmentPosted", {"account_id": X, "index": 1, "remote_id": "remote-2"})
    ]
    assert post.deliveries[X].segments == ["remote-1", "remote-2"]


def test_checkpoints_do_not_conclude_the_delivery() -> None:
    history = given(start, attempt(X), segment(X, 0), segment(X, 1))
    then, post = when(history, segment(X, 2))

    assert names(then) == ["ThreadSegmentPosted"]
    assert post.deliveries[X].segments == ["r0", "r1", "r2"]
    assert post.deliveries[X].status is DeliveryStatus.PUBLISHING
    assert post.status is PostStatus.PUBLISHING


@pytest.mark.parametrize(
    ("index", "message"),
    [
        (0, "part 0 follows 1 posted"),
        (2, "part 2 follows 1 posted"),
        (-1, "part -1 follows 1 posted"),
    ],
    ids=["repeated", "skipping-one", "negative"],
)
def test_a_checkpoint_out_of_order_is_refused(index: int, message: str) -> None:
    refused = when_refused(given(start, attempt(X), segment(X, 0)), segment(X, index), InvalidField)
    assert refused.field == "index"
    assert refused.message == message


def test_the_first_checkpoint_must_be_part_zero() -> None:
    refused = when_refused(given(start, attempt(X)), segment(X, 1), InvalidField)
    assert refused.field == "index"
    assert refused.message == "part 1 follows 0 posted"


def test_a_checkpoint_for_an_ended_delivery_is_refused() -> None:
    when_refused(given(start, attempt(X), published(X)), segment(X, 0), PostNotEditable)
    when_refused(given(start, attempt(X), failed(X)), segment(X, 0), PostNotEditable)


def test_a_checkpoint_for_an_account_the_post_does_not_deliver_to_is_refused() -> None:
    refused = when_refused(given(start), segment("nope", 0), InvalidField)
    assert refused.field == "accountId"


def test_checkpoints_survive_an_in_doubt_attempt_and_a_new_attempt() -> None:
    history = given(start, attempt(X, "k1"), segment(X, 0), in_doubt(X))
    then, post = when(history, attempt(X, "k2"))

    assert facts(then) == [
        (
            "AccountPublishAttempted",
            {"account_id": X, "attempt": 2, "attempt_key": "k2", "lease_until": LEASE},
        )
    ]
    delivery = post.deliveries[X]
    assert delivery.segments == ["r0"]
    assert delivery.attempts == 2
    assert delivery.status is DeliveryStatus.PUBLISHING
    assert delivery.last_attempt_at == then[0].timestamp

    history = [*history, *then]
    then, post = when(history, segment(X, 1))
    assert post.deliveries[X].segments == ["r0", "r1"]

    history = [*history, *then]
    then, post = when(history, published(X, "r0"))
    assert names(then) == ["AccountPublished"]
    assert post.deliveries[X].segments == ["r0", "r1"]
    assert post.deliveries[X].status is DeliveryStatus.PUBLISHED


def test_an_in_doubt_attempt_waits_until_its_reconcile_time() -> None:
    then, post = when(given(start, attempt(X)), in_doubt(X))

    assert names(then) == ["AccountPublishInDoubt"]
    assert post.deliveries[X].next_attempt_at == RECONCILE_AT
    assert post.deliveries[X].status is DeliveryStatus.IN_DOUBT


# --- scheduled retries ----------------------------------------------------------------------


def test_a_failure_with_a_retry_time_schedules_a_retry_instead_of_an_outcome() -> None:
    history = given(start, attempt(X), accounts=ONLY_X)
    then, post = when(history, rate_limited(X))

    assert facts(then) == [
        (
            "AccountPublishFailed",
            {
                "account_id": X,
                "category": "rate_limited",
                "retryable": True,
                "message": "too many requests",
            },
        ),
        ("AccountRetryScheduled", {"account_id": X, "retry_at": RETRY_AT}),
    ]
    delivery = post.deliveries[X]
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.next_attempt_at == RETRY_AT
    assert delivery.attempts == 1
    assert delivery.error_category == "rate_limited"
    assert delivery.error_message == "too many requests"
    assert delivery.retryable is True
    assert post.status is PostStatus.PUBLISHING
    assert post.published_at is None


def test_a_retry_is_not_a_partial_outcome_even_when_the_other_account_is_published() -> None:
    history = given(start, attempt(X), attempt(TIKTOK), published(TIKTOK))
    then, post = when(history, rate_limited(X))

    assert names(then) == ["AccountPublishFailed", "AccountRetryScheduled"]
    assert post.status is PostStatus.PUBLISHING
    assert post.published_at is None


def test_a_failure_without_a_retry_time_ends_the_delivery() -> None:
    then, post = when(given(start, attempt(X), accounts=ONLY_X), failed(X))

    assert names(then) == ["AccountPublishFailed", "PostFailed"]
    assert post.deliveries[X].status is DeliveryStatus.FAILED
    assert post.deliveries[X].next_attempt_at is None


def test_retries_then_success_publish_the_post() -> None:
    history = given(
        start,
        attempt(X, "k1"),
        rate_limited(X, RETRY_AT),
        attempt(X, "k2"),
        rate_limited(X, LATER_RETRY_AT),
        accounts=ONLY_X,
    )
    then, post = when(history, attempt(X, "k3"))
    assert [e.attempt for e in then] == [3]  # type: ignore[attr-defined]
    assert post.deliveries[X].status is DeliveryStatus.PUBLISHING

    history = [*history, *then]
    then, post = when(history, published(X, "r9"))

    assert names(then) == ["AccountPublished", "PostPublished"]
    delivery = post.deliveries[X]
    assert delivery.status is DeliveryStatus.PUBLISHED
    assert delivery.attempts == 3
    assert delivery.remote_id == "r9"
    assert delivery.error_category is None
    assert delivery.error_message is None
    assert post.status is PostStatus.PUBLISHED
    assert post.published_at == then[-1].timestamp


def test_a_retry_can_end_in_a_final_failure() -> None:
    history = given(start, attempt(X, "k1"), rate_limited(X), attempt(X, "k2"), accounts=ONLY_X)
    then, post = when(history, failed(X))

    assert names(then) == ["AccountPublishFailed", "PostFailed"]
    assert post.status is PostStatus.FAILED


# --- missed posts ---------------------------------------------------------------------------


def test_a_scheduled_post_can_be_missed_which_fails_every_delivery() -> None:
    then, post = when(given(schedule), miss)

    assert facts(then) == [("PostMissed", {"reason": MISSED}), ("PostFailed", {})]
    assert post.status is PostStatus.FAILED
    assert post.publishing_started_at == then[0].timestamp
    assert post.published_at is None
    assert post.deliveries == {
        X: Delivery(
            account_id=X,
            provider="twitter",
            status=DeliveryStatus.FAILED,
            error_category="missed",
            error_message=MISSED,
        ),
        TIKTOK: Delivery(
            account_id=TIKTOK,
            provider="tiktok",
            status=DeliveryStatus.FAILED,
            error_category="missed",
            error_message=MISSED,
        ),
    }


@pytest.mark.parametrize(
    "history",
    [
        given(),
        given(schedule, unschedule),
        given(start),
        given(start, attempt(X)),
        given(*PARTIAL),
        given(schedule, miss),
    ],
    ids=["draft", "unscheduled", "publishing", "attempting", "partial", "already-missed"],
)
def test_only_a_scheduled_post_can_be_missed(history: list[Event]) -> None:
    refused = when_refused(history, miss, PostNotEditable)
    assert refused.message.endswith("post cannot be missed")


@pytest.mark.parametrize(
    "history", [given(delete), given(schedule, delete)], ids=["deleted-draft", "deleted-scheduled"]
)
def test_a_deleted_post_is_never_missed(history: list[Event]) -> None:
    when_refused(history, miss, PostAlreadyDeleted)


def test_a_missed_post_cannot_start_publishing() -> None:
    when_refused(given(schedule, miss), lambda post: post.start_publishing(), PostNotEditable)


# --- republishing ---------------------------------------------------------------------------


def test_republishing_a_partial_post_retries_only_the_failed_accounts() -> None:
    history = given(*PARTIAL)
    before = replay(history)
    assert before.status is PostStatus.PARTIAL
    assert replay(history).republish() == [TIKTOK]

    then, post = when(history, republish)

    assert facts(then) == [("RepublishRequested", {"account_ids": [TIKTOK]})]
    assert post.status is PostStatus.PUBLISHING
    assert post.deliveries[X] == before.deliveries[X]
    assert post.deliveries[TIKTOK] == Delivery(
        account_id=TIKTOK,
        provider="tiktok",
        status=DeliveryStatus.PENDING,
        attempts=1,
        last_attempt_at=before.deliveries[TIKTOK].last_attempt_at,
        lease_until=LEASE,
    )


def test_a_republished_account_that_then_publishes_publishes_the_post() -> None:
    history = given(*PARTIAL, republish)
    then, post = when(history, attempt(TIKTOK, "k2"))
    assert [e.attempt for e in then] == [2]  # type: ignore[attr-defined]

    history = [*history, *then]
    then, post = when(history, published(TIKTOK, "t1"))

    assert names(then) == ["AccountPublished", "PostPublished"]
    assert post.status is PostStatus.PUBLISHED
    assert post.published_at == then[-1].timestamp
    assert post.deliveries[X].remote_id == "r0"
    assert post.deliveries[TIKTOK].remote_id == "t1"


def test_a_republished_account_that_fails_again_leaves_the_post_partial() -> None:
    history = given(*PARTIAL, republish, attempt(TIKTOK, "k2"))
    then, post = when(history, failed(TIKTOK))

    assert names(then) == ["AccountPublishFailed", "PostPartiallyPublished"]
    assert post.status is PostStatus.PARTIAL


def test_republishing_a_failed_post_retries_every_account() -> None:
    history = given(start, attempt(X), attempt(TIKTOK), failed(X), failed(TIKTOK))
    then, post = when(history, republish)

    assert facts(then) == [("RepublishRequested", {"account_ids": [X, TIKTOK]})]
    assert post.status is PostStatus.PUBLISHING
    assert {d.status for d in post.deliveries.values()} == {DeliveryStatus.PENDING}


def test_republishing_a_missed_post_retries_every_account_from_the_first_attempt() -> None:
    history = given(schedule, miss)
    then, post = when(history, republish)

    assert facts(then) == [("RepublishRequested", {"account_ids": [X, TIKTOK]})]
    assert post.status is PostStatus.PUBLISHING
    assert post.deliveries[X] == Delivery(account_id=X, provider="twitter")

    then, post = when([*history, *then], attempt(X))
    assert [e.attempt for e in then] == [1]  # type: ignore[attr-defined]


def test_republishing_keeps_the_checkpoints_so_a_thread_resumes() -> None:
    history = given(start, attempt(X), segment(X, 0), segment(X, 1), failed(X), accounts=ONLY_X)
    then, post = when(history, republish)

    assert names(then) == ["RepublishRequested"]
    assert post.deliveries[X].segments == ["r0", "r1"]

    then, post = when([*history, *then], segment(X, 2))
    assert post.deliveries[X].segments == ["r0", "r1", "r2"]


@pytest.mark.parametrize(
    "history",
    [
        given(),
        given(schedule),
        given(start),
        given(start, attempt(X), attempt(TIKTOK), published(X), published(TIKTOK)),
        given(*PARTIAL, republish),
    ],
    ids=["draft", "scheduled", "publishing", "published", "republishing"],
)
def test_only_a_failed_or_partial_post_can_be_republished(history: list[Event]) -> None:
    refused = when_refused(history, republish, PostNotEditable)
    assert refused.message.startswith("only failed or partial posts can be republished")


@pytest.mark.parametrize(
    "history",
    [given(delete), given(*PARTIAL, delete), given(schedule, miss, delete)],
    ids=["deleted-draft", "deleted-partial", "deleted-missed"],
)
def test_a_deleted_post_cannot_be_republished(history: list[Event]) -> None:
    when_refused(history, republish, PostAlreadyDeleted)
