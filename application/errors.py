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


class ServiceUnavailable(DomainError):
    """Something Kairos depends on (media storage, an up-to-date read model) cannot answer
    just now; the same request may well succeed in a moment."""


class ReadModelBehind(ServiceUnavailable):
    """A read model that a decision rests on (a plan's cap, a disconnect's guard) did not
    catch up with the event store in time: answering from it could break the rule."""

    def __init__(self) -> None:
        super().__init__("the read models are behind; try again in a moment")
