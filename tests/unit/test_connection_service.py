"""``ConnectionService`` over in-memory fakes: the plan's cap when connecting, choosing the
account when an authorization reaches several, the active toggle, disconnecting with and
without scheduled posts, and the history."""

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
    AccountChoice,
    AccountHasScheduledPosts,
    AuthorizationFailed,
    Connected,
    ConnectionService,
    PendingAuthorization,
    PendingChoice,
    ScheduledPost,
)
from application.errors import Conflict, NotFound
from application.identity import Principal
from application.plans import Plan, PlanLimitReached
from application.platforms import AccountProfile, PersonalAccountRefused, TokenSet
from domain.errors import InvalidField
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


class FakeInstagram(FakeX):
    """Instagram Login: a personal account cannot be connected."""

    provider = "instagram"

    def fetch_profile(self, access_token: str) -> AccountProfile:
        raise PersonalAccountRefused(
            "@me is a personal Instagram account; switch it to a professional account first"
        )


class FakeFacebookLogin(FakeX):
    """One grant, one Instagram account per Facebook Page: ``code`` lists the usernames
    (``"pages=ann,bob"``); none means no Page has a professional account."""

    provider = "instagram-facebook"

    def exchange_code(self, *, code: str, code_verifier: str, redirect_uri: str) -> TokenSet:
        pages = code.removeprefix("pages=")
        return TokenSet(f"access|{pages}|{uuid4().hex}", None, T0 + timedelta(days=60))

    def connectable_accounts(self, access_token: str) -> list[AccountProfile]:
        names = [n for n in access_token.split("|")[1].split(",") if n]
        if not names:
            raise PersonalAccountRefused("no Facebook Page of yours has an Instagram account")
        return [
            AccountProfile(f"ig-{n}", n, n.title(), detail=f"Page: {n.title()} Shop") for n in names
        ]


