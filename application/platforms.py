"""The port every platform adapter implements, and its typed error taxonomy.

Adapters live in ``interfaces/platforms``; the application only sees these types, so the
same code drives the real platform or a ``sandbox/`` simulator, chosen by base URL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


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


@dataclass(frozen=True)
class RemotePost:
    remote_id: str
    url: str


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
