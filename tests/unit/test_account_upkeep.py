"""``AccountUpkeep`` over in-memory fakes: refreshes ahead of expiry, daily health checks and
expiry warnings, as the ``accounts`` actor runs them.

The fakes (event store, vault, locks, clock, scripted platform) are those of
``test_publishing_service``; each scenario checks what the platform saw, what the vault holds,
which events the account recorded and which due-work rows those events imply.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from application.app import KairosApplication
from application.credentials import AccessTokens
from application.due import WorkKind, due_changes
from application.platforms import (
    AccountProfile,
    AuthorizationExpired,
    OAuthExchangeFailed,
    PlatformError,
    RateLimited,
    TokenSet,
    TransientPlatformError,
)
from application.publishing import PublishingService
from application.upkeep import AccountUpkeep, UpkeepPolicy
from domain.integration import Integration, IntegrationStatus
from tests.unit.test_publishing_service import Clock, FakeLocks, FakePlatform, FakeVault
from workers.actors import ACCOUNTS_QUEUE, register_actors

ORG = UUID("00000000-0000-4000-8000-000000000001")
TWO_HOURS = timedelta(hours=2)
MARGIN = timedelta(minutes=10)


@dataclass
class UpkeepPlatform(FakePlatform):
    """A platform that also answers the health check's profile call, and can hold a refresh
    in flight until ``release`` is set (to make two workers overlap)."""

    profile_errors: list[PlatformError] = field(default_factory=list)
    release: threading.Event | None = None
    in_flight: threading.Event = field(default_factory=threading.Event)

    def fetch_profile(self, access_token: str) -> AccountProfile:
        self.calls.append(("profile", access_token))
        if self.profile_errors:
            raise self.profile_errors.pop(0)
        if access_token not in self.users_by_token:
            raise AuthorizationExpired("X refused to fetch the profile (HTTP 401)", status=401)
        return AccountProfile(self.users_by_token[access_token], "alice", "Alice")

    def refresh(self, refresh_token: str) -> TokenSet:
        self.in_flight.set()
        if self.release is not None:
            assert self.release.wait(5)
        return super().refresh(refresh_token)


class HookedLocks(FakeLocks):
    """Runs ``before`` (once) just before the lock is taken: another worker getting there
    first, while this one read the vault and waited."""

    def __init__(self) -> None:
        super().__init__()
        self.before: Any = None

    @contextmanager
    def exclusive(self, key: str) -> Iterator[None]:
        hook, self.before = self.before, None
        if hook is not None:
            hook()
        with super().exclusive(key):
            yield


class World:
    def __init__(self) -> None:
        # The library stamps events with the wall clock, and the rows they imply count from
        # those stamps: the fake clock starts at the same moment.
        self.start = datetime.now(UTC)
        self.clock = Clock(self.start)
        self.app = KairosApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        self.x = UpkeepPlatform(self.clock)
        self.vault = FakeVault()
        self.locks = HookedLocks()
        self.tokens = AccessTokens(
            self.app, {"twitter": self.x}, self.vault, self.locks, self.clock
        )
        self.upkeep = AccountUpkeep(
            self.app, {"twitter": self.x}, self.tokens, self.clock, UpkeepPolicy()
        )

    def connect(
        self,
        *,
        expires_in: timedelta | None = TWO_HOURS,
        refresh_token: str | None = "rt-1",
        refresh_expires_at: datetime | None = None,
    ) -> UUID:
        credential_id = uuid4()
        expires_at = None if expires_in is None else self.clock() + expires_in
        integration = Integration.connect(
            organization_id=ORG,
            provider="twitter",
            external_account_id="ext-alice",
            account_name="alice",
            display_name="Alice",
            avatar_url=None,
            credential_id=credential_id,
            token_expires_at=expires_at,
            scopes=["tweet.write", "offline.access"],
            capabilities=["text"],
        )
        self.app.save_all(integration)
        self.vault.tokens[credential_id] = TokenSet(
            "token-1", refresh_token, expires_at, refresh_expires_at
        )
        self.x.users_by_token["token-1"] = "ext-alice"
        return integration.id

    def renews(self, refresh_token: str, number: int, **overrides: Any) -> TokenSet:
        """Script the platform to answer ``refresh_token`` with token pair ``number``."""
        values: dict[str, Any] = {
            "access_token": f"token-{number}",
            "refresh_token": f"rt-{number}",
            "expires_at": self.clock() + TWO_HOURS,
            **overrides,
        }
        renewed = TokenSet(**values)
        self.x.refreshes[refresh_token] = renewed
        self.x.users_by_token[renewed.access_token] = "ext-alice"
        return renewed

    def integration(self, integration_id: UUID) -> Integration:
        integration = self.app.get_integration(integration_id)
        assert integration is not None
        return integration

    def stored(self, integration_id: UUID) -> TokenSet:
        credential_id = self.integration(integration_id).credential_id
        assert credential_id is not None
        return self.vault.tokens[credential_id]

    def names(self, integration_id: UUID, since: int = 1) -> list[str]:
        """Event names after the connection (version 1)."""
        return [type(e).__name__ for e in self.events(integration_id, since)]

    def events(self, integration_id: UUID, since: int = 1) -> list[Any]:
        return [e for e in self.app.history(integration_id) if e.originator_version > since]

    def rows(self, integration_id: UUID, since: int = 1) -> dict[WorkKind, datetime | None]:
        """The due-work rows the events after ``since`` leave, as the recorder writes them."""
        changes = due_changes(self.events(integration_id, since), {integration_id: "twitter"})
        return {c.kind: c.due_at for c in changes}

    def refresh_calls(self) -> list[str]:
        return [call[1] for call in self.x.calls if call[0] == "refresh"]


@pytest.fixture(autouse=True)
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff jitter at its maximum (1.0), so retry times are exact: 30 s, 60 s, 120 s..."""
    monkeypatch.setattr("application.upkeep._jitter", SimpleNamespace(random=lambda: 1.0))