class FakeChoices:
    def __init__(self) -> None:
        self.pending: dict[bytes, PendingChoice] = {}

    def put(self, choice_hash: bytes, pending: PendingChoice, *, now: datetime) -> list[UUID]:
        expired = [h for h, p in self.pending.items() if p.expires_at <= now]
        abandoned = [self.pending.pop(h).credential_id for h in expired]
        self.pending[choice_hash] = pending
        return abandoned

    def get(self, choice_hash: bytes) -> PendingChoice | None:
        return self.pending.get(choice_hash)

    def take(self, choice_hash: bytes) -> PendingChoice | None:
        return self.pending.pop(choice_hash, None)


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
        self.choices = FakeChoices()
        self.now = T0
        adapters: dict[str, Any] = {
            "twitter": FakeX(),
            "instagram": FakeInstagram(),
            "instagram-facebook": FakeFacebookLogin(),
        }
        self.service = ConnectionService(
            self.app,
            adapters,
            FakeStates(),
            self.vault,
            callback_url=lambda provider: f"https://kairos.test/{provider}/callback",
            clock=lambda: self.now,
            plans=self,
            accounts=self,
            deliveries=self,
            locks=self.locks,
            choices=self.choices,
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
    def authorize(
        self, username: str, reconnect: UUID | None = None, provider: str = "twitter"
    ) -> str:
        """Start connecting and return the state the platform would send back."""
        url = self.service.start(self.principal, provider, reconnect)
        return parse_qs(urlsplit(url).query)["state"][0]

    def connect(self, username: str, reconnect: UUID | None = None) -> UUID:
        state = self.authorize(username, reconnect)
        connected = self.service.complete("twitter", state=state, code=username)
        assert isinstance(connected, Connected)
        return self.remember(connected)

    def remember(self, connected: Connected) -> UUID:
        if connected.integration_id not in self.ids:
            self.ids.append(connected.integration_id)
        return connected.integration_id

    def through_facebook(self, *usernames: str, reconnect: UUID | None = None) -> Any:
        """Authorize Facebook Login for the Pages of ``usernames``: what ``complete`` says."""
        state = self.authorize("", reconnect, provider="instagram-facebook")
        pages = ",".join(usernames)
        return self.service.complete("instagram-facebook", state=state, code=f"pages={pages}")

    def offered(self, *usernames: str) -> AccountChoice:
        offer = self.through_facebook(*usernames)
        assert isinstance(offer, AccountChoice)
        return offer

    def choose(self, offer: AccountChoice, username: str) -> UUID:
        connected = self.service.choose(
            offer.choice, f"ig-{username}", provider="instagram-facebook"
        )
        return self.remember(connected)

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


# ---- choosing the account -------------------------------------------------------------


def test_a_grant_that_reaches_one_account_connects_it_directly() -> None:
    world = World()
    connected = world.through_facebook("solo")
    assert isinstance(connected, Connected)
    integration = world.app.get_integration(connected.integration_id)
    assert integration is not None
    assert (integration.provider, integration.account_name) == ("instagram-facebook", "solo")
    assert world.choices.pending == {}


def test_a_grant_that_reaches_several_accounts_waits_for_a_choice_with_its_tokens_stored() -> None:
    world = World()
    offer = world.offered("ann", "bob")
    assert [a.username for a in offer.accounts] == ["ann", "bob"]
    assert offer.accounts[0].detail == "Page: Ann Shop"
    assert offer.expires_at == T0 + timedelta(minutes=10)
    [(stored_hash, pending)] = world.choices.pending.items()
    assert offer.choice.encode() not in stored_hash  # only a hash is kept
    assert (pending.organization_id, pending.user_id) == (world.org, world.principal.user_id)
    assert pending.candidates == offer.accounts
    assert world.vault.tokens.keys() == {pending.credential_id}
    assert world.ids == []
    assert world.service.account_choice(world.principal, offer.choice) == offer


def test_choosing_connects_that_account_with_the_stored_credential_once() -> None:
    world = World()
    offer = world.offered("ann", "bob")
    credential_id = next(iter(world.choices.pending.values())).credential_id
    bob = world.choose(offer, "bob")
    integration = world.app.get_integration(bob)
    assert integration is not None
    assert integration.account_name == "bob"
    assert integration.credential_id == credential_id
    assert integration.token_expires_at == T0 + timedelta(days=60)
    with pytest.raises(AuthorizationFailed, match="unknown or was already made"):
        world.choose(offer, "ann")
    assert world.count_connected(world.org) == 1


def test_reconnecting_through_a_choice_keeps_the_integration() -> None:
    world = World()
    ann = world.choose(world.offered("ann", "bob"), "ann")
    old_credential = world.app.get_integration(ann).credential_id  # type: ignore[union-attr]
    state = world.authorize("", ann, provider="instagram-facebook")
    offer = world.service.complete("instagram-facebook", state=state, code="pages=ann,bob")
    assert isinstance(offer, AccountChoice)
    connected = world.service.choose(offer.choice, "ig-ann", provider="instagram-facebook")
    assert (connected.integration_id, connected.reconnected) == (ann, True)
    assert old_credential in world.vault.shredded
    assert world.events(ann) == ["IntegrationConnected", "IntegrationReconnected"]


def test_unknown_expired_and_foreign_choices_are_refused() -> None:
    world = World()
    with pytest.raises(AuthorizationFailed, match="unknown"):
        world.service.choose("made-up", "ig-ann", provider="instagram-facebook")
    offer = world.offered("ann", "bob")
    with pytest.raises(InvalidField, match="not one this authorization reaches") as refused:
        world.service.choose(offer.choice, "ig-mallory", provider="instagram-facebook")
    assert refused.value.field == "accountId"
    with pytest.raises(AuthorizationFailed, match="unknown"):
        world.service.choose(offer.choice, "ig-ann", provider="twitter")
    stranger = Principal(user_id=uuid4(), organization_id=world.org, via="token")
    for attempt in (
        lambda: world.service.account_choice(stranger, offer.choice),
        lambda: world.service.choose(offer.choice, "ig-ann", principal=stranger),
    ):
        with pytest.raises(NotFound):
            attempt()
    credential_id = next(iter(world.choices.pending.values())).credential_id
    world.now = T0 + timedelta(minutes=10)
    with pytest.raises(AuthorizationFailed, match="expired"):
        world.choose(offer, "ann")
    assert credential_id in world.vault.shredded
    assert world.choices.pending == {}
    assert world.ids == []


def test_an_abandoned_choice_has_its_credential_shredded_by_the_next_one() -> None:
    world = World()
    world.offered("ann", "bob")
    abandoned = next(iter(world.choices.pending.values())).credential_id
    world.now = T0 + timedelta(minutes=11)
    world.offered("cat", "dan")
    assert world.vault.shredded == [abandoned]
    assert [p.candidates[0].username for p in world.choices.pending.values()] == ["cat"]


def test_the_plan_cap_holds_at_the_choice_and_the_choice_stays_open() -> None:
    world = World(Plan.STARTER)
    offer = world.offered("ann", "bob")
    for n in range(5):
        world.connect(f"user{n}")
    with pytest.raises(PlanLimitReached, match="Starter plan allows 5"):
        world.choose(offer, "ann")
    assert f"connect/{world.org}" in world.locks.taken
    assert len(world.choices.pending) == 1
    world.plan = Plan.PLUS
    assert world.app.get_integration(world.choose(offer, "ann")) is not None


def test_a_choice_among_new_accounts_is_refused_at_the_cap_before_tokens_are_stored() -> None:
    world = World(Plan.STARTER)
    for n in range(5):
        world.connect(f"user{n}")
    stored = len(world.vault.tokens)
    with pytest.raises(PlanLimitReached):
        world.through_facebook("ann", "bob")
    assert len(world.vault.tokens) == stored
    assert world.choices.pending == {}


def test_personal_accounts_are_refused_with_the_platforms_reason() -> None:
    world = World()
    state = world.authorize("me", provider="instagram")
    with pytest.raises(AuthorizationFailed, match="personal Instagram account; switch it"):
        world.service.complete("instagram", state=state, code="me")
    with pytest.raises(AuthorizationFailed, match="no Facebook Page of yours"):
        world.through_facebook()
    assert world.vault.tokens == {}


def test_a_chooser_platform_needs_a_choice_store() -> None:
    world = World()
    with pytest.raises(ValueError, match="choice store"):
        ConnectionService(
            world.app,
            {"instagram-facebook": FakeFacebookLogin()},  # type: ignore[dict-item]
            FakeStates(),
            world.vault,
            callback_url=str,
            clock=lambda: T0,
            plans=world,
            accounts=world,
            deliveries=world,
            locks=world.locks,
        )


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
