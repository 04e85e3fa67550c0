"""The engagement read model: what each published post earned on each account, over time.

Tables it owns, replayed by a rebuild (documented in docs/read-models.md, with example SQL
in docs/analytics.md):
- ``engagement_posts``: one row per published delivery (post, account): its organization,
  platform and when it went out. Written on ``AccountPublished``.
- ``engagement_observations``: one row per read of a post's engagement on an account
  (``AccountMetricsCollected``): the counters as the platform reported them then, and the
  post's age at that moment. The history analytics teams query.
- ``engagement_latest``: the newest read per (post, account): what best-time scoring uses.
- ``engagement_versions``: per organization, the position of the last event that changed
  its engagement, so answers computed from it can be cached until it moves.

Only events are read here (the post is loaded once per publish, never per metric read), so
the projection keeps up with a high rate of metric events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Notification
from eventsourcing.utils import resolve_topic
from psycopg import Cursor
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL

from domain.post import Post
from projections.base import ReadModel

_EVENTS = (Post.AccountPublished, Post.AccountMetricsCollected)
ScoringRow = tuple[
    str, str, datetime, int | None, int | None, int | None, int | None, int | None, int | None
]
_COUNTERS = ("likes", "comments", "shares", "views", "reach", "saves")


@dataclass(frozen=True)
class LatestEngagement:
    """The newest engagement read of one post on one account."""

    post_id: UUID
    account_id: UUID
    provider: str
    published_at: datetime
    collected_at: datetime
    likes: int | None
    comments: int | None
    shares: int | None
    views: int | None
    reach: int | None
    saves: int | None


@dataclass(frozen=True)
class EngagementTotals:
    provider: str
    posts: int
    likes: int
    comments: int
    shares: int
    views: int


class EngagementView(ReadModel):
    name = "engagement"
    topic_prefixes = ("domain.post:",)

    @property
    def tables(self) -> list[str]:
        return [
            f"{self.prefix}engagement_posts",
            f"{self.prefix}engagement_observations",
            f"{self.prefix}engagement_latest",
            f"{self.prefix}engagement_versions",
        ]

    def create_statements(self) -> list[str]:
        schema = self.datastore.schema
        posts, observations, latest, versions = (f'"{schema}"."{t}"' for t in self.tables)
        counters = ",\n".join(f"                {name} bigint" for name in _COUNTERS)
        p = self.prefix
        return [
            f"""CREATE TABLE IF NOT EXISTS {posts} (
                post_id uuid NOT NULL,
                account_id uuid NOT NULL,
                organization_id uuid NOT NULL,
                provider text NOT NULL,
                published_at timestamptz NOT NULL,
                PRIMARY KEY (post_id, account_id))""",
            f"""CREATE TABLE IF NOT EXISTS {observations} (
                post_id uuid NOT NULL,
                account_id uuid NOT NULL,
                collected_at timestamptz NOT NULL,
                organization_id uuid NOT NULL,
                provider text NOT NULL,
                published_at timestamptz NOT NULL,
                age_seconds bigint NOT NULL,
{counters},
                PRIMARY KEY (post_id, account_id, collected_at))""",
            f"CREATE INDEX IF NOT EXISTS {p}engagement_observations_by_org "
            f"ON {observations} (organization_id, collected_at)",
            f"""CREATE TABLE IF NOT EXISTS {latest} (
                post_id uuid NOT NULL,
                account_id uuid NOT NULL,
                organization_id uuid NOT NULL,
                provider text NOT NULL,
                published_at timestamptz NOT NULL,
                collected_at timestamptz NOT NULL,
{counters},
                PRIMARY KEY (post_id, account_id))""",
            # Covering: best-time scoring reads an organization's rows from the index alone.
            f"CREATE INDEX IF NOT EXISTS {p}engagement_latest_by_org "
            f"ON {latest} (organization_id, provider) INCLUDE (account_id, published_at, "
            "collected_at, likes, comments, shares, views, reach, saves)",
            f"""CREATE TABLE IF NOT EXISTS {versions} (
                organization_id uuid PRIMARY KEY,
                position bigint NOT NULL)""",
        ]

    # ---- projecting ---------------------------------------------------------------------

    def apply(self, curs: Cursor[DictRow], notifications: Sequence[Notification]) -> None:
        changed: dict[UUID, int] = {}
        for notification in notifications:
            if not notification.topic.startswith(self.topic_prefixes):
                continue
            if not issubclass(resolve_topic(notification.topic), _EVENTS):
                continue
            event = cast(Aggregate.Event, self.app.mapper.to_domain_event(notification))
            if isinstance(event, Post.AccountPublished):
                organization_id = self._published(curs, event)
            else:
                organization_id = self._observed(curs, cast(Post.AccountMetricsCollected, event))
            if organization_id is not None:
                changed[organization_id] = notification.id
        for organization_id, position in changed.items():
            curs.execute(
                SQL(
                    "INSERT INTO {0} (organization_id, position) VALUES (%s, %s) "
                    "ON CONFLICT (organization_id) DO UPDATE SET position = EXCLUDED.position"
                ).format(self.table("engagement_versions")),
                (organization_id, position),
            )

    def _published(self, curs: Cursor[DictRow], event: Post.AccountPublished) -> UUID | None:
        post = self.app.get_post(UUID(str(event.originator_id)), version=event.originator_version)
        if post is None:
            return None
        curs.execute(
            SQL(
                "INSERT INTO {0} (post_id, account_id, organization_id, provider, published_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
            ).format(self.table("engagement_posts")),
            (
                post.id,
                UUID(event.account_id),
                post.organization_id,
                post.accounts.get(event.account_id, post.deliveries[event.account_id].provider),
                event.timestamp,
            ),
        )
        return None  # nothing to score until the first read

    def _observed(self, curs: Cursor[DictRow], event: Post.AccountMetricsCollected) -> UUID | None:
        counters = tuple(getattr(event, name) for name in _COUNTERS)
        columns = ", ".join(_COUNTERS)
        placeholders = ", ".join(["%s"] * len(_COUNTERS))
        key = (UUID(str(event.originator_id)), UUID(event.account_id))
        curs.execute(
            SQL(
                "INSERT INTO {obs} (post_id, account_id, collected_at, organization_id, "
                f"provider, published_at, age_seconds, {columns}) "
                "SELECT p.post_id, p.account_id, %s, p.organization_id, p.provider, "
                "p.published_at, "
                "GREATEST(0, floor(extract(epoch FROM %s::timestamptz - p.published_at))), "
                f"{placeholders} FROM {{posts}} p WHERE p.post_id = %s AND p.account_id = %s "
                "ON CONFLICT DO NOTHING RETURNING organization_id, provider, published_at"
            ).format(
                obs=self.table("engagement_observations"), posts=self.table("engagement_posts")
            ),
            (event.timestamp, event.timestamp, *counters, *key),
        )
        row = curs.fetchone()
        if row is None:
            return None
        updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in _COUNTERS)
        curs.execute(
            SQL(
                "INSERT INTO {0} (post_id, account_id, organization_id, provider, published_at, "
                f"collected_at, {columns}) VALUES (%s, %s, %s, %s, %s, %s, {placeholders}) "
                "ON CONFLICT (post_id, account_id) DO UPDATE SET "
                f"collected_at = EXCLUDED.collected_at, {updates} "
                "WHERE {0}.collected_at <= EXCLUDED.collected_at"
            ).format(self.table("engagement_latest")),
            (
                *key,
                row["organization_id"],
                row["provider"],
                row["published_at"],
                event.timestamp,
                *counters,
            ),
        )
        return cast(UUID, row["organization_id"])

    # ---- queries ------------------------------------------------------------------------

    def version(self, organization_id: UUID) -> int:
        """The position of the last event that changed the organization's engagement."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL("SELECT position FROM {0} WHERE organization_id = %s").format(
                    self.table("engagement_versions")
                ),
                (organization_id,),
            )
            row = curs.fetchone()
        return int(row["position"]) if row else 0

    def latest(
        self,
        organization_id: UUID,
        providers: Sequence[str] | None = None,
        account_id: UUID | None = None,
    ) -> list[LatestEngagement]:
        """The newest read of every post of the organization (on some platforms, or one
        account)."""
        where = ["organization_id = %s"]
        params: list[object] = [organization_id]
        if providers is not None:
            where.append("provider = ANY(%s)")
            params.append(list(providers))
        if account_id is not None:
            where.append("account_id = %s")
            params.append(account_id)
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "SELECT post_id, account_id, provider, published_at, collected_at, "
                    f"{', '.join(_COUNTERS)} FROM {{0}} WHERE {' AND '.join(where)}"
                ).format(self.table("engagement_latest")),
                params,
            )
            return [LatestEngagement(**row) for row in curs.fetchall()]

    def scoring_rows(
        self, organization_id: UUID, providers: Sequence[str] | None = None
    ) -> list[ScoringRow]:
        """What best-time scoring reads of each post's newest read, as plain tuples:
        (account id as text, provider, published_at, likes, comments, shares, views, reach,
        saves). Decoding nothing it does not use keeps a cold answer cheap."""
        where = "organization_id = %s" + (" AND provider = ANY(%s)" if providers else "")
        params: list[object] = [organization_id]
        if providers:
            params.append(list(providers))
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(
                SQL(
                    "SELECT account_id::text, provider, published_at, "
                    f"{', '.join(_COUNTERS)} FROM {{0}} WHERE {where}"
                ).format(self.table("engagement_latest")),
                params,
            )
            return cast(list[ScoringRow], curs.fetchall())

    def published(self, organization_id: UUID | None = None) -> list[tuple[UUID, UUID]]:
        """Every published (post, account) pair, oldest first (for a backfill)."""
        where = "WHERE organization_id = %s" if organization_id is not None else ""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(f"SELECT post_id, account_id FROM {{0}} {where} ORDER BY published_at").format(
                    self.table("engagement_posts")
                ),
                [organization_id] if organization_id is not None else [],
            )
            return [(row["post_id"], row["account_id"]) for row in curs.fetchall()]

    def totals(
        self, organization_id: UUID, providers: Sequence[str] | None = None
    ) -> list[EngagementTotals]:
        """Per platform, the sum of every post's newest read."""
        where = "organization_id = %s" + (" AND provider = ANY(%s)" if providers else "")
        params: list[object] = [organization_id]
        if providers:
            params.append(list(providers))
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "SELECT provider, count(*) AS posts, "
                    "coalesce(sum(likes), 0) AS likes, coalesce(sum(comments), 0) AS comments, "
                    "coalesce(sum(shares), 0) AS shares, coalesce(sum(views), 0) AS views "
                    f"FROM {{0}} WHERE {where} GROUP BY provider ORDER BY provider"
                ).format(self.table("engagement_latest")),
                params,
            )
            return [
                EngagementTotals(
                    provider=row["provider"],
                    posts=int(row["posts"]),
                    likes=int(row["likes"]),
                    comments=int(row["comments"]),
                    shares=int(row["shares"]),
                    views=int(row["views"]),
                )
                for row in curs.fetchall()
            ]
