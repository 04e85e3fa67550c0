"""Connected accounts: connecting through OAuth 2.0 (authorization code + PKCE S256) within
the plan's cap, switching accounts on and off, disconnecting, and reading their history.

The ``state`` is random, single-use, expires in minutes, and is bound to the user and
organization that asked for the URL; only its hash is stored. Tokens go straight into the
encrypted credential vault; the ``Integration`` events only reference the credential id,
and disconnecting shreds the credential.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from application.app import KairosApplication
from application.errors import Conflict, NotFound
from application.history import HistoryEntry, history_entries
from application.identity import Principal
from application.plans import Plan, account_limit, require_room_for_account
from application.platforms import AccountProfile, PlatformAdapter, PlatformError, TokenSet
from domain.errors import DomainError, InvalidField
from domain.ids import integration_id
from domain.integration import Integration, IntegrationStatus

STATE_LIFETIME = timedelta(minutes=10)
SAVE_RETRIES = 5
"""Background work (refreshes, health checks) also writes integration events, so a user's
command is retried on a fresh copy when a save conflicts."""


@dataclass(frozen=True)
class PendingAuthorization:
    organization_id: UUID
    user_id: UUID
    provider: str
    code_verifier: str
    redirect_uri: str
    expires_at: datetime


class OAuthStateStore(Protocol):
    def put(self, state_hash: bytes, pending: PendingAuthorization) -> None: ...

    def take(self, state_hash: bytes) -> PendingAuthorization | None:
        """Return and delete in one step, so a state can be redeemed once only."""
        ...


class CredentialVault(Protocol):
    """Encrypted storage for platform tokens (AEAD, key id per row, rotation)."""

    def store(self, organization_id: UUID, tokens: TokenSet) -> UUID: ...

    def read(self, credential_id: UUID) -> TokenSet: ...

    def shred(self, credential_id: UUID) -> None: ...


class Locks(Protocol):
    def exclusive(self, key: str) -> AbstractContextManager[None]: ...


class PlanLookup(Protocol):
    def plan_of(self, organization_id: UUID) -> Plan: ...


class ConnectedAccounts(Protocol):
    def count_connected(self, organization_id: UUID) -> int:
        """Accounts that are not disconnected (inactive and expired ones count), including
        every integration event committed before the call."""
        ...


@dataclass(frozen=True)
class ScheduledPost:
    id: UUID
    scheduled_at: datetime | None
    status: str


class PendingDeliveries(Protocol):
    def pending_posts_for_account(
        self, organization_id: UUID, account_id: UUID
    ) -> list[ScheduledPost]:
        """Scheduled or publishing posts whose delivery to the account has no outcome yet,
        soonest first, including every post event committed before the call."""
        ...


class AuthorizationFailed(DomainError):
    """The OAuth round trip could not complete (bad or expired state, denied, exchange failed)."""


class AccountHasScheduledPosts(Conflict):
    """Disconnecting would make these posts fail for the account; the caller must force it."""

    def __init__(self, integration: Integration, posts: list[ScheduledPost]) -> None:
        count = f"{len(posts)} scheduled post{'s' if len(posts) != 1 else ''}"
        super().__init__(
            f"the account @{integration.account_name} has {count} that would fail for it if "
            "it were disconnected; move them to other accounts, or disconnect anyway with "
            "?force=true"
        )
        self.scheduled_posts = posts


@dataclass(frozen=True)
class Disconnection:
    integration: Integration
    orphaned_posts: list[ScheduledPost]
    """Scheduled posts that will now fail for this account (a forced disconnect)."""
    position: int | None


@dataclass(frozen=True)
class Connected:
    integration_id: UUID
    provider: str
    account_name: str
    reconnected: bool
    position: int | None


class ConnectionService:
    def __init__(
        self,
        app: KairosApplication,
        adapters: Mapping[str, PlatformAdapter],
        states: OAuthStateStore,
        vault: CredentialVault,
        callback_url: Callable[[str], str],
        clock: Callable[[], datetime],
        *,
        plans: PlanLookup,
        accounts: ConnectedAccounts,
        deliveries: PendingDeliveries,
        locks: Locks,
    ) -> None:
        self._app = app
        self._adapters = adapters
        self._states = states
        self._vault = vault
        self._callback_url = callback_url
        self._clock = clock
        self._plans = plans
        self._accounts = accounts
        self._deliveries = deliveries
        self._locks = locks

    @property
    def providers(self) -> list[str]:
        return sorted(self._adapters)

    def start(self, principal: Principal, provider: str, reconnect: UUID | None = None) -> str:
        """Return the platform's authorization URL for this user and organization.

        At the plan's cap only a reconnect is allowed: the caller names the account in
        ``reconnect``. The callback checks again, knowing which account was authorized."""
        adapter = self._adapter(provider)
        existing = self.integration(principal, reconnect) if reconnect is not None else None
        if existing is not None and existing.provider != provider:
            raise InvalidField("integrationId", f"account {reconnect} is not a {provider} account")
        if existing is None or existing.status is IntegrationStatus.DISCONNECTED:
            self._require_room(principal.organization_id)
        verifier = secrets.token_urlsafe(64)
        state = secrets.token_urlsafe(32)
        redirect_uri = self._callback_url(provider)
        self._states.put(
            _hash(state),
            PendingAuthorization(
                organization_id=principal.organization_id,
                user_id=principal.user_id,
                provider=provider,
                code_verifier=verifier,
                redirect_uri=redirect_uri,
                expires_at=self._clock() + STATE_LIFETIME,
            ),
        )
        return adapter.authorization_url(
            state=state, code_challenge=pkce_challenge(verifier), redirect_uri=redirect_uri
        )

    def complete(
        self, provider: str, *, state: str | None, code: str | None, error: str | None = None
    ) -> Connected:
        adapter = self._adapter(provider)
        if not state:
            raise AuthorizationFailed("the platform did not return a state")
        pending = self._states.take(_hash(state))
        if pending is None or pending.provider != provider:
            raise AuthorizationFailed("this authorization link is unknown or was already used")
        if pending.expires_at <= self._clock():
            raise AuthorizationFailed("this authorization link expired; start connecting again")
        if error:
            raise AuthorizationFailed(f"the platform reported: {error}")
        if not code:
            raise AuthorizationFailed("the platform did not return an authorization code")
        try:
            tokens = adapter.exchange_code(
                code=code, code_verifier=pending.code_verifier, redirect_uri=pending.redirect_uri
            )
            profile = adapter.fetch_profile(tokens.access_token)
        except PlatformError as exc:
            raise AuthorizationFailed(
                f"the platform refused the connection: {exc.message}"
            ) from exc
        existing = self._app.get_integration(
            integration_id(pending.organization_id, adapter.provider, profile.external_id)
        )
        capped = (
            existing is None or existing.status is IntegrationStatus.DISCONNECTED
        ) and account_limit(self._plans.plan_of(pending.organization_id)) is not None
        # Under a cap, one new account at a time per organization, so two callbacks cannot
        # both take the last place.
        with (
            self._locks.exclusive(f"connect/{pending.organization_id}") if capped else nullcontext()
        ):
            if capped:
                self._require_room(pending.organization_id)
            credential_id = self._vault.store(pending.organization_id, tokens)
            try:
                return self._record_connection(pending, adapter, profile, tokens, credential_id)
            except Exception:
                self._vault.shred(credential_id)
                raise

    def _require_room(self, organization_id: UUID) -> None:
        """A new (or revived) account must fit the plan; a reconnect never needs room."""
        plan = self._plans.plan_of(organization_id)
        if account_limit(plan) is not None:  # no cap, no need to count
            require_room_for_account(plan, self._accounts.count_connected(organization_id))

    def _record_connection(
        self,
        pending: PendingAuthorization,
        adapter: PlatformAdapter,
        profile: AccountProfile,
        tokens: TokenSet,
        credential_id: UUID,
    ) -> Connected:
        existing_id = integration_id(pending.organization_id, adapter.provider, profile.external_id)
        integration = self._app.get_integration(existing_id)
        old_credential = integration.credential_id if integration else None
        if integration is None:
            integration = Integration.connect(
                organization_id=pending.organization_id,
                provider=adapter.provider,
                external_account_id=profile.external_id,
                account_name=profile.username,
                display_name=profile.display_name,
                avatar_url=profile.avatar_url,
                credential_id=credential_id,
                token_expires_at=tokens.expires_at,
                scopes=list(tokens.scopes),
                capabilities=list(adapter.capabilities()),
            )
        else:
            integration.reconnect(
                account_name=profile.username,
                display_name=profile.display_name,
                avatar_url=profile.avatar_url,
                credential_id=credential_id,
                token_expires_at=tokens.expires_at,
                scopes=list(tokens.scopes),
            )
        position = self._app.save_all(integration)
        if old_credential is not None:
            self._vault.shred(old_credential)
        return Connected(
            integration_id=integration.id,
            provider=adapter.provider,
            account_name=profile.username,
            reconnected=old_credential is not None or integration.version > 1,
            position=position,
        )

    def integration(self, principal: Principal, integration_id_: UUID) -> Integration:
        integration = self._app.get_integration(integration_id_)
        if integration is None or integration.organization_id != principal.organization_id:
            raise NotFound(f"integration {integration_id_} not found")
        return integration

    def set_active(
        self, principal: Principal, integration_id_: UUID, active: bool
    ) -> tuple[Integration, int | None]:
        """An inactive account is left out of new posts aimed at its platform or its
        collections; posts already scheduled to it still publish."""

        def toggle(integration: Integration) -> None:
            if integration.status is IntegrationStatus.DISCONNECTED:
                raise Conflict(
                    f"the account @{integration.account_name} is disconnected; connect it "
                    "again first"
                )
            if active:
                integration.activate()
            else:
                integration.deactivate()

        return self._change(principal, integration_id_, toggle)

    def disconnect(
        self, principal: Principal, integration_id_: UUID, *, force: bool = False
    ) -> Disconnection:
        """Record ``IntegrationDisconnected`` and shred the credential. Refused while posts
        are scheduled to the account, unless forced: those deliveries then fail, saying the
        account is disconnected. Disconnecting twice changes nothing."""
        integration = self.integration(principal, integration_id_)
        if integration.status is IntegrationStatus.DISCONNECTED:
            return Disconnection(integration, [], None)
        waiting = self._deliveries.pending_posts_for_account(
            principal.organization_id, integration_id_
        )
        if waiting and not force:
            raise AccountHasScheduledPosts(integration, waiting)
        # The lock token refreshes take (application/credentials.py): a refresh in flight
        # finishes before the credential goes, and one that starts after sees the event.
        with self._locks.exclusive(f"refresh/{integration_id_}"):
            shredded: list[UUID] = []

            def record(integration: Integration) -> None:
                shredded[:] = [c for c in (integration.credential_id,) if c is not None]
                if integration.status is not IntegrationStatus.DISCONNECTED:
                    integration.disconnect()

            integration, position = self._change(principal, integration_id_, record)
            for credential_id in shredded:
                self._vault.shred(credential_id)
        return Disconnection(integration, waiting, position)

    def history(self, principal: Principal, integration_id_: UUID) -> list[HistoryEntry]:
        """Every event of the account, oldest first. Events hold credential ids, never
        tokens."""
        self.integration(principal, integration_id_)
        return history_entries(self._app.history(integration_id_))

    def _change(
        self,
        principal: Principal,
        integration_id_: UUID,
        command: Callable[[Integration], None],
    ) -> tuple[Integration, int | None]:
        for attempt in range(1, SAVE_RETRIES + 1):
            integration = self.integration(principal, integration_id_)
            command(integration)
            try:
                return integration, self._app.save_all(integration)
            except IntegrityError:
                if attempt == SAVE_RETRIES:
                    raise
        raise AssertionError("unreachable")

    def _adapter(self, provider: str) -> PlatformAdapter:
        try:
            return self._adapters[provider]
        except KeyError:
            known = ", ".join(self.providers) or "none"
            raise InvalidField(
                "provider", f"unknown provider '{provider}' (known: {known})"
            ) from None


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _hash(state: str) -> bytes:
    return hashlib.sha256(state.encode()).digest()
