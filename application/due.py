"""Future work derived from events, written in the same transaction as the events.

Every event that creates work for later (a post scheduled at T, a delivery to retry at T,
an in-doubt publish to reconcile) upserts a row of the due-work table; every event that ends
or cancels it deletes the row. Because the recorder writes these rows inside the events'
own transaction, no work is ever missed or orphaned: the store and the index cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from domain.post import Post

DUE_CHANNEL = "kairos_due"
"""PostgreSQL NOTIFY channel that wakes the dispatcher when new work comes due soon."""

WAKE_HORIZON = timedelta(seconds=30)
"""The dispatcher never sleeps longer than this, so only work due sooner needs a NOTIFY."""


class WorkKind(StrEnum):
    PUBLISH = "publish"
    """Start publishing a post (due at its scheduled time)."""
    DELIVER = "deliver"
    """Publish a post to one account, or settle an attempt whose outcome is unknown."""


@dataclass(frozen=True)
class DueChange:
    kind: WorkKind
    subject_id: UUID
    key: str
    due_at: datetime | None
    """``None`` deletes the row: the work is done or cancelled."""


def due_changes(events: Iterable[Any]) -> list[DueChange]:
    """The rows the given events add, move or remove; the last word on each row wins."""
    latest: dict[tuple[WorkKind, UUID, str], DueChange] = {}
    for event in events:
        for change in _changes_of(event):
            latest[(change.kind, change.subject_id, change.key)] = change
    # A fixed order, so concurrent transactions lock index rows in the same sequence.
    return sorted(latest.values(), key=lambda c: (c.kind, str(c.subject_id), c.key))


def _changes_of(event: Any) -> Sequence[DueChange]:
    post_id: UUID = event.originator_id

    def publish(due_at: datetime | None) -> DueChange:
        return DueChange(WorkKind.PUBLISH, post_id, "", due_at)

    def deliver(account_id: str, due_at: datetime | None) -> DueChange:
        return DueChange(WorkKind.DELIVER, post_id, account_id, due_at)

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
        case Post.AccountPublishInDoubt():
            return [deliver(event.account_id, event.reconcile_at)]
        case Post.AccountRetryScheduled():
            return [deliver(event.account_id, event.retry_at)]
        case Post.AccountPublished() | Post.AccountPublishFailed():
            return [deliver(event.account_id, None)]
        case Post.RepublishRequested():
            return [deliver(a, event.timestamp) for a in event.account_ids]
    return []
