"""``due_changes``: the due-work rows a save's events add, move or remove.

Events come from real ``Post`` commands; each scenario names the rows the events of one save
imply, in the order the recorder receives them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import CanMutateAggregate

from application.due import DueChange, WorkKind, due_changes
from domain.integration import Integration
from domain.post import Post

Event = CanMutateAggregate[UUID]
Command = Callable[[Post], object]

ORG = UUID("00000000-0000-4000-8000-000000000001")
AUTHOR = UUID("00000000-0000-4000-8000-000000000002")
POST_A = UUID("0a000000-0000-4000-8000-000000000000")
POST_B = UUID("0b000000-0000-4000-8000-000000000000")
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
IN_AN_HOUR = NOW + timedelta(hours=1)
IN_TWO_HOURS = NOW + timedelta(hours=2)
LEASE = NOW + timedelta(minutes=2)
RECONCILE_AT = NOW + timedelta(seconds=35)
RETRY_AT = NOW + timedelta(minutes=15)
X = "acct-x"
TIKTOK = "acct-tiktok"
ACCOUNTS = {X: "twitter", TIKTOK: "tiktok"}

PUBLISH = WorkKind.PUBLISH
DELIVER = WorkKind.DELIVER


# --- given / when ------------------------------------------------------------------------


def draft(post_id: UUID = POST_A, accounts: dict[str, str] | None = None) -> Post:
    return Post.draft(
        organization_id=ORG,
        author_id=AUTHOR,
        content="one",
        thread=["two"],
        media_urls=[],
        accounts=dict(accounts or ACCOUNTS),
        post_id=post_id,
    )


def replay(events: Sequence[Event]) -> Post:
    post: Post | None = None
    for event in events:
        post = event.mutate(post)
    assert isinstance(post, Post)
    return post


def saved(*steps: Command, post_id: UUID = POST_A, **draft_args: Any) -> list[Event]:
    """The events of one save: drafted, then ``steps``."""
    post = draft(post_id, **draft_args)
    for step in steps:
        step(post)
    return list(post.collect_events())


def then_saved(history: Sequence[Event], *steps: Command) -> list[Event]:
    """The events of a later save that runs ``steps`` on the post ``history`` rebuilds."""
    post = replay(history)
    for step in steps:
        step(post)
    return list(post.collect_events())


def publish_row(due_at: datetime | None, post_id: UUID = POST_A) -> DueChange:
    return DueChange(PUBLISH, post_id, "", due_at)


def deliver_row(account_id: str, due_at: datetime | None, post_id: UUID = POST_A) -> DueChange:
    return DueChange(DELIVER, post_id, account_id, due_at)


# --- steps -----------------------------------------------------------------------------------


def schedule(at: datetime = IN_AN_HOUR) -> Command:
    return lambda post: post.schedule(at, now=NOW)


def start(post: Post) -> None:
    post.schedule(IN_AN_HOUR, now=NOW)
    post.start_publishing()


def attempt(account_id: str) -> Command:
    return lambda post: post.attempt(account_id, attempt_key="k", lease_until=LEASE)


def published(account_id: str) -> Command:
    return lambda post: post.record_published(account_id, remote_id="r", url="https://e.x/r")


def failed(account_id: str, retry_at: datetime | None = None) -> Command:
    return lambda post: post.record_failed(
        account_id, category="rate_limited", retryable=True, message="slow down", retry_at=retry_at
    )


def in_doubt(account_id: str) -> Command:
    return lambda post: post.record_in_doubt(account_id, reason="?", reconcile_at=RECONCILE_AT)


def segment(account_id: str, index: int) -> Command:
    return lambda post: post.record_segment(account_id, index=index, remote_id=f"r{index}")


def edit(post: Post) -> None:
    post.edit(content="changed", thread=[], media_urls=[], accounts=dict(ACCOUNTS))


# --- one event type at a time ----------------------------------------------------------


def test_no_events_change_no_rows() -> None:
    assert due_changes([]) == []


def test_drafting_and_editing_create_no_work() -> None:
    history = saved()
    assert due_changes(history) == []
    assert due_changes(then_saved(history, edit)) == []


def test_scheduling_adds_the_publish_row_at_the_scheduled_time() -> None:
    history = saved()
    assert due_changes(then_saved(history, schedule(IN_AN_HOUR))) == [publish_row(IN_AN_HOUR)]


def test_rescheduling_moves_the_publish_row() -> None:
    history = saved(schedule(IN_AN_HOUR))
    events = then_saved(history, schedule(IN_TWO_HOURS))
    assert [type(e).__name__ for e in events] == ["PostRescheduled"]
    assert due_changes(events) == [publish_row(IN_TWO_HOURS)]


@pytest.mark.parametrize(
    ("command", "event_name"),
    [
        (lambda post: post.unschedule(), "PostUnscheduled"),
        (lambda post: post.delete(), "PostDeleted"),
    ],
    ids=["unscheduled", "deleted"],
)
def test_unscheduling_or_deleting_removes_the_publish_row(
    command: Command, event_name: str
) -> None:
    events = then_saved(saved(schedule()), command)
    assert [type(e).__name__ for e in events] == [event_name]
    assert due_changes(events) == [publish_row(None)]


def test_a_missed_post_removes_the_publish_row_and_creates_no_delivery_work() -> None:
    events = then_saved(saved(schedule()), lambda post: post.miss("too late"))
    assert [type(e).__name__ for e in events] == ["PostMissed", "PostFailed"]
    assert due_changes(events) == [publish_row(None)]


def test_starting_removes_the_publish_row_and_adds_a_deliver_row_per_account_due_now() -> None:
    events = then_saved(saved(schedule()), lambda post: post.start_publishing())
    started_at = events[0].timestamp

    assert due_changes(events) == [
        deliver_row(TIKTOK, started_at),
        deliver_row(X, started_at),
        publish_row(None),
    ]


def test_a_claimed_attempt_comes_due_again_when_its_lease_ends() -> None:
    events = then_saved(saved(start), attempt(X))
    assert due_changes(events) == [deliver_row(X, LEASE)]


def test_an_extended_lease_moves_the_deliver_row_to_its_new_end() -> None:
    later = LEASE + timedelta(minutes=4)
    events = then_saved(
        saved(start, attempt(X)), lambda post: post.extend_lease(X, lease_until=later)
    )
    assert [type(e).__name__ for e in events] == ["AccountLeaseExtended"]
    assert due_changes(events) == [deliver_row(X, later)]


def test_a_checkpoint_changes_no_rows() -> None:
    events = then_saved(saved(start, attempt(X)), segment(X, 0))
    assert [type(e).__name__ for e in events] == ["ThreadSegmentPosted"]
    assert due_changes(events) == []


def test_an_in_doubt_attempt_comes_due_at_its_reconcile_time() -> None:
    events = then_saved(saved(start, attempt(X)), in_doubt(X))
    assert due_changes(events) == [deliver_row(X, RECONCILE_AT)]


def test_a_scheduled_retry_comes_due_at_its_retry_time() -> None:
    failure, retry = then_saved(saved(start, attempt(X)), failed(X, RETRY_AT))
    assert type(retry).__name__ == "AccountRetryScheduled"
    assert due_changes([retry]) == [deliver_row(X, RETRY_AT)]
    assert due_changes([failure]) == [deliver_row(X, None)]


def test_a_failure_removes_the_deliver_row() -> None:
    events = then_saved(saved(start, attempt(X)), failed(X))
    assert due_changes(events) == [deliver_row(X, None)]


def test_publishing_removes_the_deliver_row_and_plans_the_first_engagement_read() -> None:
    (event,) = then_saved(saved(start, attempt(X)), published(X))
    assert due_changes([event]) == [
        deliver_row(X, None),
        DueChange(WorkKind.METRICS, POST_A, X, event.timestamp + timedelta(hours=1)),
    ]


def test_each_engagement_read_plans_the_next_and_the_last_plans_none() -> None:
    post = Post.draft(
        organization_id=UUID(int=1),
        author_id=UUID(int=2),
        content="x",
        thread=[],
        media_urls=[],
        accounts={X: "twitter"},
    )
    post.schedule(IN_AN_HOUR, now=NOW)
    post.start_publishing()
    post.record_published(X, remote_id="1", url="https://x.com/i/1")
    published_at = post.deliveries[X].published_at
    assert published_at is not None
    read = dict.fromkeys(("likes", "comments", "shares", "views", "reach", "saves"), 1)
    post.record_metrics(X, **read, next_collection_at=published_at + timedelta(hours=6))
    post.defer_metrics(X, retry_at=published_at + timedelta(hours=7), reason="429")
    post.record_metrics(X, **read, next_collection_at=None)
    post.stop_metrics(X, reason="deleted")
    events = post.collect_events()[-4:]
    assert [due_changes([e]) for e in events] == [
        [DueChange(WorkKind.METRICS, post.id, X, published_at + timedelta(hours=6))],
        [DueChange(WorkKind.METRICS, post.id, X, published_at + timedelta(hours=7))],
        [DueChange(WorkKind.METRICS, post.id, X, None)],
        [DueChange(WorkKind.METRICS, post.id, X, None)],
    ]


def test_the_next_engagement_read_follows_the_schedule() -> None:
    from application.due import next_metrics_at

    at = NOW
    assert next_metrics_at(at, at + timedelta(hours=1)) == at + timedelta(hours=6)
    almost_six = at + timedelta(hours=5, minutes=59, seconds=30)
    assert next_metrics_at(at, almost_six) == at + timedelta(days=1)
    assert next_metrics_at(at, at + timedelta(days=2)) == at + timedelta(days=3)
    assert next_metrics_at(at, at + timedelta(days=14)) is None


@pytest.mark.parametrize(
    ("steps", "conclusion"),
    [
        ((published(X), published(TIKTOK)), "PostPublished"),
        ((failed(X), failed(TIKTOK)), "PostFailed"),
        ((published(X), failed(TIKTOK)), "PostPartiallyPublished"),
    ],
    ids=["published", "failed", "partial"],
)
def test_the_post_outcome_itself_changes_no_rows(
    steps: tuple[Command, ...], conclusion: str
) -> None:
    events = then_saved(saved(start, attempt(X), attempt(TIKTOK), *steps[:1]), *steps[1:])
    assert type(events[-1]).__name__ == conclusion
    assert due_changes(events[-1:]) == []


def test_republishing_adds_a_deliver_row_due_now_for_each_failed_account_only() -> None:
    history = saved(start, attempt(X), attempt(TIKTOK), published(X), failed(TIKTOK))
    events = then_saved(history, lambda post: post.republish())
    assert [type(e).__name__ for e in events] == ["RepublishRequested"]
    assert due_changes(events) == [deliver_row(TIKTOK, events[0].timestamp)]


# --- connected accounts ------------------------------------------------------------------------

ACCOUNT = UUID("00000000-0000-4000-8000-0000000000a1")
REFRESH = WorkKind.REFRESH
HEALTH = WorkKind.HEALTH_CHECK
WARNING = WorkKind.EXPIRY_WARNING
IntegrationCommand = Callable[[Integration], object]


def connected(
    expires_in: timedelta | None = timedelta(hours=2), provider: str = "twitter"
) -> Integration:
    """A freshly connected account whose token expires ``expires_in`` from now."""
    return Integration.connect(
        organization_id=ORG,
        provider=provider,
        external_account_id="123",
        account_name="kairos",
        display_name="Kairos",
        avatar_url=None,
        credential_id=UUID("00000000-0000-4000-8000-0000000000c1"),
        token_expires_at=None if expires_in is None else datetime.now(UTC) + expires_in,
        scopes=[],
        capabilities=[],
    )


def account_saved(integration: Integration, *steps: IntegrationCommand) -> list[Event]:
    """The events of one save: whatever ``integration`` has pending, then ``steps``."""
    for step in steps:
        step(integration)
    return list(integration.collect_events())


def account_row(kind: WorkKind, due_at: datetime | None) -> DueChange:
    return DueChange(kind, Integration.create_id(ORG, "twitter", "123"), "", due_at)


def connected_event(integration: Integration) -> Integration.IntegrationConnected:
    (event,) = account_saved(integration)
    assert isinstance(event, Integration.IntegrationConnected)
    return event


def expiry_of(event: Integration.IntegrationConnected) -> datetime:
    assert event.token_expires_at is not None
    return event.token_expires_at


def rows_by_kind(changes: list[DueChange]) -> dict[WorkKind, datetime | None]:
    assert len({(c.subject_id, c.key) for c in changes}) <= 1
    return {c.kind: c.due_at for c in changes}


def in_two_hours() -> datetime:
    """Two hours after the events about to be recorded (the library stamps them "now")."""
    return datetime.now(UTC) + timedelta(hours=2)


def test_connecting_schedules_the_refresh_before_expiry_and_the_daily_check() -> None:
    event = connected_event(connected(timedelta(hours=2)))
    expires_at = expiry_of(event)

    assert due_changes([event]) == [
        account_row(WARNING, None),  # a two-hour token renews itself long before a week
        account_row(HEALTH, event.timestamp + timedelta(hours=24)),
        account_row(REFRESH, expires_at - timedelta(minutes=10)),
    ]


def test_a_token_that_never_expires_needs_no_refresh_but_still_a_daily_check() -> None:
    event = connected_event(connected(None))
    assert rows_by_kind(due_changes([event])) == {
        WARNING: None,
        HEALTH: event.timestamp + timedelta(hours=24),
        REFRESH: None,
    }


def test_a_token_shorter_than_twice_the_margin_is_refreshed_at_half_its_lifetime() -> None:
    event = connected_event(connected(timedelta(seconds=4)))
    expires_at = expiry_of(event)
    half_life = (expires_at - event.timestamp) / 2
    assert timedelta(seconds=1.9) < half_life < timedelta(seconds=2.1)
    assert rows_by_kind(due_changes([event]))[REFRESH] == expires_at - half_life


@pytest.mark.parametrize(
    ("provider", "margin"),
    [
        ("twitter", timedelta(minutes=10)),
        ("tiktok", timedelta(minutes=30)),
        ("mastodon", timedelta(minutes=10)),
    ],
)
def test_the_refresh_margin_is_the_providers(provider: str, margin: timedelta) -> None:
    event = connected_event(connected(timedelta(hours=24), provider=provider))
    assert rows_by_kind(due_changes([event]))[REFRESH] == expiry_of(event) - margin


def test_later_events_take_the_provider_from_the_saved_aggregates() -> None:
    integration = connected(timedelta(hours=24), provider="tiktok")
    integration.collect_events()
    later = datetime.now(UTC) + timedelta(hours=30)
    (refreshed,) = account_saved(
        integration, lambda i: i.record_token_refreshed(token_expires_at=later)
    )

    tiktok = rows_by_kind(due_changes([refreshed], {integration.id: "tiktok"}))
    unknown = rows_by_kind(due_changes([refreshed]))

    assert tiktok[REFRESH] == later - timedelta(minutes=30)
    assert unknown[REFRESH] == later - timedelta(minutes=10)


def test_a_long_lived_token_gets_an_expiry_warning_a_week_ahead() -> None:
    event = connected_event(connected(timedelta(days=60)))
    expires_at = expiry_of(event)
    rows = rows_by_kind(due_changes([event]))
    assert rows[WARNING] == expires_at - timedelta(days=7)
    assert rows[REFRESH] == expires_at - timedelta(minutes=10)


def test_reconnecting_schedules_like_connecting() -> None:
    integration = connected(timedelta(hours=2))
    integration.collect_events()
    expires_at = in_two_hours()
    (reconnected,) = account_saved(
        integration,
        lambda i: i.reconnect(
            account_name="kairos",
            display_name="Kairos",
            avatar_url=None,
            credential_id=UUID("00000000-0000-4000-8000-0000000000c2"),
            token_expires_at=expires_at,
            scopes=[],
        ),
    )
    assert rows_by_kind(due_changes([reconnected])) == {
        WARNING: None,
        HEALTH: reconnected.timestamp + timedelta(hours=24),
        REFRESH: expires_at - timedelta(minutes=10),
    }


def test_a_refresh_moves_the_refresh_row_and_leaves_the_daily_check_alone() -> None:
    integration = connected()
    integration.collect_events()
    expires_at = in_two_hours()
    (refreshed,) = account_saved(
        integration, lambda i: i.record_token_refreshed(token_expires_at=expires_at)
    )
    assert rows_by_kind(due_changes([refreshed])) == {
        WARNING: None,
        REFRESH: expires_at - timedelta(minutes=10),
    }


def test_a_passing_check_schedules_the_next_one_a_day_later() -> None:
    integration = connected()
    integration.collect_events()
    (checked,) = account_saved(integration, Integration.record_checked)
    assert rows_by_kind(due_changes([checked])) == {HEALTH: checked.timestamp + timedelta(hours=24)}


def test_an_error_is_checked_again_within_the_hour() -> None:
    integration = connected()
    integration.collect_events()
    (errored,) = account_saved(
        integration, lambda i: i.record_error(operation="health_check", message="503")
    )
    assert rows_by_kind(due_changes([errored])) == {HEALTH: errored.timestamp + timedelta(hours=1)}


def test_a_failed_refresh_is_retried_at_its_retry_time_and_checked_within_the_hour() -> None:
    integration = connected(timedelta(days=60))
    integration.collect_events()
    events = account_saved(
        integration, lambda i: i.record_refresh_failed(message="503", retry_at=RETRY_AT)
    )
    assert [type(e).__name__ for e in events] == ["IntegrationErrored", "RefreshRetryScheduled"]
    assert rows_by_kind(due_changes(events)) == {
        WARNING: None,  # the refresh row carries the renewal from here
        HEALTH: events[0].timestamp + timedelta(hours=1),
        REFRESH: RETRY_AT,
    }


def test_a_warning_ends_the_expiry_warning_row() -> None:
    integration = connected(timedelta(days=60))
    integration.collect_events()
    events = account_saved(
        integration,
        lambda i: i.warn_expiring(IN_TWO_HOURS),
        lambda i: i.retry_refresh_at(IN_TWO_HOURS),
    )
    assert rows_by_kind(due_changes(events)) == {WARNING: None, REFRESH: IN_TWO_HOURS}


@pytest.mark.parametrize(
    "ending",
    [lambda i: i.record_token_expired("revoked"), lambda i: i.disconnect()],
    ids=["expired", "disconnected"],
)
def test_expiry_or_disconnection_ends_all_account_work(ending: IntegrationCommand) -> None:
    integration = connected()
    integration.collect_events()
    assert rows_by_kind(due_changes(account_saved(integration, ending))) == {
        WARNING: None,
        HEALTH: None,
        REFRESH: None,
    }


def test_activation_changes_no_rows() -> None:
    integration = connected()
    integration.collect_events()
    events = account_saved(integration, Integration.deactivate, Integration.activate)
    assert len(events) == 2
    assert due_changes(events) == []


def test_connecting_then_expiring_in_one_save_deletes_every_row() -> None:
    events = account_saved(connected(), lambda i: i.record_token_expired("revoked"))
    assert rows_by_kind(due_changes(events)) == {WARNING: None, HEALTH: None, REFRESH: None}


def test_post_and_account_rows_in_one_save_are_sorted_by_kind() -> None:
    post_events = saved(schedule(IN_AN_HOUR))
    changes = due_changes([*post_events, connected_event(connected(None))])
    assert [c.kind for c in changes] == [WARNING, HEALTH, PUBLISH, REFRESH]


# --- the last word on a row wins -----------------------------------------------------------


def test_a_failure_with_a_retry_in_one_save_leaves_the_retry_row() -> None:
    events = then_saved(saved(start, attempt(X)), failed(X, RETRY_AT))
    assert [type(e).__name__ for e in events] == ["AccountPublishFailed", "AccountRetryScheduled"]
    assert due_changes(events) == [deliver_row(X, RETRY_AT)]


def test_an_attempt_then_its_outcome_in_one_batch_deletes_the_row() -> None:
    history = saved(start)
    attempted = then_saved(history, attempt(X))
    outcome = then_saved([*history, *attempted], failed(X))
    assert due_changes([*attempted, *outcome]) == [deliver_row(X, None)]


def test_an_outcome_then_a_later_republish_in_one_batch_keeps_the_row() -> None:
    history = saved(start, attempt(X), accounts={X: "twitter"})
    events = then_saved(history, failed(X), lambda post: post.republish())
    assert [type(e).__name__ for e in events] == [
        "AccountPublishFailed",
        "PostFailed",
        "RepublishRequested",
    ]
    assert due_changes(events) == [deliver_row(X, events[-1].timestamp)]


def test_scheduling_then_rescheduling_in_one_save_keeps_the_later_time() -> None:
    events = saved(schedule(IN_AN_HOUR), schedule(IN_TWO_HOURS))
    assert due_changes(events) == [publish_row(IN_TWO_HOURS)]


def test_scheduling_then_deleting_in_one_save_deletes_the_row() -> None:
    events = saved(schedule(), lambda post: post.delete())
    assert due_changes(events) == [publish_row(None)]


def test_starting_and_claiming_in_one_save_keeps_each_rows_last_word() -> None:
    events = saved(start, attempt(X), in_doubt(X))
    started_at = next(e for e in events if isinstance(e, Post.PublishingStarted)).timestamp

    assert due_changes(events) == [
        deliver_row(TIKTOK, started_at),
        deliver_row(X, RECONCILE_AT),
        publish_row(None),
    ]


# --- a fixed order -----------------------------------------------------------------------------


def test_rows_are_sorted_by_kind_then_subject_then_key() -> None:
    accounts = {"acct-z": "twitter", "acct-a": "twitter", "acct-m": "tiktok"}
    b_events = saved(start, post_id=POST_B, accounts=accounts)
    a_events = saved(start, post_id=POST_A, accounts=accounts)
    b_at = b_events[-1].timestamp
    a_at = a_events[-1].timestamp

    expected = [
        deliver_row("acct-a", a_at, POST_A),
        deliver_row("acct-m", a_at, POST_A),
        deliver_row("acct-z", a_at, POST_A),
        deliver_row("acct-a", b_at, POST_B),
        deliver_row("acct-m", b_at, POST_B),
        deliver_row("acct-z", b_at, POST_B),
        publish_row(None, POST_A),
        publish_row(None, POST_B),
    ]
    assert due_changes([*b_events, *a_events]) == expected
    assert due_changes([*a_events, *b_events]) == expected


def test_the_subject_is_ordered_by_its_text_form() -> None:
    low = UUID("10000000-0000-4000-8000-000000000000")
    high = UUID("f0000000-0000-4000-8000-000000000000")
    rows = due_changes([*saved(schedule(), post_id=high), *saved(schedule(), post_id=low)])
    assert [row.subject_id for row in rows] == [low, high]


def test_the_order_does_not_depend_on_the_order_of_independent_events() -> None:
    history = saved(start)
    x_claim = then_saved(history, attempt(X))
    tiktok_claim = then_saved([*history, *x_claim], attempt(TIKTOK))

    forwards = due_changes([*x_claim, *tiktok_claim])
    backwards = due_changes([*tiktok_claim, *x_claim])
    assert forwards == backwards == [deliver_row(TIKTOK, LEASE), deliver_row(X, LEASE)]


def test_any_iterable_of_events_will_do() -> None:
    events = saved(schedule())
    assert due_changes(iter(events)) == due_changes(events) == [publish_row(IN_AN_HOUR)]
