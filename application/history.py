"""An aggregate's events as auditors read them: type, version, time and the event's data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate


@dataclass(frozen=True)
class HistoryEntry:
    type: str
    version: int
    timestamp: datetime
    data: dict[str, Any]


_ENVELOPE_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic"}
)


def history_entries(events: Iterable[Aggregate.Event]) -> list[HistoryEntry]:
    """Oldest first. The data is each event's own fields: whatever an event holds is shown,
    so events must never hold secrets (integration events carry credential ids only)."""
    return [
        HistoryEntry(
            type=type(event).__name__,
            version=event.originator_version,
            timestamp=event.timestamp,
            data={key: value for key, value in vars(event).items() if key not in _ENVELOPE_FIELDS},
        )
        for event in events
    ]
