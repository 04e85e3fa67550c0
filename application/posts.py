"""Use cases over posts: write, schedule, edit, delete, and read back history for auditors.

Organization scoping for aggregates happens here, in ``_load``: a post of another
organization is indistinguishable from a missing one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from application.app import KairosApplication
from application.collections import Collection
from application.errors import IdempotencyKeyReused, NotFound
from application.history import HistoryEntry, history_entries
from application.views import PostDetails, post_details
from domain.content_rules import (
    MAX_MEDIA,
    PROVIDER_LABELS,
    check_post_content,
    require_valid_content,
)
from domain.errors import IntegrationNotUsable, InvalidField
from domain.ids import idempotent_post_id
from domain.integration import Integration, IntegrationStatus
from domain.media import MediaInfo
from domain.post import Post

PLATFORM_PROVIDERS = {
    "x": ("twitter",),
    "twitter": ("twitter",),
    # Every Instagram account, whichever way it was connected; the second name picks
    # only those connected through Facebook Login.
    "instagram": ("instagram", "instagram-facebook"),
    "instagram-facebook": ("instagram-facebook",),
    "tiktok": ("tiktok",),
}
"""The ``platforms`` a post may target, and the providers each one covers."""


class MediaRecorder(Protocol):
    def record(self, organization_id: UUID, urls: list[str]) -> list[MediaInfo]:
        """Check and record the media a post references (``application/media.py``)."""
        ...


class CollectionDirectory(Protocol):
    """Finds one of an organization's collections (``application/collections.py``)."""

    def collection(self, organization_id: UUID, collection_id: UUID) -> Collection | None: ...


class AccountDirectory(Protocol):
    """Finds an organization's publishable accounts of one platform (a read-model query)."""

    def publishable_account_ids(self, organization_id: UUID, provider: str) -> list[UUID]: ...


@dataclass(frozen=True)
class PostInput:
    """A post as a client wrote it. ``account_ids``, ``platforms`` and ``collection_ids``
    choose the targets (their union)."""

    content: str
    thread: list[str] = field(default_factory=list)
    media_urls: list[str] = field(default_factory=list)
    account_ids: list[UUID] | None = None
    platforms: list[str] | None = None
    collection_ids: list[UUID] | None = None
    scheduled_at: datetime | None = None


@dataclass(frozen=True)
class PostChanges:
    """A partial edit: ``None`` leaves a field alone; ``unschedule`` returns it to drafts."""

    content: str | None = None
    thread: list[str] | None = None
    media_urls: list[str] | None = None
    account_ids: list[UUID] | None = None
    platforms: list[str] | None = None
    collection_ids: list[UUID] | None = None
    scheduled_at: datetime | None = None
    unschedule: bool = False


@dataclass(frozen=True)
class SavedPost:
    post: PostDetails
    position: int | None
    replayed: bool = False


