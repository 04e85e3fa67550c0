"""The simulator's SQLite file: schema, transactions, publishes and published videos.

Secrets (codes, tokens, upload tokens) are stored as SHA-256 digests, so the file never
holds a usable credential, yet every token survives a restart of the process.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sandbox.common.sqlite import SqliteFile, digest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    open_id TEXT PRIMARY KEY,
    union_id TEXT NOT NULL,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    display_name TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS codes (
    code_hash TEXT PRIMARY KEY,
    redirect_uri TEXT NOT NULL,
    scopes TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    challenge_method TEXT NOT NULL,
    open_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL
);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    open_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    expires_at REAL NOT NULL,
    created_at REAL NOT NULL,
    spent_at REAL,
    revoked_at REAL
);
CREATE INDEX IF NOT EXISTS tokens_user ON tokens(open_id);
CREATE TABLE IF NOT EXISTS publishes (
    publish_id TEXT PRIMARY KEY,
    open_id TEXT NOT NULL,
    media_type TEXT NOT NULL CHECK (media_type IN ('VIDEO', 'PHOTO')),
    source TEXT NOT NULL CHECK (source IN ('FILE_UPLOAD', 'PULL_FROM_URL')),
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    privacy_level TEXT NOT NULL,
    video_size INTEGER NOT NULL,
    chunk_size INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL,
    received_bytes INTEGER NOT NULL DEFAULT 0,
    urls TEXT NOT NULL,
    upload_id TEXT UNIQUE,
    upload_token_hash TEXT,
    upload_expires_at REAL,
    stage TEXT NOT NULL CHECK (stage IN ('uploading', 'downloading', 'processing', 'done')),
    outcome TEXT CHECK (outcome IN ('PUBLISH_COMPLETE', 'FAILED')),
    fail_reason TEXT,
    ready_at REAL,
    video_id INTEGER,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS publishes_user ON publishes(open_id, created_at);
CREATE TABLE IF NOT EXISTS videos (
    id INTEGER PRIMARY KEY,
    open_id TEXT NOT NULL,
    publish_id TEXT NOT NULL,
    media_type TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    privacy_level TEXT NOT NULL,
    published_at REAL NOT NULL,
    public_at REAL NOT NULL,
    duration_ms INTEGER,
    width INTEGER,
    height INTEGER,
    sha256 TEXT
);
CREATE INDEX IF NOT EXISTS videos_user ON videos(open_id, published_at);
"""


@dataclass(frozen=True)
class Publish:
    """One ``publish_id``: where its bytes are, and (once known) how it ends."""

    publish_id: str
    open_id: str
    media_type: str
    source: str
    title: str
    description: str
    privacy_level: str
    video_size: int
    chunk_size: int
    chunk_count: int
    received_bytes: int
    urls: tuple[str, ...]
    upload_id: str | None
    upload_expires_at: float | None
    stage: str
    outcome: str | None
    fail_reason: str | None
    ready_at: float | None
    video_id: int | None
    created_at: float

    def status(self, now: float) -> str:
        """The ``status`` the status endpoint reports at ``now``."""
        if self.outcome is not None and (self.ready_at is None or self.ready_at <= now):
            return self.outcome
        return "PROCESSING_UPLOAD" if self.source == "FILE_UPLOAD" else "PROCESSING_DOWNLOAD"


@dataclass(frozen=True)
class NewPublish:
    open_id: str
    media_type: str
    source: str
    title: str
    description: str
    privacy_level: str
    video_size: int = 0
    chunk_size: int = 0
    chunk_count: int = 0
    urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """How processing ends: a video (``PUBLISH_COMPLETE``) or a ``fail_reason``."""

    fail_reason: str | None
    ready_at: float
    public_at: float = 0.0
    duration_ms: int | None = None
    width: int | None = None
    height: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Video:
    id: int
    open_id: str
    publish_id: str
    media_type: str
    title: str
    description: str
    privacy_level: str
    published_at: float
    public_at: float
    duration_ms: int | None
    width: int | None
    height: int | None
    sha256: str | None


