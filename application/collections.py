"""Collections: named groups of an organization's accounts, usable as a post target.

A collection is configuration, not a lifecycle: it is stored relationally with every change
in the audit trail (the store writes both in one transaction). Members are integration
ids; a disconnected or inactive member stays in the collection and is simply skipped when
a post targets it, so reconnecting or reactivating the account puts it back to work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID, uuid4

from application.app import KairosApplication
from application.errors import Conflict, NotFound
from application.identity import AuditEntry, Principal
from domain.errors import InvalidField
from domain.integration import IntegrationStatus

MAX_NAME_LENGTH = 100


@dataclass(frozen=True)
class Collection:
    id: UUID
    organization_id: UUID
    name: str
    account_ids: list[UUID]
    """Members in the order they were added."""
    created_at: datetime
    updated_at: datetime


class CollectionNameTaken(Conflict):
    """Another collection of the organization already has this name (any letter case)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a collection named '{name}' already exists in this organization")


class CollectionStore(Protocol):
    """Every query is scoped to one organization; every change writes its audit entry in
    the same transaction. Name clashes raise ``CollectionNameTaken``."""

    def collections(self, organization_id: UUID) -> list[Collection]: ...

    def collection(self, organization_id: UUID, collection_id: UUID) -> Collection | None: ...

    def add(self, collection: Collection, audit: AuditEntry) -> None: ...

    def rename(
        self,
        organization_id: UUID,
        collection_id: UUID,
        name: str,
        at: datetime,
        audit: AuditEntry,
    ) -> bool: ...

    def remove(self, organization_id: UUID, collection_id: UUID, audit: AuditEntry) -> bool: ...

    def add_members(
        self,
        organization_id: UUID,
        collection_id: UUID,
        integration_ids: list[UUID],
        at: datetime,
        audit: AuditEntry,
    ) -> bool: ...

    def remove_member(
        self,
        organization_id: UUID,
        collection_id: UUID,
        integration_id: UUID,
        at: datetime,
        audit: AuditEntry,
    ) -> bool:
        """False when the collection does not exist or the account is not a member."""
        ...


class CollectionService:
    def __init__(
        self, app: KairosApplication, store: CollectionStore, clock: Callable[[], datetime]
    ) -> None:
        self._app = app
        self._store = store
        self._clock = clock

    def list_collections(self, principal: Principal) -> list[Collection]:
        return self._store.collections(principal.organization_id)

    def get(self, principal: Principal, collection_id: UUID) -> Collection:
        collection = self._store.collection(principal.organization_id, collection_id)
        if collection is None:
            raise NotFound(f"collection {collection_id} not found")
        return collection

    def create(
        self, principal: Principal, name: str, account_ids: list[UUID] | None = None
    ) -> Collection:
        name = _valid_name(name)
        members = self._members(principal.organization_id, account_ids or [])
        now = self._clock()
        collection = Collection(
            id=uuid4(),
            organization_id=principal.organization_id,
            name=name,
            account_ids=members,
            created_at=now,
            updated_at=now,
        )
        self._store.add(
            collection,
            self._audit(
                principal,
                "collection.created",
                collection.id,
                {"name": name, "accountIds": [str(m) for m in members]},
            ),
        )
        return collection

    def rename(self, principal: Principal, collection_id: UUID, name: str) -> Collection:
        name = _valid_name(name)
        before = self.get(principal, collection_id)
        if before.name != name:
            audit = self._audit(
                principal,
                "collection.renamed",
                collection_id,
                {"name": name, "previous": before.name},
            )
            if not self._store.rename(
                principal.organization_id, collection_id, name, self._clock(), audit
            ):
                raise NotFound(f"collection {collection_id} not found")
        return self.get(principal, collection_id)

    def delete(self, principal: Principal, collection_id: UUID) -> None:
        """Only the grouping goes: the accounts and the posts sent through it stay."""
        before = self.get(principal, collection_id)
        audit = self._audit(
            principal,
            "collection.deleted",
            collection_id,
            {"name": before.name, "accountIds": [str(m) for m in before.account_ids]},
        )
        if not self._store.remove(principal.organization_id, collection_id, audit):
            raise NotFound(f"collection {collection_id} not found")

    def add_accounts(
        self, principal: Principal, collection_id: UUID, account_ids: list[UUID]
    ) -> Collection:
        self.get(principal, collection_id)
        members = self._members(principal.organization_id, account_ids)
        if not members:
            raise InvalidField("accountIds", "name at least one account to add")
        audit = self._audit(
            principal,
            "collection.accounts_added",
            collection_id,
            {"accountIds": [str(m) for m in members]},
        )
        if not self._store.add_members(
            principal.organization_id, collection_id, members, self._clock(), audit
        ):
            raise NotFound(f"collection {collection_id} not found")
        return self.get(principal, collection_id)

    def remove_account(
        self, principal: Principal, collection_id: UUID, integration_id: UUID
    ) -> Collection:
        self.get(principal, collection_id)
        audit = self._audit(
            principal,
            "collection.account_removed",
            collection_id,
            {"accountId": str(integration_id)},
        )
        if not self._store.remove_member(
            principal.organization_id, collection_id, integration_id, self._clock(), audit
        ):
            raise NotFound(f"account {integration_id} is not in collection {collection_id}")
        return self.get(principal, collection_id)

    # ---- internals ----------------------------------------------------------------------

    def _members(self, organization_id: UUID, account_ids: list[UUID]) -> list[UUID]:
        """The accounts, once each, refusing any not connected to this organization."""
        members: list[UUID] = []
        for index, account_id in enumerate(account_ids):
            integration = self._app.get_integration(account_id)
            field = f"accountIds[{index}]"
            if integration is None or integration.organization_id != organization_id:
                raise InvalidField(field, f"unknown account id {account_id}")
            if integration.status is IntegrationStatus.DISCONNECTED:
                raise InvalidField(
                    field,
                    f"the account @{integration.account_name} is disconnected; connect it "
                    "again before adding it to a collection",
                )
            if account_id not in members:
                members.append(account_id)
        return members

    @staticmethod
    def _audit(
        principal: Principal, action: str, collection_id: UUID, details: dict[str, Any]
    ) -> AuditEntry:
        return AuditEntry(
            action, principal.user_id, principal.organization_id, str(collection_id), details
        )


def _valid_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise InvalidField("name", "name must not be empty")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidField("name", f"name must be at most {MAX_NAME_LENGTH} characters")
    if "\x00" in cleaned:
        raise InvalidField("name", "name must not contain NUL (U+0000) characters")
    return cleaned
