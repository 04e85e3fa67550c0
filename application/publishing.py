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
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from application.app import KairosApplication
from application.credentials import AccessTokens
from application.platforms import (
    AuthorizationExpired,
    ClaimLost,
    DuplicateContent,
    MediaPayload,
    PlatformAdapter,
    PlatformError,
    PublishMedia,
    PublishRequest,
    QuotaReached,
    RateLimited,
    StagedPublisher,
    TimelinePost,
    TransientPlatformError,
)
from domain.content_rules import PROVIDER_LABELS
from domain.errors import DomainError
from domain.integration import Integration
from domain.post import TERMINAL_DELIVERY, Delivery, DeliveryStatus, Post, PostStatus

SAVE_RETRIES = 10
_jitter = random.Random()  # noqa: S311 - jitter, not security
"""Our own generator: the global one is shared state (and a test framework watches it)."""
SETTLE_SEARCH_LIMIT = 1000
"""Posts read back, across pages, when settling an attempt whose outcome is unknown."""


@dataclass(frozen=True)
class _Claim:
    post: Post
    integration: Integration
    attempt: int
    settle: tuple[datetime, datetime | None] | None
    """When the previous attempt ran (its claim, its lease's end), if there was one: it
    may have landed, so the platform is searched in that window before posting again."""


def _checkpoint(
    account_id: str,
    index: int,
    remote_id: str,
    adapter: PlatformAdapter,
    post: Post,
    *,
    last: bool,
) -> None:
    """Record one posted part; with the last part, the outcome goes in the same save."""
    post.record_segment(account_id, index=index, remote_id=remote_id)
    if last:
        first = post.deliveries[account_id].segments[0]
        post.record_published(account_id, remote_id=first, url=adapter.post_url(first))


def _holds(delivery: Delivery, attempt: int) -> bool:
    """Whether the claim recorded as ``attempt`` is still the live one on this delivery."""
    return delivery.attempts == attempt and delivery.status is DeliveryStatus.PUBLISHING


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
    upload_rate_floor: int = 1_000_000
    """Bytes per second a media upload is assumed to reach at worst: before each upload the
    claim's lease is extended by the file's size at this rate, so a slow upload is not
    taken for a dead worker (and uploaded again by the next claim, forever)."""
    media_processing: timedelta = timedelta(seconds=120)
    """How long the platform may process a video or GIF after its upload (the X adapter
    waits up to ``media_processing_timeout``, 120 s), added to that extension."""

    @property
    def attempt_ceiling(self) -> int:
        """Claims a delivery may take in all. Failures stop at ``max_attempts``; this
        bounds the claims whose lease ran out (a worker that died or kept running late)."""
        return 2 * self.max_attempts


class StoredFile(MediaPayload, Protocol):
    """A stored media file as a platform may need it: bytes, public URL, dimensions."""

    @property
    def url(self) -> str: ...

    @property
    def width(self) -> int | None: ...

    @property
    def height(self) -> int | None: ...

    @property
    def duration_ms(self) -> int | None: ...


class MediaLibrary(Protocol):
    def payloads(self, organization_id: UUID, urls: Sequence[str]) -> Sequence[StoredFile]:
        """The stored files behind a post's media URLs (``application/media.py``)."""
        ...


