"""Typed domain errors. The API maps each to one HTTP status in a single handler."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every rule the domain refuses to break."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidField(DomainError):
    """A value breaks a rule; ``field`` names the offending input (``content``, ``thread[3]``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class PostNotEditable(DomainError):
    """The post is publishing or already has an outcome; its content is history now."""


class PostAlreadyDeleted(DomainError):
    pass


class IntegrationNotUsable(DomainError):
    """The account cannot be targeted (expired, errored, disconnected, inactive)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
