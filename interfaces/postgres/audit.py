"""Rows of the append-only ``audit_log``, written inside the caller's transaction."""

from __future__ import annotations

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from application.identity import AuditEntry


def write_audit(curs: Cursor[DictRow], entry: AuditEntry) -> None:
    curs.execute(
        "INSERT INTO audit_log (action, actor_user_id, organization_id, subject, details) "
        "VALUES (%s, %s, %s, %s, %s)",
        (
            entry.action,
            entry.actor_user_id,
            entry.organization_id,
            entry.subject,
            Jsonb(entry.details),
        ),
    )