class LatePublishing(Protocol):
    def publishes_late(self, organization_id: UUID) -> bool:
        """Whether the organization wants posts published late rather than marked missed."""
        ...

    def delays_on_quota(self, organization_id: UUID) -> bool:
        """Whether a post over a platform's publishing quota waits for room (rather than
        failing at once, saying so)."""
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
        media: MediaLibrary | None = None,
    ) -> None:
        self._app = app
        self._media = media
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
            self._save(post)
            return
        post.start_publishing()
        claim = self._claim_started(post) if len(post.accounts) == 1 else None
        if claim is None:
            self._save(post)  # fan out: the dispatcher sends one delivery per account
        elif self._save(post):
            self._publish(claim)

    def _claim_started(self, post: Post) -> _Claim | None:
        """A post to one account is claimed in the very save that starts it: no dispatch, no
        second message, no second transaction before the platform call."""
        (account_id,) = post.accounts
        integration = self._app.get_integration(UUID(account_id))
        if integration is None or not integration.can_publish:
            return None  # its delivery records why, on the usual path
        attempt = post.attempt(
            account_id,
            attempt_key=f"{post.id}/{account_id}/1",
            lease_until=self._clock() + self.policy.lease,
        )
        return _Claim(post, integration, attempt, None)

    # ---- steps 1-4: one account ----------------------------------------------------------

    def deliver(self, post_id: UUID, account_id: str) -> None:
        claim = self._claim(post_id, account_id)
        if claim is not None:
            self._publish(claim)

    def _claim(self, post_id: UUID, account_id: str) -> _Claim | None:
        """Record ``AccountPublishAttempted``; None if there is nothing to do or it is taken.

        A save conflict may come from another account's delivery of the same post (they
        share the aggregate), so the command is retried on a fresh copy until it is clear
        whether this worker holds the claim.
        """
        for _ in range(SAVE_RETRIES):
            post = self._app.get_post(post_id)
            if post is None or post.deleted:
                return None
            delivery = post.deliveries.get(account_id)
            if delivery is None or delivery.status in TERMINAL_DELIVERY:
                return None
            now = self._clock()
            if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
                return None  # early, or another worker's claim is live: the index says when
            integration = self._app.get_integration(UUID(account_id))
            if integration is None or not integration.can_publish:
                post.record_failed(
                    account_id,
                    category="account_unusable",
                    retryable=False,
                    message=_unusable(integration),
                )
                if self._save(post):
                    return None
                continue
            # Any earlier attempt may have landed (a lost answer, a crash, even a "failure"
            # that timed out), so a delivery tried before is settled against the platform.
            settle = None
            if delivery.attempts and delivery.last_attempt_at is not None:
                settle = (delivery.last_attempt_at, delivery.lease_until)
            attempt = post.attempt(
                account_id,
                attempt_key=f"{post_id}/{account_id}/{delivery.attempts + 1}",
                lease_until=now + self.policy.lease,
            )
            if self._save(post):
                return _Claim(post, integration, attempt, settle)
        return None

    def _publish(self, claim: _Claim) -> None:
        post, integration, attempt = claim.post, claim.integration, claim.attempt
        account_id = str(integration.id)
        adapter = self._adapters[integration.provider]
        if isinstance(adapter, StagedPublisher):
            self._publish_staged(claim, adapter)
            return
        uncertain = claim.settle is not None
        try:
            token = self._tokens.for_publishing(integration)
            parts = post.parts
            delivery = post.deliveries[account_id]
            while len(delivery.segments) < len(parts):
                index = len(delivery.segments)
                found = None
                if uncertain:
                    earlier_media = delivery.media_ids(index)
                    found = self._find(
                        adapter, token, integration, parts[index], earlier_media, claim.settle
                    )
                if found is None and attempt > self.policy.attempt_ceiling:
                    self._record_out_of_time(post.id, account_id, attempt)
                    return
                if found is None:
                    media_ids: list[str] = []
                    if index == 0 and post.media_urls:
                        uploaded = self._upload_media(post, adapter, token, account_id, attempt)
                        if uploaded is None:
                            return  # the claim was lost or its lease ran low
                        post, media_ids = uploaded
                        delivery = post.deliveries[account_id]
                    if not self._lease_allows_a_call(delivery):
                        return  # too close to the lease's end: the next claim settles it
                    previous = delivery.segments[-1] if delivery.segments else None
                    try:
                        created = adapter.create_post(
                            token, text=parts[index], in_reply_to=previous, media_ids=media_ids
                        )
                    except DuplicateContent:
                        # The platform says it already has this text: find it, don't fail.
                        found = self._find(
                            adapter, token, integration, parts[index], tuple(media_ids), None
                        )
                        if found is None:
                            raise
                        remote_id = found.remote_id
                    else:
                        remote_id = created.remote_id
                else:
                    remote_id = found.remote_id
                uncertain = False
                last = index == len(parts) - 1
                record = partial(_checkpoint, account_id, index, remote_id, adapter, last=last)
                saved = self._while_claimed(post.id, account_id, attempt, record, current=post)
                if saved is None:
                    return  # the claim was lost: whoever holds it now settles the rest
                post, delivery = saved, saved.deliveries[account_id]
        except AuthorizationExpired as exc:
            self._record_expired(post.id, integration, attempt, exc.message)
        except PlatformError as exc:
            self._record_failure(post.id, account_id, attempt, exc)

    def _publish_staged(self, claim: _Claim, adapter: StagedPublisher) -> None:
        """Hand the delivery to an adapter that publishes in stages (containers, publish
        ids), checkpointing each handle through ``_Progress``; it settles an earlier
        attempt from those handles itself."""
        post, integration, attempt = claim.post, claim.integration, claim.attempt
        account_id = str(integration.id)
        progress = _Progress(self, post, account_id, attempt, claim.settle)
        try:
            if attempt > self.policy.attempt_ceiling and not progress.checkpoints:
                self._record_out_of_time(post.id, account_id, attempt)
                return
            token = self._tokens.for_publishing(integration)
            request = PublishRequest(
                account_id=integration.external_account_id,
                username=integration.account_name,
                text=post.content,
                media=[
                    PublishMedia(
                        url=stored.url,
                        payload=stored,
                        width=stored.width,
                        height=stored.height,
                        duration_ms=stored.duration_ms,
                    )
                    for stored in self._stored_media(post)
                ],
            )
            published = adapter.publish(token, request, progress)
            record = partial(
                Post.record_published,
                account_id=account_id,
                remote_id=published.remote_id,
                url=published.url,
            )
            self._while_claimed(post.id, account_id, attempt, record, current=progress.post)
        except ClaimLost:
            return  # whoever holds the claim now settles it from the checkpoints
        except AuthorizationExpired as exc:
            self._record_expired(post.id, integration, attempt, exc.message)
        except QuotaReached as exc:
            if exc.retry_at is not None and self._late.delays_on_quota(post.organization_id):
                self._record_quota_wait(post.id, account_id, attempt, exc)
            else:
                self._record_failure(post.id, account_id, attempt, exc)
        except PlatformError as exc:
            self._record_failure(post.id, account_id, attempt, exc)

    def _stored_media(self, post: Post) -> Sequence[StoredFile]:
        if not post.media_urls:
            return []
        if self._media is None:
            raise RuntimeError("a post with media needs a media library to publish")
        return self._media.payloads(post.organization_id, post.media_urls)

    def _record_quota_wait(
        self, post_id: UUID, account_id: str, attempt: int, exc: QuotaReached
    ) -> None:
        """The organization chose to wait for the platform's quota: try again when a slot
        frees up. The wait does not count as a failed attempt."""
        assert exc.retry_at is not None
        retry_at = exc.retry_at

        def record(post: Post) -> None:
            post.record_failed(
                account_id,
                category="quota_exceeded",
                retryable=True,
                message=f"{exc.message}; waiting for the quota, retrying at "
                f"{retry_at:%Y-%m-%d %H:%M} UTC",
                retry_at=retry_at,
            )

        self._while_claimed(post_id, account_id, attempt, record)

    def _upload_media(
        self,
        post: Post,
        adapter: PlatformAdapter,
        token: str,
        account_id: str,
        attempt: int,
        part: int = 0,
    ) -> tuple[Post, list[str]] | None:
        """Upload the post's media to the platform, each file checkpointed once uploaded so a
        retry attaches it instead of uploading again. None if the claim is lost meanwhile."""
        if self._media is None:
            raise RuntimeError("a post with media needs a media library to publish")
        media_ids = []
        for index, payload in enumerate(
            self._media.payloads(post.organization_id, post.media_urls)
        ):
            delivery = post.deliveries[account_id]
            known = delivery.uploaded_media(part, index, self._clock())
            if known is not None:
                media_ids.append(known)
                continue
            # The upload may outlast the lease (a large file, then the platform's
            # processing): hold the claim long enough first, or the next claim uploads again.
            extend = partial(
                Post.extend_lease,
                account_id=account_id,
                lease_until=self._clock() + self._upload_allowance(payload),
            )
            extended = self._while_claimed(post.id, account_id, attempt, extend, current=post)
            if extended is None:
                return None
            post, delivery = extended, extended.deliveries[account_id]
            if not self._lease_allows_a_call(delivery):
                return None
            uploaded = adapter.upload_media(token, payload)
            record = partial(
                Post.record_media_uploaded,
                account_id=account_id,
                part=part,
                index=index,
                remote_id=uploaded.remote_id,
                expires_at=uploaded.expires_at,
            )
            saved = self._while_claimed(post.id, account_id, attempt, record, current=post)
            if saved is None:
                return None
            post = saved
            media_ids.append(uploaded.remote_id)
        return post, media_ids

    def _upload_allowance(self, payload: MediaPayload) -> timedelta:
        """How long a claim must last to upload ``payload`` at worst and publish after."""
        kind = payload.content_type.split(";", 1)[0].strip().lower()
        processed = kind.startswith("video/") or kind == "image/gif"
        transfer = timedelta(seconds=payload.size / self.policy.upload_rate_floor)
        processing = self.policy.media_processing if processed else timedelta(0)
        return self.policy.lease + transfer + processing

    def _while_claimed(
        self,
        post_id: UUID,
        account_id: str,
        attempt: int,
        record: Callable[[Post], object],
        *others: Callable[[], Aggregate | None],
        current: Post | None = None,
    ) -> Post | None:
        """Apply ``record`` and save, retrying conflicts with other accounts' deliveries on a
        fresh copy, for as long as this worker's claim stands. ``current`` (the copy this
        worker last saved) is tried first; a copy whose save failed is never reused."""
        for _ in range(SAVE_RETRIES):
            post = current or self._app.get_post(post_id)
            current = None
            delivery = post.deliveries.get(account_id) if post else None
            if post is None or delivery is None or not _holds(delivery, attempt):
                return None
            record(post)
            extra = [aggregate for load in others if (aggregate := load()) is not None]
            if self._save(post, *extra):
                return post
        return None

    # ---- outcomes ------------------------------------------------------------------------

    def _record_failure(
        self, post_id: UUID, account_id: str, attempt: int, exc: PlatformError
    ) -> None:
        now = self._clock()
        exhausted = attempt >= self.policy.max_attempts
        backoff = self._backoff(attempt)

        def record(post: Post) -> None:
            if isinstance(exc, TransientPlatformError) and not exhausted:
                post.record_in_doubt(
                    account_id,
                    reason=f"no clear answer from the platform: {exc.message}",
                    reconcile_at=now + self.policy.settle_after + backoff,
                )
            elif exc.retryable and not exhausted:
                retry_at = now + backoff
                if isinstance(exc, RateLimited) and exc.reset_at is not None:
                    retry_at = max(retry_at, exc.reset_at)
                post.record_failed(
                    account_id,
                    category=_category(exc),
                    retryable=True,
                    message=f"{exc.message} (attempt {attempt}; "
                    f"retrying at {retry_at:%H:%M:%S} UTC)",
                    retry_at=retry_at,
                )
            else:
                suffix = f" (gave up after {attempt} attempts)" if exc.retryable else ""
                post.record_failed(
                    account_id,
                    category=_category(exc),
                    retryable=False,
                    message=exc.message + suffix,
                )

        self._while_claimed(post_id, account_id, attempt, record)

    def _record_out_of_time(self, post_id: UUID, account_id: str, attempt: int) -> None:
        """Give up on a delivery whose claims keep ending before their work does; only
        reached after settling, so a post that landed meanwhile is recorded instead."""
        self._while_claimed(
            post_id,
            account_id,
            attempt,
            lambda post: post.record_failed(
                account_id,
                category="timed_out",
                retryable=False,
                message=f"gave up after {attempt - 1} attempts: they kept running out of time "
                "before the platform answered; republish the post to try again",
            ),
        )

    def _record_expired(
        self, post_id: UUID, integration: Integration, attempt: int, reason: str
    ) -> None:
        def expired_account() -> Integration | None:
            account = self._app.get_integration(integration.id)
            if account is not None:
                with contextlib.suppress(DomainError):  # already disconnected: nothing to mark
                    account.record_token_expired(reason)
            return account

        self._while_claimed(
            post_id,
            str(integration.id),
            attempt,
            lambda post: post.record_failed(
                str(integration.id),
                category="auth_expired",
                retryable=False,
                message=f"{_label(integration)} needs reconnecting ({reason}); reconnect it, "
                "then republish",
            ),
            expired_account,
        )

    def _lease_allows_a_call(self, delivery: Delivery) -> bool:
        lease_until = delivery.next_attempt_at
        budget = min(self.policy.call_budget, self.policy.lease / 3)
        return lease_until is None or self._clock() + budget < lease_until

    def _find(
        self,
        adapter: PlatformAdapter,
        token: str,
        integration: Integration,
        text: str,
        media_ids: tuple[str, ...],
        window: tuple[datetime, datetime | None] | None,
    ) -> TimelinePost | None:
        """The account's own post with exactly this text and these media, made during the
        attempt that ran in ``window`` (its claim, its lease's end), or in the last day when
        ``window`` is None. A part with neither text nor media is never recognised."""
        wanted = _normalise(text)
        if not wanted and not media_ids:
            return None
        margin = timedelta(minutes=1)
        if window is None:
            window_start, window_end = self._clock() - timedelta(days=1), None
        else:
            since, lease_until = window
            window_start = since - margin
            window_end = (lease_until or since + self.policy.lease) + margin
            if window_end > self._clock() - timedelta(seconds=10):
                window_end = None  # X wants end_time in the past; the window is still open
        recent = adapter.recent_posts(
            token,
            user_id=integration.external_account_id,
            since=window_start,
            until=window_end,
            max_results=SETTLE_SEARCH_LIMIT,
        )
        matches = [p for p in recent if _normalise(p.text) == wanted and p.media_ids == media_ids]
        return matches[-1] if matches else None  # newest first: the earliest match

    def _backoff(self, attempts: int) -> timedelta:
        base = self.policy.first_backoff * (2 ** max(attempts - 1, 0))
        capped: timedelta = min(base, self.policy.max_backoff)
        jitter = 0.5 + _jitter.random() / 2
        return capped * jitter

    def _save(self, *aggregates: Aggregate) -> bool:
        """Save atomically; False when a concurrent change got there first."""
        try:
            self._app.save_all(*aggregates)
        except IntegrityError:
            return False
        return True


