"""The posts read model: what ``GET /api/posts`` lists, and what analytics teams query.

Tables (documented in docs/read-models.md):
- ``posts``: one row per live post (deleted posts are removed), newest first per organization.
- ``post_deliveries``: one row per (post, targeted account) with its publishing outcome.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL
from psycopg.types.json import Jsonb, set_json_loads

from application.connections import ScheduledPost
from application.errors import ReadModelBehind
from application.views import DeliveryResult, PostDetails, post_details
from projections.base import ReadModel

# Listing decodes four jsonb columns per row; the stdlib decoder was a quarter of a request.
set_json_loads(orjson.loads)

DEFAULT_PAGE = 50
MAX_PAGE = 200


class PostsView(ReadModel):
    name = "posts"
    topic_prefixes = ("domain.post:",)

    @property
    def tables(self) -> list[str]:
        return [f"{self.prefix}posts", f"{self.prefix}post_deliveries"]

    def create_statements(self) -> list[str]:
        posts, deliveries = (f'"{self.datastore.schema}"."{t}"' for t in self.tables)
        return [
            f"""CREATE TABLE IF NOT EXISTS {posts} (
                id uuid PRIMARY KEY,
                organization_id uuid NOT NULL,
                status text NOT NULL,
                content text NOT NULL,
                thread jsonb NOT NULL,
                media_urls jsonb NOT NULL,
                account_ids jsonb NOT NULL,
                platforms text[] NOT NULL,
                scheduled_at timestamptz,
                published_at timestamptz,
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL,
                version integer NOT NULL,
                results jsonb NOT NULL)""",
            f"CREATE INDEX IF NOT EXISTS {self.prefix}posts_by_org_newest "
            f"ON {posts} (organization_id, created_at DESC, id DESC)",
            f"CREATE INDEX IF NOT EXISTS {self.prefix}posts_by_org_status_newest "
            f"ON {posts} (organization_id, status, created_at DESC, id DESC)",
            f"""CREATE TABLE IF NOT EXISTS {deliveries} (
                post_id uuid NOT NULL,
                account_id uuid NOT NULL,
                organization_id uuid NOT NULL,
                provider text NOT NULL,
                status text NOT NULL,
                attempts integer NOT NULL,
                remote_id text,
                url text,
                published_at timestamptz,
                error_category text,
                error_message text,
                PRIMARY KEY (post_id, account_id))""",
            f"CREATE INDEX IF NOT EXISTS {self.prefix}post_deliveries_by_account "
            f"ON {deliveries} (organization_id, account_id, published_at)",
        ]

    def materialize(self, curs: Cursor[DictRow], aggregate_id: UUID, version: int) -> None:
        posts, deliveries = (self.table(t) for t in ("posts", "post_deliveries"))
        post = self.app.get_post(aggregate_id, version=version)
        if post is None or post.deleted:
            curs.execute(
                SQL("DELETE FROM {0} WHERE post_id = %s").format(deliveries), (aggregate_id,)
            )
            curs.execute(SQL("DELETE FROM {0} WHERE id = %s").format(posts), (aggregate_id,))
            return
        details = post_details(post)
        curs.execute(
            SQL(
                "INSERT INTO {0} (id, organization_id, status, content, thread, media_urls, "
                "account_ids, platforms, scheduled_at, published_at, created_at, updated_at, "
                "version, results) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (id) DO UPDATE SET status=EXCLUDED.status, content=EXCLUDED.content, "
                "thread=EXCLUDED.thread, media_urls=EXCLUDED.media_urls, "
                "account_ids=EXCLUDED.account_ids, platforms=EXCLUDED.platforms, "
                "scheduled_at=EXCLUDED.scheduled_at, published_at=EXCLUDED.published_at, "
                "updated_at=EXCLUDED.updated_at, version=EXCLUDED.version, results=EXCLUDED.results"
            ).format(posts),
            (
                details.id,
                details.organization_id,
                details.status,
                details.content,
                Jsonb(details.thread),
                Jsonb(details.media_urls),
                Jsonb(details.account_ids),
                details.platforms,
                details.scheduled_at,
                details.published_at,
                details.created_at,
                details.updated_at,
                details.version,
                Jsonb([_result_json(r) for r in details.results]),
            ),
        )
        curs.execute(
            SQL("DELETE FROM {0} WHERE post_id = %s AND NOT (account_id::text = ANY(%s))").format(
                deliveries
            ),
            (details.id, details.account_ids),
        )
        for result in details.results:
            curs.execute(
                SQL(
                    "INSERT INTO {0} (post_id, account_id, organization_id, provider, status, "
                    "attempts, remote_id, url, published_at, error_category, error_message) "
                    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (post_id, account_id) "
                    "DO UPDATE SET provider=EXCLUDED.provider, status=EXCLUDED.status, "
                    "attempts=EXCLUDED.attempts, remote_id=EXCLUDED.remote_id, url=EXCLUDED.url, "
                    "published_at=EXCLUDED.published_at, error_category=EXCLUDED.error_category, "
                    "error_message=EXCLUDED.error_message"
                ).format(deliveries),
                (
                    details.id,
                    UUID(result.account_id),
                    details.organization_id,
                    result.provider,
                    result.status,
                    result.attempts,
                    result.remote_id,
                    result.url,
                    result.published_at,
                    result.error_category,
                    result.error_message,
                ),
            )

    # ---- queries (always scoped to one organization) ------------------------------------

    def list_posts(
        self,
        organization_id: UUID,
        *,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> tuple[list[PostDetails], str | None]:
        """Newest first. Returns one page and the cursor of the next page, if any."""
        clauses = [SQL("organization_id = %s")]
        params: list[Any] = [organization_id]
        if status is not None:
            clauses.append(SQL("status = %s"))
            params.append(status)
        if cursor is not None:
            created_at, post_id = decode_cursor(cursor)
            clauses.append(SQL("(created_at, id) < (%s, %s)"))
            params.extend([created_at, post_id])
        params.append(min(limit, MAX_PAGE) + 1)
        query = SQL(
            "SELECT * FROM {0} WHERE {1} ORDER BY created_at DESC, id DESC LIMIT %s"
        ).format(self.table("posts"), SQL(" AND ").join(clauses))
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(query, params, prepare=True)
            rows = curs.fetchall()
        page = [_details_from_row(row) for row in rows[:limit]]
        next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
        return page, next_cursor

    def pending_posts_for_account(
        self, organization_id: UUID, account_id: UUID
    ) -> list[ScheduledPost]:
        """Scheduled or publishing posts still to be delivered to the account, soonest first,
        as of every event committed before the call: the answer decides a disconnect, so a
        view that cannot catch up refuses (``ReadModelBehind``) rather than miss one."""
        if not self.catch_up_to(self.app.last_position()):
            raise ReadModelBehind()
        query = SQL(
            "SELECT p.id, p.scheduled_at, p.status FROM {0} p JOIN {1} d ON d.post_id = p.id "
            "WHERE d.organization_id = %s AND d.account_id = %s "
            "AND p.status IN ('scheduled', 'publishing') "
            "AND d.status NOT IN ('published', 'failed') "
            "ORDER BY p.scheduled_at NULLS LAST, p.id"
        ).format(self.table("posts"), self.table("post_deliveries"))
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(query, (organization_id, account_id))
            return [ScheduledPost(**row) for row in curs.fetchall()]


def encode_cursor(created_at: datetime, post_id: UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(post_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """Raises ValueError for anything that is not a cursor this API issued."""
    invalid = "cursor is not valid; use the nextCursor of a previous page"
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except ValueError as exc:
        raise ValueError(invalid) from exc
    # Anyone can send any JSON here, so check its shape before a parser sees it.
    if not (
        isinstance(decoded, list)
        and len(decoded) == 2
        and all(isinstance(part, str) for part in decoded)
    ):
        raise ValueError(invalid)
    try:
        created_at, post_id = datetime.fromisoformat(decoded[0]), UUID(decoded[1])
    except ValueError as exc:
        raise ValueError(invalid) from exc
    if created_at.tzinfo is None:  # every cursor issued carries its offset
        raise ValueError(invalid)
    return created_at, post_id


def _result_json(result: DeliveryResult) -> dict[str, Any]:
    data = asdict(result)
    if result.published_at is not None:
        data["published_at"] = result.published_at.isoformat()
    return data


def _details_from_row(row: DictRow) -> PostDetails:
    results = [
        DeliveryResult(
            **{
                **item,
                "published_at": datetime.fromisoformat(item["published_at"])
                if item.get("published_at")
                else None,
            }
        )
        for item in row["results"]
    ]
    return PostDetails(
        id=row["id"],
        organization_id=row["organization_id"],
        content=row["content"],
        thread=row["thread"],
        media_urls=row["media_urls"],
        account_ids=row["account_ids"],
        platforms=row["platforms"],
        status=row["status"],
        scheduled_at=row["scheduled_at"],
        published_at=row["published_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
        results=results,
    )