class Database(SqliteFile):
    """Thread-safe access to ``tiktok.sqlite3`` (one connection, one lock, WAL journal)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA, foreign_keys=False)

    # -- publishes -----------------------------------------------------------------------

    def create_publish(self, new: NewPublish, now: float, upload_ttl: int) -> tuple[Publish, str]:
        """Record a publish; with FILE_UPLOAD, also its upload task. The publish and the
        upload token (only its digest is kept; empty for PULL_FROM_URL)."""
        prefix = {
            ("VIDEO", "FILE_UPLOAD"): "v_pub_file~v2-1.",
            ("VIDEO", "PULL_FROM_URL"): "v_pub_url~v2.",
            ("PHOTO", "PULL_FROM_URL"): "p_pub_url~v2.",
        }[(new.media_type, new.source)]
        publish_id = prefix + str(_time_ordered_id(now))
        upload = new.source == "FILE_UPLOAD"
        upload_id = str(_time_ordered_id(now)) if upload else None
        upload_token = secrets.token_urlsafe(24) if upload else ""
        with self._tx() as db:
            db.execute(
                "INSERT INTO publishes (publish_id, open_id, media_type, source, title,"
                " description, privacy_level, video_size, chunk_size, chunk_count, urls,"
                " upload_id, upload_token_hash, upload_expires_at, stage, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    publish_id,
                    new.open_id,
                    new.media_type,
                    new.source,
                    new.title,
                    new.description,
                    new.privacy_level,
                    new.video_size,
                    new.chunk_size,
                    new.chunk_count,
                    json.dumps(list(new.urls)),
                    upload_id,
                    digest(upload_token) if upload else None,
                    now + upload_ttl if upload else None,
                    "uploading" if upload else "downloading",
                    now,
                ),
            )
        publish = self.get_publish(publish_id)
        assert publish is not None
        return publish, upload_token

    def get_publish(self, publish_id: str) -> Publish | None:
        row = self._one("SELECT * FROM publishes WHERE publish_id = ?", (publish_id,))
        return None if row is None else _publish(row)

    def find_upload(self, upload_id: str, upload_token: str) -> Publish | None:
        """The publish whose upload task this is, if the token matches."""
        row = self._one(
            "SELECT * FROM publishes WHERE upload_id = ? AND upload_token_hash = ?",
            (upload_id, digest(upload_token)),
        )
        return None if row is None else _publish(row)

    def advance_received(self, publish_id: str, expected: int, received: int) -> bool:
        """Move ``received_bytes`` from ``expected`` to ``received``; False if another
        request moved it first."""
        with self._tx() as db:
            changed = db.execute(
                "UPDATE publishes SET received_bytes = ?"
                " WHERE publish_id = ? AND received_bytes = ? AND stage IN ('uploading',"
                " 'downloading')",
                (received, publish_id, expected),
            ).rowcount
        return bool(changed)

    def set_stage(self, publish_id: str, stage: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE publishes SET stage = ? WHERE publish_id = ?", (stage, publish_id))

    def finish(self, publish_id: str, outcome: Outcome) -> Publish:
        """Settle a publish: FAILED with a reason, or PUBLISH_COMPLETE with its new video
        (published at ``ready_at``, public at ``public_at``). A settled one stays settled."""
        with self._tx() as db:
            row = db.execute(
                "SELECT * FROM publishes WHERE publish_id = ?", (publish_id,)
            ).fetchone()
            if row["outcome"] is None:
                video_id = None
                if outcome.fail_reason is None:
                    video_id = _unused_video_id(db, outcome.ready_at)
                    db.execute(
                        "INSERT INTO videos (id, open_id, publish_id, media_type, title,"
                        " description, privacy_level, published_at, public_at, duration_ms,"
                        " width, height, sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            video_id,
                            row["open_id"],
                            publish_id,
                            row["media_type"],
                            row["title"],
                            row["description"],
                            row["privacy_level"],
                            outcome.ready_at,
                            outcome.public_at,
                            outcome.duration_ms,
                            outcome.width,
                            outcome.height,
                            outcome.sha256,
                        ),
                    )
                db.execute(
                    "UPDATE publishes SET stage = 'done', outcome = ?, fail_reason = ?,"
                    " ready_at = ?, video_id = ? WHERE publish_id = ?",
                    (
                        "FAILED" if outcome.fail_reason else "PUBLISH_COMPLETE",
                        outcome.fail_reason,
                        outcome.ready_at,
                        video_id,
                        publish_id,
                    ),
                )
        publish = self.get_publish(publish_id)
        assert publish is not None
        return publish

    def posts_since(self, open_id: str, since: float, now: float) -> int:
        """Publishes of the user since ``since`` that count against the daily cap: every one
        not failed, except uploads abandoned before their last byte."""
        row = self._one(
            "SELECT COUNT(*) AS n FROM publishes WHERE open_id = ? AND created_at >= ?"
            " AND (outcome IS NULL OR outcome = 'PUBLISH_COMPLETE')"
            " AND NOT (stage = 'uploading' AND upload_expires_at <= ?)",
            (open_id, since, now),
        )
        return int(row["n"]) if row else 0

    def all_publishes(self) -> list[Publish]:
        return [_publish(row) for row in self._all("SELECT * FROM publishes ORDER BY created_at")]

    # -- videos --------------------------------------------------------------------------

    def user_videos(self, open_id: str, now: float, before: float, limit: int) -> list[Video]:
        """The user's videos visible at ``now`` (published and past moderation) published
        before ``before``, newest first."""
        rows = self._all(
            "SELECT * FROM videos WHERE open_id = ? AND published_at <= ? AND public_at <= ?"
            " AND published_at < ? ORDER BY published_at DESC, id DESC LIMIT ?",
            (open_id, now, now, before, limit),
        )
        return [_video(row) for row in rows]

    def video_count(self, open_id: str, now: float) -> int:
        row = self._one(
            "SELECT COUNT(*) AS n FROM videos WHERE open_id = ? AND public_at <= ?", (open_id, now)
        )
        return int(row["n"]) if row else 0

    def get_video(self, video_id: int) -> Video | None:
        row = self._one("SELECT * FROM videos WHERE id = ?", (video_id,))
        return None if row is None else _video(row)

    def all_videos(self, now: float) -> list[Video]:
        rows = self._all(
            "SELECT * FROM videos WHERE published_at <= ? ORDER BY published_at, id", (now,)
        )
        return [_video(row) for row in rows]


def _time_ordered_id(now: float) -> int:
    """A 64-bit id like TikTok's: seconds in the top 32 bits, random below (> 2**53)."""
    return (int(now) << 32) | secrets.randbits(32)


