"""``/api/collections``: named groups of the organization's accounts, usable as a post
target through ``collectionIds``."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter

from application.collections import Collection
from interfaces.api.deps import KairosDep, PrincipalDep
from interfaces.api.routes.posts import ERRORS
from interfaces.api.schemas import (
    CollectionAccountsInput,
    CollectionCreate,
    CollectionEnvelope,
    CollectionListEnvelope,
    CollectionOut,
    CollectionRename,
    DeletedEnvelope,
    ErrorBody,
)

router = APIRouter(prefix="/api/collections", tags=["collections"], responses=ERRORS)
NAME_TAKEN: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "Another collection has this name"}
}


def _envelope(collection: Collection) -> CollectionEnvelope:
    return CollectionEnvelope(collection=CollectionOut.model_validate(collection))


@router.get("", response_model=CollectionListEnvelope)
def list_collections(kairos: KairosDep, principal: PrincipalDep) -> CollectionListEnvelope:
    """By name. Each lists its members' ids, including inactive or disconnected accounts
    (which posts aimed at the collection skip)."""
    return CollectionListEnvelope(
        collections=[
            CollectionOut.model_validate(c) for c in kairos.collections.list_collections(principal)
        ]
    )


@router.post("", response_model=CollectionEnvelope, status_code=201, responses=NAME_TAKEN)
def create_collection(
    body: CollectionCreate, kairos: KairosDep, principal: PrincipalDep
) -> CollectionEnvelope:
    return _envelope(kairos.collections.create(principal, body.name, body.account_ids))


@router.get("/{collection_id}", response_model=CollectionEnvelope)
def get_collection(
    collection_id: UUID, kairos: KairosDep, principal: PrincipalDep
) -> CollectionEnvelope:
    return _envelope(kairos.collections.get(principal, collection_id))


@router.patch("/{collection_id}", response_model=CollectionEnvelope, responses=NAME_TAKEN)
def rename_collection(
    collection_id: UUID, body: CollectionRename, kairos: KairosDep, principal: PrincipalDep
) -> CollectionEnvelope:
    return _envelope(kairos.collections.rename(principal, collection_id, body.name))


@router.delete("/{collection_id}", response_model=DeletedEnvelope)
def delete_collection(
    collection_id: UUID, kairos: KairosDep, principal: PrincipalDep
) -> DeletedEnvelope:
    """Only the grouping goes: its accounts, and posts already aimed through it, stay."""
    kairos.collections.delete(principal, collection_id)
    return DeletedEnvelope(id=collection_id)


@router.post("/{collection_id}/accounts", response_model=CollectionEnvelope)
def add_accounts(
    collection_id: UUID,
    body: CollectionAccountsInput,
    kairos: KairosDep,
    principal: PrincipalDep,
) -> CollectionEnvelope:
    """Add accounts of this organization; ones already in the collection are left as they are."""
    return _envelope(kairos.collections.add_accounts(principal, collection_id, body.account_ids))


@router.delete("/{collection_id}/accounts/{integration_id}", response_model=CollectionEnvelope)
def remove_account(
    collection_id: UUID, integration_id: UUID, kairos: KairosDep, principal: PrincipalDep
) -> CollectionEnvelope:
    """Take an account out of the collection (404 if it is not in it)."""
    return _envelope(kairos.collections.remove_account(principal, collection_id, integration_id))
