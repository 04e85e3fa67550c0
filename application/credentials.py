"""Access tokens for publishing, refreshed under a per-account lock.

X and TikTok refresh tokens are single-use and rotate: two workers refreshing the same
account at once would spend the token twice and lose the account. So a refresh takes an
exclusive lock, re-reads the vault (another worker may have just refreshed), and stores the
new pair before anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from application.app import KairosApplication
from application.platforms import (
    AuthorizationExpired,
    OAuthExchangeFailed,
    PlatformAdapter,
    TokenSet,
)
from domain.integration import Integration

REFRESH_MARGIN = timedelta(minutes=2)


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
        if integration.credential_id is None:
            raise AuthorizationExpired("the account has no stored credential; reconnect it")
        tokens = self._vault.read(integration.credential_id)
        if self._fresh(tokens):
            return tokens.access_token
        with self._locks.exclusive(f"refresh/{integration.id}"):
            tokens = self._vault.read(integration.credential_id)
            if self._fresh(tokens):
                return tokens.access_token
            return self._refresh(integration, tokens)

    def _refresh(self, integration: Integration, tokens: TokenSet) -> str:
        if not tokens.refresh_token:
            raise AuthorizationExpired("the access token expired and cannot be refreshed")
        try:
            renewed = self._adapters[integration.provider].refresh(tokens.refresh_token)
        except OAuthExchangeFailed as exc:
            raise AuthorizationExpired(f"the platform refused to refresh: {exc.message}") from exc
        assert integration.credential_id is not None
        self._vault.replace(integration.credential_id, renewed)
        current = self._app.get_integration(integration.id)
        if current is not None:
            current.record_token_refreshed(token_expires_at=renewed.expires_at)
            self._app.save_all(current)
        return renewed.access_token

    def _fresh(self, tokens: TokenSet) -> bool:
        return tokens.expires_at is None or tokens.expires_at - REFRESH_MARGIN > self._clock()
