"""Request and response bodies, in the seeds' camelCase, with strict parsing of inputs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, field_validator
from pydantic.alias_generators import to_camel

from application.views import DeliveryResult, PostDetails

PostStatusName = Literal["draft", "scheduled", "publishing", "published", "failed", "partial"]


class Camel(BaseModel):
    """Outputs: camelCase on the wire; built from application DTOs by attribute."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class StrictInput(BaseModel):
    """Inputs refuse unknown fields, so a typo like ``scheduled_at`` is an error, not ignored."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False)


def parse_timestamp(value: object, field: str = "scheduledAt") -> datetime:
    """Strict ISO 8601: a string with a date and a time. Naive times are taken as UTC."""
    if not isinstance(value, str):
        raise ValueError(f"{field} must be an ISO 8601 timestamp string, e.g. 2026-07-01T15:00:00Z")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{field} is not a valid ISO 8601 timestamp (e.g. 2026-07-01T15:00:00.000Z)"
        ) from None
    if "T" not in value.upper() and " " not in value:
        raise ValueError(f"{field} must include a time, e.g. 2026-07-01T15:00:00Z")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold U+0000; refusing it here keeps it out of the event store,
    # where it would be permanent and break every read model that copies the text.
    if "\x00" in value:
        raise ValueError("must not contain NUL (U+0000) characters")
    return value


CleanStr = Annotated[StrictStr, AfterValidator(_no_nul)]
Text = Annotated[CleanStr, Field(max_length=10_000)]
MediaUrl = Annotated[CleanStr, Field(max_length=2048)]
PlatformName = Annotated[CleanStr, Field(max_length=40)]


COLLECTION_IDS = "Collections whose connected, active accounts the post targets."


class PostCreate(StrictInput):
    content: Text = Field(description="The post text (the first part of a thread on X).")
    account_ids: list[UUID] | None = Field(default=None, max_length=100)
    platforms: list[PlatformName] | None = Field(default=None, max_length=20)
    collection_ids: list[UUID] | None = Field(
        default=None, max_length=100, description=COLLECTION_IDS
    )
    media_urls: list[MediaUrl] = Field(default_factory=list, max_length=20)
    thread: list[Text] = Field(default_factory=list, max_length=100)
    scheduled_at: str | None = Field(
        default=None, description="ISO 8601, in the future; omit to save a draft."
    )

    @field_validator("scheduled_at", mode="before")
    @classmethod
    def _strict_timestamp(cls, value: object) -> object:
        if value is not None:
            parse_timestamp(value)
        return value

    def scheduled_datetime(self) -> datetime | None:
        return parse_timestamp(self.scheduled_at) if self.scheduled_at is not None else None


class PostUpdate(StrictInput):
    """Edit a draft or scheduled post; send ``scheduledAt: null`` to move it back to drafts."""

    content: Text | None = None
    account_ids: list[UUID] | None = Field(default=None, max_length=100)
    platforms: list[PlatformName] | None = Field(default=None, max_length=20)
    collection_ids: list[UUID] | None = Field(
        default=None, max_length=100, description=COLLECTION_IDS
    )
    media_urls: list[MediaUrl] | None = Field(default=None, max_length=20)
    thread: list[Text] | None = Field(default=None, max_length=100)
    scheduled_at: str | None = None

    @field_validator("scheduled_at", mode="before")
    @classmethod
    def _strict_timestamp(cls, value: object) -> object:
        if value is not None:
            parse_timestamp(value)
        return value


class DeliveryError(Camel):
    category: str | None
    message: str | None


class DeliveryOut(Camel):
    account_id: str
    provider: str
    status: str
    attempts: int
    remote_id: str | None
    url: str | None
    published_at: datetime | None
    error: DeliveryError | None

    @classmethod
    def of(cls, result: DeliveryResult) -> DeliveryOut:
        error = None
        if result.error_category or result.error_message:
            error = DeliveryError(category=result.error_category, message=result.error_message)
        return cls(
            account_id=result.account_id,
            provider=result.provider,
            status=result.status,
            attempts=result.attempts,
            remote_id=result.remote_id,
            url=result.url,
            published_at=result.published_at,
            error=error,
        )


class PostOut(Camel):
    id: UUID
    content: str
    thread: list[str]
    media_urls: list[str]
    account_ids: list[str]
    platforms: list[str]
    status: PostStatusName
    scheduled_at: datetime | None
    published_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int
    results: list[DeliveryOut]

    @classmethod
    def of(cls, post: PostDetails) -> PostOut:
        return cls(
            id=post.id,
            content=post.content,
            thread=post.thread,
            media_urls=post.media_urls,
            account_ids=post.account_ids,
            platforms=post.platforms,
            status=post.status,
            scheduled_at=post.scheduled_at,
            published_at=post.published_at,
            created_at=post.created_at,
            updated_at=post.updated_at,
            version=post.version,
            results=[DeliveryOut.of(r) for r in post.results],
        )


class Envelope(Camel):
    success: Literal[True] = True


class PostEnvelope(Envelope):
    post: PostOut


class PostListEnvelope(Envelope):
    posts: list[PostOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next (older) page.")


class HistoryEvent(Camel):
    type: str
    version: int
    timestamp: datetime
    data: dict[str, Any]


class HistoryEnvelope(Envelope):
    post_id: UUID
    events: list[HistoryEvent]


class DeletedEnvelope(Envelope):
    id: UUID
    deleted: Literal[True] = True


class ErrorBody(BaseModel):
    success: Literal[False] = False
    message: str
    field: str | None = None


class IntegrationOut(Camel):
    id: UUID
    provider: str
    account_name: str
    display_name: str
    avatar_url: str | None
    status: Literal["connected", "expired", "error", "disconnected"]
    active: bool
    capabilities: list[str]
    token_expires_at: datetime | None
    last_error: str | None
    connected_at: datetime
    updated_at: datetime


class IntegrationListEnvelope(Envelope):
    integrations: list[IntegrationOut]


class IntegrationEnvelope(Envelope):
    integration: IntegrationOut


class AuthUrlEnvelope(Envelope):
    url: str
    provider: str


class IntegrationUpdate(StrictInput):
    active: Annotated[bool, Field(strict=True)] = Field(
        description="false leaves the account out of new posts aimed at its platform or its "
        "collections; posts already scheduled to it still publish."
    )


class AccountCandidateOut(Camel):
    id: str = Field(description="The account's id on the platform: send it as accountId.")
    username: str
    display_name: str
    avatar_url: str | None
    detail: str | None = Field(description="What tells the accounts apart, e.g. the Page.")


class AccountChoiceEnvelope(Envelope):
    provider: str
    accounts: list[AccountCandidateOut]
    expires_at: datetime


class AccountChoiceInput(StrictInput):
    account_id: Annotated[CleanStr, Field(min_length=1, max_length=200)] = Field(
        description="The id of one of the accounts the choice offers."
    )


class ScheduledPostOut(Camel):
    id: UUID
    scheduled_at: datetime | None
    status: PostStatusName


class IntegrationInUseBody(ErrorBody):
    """409 for a disconnect refused because posts are scheduled to the account."""

    model_config = ConfigDict(populate_by_name=True)

    scheduled_posts: list[ScheduledPostOut] = Field(alias="scheduledPosts")


class DisconnectedEnvelope(Envelope):
    id: UUID
    deleted: Literal[True] = True
    integration: IntegrationOut
    scheduled_posts: list[ScheduledPostOut] = Field(
        description="Posts still scheduled to the account (a forced disconnect): their "
        "delivery to it will fail, saying it is disconnected."
    )


class IntegrationHistoryEnvelope(Envelope):
    integration_id: UUID
    events: list[HistoryEvent]


CollectionName = Annotated[CleanStr, Field(min_length=1, max_length=100)]


class CollectionOut(Camel):
    id: UUID
    name: str
    account_ids: list[UUID]
    created_at: datetime
    updated_at: datetime


class CollectionEnvelope(Envelope):
    collection: CollectionOut


class CollectionListEnvelope(Envelope):
    collections: list[CollectionOut]


class CollectionCreate(StrictInput):
    name: CollectionName = Field(description="Unique in the organization, ignoring case.")
    account_ids: list[UUID] = Field(default_factory=list, max_length=100)


class CollectionRename(StrictInput):
    name: CollectionName


class CollectionAccountsInput(StrictInput):
    account_ids: list[UUID] = Field(min_length=1, max_length=100)


class LoginInput(StrictInput):
    email: Annotated[CleanStr, Field(max_length=254)]
    password: Annotated[CleanStr, Field(max_length=1024)]


class OrganizationOut(Camel):
    id: UUID
    name: str
    plan: str
    role: str


class SessionEnvelope(Envelope):
    user_id: UUID
    email: str
    organization_id: UUID
    organizations: list[OrganizationOut]
    csrf_token: str | None = None


class SwitchOrganizationInput(StrictInput):
    organization_id: UUID


class OrganizationCreateInput(StrictInput):
    name: Annotated[CleanStr, Field(min_length=1, max_length=200)]


class OrganizationSettingsInput(StrictInput):
    publish_late: Annotated[bool | None, Field(strict=True)] = Field(
        default=None,
        description="Publish posts that could not start on time, rather than mark them missed.",
    )
    delay_on_quota: Annotated[bool | None, Field(strict=True)] = Field(
        default=None,
        description="A post over a platform's publishing quota (Instagram's 24-hour limit) "
        "waits until the quota has room, rather than failing at once.",
    )


class OrganizationSettingsEnvelope(Envelope):
    publish_late: bool
    delay_on_quota: bool


class OrganizationEnvelope(Envelope):
    organization: OrganizationOut


class TokenCreateInput(StrictInput):
    name: Annotated[CleanStr, Field(min_length=1, max_length=100)] = "API token"
    expires_in_days: Annotated[int, Field(ge=1, le=365, strict=True)] | None = None


class TokenOut(Camel):
    id: UUID
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreatedEnvelope(Envelope):
    token: str = Field(description="Shown exactly once. Only a hash is stored.")
    api_token: TokenOut


class TokenListEnvelope(Envelope):
    tokens: list[TokenOut]


class HealthOut(BaseModel):
    status: str
    checks: dict[str, Any] = Field(default_factory=dict)


class PresignInput(StrictInput):
    filename: Annotated[CleanStr, Field(min_length=1, max_length=255)]
    content_type: Annotated[CleanStr, Field(min_length=1, max_length=100)] = Field(
        description="image/jpeg, image/png, image/webp, image/gif, video/mp4 or video/quicktime"
    )
    size: Annotated[int, Field(strict=True, ge=1, le=(1 << 40))] = Field(
        description="exact size of the file in bytes; the upload URL accepts only this size"
    )


class PresignEnvelope(Envelope):
    key: str
    upload_url: str = Field(description="PUT the file here with the same Content-Type")
    public_url: str = Field(description="reference this URL in a post's mediaUrls")
    expires_in: int = Field(description="seconds the upload URL stays valid")
    headers: dict[str, str] = Field(description="headers the PUT must carry")