@pytest.fixture
def world() -> World:
    return World()


def due_for_refresh(world: World, integration_id: UUID) -> None:
    """Move the clock to the refresh row's time, as the dispatcher would."""
    due = world.rows(integration_id, since=0)[WorkKind.REFRESH]
    assert due is not None
    world.clock.now = max(world.clock.now, due)


# --- refreshing ahead of expiry -----------------------------------------------------------------


def test_a_due_token_is_refreshed_under_the_lock_and_the_vault_written_first(
    world: World,
) -> None:
    alice = world.connect()
    renewed = world.renews("rt-1", 2)
    due_for_refresh(world, alice)

    world.upkeep.refresh(alice)

    assert world.refresh_calls() == ["rt-1"]
    assert world.locks.taken == [f"refresh/{alice}"]
    assert world.stored(alice) == renewed
    assert world.names(alice) == ["TokenRefreshed"]
    assert world.integration(alice).token_expires_at == renewed.expires_at
    assert world.rows(alice) == {
        WorkKind.REFRESH: renewed.expires_at - MARGIN if renewed.expires_at else None,
        WorkKind.EXPIRY_WARNING: None,
    }


def test_a_token_not_yet_due_is_left_alone(world: World) -> None:
    alice = world.connect()
    world.clock.advance(TWO_HOURS - MARGIN - timedelta(seconds=1))

    world.upkeep.refresh(alice)

    assert world.x.calls == []
    assert world.names(alice) == []


def test_a_token_that_never_expires_is_never_refreshed(world: World) -> None:
    alice = world.connect(expires_in=None)
    world.upkeep.refresh(alice)
    assert world.x.calls == []
    assert world.names(alice) == []


def test_a_refresh_another_worker_made_while_this_one_waited_is_not_repeated(
    world: World,
) -> None:
    alice = world.connect()
    # So close to expiry that a publish refreshes too: one does (taking and releasing the
    # lock) while the upkeep, having read the old token, waits for the lock.
    world.clock.now = world.start + TWO_HOURS - timedelta(minutes=1)
    renewed = world.renews("rt-1", 2)
    world.renews("rt-2", 3)
    world.locks.before = lambda: world.tokens.for_publishing(world.integration(alice))

    world.upkeep.refresh(alice)

    assert world.refresh_calls() == ["rt-1"]  # rt-2, the rotated token, is never spent
    assert world.stored(alice) == renewed
    assert world.names(alice) == ["TokenRefreshed"]


def test_two_workers_refreshing_at_once_make_one_refresh_call(world: World) -> None:
    alice = world.connect()
    world.clock.now = world.start + TWO_HOURS - timedelta(minutes=1)  # both need a refresh
    renewed = world.renews("rt-1", 2)
    world.renews("rt-2", 3)
    world.x.release = threading.Event()
    upkeep = threading.Thread(target=world.upkeep.refresh, args=(alice,))
    upkeep.start()
    assert world.x.in_flight.wait(5)  # the upkeep holds the lock, its refresh in flight
    publisher = threading.Thread(
        target=world.tokens.for_publishing, args=(world.integration(alice),)
    )
    publisher.start()
    publisher.join(0.1)  # let it reach the lock
    world.x.release.set()
    upkeep.join(5)
    publisher.join(5)

    assert world.refresh_calls() == ["rt-1"]
    assert world.stored(alice) == renewed
    assert world.names(alice) == ["TokenRefreshed"]


