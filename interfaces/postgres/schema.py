"""Relational tables outside the event store: identity, plans, audit trail, OAuth states,
pending account choices, vault, collections.

Created idempotently at start-up. Read models create their own tables (``projections/``).
"""

from __future__ import annotations

from eventsourcing.postgres import PostgresDatastore

from interfaces.postgres.recorder import schema_lock

STATEMENTS = [
    """CREATE TABLE IF NOT EXISTS organizations (
        id uuid PRIMARY KEY,
        name text NOT NULL,
        plan text NOT NULL DEFAULT 'self-hosted',
        created_at timestamptz NOT NULL DEFAULT now())""",
    # An organization may prefer a post published late over one marked missed.
    "ALTER TABLE organizations "
    "ADD COLUMN IF NOT EXISTS publish_late boolean NOT NULL DEFAULT false",
    # ...and a post over a platform's publishing quota waiting for room over failing.
    "ALTER TABLE organizations "
    "ADD COLUMN IF NOT EXISTS delay_on_quota boolean NOT NULL DEFAULT false",
    """CREATE TABLE IF NOT EXISTS users (
        id uuid PRIMARY KEY,
        email text NOT NULL UNIQUE,
        name text NOT NULL DEFAULT '',
        password_hash text NOT NULL,
        active_organization_id uuid REFERENCES organizations (id),
        created_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS memberships (
        organization_id uuid NOT NULL REFERENCES organizations (id),
        user_id uuid NOT NULL REFERENCES users (id),
        role text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (organization_id, user_id))""",
    """CREATE TABLE IF NOT EXISTS browser_sessions (
        key_hash bytea PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users (id),
        organization_id uuid NOT NULL REFERENCES organizations (id),
        csrf_token text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS api_tokens (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users (id),
        organization_id uuid NOT NULL REFERENCES organizations (id),
        name text NOT NULL,
        token_hash bytea NOT NULL UNIQUE,
        prefix text NOT NULL,
        created_at timestamptz NOT NULL,
        expires_at timestamptz,
        last_used_at timestamptz,
        revoked_at timestamptz)""",
    "CREATE INDEX IF NOT EXISTS api_tokens_by_owner ON api_tokens (user_id, organization_id)",
    """CREATE TABLE IF NOT EXISTS audit_log (
        id bigserial PRIMARY KEY,
        occurred_at timestamptz NOT NULL DEFAULT now(),
        action text NOT NULL,
        actor_user_id uuid,
        organization_id uuid,
        subject text NOT NULL,
        details jsonb NOT NULL DEFAULT '{}')""",
    # The audit trail is append-only: the database itself refuses edits and deletions.
    """CREATE OR REPLACE FUNCTION audit_log_is_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log",
    """CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
       FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only()""",
    """CREATE TABLE IF NOT EXISTS oauth_states (
        state_hash bytea PRIMARY KEY,
        organization_id uuid NOT NULL,
        user_id uuid NOT NULL,
        provider text NOT NULL,
        code_verifier text NOT NULL,
        redirect_uri text NOT NULL,
        expires_at timestamptz NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS credentials (
        id uuid PRIMARY KEY,
        organization_id uuid NOT NULL,
        key_id text NOT NULL,
        nonce bytea NOT NULL,
        ciphertext bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        rotated_at timestamptz)""",
    # Media files posts reference, as checked on first reference (application/media.py).
    """CREATE TABLE IF NOT EXISTS media_assets (
        organization_id uuid NOT NULL,
        url text NOT NULL,
        key text NOT NULL,
        content_type text NOT NULL,
        size bigint NOT NULL,
        etag text,
        width integer,
        height integer,
        duration_ms bigint,
        recorded_at timestamptz NOT NULL,
        PRIMARY KEY (organization_id, url))""",
    # Plans the application knows (application/plans.py); re-created so the list can grow.
    "ALTER TABLE organizations DROP CONSTRAINT IF EXISTS organizations_plan_known, "
    "ADD CONSTRAINT organizations_plan_known "
    "CHECK (plan IN ('starter', 'plus', 'pro', 'max', 'self-hosted'))",
    # Collections: named groups of an organization's accounts (application/collections.py).
    # Names are unique per organization regardless of case.
    """CREATE TABLE IF NOT EXISTS collections (
        id uuid PRIMARY KEY,
        organization_id uuid NOT NULL REFERENCES organizations (id),
        name text NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS collections_name_per_organization "
    "ON collections (organization_id, lower(name))",
    # Integrations are event-sourced, so members reference their ids without a foreign key.
    """CREATE TABLE IF NOT EXISTS collection_members (
        collection_id uuid NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
        integration_id uuid NOT NULL,
        added_at timestamptz NOT NULL,
        added_order bigint GENERATED ALWAYS AS IDENTITY,
        PRIMARY KEY (collection_id, integration_id))""",
    # An authorization that reaches several accounts, until the user picks one
    # (application/connections.py). Candidates: [{external_id, username, display_name, …}].
    """CREATE TABLE IF NOT EXISTS account_choices (
        choice_hash bytea PRIMARY KEY,
        organization_id uuid NOT NULL,
        user_id uuid NOT NULL,
        provider text NOT NULL,
        credential_id uuid NOT NULL,
        candidates jsonb NOT NULL,
        expires_at timestamptz NOT NULL)""",
]


def create_tables(datastore: PostgresDatastore) -> None:
    with schema_lock(datastore), datastore.transaction(commit=True) as curs:
        for statement in STATEMENTS:
            curs.execute(statement)
