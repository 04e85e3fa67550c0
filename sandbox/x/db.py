"""The simulator's SQLite file: schema, transactions, tweets, media and rate-limit windows.

Secrets (codes, tokens) are stored as SHA-256 digests, so the file never holds a
usable credential, yet every token survives a restart of the process.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox.common.sqlite import SqliteFile
from sandbox.x.config import WINDOW_SECONDS

TWITTER_EPOCH_MS = 1288834974657

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS codes (
    code_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scopes TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    challenge_method TEXT NOT NULL,
    user_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL,
    family_id TEXT
);
CREATE TABLE IF NOT EXISTS families (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    family_id TEXT NOT NULL REFERENCES families(id),
    expires_at REAL NOT NULL,
    created_at REAL NOT NULL,
    spent_at REAL,
    revoked_at REAL
);
CREATE INDEX IF NOT EXISTS tokens_family ON tokens(family_id);
CREATE TABLE IF NOT EXISTS tweets (
    id INTEGER PRIMARY KEY,
    author_id TEXT NOT NULL,
    text TEXT NOT NULL,
    in_reply_to TEXT,
    conversation_id TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tweets_author ON tweets(author_id, id);
CREATE TABLE IF NOT EXISTS media (
    id INTEGER PRIMARY KEY,
    owner_id TEXT NOT NULL,
    media_type TEXT NOT NULL,
    media_category TEXT NOT NULL,
    total_bytes INTEGER NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('uploading', 'succeeded', 'failed')),
    finalized_at REAL,
    ready_at REAL,
    sha256 TEXT,
    width INTEGER,
    height INTEGER,
    duration_ms INTEGER,
    error TEXT
);
CREATE TABLE IF NOT EXISTS media_segments (
    media_id INTEGER NOT NULL REFERENCES media(id),
    segment_index INTEGER NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (media_id, segment_index)
);
CREATE TABLE IF NOT EXISTS tweet_media (
    tweet_id INTEGER NOT NULL REFERENCES tweets(id),
    position INTEGER NOT NULL,
    media_id INTEGER NOT NULL REFERENCES media(id),
    PRIMARY KEY (tweet_id, position)
);
CREATE TABLE IF NOT EXISTS audiences (
    user_id TEXT PRIMARY KEY,
    audience TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rate_windows (
    user_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    window_start REAL NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (user_id, endpoint)
);
"""


@dataclass(frozen=True)
class Tweet:
    id: str
    author_id: str
    text: str
    in_reply_to: str | None
    conversation_id: str
    created_at: float


#: media_category → (media_key prefix, kind of attachment).
MEDIA_KINDS = {
    "tweet_image": ("3", "photo"),
    "tweet_gif": ("16", "animated_gif"),
    "tweet_video": ("13", "video"),
}


@dataclass(frozen=True)
class Media:
    """One upload. ``state`` is the outcome; until ``ready_at`` X still shows it processing."""

    id: str
    owner_id: str
    media_type: str
    category: str
    total_bytes: int
    created_at: float
    expires_at: float
    state: str
    finalized_at: float | None
    ready_at: float | None
    sha256: str | None
    width: int | None
    height: int | None
    duration_ms: int | None
    error: str | None

    @property
    def key(self) -> str:
        return f"{MEDIA_KINDS[self.category][0]}_{self.id}"

    @property
    def kind(self) -> str:
        return MEDIA_KINDS[self.category][1]

    @property
    def is_async(self) -> bool:
        """Videos and animated GIFs are processed after finalize; photos are not."""
        return self.kind != "photo"

    def is_ready(self, now: float) -> bool:
        return (
            self.state == "succeeded"
            and self.ready_at is not None
            and self.ready_at <= now < self.expires_at
        )


@dataclass(frozen=True)
class MediaOutcome:
    """What finalize decided about an upload."""

    state: str
    #: When processing ends; ``None`` when the upload was refused outright at finalize.
    ready_at: float | None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset: int