class PostService:
    def __init__(
        self,
        app: KairosApplication,
        directory: AccountDirectory,
        clock: Callable[[], datetime],
        media: MediaRecorder | None = None,
        collections: CollectionDirectory | None = None,
    ) -> None:
        self._app = app
        self._directory = directory
        self._clock = clock
        self._media = media
        self._collections = collections

    def create(
        self,
        organization_id: UUID,
        author_id: UUID,
        given: PostInput,
        *,
        idempotency_key: str | None = None,
        fingerprint: str | None = None,
    ) -> SavedPost:
        accounts = self._resolve_targets(
            organization_id, given.account_ids, given.platforms, given.collection_ids
        )
        require_valid_content(
            content=given.content,
            thread=given.thread,
            media_urls=given.media_urls,
            providers=accounts.values(),
            media=self._record_media(
                organization_id, given.content, given.thread, given.media_urls, accounts.values()
            ),
        )
        post_id = idempotent_post_id(organization_id, idempotency_key) if idempotency_key else None
        post = Post.draft(
            organization_id=organization_id,
            author_id=author_id,
            content=given.content,
            thread=given.thread,
            media_urls=given.media_urls,
            accounts=accounts,
            post_id=post_id,
            request_fingerprint=fingerprint,
        )
        if given.scheduled_at is not None:
            post.schedule(given.scheduled_at, now=self._clock())
        try:
            position = self._app.save_all(post)
        except IntegrityError:
            if post_id is None:
                raise
            return self._replay(organization_id, post_id, fingerprint)
        return SavedPost(post_details(post), position)

    def update(self, organization_id: UUID, post_id: UUID, changes: PostChanges) -> SavedPost:
        post = self._load(organization_id, post_id)
        targets_changed = (
            changes.account_ids is not None
            or changes.platforms is not None
            or changes.collection_ids is not None
        )
        accounts = (
            self._resolve_targets(
                organization_id, changes.account_ids, changes.platforms, changes.collection_ids
            )
            if targets_changed
            else post.accounts
        )
        content = post.content if changes.content is None else changes.content
        thread = post.thread if changes.thread is None else changes.thread
        media_urls = post.media_urls if changes.media_urls is None else changes.media_urls
        require_valid_content(
            content=content,
            thread=thread,
            media_urls=media_urls,
            providers=accounts.values(),
            media=self._record_media(
                organization_id, content, thread, media_urls, accounts.values()
            ),
        )
        post.edit(content=content, thread=thread, media_urls=media_urls, accounts=accounts)
        if changes.unschedule:
            post.unschedule()
        elif changes.scheduled_at is not None:
            post.schedule(changes.scheduled_at, now=self._clock())
        position = self._app.save_all(post)
        return SavedPost(post_details(post), position)

    def _record_media(
        self,
        organization_id: UUID,
        content: str,
        thread: list[str],
        urls: list[str],
        providers: Iterable[str],
    ) -> list[MediaInfo] | None:
        """What the media URLs hold, checked on first reference; None without a media
        service (unit tests), where the rules fall back to judging URLs by extension.

        Every rule that does not need the files is checked first, so nothing is fetched,
        probed or copied for a post that would be refused anyway."""
        if self._media is None:
            return None
        cheap = check_post_content(
            content=content, thread=thread, media_urls=urls, providers=providers
        )
        for violation in cheap:
            if not violation.field.startswith("mediaUrls"):  # judged on the files, below
                raise InvalidField(violation.field, violation.message)
        if len(urls) > MAX_MEDIA:
            raise InvalidField("mediaUrls", f"at most {MAX_MEDIA} media items per post")
        return self._media.record(organization_id, urls)

    def republish(self, organization_id: UUID, post_id: UUID) -> SavedPost:
        """Publish a failed or partial post again, to its failed accounts only."""
        post = self._load(organization_id, post_id)
        post.republish()
        position = self._app.save_all(post)
        return SavedPost(post_details(post), position)

    def delete(self, organization_id: UUID, post_id: UUID) -> int | None:
        post = self._load(organization_id, post_id)
        post.delete()
        return self._app.save_all(post)

    def get(
        self, organization_id: UUID, post_id: UUID, as_of: datetime | None = None
    ) -> PostDetails:
        if as_of is None:
            return post_details(self._load(organization_id, post_id))
        self._load(organization_id, post_id, include_deleted=True)
        version = None
        for event in self._app.history(post_id):
            if event.timestamp > as_of:
                break
            version = event.originator_version
        if version is None:
            raise NotFound(f"post {post_id} did not exist at {as_of.isoformat()}")
        post = self._app.get_post(post_id, version=version)
        if post is None or post.deleted:
            raise NotFound(f"post {post_id} was deleted at {as_of.isoformat()}")
        return post_details(post)

    def history(self, organization_id: UUID, post_id: UUID) -> list[HistoryEntry]:
        """Every event of the post in order, as auditors read it; deleted posts included."""
        self._load(organization_id, post_id, include_deleted=True)
        return history_entries(self._app.history(post_id))

    # ---- internals ----------------------------------------------------------------------

    def _load(self, organization_id: UUID, post_id: UUID, *, include_deleted: bool = False) -> Post:
        post = self._app.get_post(post_id)
        if post is None or post.organization_id != organization_id:
            raise NotFound(f"post {post_id} not found")
        if post.deleted and not include_deleted:
            raise NotFound(f"post {post_id} not found")
        return post

    def _replay(self, organization_id: UUID, post_id: UUID, fingerprint: str | None) -> SavedPost:
        existing = self._app.get_post(post_id)
        if existing is None or existing.organization_id != organization_id:
            raise IdempotencyKeyReused("this Idempotency-Key is already in use")
        if existing.request_fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request body"
            )
        if existing.deleted:
            raise IdempotencyKeyReused("the post created with this Idempotency-Key was deleted")
        return SavedPost(post_details(existing), None, replayed=True)

    def _resolve_targets(
        self,
        organization_id: UUID,
        account_ids: list[UUID] | None,
        platforms: list[str] | None,
        collection_ids: list[UUID] | None,
    ) -> dict[str, str]:
        """Map every targeted integration id to its provider.

        Accounts named explicitly must be usable (an expired, disconnected or inactive one
        is refused, naming it); platforms and collections contribute their connected,
        active accounts and must contribute at least one."""
        accounts: dict[str, str] = {}
        for index, account_id in enumerate(account_ids or []):
            integration = self._app.get_integration(account_id)
            if integration is None or integration.organization_id != organization_id:
                raise InvalidField(f"accountIds[{index}]", f"unknown account id {account_id}")
            _require_publishable(integration, f"accountIds[{index}]")
            accounts[str(integration.id)] = integration.provider
        for index, name in enumerate(platforms or []):
            accounts.update(self._platform_accounts(organization_id, name, f"platforms[{index}]"))
        for index, collection_id in enumerate(collection_ids or []):
            accounts.update(
                self._collection_accounts(organization_id, collection_id, f"collectionIds[{index}]")
            )
        if not accounts:
            raise InvalidField(
                "accountIds",
                "select at least one account (accountIds, platforms or collectionIds)",
            )
        return accounts

    def _platform_accounts(
        self, organization_id: UUID, name: str, field_name: str
    ) -> dict[str, str]:
        providers = PLATFORM_PROVIDERS.get(name.lower())
        if providers is None:
            known = ", ".join(sorted(PLATFORM_PROVIDERS))
            raise InvalidField(field_name, f"unknown platform '{name}' ({known})")
        found: dict[str, str] = {}
        for provider in providers:
            found.update(
                self._targetable(
                    organization_id,
                    self._directory.publishable_account_ids(organization_id, provider),
                )
            )
        if not found:
            provider = providers[0]
            label = PROVIDER_LABELS.get(provider, provider)
            raise InvalidField(
                field_name,
                f"no connected, active {label} account in this organization; connect one "
                f"first (GET /api/integrations/{provider}/auth)",
            )
        return found

    def _collection_accounts(
        self, organization_id: UUID, collection_id: UUID, field_name: str
    ) -> dict[str, str]:
        collection = (
            self._collections.collection(organization_id, collection_id)
            if self._collections is not None
            else None
        )
        if collection is None:
            raise InvalidField(field_name, f"unknown collection id {collection_id}")
        found = self._targetable(organization_id, collection.account_ids)
        if not found:
            raise InvalidField(
                field_name,
                f"the collection '{collection.name}' has no connected, active account; "
                "reconnect or activate one of its accounts, or add one",
            )
        return found

    def _targetable(self, organization_id: UUID, account_ids: list[UUID]) -> dict[str, str]:
        """The accounts a group target reaches: connected (or with a passing error) and
        active. The event store decides, not the read model that may lag behind it."""
        found: dict[str, str] = {}
        for account_id in account_ids:
            integration = self._app.get_integration(account_id)
            if (
                integration is not None
                and integration.organization_id == organization_id
                and integration.can_publish
                and integration.active
            ):
                found[str(integration.id)] = integration.provider
        return found


def _require_publishable(integration: Integration, field_name: str) -> None:
    label = PROVIDER_LABELS.get(integration.provider, integration.provider)
    name = f"{label} account @{integration.account_name}"
    if integration.status is IntegrationStatus.DISCONNECTED:
        raise IntegrationNotUsable(field_name, f"the {name} is disconnected; connect it again")
    if not integration.can_publish:  # connected, or in error (which publishing still tries)
        raise IntegrationNotUsable(
            field_name,
            f"the {name} is {integration.status}; reconnect it "
            f"(GET /api/integrations/{integration.provider}/auth) before scheduling posts to it",
        )
    if not integration.active:
        raise IntegrationNotUsable(
            field_name,
            f"the {name} is inactive; activate it (PATCH /api/integrations/{integration.id} "
            'with {"active": true}) before targeting it',
        )
