"""Accounts and OAuth state of the TikTok simulator: users, codes, rotating tokens."""

from __future__ import annotations

import base64
import hashlib
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.common.sqlite import digest
from sandbox.tiktok.db import Database


def _opaque_id(kind: str, *parts: str) -> str:
    raw = hashlib.sha256("/".join((kind, *parts)).encode()).digest()
    return "-000" + base64.urlsafe_b64encode(raw).decode().rstrip("=")[:32]


@dataclass(frozen=True)
class User:
    open_id: str
    union_id: str
    username: str
    display_name: str


@dataclass(frozen=True)
class CodeGrant:
    redirect_uri: str
    scopes: tuple[str, ...]
    code_challenge: str
    challenge_method: str
    open_id: str
    expires_at: float


@dataclass(frozen=True)
class IssuedTokens:
    open_id: str
    access_token: str
    refresh_token: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class AccessGrant:
    user: User
    scopes: tuple[str, ...]
    token_digest: str
    """Rate limits are counted per token."""


class TikTokStore(Database):
    """Everything the simulator persists: publishes and videos (``Database``) plus users,
    authorization codes and tokens."""

    # -- users ---------------------------------------------------------------------------

    def get_or_create_user(self, username: str, client_key: str, now: float) -> User:
        """The user named ``username``; its open_id is stable for this client key."""
        with self._tx() as db:
            row = db.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO users (open_id, union_id, username, display_name, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (
                        _opaque_id("open_id", client_key, username.lower()),
                        _opaque_id("union_id", username.lower()),
                        username,
                        f"Sandbox {username}",
                        now,
                    ),
                )
                row = db.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
        return _user(row)

    def get_user(self, open_id: str) -> User | None:
        row = self._one("SELECT * FROM users WHERE open_id = ?", (open_id,))
        return None if row is None else _user(row)

    def find_user(self, username: str) -> User | None:
        row = self._one("SELECT * FROM users WHERE username = ?", (username,))
        return None if row is None else _user(row)

    # -- authorization codes -------------------------------------------------------------

    def create_code(self, grant: CodeGrant) -> str:
        code = secrets.token_urlsafe(32)
        with self._tx() as db:
            db.execute(
                "INSERT INTO codes (code_hash, redirect_uri, scopes, code_challenge,"
                " challenge_method, open_id, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    digest(code),
                    grant.redirect_uri,
                    ",".join(grant.scopes),
                    grant.code_challenge,
                    grant.challenge_method,
                    grant.open_id,
                    grant.expires_at,
                ),
            )
        return code

    def redeem_code(self, code: str, now: float) -> CodeGrant | None:
        """Burn ``code`` and return its grant; ``None`` if unknown or already used."""
        with self._tx() as db:
            row = db.execute("SELECT * FROM codes WHERE code_hash = ?", (digest(code),)).fetchone()
            if row is None or row["used_at"] is not None:
                return None
            db.execute("UPDATE codes SET used_at = ? WHERE code_hash = ?", (now, digest(code)))
        return CodeGrant(
            redirect_uri=row["redirect_uri"],
            scopes=tuple(scope for scope in row["scopes"].split(",") if scope),
            code_challenge=row["code_challenge"],
            challenge_method=row["challenge_method"],
            open_id=row["open_id"],
            expires_at=row["expires_at"],
        )

    # -- tokens --------------------------------------------------------------------------

    def issue_tokens(
        self, open_id: str, scopes: Sequence[str], now: float, access_ttl: int, refresh_ttl: int
    ) -> IssuedTokens:
        with self._tx() as db:
            return _issue(db, open_id, tuple(scopes), now, access_ttl, refresh_ttl)

    def rotate_refresh(
        self, refresh_token: str, now: float, access_ttl: int, refresh_ttl: int
    ) -> IssuedTokens | None:
        """New tokens for a live refresh token, which stops working; ``None`` if it is
        unknown, spent, revoked or expired."""
        with self._tx() as db:
            row = db.execute(
                "SELECT * FROM tokens WHERE token_hash = ? AND kind = 'refresh'",
                (digest(refresh_token),),
            ).fetchone()
            if (
                row is None
                or row["spent_at"] is not None
                or row["revoked_at"] is not None
                or row["expires_at"] <= now
            ):
                return None
            db.execute(
                "UPDATE tokens SET spent_at = ? WHERE token_hash = ?", (now, row["token_hash"])
            )
            scopes = tuple(scope for scope in row["scopes"].split(",") if scope)
            return _issue(db, row["open_id"], scopes, now, access_ttl, refresh_ttl)

    def refresh_token_user(self, refresh_token: str) -> str | None:
        """The open_id a refresh token was issued to, spent or not."""
        row = self._one(
            "SELECT open_id FROM tokens WHERE token_hash = ? AND kind = 'refresh'",
            (digest(refresh_token),),
        )
        return None if row is None else str(row["open_id"])

    def authenticate(self, access_token: str, now: float) -> AccessGrant | None:
        token_digest = digest(access_token)
        row = self._one(
            "SELECT open_id, scopes FROM tokens WHERE token_hash = ? AND kind = 'access'"
            " AND revoked_at IS NULL AND expires_at > ?",
            (token_digest, now),
        )
        if row is None:
            return None
        user = self.get_user(row["open_id"])
        scopes = tuple(scope for scope in row["scopes"].split(",") if scope)
        return None if user is None else AccessGrant(user, scopes, token_digest)

    def revoke_token(self, token: str, now: float) -> bool:
        """TikTok's revoke ends the app's whole authorization by the token's user."""
        row = self._one("SELECT open_id FROM tokens WHERE token_hash = ?", (digest(token),))
        if row is None:
            return False
        self.revoke_user(row["open_id"], now)
        return True

    def revoke_user(self, open_id: str, now: float, *, refresh_only: bool = False) -> int:
        """Revoke the user's live tokens (only its refresh tokens with ``refresh_only``:
        access tokens then work until they expire and nothing renews them)."""
        kinds = ("refresh",) if refresh_only else ("access", "refresh")
        with self._tx() as db:
            revoked = db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE open_id = ? AND revoked_at IS NULL"
                " AND spent_at IS NULL AND kind IN (" + ",".join("?" * len(kinds)) + ")",
                (now, open_id, *kinds),
            ).rowcount
        return int(revoked)


def _issue(
    db: sqlite3.Connection,
    open_id: str,
    scopes: tuple[str, ...],
    now: float,
    access_ttl: int,
    refresh_ttl: int,
) -> IssuedTokens:
    access = "act." + secrets.token_urlsafe(40)
    refresh = "rft." + secrets.token_urlsafe(40)
    insert = (
        "INSERT INTO tokens (token_hash, kind, open_id, scopes, expires_at, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)"
    )
    db.execute(insert, (digest(access), "access", open_id, ",".join(scopes), now + access_ttl, now))
    db.execute(
        insert, (digest(refresh), "refresh", open_id, ",".join(scopes), now + refresh_ttl, now)
    )
    return IssuedTokens(open_id, access, refresh, scopes)


def _user(row: sqlite3.Row) -> User:
    return User(row["open_id"], row["union_id"], row["username"], row["display_name"])
