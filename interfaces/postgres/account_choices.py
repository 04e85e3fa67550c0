"""Pending account choices, stored by the hash of their secret, redeemable once.

The candidates are kept as jsonb: what the platform said about each account when the user
authorized, shown again when they choose. Tokens are never here, only the credential id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from application.connections import PendingChoice
from application.platforms import AccountProfile

COLUMNS = "organization_id, user_id, provider, credential_id, candidates, expires_at"


class PostgresAccountChoices:
    def __init__(self, datastore: PostgresDatastore) -> None:
        self._datastore = datastore

    def put(self, choice_hash: bytes, pending: PendingChoice, *, now: datetime) -> list[UUID]:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(
                "DELETE FROM account_choices WHERE expires_at <= %s RETURNING credential_id",
                (now,),
            )
            abandoned = [row["credential_id"] for row in curs.fetchall()]
            curs.execute(
                f"INSERT INTO account_choices (choice_hash, {COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    choice_hash,
                    pending.organization_id,
                    pending.user_id,
                    pending.provider,
                    pending.credential_id,
                    Jsonb([_profile_json(profile) for profile in pending.candidates]),
                    pending.expires_at,
                ),
            )
        return abandoned

    def get(self, choice_hash: bytes) -> PendingChoice | None:
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                f"SELECT {COLUMNS} FROM account_choices WHERE choice_hash = %s", (choice_hash,)
            )
            row = curs.fetchone()
        return _pending(row) if row else None

    def take(self, choice_hash: bytes) -> PendingChoice | None:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(
                f"DELETE FROM account_choices WHERE choice_hash = %s RETURNING {COLUMNS}",
                (choice_hash,),
            )
            row = curs.fetchone()
        return _pending(row) if row else None


def _profile_json(profile: AccountProfile) -> dict[str, str | None]:
    return {
        "external_id": profile.external_id,
        "username": profile.username,
        "display_name": profile.display_name,
        "avatar_url": profile.avatar_url,
        "detail": profile.detail,
    }


def _pending(row: DictRow) -> PendingChoice:
    candidates: list[dict[str, Any]] = row["candidates"]
    return PendingChoice(
        organization_id=row["organization_id"],
        user_id=row["user_id"],
        provider=row["provider"],
        credential_id=row["credential_id"],
        candidates=tuple(AccountProfile(**candidate) for candidate in candidates),
        expires_at=row["expires_at"],
    )
