"""Connected accounts: connecting through OAuth 2.0 (authorization code + PKCE S256) within
the plan's cap, switching accounts on and off, disconnecting, and reading their history.

The ``state`` is random, single-use, expires in minutes, and is bound to the user and
organization that asked for the URL; only its hash is stored. Tokens go straight into the
encrypted credential vault; the ``Integration`` events only reference the credential id,
and disconnecting shreds the credential.

Where one authorization reaches several accounts (an ``AccountChooser`` platform), the
tokens are stored at once and the user then picks the account with a second secret, the
choice, held like the state: single-use, short-lived, bound to the same user and
organization, only its hash stored. A choice never made has its credential shredded.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
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
from application.platforms import (
    AccountChooser,
    AccountProfile,
    PersonalAccountRefused,
    PlatformAdapter,
    PlatformError,
    TokenSet,
)
from domain.errors import DomainError, InvalidField
from domain.ids import integration_id
from domain.integration import Integration, IntegrationStatus

STATE_LIFETIME = timedelta(minutes=10)
CHOICE_LIFETIME = timedelta(minutes=10)
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


@dataclass(frozen=True)
class PendingChoice:
    """An authorization that reaches several accounts, waiting for the user to pick one.
    Its tokens are already in the vault, under ``credential_id``."""

    organization_id: UUID
    user_id: UUID
    provider: str
    credential_id: UUID
    candidates: tuple[AccountProfile, ...]
    expires_at: datetime


class AccountChoiceStore(Protocol):
    def put(self, choice_hash: bytes, pending: PendingChoice, *, now: datetime) -> list[UUID]:
        """Store the choice and delete every choice that expired by ``now``, returning the
        credential ids of those for the caller to shred."""
        ...

    def get(self, choice_hash: bytes) -> PendingChoice | None: ...

    def take(self, choice_hash: bytes) -> PendingChoice | None:
        """Return and delete in one step, so a choice can be made once only."""
        ...


class _NoChoices:
    """Where no platform is an ``AccountChooser``, no choice is ever pending."""

    def put(self, choice_hash: bytes, pending: PendingChoice, *, now: datetime) -> list[UUID]:
        raise RuntimeError("no store for account choices was configured")

    def get(self, choice_hash: bytes) -> PendingChoice | None:
        return None

    def take(self, choice_hash: bytes) -> PendingChoice | None:
        return None


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


@dataclass(frozen=True)
class AccountChoice:
    """The authorization reaches several accounts: the user picks one of ``accounts`` with
    ``ConnectionService.choose`` before ``expires_at``, presenting ``choice``."""

    choice: str
    provider: str
    accounts: tuple[AccountProfile, ...]
    expires_at: datetime


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
        choices: AccountChoiceStore | None = None,
    ) -> None:
        if choices is None and any(isinstance(a, AccountChooser) for a in adapters.values()):
            raise ValueError("a platform where the user chooses the account needs a choice store")
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
        self._choices: AccountChoiceStore = choices or _NoChoices()

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
    ) -> Connected | AccountChoice:
        """Connect the authorized account; or, when the authorization reaches several, keep
        the tokens and return the ``AccountChoice`` the user must make."""
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
            candidates = _connectable_accounts(adapter, tokens)
        except PersonalAccountRefused as exc:
            raise AuthorizationFailed(exc.message) from exc
        except PlatformError as exc:
            raise AuthorizationFailed(
                f"the platform refused the connection: {exc.message}"
            ) from exc
        if not candidates:
            raise AuthorizationFailed("the platform named no account this authorization reaches")
        if len(candidates) > 1:
            return self._offer_choice(pending, adapter, tokens, candidates)
        with self._room_for(pending.organization_id, adapter.provider, candidates):
            credential_id = self._vault.store(pending.organization_id, tokens)
            return self._record_or_shred(
                pending.organization_id, adapter, candidates[0], tokens, credential_id
            )

    def account_choice(self, principal: Principal, choice: str) -> AccountChoice:
        """The accounts a pending choice offers, to the user who authorized only."""
        pending = self._pending_choice(choice, owner=principal)
        return AccountChoice(choice, pending.provider, pending.candidates, pending.expires_at)

    def choose(
        self,
        choice: str,
        account_id: str,
        *,
        provider: str | None = None,
        principal: Principal | None = None,
    ) -> Connected:
        """Connect the chosen account with the tokens kept for the choice, within the plan's
        cap as ``complete`` does. From the browser the secret alone stands for the user, as
        the ``state`` does; through the API the caller must be the user who authorized (and
        an unknown choice is then ``NotFound``, not ``AuthorizationFailed``). Refused by the
        plan, the choice stays open: the user may upgrade or pick an account already here."""
        pending = self._pending_choice(choice, provider=provider, owner=principal)
        profile = next((c for c in pending.candidates if c.external_id == account_id), None)
        if profile is None:
            raise InvalidField(
                "accountId", f"account {account_id!r} is not one this authorization reaches"
            )
        adapter = self._adapter(pending.provider)
        with self._room_for(pending.organization_id, adapter.provider, [profile]):
            if self._choices.take(_hash(choice)) is None:
                raise _choice_gone(principal, "this account choice was already made or expired")
            tokens = self._vault.read(pending.credential_id)
            return self._record_or_shred(
                pending.organization_id, adapter, profile, tokens, pending.credential_id
            )

    def _offer_choice(
        self,
        pending: PendingAuthorization,
        adapter: PlatformAdapter,
        tokens: TokenSet,
        candidates: Sequence[AccountProfile],
    ) -> AccountChoice:
        choice = secrets.token_urlsafe(32)
        now = self._clock()
        # Refused now if none of the accounts could connect, before the tokens are stored.
        with self._room_for(pending.organization_id, adapter.provider, candidates):
            credential_id = self._vault.store(pending.organization_id, tokens)
        waiting = PendingChoice(
            organization_id=pending.organization_id,
            user_id=pending.user_id,
            provider=adapter.provider,
            credential_id=credential_id,
            candidates=tuple(candidates),
            expires_at=now + CHOICE_LIFETIME,
        )
        try:
            abandoned = self._choices.put(_hash(choice), waiting, now=now)
        except Exception:
            self._vault.shred(credential_id)
            raise
        for stale_credential in abandoned:
            self._vault.shred(stale_credential)
        return AccountChoice(choice, adapter.provider, waiting.candidates, waiting.expires_at)

    def _pending_choice(
        self, choice: str, *, provider: str | None = None, owner: Principal | None = None
    ) -> PendingChoice:
        pending = self._choices.get(_hash(choice)) if choice else None
        if (
            pending is None
            or (provider is not None and pending.provider != provider)
            or (
                owner is not None
                and (pending.organization_id, pending.user_id)
                != (owner.organization_id, owner.user_id)
            )
        ):
            raise _choice_gone(owner, "this account choice is unknown or was already made")
        if pending.expires_at <= self._clock():
            taken = self._choices.take(_hash(choice))
            if taken is not None:
                self._vault.shred(taken.credential_id)
            raise _choice_gone(owner, "this account choice expired; start connecting again")
        return pending

    @contextmanager
    def _room_for(
        self, organization_id: UUID, provider: str, profiles: Sequence[AccountProfile]
    ) -> Iterator[None]:
        """Held while connecting one of ``profiles``: a new (or revived) account must fit the
        plan, and under a cap one new account at a time per organization, so two callbacks
        cannot both take the last place. An account already connected needs no room."""
        reconnecting = any(
            self._is_connected(organization_id, provider, p.external_id) for p in profiles
        )
        capped = (
            not reconnecting and account_limit(self._plans.plan_of(organization_id)) is not None
        )
        with self._locks.exclusive(f"connect/{organization_id}") if capped else nullcontext():
            if capped:
                self._require_room(organization_id)
            yield

    def _is_connected(self, organization_id: UUID, provider: str, external_id: str) -> bool:
        existing = self._app.get_integration(integration_id(organization_id, provider, external_id))
        return existing is not None and existing.status is not IntegrationStatus.DISCONNECTED

    def _require_room(self, organization_id: UUID) -> None:
        """A new (or revived) account must fit the plan; a reconnect never needs room."""
        plan = self._plans.plan_of(organization_id)
        if account_limit(plan) is not None:  # no cap, no need to count
            require_room_for_account(plan, self._accounts.count_connected(organization_id))

    def _record_or_shred(
        self,
        organization_id: UUID,
        adapter: PlatformAdapter,
        profile: AccountProfile,
        tokens: TokenSet,
        credential_id: UUID,
    ) -> Connected:
        try:
            return self._record_connection(organization_id, adapter, profile, tokens, credential_id)
        except Exception:
            self._vault.shred(credential_id)
            raise

    def _record_connection(
        self,
        organization_id: UUID,
        adapter: PlatformAdapter,
        profile: AccountProfile,
        tokens: TokenSet,
        credential_id: UUID,
    ) -> Connected:
        existing_id = integration_id(organization_id, adapter.provider, profile.external_id)
        integration = self._app.get_integration(existing_id)
        old_credential = integration.credential_id if integration else None
        if integration is None:
            integration = Integration.connect(
                organization_id=organization_id,
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


def _connectable_accounts(adapter: PlatformAdapter, tokens: TokenSet) -> list[AccountProfile]:
    if not isinstance(adapter, AccountChooser):
        return [adapter.fetch_profile(tokens.access_token)]
    by_id = {p.external_id: p for p in adapter.connectable_accounts(tokens.access_token)}
    return list(by_id.values())


def _choice_gone(owner: Principal | None, message: str) -> DomainError:
    """Through the API a choice is a resource of its user (404); in the browser, a failed
    authorization (the 400 page)."""
    if owner is not None:
        return NotFound(f"account choice not found: {message}")
    return AuthorizationFailed(message)
