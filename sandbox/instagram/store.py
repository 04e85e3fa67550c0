"""Accounts and OAuth state of the Instagram simulator: Instagram accounts, Facebook users
and their Pages, authorization codes and tokens.

Instagram accounts are one store for both login paths: the account a Page links to is the
same account that can log in with Instagram Login.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sandbox.common.sqlite import digest
from sandbox.engagement import Audience
from sandbox.instagram.db import Database

ACCOUNT_TYPES = ("BUSINESS", "MEDIA_CREATOR", "PERSONAL")
PROFESSIONAL = ("BUSINESS", "MEDIA_CREATOR")
#: Token prefixes as Meta's look: Instagram User tokens start with IG, Facebook ones with EAA.
TOKEN_PREFIX = {"instagram": "IGAA", "facebook": "EAAG"}


def _number(salt: str, prefix: str, digits: int) -> str:
    value = int.from_bytes(hashlib.sha256(salt.lower().encode()).digest()[:8], "big")
    return prefix + str(value % 10**digits).zfill(digits)


def account_id_for(username: str) -> str:
    """A stable Instagram professional account id (``17841…``, 17 digits)."""
    return _number(f"ig/{username}", "17841", 12)


@dataclass(frozen=True)
class Account:
    id: str
    #: The app-scoped id Instagram Login reports as ``id`` (``user_id`` is ``Account.id``).
    scoped_id: str
    username: str
    name: str
    account_type: str
    quota_total: int | None
    audience: Audience | None

    @property
    def professional(self) -> bool:
        return self.account_type in PROFESSIONAL


@dataclass(frozen=True)
class FacebookUser:
    id: str
    username: str
    name: str


@dataclass(frozen=True)
class Page:
    id: str
    name: str
    ig_account_id: str | None


@dataclass(frozen=True)
class CodeGrant:
    login: str
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    subject_id: str
    expires_at: float


class CodeOutcome(Enum):
    OK = "ok"
    UNKNOWN = "unknown"
    USED = "used"


@dataclass(frozen=True)
class TokenGrant:
    login: str
    lifetime: str
    subject_id: str
    scopes: tuple[str, ...]
    created_at: float
    expires_at: float
    revoked_at: float | None


class InstagramStore(Database):
    # -- Instagram accounts --------------------------------------------------------------

    def get_or_create_account(self, username: str, now: float) -> Account:
        with self._tx() as db:
            row = db.execute("SELECT * FROM ig_accounts WHERE username = ?", (username,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO ig_accounts (id, scoped_id, username, name, account_type,"
                    " created_at) VALUES (?, ?, ?, ?, 'BUSINESS', ?)",
                    (
                        account_id_for(username),
                        _number(f"scoped/{username}", "2", 15),
                        username,
                        f"Sandbox {username}",
                        now,
                    ),
                )
                row = db.execute(
                    "SELECT * FROM ig_accounts WHERE username = ?", (username,)
                ).fetchone()
        return _account(row)

    def get_account(self, account_id: str) -> Account | None:
        rows = self._all("SELECT * FROM ig_accounts WHERE id = ?", (account_id,))
        return _account(rows[0]) if rows else None

    def find_account(self, username: str) -> Account | None:
        rows = self._all("SELECT * FROM ig_accounts WHERE username = ?", (username,))
        return _account(rows[0]) if rows else None

    def update_account(self, account_id: str, changes: dict[str, Any]) -> Account:
        """Set ``account_type``, ``name``, ``quota_total`` or ``audience`` (an Audience)."""
        columns = {"account_type", "name", "quota_total", "audience"}
        assert set(changes) <= columns
        values = {
            key: json.dumps(value.as_json()) if isinstance(value, Audience) else value
            for key, value in changes.items()
        }
        with self._tx() as db:
            for column, value in values.items():
                db.execute(f"UPDATE ig_accounts SET {column} = ? WHERE id = ?", (value, account_id))
            row = db.execute("SELECT * FROM ig_accounts WHERE id = ?", (account_id,)).fetchone()
        return _account(row)

    def all_accounts(self) -> list[Account]:
        return [_account(row) for row in self._all("SELECT * FROM ig_accounts ORDER BY id")]

    # -- Facebook users and Pages --------------------------------------------------------

    def get_or_create_fb_user(self, username: str, now: float) -> FacebookUser:
        """The Facebook user ``username``; a new one manages three Pages, two of them linked
        to Instagram professional accounts (``<username>_studio``, ``<username>_shop``)."""
        user = self.find_fb_user(username)
        if user is not None:
            return user
        with self._tx() as db:
            user_id = _number(f"fb/{username}", "10", 13)
            db.execute(
                "INSERT OR IGNORE INTO fb_users (id, username, name, created_at)"
                " VALUES (?, ?, ?, ?)",
                (user_id, username, f"Sandbox {username}", now),
            )
        self.replace_pages(
            user_id,
            [
                (f"{username} Studio", f"{username}_studio"),
                (f"{username} Shop", f"{username}_shop"),
                (f"{username} Blog", None),
            ],
            now,
        )
        found = self.find_fb_user(username)
        assert found is not None
        return found

    def find_fb_user(self, username: str) -> FacebookUser | None:
        rows = self._all("SELECT * FROM fb_users WHERE username = ?", (username,))
        return FacebookUser(rows[0]["id"], rows[0]["username"], rows[0]["name"]) if rows else None

    def get_fb_user(self, user_id: str) -> FacebookUser | None:
        rows = self._all("SELECT * FROM fb_users WHERE id = ?", (user_id,))
        return FacebookUser(rows[0]["id"], rows[0]["username"], rows[0]["name"]) if rows else None

    def pages(self, user_id: str) -> list[Page]:
        rows = self._all("SELECT * FROM fb_pages WHERE user_id = ? ORDER BY position", (user_id,))
        return [Page(row["id"], row["name"], row["ig_account_id"]) for row in rows]

    def get_page(self, page_id: str) -> tuple[str, Page] | None:
        """A Page and the id of the Facebook user who manages it."""
        rows = self._all("SELECT * FROM fb_pages WHERE id = ?", (page_id,))
        if not rows:
            return None
        row = rows[0]
        return row["user_id"], Page(row["id"], row["name"], row["ig_account_id"])

    def replace_pages(
        self, user_id: str, pages: Sequence[tuple[str, str | None]], now: float
    ) -> list[Page]:
        """Replace the user's Pages; each names the Instagram account it links to, if any
        (created as a professional account when new)."""
        linked = [
            self.get_or_create_account(ig_username, now).id if ig_username else None
            for _name, ig_username in pages
        ]
        with self._tx() as db:
            db.execute("DELETE FROM fb_pages WHERE user_id = ?", (user_id,))
            for position, ((name, _ig), ig_id) in enumerate(zip(pages, linked, strict=True)):
                db.execute(
                    "INSERT INTO fb_pages (id, user_id, position, name, ig_account_id)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (
                        _number(f"page/{user_id}/{position}/{name}", "1", 14),
                        user_id,
                        position,
                        name,
                        ig_id,
                    ),
                )
        return self.pages(user_id)

    # -- authorization codes -------------------------------------------------------------

    def create_code(self, grant: CodeGrant) -> str:
        code = secrets.token_urlsafe(48)
        with self._tx() as db:
            db.execute(
                "INSERT INTO codes (code_hash, login, client_id, redirect_uri, scopes,"
                " subject_id, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    digest(code),
                    grant.login,
                    grant.client_id,
                    grant.redirect_uri,
                    ",".join(grant.scopes),
                    grant.subject_id,
                    grant.expires_at,
                ),
            )
        return code

    def redeem_code(
        self, code: str, login: str, now: float
    ) -> tuple[CodeOutcome, CodeGrant | None]:
        """Burn ``code``; a code is good for one exchange only."""
        with self._tx() as db:
            row = db.execute(
                "SELECT * FROM codes WHERE code_hash = ? AND login = ?", (digest(code), login)
            ).fetchone()
            if row is None:
                return CodeOutcome.UNKNOWN, None
            if row["used_at"] is not None:
                return CodeOutcome.USED, None
            db.execute("UPDATE codes SET used_at = ? WHERE code_hash = ?", (now, digest(code)))
        return CodeOutcome.OK, CodeGrant(
            login=row["login"],
            client_id=row["client_id"],
            redirect_uri=row["redirect_uri"],
            scopes=tuple(scope for scope in row["scopes"].split(",") if scope),
            subject_id=row["subject_id"],
            expires_at=row["expires_at"],
        )

    # -- tokens --------------------------------------------------------------------------

    def issue_token(
        self,
        login: str,
        lifetime: str,
        subject_id: str,
        scopes: Sequence[str],
        now: float,
        ttl: float,
    ) -> str:
        token = TOKEN_PREFIX[login] + secrets.token_urlsafe(60).replace("-", "").replace("_", "")
        with self._tx() as db:
            db.execute(
                "INSERT INTO tokens (token_hash, login, lifetime, subject_id, scopes,"
                " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (digest(token), login, lifetime, subject_id, ",".join(scopes), now, now + ttl),
            )
        return token

    def token(self, token: str) -> TokenGrant | None:
        rows = self._all("SELECT * FROM tokens WHERE token_hash = ?", (digest(token),))
        if not rows:
            return None
        row = rows[0]
        return TokenGrant(
            login=row["login"],
            lifetime=row["lifetime"],
            subject_id=row["subject_id"],
            scopes=tuple(scope for scope in row["scopes"].split(",") if scope),
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            revoked_at=row["revoked_at"],
        )

    def revoke_subject(self, login: str, subject_id: str, now: float) -> int:
        """Revoke every live token of one account (the user removed the app)."""
        with self._tx() as db:
            revoked = db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE login = ? AND subject_id = ?"
                " AND revoked_at IS NULL",
                (now, login, subject_id),
            ).rowcount
        return int(revoked)


def _account(row: Any) -> Account:
    audience = None
    if row["audience"]:
        audience = Audience.from_json(json.loads(row["audience"]))
    return Account(
        id=row["id"],
        scoped_id=row["scoped_id"],
        username=row["username"],
        name=row["name"],
        account_type=row["account_type"],
        quota_total=row["quota_total"],
        audience=audience,
    )
