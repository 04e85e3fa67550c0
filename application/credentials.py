"""Access tokens for publishing and upkeep, refreshed under a per-account lock.

X and TikTok refresh tokens are single-use and rotate: two workers refreshing the same
account at once would spend the token twice and lose the account. So every refresh, whether
a publish needs a fresh token or the upkeep renews one ahead of time, takes the same
exclusive lock, re-reads the vault (another worker may have just refreshed), and stores the
new pair before anything else.

What remains of the crash window: the platform spends the old refresh token when it
answers. A process that dies after the answer leaves the wire and before the vault commit
(milliseconds), or a response lost on the way (a timeout), loses the rotated token; the next
refresh is then refused and the account records ``TokenExpired`` asking for a reconnect. No
platform offers an idempotent refresh to close it entirely.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from application.app import KairosApplication
from application.platforms import (
    AuthorizationExpired,
    OAuthExchangeFailed,
    PlatformAdapter,
    TokenSet,
)
from domain.integration import Integration

REFRESH_MARGIN = timedelta(minutes=2)
"""A token closer than this to its expiry is refreshed before it is used."""
SAVE_RETRIES = 5
VAULT_WRITE_ATTEMPTS = 3
"""The renewed pair is the only copy of the new refresh token: a failed write is retried."""


class NotRenewable(Exception):
    """The stored credential has no usable refresh token: the connection ends at
    ``expires_at`` unless the user reconnects it."""

    def __init__(self, expires_at: datetime) -> None:
        super().__init__(f"the access token expires at {expires_at:%Y-%m-%d %H:%M} UTC")
        self.expires_at = expires_at


class Locks(Protocol):
    def exclusive(self, key: str) -> AbstractContextManager[None]:
        """Held by one process at a time across the deployment; released if it dies."""
        ...


class RefreshableVault(Protocol):
    def read(self, credential_id: UUID) -> TokenSet: ...

    def replace(self, credential_id: UUID, tokens: TokenSet) -> None: ...


class AccessTokens:
    def __init__(
        self,
        app: KairosApplication,
        adapters: Mapping[str, PlatformAdapter],
        vault: RefreshableVault,
        locks: Locks,
        clock: Callable[[], datetime],
    ) -> None:
        self._app = app
        self._adapters = adapters
        self._vault = vault
        self._locks = locks
        self._clock = clock

    def for_publishing(self, integration: Integration) -> str:
        """A usable access token, refreshed first if it expires within the margin.

        Raises ``AuthorizationExpired`` when the account must be reconnected.
        """
        credential_id = _credential_of(integration)
        tokens = self._vault.read(credential_id)
        if self._fresh(tokens, REFRESH_MARGIN):
            return tokens.access_token
        with self._locks.exclusive(_lock_key(integration.id)):
            tokens = self._vault.read(credential_id)
            if self._fresh(tokens, REFRESH_MARGIN):
                return tokens.access_token
            if not self._renewable(tokens):
                raise AuthorizationExpired("the access token expired and cannot be refreshed")
            return self._refresh(integration, credential_id, tokens).access_token

    def renew(self, integration: Integration, *, within: timedelta) -> TokenSet | None:
        """Refresh ahead of time if the token expires within ``within``; the new tokens, or
        ``None`` when there is nothing to do (not due yet, or another worker renewed them
        while this one waited for the lock).

        Raises ``NotRenewable`` when there is no usable refresh token, ``AuthorizationExpired``
        when the platform refuses the refresh for good, and any other ``PlatformError`` (5xx,
        timeout, rate limit) as the adapter raised it.
        """
        credential_id = _credential_of(integration)
        before = self._vault.read(credential_id)
        with self._locks.exclusive(_lock_key(integration.id)):
            tokens = self._vault.read(credential_id)
            if tokens.access_token != before.access_token:
                return None  # renewed by the worker that held the lock before this one
            self._heal_history(integration.id, credential_id, tokens)
            if self._fresh(tokens, within):
                return None
            if not self._renewable(tokens):
                assert tokens.expires_at is not None  # a token without expiry is fresh
                raise NotRenewable(tokens.expires_at)
            return self._refresh(integration, credential_id, tokens)

    def _refresh(self, integration: Integration, credential_id: UUID, tokens: TokenSet) -> TokenSet:
        """Call the platform, store what it answered, then record it. Held under the lock."""
        assert tokens.refresh_token is not None
        try:
            renewed = self._adapters[integration.provider].refresh(tokens.refresh_token)
        except OAuthExchangeFailed as exc:
            raise AuthorizationExpired(f"the platform refused to refresh: {exc.message}") from exc
        # The old refresh token is spent: the vault write comes before anything else, and is
        # retried, because the answer in memory is now the account's only way back in.
        for attempt in range(1, VAULT_WRITE_ATTEMPTS + 1):
            try:
                self._vault.replace(credential_id, renewed)
                break
            except Exception:
                if attempt == VAULT_WRITE_ATTEMPTS:
                    raise
        self._record_refreshed(integration.id, credential_id, renewed.expires_at)
        return renewed

    def _heal_history(self, integration_id: UUID, credential_id: UUID, tokens: TokenSet) -> None:
        """A refresh whose ``TokenRefreshed`` was never saved (the process died between the
        vault write and the save) leaves the vault ahead of the history: record it now, so
        the account's expiry and its refresh row follow the token actually held."""
        current = self._app.get_integration(integration_id)
        if current is not None and current.token_expires_at != tokens.expires_at:
            self._record_refreshed(integration_id, credential_id, tokens.expires_at)

    def _record_refreshed(
        self, integration_id: UUID, credential_id: UUID, expires_at: datetime | None
    ) -> None:
        """Record ``TokenRefreshed``, retrying saves that raced another change of the account
        (a health check, a deactivation): the vault already holds the new token."""
        for _ in range(SAVE_RETRIES):
            current = self._app.get_integration(integration_id)
            if current is None or current.credential_id != credential_id:
                return  # reconnected or disconnected meanwhile: that credential is history
            current.record_token_refreshed(token_expires_at=expires_at)
            try:
                self._app.save_all(current)
            except IntegrityError:
                continue
            return

    def _renewable(self, tokens: TokenSet) -> bool:
        return bool(tokens.refresh_token) and (
            tokens.refresh_expires_at is None or tokens.refresh_expires_at > self._clock()
        )

    def _fresh(self, tokens: TokenSet, margin: timedelta) -> bool:
        return tokens.expires_at is None or tokens.expires_at - margin > self._clock()


def _lock_key(integration_id: UUID) -> str:
    return f"refresh/{integration_id}"


def _credential_of(integration: Integration) -> UUID:
    if integration.credential_id is None:
        raise AuthorizationExpired("the account has no stored credential; reconnect it")
    return integration.credential_id
