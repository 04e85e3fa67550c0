"""The ``Integration`` aggregate: one connected platform account of one organization.

Its id comes from (organization, provider, external account id), so connecting the same
account again continues the same history. Tokens never appear here: events carry only the id
of the credential held in the encrypted vault, which can be shredded on disconnect.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.clock import event_time
from domain.errors import DomainError
from domain.ids import integration_id


class IntegrationStatus(StrEnum):
    CONNECTED = "connected"
    EXPIRED = "expired"
    ERROR = "error"
    DISCONNECTED = "disconnected"


class Integration(Aggregate):
    if TYPE_CHECKING:  # declared for type checkers; a class-level annotation would
        # make the aggregate's metaclass treat these as constructor arguments.
        organization_id: UUID
        provider: str
        external_account_id: str
        account_name: str
        display_name: str
        avatar_url: str | None
        credential_id: UUID | None
        token_expires_at: datetime | None
        scopes: list[str]
        capabilities: list[str]
        status: IntegrationStatus
        active: bool
        last_error: str | None
        expiry_warned_for: datetime | None

    @staticmethod
    def create_id(organization_id: UUID, provider: str, external_account_id: str) -> UUID:
        return integration_id(organization_id, provider, external_account_id)

    # ---- events -------------------------------------------------------------------------

    class Event(Aggregate.Event):
        """Base of every event below: timestamped by ``domain.clock`` (the wall clock
        unless a simulation runs)."""

        @staticmethod
        def create_timestamp() -> datetime:
            return event_time()

    class IntegrationConnected(Aggregate.Created):
        class_version = 1
        organization_id: UUID
        provider: str
        external_account_id: str
        account_name: str
        display_name: str
        avatar_url: str | None
        credential_id: UUID
        token_expires_at: datetime | None
        scopes: list[str]
        capabilities: list[str]

        def apply(self, aggregate: Any) -> None:
            integration: Integration = aggregate
            integration.organization_id = self.organization_id
            integration.provider = self.provider
            integration.external_account_id = self.external_account_id
            integration.account_name = self.account_name
            integration.display_name = self.display_name
            integration.avatar_url = self.avatar_url
            integration.credential_id = self.credential_id
            integration.token_expires_at = self.token_expires_at
            integration.scopes = list(self.scopes)
            integration.capabilities = list(self.capabilities)
            integration.status = IntegrationStatus.CONNECTED
            integration.active = True
            integration.last_error = None
            integration.expiry_warned_for = None

    class IntegrationReconnected(Aggregate.Event):
        """The user authorized again: a new credential replaces the old one."""

        class_version = 1
        account_name: str
        display_name: str
        avatar_url: str | None
        credential_id: UUID
        token_expires_at: datetime | None
        scopes: list[str]

        def apply(self, aggregate: Any) -> None:
            aggregate.account_name = self.account_name
            aggregate.display_name = self.display_name
            aggregate.avatar_url = self.avatar_url
            aggregate.credential_id = self.credential_id
            aggregate.token_expires_at = self.token_expires_at
            aggregate.scopes = list(self.scopes)
            aggregate.status = IntegrationStatus.CONNECTED
            aggregate.last_error = None
            aggregate.expiry_warned_for = None

    class TokenRefreshed(Aggregate.Event):
        class_version = 1
        token_expires_at: datetime | None

        def apply(self, aggregate: Any) -> None:
            aggregate.token_expires_at = self.token_expires_at
            aggregate.status = IntegrationStatus.CONNECTED
            aggregate.last_error = None

    class TokenExpired(Aggregate.Event):
        class_version = 1
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = IntegrationStatus.EXPIRED
            aggregate.last_error = self.reason

    class IntegrationErrored(Aggregate.Event):
        class_version = 1
        operation: str
        message: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = IntegrationStatus.ERROR
            aggregate.last_error = f"{self.operation}: {self.message}"

    class RefreshRetryScheduled(Aggregate.Event):
        """The next refresh is due at ``retry_at``: after a failure that may pass (platform
        down, rate limit; the ``IntegrationErrored`` before says which), or at the expiry of
        a token that cannot be renewed, when the account is recorded expired."""

        class_version = 1
        retry_at: datetime

        def apply(self, aggregate: Any) -> None:
            pass

    class IntegrationChecked(Aggregate.Event):
        """The daily health check's cheap authenticated call succeeded."""

        class_version = 1

        def apply(self, aggregate: Any) -> None:
            if aggregate.status is IntegrationStatus.ERROR:
                aggregate.status = IntegrationStatus.CONNECTED
                aggregate.last_error = None

    class ConnectionExpiringSoon(Aggregate.Event):
        """The connection will expire at ``expires_at`` and cannot renew itself: the
        owner is told ahead of time to reconnect."""

        class_version = 1
        expires_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.expiry_warned_for = self.expires_at

    class IntegrationDeactivated(Aggregate.Event):
        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.active = False

    class IntegrationActivated(Aggregate.Event):
        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.active = True

    class IntegrationDisconnected(Aggregate.Event):
        class_version = 1
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = IntegrationStatus.DISCONNECTED
            aggregate.credential_id = None

    # ---- commands -----------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        *,
        organization_id: UUID,
        provider: str,
        external_account_id: str,
        account_name: str,
        display_name: str,
        avatar_url: str | None,
        credential_id: UUID,
        token_expires_at: datetime | None,
        scopes: list[str],
        capabilities: list[str],
    ) -> Integration:
        return cls._create(
            cls.IntegrationConnected,
            organization_id=organization_id,
            provider=provider,
            external_account_id=external_account_id,
            account_name=account_name,
            display_name=display_name,
            avatar_url=avatar_url,
            credential_id=credential_id,
            token_expires_at=token_expires_at,
            scopes=list(scopes),
            capabilities=list(capabilities),
        )

    def reconnect(
        self,
        *,
        account_name: str,
        display_name: str,
        avatar_url: str | None,
        credential_id: UUID,
        token_expires_at: datetime | None,
        scopes: list[str],
    ) -> None:
        self.trigger_event(
            self.IntegrationReconnected,
            account_name=account_name,
            display_name=display_name,
            avatar_url=avatar_url,
            credential_id=credential_id,
            token_expires_at=token_expires_at,
            scopes=list(scopes),
        )

    def record_token_refreshed(self, *, token_expires_at: datetime | None) -> None:
        self._require_not_disconnected()
        self.trigger_event(self.TokenRefreshed, token_expires_at=token_expires_at)

    def record_token_expired(self, reason: str) -> None:
        self._require_not_disconnected()
        if self.status is not IntegrationStatus.EXPIRED:
            self.trigger_event(self.TokenExpired, reason=reason)

    def record_error(self, *, operation: str, message: str) -> None:
        """An operation failed in a way that may pass. An expired account stays expired: only
        a reconnect (or a refresh that works) brings it back, never a late error."""
        self._require_not_disconnected()
        if self.status is not IntegrationStatus.EXPIRED:
            self.trigger_event(self.IntegrationErrored, operation=operation, message=message)

    def record_refresh_failed(self, *, message: str, retry_at: datetime) -> None:
        """A refresh that may work later: the error is on record and a retry is due."""
        self.record_error(operation="refresh", message=message)
        self.retry_refresh_at(retry_at)

    def retry_refresh_at(self, retry_at: datetime) -> None:
        self._require_not_disconnected()
        if self.status is not IntegrationStatus.EXPIRED:
            self.trigger_event(self.RefreshRetryScheduled, retry_at=retry_at)

    def record_checked(self) -> None:
        self._require_not_disconnected()
        self.trigger_event(self.IntegrationChecked)

    def warn_expiring(self, expires_at: datetime) -> None:
        """Warn once per expiry: a second warning about the same moment records nothing."""
        self._require_not_disconnected()
        if self.status is IntegrationStatus.EXPIRED:
            return  # already expired: the owner was told that instead
        # ``getattr``: snapshots taken before this attribute existed do not carry it.
        if getattr(self, "expiry_warned_for", None) != expires_at:
            self.trigger_event(self.ConnectionExpiringSoon, expires_at=expires_at)

    def deactivate(self) -> None:
        if self.active:
            self.trigger_event(self.IntegrationDeactivated)

    def activate(self) -> None:
        if not self.active:
            self.trigger_event(self.IntegrationActivated)

    def disconnect(self, reason: str = "disconnected by the user") -> None:
        self._require_not_disconnected()
        self.trigger_event(self.IntegrationDisconnected, reason=reason)

    @property
    def can_publish(self) -> bool:
        """Connected, or connected with a recent error on record (a failed health check or
        refresh that may have been passing): publishing tries, and says if it fails."""
        return self.status in (IntegrationStatus.CONNECTED, IntegrationStatus.ERROR)

    def _require_not_disconnected(self) -> None:
        if self.status is IntegrationStatus.DISCONNECTED:
            raise DomainError("the account is disconnected; connect it again first")