def test_a_refresh_refused_for_good_expires_the_account_asking_to_reconnect(
    world: World,
) -> None:
    alice = world.connect()
    world.x.refreshes["rt-1"] = OAuthExchangeFailed(
        "X refused to refresh the token (HTTP 400, invalid_request)", status=400
    )
    due_for_refresh(world, alice)

    world.upkeep.refresh(alice)

    integration = world.integration(alice)
    assert world.names(alice) == ["TokenExpired"]
    assert integration.status is IntegrationStatus.EXPIRED
    assert integration.last_error == (
        "the platform refused to refresh: X refused to refresh the token (HTTP 400, "
        "invalid_request); reconnect the X account @alice to keep publishing to it"
    )
    assert world.rows(alice) == dict.fromkeys(
        [WorkKind.EXPIRY_WARNING, WorkKind.HEALTH_CHECK, WorkKind.REFRESH]
    )


def test_a_transient_failure_records_the_error_and_retries_with_backoff(world: World) -> None:
    alice = world.connect()
    world.x.refreshes["rt-1"] = TransientPlatformError(
        "X token endpoint failed with HTTP 503", status=503
    )
    due_for_refresh(world, alice)
    first_at = world.clock()

    world.upkeep.refresh(alice)

    assert world.names(alice) == ["IntegrationErrored", "RefreshRetryScheduled"]
    integration = world.integration(alice)
    assert integration.status is IntegrationStatus.ERROR
    assert integration.last_error is not None
    assert integration.last_error.startswith("refresh: X token endpoint failed with HTTP 503")
    errored = world.events(alice)[0]
    assert world.rows(alice)[WorkKind.REFRESH] == first_at + timedelta(seconds=30)
    assert world.rows(alice)[WorkKind.HEALTH_CHECK] == errored.timestamp + timedelta(hours=1)

    world.clock.advance(timedelta(seconds=30))
    world.upkeep.refresh(alice)  # fails again: twice the wait
    assert world.rows(alice, since=3)[WorkKind.REFRESH] == world.clock() + timedelta(seconds=60)

    renewed = world.renews("rt-1", 2)
    world.clock.advance(timedelta(seconds=60))
    world.upkeep.refresh(alice)

    assert world.refresh_calls() == ["rt-1", "rt-1", "rt-1"]
    assert world.names(alice, since=5) == ["TokenRefreshed"]
    assert world.integration(alice).status is IntegrationStatus.CONNECTED
    assert world.stored(alice) == renewed


def test_the_backoff_is_capped(world: World) -> None:
    alice = world.connect()
    world.x.refreshes["rt-1"] = TransientPlatformError("timed out")
    due_for_refresh(world, alice)
    for _ in range(10):
        world.upkeep.refresh(alice)
    retry = world.events(alice)[-1]
    assert retry.retry_at == world.clock() + timedelta(minutes=30)


def test_a_rate_limited_refresh_waits_for_the_reset(world: World) -> None:
    alice = world.connect()
    reset_at = world.start + TWO_HOURS + timedelta(minutes=5)
    world.x.refreshes["rt-1"] = RateLimited("X rate-limited the token endpoint", reset_at=reset_at)
    due_for_refresh(world, alice)

    world.upkeep.refresh(alice)

    assert world.rows(alice)[WorkKind.REFRESH] == reset_at


def test_without_a_refresh_token_it_warns_then_expires_with_the_token(world: World) -> None:
    alice = world.connect(refresh_token=None)
    expires_at = world.start + TWO_HOURS
    due_for_refresh(world, alice)

    world.upkeep.refresh(alice)

    assert world.x.calls == []
    assert world.names(alice) == ["ConnectionExpiringSoon", "RefreshRetryScheduled"]
    assert world.events(alice)[0].expires_at == expires_at
    assert world.integration(alice).status is IntegrationStatus.CONNECTED  # works until then
    assert world.rows(alice)[WorkKind.REFRESH] == expires_at

    world.upkeep.refresh(alice)  # a duplicate message: warned once per expiry
    assert world.names(alice, since=3) == ["RefreshRetryScheduled"]

    world.clock.now = expires_at
    world.upkeep.refresh(alice)

    integration = world.integration(alice)
    assert world.names(alice, since=4) == ["TokenExpired"]
    assert integration.status is IntegrationStatus.EXPIRED
    assert integration.last_error is not None
    assert "gave no refresh token" in integration.last_error
    assert "reconnect the X account @alice" in integration.last_error


