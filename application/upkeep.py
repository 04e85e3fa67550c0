"""Connected accounts keep themselves alive, and say so when they cannot.

The due-work index sends three kinds of work per integration (``application/due.py``):

- ``refresh``: renew the access token shortly before it expires, under the same lock as
  publishing's refreshes. Refused for good → ``TokenExpired`` (reconnect); a failure that may
  pass (5xx, timeout, 429) → ``IntegrationErrored`` plus a retry with backoff; no refresh
  token → a warning, and the account expires when its token does.
- ``health_check``: a cheap authenticated call once a day (an hour after an error).
- ``expiry_warning``: a week before a long-lived token expires, renew it if it can be
  renewed, else warn its owner (``ConnectionExpiringSoon``, once per expiry).

Every message may arrive late, twice, or after the account changed: each command re-reads
the account and does nothing for one that is gone, expired or disconnected.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from application.app import KairosApplication
from application.credentials import AccessTokens, NotRenewable
from application.due import EXPIRY_WARNING_LEAD, refresh_margin
from application.platforms import (
    AuthorizationExpired,
    PlatformAdapter,
    PlatformError,
    RateLimited,
    TokenSet,
)
from domain.content_rules import PROVIDER_LABELS
from domain.errors import DomainError
from domain.integration import Integration, IntegrationStatus

SAVE_RETRIES = 10
_jitter = random.Random()  # noqa: S311 - jitter, not security
FAILURE_HISTORY = 50
"""Events read back, newest first, to count how many refreshes in a row have failed."""


@dataclass(frozen=True)
class UpkeepPolicy:
    first_backoff: timedelta = timedelta(seconds=30)
    """Wait before retrying the first refresh that failed for a reason that may pass."""
    max_backoff: timedelta = timedelta(minutes=30)


class AccountUpkeep:
    def __init__(
        self,
        app: KairosApplication,
        adapters: Mapping[str, PlatformAdapter],
        tokens: AccessTokens,
        clock: Callable[[], datetime],
        policy: UpkeepPolicy | None = None,
    ) -> None:
        self._app = app
        self._adapters = adapters
        self._tokens = tokens
        self._clock = clock
        self.policy = policy or UpkeepPolicy()

    # ---- the three kinds of work ---------------------------------------------------------

    def refresh(self, integration_id: UUID) -> None:
        """Renew the access token if it expires within the provider's margin."""
        integration = self._live(integration_id)
        if integration is not None:
            self._renew(integration, within=refresh_margin(integration.provider))

    def warn_expiry(self, integration_id: UUID) -> None:
        """A week before a long-lived token expires: renew it now if it can be renewed (the
        refresh row would otherwise leave it to the last minutes), else warn."""
        integration = self._live(integration_id)
        if integration is not None:
            self._renew(integration, within=EXPIRY_WARNING_LEAD)

    def health_check(self, integration_id: UUID) -> None:
        """Prove the account still works with a cheap authenticated call (X: the profile)."""
        integration = self._live(integration_id)
        if integration is None:
            return
        adapter = self._adapters[integration.provider]
        try:
            token = self._tokens.for_publishing(integration)  # refreshes first if needed
            adapter.fetch_profile(token)
        except AuthorizationExpired as exc:
            self._expire(integration, exc.message)
        except PlatformError as exc:
            message = f"the daily check failed: {exc.message}"
            self._record(
                integration_id, lambda i: i.record_error(operation="health_check", message=message)
            )
        else:
            self._record(integration_id, Integration.record_checked)

    # ---- outcomes ------------------------------------------------------------------------

    def _renew(self, integration: Integration, *, within: timedelta) -> None:
        try:
            renewed = self._tokens.renew(integration, within=within)
        except NotRenewable as exc:
            self._cannot_renew(integration, exc.expires_at)
        except AuthorizationExpired as exc:
            self._expire(integration, exc.message)
        except PlatformError as exc:
            retry_at = self._retry_at(integration.id, exc)
            message = f"{exc.message}; retrying at {retry_at:%H:%M:%S} UTC"
            self._record(
                integration.id,
                lambda i: i.record_refresh_failed(message=message, retry_at=retry_at),
            )
        else:
            if renewed is not None:
                self._warn_if_renewal_ends(integration.id, renewed)

    def _cannot_renew(self, integration: Integration, expires_at: datetime) -> None:
        """No usable refresh token: warn ahead of time, then expire with the token."""
        if expires_at <= self._clock():
            self._expire(
                integration,
                f"the access token expired at {expires_at:%Y-%m-%d %H:%M} UTC and "
                f"{_platform(integration)} gave no refresh token to renew it",
            )
            return

        def warn(account: Integration) -> None:
            account.warn_expiring(expires_at)
            # Nothing to refresh until then: the row comes back at the expiry, to record it.
            account.retry_refresh_at(expires_at)

        self._record(integration.id, warn)

    def _warn_if_renewal_ends(self, integration_id: UUID, renewed: TokenSet) -> None:
        """The refresh token itself expires (TikTok, LinkedIn): warn a week before."""
        ends_at = renewed.refresh_expires_at
        if ends_at is not None and ends_at - EXPIRY_WARNING_LEAD <= self._clock():
            self._record(integration_id, lambda i: i.warn_expiring(ends_at))

    def _expire(self, integration: Integration, reason: str) -> None:
        message = f"{reason}; reconnect {_label(integration)} to keep publishing to it"
        self._record(integration.id, lambda i: i.record_token_expired(message))

    def _retry_at(self, integration_id: UUID, exc: PlatformError) -> datetime:
        """Exponential backoff over the refreshes that failed in a row, with jitter, never
        before a rate limit resets."""
        failures = self._refresh_failures_in_a_row(integration_id)
        base = self.policy.first_backoff * (2 ** min(failures, 20))
        delay: timedelta = min(base, self.policy.max_backoff)
        jitter = 0.5 + _jitter.random() / 2
        retry_at = self._clock() + delay * jitter
        if isinstance(exc, RateLimited) and exc.reset_at is not None:
            retry_at = max(retry_at, exc.reset_at)
        return retry_at

    def _refresh_failures_in_a_row(self, integration_id: UUID) -> int:
        failures = 0
        for event in self._app.events.get(integration_id, desc=True, limit=FAILURE_HISTORY):
            if isinstance(
                event,
                Integration.TokenRefreshed
                | Integration.IntegrationConnected
                | Integration.IntegrationReconnected,
            ):
                break
            failures += isinstance(event, Integration.RefreshRetryScheduled)
        return failures

    # ---- plumbing ------------------------------------------------------------------------

    def _live(self, integration_id: UUID) -> Integration | None:
        """The account, if there is still something to keep alive."""
        integration = self._app.get_integration(integration_id)
        if integration is None or integration.status in (
            IntegrationStatus.EXPIRED,
            IntegrationStatus.DISCONNECTED,
        ):
            return None  # a stale message: its rows went with the event that ended it
        return integration

    def _record(self, integration_id: UUID, command: Callable[[Integration], object]) -> None:
        """Apply ``command`` to a fresh copy and save, retrying races with other changes."""
        for _ in range(SAVE_RETRIES):
            integration = self._app.get_integration(integration_id)
            if integration is None:
                return
            with contextlib.suppress(DomainError):  # disconnected meanwhile: nothing to say
                command(integration)
            try:
                self._app.save_all(integration)
            except IntegrityError:
                continue
            return


def _platform(integration: Integration) -> str:
    return PROVIDER_LABELS.get(integration.provider, integration.provider)


def _label(integration: Integration) -> str:
    return f"the {_platform(integration)} account @{integration.account_name}"
