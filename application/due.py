"""Future work derived from events, written in the same transaction as the events.

Every event that creates work for later (a post scheduled at T, a delivery to retry at T,
an in-doubt publish to reconcile, a token to refresh before it expires, an account's daily
health check) upserts a row of the due-work table; every event that ends or cancels it
deletes the row. Because the recorder writes these rows inside the events'
own transaction, no work is ever missed or orphaned: the store and the index cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from domain.integration import Integration
from domain.post import Post

DUE_CHANNEL = "kairos_due"
"""PostgreSQL NOTIFY channel that wakes the dispatcher when new work comes due soon."""

METRICS_SCHEDULE = (
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(days=1),
    timedelta(days=3),
    timedelta(days=7),
    timedelta(days=14),
)
"""How long after publishing a post's engagement is read: early reads show the first
response, later ones where it settles (most posts get little after two weeks)."""

WAKE_HORIZON = timedelta(seconds=30)
"""The dispatcher never sleeps longer than this, so only work due sooner needs a NOTIFY."""


class WorkKind(StrEnum):
    PUBLISH = "publish"
    """Start publishing a post (due at its scheduled time)."""
    DELIVER = "deliver"
    """Publish a post to one account, or settle an attempt whose outcome is unknown."""
    REFRESH = "refresh"
    """Renew an account's access token shortly before it expires (subject: the integration)."""
    HEALTH_CHECK = "health_check"
    """Make a cheap authenticated call to prove the account still works (daily)."""
    EXPIRY_WARNING = "expiry_warning"
    """A week before a long-lived token expires: renew it, or warn that it will end."""
    METRICS = "metrics"
    """Read a published post's engagement on one account (at +1 h, +6 h, +1 d, +3 d...)."""


ACCOUNT_WORK = frozenset({WorkKind.REFRESH, WorkKind.HEALTH_CHECK, WorkKind.EXPIRY_WARNING})
"""Kinds whose subject is an integration rather than a post."""

REFRESH_MARGINS: Mapping[str, timedelta] = {
    "twitter": timedelta(minutes=10),
    "tiktok": timedelta(minutes=30),
    "instagram": timedelta(days=1),
}
"""How long before its access token expires an account is refreshed, per provider."""
DEFAULT_REFRESH_MARGIN = timedelta(minutes=10)
HEALTH_CHECK_EVERY = timedelta(hours=24)
RECHECK_AFTER_ERROR = timedelta(hours=1)
EXPIRY_WARNING_LEAD = timedelta(days=7)
"""How far ahead the owner hears that a connection which cannot renew itself will end."""


def next_metrics_at(published_at: datetime, now: datetime) -> datetime | None:
    """The next planned engagement read after one at ``now``; None after the last."""
    for offset in METRICS_SCHEDULE:
        if published_at + offset > now + timedelta(minutes=1):
            return published_at + offset
    return None


def refresh_margin(provider: str | None) -> timedelta:
    return REFRESH_MARGINS.get(provider or "", DEFAULT_REFRESH_MARGIN)


def refresh_due_at(provider: str | None, issued_at: datetime, expires_at: datetime) -> datetime:
    """When to refresh a token issued at ``issued_at``: the provider's margin before it
    expires, but never before half its lifetime has passed, so a platform (or a simulator)
    handing out tokens shorter than the margin does not get refreshed in a tight loop."""
    lifetime = max(expires_at - issued_at, timedelta(0))
    return expires_at - min(refresh_margin(provider), lifetime / 2)


@dataclass(frozen=True)
class DueChange:
    kind: WorkKind
    subject_id: UUID
    key: str
    due_at: datetime | None
    """``None`` deletes the row: the work is done or cancelled."""


def due_changes(
    events: Iterable[Any], providers: Mapping[UUID, str] | None = None
) -> list[DueChange]:
    """The rows the given events add, move or remove; the last word on each row wins.

    ``providers`` names the platform of each integration among the events' originators (only
    ``IntegrationConnected`` carries it), for the per-provider refresh margin."""
    latest: dict[tuple[WorkKind, UUID, str], DueChange] = {}
    known = dict(providers or {})
    for event in events:
        if isinstance(event, Integration.IntegrationConnected):
            known.setdefault(event.originator_id, event.provider)
        provider = known.get(event.originator_id)
        for change in [*_changes_of(event), *_integration_changes(event, provider)]:
            latest[(change.kind, change.subject_id, change.key)] = change
    # A fixed order, so concurrent transactions lock index rows in the same sequence.
    return sorted(latest.values(), key=lambda c: (c.kind, str(c.subject_id), c.key))