def test_a_refresh_token_that_itself_expires_within_a_week_is_warned_about_once(
    world: World,
) -> None:
    ends_at = world.start + timedelta(days=5)
    alice = world.connect()
    world.renews("rt-1", 2, refresh_expires_at=ends_at)
    world.renews("rt-2", 3, refresh_expires_at=ends_at)
    due_for_refresh(world, alice)

    world.upkeep.refresh(alice)
    world.clock.advance(TWO_HOURS)
    world.upkeep.refresh(alice)

    assert world.names(alice) == ["TokenRefreshed", "ConnectionExpiringSoon", "TokenRefreshed"]
    assert world.events(alice)[1].expires_at == ends_at


def test_history_left_behind_by_a_lost_save_is_healed_without_a_refresh(world: World) -> None:
    alice = world.connect()
    # A worker refreshed and wrote the vault, then died before recording TokenRefreshed.
    ahead = TokenSet("token-2", "rt-2", world.start + TWO_HOURS + TWO_HOURS)
    credential_id = world.integration(alice).credential_id
    assert credential_id is not None
    world.vault.tokens[credential_id] = ahead
    due_for_refresh(world, alice)

    world.upkeep.refresh(alice)

    assert world.x.calls == []
    assert world.names(alice) == ["TokenRefreshed"]
    assert world.integration(alice).token_expires_at == ahead.expires_at


def test_a_change_to_the_account_while_the_refresh_waited_does_not_lose_it(
    world: World,
) -> None:
    alice = world.connect()
    world.renews("rt-1", 2)
    due_for_refresh(world, alice)

    def deactivated_meanwhile() -> None:
        other = world.integration(alice)
        other.deactivate()
        world.app.save_all(other)

    world.locks.before = deactivated_meanwhile  # after the upkeep loaded its copy

    world.upkeep.refresh(alice)

    assert world.names(alice) == ["IntegrationDeactivated", "TokenRefreshed"]


def test_a_reconnect_while_the_refresh_waited_is_not_overwritten(world: World) -> None:
    alice = world.connect()
    world.renews("rt-1", 2)
    due_for_refresh(world, alice)
    reconnected_until = world.clock() + timedelta(hours=5)

    def reconnected_meanwhile() -> None:
        credential_id = uuid4()
        world.vault.tokens[credential_id] = TokenSet("token-9", "rt-9", reconnected_until)
        integration = world.integration(alice)
        integration.reconnect(
            account_name="alice",
            display_name="Alice",
            avatar_url=None,
            credential_id=credential_id,
            token_expires_at=reconnected_until,
            scopes=["tweet.write", "offline.access"],
        )
        world.app.save_all(integration)

    world.locks.before = reconnected_meanwhile

    world.upkeep.refresh(alice)  # its copy still names the old credential

    assert world.names(alice) == ["IntegrationReconnected"]
    assert world.integration(alice).token_expires_at == reconnected_until
    assert world.stored(alice).access_token == "token-9"


@pytest.mark.parametrize(
    "ending",
    [lambda i: i.record_token_expired("revoked"), lambda i: i.disconnect()],
    ids=["expired", "disconnected"],
)
def test_a_stale_message_for_an_ended_account_does_nothing(world: World, ending: Any) -> None:
    alice = world.connect()
    integration = world.integration(alice)
    ending(integration)
    world.app.save_all(integration)
    world.clock.now = world.start + TWO_HOURS  # long past the refresh's time

    world.upkeep.refresh(alice)
    world.upkeep.health_check(alice)
    world.upkeep.warn_expiry(alice)
    world.upkeep.refresh(uuid4())

    assert world.x.calls == []
    assert len(world.names(alice)) == 1


# --- the daily health check -----------------------------------------------------------------


def test_a_passing_health_check_is_recorded_and_comes_back_tomorrow(world: World) -> None:
    alice = world.connect()
    world.upkeep.health_check(alice)

    assert world.x.calls == [("profile", "token-1")]
    assert world.names(alice) == ["IntegrationChecked"]
    checked_at = world.events(alice)[0].timestamp
    assert world.rows(alice) == {WorkKind.HEALTH_CHECK: checked_at + timedelta(hours=24)}


