"""Deterministic identities. Same inputs, same id: re-running a command cannot fork history."""

from __future__ import annotations

from uuid import UUID, uuid5

KAIROS_NAMESPACE = UUID("8f3a5c7e-2b1d-5e4f-9a6b-0c1d2e3f4a5b")


def integration_id(organization_id: UUID, provider: str, external_account_id: str) -> UUID:
    """One integration per (organization, provider, external account): reconnecting reuses it."""
    return uuid5(
        KAIROS_NAMESPACE, f"integration/{organization_id}/{provider}/{external_account_id}"
    )


def idempotent_post_id(organization_id: UUID, idempotency_key: str) -> UUID:
    """A post created under an ``Idempotency-Key`` gets an id derived from it, so a retried
    request collides with the first on the event store's unique key instead of duplicating."""
    return uuid5(KAIROS_NAMESPACE, f"post/{organization_id}/idempotency/{idempotency_key}")
