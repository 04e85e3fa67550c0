"""Pending OAuth authorizations, stored by the hash of their ``state``, redeemable once."""

from __future__ import annotations

from eventsourcing.postgres import PostgresDatastore

from application.connections import PendingAuthorization


class PostgresOAuthStateStore:
    def __init__(self, datastore: PostgresDatastore) -> None:
        self._datastore = datastore

    def put(self, state_hash: bytes, pending: PendingAuthorization) -> None:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute("DELETE FROM oauth_states WHERE expires_at < now() - interval '1 hour'")
            curs.execute(
                "INSERT INTO oauth_states (state_hash, organization_id, user_id, provider, "
                "code_verifier, redirect_uri, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    state_hash,
                    pending.organization_id,
                    pending.user_id,
                    pending.provider,
                    pending.code_verifier,
                    pending.redirect_uri,
                    pending.expires_at,
                ),
            )

    def take(self, state_hash: bytes) -> PendingAuthorization | None:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(
                "DELETE FROM oauth_states WHERE state_hash = %s RETURNING organization_id, "
                "user_id, provider, code_verifier, redirect_uri, expires_at",
                (state_hash,),
            )
            row = curs.fetchone()
        return PendingAuthorization(**row) if row else None
