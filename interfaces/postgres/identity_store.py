"""PostgreSQL implementation of ``IdentityStore``; every mutation audits in its transaction."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow

from application.identity import (
    ApiToken,
    AuditEntry,
    BrowserSession,
    Organization,
    OrganizationSettings,
    User,
)
from interfaces.postgres.audit import write_audit

# Column names, not a secret.
_TOKEN_COLUMNS = ", ".join(
    (
        *("id", "user_id", "organization_id", "name", "prefix"),
        *("created_at", "expires_at", "last_used_at", "revoked_at"),
    )
)


class PostgresIdentityStore:
    def __init__(self, datastore: PostgresDatastore) -> None:
        self._datastore = datastore

    # ---- users and organizations --------------------------------------------------------

    def add_user(self, user: User, organization: Organization, audit: AuditEntry) -> None:
        with self._datastore.transaction(commit=True) as curs:
            self._insert_organization(curs, organization)
            curs.execute(
                "INSERT INTO users (id, email, name, password_hash, active_organization_id) "
                "VALUES (%s, %s, %s, %s, %s)",
                (user.id, user.email, user.name, user.password_hash, user.active_organization_id),
            )
            self._insert_membership(curs, organization.id, user.id, "owner")
            write_audit(curs, audit)

    def add_organization(self, organization: Organization, owner: UUID, audit: AuditEntry) -> None:
        with self._datastore.transaction(commit=True) as curs:
            self._insert_organization(curs, organization)
            self._insert_membership(curs, organization.id, owner, "owner")
            write_audit(curs, audit)

    def user_by_email(self, email: str) -> User | None:
        return self._one_user("email = %s", email)

    def user(self, user_id: UUID) -> User | None:
        return self._one_user("id = %s", user_id)

    def memberships(self, user_id: UUID) -> list[Organization]:
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                "SELECT o.id, o.name, o.plan, m.role FROM memberships m "
                "JOIN organizations o ON o.id = m.organization_id "
                "WHERE m.user_id = %s ORDER BY m.created_at, o.id",
                (user_id,),
            )
            return [Organization(**row) for row in curs.fetchall()]

    def publishes_late(self, organization_id: UUID) -> bool:
        return self.settings(organization_id).publish_late

    def delays_on_quota(self, organization_id: UUID) -> bool:
        return self.settings(organization_id).delay_on_quota

    def settings(self, organization_id: UUID) -> OrganizationSettings:
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                "SELECT publish_late, delay_on_quota FROM organizations WHERE id = %s",
                (organization_id,),
            )
            row = curs.fetchone()
        if row is None:
            return OrganizationSettings(publish_late=False, delay_on_quota=False)
        return OrganizationSettings(**row)

    def update_settings(
        self, organization_id: UUID, settings: OrganizationSettings, audit: AuditEntry
    ) -> None:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE organizations SET publish_late = %s, delay_on_quota = %s WHERE id = %s",
                (settings.publish_late, settings.delay_on_quota, organization_id),
            )
            write_audit(curs, audit)

    def set_active_organization(self, user_id: UUID, organization_id: UUID) -> None:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE users SET active_organization_id = %s WHERE id = %s",
                (organization_id, user_id),
            )

    # ---- sessions -----------------------------------------------------------------------

    def add_session(self, key_hash: bytes, session: BrowserSession, audit: AuditEntry) -> None:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute("DELETE FROM browser_sessions WHERE expires_at < now()")
            curs.execute(
                "INSERT INTO browser_sessions (key_hash, user_id, organization_id, csrf_token, "
                "expires_at) VALUES (%s, %s, %s, %s, %s)",
                (
                    key_hash,
                    session.user_id,
                    session.organization_id,
                    session.csrf_token,
                    session.expires_at,
                ),
            )
            write_audit(curs, audit)

    def session(self, key_hash: bytes) -> BrowserSession | None:
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                "SELECT user_id, organization_id, csrf_token, expires_at FROM browser_sessions "
                "WHERE key_hash = %s",
                (key_hash,),
                prepare=True,
            )
            row = curs.fetchone()
        return BrowserSession(**row) if row else None

    def set_session_organization(self, key_hash: bytes, organization_id: UUID) -> None:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE browser_sessions SET organization_id = %s WHERE key_hash = %s",
                (organization_id, key_hash),
            )

    def remove_session(self, key_hash: bytes) -> None:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute("DELETE FROM browser_sessions WHERE key_hash = %s", (key_hash,))

    # ---- API tokens ---------------------------------------------------------------------

    def add_token(self, token: ApiToken, token_hash: bytes, audit: AuditEntry) -> None:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(
                "INSERT INTO api_tokens (id, user_id, organization_id, name, token_hash, prefix, "
                "created_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    token.id,
                    token.user_id,
                    token.organization_id,
                    token.name,
                    token_hash,
                    token.prefix,
                    token.created_at,
                    token.expires_at,
                ),
            )
            write_audit(curs, audit)

    def token_by_hash(self, token_hash: bytes) -> ApiToken | None:
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = %s",
                (token_hash,),
                prepare=True,
            )
            row = curs.fetchone()
        return ApiToken(**row) if row else None

    def tokens(self, user_id: UUID, organization_id: UUID) -> list[ApiToken]:
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE user_id = %s "
                "AND organization_id = %s ORDER BY created_at DESC, id",
                (user_id, organization_id),
            )
            return [ApiToken(**row) for row in curs.fetchall()]

    def revoke_token(self, token_id: UUID, user_id: UUID, at: datetime, audit: AuditEntry) -> bool:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE api_tokens SET revoked_at = %s WHERE id = %s AND user_id = %s "
                "AND organization_id = %s AND revoked_at IS NULL",
                (at, token_id, user_id, audit.organization_id),
            )
            if curs.rowcount != 1:
                return False
            write_audit(curs, audit)
            return True

    def touch_token(self, token_id: UUID, at: datetime) -> None:
        # At most one write a minute per token: a hot token must not turn reads into writes.
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE api_tokens SET last_used_at = %s WHERE id = %s AND "
                "(last_used_at IS NULL OR last_used_at < %s - interval '60 seconds')",
                (at, token_id, at),
                prepare=True,
            )

    # ---- internals ----------------------------------------------------------------------

    def _one_user(self, where: str, value: object) -> User | None:
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                "SELECT id, email, name, password_hash, active_organization_id FROM users "
                f"WHERE {where}",
                (value,),
            )
            row = curs.fetchone()
        return User(**row) if row else None

    @staticmethod
    def _insert_organization(curs: Cursor[DictRow], organization: Organization) -> None:
        curs.execute(
            "INSERT INTO organizations (id, name, plan) VALUES (%s, %s, %s)",
            (organization.id, organization.name, organization.plan),
        )

    @staticmethod
    def _insert_membership(
        curs: Cursor[DictRow], organization_id: UUID, user_id: UUID, role: str
    ) -> None:
        curs.execute(
            "INSERT INTO memberships (organization_id, user_id, role) VALUES (%s, %s, %s)",
            (organization_id, user_id, role),
        )
