"""The simulator's SQLite file: schema, transactions, tweets and rate-limit windows.

Secrets (codes, tokens) are stored as SHA-256 digests, so the file never holds a
usable credential, yet every token survives a restart of the process.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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
CREATE TABLE IF NOT EXISTS rate_windows (
    user_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    window_start REAL NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (user_id, endpoint)
);
"""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Tweet:
    id: str
    author_id: str
    text: str
    in_reply_to: str | None
    conversation_id: str
    created_at: float


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset: int


class Database:
    """Thread-safe access to ``x.sqlite3`` (one connection, one lock, WAL journal)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

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

    def insert_tweet(self, author_id: str, text: str, in_reply_to: str | None, now: float) -> Tweet:
        with self._tx() as db:
            snowflake = (int(now * 1000) - TWITTER_EPOCH_MS) << 22
            last = db.execute("SELECT MAX(id) AS m FROM tweets").fetchone()["m"]
            tweet_id = max(snowflake, (last or 0) + 1)
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
        return Tweet(str(tweet_id), author_id, text, in_reply_to, conversation, now)

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


def _tweet(row: sqlite3.Row) -> Tweet:
    return Tweet(
        id=str(row["id"]),
        author_id=row["author_id"],
        text=row["text"],
        in_reply_to=row["in_reply_to"],
        conversation_id=row["conversation_id"],
        created_at=row["created_at"],
    )
