"""The ``Post`` aggregate: one piece of content, its schedule, and one delivery per account.

Status is never stored; it is derived from the events (see ``Post.status``). Command methods
check invariants and then trigger an event whose ``apply`` is the only code that changes state,
so replaying the stored events rebuilds exactly the state the commands produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from domain.clock import event_time
from domain.errors import InvalidField, PostAlreadyDeleted, PostNotEditable


class PostStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    FAILED = "failed"
    PARTIAL = "partial"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    PUBLISHING = "publishing"
    IN_DOUBT = "in_doubt"
    PUBLISHED = "published"
    FAILED = "failed"


TERMINAL_DELIVERY = frozenset({DeliveryStatus.PUBLISHED, DeliveryStatus.FAILED})


@dataclass
class Delivery:
    """The state of publishing one post to one connected account."""

    account_id: str
    provider: str
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    remote_id: str | None = None
    url: str | None = None
    published_at: datetime | None = None
    error_category: str | None = None
    error_message: str | None = None
    retryable: bool = False
    next_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    lease_until: datetime | None = None
    """When the latest claim's lease ends (or ended): the window an attempt could post in."""
    segments: list[str] = field(default_factory=list)
    """Remote ids of the parts already posted, in order: a retry resumes after them."""
    media: dict[str, tuple[str, datetime | None]] = field(default_factory=dict)
    """Media already uploaded to the platform, by ``"<part>/<index>"``: remote id and when
    the platform forgets it. A retry attaches these instead of uploading again."""

    def uploaded_media(self, part: int, index: int, now: datetime) -> str | None:
        """The remote id of a file uploaded for this part, if the platform still has it."""
        found = self.media.get(f"{part}/{index}")
        if found is None:
            return None
        remote_id, expires_at = found
        return remote_id if expires_at is None or expires_at > now else None

    def media_ids(self, part: int) -> tuple[str, ...]:
        """The remote ids of every file checkpointed for this part, in attachment order,
        expired or not: what an earlier attempt attached if that part landed."""
        indexed = []
        for key, (remote_id, _) in self.media.items():
            key_part, _, index = key.partition("/")
            if int(key_part) == part:
                indexed.append((int(index), remote_id))
        return tuple(remote_id for _, remote_id in sorted(indexed))

    metrics_collected: int = 0
    """How many times the published post's engagement was read from the platform."""
    next_metrics_at: datetime | None = None
    """When its engagement is read next (None: no more collections planned)."""
    checkpoints: dict[str, str] = field(default_factory=dict)
    """Handles of a staged publish (an Instagram container id, a TikTok publish id), by
    name: a later attempt reads the platform's status through them instead of publishing
    again."""


def _require_future(scheduled_at: datetime, now: datetime) -> None:
    if scheduled_at.tzinfo is None:
        raise InvalidField("scheduledAt", "scheduledAt must include a timezone (e.g. 'Z')")
    if scheduled_at <= now:
        raise InvalidField("scheduledAt", "scheduledAt must be in the future")


