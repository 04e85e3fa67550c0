"""Stored events outlive the code: every event is versioned and survives the library's mapper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate, CanMutateAggregate
from eventsourcing.persistence import (
    DatetimeAsISO,
    JSONTranscoder,
    Mapper,
    StoredEvent,
    UUIDAsHex,
)
from eventsourcing.utils import get_topic

from domain.integration import Integration
from domain.post import Post

ORG = UUID("00000000-0000-4000-8000-000000000001")
AUTHOR = UUID("00000000-0000-4000-8000-000000000002")
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

# The aggregate metaclass adds a generic ``Event`` and ``Created`` to every aggregate; nothing
# records them, so they carry no version of their own.
_LIBRARY_BASES = {"Event", "Created"}


def event_classes(aggregate: type[Aggregate]) -> dict[str, type[CanMutateAggregate[UUID]]]:
    return {
        name: value
        for name in dir(aggregate)
        if isinstance(value := getattr(aggregate, name), type)
        and issubclass(value, CanMutateAggregate)
        and name not in _LIBRARY_BASES
    }


def mapper() -> Mapper[UUID]:
    transcoder = JSONTranscoder()
    transcoder.register(UUIDAsHex())
    transcoder.register(DatetimeAsISO())
    return Mapper(transcoder=transcoder)


def every_post_event() -> list[CanMutateAggregate[UUID]]:
    """Two posts that between them record every Post event type."""

    def new_post() -> Post:
        return Post.draft(
            organization_id=ORG,
            author_id=AUTHOR,
            content="hello ✨ 日本語",
            thread=["second"],
            media_urls=["https://cdn.example.com/a.mp4"],
            accounts={"x": "twitter", "t": "tiktok"},
            request_fingerprint=None,
        )

    lease = NOW + timedelta(minutes=5)
    partial = new_post()
    partial.schedule(NOW + timedelta(hours=1), now=NOW)
    partial.schedule(NOW + timedelta(hours=2), now=NOW)
    partial.unschedule()
    partial.edit(
        content="edited", thread=[], media_urls=[], accounts={"x": "twitter", "t": "tiktok"}
    )
    partial.schedule(NOW + timedelta(hours=3), now=NOW)
    partial.start_publishing()
    partial.attempt("x", attempt_key="k1", lease_until=lease)
    partial.record_in_doubt("x", reason="timeout", reconcile_at=datetime(2030, 1, 1, tzinfo=UTC))
    partial.attempt("x", attempt_key="k2", lease_until=lease)
    partial.extend_lease("x", lease_until=lease + timedelta(minutes=3))
    partial.record_media_uploaded("x", part=0, index=0, remote_id="m1", expires_at=lease)
    partial.record_segment("x", index=0, remote_id="1")
    partial.record_segment("x", index=1, remote_id="11")
    partial.record_published("x", remote_id="1", url="https://x.com/i/1")
    partial.record_failed(
        "t", category="rate_limited", retryable=True, message="429", retry_at=lease
    )
    partial.attempt("t", attempt_key="k3", lease_until=lease)
    partial.record_checkpoint("t", key="publish_id", value="v_pub_file~v2-1.1")
    partial.record_failed("t", category="rejected", retryable=False, message="no video")
    partial.republish()
    partial.record_failed("t", category="rejected", retryable=False, message="still no video")

    missed = new_post()
    missed.schedule(NOW + timedelta(hours=1), now=NOW)
    missed.miss("the scheduler was down for 3 days")

    failed_then_deleted = new_post()
    failed_then_deleted.schedule(NOW + timedelta(hours=1), now=NOW)
    failed_then_deleted.start_publishing()
    failed_then_deleted.record_failed("x", category="auth", retryable=True, message="401")
    failed_then_deleted.record_failed("t", category="auth", retryable=True, message="401")
    failed_then_deleted.delete()

    published = new_post()
    published.edit(content="solo", thread=[], media_urls=[], accounts={"x": "twitter"})
    published.schedule(NOW + timedelta(hours=1), now=NOW)
    published.start_publishing()
    published.record_published("x", remote_id="2", url="https://x.com/i/2")
    counts = {"likes": 3, "comments": 1, "shares": 0, "views": 120, "reach": None, "saves": None}
    published.record_metrics("x", **counts, next_collection_at=NOW + timedelta(hours=6))
    published.defer_metrics("x", retry_at=NOW + timedelta(hours=7), reason="rate limited")
    published.stop_metrics("x", reason="the post is gone from the platform")

    return [
        *partial.collect_events(),
        *missed.collect_events(),
        *failed_then_deleted.collect_events(),
        *published.collect_events(),
    ]


def every_integration_event() -> list[CanMutateAggregate[UUID]]:
    integration = Integration.connect(
        organization_id=ORG,
        provider="twitter",
        external_account_id="12345",
        account_name="kairos",
        display_name="Kairos",
        avatar_url=None,
        credential_id=UUID("00000000-0000-4000-8000-0000000000c1"),
        token_expires_at=NOW,
        scopes=["tweet.write"],
        capabilities=["text"],
    )
    integration.record_token_refreshed(token_expires_at=None)
    # An expired account records no errors or warnings: those come first.
    integration.record_error(operation="publish", message="503")
    integration.record_refresh_failed(message="503", retry_at=NOW + timedelta(minutes=1))
    integration.record_checked()
    integration.warn_expiring(NOW + timedelta(days=7))
    integration.record_token_expired("revoked")
    integration.deactivate()
    integration.activate()
    integration.disconnect()
    integration.reconnect(
        account_name="kairos",
        display_name="Kairos",
        avatar_url="https://pbs.example.com/a.png",
        credential_id=UUID("00000000-0000-4000-8000-0000000000c2"),
        token_expires_at=NOW + timedelta(hours=2),
        scopes=["tweet.write", "offline.access"],
    )
    return list(integration.collect_events())


# --- every event is versioned -----------------------------------------------------------------


@pytest.mark.parametrize("aggregate", [Post, Integration], ids=["Post", "Integration"])
def test_every_event_defines_a_class_version(aggregate: type[Aggregate]) -> None:
    events = event_classes(aggregate)

    assert len(events) >= 8
    versions = {name: getattr(cls, "class_version", None) for name, cls in events.items()}
    unversioned = sorted(
        name for name, version in versions.items() if not isinstance(version, int) or version < 1
    )
    assert unversioned == []


@pytest.mark.parametrize("aggregate", [Post, Integration], ids=["Post", "Integration"])
def test_the_library_bases_are_the_only_unversioned_event_classes(
    aggregate: type[Aggregate],
) -> None:
    # Guards the exclusion above: the version must come from our classes, not be inherited.
    assert getattr(aggregate.Event, "class_version", None) is None
    assert getattr(aggregate.Created, "class_version", None) is None


@pytest.mark.parametrize(
    ("aggregate", "history"),
    [(Post, every_post_event), (Integration, every_integration_event)],
    ids=["Post", "Integration"],
)
def test_the_round_trip_fixtures_cover_every_event_type(
    aggregate: type[Aggregate], history: Any
) -> None:
    recorded = {type(e).__name__ for e in history()}
    assert recorded == set(event_classes(aggregate))


# --- the default transcoder round trip ------------------------------------------------------


@pytest.mark.parametrize(
    "history", [every_post_event, every_integration_event], ids=["Post", "Integration"]
)
def test_every_event_survives_the_mapper_round_trip(history: Any) -> None:
    events = history()
    the_mapper = mapper()

    stored = [the_mapper.to_stored_event(e) for e in events]
    restored = [the_mapper.to_domain_event(s) for s in stored]

    assert all(isinstance(s.state, bytes) for s in stored)
    assert [s.topic for s in stored] == [get_topic(type(e)) for e in events]
    assert [type(e) for e in restored] == [type(e) for e in events]
    assert restored == events
    assert [vars(r) for r in restored] == [vars(e) for e in events]


def test_events_restored_from_storage_rebuild_the_same_post() -> None:
    recorded = every_post_event()
    events = [e for e in recorded if e.originator_id == recorded[0].originator_id]
    the_mapper = mapper()
    restored = [the_mapper.to_domain_event(the_mapper.to_stored_event(e)) for e in events]

    original = replay(events)
    rebuilt = replay(restored)

    assert isinstance(rebuilt, Post)
    assert isinstance(original, Post)
    assert rebuilt.status == original.status == "partial"
    assert rebuilt.deliveries == original.deliveries
    assert rebuilt.published_at == original.published_at
    assert rebuilt.version == original.version


def replay(events: list[Any]) -> Any:
    aggregate = None
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


# --- upcasting with the library ---------------------------------------------------------------


class Note(Aggregate):
    """A test-only aggregate whose ``Written`` event gained a field in version 2."""

    class Written(Aggregate.Created):
        class_version = 2
        text: str
        language: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["language"] = "en"

        def apply(self, aggregate: Any) -> None:
            aggregate.text = self.text
            aggregate.language = self.language

    @classmethod
    def write(cls, text: str, language: str) -> Note:
        return cls._create(cls.Written, text=text, language=language)


def test_a_version_1_stored_event_is_upcast_when_read() -> None:
    the_mapper = mapper()
    note_id = UUID("00000000-0000-4000-8000-0000000000ee")
    # What a version 1 of ``Note.Written`` stored: no ``language``, no ``class_version``.
    v1_state = {
        "timestamp": NOW,
        "originator_topic": get_topic(Note),
        "text": "hello",
    }
    stored_v1 = StoredEvent(
        originator_id=note_id,
        originator_version=1,
        topic=get_topic(Note.Written),
        state=the_mapper.transcoder.encode(v1_state),
    )

    event = the_mapper.to_domain_event(stored_v1)
    note = replay([event])

    assert isinstance(event, Note.Written)
    assert event.language == "en"
    assert note.id == note_id
    assert (note.text, note.language) == ("hello", "en")


def test_a_current_event_records_its_class_version_and_reads_back_unchanged() -> None:
    the_mapper = mapper()
    written = Note.write("bonjour", "fr").collect_events()[0]

    stored = the_mapper.to_stored_event(written)

    assert the_mapper.transcoder.decode(stored.state)["class_version"] == 2
    assert the_mapper.to_domain_event(stored) == written