class Database(SqliteFile):
    """Thread-safe access to ``x.sqlite3`` (one connection, one lock, WAL journal)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    # -- rate limits ---------------------------------------------------------------------

    def hit_rate_limit(self, user_id: str, endpoint: str, limit: int, now: float) -> RateDecision:
        """Count one request in the user's 15-minute window for ``endpoint``."""
        with self._tx() as db:
            row = db.execute(
                "SELECT window_start, used FROM rate_windows WHERE user_id = ? AND endpoint = ?",
                (user_id, endpoint),
            ).fetchone()
            if row is None or row["window_start"] + WINDOW_SECONDS <= now:
                start, used = now, 0
            else:
                start, used = row["window_start"], row["used"]
            reset = int(start + WINDOW_SECONDS)
            if used >= limit:
                return RateDecision(False, limit, 0, reset)
            used += 1
            db.execute(
                "INSERT INTO rate_windows (user_id, endpoint, window_start, used)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (user_id, endpoint)"
                " DO UPDATE SET window_start = excluded.window_start, used = excluded.used",
                (user_id, endpoint, start, used),
            )
        return RateDecision(True, limit, limit - used, reset)

    # -- tweets --------------------------------------------------------------------------

    def insert_tweet(
        self,
        author_id: str,
        text: str,
        in_reply_to: str | None,
        now: float,
        media_ids: Sequence[str] = (),
    ) -> Tweet:
        with self._tx() as db:
            tweet_id = _snowflake(db, "tweets", now)
            conversation = str(tweet_id)
            if in_reply_to is not None:
                parent = db.execute(
                    "SELECT conversation_id FROM tweets WHERE id = ?", (int(in_reply_to),)
                ).fetchone()
                conversation = parent["conversation_id"] if parent else in_reply_to
            db.execute(
                "INSERT INTO tweets (id, author_id, text, in_reply_to, conversation_id,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (tweet_id, author_id, text, in_reply_to, conversation, now),
            )
            db.executemany(
                "INSERT INTO tweet_media (tweet_id, position, media_id) VALUES (?, ?, ?)",
                [
                    (tweet_id, position, int(media_id))
                    for position, media_id in enumerate(media_ids)
                ],
            )
        return Tweet(str(tweet_id), author_id, text, in_reply_to, conversation, now)

    def seed_tweets(self, author_id: str, posts: Sequence[tuple[str, float]]) -> list[Tweet]:
        """Store ``(text, created_at)`` posts as they are, in one transaction: history
        written at past times. Each id encodes its own ``created_at``, so ids keep
        following time however the posts are interleaved with others."""
        seeded = []
        with self._tx() as db:
            for text, created_at in posts:
                tweet_id = _snowflake_at(db, created_at)
                db.execute(
                    "INSERT INTO tweets (id, author_id, text, in_reply_to, conversation_id,"
                    " created_at) VALUES (?, ?, ?, NULL, ?, ?)",
                    (tweet_id, author_id, text, str(tweet_id), created_at),
                )
                seeded.append(
                    Tweet(str(tweet_id), author_id, text, None, str(tweet_id), created_at)
                )
        return seeded

    def get_tweet(self, tweet_id: str) -> Tweet | None:
        if not tweet_id.isdigit() or len(tweet_id) > 19:
            return None
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM tweets WHERE id = ?", (int(tweet_id),)
            ).fetchone()
        return None if row is None else _tweet(row)

    def has_duplicate(self, author_id: str, text: str, since: float) -> bool:
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM tweets WHERE author_id = ? AND text = ? AND created_at > ?",
                (author_id, text, since),
            ).fetchone()
        return row is not None

    def timeline(
        self,
        author_id: str,
        *,
        limit: int,
        start_time: float | None = None,
        end_time: float | None = None,
        since_id: int | None = None,
        until_id: int | None = None,
        exclude_replies: bool = False,
    ) -> list[Tweet]:
        """Newest first."""
        clauses = ["author_id = ?"]
        params: list[object] = [author_id]
        for clause, value in (
            ("created_at >= ?", start_time),
            ("created_at <= ?", end_time),
            ("id > ?", since_id),
            ("id < ?", until_id),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        if exclude_replies:
            clauses.append("in_reply_to IS NULL")
        params.append(limit)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT * FROM tweets WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?",
                params,
            ).fetchall()
        return [_tweet(row) for row in rows]

    def all_tweets(self) -> list[Tweet]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM tweets ORDER BY id").fetchall()
        return [_tweet(row) for row in rows]

    def duplicate_groups(self) -> int:
        """How many (author, text) pairs were posted more than once."""
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(*) AS n FROM (SELECT 1 FROM tweets GROUP BY author_id, text"
                " HAVING COUNT(*) > 1)"
            ).fetchone()
        return int(row["n"])

    # -- media ---------------------------------------------------------------------------

    def create_media(
        self, owner_id: str, media_type: str, category: str, total_bytes: int, now: float, ttl: int
    ) -> Media:
        with self._tx() as db:
            media_id = _snowflake(db, "media", now)
            db.execute(
                "INSERT INTO media (id, owner_id, media_type, media_category, total_bytes,"
                " created_at, expires_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, 'uploading')",
                (media_id, owner_id, media_type, category, total_bytes, now, now + ttl),
            )
            row = db.execute("SELECT * FROM media WHERE id = ?", (media_id,)).fetchone()
        return _media(row)

    def get_media(self, media_id: str) -> Media | None:
        if not media_id.isdigit() or len(media_id) > 19:
            return None
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM media WHERE id = ?", (int(media_id),)
            ).fetchone()
        return None if row is None else _media(row)

    def record_segment(self, media_id: str, index: int, size: int) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO media_segments (media_id, segment_index, size) VALUES (?, ?, ?)"
                " ON CONFLICT (media_id, segment_index) DO UPDATE SET size = excluded.size",
                (int(media_id), index, size),
            )

    def segments(self, media_id: str) -> list[tuple[int, int]]:
        """``(segment_index, size)`` of every appended segment, in index order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT segment_index, size FROM media_segments WHERE media_id = ?"
                " ORDER BY segment_index",
                (int(media_id),),
            ).fetchall()
        return [(row["segment_index"], row["size"]) for row in rows]

    def finish_media(self, media_id: str, outcome: MediaOutcome, now: float) -> Media:
        """Record what finalize decided; only an upload still in progress can finish."""
        with self._tx() as db:
            db.execute(
                "UPDATE media SET state = ?, finalized_at = ?, ready_at = ?, sha256 = ?,"
                " width = ?, height = ?, duration_ms = ?, error = ?"
                " WHERE id = ? AND state = 'uploading'",
                (
                    outcome.state,
                    now,
                    outcome.ready_at,
                    outcome.sha256,
                    outcome.width,
                    outcome.height,
                    outcome.duration_ms,
                    outcome.error,
                    int(media_id),
                ),
            )
            row = db.execute("SELECT * FROM media WHERE id = ?", (int(media_id),)).fetchone()
        return _media(row)

    def all_media(self) -> list[Media]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM media ORDER BY id").fetchall()
        return [_media(row) for row in rows]

    def tweet_media(self, tweet_ids: Sequence[str]) -> dict[str, list[Media]]:
        """The media attached to each of ``tweet_ids`` (only tweets that have some)."""
        attached: dict[str, list[Media]] = {}
        ids = [int(tweet_id) for tweet_id in tweet_ids]
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            with self._lock:
                rows = self._conn.execute(
                    "SELECT tm.tweet_id AS tweet_id, m.* FROM tweet_media tm"
                    " JOIN media m ON m.id = tm.media_id"
                    f" WHERE tm.tweet_id IN ({', '.join('?' * len(batch))})"
                    " ORDER BY tm.tweet_id, tm.position",
                    batch,
                ).fetchall()
            for row in rows:
                attached.setdefault(str(row["tweet_id"]), []).append(_media(row))
        return attached


def _snowflake(db: sqlite3.Connection, table: str, now: float) -> int:
    """A time-ordered 64-bit id like X's, unique within ``table``."""
    snowflake = (int(now * 1000) - TWITTER_EPOCH_MS) << 22
    last = db.execute(f"SELECT MAX(id) AS m FROM {table}").fetchone()["m"]
    return max(snowflake, (last or 0) + 1)