def _unused_video_id(db: sqlite3.Connection, now: float) -> int:
    while True:
        candidate = _time_ordered_id(now)
        if db.execute("SELECT 1 FROM videos WHERE id = ?", (candidate,)).fetchone() is None:
            return candidate


def _publish(row: sqlite3.Row) -> Publish:
    return Publish(
        publish_id=row["publish_id"],
        open_id=row["open_id"],
        media_type=row["media_type"],
        source=row["source"],
        title=row["title"],
        description=row["description"],
        privacy_level=row["privacy_level"],
        video_size=row["video_size"],
        chunk_size=row["chunk_size"],
        chunk_count=row["chunk_count"],
        received_bytes=row["received_bytes"],
        urls=tuple(json.loads(row["urls"])),
        upload_id=row["upload_id"],
        upload_expires_at=row["upload_expires_at"],
        stage=row["stage"],
        outcome=row["outcome"],
        fail_reason=row["fail_reason"],
        ready_at=row["ready_at"],
        video_id=row["video_id"],
        created_at=row["created_at"],
    )


def _video(row: sqlite3.Row) -> Video:
    return Video(
        id=row["id"],
        open_id=row["open_id"],
        publish_id=row["publish_id"],
        media_type=row["media_type"],
        title=row["title"],
        description=row["description"],
        privacy_level=row["privacy_level"],
        published_at=row["published_at"],
        public_at=row["public_at"],
        duration_ms=row["duration_ms"],
        width=row["width"],
        height=row["height"],
        sha256=row["sha256"],
    )
