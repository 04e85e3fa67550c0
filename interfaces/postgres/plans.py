"""PostgreSQL implementation of ``PlanStore``: the ``organizations.plan`` column, audited."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.postgres import PostgresDatastore

from application.identity import AuditEntry
from interfaces.postgres.audit import write_audit


class PostgresPlans:
    def __init__(self, datastore: PostgresDatastore) -> None:
        self._datastore = datastore

    def plan_of(self, organization_id: UUID) -> str | None:
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute("SELECT plan FROM organizations WHERE id = %s", (organization_id,))
            row = curs.fetchone()
        return str(row["plan"]) if row else None

    def set_plan(self, organization_id: UUID, plan: str, audit: AuditEntry) -> bool:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE organizations SET plan = %s WHERE id = %s", (plan, organization_id)
            )
            if curs.rowcount != 1:
                return False
            write_audit(curs, audit)
            return True
