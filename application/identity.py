"""Users, organizations, browser sessions and personal API tokens.

Identity is relational, not event-sourced, but every security-relevant change is written to
an append-only audit trail in the same transaction (the store's job). API tokens are
``ttp_`` + 48 lowercase hex, shown once, and stored only as HMAC-SHA256(pepper, token).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol
from uuid import UUID, uuid4

from application.errors import AuthenticationFailed, Conflict, NotFound, PermissionDenied
from domain.errors import InvalidField

TOKEN_PATTERN = re.compile(r"^ttp_[0-9a-f]{48}$")
SESSION_LIFETIME = timedelta(days=14)
TOUCH_EVERY = timedelta(seconds=60)
MIN_PASSWORD_LENGTH = 10


@dataclass(frozen=True)
class Principal:
    """Who is calling, and in which organization every query of this request is scoped."""

    user_id: UUID
    organization_id: UUID
    via: Literal["session", "token"]
    token_id: UUID | None = None
    csrf_token: str | None = None


@dataclass(frozen=True)
class User:
    id: UUID
    email: str
    name: str
    password_hash: str
    active_organization_id: UUID | None


@dataclass(frozen=True)
class Organization:
    id: UUID
    name: str
    plan: str
    role: str = "owner"


@dataclass(frozen=True)
class OrganizationSettings:
    publish_late: bool
    """Publish posts that could not start on time, rather than mark them missed."""
    delay_on_quota: bool
    """A post over a platform's publishing quota waits for room, rather than failing."""


@dataclass(frozen=True)
class ApiToken:
    id: UUID
    user_id: UUID
    organization_id: UUID
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str


@dataclass(frozen=True)
class BrowserSession:
    user_id: UUID
    organization_id: UUID
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class AuditEntry:
    action: str
    actor_user_id: UUID | None
    organization_id: UUID | None
    subject: str
    details: dict[str, Any]


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str, password: str) -> bool: ...


class IdentityStore(Protocol):
    """Persistence for identity. Each mutating call writes its ``audit`` entry atomically."""

    def add_user(self, user: User, organization: Organization, audit: AuditEntry) -> None: ...

    def add_organization(
        self, organization: Organization, owner: UUID, audit: AuditEntry
    ) -> None: ...

    def user_by_email(self, email: str) -> User | None: ...

    def user(self, user_id: UUID) -> User | None: ...

    def memberships(self, user_id: UUID) -> list[Organization]: ...

    def set_active_organization(self, user_id: UUID, organization_id: UUID) -> None: ...

    def settings(self, organization_id: UUID) -> OrganizationSettings: ...

    def update_settings(
        self, organization_id: UUID, settings: OrganizationSettings, audit: AuditEntry
    ) -> None: ...

    def add_session(self, key_hash: bytes, session: BrowserSession, audit: AuditEntry) -> None: ...

    def session(self, key_hash: bytes) -> BrowserSession | None: ...

    def set_session_organization(self, key_hash: bytes, organization_id: UUID) -> None: ...

    def remove_session(self, key_hash: bytes) -> None: ...

    def add_token(self, token: ApiToken, token_hash: bytes, audit: AuditEntry) -> None: ...

    def token_by_hash(self, token_hash: bytes) -> ApiToken | None: ...

    def tokens(self, user_id: UUID, organization_id: UUID) -> list[ApiToken]: ...

    def revoke_token(
        self, token_id: UUID, user_id: UUID, at: datetime, audit: AuditEntry
    ) -> bool: ...

    def touch_token(self, token_id: UUID, at: datetime) -> None: ...