def _changes_of(event: Any) -> Sequence[DueChange]:
    post_id: UUID = event.originator_id

    def publish(due_at: datetime | None) -> DueChange:
        return DueChange(WorkKind.PUBLISH, post_id, "", due_at)

    def deliver(account_id: str, due_at: datetime | None) -> DueChange:
        return DueChange(WorkKind.DELIVER, post_id, account_id, due_at)

    def metrics(account_id: str, due_at: datetime | None) -> DueChange:
        return DueChange(WorkKind.METRICS, post_id, account_id, due_at)

    match event:
        case Post.PostScheduled() | Post.PostRescheduled():
            return [publish(event.scheduled_at)]
        case Post.PostUnscheduled() | Post.PostDeleted() | Post.PostMissed():
            return [publish(None)]
        case Post.PublishingStarted():
            return [publish(None), *(deliver(a, event.timestamp) for a in event.accounts)]
        case Post.AccountPublishAttempted():
            # If the worker dies mid-attempt, the row comes due again when its lease ends.
            return [deliver(event.account_id, event.lease_until)]
        case Post.AccountLeaseExtended():
            # A long upload holds the claim longer: the row waits for the new lease end.
            return [deliver(event.account_id, event.lease_until)]
        case Post.AccountPublishInDoubt():
            return [deliver(event.account_id, event.reconcile_at)]
        case Post.AccountRetryScheduled():
            return [deliver(event.account_id, event.retry_at)]
        case Post.AccountPublished():
            return [
                deliver(event.account_id, None),
                metrics(event.account_id, event.timestamp + METRICS_SCHEDULE[0]),
            ]
        case Post.AccountPublishFailed():
            return [deliver(event.account_id, None)]
        case Post.AccountMetricsCollected():
            return [metrics(event.account_id, event.next_collection_at)]
        case Post.AccountMetricsDeferred():
            return [metrics(event.account_id, event.retry_at)]
        case Post.AccountMetricsStopped():
            return [metrics(event.account_id, None)]
        case Post.RepublishRequested():
            return [deliver(a, event.timestamp) for a in event.account_ids]
    return []


def _integration_changes(event: Any, provider: str | None) -> Sequence[DueChange]:
    integration_id: UUID = event.originator_id
    at: datetime = event.timestamp

    def row(kind: WorkKind, due_at: datetime | None) -> DueChange:
        return DueChange(kind, integration_id, "", due_at)

    def token_rows(expires_at: datetime | None) -> list[DueChange]:
        if expires_at is None:  # a token that never expires needs no renewing
            return [row(WorkKind.REFRESH, None), row(WorkKind.EXPIRY_WARNING, None)]
        warn_at = expires_at - EXPIRY_WARNING_LEAD
        return [
            row(WorkKind.REFRESH, refresh_due_at(provider, at, expires_at)),
            # Only long-lived tokens: a short one is renewed (or found unrenewable) by its
            # refresh long before a week's notice could matter.
            row(WorkKind.EXPIRY_WARNING, warn_at if warn_at > at else None),
        ]

    def ended() -> list[DueChange]:
        return [row(kind, None) for kind in sorted(ACCOUNT_WORK)]

    match event:
        case Integration.IntegrationConnected() | Integration.IntegrationReconnected():
            return [
                *token_rows(event.token_expires_at),
                row(WorkKind.HEALTH_CHECK, at + HEALTH_CHECK_EVERY),
            ]
        case Integration.TokenRefreshed():
            # The daily check stays where it is: X refreshes every two hours, and moving the
            # check with each refresh would put it off forever.
            return token_rows(event.token_expires_at)
        case Integration.IntegrationChecked():
            return [row(WorkKind.HEALTH_CHECK, at + HEALTH_CHECK_EVERY)]
        case Integration.IntegrationErrored():
            changes = [row(WorkKind.HEALTH_CHECK, at + RECHECK_AFTER_ERROR)]
            if event.operation == "refresh":  # the refresh row takes over the renewal
                changes.append(row(WorkKind.EXPIRY_WARNING, None))
            return changes
        case Integration.RefreshRetryScheduled():
            return [row(WorkKind.REFRESH, event.retry_at)]
        case Integration.ConnectionExpiringSoon():
            return [row(WorkKind.EXPIRY_WARNING, None)]
        case Integration.TokenExpired() | Integration.IntegrationDisconnected():
            return ended()
    return []
