"""Publishing a post to each of its accounts, at most once per account, never lost.

Delivery is a small protocol inside the ``Post`` aggregate (see DESIGN.md, "Publishing"):

1. Claim: ``AccountPublishAttempted`` is saved first; optimistic concurrency lets one worker
   win, so a duplicated message or a second dispatcher is a no-op.
2. Checkpoint every irreversible step (each thread part's remote id) before the next one,
   so a retry resumes after what is already posted.
3. Record the outcome: published, failed (maybe with a retry time), or in doubt when the
   platform may have the post but the answer was lost.
4. An uncertain attempt (in doubt, or a worker that died holding the claim) is never
   retried blindly: the account's recent posts are searched for the next part first.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from application.app import KairosApplication
from application.credentials import AccessTokens
from application.platforms import (
    AuthorizationExpired,
    DuplicateContent,
    PlatformAdapter,
    PlatformError,
    RateLimited,
    TimelinePost,
    TransientPlatformError,
)
from domain.errors import DomainError
from domain.integration import Integration
from domain.post import TERMINAL_DELIVERY, Delivery, Post, PostStatus

PROVIDER_LABELS = {"twitter": "X", "instagram": "Instagram", "tiktok": "TikTok"}


@dataclass(frozen=True)
class PublishingPolicy:
    lease: timedelta = timedelta(minutes=2)
    """How long a claimed attempt may run before it is presumed dead and settled."""
    max_attempts: int = 5
    first_backoff: timedelta = timedelta(seconds=30)
    max_backoff: timedelta = timedelta(minutes=30)
    settle_after: timedelta = timedelta(seconds=5)
    """Wait before checking whether an in-doubt post landed (platforms list with a delay)."""
    missed_after: timedelta = timedelta(hours=1)
    """A post not started this long after its time is recorded as missed, not sent late."""
    call_budget: timedelta = timedelta(seconds=15)
    """Lease that must remain before an irreversible platform call may start: a worker
    never posts after another could have taken over its delivery."""


class LatePublishing(Protocol):
    def publishes_late(self, organization_id: UUID) -> bool:
        """Whether the organization wants posts published late rather than marked missed."""
        ...


class PublishingService:
    def __init__(
        self,
        app: KairosApplication,
        adapters: Mapping[str, PlatformAdapter],
        tokens: AccessTokens,
        late: LatePublishing,
        clock: Callable[[], datetime],
        policy: PublishingPolicy | None = None,
    ) -> None:
        self._app = app
        self._adapters = adapters
        self._tokens = tokens
        self._late = late
        self._clock = clock
        self.policy = policy or PublishingPolicy()

    # ---- step 0: the post's time has come -------------------------------------------------

    def start(self, post_id: UUID) -> None:
        post = self._app.get_post(post_id)
        if post is None or post.deleted or post.status is not PostStatus.SCHEDULED:
            return  # a stale or duplicated message: nothing to do
        now = self._clock()
        assert post.scheduled_at is not None
        if post.scheduled_at > now:
            return  # rescheduled meanwhile; its index row moved with it
        late_by = now - post.scheduled_at
        if late_by > self.policy.missed_after and not self._late.publishes_late(
            post.organization_id
        ):
            post.miss(
                f"not published: Kairos could not start it within {self.policy.missed_after} "
                f"of its scheduled time (it was {_duration(late_by)} late); republish it "
                "or allow late publishing for the organization"
            )
        else:
            post.start_publishing()
        self._save(post)

    # ---- steps 1-4: one account ----------------------------------------------------------

    def deliver(self, post_id: UUID, account_id: str) -> None:
        post = self._app.get_post(post_id)
        if post is None or post.deleted:
            return
        delivery = post.deliveries.get(account_id)
        if delivery is None or delivery.status in TERMINAL_DELIVERY:
            return
        now = self._clock()
        if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
            return  # early: the index row says when
        integration = self._app.get_integration(UUID(account_id))
        if integration is None or not integration.can_publish:
            post.record_failed(
                account_id,
                category="account_unusable",
                retryable=False,
                message=_unusable(integration),
            )
            self._save(post)
            return
        # Any earlier attempt may have landed (a lost answer, a crash, even a "failure" that
        # timed out), so a delivery tried before is always settled against the platform first.
        uncertain = delivery.attempts > 0
        settle_since = delivery.last_attempt_at
        post.attempt(
            account_id,
            attempt_key=f"{post_id}/{account_id}/{delivery.attempts + 1}",
            lease_until=now + self.policy.lease,
        )
        if not self._save(post):
            return  # another worker claimed it
        self._publish(post, integration, uncertain=uncertain, settle_since=settle_since)

    def _publish(
        self,
        post: Post,
        integration: Integration,
        *,
        uncertain: bool,
        settle_since: datetime | None,
    ) -> None:
        account_id = str(integration.id)
        adapter = self._adapters[integration.provider]
        try:
            token = self._tokens.for_publishing(integration)
            parts = post.parts
            delivery = post.deliveries[account_id]
            while len(delivery.segments) < len(parts):
                index = len(delivery.segments)
                found = None
                if uncertain:
                    found = self._find(adapter, token, integration, parts[index], settle_since)
                if found is None:
                    if not self._lease_allows_a_call(delivery):
                        return  # too close to the lease's end: the next claim settles it
                    previous = delivery.segments[-1] if delivery.segments else None
                    try:
                        created = adapter.create_post(
                            token, text=parts[index], in_reply_to=previous
                        )
                    except DuplicateContent:
                        # The platform says it already has this text: find it, don't fail.
                        found = self._find(adapter, token, integration, parts[index], None)
                        if found is None:
                            raise
                        remote_id = found.remote_id
                    else:
                        remote_id = created.remote_id
                else:
                    remote_id = found.remote_id
                uncertain = False
                post.record_segment(account_id, index=index, remote_id=remote_id)
                if not self._save(post):
                    return  # the claim was lost: whoever holds it now settles the rest
                delivery = post.deliveries[account_id]
            first = delivery.segments[0]
            post.record_published(account_id, remote_id=first, url=adapter.post_url(first))
            self._save(post)
        except AuthorizationExpired as exc:
            self._record_expired(post, integration, exc.message)
        except PlatformError as exc:
            self._record_failure(post, account_id, exc)

    # ---- outcomes ------------------------------------------------------------------------

    def _record_failure(self, post: Post, account_id: str, exc: PlatformError) -> None:
        now = self._clock()
        attempts = post.deliveries[account_id].attempts
        exhausted = attempts >= self.policy.max_attempts
        if isinstance(exc, TransientPlatformError) and not exhausted:
            post.record_in_doubt(
                account_id,
                reason=f"no clear answer from the platform: {exc.message}",
                reconcile_at=now + self.policy.settle_after + self._backoff(attempts),
            )
        elif exc.retryable and not exhausted:
            retry_at = now + self._backoff(attempts)
            if isinstance(exc, RateLimited) and exc.reset_at is not None:
                retry_at = max(retry_at, exc.reset_at)
            post.record_failed(
                account_id,
                category=_category(exc),
                retryable=True,
                message=f"{exc.message} (attempt {attempts}; retrying at {retry_at:%H:%M:%S} UTC)",
                retry_at=retry_at,
            )
        else:
            suffix = f" (gave up after {attempts} attempts)" if exc.retryable else ""
            post.record_failed(
                account_id, category=_category(exc), retryable=False, message=exc.message + suffix
            )
        self._save(post)

    def _lease_allows_a_call(self, delivery: Delivery) -> bool:
        lease_until = delivery.next_attempt_at
        budget = min(self.policy.call_budget, self.policy.lease / 3)
        return lease_until is None or self._clock() + budget < lease_until

    def _record_expired(self, post: Post, integration: Integration, reason: str) -> None:
        account = self._app.get_integration(integration.id) or integration
        with contextlib.suppress(DomainError):  # already disconnected: nothing to mark
            account.record_token_expired(reason)
        post.record_failed(
            str(integration.id),
            category="auth_expired",
            retryable=False,
            message=f"{_label(integration)} needs reconnecting ({reason}); reconnect it, "
            "then republish",
        )
        with contextlib.suppress(IntegrityError):  # the claim was lost meanwhile
            self._app.save_all(post, account)

    def _find(
        self,
        adapter: PlatformAdapter,
        token: str,
        integration: Integration,
        text: str,
        since: datetime | None,
    ) -> TimelinePost | None:
        """The account's own post with exactly this text, posted since ``since``, if any."""
        window_start = (since or self._clock() - timedelta(days=1)) - timedelta(minutes=1)
        wanted = _normalise(text)
        recent = adapter.recent_posts(
            token,
            user_id=integration.external_account_id,
            since=window_start,
            max_results=100,
        )
        matches = [p for p in recent if _normalise(p.text) == wanted]
        return matches[-1] if matches else None  # newest first: the earliest match

    def _backoff(self, attempts: int) -> timedelta:
        base = self.policy.first_backoff * (2 ** max(attempts - 1, 0))
        capped: timedelta = min(base, self.policy.max_backoff)
        jitter = 0.5 + random.random() / 2  # noqa: S311 - jitter, not security
        return capped * jitter

    def _save(self, post: Post) -> bool:
        """Save; False when another worker got there first (the message is then a no-op)."""
        try:
            self._app.save_all(post)
        except IntegrityError:
            return False
        return True


def _normalise(text: str) -> str:
    return " ".join(text.split())


def _category(exc: PlatformError) -> str:
    names = {
        "RateLimited": "rate_limited",
        "ContentRejected": "content_rejected",
        "DuplicateContent": "content_rejected",
        "XDuplicateContent": "content_rejected",
        "QuotaExceeded": "quota_exceeded",
        "TransientPlatformError": "platform_unavailable",
    }
    return names.get(type(exc).__name__, "platform_error")


def _label(integration: Integration) -> str:
    platform = PROVIDER_LABELS.get(integration.provider, integration.provider)
    return f"the {platform} account @{integration.account_name}"


def _unusable(integration: Integration | None) -> str:
    if integration is None:
        return "the account no longer exists in this organization"
    return f"{_label(integration)} is {integration.status}; reconnect it, then republish"


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
