"""The event-sourced application: one event store for posts and connected accounts."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, project_aggregate
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Recording

from application.due import due_changes
from domain.integration import Integration
from domain.post import Post

A = TypeVar("A", bound=Aggregate)


class KairosApplication(Application[UUID]):
    """Holds ``Post`` and ``Integration`` in one store so a command can save both atomically.

    ``name`` is fixed: it decides the events table (``kairos_events``), the environment prefix
    and the tracking key of every projection, so renaming the class must not change it.
    """

    name = "Kairos"
    snapshotting_intervals: ClassVar = {Integration: 50}

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """Save, handing the recorder the due-work changes the pending events imply."""
        pending = [e for obj in objs if isinstance(obj, Aggregate) for e in obj.pending_events]
        providers = {obj.id: obj.provider for obj in objs if isinstance(obj, Integration)}
        changes = due_changes(pending, providers)
        if changes:
            kwargs["due_changes"] = changes
        return super().save(*objs, **kwargs)

    def save_all(self, *aggregates: Aggregate) -> int | None:
        """Save atomically; return the notification id of the last event written, if any."""
        recordings = self.save(*aggregates)
        return recordings[-1].notification.id if recordings else None

    def get_post(self, post_id: UUID, version: int | None = None) -> Post | None:
        """Posts are short streams and never snapshotted: read their events in one query."""
        post = project_aggregate(None, self.events.get(post_id, lte=version))
        return post if isinstance(post, Post) else None

    def get_integration(self, integration_id: UUID) -> Integration | None:
        return self._get(Integration, integration_id, None)

    def get_integration_at(self, integration_id: UUID, version: int) -> Integration | None:
        return self._get(Integration, integration_id, version)

    def _get(self, kind: type[A], aggregate_id: UUID, version: int | None) -> A | None:
        try:
            aggregate: Aggregate = self.repository.get(aggregate_id, version=version)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, kind) else None

    def history(self, aggregate_id: UUID) -> list[Aggregate.Event]:
        """Every stored event of one aggregate, oldest first."""
        return [cast(Aggregate.Event, event) for event in self.events.get(aggregate_id)]

    def last_position(self) -> int:
        return self.recorder.max_notification_id() or 0
