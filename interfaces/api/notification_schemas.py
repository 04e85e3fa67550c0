"""Bodies of ``/api/notifications``, in the same envelope and camelCase as the rest."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import Field

from interfaces.api.schemas import Camel, Envelope
from projections.notices import NoticeKind, SubjectType
from projections.notifications import NotificationDetails


class NotificationOut(Camel):
    id: UUID
    kind: NoticeKind = Field(
        description="connection_expiring, connection_expired, connection_errored, "
        "post_failed or post_partial"
    )
    title: str
    body: str = Field(description="What happened and what to do about it.")
    subject_type: SubjectType = Field(description="What subjectId names: an integration or a post.")
    subject_id: UUID
    created_at: datetime
    read_at: datetime | None

    @classmethod
    def of(cls, details: NotificationDetails) -> NotificationOut:
        return cls.model_validate(details)


class NotificationListEnvelope(Envelope):
    notifications: list[NotificationOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next (older) page.")
    unread_count: int = Field(description="Unread notifications of the organization, in all.")


class NotificationEnvelope(Envelope):
    notification: NotificationOut


class ReadAllEnvelope(Envelope):
    marked_read: int = Field(description="How many notifications this call marked read.")
    unread_count: int
