"""The integrations read model: an organization's connected accounts and their health.

Table ``integrations``: one row per account ever connected (disconnected ones keep their row
with status ``disconnected``, so history and analytics still resolve the id).
"""

from __future__ import annotations

from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL
from psycopg.types.json import Jsonb

from application.errors import ReadModelBehind
from application.views import IntegrationDetails, integration_details
from projections.base import ReadModel


class IntegrationsView(ReadModel):
    name = "integrations"
    topic_prefixes = ("domain.integration:",)

    @property
    def tables(self) -> list[str]:
        return [f"{self.prefix}integrations"]

    def create_statements(self) -> list[str]:
        table = f'"{self.datastore.schema}"."{self.tables[0]}"'
        return [
            f"""CREATE TABLE IF NOT EXISTS {table} (
                id uuid PRIMARY KEY,
                organization_id uuid NOT NULL,
                provider text NOT NULL,
                external_account_id text NOT NULL,
                account_name text NOT NULL,
                display_name text NOT NULL,
                avatar_url text,
                status text NOT NULL,
                active boolean NOT NULL,
                capabilities jsonb NOT NULL,
                token_expires_at timestamptz,
                last_error text,
                connected_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL,
                version integer NOT NULL)""",
            f"CREATE INDEX IF NOT EXISTS {self.prefix}integrations_by_org "
            f"ON {table} (organization_id, provider, status)",
        ]

    def materialize(self, curs: Cursor[DictRow], aggregate_id: UUID, version: int) -> None:
        integration = self.app.get_integration_at(aggregate_id, version)
        if integration is None:
            return
        d = integration_details(integration)
        curs.execute(
            SQL(
                "INSERT INTO {0} (id, organization_id, provider, external_account_id, "
                "account_name, display_name, avatar_url, status, active, capabilities, "
                "token_expires_at, last_error, connected_at, updated_at, version) "
                "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (id) DO UPDATE SET account_name=EXCLUDED.account_name, "
                "display_name=EXCLUDED.display_name, avatar_url=EXCLUDED.avatar_url, "
                "status=EXCLUDED.status, active=EXCLUDED.active, "
                "capabilities=EXCLUDED.capabilities, token_expires_at=EXCLUDED.token_expires_at, "
                "last_error=EXCLUDED.last_error, updated_at=EXCLUDED.updated_at, "
                "version=EXCLUDED.version"
            ).format(self.table("integrations")),
            (
                d.id,
                d.organization_id,
                d.provider,
                d.external_account_id,
                d.account_name,
                d.display_name,
                d.avatar_url,
                d.status,
                d.active,
                Jsonb(d.capabilities),
                d.token_expires_at,
                d.last_error,
                d.connected_at,
                d.updated_at,
                d.version,
            ),
        )

    # ---- queries (always scoped to one organization) ------------------------------------

    def list_integrations(self, organization_id: UUID) -> list[IntegrationDetails]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "SELECT * FROM {0} WHERE organization_id = %s AND status <> 'disconnected' "
                    "ORDER BY provider, account_name, id"
                ).format(self.table("integrations")),
                (organization_id,),
            )
            return [IntegrationDetails(**row) for row in curs.fetchall()]

    def count_connected(self, organization_id: UUID) -> int:
        """Accounts not disconnected, as of every event committed before the call: the
        answer decides whether one more may connect under the plan's cap, so a view that
        cannot catch up refuses (``ReadModelBehind``) rather than count too few."""
        if not self.catch_up_to(self.app.last_position()):
            raise ReadModelBehind()
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "SELECT count(*) AS connected FROM {0} "
                    "WHERE organization_id = %s AND status <> 'disconnected'"
                ).format(self.table("integrations")),
                (organization_id,),
            )
            row = curs.fetchone()
        return int(row["connected"]) if row else 0

    def live_account_ids(self, organization_id: UUID | None = None) -> list[UUID]:
        """The accounts that are connected or in error (of one organization, or all): the
        ones upkeep looks after."""
        self.catch_up_to(self.app.last_position())
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "SELECT id FROM {0} WHERE status IN ('connected', 'error') "
                    "AND (%s::uuid IS NULL OR organization_id = %s) ORDER BY id"
                ).format(self.table("integrations")),
                (organization_id, organization_id),
            )
            return [row["id"] for row in curs.fetchall()]

    def publishable_account_ids(self, organization_id: UUID, provider: str) -> list[UUID]:
        """Connected, active accounts of the platform, as of every event committed before
        the call: a post aimed at the platform must see an account switched on a moment
        ago (the event store has the last word on each account found).

        Unlike the plan cap and the disconnect guard, this proceeds if the view cannot catch
        up in time: the answer only fills in a new post's accounts, which the post then
        lists, so a lagging view can leave out an account switched on a moment ago but
        cannot let anything through that a rule forbids. Refusing would fail every post
        aimed at a platform during a projector hiccup."""
        self.catch_up_to(self.app.last_position())
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "SELECT id FROM {0} WHERE organization_id = %s AND provider = %s "
                    "AND status IN ('connected', 'error') AND active ORDER BY connected_at, id"
                ).format(self.table("integrations")),
                (organization_id, provider),
            )
            return [row["id"] for row in curs.fetchall()]
