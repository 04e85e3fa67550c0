"""Connecting platform accounts through OAuth 2.0 (authorization code + PKCE S256).

The ``state`` is random, single-use, expires in minutes, and is bound to the user and
organization that asked for the URL; only its hash is stored. Tokens go straight into the
encrypted credential vault; the ``Integration`` events only reference the credential id.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from application.app import KairosApplication
from application.errors import NotFound
from application.identity import Principal
from application.platforms import AccountProfile, PlatformAdapter, PlatformError, TokenSet
from domain.errors import DomainError, InvalidField
from domain.ids import integration_id
from domain.integration import Integration

STATE_LIFETIME = timedelta(minutes=10)


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


class AuthorizationFailed(DomainError):
    """The OAuth round trip could not complete (bad or expired state, denied, exchange failed)."""


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
    ) -> None:
        self._app = app
        self._adapters = adapters
        self._states = states
        self._vault = vault
        self._callback_url = callback_url
        self._clock = clock

    @property
    def providers(self) -> list[str]:
        return sorted(self._adapters)

    def start(self, principal: Principal, provider: str) -> str:
        """Return the platform's authorization URL for this user and organization."""
        adapter = self._adapter(provider)
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
        credential_id = self._vault.store(pending.organization_id, tokens)
        try:
            return self._record_connection(pending, adapter, profile, tokens, credential_id)
        except Exception:
            self._vault.shred(credential_id)
            raise

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
