"""Given / when / then for the Post aggregate, shared by its scenario tests.

``when`` replays the given history into a fresh aggregate, runs one command, returns the new
events, and checks that replaying everything from scratch rebuilds exactly the live state.
``when_refused`` checks the error type and that nothing was recorded or changed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

import pytest
from eventsourcing.domain import CanMutateAggregate

from domain.errors import DomainError
from domain.post import Post

Event = CanMutateAggregate[UUID]
Command = Callable[[Post], object]
E = TypeVar("E", bound=DomainError)

_BOOKKEEPING = {"originator_id", "originator_version", "timestamp", "originator_topic"}


def replay(events: Sequence[Event]) -> Post:
    post: Post | None = None
    for event in events:
        post = event.mutate(post)
    assert isinstance(post, Post)
    return post


def state_of(post: Post) -> dict[str, Any]:
    """Everything the aggregate holds (id, version, timestamps included) plus derived status."""
    state = {k: v for k, v in vars(post).items() if k != "_pending_events"}
    return copy.deepcopy({**state, "status": post.status, "version": post.version})


def assert_replay_rebuilds(post: Post, history: Sequence[Event]) -> None:
    rebuilt = replay(history)
    assert state_of(rebuilt) == state_of(post)
    for name in (
        "status",
        "scheduled_at",
        "content",
        "deliveries",
        "published_at",
        "publishing_started_at",
        "version",
    ):
        assert getattr(rebuilt, name) == getattr(post, name), name


def when(history: Sequence[Event], command: Command) -> tuple[list[Event], Post]:
    """Rebuild the post from ``history``, run ``command``, return the NEW events and the post."""
    post = replay(history)
    command(post)
    new = list(post.collect_events())
    assert_replay_rebuilds(post, [*history, *new])
    return new, post


def when_refused(history: Sequence[Event], command: Command, error: type[E]) -> E:
    """Run ``command`` expecting ``error``; a refused command records and changes nothing."""
    post = replay(history)
    with pytest.raises(error) as refused:
        command(post)
    assert list(post.collect_events()) == []
    assert state_of(post) == state_of(replay(history))
    return refused.value


def facts(events: Sequence[Event]) -> list[tuple[str, dict[str, Any]]]:
    """Each event as (type name, its own fields) without the library's bookkeeping."""
    return [
        (type(e).__name__, {k: v for k, v in vars(e).items() if k not in _BOOKKEEPING})
        for e in events
    ]


def names(events: Sequence[Event]) -> list[str]:
    return [type(e).__name__ for e in events]


# --- steps used to build 'given' histories ------------------------------------------------
