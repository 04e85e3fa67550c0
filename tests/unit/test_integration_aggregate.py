"""The Integration aggregate: given recorded events / when a command / then new events or an error.

Every scenario also replays the whole history from scratch and checks it rebuilds exactly the
state the live aggregate reached, and every refused command is checked to have changed nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import CanMutateAggregate

from domain.errors import DomainError
from domain.ids import integration_id
from domain.integration import Integration, IntegrationStatus

Event = CanMutateAggregate[UUID]
Command = Callable[[Integration], object]

ORG = UUID("00000000-0000-4000-8000-000000000001")
OTHER_ORG = UUID("00000000-0000-4000-8000-000000000009")
CREDENTIAL = UUID("00000000-0000-4000-8000-0000000000c1")
NEW_CREDENTIAL = UUID("00000000-0000-4000-8000-0000000000c2")
EXPIRES = datetime(2030, 1, 1, 14, 0, tzinfo=UTC)
LATER = EXPIRES + timedelta(hours=2)

_BOOKKEEPING = {"originator_id", "originator_version", "timestamp", "originator_topic"}


# --- given / when / then ---------------------------------------------------------------


def connect(**overrides: Any) -> Integration:
    values: dict[str, Any] = {
        "organization_id": ORG,
        "provider": "twitter",
        "external_account_id": "12345",
        "account_name": "kairos_app",
        "display_name": "Kairos",
        "avatar_url": "https://pbs.example.com/avatar.png",
        "credential_id": CREDENTIAL,
        "token_expires_at": EXPIRES,
        "scopes": ["tweet.read", "tweet.write"],
        "capabilities": ["text", "media"],
        **overrides,
    }
    return Integration.connect(**values)


def given(*steps: Command) -> list[Event]:
    """The events a freshly connected integration records through ``steps``."""
    integration = connect()
    for step in steps:
        step(integration)
    return list(integration.collect_events())


def replay(events: Sequence[Event]) -> Integration:
    integration: Integration | None = None
    for event in events:
        integration = event.mutate(integration)
    assert isinstance(integration, Integration)
    return integration


def state_of(integration: Integration) -> dict[str, Any]:
    state = {k: v for k, v in vars(integration).items() if k != "_pending_events"}
    return copy.deepcopy(
        {**state, "version": integration.version, "can_publish": integration.can_publish}
    )


def assert_replay_rebuilds(integration: Integration, history: Sequence[Event]) -> None:
    rebuilt = replay(history)
    assert state_of(rebuilt) == state_of(integration)
    for name in ("status", "credential_id", "active", "last_error", "version"):
        assert getattr(rebuilt, name) == getattr(integration, name), name


def when(history: Sequence[Event], command: Command) -> tuple[list[Event], Integration]:
    integration = replay(history)
    command(integration)
    new = list(integration.collect_events())
    assert_replay_rebuilds(integration, [*history, *new])
    return new, integration


def when_refused(history: Sequence[Event], command: Command) -> DomainError:
    integration = replay(history)
    with pytest.raises(DomainError) as refused:
        command(integration)
    assert list(integration.collect_events()) == []
    assert state_of(integration) == state_of(replay(history))
    return refused.value


def facts(events: Sequence[Event]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (type(e).__name__, {k: v for k, v in vars(e).items() if k not in _BOOKKEEPING})
        for e in events
    ]


# --- steps ---------------------------------------------------------------------------------


def reconnect(credential_id: UUID = NEW_CREDENTIAL) -> Command:
    return lambda i: i.reconnect(
        account_name="kairos_app_renamed",
        display_name="Kairos 2",
        avatar_url=None,
        credential_id=credential_id,
        token_expires_at=LATER,
        scopes=["tweet.read", "tweet.write", "offline.access"],
    )


def refreshed(at: datetime | None = LATER) -> Command:
    return lambda i: i.record_token_refreshed(token_expires_at=at)


def expired(reason: str = "refresh token revoked") -> Command:
    return lambda i: i.record_token_expired(reason)


def errored(i: Integration) -> None:
    i.record_error(operation="publish", message="503 from the platform")


def deactivate(i: Integration) -> None:
    i.deactivate()


def activate(i: Integration) -> None:
    i.activate()


def disconnect(i: Integration) -> None:
    i.disconnect("user clicked disconnect")


# --- connecting ------------------------------------------------------------------------------


def test_connecting_records_integration_connected() -> None:
    integration = connect()
    events = list(integration.collect_events())

    assert facts(events) == [
        (
            "IntegrationConnected",
            {
                "organization_id": ORG,
                "provider": "twitter",
                "external_account_id": "12345",
                "account_name": "kairos_app",
                "display_name": "Kairos",
                "avatar_url": "https://pbs.example.com/avatar.png",
                "credential_id": CREDENTIAL,
                "token_expires_at": EXPIRES,
                "scopes": ["tweet.read", "tweet.write"],
                "capabilities": ["text", "media"],
            },
        )
    ]
    assert integration.status is IntegrationStatus.CONNECTED
    assert integration.active is True
    assert integration.last_error is None
    assert integration.can_publish is True
    assert integration.version == 1
    assert_replay_rebuilds(integration, events)


def test_the_id_is_derived_from_organization_provider_and_external_account() -> None:
    first = connect()
    again = connect(credential_id=NEW_CREDENTIAL, account_name="renamed")

    assert first.id == integration_id(ORG, "twitter", "12345")
    assert again.id == first.id
    assert Integration.create_id(ORG, "twitter", "12345") == first.id


@pytest.mark.parametrize(
    "other",
    [
        {"organization_id": OTHER_ORG},
        {"provider": "instagram"},
        {"external_account_id": "67890"},
    ],
    ids=["organization", "provider", "external-account"],
)
def test_a_different_account_gets_a_different_id(other: dict[str, Any]) -> None:
    assert connect(**other).id != connect().id


# --- reconnecting and tokens ---------------------------------------------------------------


@pytest.mark.parametrize(
    "history",
    [given(), given(expired()), given(errored), given(disconnect)],
    ids=["connected", "expired", "errored", "disconnected"],
)
def test_reconnecting_replaces_the_credential_and_connects_again(history: list[Event]) -> None:
    then, integration = when(history, reconnect())

    assert facts(then) == [
        (
            "IntegrationReconnected",
            {
                "account_name": "kairos_app_renamed",
                "display_name": "Kairos 2",
                "avatar_url": None,
                "credential_id": NEW_CREDENTIAL,
                "token_expires_at": LATER,
                "scopes": ["tweet.read", "tweet.write", "offline.access"],
            },
        )
    ]
    assert integration.status is IntegrationStatus.CONNECTED
    assert integration.credential_id == NEW_CREDENTIAL
    assert integration.token_expires_at == LATER
    assert integration.last_error is None
    assert integration.can_publish is True


def test_refreshing_the_token_records_the_new_expiry() -> None:
    then, integration = when(given(), refreshed(LATER))

    assert facts(then) == [("TokenRefreshed", {"token_expires_at": LATER})]
    assert integration.token_expires_at == LATER
    assert integration.status is IntegrationStatus.CONNECTED


def test_refreshing_clears_an_error() -> None:
    then, integration = when(given(errored), refreshed(None))

    assert facts(then) == [("TokenRefreshed", {"token_expires_at": None})]
    assert integration.status is IntegrationStatus.CONNECTED
    assert integration.last_error is None
    assert integration.token_expires_at is None


def test_token_expiry_is_recorded() -> None:
    then, integration = when(given(), expired("refresh token revoked"))

    assert facts(then) == [("TokenExpired", {"reason": "refresh token revoked"})]
    assert integration.status is IntegrationStatus.EXPIRED
    assert integration.last_error == "refresh token revoked"
    assert integration.can_publish is False


def test_a_second_expiry_records_nothing() -> None:
    then, integration = when(given(expired("first")), expired("second"))

    assert then == []
    assert integration.last_error == "first"


def test_an_error_is_recorded_with_its_operation() -> None:
    then, integration = when(given(), errored)

    assert facts(then) == [
        ("IntegrationErrored", {"operation": "publish", "message": "503 from the platform"})
    ]
    assert integration.status is IntegrationStatus.ERROR
    assert integration.last_error == "publish: 503 from the platform"
    assert integration.can_publish is True  # an error is news, not a verdict: publishing tries


def test_a_passing_health_check_clears_an_error() -> None:
    integration = replay(given(errored))
    integration.record_checked()
    assert integration.status is IntegrationStatus.CONNECTED
    assert integration.last_error is None


# --- activation ----------------------------------------------------------------------------


def test_deactivating_records_once() -> None:
    then, integration = when(given(), deactivate)
    assert facts(then) == [("IntegrationDeactivated", {})]
    assert integration.active is False


def test_deactivating_an_inactive_integration_records_nothing() -> None:
    then, integration = when(given(deactivate), deactivate)
    assert then == []
    assert integration.active is False


def test_activating_an_inactive_integration_records_once() -> None:
    then, integration = when(given(deactivate), activate)
    assert facts(then) == [("IntegrationActivated", {})]
    assert integration.active is True


def test_activating_an_active_integration_records_nothing() -> None:
    then, integration = when(given(), activate)
    assert then == []
    assert integration.active is True


def test_reconnecting_keeps_the_users_deactivation() -> None:
    _, integration = when(given(deactivate), reconnect())
    assert integration.active is False


# --- disconnecting ---------------------------------------------------------------------------


def test_disconnecting_forgets_the_credential() -> None:
    then, integration = when(given(), disconnect)

    assert facts(then) == [("IntegrationDisconnected", {"reason": "user clicked disconnect"})]
    assert integration.status is IntegrationStatus.DISCONNECTED
    assert integration.credential_id is None
    assert integration.can_publish is False


def test_disconnect_has_a_default_reason() -> None:
    then, _ = when(given(), lambda i: i.disconnect())
    assert facts(then) == [("IntegrationDisconnected", {"reason": "disconnected by the user"})]


@pytest.mark.parametrize(
    "command",
    [refreshed(), expired(), errored, disconnect],
    ids=["refresh", "expire", "error", "disconnect"],
)
def test_commands_after_disconnect_are_refused(command: Command) -> None:
    refused = when_refused(given(disconnect), command)
    assert type(refused) is DomainError
    assert "disconnected" in refused.message


# --- can_publish ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "status", "can_publish"),
    [
        (given(), IntegrationStatus.CONNECTED, True),
        (given(refreshed()), IntegrationStatus.CONNECTED, True),
        (given(expired()), IntegrationStatus.EXPIRED, False),
        (given(errored), IntegrationStatus.ERROR, True),
        (given(disconnect), IntegrationStatus.DISCONNECTED, False),
        (given(disconnect, reconnect()), IntegrationStatus.CONNECTED, True),
        (given(expired(), refreshed()), IntegrationStatus.CONNECTED, True),
    ],
    ids=[
        "connected",
        "refreshed",
        "expired",
        "errored",
        "disconnected",
        "reconnected",
        "refreshed-after-expiry",
    ],
)
def test_can_publish_follows_the_status(
    history: list[Event], status: IntegrationStatus, can_publish: bool
) -> None:
    integration = replay(history)
    assert integration.status is status
    assert integration.can_publish is can_publish


def test_can_publish_is_about_the_connection_not_the_active_flag() -> None:
    # The application checks ``active`` separately (application/posts.py).
    integration = replay(given(deactivate))
    assert integration.can_publish is True
    assert integration.active is False


# --- refresh retries and expiry warnings ------------------------------------------------------


def warn(at: datetime = LATER) -> Command:
    return lambda i: i.warn_expiring(at)


def test_a_failed_refresh_records_the_error_and_when_it_is_tried_again() -> None:
    retry_at = EXPIRES - timedelta(minutes=9)
    then, integration = when(
        given(), lambda i: i.record_refresh_failed(message="HTTP 503", retry_at=retry_at)
    )

    assert facts(then) == [
        ("IntegrationErrored", {"operation": "refresh", "message": "HTTP 503"}),
        ("RefreshRetryScheduled", {"retry_at": retry_at}),
    ]
    assert integration.status is IntegrationStatus.ERROR
    assert integration.last_error == "refresh: HTTP 503"


def test_a_connection_is_warned_about_once_per_expiry() -> None:
    then, integration = when(given(warn()), warn())
    assert then == []
    assert integration.expiry_warned_for == LATER

    then, _ = when(given(warn()), warn(LATER + timedelta(days=1)))
    assert facts(then) == [("ConnectionExpiringSoon", {"expires_at": LATER + timedelta(days=1)})]


def test_reconnecting_rearms_the_warning() -> None:
    then, _ = when(given(warn(), reconnect()), warn())
    assert facts(then) == [("ConnectionExpiringSoon", {"expires_at": LATER})]


def test_a_late_error_or_retry_never_revives_an_expired_account() -> None:
    integration = replay(given(expired()))
    integration.record_error(operation="health_check", message="503 from the platform")
    integration.record_refresh_failed(message="503", retry_at=EXPIRES + timedelta(minutes=5))
    integration.warn_expiring(EXPIRES + timedelta(days=3))
    assert list(integration.collect_events()) == []
    assert integration.status is IntegrationStatus.EXPIRED
    assert integration.can_publish is False
