"""Accounts and OAuth state of the X simulator: users, codes, token families."""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from sandbox.common.sqlite import digest
from sandbox.engagement import Audience
from sandbox.x.db import Database


def user_id_for(username: str) -> str:
    """A stable 19-digit id derived from the (case-folded) username."""
    value = int.from_bytes(hashlib.sha256(username.lower().encode()).digest()[:8], "big")
    return str(10**18 + value % (9 * 10**18))


@dataclass(frozen=True)
class User:
    id: str
    username: str
    name: str


@dataclass(frozen=True)
class CodeGrant:
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    code_challenge: str
    challenge_method: str
    user_id: str
    expires_at: float


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str | None
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class AccessGrant:
    user: User
    scopes: tuple[str, ...]


class RefreshOutcome(Enum):
    OK = "ok"
    INVALID = "invalid"
    REUSED = "reused"


class XStore(Database):
    """Everything the simulator persists: tweets and rate windows (``Database``) plus
    users, their audiences, authorization codes and token families."""

    # -- users ---------------------------------------------------------------------------

    def get_or_create_user(self, username: str, now: float) -> User:
        with self._tx() as db:
            row = db.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO users (id, username, name, created_at) VALUES (?, ?, ?, ?)",
                    (user_id_for(username), username, f"Sandbox {username}", now),
                )
                row = db.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
        return User(row["id"], row["username"], row["name"])

    def get_user(self, user_id: str) -> User | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        return None if row is None else User(row["id"], row["username"], row["name"])

    def find_user(self, username: str) -> User | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM users WHERE username = ?", (username,)
            ).fetchone()
        return None if row is None else User(row["id"], row["username"], row["name"])

    # -- audiences -----------------------------------------------------------------------

    def get_audience(self, user_id: str) -> Audience | None:
        """The audience set for the user, or ``None`` when it keeps its default one."""
        with self._lock:
            row = self._conn.execute(
                "SELECT audience FROM audiences WHERE user_id = ?", (user_id,)
            ).fetchone()
        return None if row is None else Audience.from_json(json.loads(row["audience"]))

    def set_audience(self, user_id: str, audience: Audience | None) -> None:
        """Set the user's audience; ``None`` gives it back its default one."""
        with self._tx() as db:
            if audience is None:
                db.execute("DELETE FROM audiences WHERE user_id = ?", (user_id,))
                return
            db.execute(
                "INSERT INTO audiences (user_id, audience) VALUES (?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET audience = excluded.audience",
                (user_id, json.dumps(audience.as_json())),
            )

    # -- authorization codes -------------------------------------------------------------

    def create_code(self, grant: CodeGrant) -> str:
        code = secrets.token_urlsafe(32)
        with self._tx() as db:
            db.execute(
                "INSERT INTO codes (code_hash, client_id, redirect_uri, scopes, code_challenge,"
                " challenge_method, user_id, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    digest(code),
                    grant.client_id,
                    grant.redirect_uri,
                    " ".join(grant.scopes),
                    grant.code_challenge,
                    grant.challenge_method,
                    grant.user_id,
                    grant.expires_at,
                ),
            )
        return code

    def redeem_code(self, code: str, now: float) -> CodeGrant | None:
        """Burn ``code`` and return its grant. A second redemption revokes what the first
        one issued (RFC 6749 §4.1.2) and yields ``None``."""
        with self._tx() as db:
            row = db.execute("SELECT * FROM codes WHERE code_hash = ?", (digest(code),)).fetchone()
            if row is None:
                return None
            if row["used_at"] is not None:
                if row["family_id"] is not None:
                    self._revoke_family(db, row["family_id"], now)
                return None
            db.execute("UPDATE codes SET used_at = ? WHERE code_hash = ?", (now, digest(code)))
        return CodeGrant(
            client_id=row["client_id"],
            redirect_uri=row["redirect_uri"],
            scopes=tuple(row["scopes"].split()),
            code_challenge=row["code_challenge"],
            challenge_method=row["challenge_method"],
            user_id=row["user_id"],
            expires_at=row["expires_at"],
        )

    # -- tokens --------------------------------------------------------------------------

    def start_family(
        self, code: str, user_id: str, client_id: str, scopes: Sequence[str], now: float
    ) -> str:
        family_id = uuid.uuid4().hex
        with self._tx() as db:
            db.execute(
                "INSERT INTO families (id, user_id, client_id, scopes, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (family_id, user_id, client_id, " ".join(scopes), now),
            )
            db.execute(
                "UPDATE codes SET family_id = ? WHERE code_hash = ?", (family_id, digest(code))
            )
        return family_id

    def issue_tokens(
        self, family_id: str, now: float, access_ttl: int, refresh_ttl: int
    ) -> IssuedTokens:
        with self._tx() as db:
            return self._issue(db, family_id, now, access_ttl, refresh_ttl)

    def _issue(
        self,
        db: sqlite3.Connection,
        family_id: str,
        now: float,
        access_ttl: int,
        refresh_ttl: int,
    ) -> IssuedTokens:
        family = db.execute("SELECT * FROM families WHERE id = ?", (family_id,)).fetchone()
        scopes = tuple(family["scopes"].split())
        access = secrets.token_urlsafe(48)
        insert = (
            "INSERT INTO tokens (token_hash, kind, family_id, expires_at, created_at)"
            " VALUES (?, ?, ?, ?, ?)"
        )
        db.execute(insert, (digest(access), "access", family_id, now + access_ttl, now))
        refresh = None
        if "offline.access" in scopes:
            refresh = secrets.token_urlsafe(48)
            db.execute(insert, (digest(refresh), "refresh", family_id, now + refresh_ttl, now))
        return IssuedTokens(access, refresh, scopes)

    def rotate_refresh(
        self,
        refresh_token: str,
        client_id: str,
        now: float,
        access_ttl: int,
        refresh_ttl: int,
    ) -> tuple[RefreshOutcome, IssuedTokens | None]:
        with self._tx() as db:
            row = db.execute(
                "SELECT t.*, f.client_id, f.revoked_at AS family_revoked_at FROM tokens t"
                " JOIN families f ON f.id = t.family_id WHERE t.token_hash = ? AND kind = ?",
                (digest(refresh_token), "refresh"),
            ).fetchone()
            if row is None or row["client_id"] != client_id:
                return RefreshOutcome.INVALID, None
            if row["spent_at"] is not None:
                self._revoke_family(db, row["family_id"], now)
                return RefreshOutcome.REUSED, None
            if (
                row["revoked_at"] is not None
                or row["family_revoked_at"] is not None
                or row["expires_at"] <= now
            ):
                return RefreshOutcome.INVALID, None
            db.execute(
                "UPDATE tokens SET spent_at = ? WHERE token_hash = ?", (now, row["token_hash"])
            )
            return RefreshOutcome.OK, self._issue(
                db, row["family_id"], now, access_ttl, refresh_ttl
            )

    def authenticate(self, access_token: str, now: float) -> AccessGrant | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT f.user_id, f.scopes FROM tokens t JOIN families f ON f.id = t.family_id"
                " WHERE t.token_hash = ? AND t.kind = 'access' AND t.revoked_at IS NULL"
                " AND f.revoked_at IS NULL AND t.expires_at > ?",
                (digest(access_token), now),
            ).fetchone()
        if row is None:
            return None
        user = self.get_user(row["user_id"])
        return None if user is None else AccessGrant(user, tuple(row["scopes"].split()))

    def revoke_token(self, token: str, client_id: str, now: float) -> None:
        """Revoke an access token; revoking a refresh token ends its whole grant."""
        with self._tx() as db:
            row = db.execute(
                "SELECT t.kind, t.family_id FROM tokens t JOIN families f ON f.id = t.family_id"
                " WHERE t.token_hash = ? AND f.client_id = ?",
                (digest(token), client_id),
            ).fetchone()
            if row is None:
                return
            if row["kind"] == "refresh":
                self._revoke_family(db, row["family_id"], now)
            else:
                db.execute(
                    "UPDATE tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
                    (now, digest(token)),
                )

    def refresh_token_user(self, refresh_token: str) -> str | None:
        """The id of the user a refresh token was issued to, spent or not."""
        with self._lock:
            row = self._conn.execute(
                "SELECT f.user_id FROM tokens t JOIN families f ON f.id = t.family_id"
                " WHERE t.token_hash = ? AND t.kind = 'refresh'",
                (digest(refresh_token),),
            ).fetchone()
        return None if row is None else str(row["user_id"])

    def revoke_user_refresh_tokens(self, user_id: str, now: float) -> int:
        """Revoke the user's live refresh tokens only: access tokens keep working until they
        expire, then nothing can renew them (as when a user removes an app's offline access)."""
        with self._tx() as db:
            revoked = db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE kind = 'refresh' AND revoked_at IS NULL"
                " AND spent_at IS NULL AND family_id IN"
                " (SELECT id FROM families WHERE user_id = ? AND revoked_at IS NULL)",
                (now, user_id),
            ).rowcount
        return int(revoked)

    def revoke_user(self, user_id: str, now: float) -> int:
        with self._tx() as db:
            families = [
                r["id"]
                for r in db.execute(
                    "SELECT id FROM families WHERE user_id = ? AND revoked_at IS NULL", (user_id,)
                )
            ]
            for family_id in families:
                self._revoke_family(db, family_id, now)
        return len(families)

    @staticmethod
    def _revoke_family(db: sqlite3.Connection, family_id: str, now: float) -> None:
        db.execute(
            "UPDATE families SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (now, family_id),
        )
        db.execute(
            "UPDATE tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL",
            (now, family_id),
        )
