"""Errors the application layer raises on top of the domain's own."""

from __future__ import annotations

from domain.errors import DomainError


class NotFound(DomainError):
    """Missing, deleted, or owned by another organization: callers cannot tell which."""


class IdempotencyKeyReused(DomainError):
    """The Idempotency-Key was already used with a different request body."""


class PermissionDenied(DomainError):
    pass


class AuthenticationFailed(DomainError):
    pass


class Conflict(DomainError):
    pass
