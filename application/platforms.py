"""The port every platform adapter implements, and its typed error taxonomy.

Adapters live in ``interfaces/platforms``; the application only sees these types, so the
same code drives the real platform or a ``sandbox/`` simulator, chosen by base URL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class TokenSet:
    """Tokens as a platform issued them. Lives only in memory and in the credential vault."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    refresh_expires_at: datetime | None = None
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class AccountProfile:
    external_id: str
    username: str
    display_name: str
    avatar_url: str | None = None
    detail: str | None = None
    """What the user needs to tell candidates apart when choosing (e.g. the Facebook Page)."""


@dataclass(frozen=True)
class RemotePost:
    remote_id: str
    url: str


class PersonalAccountRefused(Exception):
    """The authorized account is a personal one the platform will not let apps publish to."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class UploadedMedia:
    """A file the platform holds, ready to attach to a post until ``expires_at``."""

    remote_id: str
    expires_at: datetime | None


class MediaPayload(Protocol):
    """The bytes of one stored media file, read in order; never held whole in memory."""

    @property
    def content_type(self) -> str: ...

    @property
    def size(self) -> int: ...

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        """The file from its first byte to its last, in pieces of at most ``chunk_size``."""
        ...


@dataclass(frozen=True)
class TimelinePost:
    """A post already on the account, as the platform lists it (used to reconcile)."""

    remote_id: str
    text: str
    """As it was sent: links as written, without any the platform added for media."""
    created_at: datetime | None
    url: str
    media_ids: tuple[str, ...] = ()
    """The platform's ids of the media attached, in order (as ``upload_media`` returned)."""


