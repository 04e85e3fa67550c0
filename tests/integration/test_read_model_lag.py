"""Read models a rule rests on refuse to answer from behind.

The plan's account cap counts connected accounts, and the disconnect guard lists the posts
still scheduled to an account, both from read models. If the projector cannot catch up in
time, answering anyway would count too few or miss a post: the rule would fail open. Here the
views are fresh copies (their own tables, under a prefix) that no projector ever runs, so
they stay behind the event store for good."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest

from application.errors import ReadModelBehind
from projections.base import ReadModel
from projections.integrations import IntegrationsView
from projections.posts import PostsView
from tests.conftest import Account, unique


@pytest.fixture
def behind(kairos: Any, account: Account) -> Iterator[Any]:
    """Build a view of the given class that is behind the event store and stays there."""
    account.connect_x(unique("lag"))  # at least one event for the views to be behind on
    made: list[ReadModel] = []

    def make(kind: type[ReadModel]) -> Any:
        view = kind(kairos.datastore, kairos.app, prefix=f"lag_{secrets.token_hex(4)}_")
        view.create_table()
        made.append(view)
        return view

    yield make
    for view in made:
        view.drop()


def test_the_plan_cap_is_not_counted_from_a_lagging_view(behind: Any) -> None:
    view: IntegrationsView = behind(IntegrationsView)

    with pytest.raises(ReadModelBehind) as refused:
        view.count_connected(uuid4())

    assert refused.value.message == "the read models are behind; try again in a moment"


def test_the_disconnect_guard_does_not_list_from_a_lagging_view(behind: Any) -> None:
    view: PostsView = behind(PostsView)

    with pytest.raises(ReadModelBehind):
        view.pending_posts_for_account(uuid4(), uuid4())
