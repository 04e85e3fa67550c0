"""A rule that input breaks, named by the field that breaks it (``content``, ``mediaUrls[2]``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Violation:
    field: str
    message: str