class PlatformError(Exception):
    """Base of every failure a platform adapter reports."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class AuthorizationExpired(PlatformError):
    """The token is expired, revoked or otherwise unusable: the user must reconnect."""


class RateLimited(PlatformError):
    retryable = True

    def __init__(
        self, message: str, *, reset_at: datetime | None, status: int | None = 429
    ) -> None:
        super().__init__(message, status=status)
        self.reset_at = reset_at


class TransientPlatformError(PlatformError):
    """5xx, timeouts, connection drops: the outcome of a write may be unknown."""

    retryable = True


class ContentRejected(PlatformError):
    """The platform refused this content for good (too long, duplicate, bad media)."""


class DuplicateContent(ContentRejected):
    """Refused as a duplicate of a recent post: after an ambiguous create, evidence it landed."""


class QuotaExceeded(PlatformError):
    """A usage cap that will not reset soon (monthly cap, daily publishing limit)."""


class OAuthExchangeFailed(PlatformError):
    """The authorization code or refresh token was refused by the token endpoint."""


class QuotaReached(QuotaExceeded):
    """A rolling publishing quota is used up (Instagram's ``content_publishing_limit``).
    ``retry_at`` is the earliest time a slot may free up, when the platform tells."""

    def __init__(
        self, message: str, *, retry_at: datetime | None, status: int | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_at = retry_at


class ClaimLost(Exception):
    """Raised by :class:`PublishProgress` when this worker no longer holds the delivery (or
    its lease is too close to its end for another irreversible call). An adapter must let it
    propagate: whoever holds the claim now settles the delivery from the checkpoints."""


@dataclass(frozen=True)
class Capabilities:
    text: bool = True
    images: bool = False
    video: bool = False
    threads: bool = False
    names: tuple[str, ...] = field(default=())


class PlatformAdapter(Protocol):
    """What Kairos needs from a platform. One implementation per provider."""

    provider: str

    def capabilities(self) -> tuple[str, ...]: ...

    def authorization_url(self, *, state: str, code_challenge: str, redirect_uri: str) -> str: ...

    def exchange_code(self, *, code: str, code_verifier: str, redirect_uri: str) -> TokenSet: ...

    def refresh(self, refresh_token: str) -> TokenSet: ...

    def fetch_profile(self, access_token: str) -> AccountProfile: ...

    def upload_media(self, access_token: str, media: MediaPayload) -> UploadedMedia:
        """Upload one file and wait until the platform can attach it to a post."""
        ...

    def create_post(
        self,
        access_token: str,
        *,
        text: str,
        in_reply_to: str | None = None,
        media_ids: Sequence[str] = (),
    ) -> RemotePost: ...

    def post_url(self, remote_id: str) -> str:
        """The public URL of one of the account's posts."""
        ...

    def recent_posts(
        self,
        access_token: str,
        *,
        user_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
        max_results: int = 10,
    ) -> list[TimelinePost]:
        """The account's own posts between ``since`` and ``until``, newest first, across as
        many pages as ``max_results`` needs: how an in-doubt publish is settled."""
        ...


# ---- publishing in stages (Instagram containers, TikTok publish ids) ---------------------


@dataclass(frozen=True)
class PublishMedia:
    """One file of a post: its public URL (for platforms that fetch it, like Instagram's
    ``image_url``) and its bytes (for platforms that take an upload, like TikTok)."""

    url: str
    payload: MediaPayload
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None


@dataclass(frozen=True)
class PublishRequest:
    account_id: str
    """The account's id on the platform (Instagram user id, TikTok open_id)."""
    username: str
    text: str
    media: Sequence[PublishMedia] = ()


class PublishProgress(Protocol):
    """The checkpoints of one delivery, kept as events of the post under the worker's claim.

    An adapter records each irreversible step's handle (a container id, a publish id) the
    moment it has it, before the next step: a later attempt (after a crash, a lost answer or
    a timeout) reads them back and settles from the platform's own status instead of
    publishing again. ``record`` and ``hold`` raise :class:`ClaimLost` when another worker
    has taken the delivery over."""

    @property
    def resumed(self) -> bool:
        """Whether an earlier attempt ran: its checkpoints may describe work in flight."""
        ...

    @property
    def attempt_started(self) -> datetime | None:
        """When the earliest unsettled attempt began, if any (to bound a search)."""
        ...

    def get(self, key: str) -> str | None: ...

    def record(self, key: str, value: str) -> None:
        """Save one checkpoint (an empty value forgets it) before going on."""
        ...

    def hold(self, duration: timedelta) -> None:
        """Keep the claim for at least ``duration`` more (before a long upload or wait)."""
        ...

    def check(self) -> None:
        """Raise :class:`ClaimLost` unless there is lease enough left for another call."""
        ...


@runtime_checkable
class StagedPublisher(Protocol):
    """An adapter whose platform publishes in stages with handles of its own (containers,
    publish ids): it drives the whole delivery itself, checkpointing through ``progress``,
    instead of Kairos posting text parts one by one."""

    def publish(
        self, access_token: str, request: PublishRequest, progress: PublishProgress
    ) -> RemotePost: ...


# ---- metrics --------------------------------------------------------------------------


@dataclass(frozen=True)
class PostMetrics:
    """Engagement counters of one published post as the platform reports them now; None
    where the platform does not report that figure."""

    remote_id: str
    likes: int | None = None
    comments: int | None = None
    shares: int | None = None
    views: int | None = None
    reach: int | None = None
    saves: int | None = None


@runtime_checkable
class MetricsSource(Protocol):
    def post_metrics(
        self, access_token: str, *, account_id: str, remote_ids: Sequence[str]
    ) -> list[PostMetrics]:
        """Metrics of the account's own posts; ids the platform no longer has are left out.
        Batches as the platform allows (X 100 ids, TikTok 20, Instagram one by one)."""
        ...


@runtime_checkable
class AccountChooser(Protocol):
    """A platform where one authorization reaches several publishable accounts (Facebook
    Login: every Page's linked Instagram professional account). After the code exchange the
    user chooses one of ``connectable_accounts``; ``fetch_profile`` then only checks the
    token still works (the daily health check)."""

    def connectable_accounts(self, access_token: str) -> list[AccountProfile]:
        """The accounts this grant can publish to. Raises :class:`PersonalAccountRefused`
        when there is none (no Page has a linked professional account)."""
        ...
