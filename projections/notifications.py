"""The notifications read model: what needs the user's attention, in the app and by email.

Tables it owns, replayed by a rebuild (documented in docs/read-models.md):
- ``notifications``: one row per event that needs attention (a connection about to expire,
  expired or gone into error; a post that failed or was partly published). Its id is uuid5 of the
  event (aggregate id and version), so a replay writes the same ids.
- ``notification_accounts``: each account's name as of that point of the log, so a notice
  about a post names its accounts the same way on every replay.

Tables beside it, which a rebuild leaves alone:
- ``notification_reads``: which notifications an organization has read. Read marks are the
  user's doing, not facts in the event store; keyed by the deterministic id, they survive a
  rebuild (which drops and replays only the tables above).
- ``email_outbox``: one email per (notification, recipient), written in the same transaction
  as the notification and drained by ``interfaces/email.py``.

A replay never emails twice: shadow views (rebuilds) are built without recipients and never
write the outbox; the outbox is unique per (notification, recipient) and keeps sent rows; and
an event older than ``email_max_age`` when projected is not emailed, so a view replayed from
zero (say, first deployed on an existing store) does not mail the past.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Notification
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.utils import resolve_topic
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier
from psycopg.types.json import Jsonb

from application.app import KairosApplication
from domain.integration import Integration, IntegrationStatus
from domain.post import Post
from projections import notices
from projections.base import ReadModel
from projections.notices import AccountLabel, Notice
from projections.posts import DEFAULT_PAGE, MAX_PAGE, decode_cursor, encode_cursor

NAMESPACE = UUID("0b6f1d8e-5a7c-4c1e-9f2d-6e4a3b8c7d10")
EMAIL_OUTBOX_CHANNEL = "kairos_email_outbox"
READS_TABLE = "notification_reads"
OUTBOX_TABLE = "email_outbox"

Recipients = Callable[[Cursor[DictRow], UUID], list[str]]
"""The email addresses to notify for an organization, read in the view's transaction."""

_ACCOUNT_EVENTS = (Integration.IntegrationConnected, Integration.IntegrationReconnected)
_NOTICE_EVENTS = (
    Integration.ConnectionExpiringSoon,
    Integration.TokenExpired,
    Integration.IntegrationErrored,
    Post.PostFailed,
    Post.PostPartiallyPublished,
)


def notification_id(event_originator_id: UUID, event_version: int) -> UUID:
    """The same event gives the same notification id, on every replay."""
    return uuid5(NAMESPACE, f"{event_originator_id}/{event_version}")


@dataclass(frozen=True)
class NotificationDetails:
    id: UUID
    organization_id: UUID
    kind: str
    title: str
    body: str
    subject_type: str
    subject_id: UUID
    created_at: datetime
    read_at: datetime | None