def _snowflake_at(db: sqlite3.Connection, created_at: float) -> int:
    """A tweet id for a post made at ``created_at``, possibly in the past: the first free
    one of that millisecond (a snowflake's low 22 bits are a sequence within it)."""
    first = (int(created_at * 1000) - TWITTER_EPOCH_MS) << 22
    taken = db.execute(
        "SELECT MAX(id) AS m FROM tweets WHERE id >= ? AND id < ?", (first, first + (1 << 22))
    ).fetchone()["m"]
    return first if taken is None else int(taken) + 1


def _media(row: sqlite3.Row) -> Media:
    return Media(
        id=str(row["id"]),
        owner_id=row["owner_id"],
        media_type=row["media_type"],
        category=row["media_category"],
        total_bytes=row["total_bytes"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        state=row["state"],
        finalized_at=row["finalized_at"],
        ready_at=row["ready_at"],
        sha256=row["sha256"],
        width=row["width"],
        height=row["height"],
        duration_ms=row["duration_ms"],
        error=row["error"],
    )


def _tweet(row: sqlite3.Row) -> Tweet:
    return Tweet(
        id=str(row["id"]),
        author_id=row["author_id"],
        text=row["text"],
        in_reply_to=row["in_reply_to"],
        conversation_id=row["conversation_id"],
        created_at=row["created_at"],
    )