class IdentityService:
    def __init__(
        self,
        store: IdentityStore,
        hasher: PasswordHasher,
        pepper: bytes,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._hasher = hasher
        self._pepper = pepper
        self._clock = clock
        self._touched: dict[UUID, datetime] = {}

    # ---- users and organizations --------------------------------------------------------

    def create_user(
        self, *, email: str, password: str, name: str = "", organization_name: str | None = None
    ) -> tuple[User, Organization]:
        email = _normalise_email(email)
        _require_text("name", name)
        _require_text("organizationName", organization_name or "")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidField("password", f"use at least {MIN_PASSWORD_LENGTH} characters")
        if self._store.user_by_email(email) is not None:
            raise Conflict(f"a user with email {email} already exists")
        organization = Organization(
            id=uuid4(),
            name=organization_name or f"{name or email}'s organization",
            plan="self-hosted",
        )
        user = User(
            id=uuid4(),
            email=email,
            name=name,
            password_hash=self._hasher.hash(password),
            active_organization_id=organization.id,
        )
        self._store.add_user(
            user,
            organization,
            AuditEntry("user.created", None, organization.id, str(user.id), {"email": email}),
        )
        return user, organization

    def create_organization(self, user_id: UUID, name: str) -> Organization:
        _require_text("name", name)
        organization = Organization(id=uuid4(), name=name, plan="self-hosted")
        self._store.add_organization(
            organization,
            user_id,
            AuditEntry("organization.created", user_id, organization.id, name, {}),
        )
        return organization

    def update_settings(
        self,
        principal: Principal,
        *,
        publish_late: bool | None = None,
        delay_on_quota: bool | None = None,
    ) -> OrganizationSettings:
        """Change the given settings of the caller's organization; the rest stay."""
        current = self._store.settings(principal.organization_id)
        updated = OrganizationSettings(
            publish_late=current.publish_late if publish_late is None else publish_late,
            delay_on_quota=current.delay_on_quota if delay_on_quota is None else delay_on_quota,
        )
        self._store.update_settings(
            principal.organization_id,
            updated,
            AuditEntry(
                "organization.settings",
                principal.user_id,
                principal.organization_id,
                str(principal.organization_id),
                {"publishLate": updated.publish_late, "delayOnQuota": updated.delay_on_quota},
            ),
        )
        return updated

    def settings(self, organization_id: UUID) -> OrganizationSettings:
        return self._store.settings(organization_id)

    def publishes_late(self, organization_id: UUID) -> bool:
        return self._store.settings(organization_id).publish_late

    def delays_on_quota(self, organization_id: UUID) -> bool:
        return self._store.settings(organization_id).delay_on_quota

    def organizations(self, user_id: UUID) -> list[Organization]:
        return self._store.memberships(user_id)

    def switch_organization(
        self, principal: Principal, session_key: str, organization_id: UUID
    ) -> None:
        if organization_id not in {o.id for o in self._store.memberships(principal.user_id)}:
            raise NotFound(f"organization {organization_id} not found")
        self._store.set_active_organization(principal.user_id, organization_id)
        self._store.set_session_organization(self._hash(session_key), organization_id)

    def user_by_email(self, email: str) -> User | None:
        return self._store.user_by_email(_normalise_email(email))

    def user(self, user_id: UUID) -> User | None:
        return self._store.user(user_id)

    # ---- browser sessions ---------------------------------------------------------------

    def log_in(self, email: str, password: str) -> tuple[str, BrowserSession]:
        user = self._store.user_by_email(_normalise_email(email))
        if user is None or not self._hasher.verify(user.password_hash, password):
            raise AuthenticationFailed("email or password is incorrect")
        organization_id = user.active_organization_id or self._first_organization(user.id)
        key = secrets.token_urlsafe(32)
        session = BrowserSession(
            user_id=user.id,
            organization_id=organization_id,
            csrf_token=secrets.token_urlsafe(24),
            expires_at=self._clock() + SESSION_LIFETIME,
        )
        self._store.add_session(
            self._hash(key),
            session,
            AuditEntry("session.created", user.id, organization_id, str(user.id), {}),
        )
        return key, session

    def log_out(self, session_key: str) -> None:
        self._store.remove_session(self._hash(session_key))

    def authenticate_session(self, session_key: str) -> Principal | None:
        session = self._store.session(self._hash(session_key))
        if session is None or session.expires_at <= self._clock():
            return None
        return Principal(
            user_id=session.user_id,
            organization_id=session.organization_id,
            via="session",
            csrf_token=session.csrf_token,
        )

    # ---- API tokens ---------------------------------------------------------------------

    def issue_token(
        self, principal: Principal, *, name: str, expires_in_days: int | None
    ) -> IssuedToken:
        if principal.via != "session":
            raise PermissionDenied(
                "API tokens cannot create or revoke tokens; manage tokens from a browser session"
            )
        return self.issue_token_for(
            principal.user_id, principal.organization_id, name=name, expires_in_days=expires_in_days
        )

    def issue_token_for(
        self, user_id: UUID, organization_id: UUID, *, name: str, expires_in_days: int | None
    ) -> IssuedToken:
        """Mint a token; also used by the admin CLI, which acts as the machine's owner."""
        if expires_in_days is not None and not 1 <= expires_in_days <= 365:
            raise InvalidField("expiresInDays", "expiresInDays must be between 1 and 365")
        secret = "ttp_" + secrets.token_hex(24)
        now = self._clock()
        token = ApiToken(
            id=uuid4(),
            user_id=user_id,
            organization_id=organization_id,
            name=name,
            prefix=secret[:8],
            created_at=now,
            expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
            last_used_at=None,
            revoked_at=None,
        )
        self._store.add_token(
            token,
            self._hash(secret),
            AuditEntry("token.issued", user_id, organization_id, str(token.id), {"name": name}),
        )
        return IssuedToken(token=token, secret=secret)

    def list_tokens(self, principal: Principal) -> list[ApiToken]:
        self._require_session(principal)
        return self._store.tokens(principal.user_id, principal.organization_id)

    def revoke_token(self, principal: Principal, token_id: UUID) -> None:
        self._require_session(principal)
        revoked = self._store.revoke_token(
            token_id,
            principal.user_id,
            self._clock(),
            AuditEntry(
                "token.revoked", principal.user_id, principal.organization_id, str(token_id), {}
            ),
        )
        if not revoked:
            raise NotFound(f"token {token_id} not found")

    def authenticate_token(self, secret: str) -> Principal | None:
        if not TOKEN_PATTERN.match(secret):
            return None
        token = self._store.token_by_hash(self._hash(secret))
        now = self._clock()
        if token is None or token.revoked_at is not None:
            return None
        if token.expires_at is not None and token.expires_at <= now:
            return None
        if (
            now - self._touched.get(token.id, datetime.min.replace(tzinfo=now.tzinfo))
            >= TOUCH_EVERY
        ):
            # last_used_at is minute-grained: a busy token must not turn every read into a write.
            self._touched[token.id] = now
            self._store.touch_token(token.id, now)
        return Principal(
            user_id=token.user_id,
            organization_id=token.organization_id,
            via="token",
            token_id=token.id,
        )

    # ---- internals ----------------------------------------------------------------------

    def _hash(self, secret: str) -> bytes:
        return hmac.new(self._pepper, secret.encode(), hashlib.sha256).digest()

    def _first_organization(self, user_id: UUID) -> UUID:
        memberships = self._store.memberships(user_id)
        if not memberships:
            raise AuthenticationFailed("the user belongs to no organization")
        return memberships[0].id

    @staticmethod
    def _require_session(principal: Principal) -> None:
        if principal.via != "session":
            raise PermissionDenied(
                "API tokens cannot create, list or revoke tokens; "
                "manage tokens from a browser session"
            )


def _require_text(field: str, value: str) -> None:
    if "\x00" in value or len(value) > 200:
        raise InvalidField(field, f"{field} must be at most 200 characters, without NUL")


def _normalise_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 254 or "\x00" in email:
        raise InvalidField("email", "a valid email address is required")
    return email
