"""PostgreSQL implementation of ``CollectionStore``; every change audits in its transaction."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.persistence import IntegrityError
from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor, errors
from psycopg.rows import DictRow

from application.collections import Collection, CollectionNameTaken
from application.identity import AuditEntry
from interfaces.postgres.audit import write_audit

_SELECT = (
    "SELECT c.id, c.organization_id, c.name, c.created_at, c.updated_at, "
    "COALESCE(array_agg(m.integration_id ORDER BY m.added_order) "
    "FILTER (WHERE m.integration_id IS NOT NULL), '{}') AS account_ids "
    "FROM collections c LEFT JOIN collection_members m ON m.collection_id = c.id "
)


class PostgresCollections:
    def __init__(self, datastore: PostgresDatastore) -> None:
        self._datastore = datastore

    def collections(self, organization_id: UUID) -> list[Collection]:
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                _SELECT + "WHERE c.organization_id = %s GROUP BY c.id ORDER BY lower(c.name), c.id",
                (organization_id,),
            )
            return [Collection(**row) for row in curs.fetchall()]

    def collection(self, organization_id: UUID, collection_id: UUID) -> Collection | None:
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                _SELECT + "WHERE c.organization_id = %s AND c.id = %s GROUP BY c.id",
                (organization_id, collection_id),
            )
            row = curs.fetchone()
        return Collection(**row) if row else None

    def add(self, collection: Collection, audit: AuditEntry) -> None:
        try:
            with self._datastore.transaction(commit=True) as curs:
                curs.execute(
                    "INSERT INTO collections (id, organization_id, name, created_at, updated_at) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (
                        collection.id,
                        collection.organization_id,
                        collection.name,
                        collection.created_at,
                        collection.updated_at,
                    ),
                )
                _insert_members(curs, collection.id, collection.account_ids, collection.created_at)
                write_audit(curs, audit)
        except IntegrityError as exc:
            if _is_name_clash(exc):
                raise CollectionNameTaken(collection.name) from None
            raise

    def rename(
        self,
        organization_id: UUID,
        collection_id: UUID,
        name: str,
        at: datetime,
        audit: AuditEntry,
    ) -> bool:
        try:
            with self._datastore.transaction(commit=True) as curs:
                curs.execute(
                    "UPDATE collections SET name = %s, updated_at = %s "
                    "WHERE id = %s AND organization_id = %s",
                    (name, at, collection_id, organization_id),
                )
                if curs.rowcount != 1:
                    return False
                write_audit(curs, audit)
                return True
        except IntegrityError as exc:
            if _is_name_clash(exc):
                raise CollectionNameTaken(name) from None
            raise

    def remove(self, organization_id: UUID, collection_id: UUID, audit: AuditEntry) -> bool:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(
                "DELETE FROM collections WHERE id = %s AND organization_id = %s",
                (collection_id, organization_id),
            )
            if curs.rowcount != 1:
                return False
            write_audit(curs, audit)
            return True

    def add_members(
        self,
        organization_id: UUID,
        collection_id: UUID,
        integration_ids: list[UUID],
        at: datetime,
        audit: AuditEntry,
    ) -> bool:
        with self._datastore.transaction(commit=True) as curs:
            if not _touch(curs, organization_id, collection_id, at):
                return False
            _insert_members(curs, collection_id, integration_ids, at)
            write_audit(curs, audit)
            return True

    def remove_member(
        self,
        organization_id: UUID,
        collection_id: UUID,
        integration_id: UUID,
        at: datetime,
        audit: AuditEntry,
    ) -> bool:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(
                "DELETE FROM collection_members WHERE collection_id = %s AND integration_id = %s "
                "AND EXISTS (SELECT 1 FROM collections WHERE id = %s AND organization_id = %s)",
                (collection_id, integration_id, collection_id, organization_id),
            )
            if curs.rowcount != 1:
                return False
            _touch(curs, organization_id, collection_id, at)
            write_audit(curs, audit)
            return True


def _touch(curs: Cursor[DictRow], organization_id: UUID, collection_id: UUID, at: datetime) -> bool:
    """Lock the collection row (members change one writer at a time) and stamp it."""
    curs.execute(
        "UPDATE collections SET updated_at = %s WHERE id = %s AND organization_id = %s",
        (at, collection_id, organization_id),
    )
    return curs.rowcount == 1


def _insert_members(
    curs: Cursor[DictRow], collection_id: UUID, integration_ids: list[UUID], at: datetime
) -> None:
    for integration_id in integration_ids:
        curs.execute(
            "INSERT INTO collection_members (collection_id, integration_id, added_at) "
            "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (collection_id, integration_id, at),
        )


def _is_name_clash(exc: IntegrityError) -> bool:
    """The datastore wraps psycopg's errors; the only unique index a write can hit is the
    per-organization name."""
    return isinstance(exc.__cause__, errors.UniqueViolation)