class _Progress:
    """``PublishProgress`` over one claimed delivery: checkpoints are saved as post events
    while this worker's claim stands (``ClaimLost`` otherwise)."""

    def __init__(
        self,
        service: PublishingService,
        post: Post,
        account_id: str,
        attempt: int,
        settle: tuple[datetime, datetime | None] | None,
    ) -> None:
        self._service = service
        self.post = post
        self._account_id = account_id
        self._attempt = attempt
        self._settle = settle

    @property
    def checkpoints(self) -> dict[str, str]:
        return self.post.deliveries[self._account_id].checkpoints

    @property
    def resumed(self) -> bool:
        return self._settle is not None

    @property
    def attempt_started(self) -> datetime | None:
        return self._settle[0] if self._settle is not None else None

    def get(self, key: str) -> str | None:
        return self.checkpoints.get(key)

    def record(self, key: str, value: str) -> None:
        checkpoint = partial(
            Post.record_checkpoint, account_id=self._account_id, key=key, value=value
        )
        self._save(checkpoint)

    def hold(self, duration: timedelta) -> None:
        lease_until = self._service._clock() + duration
        self._save(partial(Post.extend_lease, account_id=self._account_id, lease_until=lease_until))

    def check(self) -> None:
        if not self._service._lease_allows_a_call(self.post.deliveries[self._account_id]):
            raise ClaimLost("the claim's lease is too close to its end for another call")

    def _save(self, record: Callable[[Post], object]) -> None:
        saved = self._service._while_claimed(
            self.post.id, self._account_id, self._attempt, record, current=self.post
        )
        if saved is None:
            raise ClaimLost("another worker holds this delivery now")
        self.post = saved


_LINK_SCHEME = re.compile(r"\bhttps?://", re.IGNORECASE)


def _normalise(text: str) -> str:
    """Text compared as a platform may give it back: NFC, whitespace collapsed, and links
    without their scheme (X gives a link written ``example.com/a`` back as
    ``http://example.com/a``)."""
    flat = " ".join(unicodedata.normalize("NFC", text).split())
    return _LINK_SCHEME.sub("", flat)


def _category(exc: PlatformError) -> str:
    names = {
        "RateLimited": "rate_limited",
        "ContentRejected": "content_rejected",
        "DuplicateContent": "content_rejected",
        "XDuplicateContent": "content_rejected",
        "QuotaExceeded": "quota_exceeded",
        "QuotaReached": "quota_exceeded",
        "TransientPlatformError": "platform_unavailable",
        "MediaUnavailable": "media_unavailable",
        "MediaChanged": "media_changed",
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