class NotificationsView(ReadModel):
    name = "notifications"
    topic_prefixes = ("domain.integration:", "domain.post:")

    def __init__(
        self,
        datastore: PostgresDatastore,
        app: KairosApplication,
        *,
        prefix: str = "",
        recipients: Recipients | None = None,
        email_max_age: timedelta = timedelta(days=1),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.recipients = recipients
        self.email_max_age = email_max_age
        self.clock = clock
        super().__init__(datastore, app, prefix=prefix)

    @property
    def tables(self) -> list[str]:
        return [f"{self.prefix}notifications", f"{self.prefix}notification_accounts"]

    def create_statements(self) -> list[str]:
        schema = self.datastore.schema
        notifications, accounts = (f'"{schema}"."{t}"' for t in self.tables)
        reads, outbox = (f'"{schema}"."{t}"' for t in (READS_TABLE, OUTBOX_TABLE))
        return [
            f"""CREATE TABLE IF NOT EXISTS {notifications} (
                id uuid PRIMARY KEY,
                organization_id uuid NOT NULL,
                kind text NOT NULL,
                title text NOT NULL,
                body text NOT NULL,
                subject_type text NOT NULL,
                subject_id uuid NOT NULL,
                details jsonb NOT NULL,
                created_at timestamptz NOT NULL)""",
            f"CREATE INDEX IF NOT EXISTS {self.prefix}notifications_by_org_newest "
            f"ON {notifications} (organization_id, created_at DESC, id DESC)",
            f"""CREATE TABLE IF NOT EXISTS {accounts} (
                id uuid PRIMARY KEY,
                organization_id uuid NOT NULL,
                provider text NOT NULL,
                account_name text NOT NULL)""",
            f"""CREATE TABLE IF NOT EXISTS {reads} (
                notification_id uuid PRIMARY KEY,
                organization_id uuid NOT NULL,
                read_at timestamptz NOT NULL)""",
            f"""CREATE TABLE IF NOT EXISTS {outbox} (
                id bigserial PRIMARY KEY,
                notification_id uuid NOT NULL,
                organization_id uuid NOT NULL,
                recipient text NOT NULL,
                subject text NOT NULL,
                body text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                next_attempt_at timestamptz NOT NULL DEFAULT now(),
                attempts integer NOT NULL DEFAULT 0,
                last_error text,
                sent_at timestamptz,
                failed_at timestamptz,
                UNIQUE (notification_id, recipient))""",
            f"CREATE INDEX IF NOT EXISTS email_outbox_due ON {outbox} (next_attempt_at) "
            "WHERE sent_at IS NULL AND failed_at IS NULL",
        ]

    # ---- projecting ---------------------------------------------------------------------

    def apply(self, curs: Cursor[DictRow], notifications: Sequence[Notification]) -> None:
        emailed = False
        for notification in notifications:
            if not notification.topic.startswith(self.topic_prefixes):
                continue
            kind = resolve_topic(notification.topic)
            if not issubclass(kind, (*_ACCOUNT_EVENTS, *_NOTICE_EVENTS)):
                continue
            event = cast(Aggregate.Event, self.app.mapper.to_domain_event(notification))
            if isinstance(event, _ACCOUNT_EVENTS):
                self._remember_account(curs, event)
                continue
            found = self._notice(curs, event)
            if found is not None:
                organization_id, notice = found
                emailed |= self._record(curs, event, organization_id, notice)
        if emailed:
            curs.execute(SQL("SELECT pg_notify(%s, '')"), (EMAIL_OUTBOX_CHANNEL,))

    def _remember_account(self, curs: Cursor[DictRow], event: Aggregate.Event) -> None:
        if isinstance(event, Integration.IntegrationConnected):
            curs.execute(
                SQL(
                    "INSERT INTO {0} (id, organization_id, provider, account_name) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO UPDATE "
                    "SET account_name = EXCLUDED.account_name"
                ).format(self.table("notification_accounts")),
                (event.originator_id, event.organization_id, event.provider, event.account_name),
            )
        elif isinstance(event, Integration.IntegrationReconnected):
            curs.execute(
                SQL("UPDATE {0} SET account_name = %s WHERE id = %s").format(
                    self.table("notification_accounts")
                ),
                (event.account_name, event.originator_id),
            )

    def _notice(self, curs: Cursor[DictRow], event: Aggregate.Event) -> tuple[UUID, Notice] | None:
        subject_id = UUID(str(event.originator_id))
        if isinstance(event, Post.PostFailed | Post.PostPartiallyPublished):
            post = self.app.get_post(subject_id, version=event.originator_version)
            if post is None:
                return None
            labels = self._labels(curs, [UUID(a) for a in post.deliveries])
            partial = isinstance(event, Post.PostPartiallyPublished)
            return post.organization_id, notices.post_outcome(post, labels, partial=partial)
        curs.execute(
            SQL("SELECT organization_id, provider, account_name FROM {0} WHERE id = %s").format(
                self.table("notification_accounts")
            ),
            (subject_id,),
        )
        row = curs.fetchone()
        if row is None:
            return None
        account = AccountLabel(row["provider"], row["account_name"])
        if isinstance(event, Integration.ConnectionExpiringSoon):
            notice = notices.connection_expiring(account, subject_id, event.expires_at)
        elif isinstance(event, Integration.TokenExpired):
            notice = notices.connection_expired(account, subject_id, event.reason)
        elif isinstance(event, Integration.IntegrationErrored):
            if self._already_in_error(subject_id, event.originator_version):
                return None
            notice = notices.connection_errored(account, subject_id, event.operation, event.message)
        else:
            return None
        return row["organization_id"], notice

    def _already_in_error(self, integration_id: UUID, version: int) -> bool:
        """Errors repeat while an account stays broken (each failed refresh retry, each
        daily check): the user is told when it goes into error, not at every repeat."""
        before = self.app.get_integration_at(integration_id, version - 1)
        return before is not None and before.status is IntegrationStatus.ERROR

    def _labels(self, curs: Cursor[DictRow], account_ids: list[UUID]) -> dict[str, AccountLabel]:
        curs.execute(
            SQL("SELECT id, provider, account_name FROM {0} WHERE id = ANY(%s)").format(
                self.table("notification_accounts")
            ),
            (account_ids,),
        )
        return {
            str(row["id"]): AccountLabel(row["provider"], row["account_name"])
            for row in curs.fetchall()
        }

    def _record(
        self,
        curs: Cursor[DictRow],
        event: Aggregate.Event,
        organization_id: UUID,
        notice: Notice,
    ) -> bool:
        """Insert the notification and, for a recent event, its emails. True if emailed."""
        notification = notification_id(UUID(str(event.originator_id)), event.originator_version)
        curs.execute(
            SQL(
                "INSERT INTO {0} (id, organization_id, kind, title, body, subject_type, "
                "subject_id, details, created_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (id) DO NOTHING"
            ).format(self.table("notifications")),
            (
                notification,
                organization_id,
                notice.kind,
                notice.title,
                notice.body,
                notice.subject_type,
                notice.subject_id,
                Jsonb(notice.details),
                event.timestamp,
            ),
        )
        if self.recipients is None or event.timestamp < self.clock() - self.email_max_age:
            return False
        emailed = False
        for recipient in self.recipients(curs, organization_id):
            curs.execute(
                SQL(
                    "INSERT INTO {0} (notification_id, organization_id, recipient, subject, body) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (notification_id, recipient) "
                    "DO NOTHING"
                ).format(self._shared(OUTBOX_TABLE)),
                (notification, organization_id, recipient, notice.title, notice.body),
            )
            emailed |= curs.rowcount > 0
        return emailed

    # ---- queries (always scoped to one organization) ------------------------------------

    def list_notifications(
        self,
        organization_id: UUID,
        *,
        unread_only: bool = False,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> tuple[list[NotificationDetails], str | None]:
        """Newest first. Returns one page and the cursor of the next page, if any.
        Raises ValueError for a cursor this API did not issue."""
        clauses = [SQL("n.organization_id = %s")]
        params: list[Any] = [organization_id]
        if unread_only:
            clauses.append(SQL("r.notification_id IS NULL"))
        if cursor is not None:
            created_at, last_id = decode_cursor(cursor)
            clauses.append(SQL("(n.created_at, n.id) < (%s, %s)"))
            params.extend([created_at, last_id])
        limit = min(limit, MAX_PAGE)
        params.append(limit + 1)
        query = SQL(
            "SELECT n.*, r.read_at FROM {0} n LEFT JOIN {1} r ON r.notification_id = n.id "
            "WHERE {2} ORDER BY n.created_at DESC, n.id DESC LIMIT %s"
        ).format(self.table("notifications"), self._shared(READS_TABLE), SQL(" AND ").join(clauses))
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(query, params)
            rows = curs.fetchall()
        page = [_details(row) for row in rows[:limit]]
        next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
        return page, next_cursor

    def unread_count(self, organization_id: UUID) -> int:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "SELECT count(*) AS n FROM {0} n WHERE n.organization_id = %s AND NOT EXISTS "
                    "(SELECT 1 FROM {1} r WHERE r.notification_id = n.id)"
                ).format(self.table("notifications"), self._shared(READS_TABLE)),
                (organization_id,),
            )
            row = curs.fetchone()
        return int(row["n"]) if row else 0

    def mark_read(self, organization_id: UUID, notification: UUID) -> NotificationDetails | None:
        """Mark one notification read (keeping the first read time); None if the
        organization has no such notification."""
        notifications, reads = self.table("notifications"), self._shared(READS_TABLE)
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "INSERT INTO {1} (notification_id, organization_id, read_at) "
                    "SELECT id, organization_id, now() FROM {0} "
                    "WHERE id = %s AND organization_id = %s ON CONFLICT DO NOTHING"
                ).format(notifications, reads),
                (notification, organization_id),
            )
            curs.execute(
                SQL(
                    "SELECT n.*, r.read_at FROM {0} n LEFT JOIN {1} r "
                    "ON r.notification_id = n.id WHERE n.id = %s AND n.organization_id = %s"
                ).format(notifications, reads),
                (notification, organization_id),
            )
            row = curs.fetchone()
        return _details(row) if row is not None else None

    def mark_all_read(self, organization_id: UUID) -> int:
        """Mark every notification of the organization read; returns how many were unread."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "INSERT INTO {1} (notification_id, organization_id, read_at) "
                    "SELECT n.id, n.organization_id, now() FROM {0} n "
                    "WHERE n.organization_id = %s AND NOT EXISTS "
                    "(SELECT 1 FROM {1} r WHERE r.notification_id = n.id) ON CONFLICT DO NOTHING"
                ).format(self.table("notifications"), self._shared(READS_TABLE)),
                (organization_id,),
            )
            return curs.rowcount

    def _shared(self, name: str) -> Identifier:
        """A table beside the view: never prefixed, so shadow views share the live one."""
        return Identifier(self.datastore.schema, name)


def _details(row: DictRow) -> NotificationDetails:
    return NotificationDetails(
        id=row["id"],
        organization_id=row["organization_id"],
        kind=row["kind"],
        title=row["title"],
        body=row["body"],
        subject_type=row["subject_type"],
        subject_id=row["subject_id"],
        created_at=row["created_at"],
        read_at=row["read_at"],
    )
