"""The simulator's SQLite file: schema, transactions, ids, call windows, containers and media.

Accounts and OAuth state are in ``sandbox.instagram.store``. Secrets (codes, tokens) are
stored as SHA-256 digests, so the file never holds a usable credential.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from sandbox.common.sqlite import SqliteFile

#: Graph ids of containers and media start here (17-digit numbers, as Instagram's are).
FIRST_NODE_ID = 17_900_000_000_000_000
SHORTCODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS node_ids (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ig_accounts (
    id TEXT PRIMARY KEY,
    scoped_id TEXT NOT NULL,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name TEXT NOT NULL,
    account_type TEXT NOT NULL,
    quota_total INTEGER,
    audience TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS fb_users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS fb_pages (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES fb_users(id),
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    ig_account_id TEXT REFERENCES ig_accounts(id)
);
CREATE INDEX IF NOT EXISTS fb_pages_user ON fb_pages(user_id, position);
CREATE TABLE IF NOT EXISTS codes (
    code_hash TEXT PRIMARY KEY,
    login TEXT NOT NULL,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scopes TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL
);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,
    login TEXT NOT NULL CHECK (login IN ('instagram', 'facebook')),
    lifetime TEXT NOT NULL CHECK (lifetime IN ('short', 'long')),
    subject_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    revoked_at REAL
);
CREATE INDEX IF NOT EXISTS tokens_subject ON tokens(login, subject_id);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('IMAGE', 'VIDEO', 'REELS', 'CAROUSEL')),
    is_carousel_item INTEGER NOT NULL,
    caption TEXT NOT NULL,
    source_url TEXT,
    children TEXT NOT NULL,
    created_at REAL NOT NULL,
    ready_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    error_code INTEGER,
    error_subcode INTEGER,
    error_message TEXT,
    width INTEGER,
    height INTEGER,
    duration_ms INTEGER,
    size INTEGER,
    media_id TEXT,
    published_at REAL
);
CREATE INDEX IF NOT EXISTS containers_owner ON containers(owner_id, created_at);
CREATE TABLE IF NOT EXISTS media (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL,
    container_id TEXT,
    media_type TEXT NOT NULL,
    product_type TEXT NOT NULL,
    caption TEXT NOT NULL,
    shortcode TEXT NOT NULL,
    published_at REAL NOT NULL,
    via_api INTEGER NOT NULL,
    children INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS media_owner ON media(owner_id, published_at);
CREATE TABLE IF NOT EXISTS call_windows (
    subject TEXT PRIMARY KEY,
    window_start REAL NOT NULL,
    used INTEGER NOT NULL
);
"""


def shortcode(media_id: str) -> str:
    """The permalink code of a media: its id in Instagram's URL-safe base 64."""
    value, out = int(media_id), ""
    while value:
        value, rem = divmod(value, 64)
        out = SHORTCODE_ALPHABET[rem] + out
    return out or "A"


@dataclass(frozen=True)
class ContainerError:
    code: int
    subcode: int
    message: str


@dataclass(frozen=True)
class Container:
    id: str
    owner_id: str
    kind: str
    is_carousel_item: bool
    caption: str
    source_url: str | None
    children: tuple[str, ...]
    created_at: float
    ready_at: float
    expires_at: float
    error: ContainerError | None
    width: int | None
    height: int | None
    duration_ms: int | None
    size: int | None
    media_id: str | None
    published_at: float | None

    def status(self, now: float) -> tuple[str, str]:
        """``(status_code, status)`` as ``GET /{container-id}`` reports them at ``now``."""
        if self.media_id is not None:
            return "PUBLISHED", "Published"
        if now >= self.expires_at:
            return "EXPIRED", "Expired: the media container was not published within 24 hours."
        if now < self.ready_at:
            return "IN_PROGRESS", "In Progress"
        if self.error is not None:
            return "ERROR", (
                f"Error: {self.error.message} Media upload has failed with error code"
                f" {self.error.subcode}"
            )
        return "FINISHED", "Finished: Media has been uploaded and it is ready to be published."


@dataclass(frozen=True)
class NewContainer:
    """A container as ``POST /{ig-user-id}/media`` decided it (before it has an id)."""

    kind: str
    is_carousel_item: bool
    caption: str
    source_url: str | None
    children: tuple[str, ...]
    ready_at: float
    error: ContainerError | None = None
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    size: int | None = None