class Post(Aggregate):
    """A post written once and published to every selected account."""

    if TYPE_CHECKING:  # declared for type checkers; a class-level annotation would
        # make the aggregate's metaclass treat these as constructor arguments.
        organization_id: UUID
        author_id: UUID
        content: str
        thread: list[str]
        media_urls: list[str]
        accounts: dict[str, str]
        scheduled_at: datetime | None
        deleted: bool
        request_fingerprint: str | None
        publishing_started_at: datetime | None
        published_at: datetime | None
        deliveries: dict[str, Delivery]

    # ---- events -------------------------------------------------------------------------

    class Event(Aggregate.Event):
        """Base of every event below: timestamped by ``domain.clock`` (the wall clock
        unless a simulation runs)."""

        @staticmethod
        def create_timestamp() -> datetime:
            return event_time()

    class PostDrafted(Aggregate.Created):
        """The post exists. ``accounts`` maps integration id to provider."""

        class_version = 1
        organization_id: UUID
        author_id: UUID
        content: str
        thread: list[str]
        media_urls: list[str]
        accounts: dict[str, str]
        request_fingerprint: str | None

        def apply(self, aggregate: Any) -> None:
            post: Post = aggregate
            post.organization_id = self.organization_id
            post.author_id = self.author_id
            post.content = self.content
            post.thread = list(self.thread)
            post.media_urls = list(self.media_urls)
            post.accounts = dict(self.accounts)
            post.request_fingerprint = self.request_fingerprint
            post.scheduled_at = None
            post.deleted = False
            post.publishing_started_at = None
            post.published_at = None
            post.deliveries = {}

    class PostScheduled(Aggregate.Event):
        class_version = 1
        scheduled_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.scheduled_at = self.scheduled_at

    class PostRescheduled(Aggregate.Event):
        class_version = 1
        scheduled_at: datetime
        previous_scheduled_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.scheduled_at = self.scheduled_at

    class PostUnscheduled(Aggregate.Event):
        """Back to a draft: it will not publish until scheduled again."""

        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.scheduled_at = None

    class PostEdited(Aggregate.Event):
        class_version = 1
        content: str
        thread: list[str]
        media_urls: list[str]
        accounts: dict[str, str]

        def apply(self, aggregate: Any) -> None:
            aggregate.content = self.content
            aggregate.thread = list(self.thread)
            aggregate.media_urls = list(self.media_urls)
            aggregate.accounts = dict(self.accounts)

    class PostDeleted(Aggregate.Event):
        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.deleted = True

    class PublishingStarted(Aggregate.Event):
        class_version = 1
        accounts: dict[str, str]

        def apply(self, aggregate: Any) -> None:
            aggregate.publishing_started_at = self.timestamp
            aggregate.deliveries = {
                account_id: Delivery(account_id=account_id, provider=provider)
                for account_id, provider in self.accounts.items()
            }

    class AccountPublishAttempted(Aggregate.Event):
        class_version = 1
        account_id: str
        attempt: int
        attempt_key: str
        lease_until: datetime

        def apply(self, aggregate: Any) -> None:
            delivery: Delivery = aggregate.deliveries[self.account_id]
            delivery.status = DeliveryStatus.PUBLISHING
            delivery.attempts = self.attempt
            delivery.last_attempt_at = self.timestamp
            # Nobody else may touch the delivery until this claim's lease ends.
            delivery.next_attempt_at = delivery.lease_until = self.lease_until

    class AccountLeaseExtended(Aggregate.Event):
        """The worker holding the claim needs longer (a large media upload): nobody takes
        the delivery over before ``lease_until``."""

        class_version = 1
        account_id: str
        lease_until: datetime

        def apply(self, aggregate: Any) -> None:
            delivery: Delivery = aggregate.deliveries[self.account_id]
            delivery.next_attempt_at = delivery.lease_until = self.lease_until

    class AccountPublished(Aggregate.Event):
        class_version = 1
        account_id: str
        remote_id: str
        url: str

        def apply(self, aggregate: Any) -> None:
            delivery: Delivery = aggregate.deliveries[self.account_id]
            delivery.status = DeliveryStatus.PUBLISHED
            delivery.next_attempt_at = None
            delivery.remote_id = self.remote_id
            delivery.url = self.url
            delivery.published_at = self.timestamp
            delivery.error_category = delivery.error_message = None

    class AccountPublishFailed(Aggregate.Event):
        class_version = 1
        account_id: str
        category: str
        retryable: bool
        message: str

        def apply(self, aggregate: Any) -> None:
            delivery: Delivery = aggregate.deliveries[self.account_id]
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
            delivery.error_category = self.category
            delivery.error_message = self.message
            delivery.retryable = self.retryable

    class AccountPublishInDoubt(Aggregate.Event):
        """The platform may or may not have the post; reconcile before any retry."""

        class_version = 1
        account_id: str
        reason: str
        reconcile_at: datetime

        def apply(self, aggregate: Any) -> None:
            delivery: Delivery = aggregate.deliveries[self.account_id]
            delivery.status = DeliveryStatus.IN_DOUBT
            delivery.error_message = self.reason
            delivery.next_attempt_at = self.reconcile_at

    class ThreadSegmentPosted(Aggregate.Event):
        """Checkpoint: one part of a thread is on the platform; never post it again."""

        class_version = 1
        account_id: str
        index: int
        remote_id: str

        def apply(self, aggregate: Any) -> None:
            delivery: Delivery = aggregate.deliveries[self.account_id]
            delivery.segments = [*delivery.segments[: self.index], self.remote_id]

    class AccountMediaUploaded(Aggregate.Event):
        """Checkpoint: one media file is on the platform, ready to attach to a part."""

        class_version = 1
        account_id: str
        part: int
        index: int
        remote_id: str
        expires_at: datetime | None

        def apply(self, aggregate: Any) -> None:
            delivery: Delivery = aggregate.deliveries[self.account_id]
            delivery.media = {
                **delivery.media,
                f"{self.part}/{self.index}": (self.remote_id, self.expires_at),
            }

    class AccountPublishCheckpointed(Aggregate.Event):
        """Checkpoint of a staged publish: the platform handed out a handle (a container
        id, a publish id) that tells later whether the post went out. An empty ``value``
        forgets the handle (the platform discarded it)."""

        class_version = 1
        account_id: str
        key: str
        value: str

        def apply(self, aggregate: Any) -> None:
            delivery: Delivery = aggregate.deliveries[self.account_id]
            checkpoints = {**delivery.checkpoints, self.key: self.value}
            if not self.value:
                del checkpoints[self.key]
            delivery.checkpoints = checkpoints

    class AccountMetricsCollected(Aggregate.Event):
        """The published post's engagement on one account, as the platform reported it at
        ``timestamp``; None where the platform does not report a figure."""

        class_version = 1
        account_id: str
        likes: int | None
        comments: int | None
        shares: int | None
        views: int | None
        reach: int | None
        saves: int | None
        next_collection_at: datetime | None

        def apply(self, aggregate: Any) -> None:
            delivery: Delivery = aggregate.deliveries[self.account_id]
            delivery.metrics_collected += 1
            delivery.next_metrics_at = self.next_collection_at

    class AccountMetricsDeferred(Aggregate.Event):
        """Reading the engagement has to wait (a rate limit, an outage, an account to
        reconnect), or was asked for (a backfill): it is read at ``retry_at``."""

        class_version = 1
        account_id: str
        retry_at: datetime
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.deliveries[self.account_id].next_metrics_at = self.retry_at

    class AccountMetricsStopped(Aggregate.Event):
        """No more engagement will be read for this account (the post is deleted, gone
        from the platform, or the account disconnected)."""

        class_version = 1
        account_id: str
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.deliveries[self.account_id].next_metrics_at = None

    class AccountRetryScheduled(Aggregate.Event):
        class_version = 1
        account_id: str
        retry_at: datetime

        def apply(self, aggregate: Any) -> None:
            delivery: Delivery = aggregate.deliveries[self.account_id]
            delivery.status = DeliveryStatus.PENDING
            delivery.next_attempt_at = self.retry_at

    class PostMissed(Aggregate.Event):
        """Its time passed while nothing could publish it; it is not published late."""

        class_version = 1
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.publishing_started_at = self.timestamp
            aggregate.deliveries = {
                account_id: Delivery(
                    account_id=account_id,
                    provider=provider,
                    status=DeliveryStatus.FAILED,
                    error_category="missed",
                    error_message=self.reason,
                )
                for account_id, provider in aggregate.accounts.items()
            }

    class RepublishRequested(Aggregate.Event):
        """Try again the accounts that failed; the published ones are left alone."""

        class_version = 1
        account_ids: list[str]

        def apply(self, aggregate: Any) -> None:
            for account_id in self.account_ids:
                delivery: Delivery = aggregate.deliveries[account_id]
                delivery.status = DeliveryStatus.PENDING
                delivery.error_category = delivery.error_message = None
                delivery.retryable = False
                delivery.next_attempt_at = None

    class PostPublished(Aggregate.Event):
        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.published_at = self.timestamp

    class PostFailed(Aggregate.Event):
        class_version = 1

    class PostPartiallyPublished(Aggregate.Event):
        class_version = 1

        def apply(self, aggregate: Any) -> None:
            aggregate.published_at = self.timestamp

    # ---- commands -----------------------------------------------------------------------

    @classmethod
    def draft(
        cls,
        *,
        organization_id: UUID,
        author_id: UUID,
        content: str,
        thread: list[str],
        media_urls: list[str],
        accounts: dict[str, str],
        post_id: UUID | None = None,
        request_fingerprint: str | None = None,
    ) -> Post:
        if not accounts:
            raise InvalidField(
                "accountIds", "select at least one account (accountIds or platforms)"
            )
        return cls._create(
            cls.PostDrafted,
            id=post_id or uuid4(),
            organization_id=organization_id,
            author_id=author_id,
            content=content,
            thread=list(thread),
            media_urls=list(media_urls),
            accounts=dict(accounts),
            request_fingerprint=request_fingerprint,
        )

    def schedule(self, scheduled_at: datetime, *, now: datetime) -> None:
        """Set or move the publish time; ``None``-free: use ``unschedule`` for drafts."""
        self._require_editable()
        _require_future(scheduled_at, now)
        if self.scheduled_at is None:
            self.trigger_event(self.PostScheduled, scheduled_at=scheduled_at)
        elif scheduled_at != self.scheduled_at:
            self.trigger_event(
                self.PostRescheduled,
                scheduled_at=scheduled_at,
                previous_scheduled_at=self.scheduled_at,
            )

    def unschedule(self) -> None:
        self._require_editable()
        if self.scheduled_at is not None:
            self.trigger_event(self.PostUnscheduled)

    def edit(
        self,
        *,
        content: str,
        thread: list[str],
        media_urls: list[str],
        accounts: dict[str, str],
    ) -> None:
        self._require_editable()
        if not accounts:
            raise InvalidField(
                "accountIds", "select at least one account (accountIds or platforms)"
            )
        changed = (
            content != self.content
            or thread != self.thread
            or media_urls != self.media_urls
            or accounts != self.accounts
        )
        if changed:
            self.trigger_event(
                self.PostEdited,
                content=content,
                thread=list(thread),
                media_urls=list(media_urls),
                accounts=dict(accounts),
            )

    def delete(self) -> None:
        if self.deleted:
            raise PostAlreadyDeleted("the post is already deleted")
        if self.status is PostStatus.PUBLISHING:
            raise PostNotEditable("the post is publishing right now and cannot be deleted")
        self.trigger_event(self.PostDeleted)

    def start_publishing(self) -> None:
        if self.deleted:
            raise PostAlreadyDeleted("a deleted post is never published")
        if self.status is not PostStatus.SCHEDULED:
            raise PostNotEditable(f"a {self.status} post cannot start publishing")
        self.trigger_event(self.PublishingStarted, accounts=dict(self.accounts))

    def attempt(self, account_id: str, *, attempt_key: str, lease_until: datetime) -> int:
        """Claim one delivery. Returns the attempt number it was recorded under."""
        delivery = self._open_delivery(account_id)
        attempt = delivery.attempts + 1
        self.trigger_event(
            self.AccountPublishAttempted,
            account_id=account_id,
            attempt=attempt,
            attempt_key=attempt_key,
            lease_until=lease_until,
        )
        return attempt

    def extend_lease(self, account_id: str, *, lease_until: datetime) -> None:
        """Hold the live claim until ``lease_until``; a lease is never shortened."""
        delivery = self._open_delivery(account_id)
        if delivery.status is not DeliveryStatus.PUBLISHING:
            raise PostNotEditable(f"delivery to {account_id} is not claimed: no lease to extend")
        if delivery.next_attempt_at is None or lease_until > delivery.next_attempt_at:
            self.trigger_event(
                self.AccountLeaseExtended, account_id=account_id, lease_until=lease_until
            )

    def record_published(self, account_id: str, *, remote_id: str, url: str) -> None:
        self._open_delivery(account_id)
        self.trigger_event(
            self.AccountPublished, account_id=account_id, remote_id=remote_id, url=url
        )
        self._conclude_if_done()

    def record_failed(
        self,
        account_id: str,
        *,
        category: str,
        retryable: bool,
        message: str,
        retry_at: datetime | None = None,
    ) -> None:
        """Record a failed attempt; with ``retry_at`` the delivery waits for another."""
        self._open_delivery(account_id)
        self.trigger_event(
            self.AccountPublishFailed,
            account_id=account_id,
            category=category,
            retryable=retryable,
            message=message,
        )
        if retry_at is not None:
            self.trigger_event(self.AccountRetryScheduled, account_id=account_id, retry_at=retry_at)
        self._conclude_if_done()

    def record_in_doubt(self, account_id: str, *, reason: str, reconcile_at: datetime) -> None:
        self._open_delivery(account_id)
        self.trigger_event(
            self.AccountPublishInDoubt,
            account_id=account_id,
            reason=reason,
            reconcile_at=reconcile_at,
        )

    def record_segment(self, account_id: str, *, index: int, remote_id: str) -> None:
        delivery = self._open_delivery(account_id)
        if index != len(delivery.segments):
            raise InvalidField("index", f"part {index} follows {len(delivery.segments)} posted")
        self.trigger_event(
            self.ThreadSegmentPosted, account_id=account_id, index=index, remote_id=remote_id
        )

    def record_media_uploaded(
        self,
        account_id: str,
        *,
        part: int,
        index: int,
        remote_id: str,
        expires_at: datetime | None,
    ) -> None:
        self._open_delivery(account_id)
        self.trigger_event(
            self.AccountMediaUploaded,
            account_id=account_id,
            part=part,
            index=index,
            remote_id=remote_id,
            expires_at=expires_at,
        )

    def record_checkpoint(self, account_id: str, *, key: str, value: str) -> None:
        delivery = self._open_delivery(account_id)
        if not key:
            raise InvalidField("key", "a checkpoint needs a name")
        if delivery.checkpoints.get(key, "") != value:
            self.trigger_event(
                self.AccountPublishCheckpointed, account_id=account_id, key=key, value=value
            )

    def record_metrics(
        self,
        account_id: str,
        *,
        likes: int | None,
        comments: int | None,
        shares: int | None,
        views: int | None,
        reach: int | None,
        saves: int | None,
        next_collection_at: datetime | None,
    ) -> None:
        self._published_delivery(account_id)
        self.trigger_event(
            self.AccountMetricsCollected,
            account_id=account_id,
            likes=likes,
            comments=comments,
            shares=shares,
            views=views,
            reach=reach,
            saves=saves,
            next_collection_at=next_collection_at,
        )

    def defer_metrics(self, account_id: str, *, retry_at: datetime, reason: str) -> None:
        self._published_delivery(account_id)
        self.trigger_event(
            self.AccountMetricsDeferred, account_id=account_id, retry_at=retry_at, reason=reason
        )

    def stop_metrics(self, account_id: str, *, reason: str) -> None:
        """Allowed on a deleted post too: that is one reason to stop."""
        self._delivery(account_id)
        self.trigger_event(self.AccountMetricsStopped, account_id=account_id, reason=reason)

    def _published_delivery(self, account_id: str) -> Delivery:
        delivery = self._delivery(account_id)
        if delivery.status is not DeliveryStatus.PUBLISHED:
            raise PostNotEditable(f"delivery to {account_id} is not published: no engagement yet")
        if self.deleted:
            raise PostAlreadyDeleted("the post is deleted")
        return delivery

    def miss(self, reason: str) -> None:
        if self.deleted:
            raise PostAlreadyDeleted("a deleted post is never published")
        if self.status is not PostStatus.SCHEDULED:
            raise PostNotEditable(f"a {self.status} post cannot be missed")
        self.trigger_event(self.PostMissed, reason=reason)
        self._conclude_if_done()

    def republish(self) -> list[str]:
        """Retry the failed accounts of a failed or partial post; returns their ids."""
        if self.deleted:
            raise PostAlreadyDeleted("the post is deleted")
        if self.status not in (PostStatus.FAILED, PostStatus.PARTIAL):
            raise PostNotEditable(
                f"only failed or partial posts can be republished, not {self.status}"
            )
        failed = [a for a, d in self.deliveries.items() if d.status is DeliveryStatus.FAILED]
        self.trigger_event(self.RepublishRequested, account_ids=failed)
        return failed

    @property
    def parts(self) -> list[str]:
        """What is published, in order: the content, then each thread part."""
        return [self.content, *self.thread]

    # ---- derived state ------------------------------------------------------------------

    @property
    def status(self) -> PostStatus:
        if self.publishing_started_at is None:
            return PostStatus.DRAFT if self.scheduled_at is None else PostStatus.SCHEDULED
        statuses = [d.status for d in self.deliveries.values()]
        if not all(s in TERMINAL_DELIVERY for s in statuses):
            return PostStatus.PUBLISHING
        published = sum(s is DeliveryStatus.PUBLISHED for s in statuses)
        if published == len(statuses):
            return PostStatus.PUBLISHED
        return PostStatus.FAILED if published == 0 else PostStatus.PARTIAL

    @property
    def providers(self) -> list[str]:
        """Distinct platforms this post targets, in the order first selected."""
        return list(dict.fromkeys(self.accounts.values()))

    def _require_editable(self) -> None:
        if self.deleted:
            raise PostAlreadyDeleted("the post is deleted")
        if self.status not in (PostStatus.DRAFT, PostStatus.SCHEDULED):
            raise PostNotEditable(f"a {self.status} post can no longer be edited")

    def _delivery(self, account_id: str) -> Delivery:
        try:
            return self.deliveries[account_id]
        except KeyError:
            raise InvalidField("accountId", f"the post has no delivery to {account_id}") from None

    def _open_delivery(self, account_id: str) -> Delivery:
        """A delivery whose outcome is not yet recorded; a recorded outcome is never overturned."""
        delivery = self._delivery(account_id)
        if delivery.status in TERMINAL_DELIVERY:
            raise PostNotEditable(f"delivery to {account_id} already ended as {delivery.status}")
        return delivery

    def _conclude_if_done(self) -> None:
        outcome = self.status
        if outcome is PostStatus.PUBLISHED:
            self.trigger_event(self.PostPublished)
        elif outcome is PostStatus.PARTIAL:
            self.trigger_event(self.PostPartiallyPublished)
        elif outcome is PostStatus.FAILED:
            self.trigger_event(self.PostFailed)
