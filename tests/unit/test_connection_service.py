"""``ConnectionService`` over in-memory fakes: the plan's cap when connecting, the active
toggle, disconnecting with and without scheduled posts, and the history."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Aggregate

from application.app import KairosApplication
from application.connections import (
    AccountHasScheduledPosts,
    ConnectionService,
    PendingAuthorization,
    ScheduledPost,
)
from application.errors import Conflict, NotFound
from application.identity import Principal
from application.plans import Plan, PlanLimitReached
from application.platforms import AccountProfile, TokenSet
from domain.integration import Integration, IntegrationStatus

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class FakeX:
    """Authorizes whoever the code names: ``code`` is the username."""

    provider = "twitter"

    def capabilities(self) -> tuple[str, ...]:
        return ("text",)

    def authorization_url(self, *, state: str, code_challenge: str, redirect_uri: str) -> str:
        return f"https://x.test/authorize?state={state}"

    def exchange_code(self, *, code: str, code_verifier: str, redirect_uri: str) -> TokenSet:
        return TokenSet(f"access-{code}-{uuid4().hex}", f"refresh-{code}-{uuid4().hex}", None)

    def fetch_profile(self, access_token: str) -> AccountProfile:
        username = access_token.split("-")[1]
        return AccountProfile(external_id=f"ext-{username}", username=username, display_name="X")


class FakeStates:
    def __init__(self) -> None:
        self.pending: dict[bytes, PendingAuthorization] = {}

    def put(self, state_hash: bytes, pending: PendingAuthorization) -> None:
        self.pending[state_hash] = pending

    def take(self, state_hash: bytes) -> PendingAuthorization | None:
        return self.pending.pop(state_hash, None)


class FakeVault:
    def __init__(self) -> None:
        self.tokens: dict[UUID, TokenSet] = {}
        self.shredded: list[UUID] = []

    def store(self, organization_id: UUID, tokens: TokenSet) -> UUID:
        credential_id = uuid4()
        self.tokens[credential_id] = tokens
        return credential_id

    def read(self, credential_id: UUID) -> TokenSet:
        return self.tokens[credential_id]

    def shred(self, credential_id: UUID) -> None:
        self.tokens.pop(credential_id, None)
        self.shredded.append(credential_id)


class FakeLocks:
    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self.taken: list[str] = []

    @contextmanager
    def exclusive(self, key: str) -> Iterator[None]:
        with self._locks.setdefault(key, threading.Lock()):
            self.taken.append(key)
            yield


class World:
    """One organization on a plan; the read models are answered from the event store."""

    def __init__(self, plan: Plan = Plan.SELF_HOSTED, app: KairosApplication | None = None):
        self.app = app or KairosApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        self.org = uuid4()
        self.principal = Principal(user_id=uuid4(), organization_id=self.org, via="token")
        self.plan = plan
        self.ids: list[UUID] = []
        self.scheduled: dict[UUID, list[ScheduledPost]] = {}
        self.vault = FakeVault()
        self.locks = FakeLocks()
        adapters: dict[str, Any] = {"twitter": FakeX()}
        self.service = ConnectionService(
            self.app,
            adapters,
            FakeStates(),
            self.vault,
            callback_url=lambda provider: f"https://kairos.test/{provider}/callback",
            clock=lambda: T0,
            plans=self,
            accounts=self,
            deliveries=self,
            locks=self.locks,
        )

    # the ports the service asks
    def plan_of(self, organization_id: UUID) -> Plan:
        return self.plan

    def count_connected(self, organization_id: UUID) -> int:
        found = (self.app.get_integration(i) for i in self.ids)
        return sum(1 for i in found if i and i.status is not IntegrationStatus.DISCONNECTED)

    def pending_posts_for_account(
        self, organization_id: UUID, account_id: UUID
    ) -> list[ScheduledPost]:
        return self.scheduled.get(account_id, [])

    # given / when
    def authorize(self, username: str, reconnect: UUID | None = None) -> str:
        """Start connecting and return the state the platform would send back."""
        url = self.service.start(self.principal, "twitter", reconnect)
        return parse_qs(urlsplit(url).query)["state"][0]

    def connect(self, username: str, reconnect: UUID | None = None) -> UUID:
        state = self.authorize(username, reconnect)
        connected = self.service.complete("twitter", state=state, code=username)
        if connected.integration_id not in self.ids:
            self.ids.append(connected.integration_id)
        return connected.integration_id

    def events(self, integration_id: UUID) -> list[str]:
        return [type(e).__name__ for e in self.app.history(integration_id)]


# ---- the plan's cap --------------------------------------------------------------------


def test_a_new_account_past_the_cap_is_refused_before_its_tokens_are_stored() -> None:
    world = World(Plan.STARTER)
    for n in range(4):
        world.connect(f"user{n}")
    late_state = world.authorize("user5")  # asked for while there was room
    world.connect("user4")
    stored = len(world.vault.tokens)
    with pytest.raises(PlanLimitReached, match="Starter plan allows 5"):
        world.service.complete("twitter", state=late_state, code="user5")
    assert len(world.vault.tokens) == stored
    assert world.count_connected(world.org) == 5
    with pytest.raises(PlanLimitReached):
        world.authorize("user6")
    assert f"connect/{world.org}" in world.locks.taken


def test_a_reconnect_at_the_cap_goes_through_and_replaces_the_credential() -> None:
    world = World(Plan.STARTER)
    ids = [world.connect(f"user{n}") for n in range(5)]
    old_credential = world.app.get_integration(ids[0]).credential_id  # type: ignore[union-attr]
    assert world.connect("user0", reconnect=ids[0]) == ids[0]
    integration = world.app.get_integration(ids[0])
    assert integration is not None
    assert integration.credential_id != old_credential
    assert old_credential in world.vault.shredded
    assert world.events(ids[0]) == ["IntegrationConnected", "IntegrationReconnected"]


def test_a_disconnected_account_comes_back_only_with_room() -> None:
    world = World(Plan.STARTER)
    ids = [world.connect(f"user{n}") for n in range(5)]
    world.service.disconnect(world.principal, ids[0])
    world.connect("fresh")
    with pytest.raises(PlanLimitReached):
        world.authorize("user0", reconnect=ids[0])
    world.plan = Plan.PLUS
    assert world.connect("user0", reconnect=ids[0]) == ids[0]
    assert world.events(ids[0])[-1] == "IntegrationReconnected"


def test_self_hosted_has_no_cap() -> None:
    world = World(Plan.SELF_HOSTED)
    for n in range(12):
        world.connect(f"user{n}")
    assert world.count_connected(world.org) == 12


# ---- active / inactive -----------------------------------------------------------------


def test_switching_an_account_off_and_on_records_events_only_on_change() -> None:
    world = World()
    x = world.connect("toggle")
    world.service.set_active(world.principal, x, False)
    world.service.set_active(world.principal, x, False)
    integration, _ = world.service.set_active(world.principal, x, True)
    assert integration.active is True
    assert world.events(x) == [
        "IntegrationConnected",
        "IntegrationDeactivated",
        "IntegrationActivated",
    ]
    world.service.disconnect(world.principal, x)
    with pytest.raises(Conflict, match="disconnected"):
        world.service.set_active(world.principal, x, False)


def test_another_organization_cannot_touch_the_account() -> None:
    world = World()
    x = world.connect("mine")
    stranger = Principal(user_id=uuid4(), organization_id=uuid4(), via="token")
    for attempt in (
        lambda: world.service.set_active(stranger, x, False),
        lambda: world.service.disconnect(stranger, x, force=True),
        lambda: world.service.history(stranger, x),
        lambda: world.service.start(stranger, "twitter", x),
    ):
        with pytest.raises(NotFound):
            attempt()
    assert world.events(x) == ["IntegrationConnected"]


class RacingApp(KairosApplication):
    """Lets a background writer (a health check) save first, ``races`` times."""

    races = 2

    def save_all(self, *aggregates: Aggregate) -> int | None:
        if self.races and isinstance(aggregates[0], Integration):
            self.races -= 1
            rival = self.get_integration(aggregates[0].id)
            assert rival is not None
            rival.record_checked()
            super().save_all(rival)
        return super().save_all(*aggregates)


def test_a_command_is_retried_when_background_work_saved_first() -> None:
    app = RacingApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app.races = 0
    world = World(app=app)
    x = world.connect("busy")
    app.races = 2
    world.service.set_active(world.principal, x, False)
    assert world.events(x) == [
        "IntegrationConnected",
        "IntegrationChecked",
        "IntegrationChecked",
        "IntegrationDeactivated",
    ]


# ---- disconnect ------------------------------------------------------------------------


def test_scheduled_posts_hold_a_disconnect_back_unless_forced() -> None:
    world = World()
    x = world.connect("busy")
    credential_id = world.app.get_integration(x).credential_id  # type: ignore[union-attr]
    posts = [ScheduledPost(uuid4(), T0 + timedelta(days=1), "scheduled")]
    world.scheduled[x] = posts
    with pytest.raises(AccountHasScheduledPosts) as refused:
        world.service.disconnect(world.principal, x)
    assert refused.value.scheduled_posts == posts
    assert "1 scheduled post " in refused.value.message
    assert world.events(x) == ["IntegrationConnected"]
    assert world.vault.shredded == []

    done = world.service.disconnect(world.principal, x, force=True)
    assert done.orphaned_posts == posts
    assert done.integration.status is IntegrationStatus.DISCONNECTED
    assert done.integration.credential_id is None
    assert world.vault.shredded == [credential_id]
    assert f"refresh/{x}" in world.locks.taken
    assert world.events(x) == ["IntegrationConnected", "IntegrationDisconnected"]

    again = world.service.disconnect(world.principal, x, force=True)
    assert again.position is None
    assert world.events(x) == ["IntegrationConnected", "IntegrationDisconnected"]


def test_the_history_holds_credential_ids_never_tokens() -> None:
    world = World()
    x = world.connect("story")
    credential_id = world.app.get_integration(x).credential_id  # type: ignore[union-attr]
    tokens = world.vault.read(credential_id)  # type: ignore[arg-type]
    world.service.disconnect(world.principal, x)
    history = world.service.history(world.principal, x)
    assert [e.type for e in history] == ["IntegrationConnected", "IntegrationDisconnected"]
    assert history[0].data["credential_id"] == credential_id
    assert history[0].version == 1
    assert "originator_id" not in history[0].data
    flat = repr([e.data for e in history])
    assert tokens.access_token not in flat
    assert tokens.refresh_token is not None
    assert tokens.refresh_token not in flat