@dataclass(frozen=True)
class Media:
    id: str
    owner_id: str
    container_id: str | None
    media_type: str
    product_type: str
    caption: str
    shortcode: str
    published_at: float
    via_api: bool
    children: int

    @property
    def permalink(self) -> str:
        kind = "reel" if self.product_type == "REELS" else "p"
        return f"https://www.instagram.com/{kind}/{self.shortcode}/"


class Refused(Enum):
    ALREADY_PUBLISHED = "already published"
    QUOTA = "quota"


@dataclass(frozen=True)
class CallWindow:
    allowed: bool
    used: int
    limit: int
    reset: float


class Database(SqliteFile):
    """Thread-safe access to ``instagram.sqlite3`` (one connection, one lock, WAL journal)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    @staticmethod
    def _next_id(db: sqlite3.Connection) -> str:
        row = db.execute("SELECT last FROM node_ids WHERE id = 1").fetchone()
        value = FIRST_NODE_ID if row is None else row["last"] + 1
        db.execute(
            "INSERT INTO node_ids (id, last) VALUES (1, ?)"
            " ON CONFLICT (id) DO UPDATE SET last = excluded.last",
            (value,),
        )
        return str(value)

    # -- call windows (rate limits) ------------------------------------------------------

    def count_call(self, subject: str, limit: int, now: float, window: float) -> CallWindow:
        """Count one call in ``subject``'s fixed window; refused (not counted) past ``limit``."""
        with self._tx() as db:
            row = db.execute(
                "SELECT window_start, used FROM call_windows WHERE subject = ?", (subject,)
            ).fetchone()
            if row is None or row["window_start"] + window <= now:
                start, used = now, 0
            else:
                start, used = row["window_start"], row["used"]
            if used >= limit:
                return CallWindow(False, used, limit, start + window)
            used += 1
            db.execute(
                "INSERT INTO call_windows (subject, window_start, used) VALUES (?, ?, ?)"
                " ON CONFLICT (subject) DO UPDATE SET window_start = excluded.window_start,"
                " used = excluded.used",
                (subject, start, used),
            )
        return CallWindow(True, used, limit, start + window)

    # -- containers ----------------------------------------------------------------------

    def create_container(
        self, owner_id: str, new: NewContainer, now: float, ttl: float
    ) -> Container:
        error = new.error
        with self._tx() as db:
            container_id = self._next_id(db)
            db.execute(
                "INSERT INTO containers (id, owner_id, kind, is_carousel_item, caption,"
                " source_url, children, created_at, ready_at, expires_at, error_code,"
                " error_subcode, error_message, width, height, duration_ms, size)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    container_id,
                    owner_id,
                    new.kind,
                    int(new.is_carousel_item),
                    new.caption,
                    new.source_url,
                    ",".join(new.children),
                    now,
                    new.ready_at,
                    now + ttl,
                    error.code if error else None,
                    error.subcode if error else None,
                    error.message if error else None,
                    new.width,
                    new.height,
                    new.duration_ms,
                    new.size,
                ),
            )
            row = db.execute("SELECT * FROM containers WHERE id = ?", (container_id,)).fetchone()
        return _container(row)

    def get_container(self, container_id: str) -> Container | None:
        rows = self._all("SELECT * FROM containers WHERE id = ?", (container_id,))
        return _container(rows[0]) if rows else None

    def containers_since(self, owner_id: str, since: float) -> int:
        rows = self._all(
            "SELECT COUNT(*) AS n FROM containers WHERE owner_id = ? AND created_at > ?",
            (owner_id, since),
        )
        return int(rows[0]["n"])

    def all_containers(self) -> list[Container]:
        return [_container(row) for row in self._all("SELECT * FROM containers ORDER BY id")]

    # -- media ---------------------------------------------------------------------------

    def publish(
        self,
        container: Container,
        kinds: tuple[str, str],
        now: float,
        quota: tuple[int, float],
    ) -> Media | Refused:
        """Turn a container into a published media of ``kinds`` (media type, product type),
        unless it already was published or the account's ``quota`` (posts, window) is used."""
        media_type, product_type = kinds
        total, window = quota
        with self._tx() as db:
            published = db.execute(
                "SELECT media_id FROM containers WHERE id = ?", (container.id,)
            ).fetchone()
            if published is None or published["media_id"] is not None:
                return Refused.ALREADY_PUBLISHED
            used = db.execute(
                "SELECT COUNT(*) AS n FROM media WHERE owner_id = ? AND via_api = 1"
                " AND published_at > ?",
                (container.owner_id, now - window),
            ).fetchone()["n"]
            if used >= total:
                return Refused.QUOTA
            media_id = self._next_id(db)
            db.execute(
                "INSERT INTO media (id, owner_id, container_id, media_type, product_type,"
                " caption, shortcode, published_at, via_api, children)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
                (
                    media_id,
                    container.owner_id,
                    container.id,
                    media_type,
                    product_type,
                    container.caption,
                    shortcode(media_id),
                    now,
                    len(container.children),
                ),
            )
            db.execute(
                "UPDATE containers SET media_id = ?, published_at = ? WHERE id = ?",
                (media_id, now, container.id),
            )
            row = db.execute("SELECT * FROM media WHERE id = ?", (media_id,)).fetchone()
        return _media(row)

    def seed_media(
        self, owner_id: str, caption: str, media_type: str, product_type: str, published_at: float
    ) -> Media:
        """A post published outside the API (in the app), e.g. for an account's history."""
        with self._tx() as db:
            media_id = self._next_id(db)
            db.execute(
                "INSERT INTO media (id, owner_id, container_id, media_type, product_type,"
                " caption, shortcode, published_at, via_api, children)"
                " VALUES (?, ?, NULL, ?, ?, ?, ?, ?, 0, 0)",
                (
                    media_id,
                    owner_id,
                    media_type,
                    product_type,
                    caption,
                    shortcode(media_id),
                    published_at,
                ),
            )
            row = db.execute("SELECT * FROM media WHERE id = ?", (media_id,)).fetchone()
        return _media(row)

    def media_count(self, owner_id: str) -> int:
        rows = self._all("SELECT COUNT(*) AS n FROM media WHERE owner_id = ?", (owner_id,))
        return int(rows[0]["n"])

    def get_media(self, media_id: str) -> Media | None:
        rows = self._all("SELECT * FROM media WHERE id = ?", (media_id,))
        return _media(rows[0]) if rows else None

    def api_publishes_since(self, owner_id: str, since: float) -> list[float]:
        """When the account's API publishes after ``since`` happened, oldest first."""
        rows = self._all(
            "SELECT published_at FROM media WHERE owner_id = ? AND via_api = 1"
            " AND published_at > ? ORDER BY published_at",
            (owner_id, since),
        )
        return [row["published_at"] for row in rows]

    def list_media(
        self,
        owner_id: str,
        *,
        limit: int,
        before: tuple[float, str] | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[Media]:
        """The account's media newest first, below the ``before`` cursor if given."""
        clauses: list[str] = ["owner_id = ?"]
        params: list[object] = [owner_id]
        if before is not None:
            clauses.append("(published_at < ? OR (published_at = ? AND id < ?))")
            params.extend([before[0], before[0], before[1]])
        if since is not None:
            clauses.append("published_at >= ?")
            params.append(since)
        if until is not None:
            clauses.append("published_at <= ?")
            params.append(until)
        sql = (
            f"SELECT * FROM media WHERE {' AND '.join(clauses)}"
            " ORDER BY published_at DESC, id DESC LIMIT ?"
        )
        return [_media(row) for row in self._all(sql, [*params, limit])]

    def all_media(self) -> list[Media]:
        return [_media(row) for row in self._all("SELECT * FROM media ORDER BY id")]


def _container(row: sqlite3.Row) -> Container:
    error = None
    if row["error_code"] is not None:
        error = ContainerError(row["error_code"], row["error_subcode"], row["error_message"])
    return Container(
        id=row["id"],
        owner_id=row["owner_id"],
        kind=row["kind"],
        is_carousel_item=bool(row["is_carousel_item"]),
        caption=row["caption"],
        source_url=row["source_url"],
        children=tuple(child for child in row["children"].split(",") if child),
        created_at=row["created_at"],
        ready_at=row["ready_at"],
        expires_at=row["expires_at"],
        error=error,
        width=row["width"],
        height=row["height"],
        duration_ms=row["duration_ms"],
        size=row["size"],
        media_id=row["media_id"],
        published_at=row["published_at"],
    )


def _media(row: sqlite3.Row) -> Media:
    return Media(
        id=row["id"],
        owner_id=row["owner_id"],
        container_id=row["container_id"],
        media_type=row["media_type"],
        product_type=row["product_type"],
        caption=row["caption"],
        shortcode=row["shortcode"],
        published_at=row["published_at"],
        via_api=bool(row["via_api"]),
        children=row["children"],
    )