def test_a_passing_health_check_clears_an_error(world: World) -> None:
    alice = world.connect()
    world.x.profile_errors.append(TransientPlatformError("X refused (HTTP 503)", status=503))
    world.upkeep.health_check(alice)
    assert world.integration(alice).status is IntegrationStatus.ERROR
    errored_at = world.events(alice)[0].timestamp
    assert world.rows(alice) == {WorkKind.HEALTH_CHECK: errored_at + timedelta(hours=1)}

    world.clock.advance(timedelta(hours=1))
    world.upkeep.health_check(alice)

    assert world.names(alice) == ["IntegrationErrored", "IntegrationChecked"]
    assert world.integration(alice).status is IntegrationStatus.CONNECTED
    assert world.integration(alice).last_error is None


def test_a_health_check_on_a_revoked_token_expires_the_account(world: World) -> None:
    alice = world.connect()
    del world.x.users_by_token["token-1"]  # revoked on the platform

    world.upkeep.health_check(alice)

    integration = world.integration(alice)
    assert world.names(alice) == ["TokenExpired"]
    assert integration.status is IntegrationStatus.EXPIRED
    assert integration.last_error == (
        "X refused to fetch the profile (HTTP 401); reconnect the X account @alice to keep "
        "publishing to it"
    )


def test_a_health_check_refreshes_a_token_about_to_expire_first(world: World) -> None:
    alice = world.connect()
    world.renews("rt-1", 2)
    world.clock.advance(TWO_HOURS - timedelta(minutes=1))

    world.upkeep.health_check(alice)

    assert world.x.calls == [("refresh", "rt-1"), ("profile", "token-2")]
    assert world.names(alice) == ["TokenRefreshed", "IntegrationChecked"]


# --- a week before a long-lived token expires -------------------------------------------------


def test_a_long_lived_token_that_can_be_renewed_is_renewed_a_week_ahead(world: World) -> None:
    alice = world.connect(expires_in=timedelta(days=60))
    world.renews("rt-1", 2, expires_at=world.start + timedelta(days=113))
    warning_at = world.rows(alice, since=0)[WorkKind.EXPIRY_WARNING]
    assert warning_at == world.start + timedelta(days=53)
    world.clock.now = warning_at

    world.upkeep.warn_expiry(alice)

    assert world.refresh_calls() == ["rt-1"]
    assert world.names(alice) == ["TokenRefreshed"]
    assert world.rows(alice)[WorkKind.EXPIRY_WARNING] == world.start + timedelta(days=106)


def test_a_long_lived_token_that_cannot_be_renewed_is_warned_about(world: World) -> None:
    alice = world.connect(expires_in=timedelta(days=60), refresh_token=None)
    world.clock.now = world.start + timedelta(days=53)

    world.upkeep.warn_expiry(alice)

    assert world.x.calls == []
    assert world.names(alice) == ["ConnectionExpiringSoon", "RefreshRetryScheduled"]
    assert world.rows(alice) == {
        WorkKind.EXPIRY_WARNING: None,
        WorkKind.REFRESH: world.start + timedelta(days=60),
    }


def test_no_warning_more_than_a_week_ahead(world: World) -> None:
    alice = world.connect(expires_in=timedelta(days=60), refresh_token=None)
    world.clock.now = world.start + timedelta(days=52)
    world.upkeep.warn_expiry(alice)
    assert world.names(alice) == []


# --- the actor ----------------------------------------------------------------------------------


def test_the_dispatcher_sends_account_work_to_the_accounts_queue() -> None:
    broker = StubBroker()
    broker.emit_after("process_boot")
    done: list[tuple[str, UUID]] = []

    class RecordingUpkeep(AccountUpkeep):
        def __init__(self) -> None:
            pass

        def refresh(self, integration_id: UUID) -> None:
            done.append(("refresh", integration_id))

        def health_check(self, integration_id: UUID) -> None:
            done.append(("health_check", integration_id))

        def warn_expiry(self, integration_id: UUID) -> None:
            done.append(("warn_expiry", integration_id))

    def no_publishing() -> PublishingService:
        raise AssertionError("account work never reaches publishing")

    upkeep = RecordingUpkeep()
    actors = register_actors(broker, no_publishing, lambda: upkeep)
    subject = uuid4()
    for kind in (WorkKind.REFRESH, WorkKind.HEALTH_CHECK, WorkKind.EXPIRY_WARNING):
        actors.send(kind, subject, "")

    assert broker.queues[ACCOUNTS_QUEUE].qsize() == 3
    worker = dramatiq.Worker(broker, worker_timeout=100)
    worker.start()
    broker.join(ACCOUNTS_QUEUE)
    worker.join()
    worker.stop()
    assert sorted(done) == [
        ("health_check", subject),
        ("refresh", subject),
        ("warn_expiry", subject),
    ]
