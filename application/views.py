"""Plain DTOs the application hands to the edges. No HTTP or SQL types in or out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from domain.integration import Integration
from domain.post import Post


@dataclass(frozen=True)
class DeliveryResult:
    account_id: str
    provider: str
    status: str
    attempts: int
    remote_id: str | None
    url: str | None
    published_at: datetime | None
    error_category: str | None
    error_message: str | None


@dataclass(frozen=True)
class PostDetails:
    id: UUID
    organization_id: UUID
    content: str
    thread: list[str]
    media_urls: list[str]
    account_ids: list[str]
    platforms: list[str]
    status: str
    scheduled_at: datetime | None
    published_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int
    results: list[DeliveryResult]


def post_details(post: Post) -> PostDetails:
    results = []
    for account_id, provider in post.accounts.items():
        delivery = post.deliveries.get(account_id)
        results.append(
            DeliveryResult(
                account_id=account_id,
                provider=provider,
                status=str(delivery.status) if delivery else "pending",
                attempts=delivery.attempts if delivery else 0,
                remote_id=delivery.remote_id if delivery else None,
                url=delivery.url if delivery else None,
                published_at=delivery.published_at if delivery else None,
                error_category=delivery.error_category if delivery else None,
                error_message=delivery.error_message if delivery else None,
            )
        )
    return PostDetails(
        id=post.id,
        organization_id=post.organization_id,
        content=post.content,
        thread=list(post.thread),
        media_urls=list(post.media_urls),
        account_ids=list(post.accounts),
        platforms=post.providers,
        status=str(post.status),
        scheduled_at=post.scheduled_at,
        published_at=post.published_at,
        created_at=post.created_on,
        updated_at=post.modified_on,
        version=post.version,
        results=results,
    )


@dataclass(frozen=True)
class IntegrationDetails:
    id: UUID
    organization_id: UUID
    provider: str
    external_account_id: str
    account_name: str
    display_name: str
    avatar_url: str | None
    status: str
    active: bool
    capabilities: list[str]
    token_expires_at: datetime | None
    last_error: str | None
    connected_at: datetime
    updated_at: datetime
    version: int


def integration_details(integration: Integration) -> IntegrationDetails:
    return IntegrationDetails(
        id=integration.id,
        organization_id=integration.organization_id,
        provider=integration.provider,
        external_account_id=integration.external_account_id,
        account_name=integration.account_name,
        display_name=integration.display_name,
        avatar_url=integration.avatar_url,
        status=str(integration.status),
        active=integration.active,
        capabilities=list(integration.capabilities),
        token_expires_at=integration.token_expires_at,
        last_error=integration.last_error,
        connected_at=integration.created_on,
        updated_at=integration.modified_on,
        version=integration.version,
    )
