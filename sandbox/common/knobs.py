"""Setting test knobs after checking them: each simulator says which values a knob
accepts (its ``KnobRules``); the checks and the setting are shared."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

KnobsT = TypeVar("KnobsT", bound="DataclassInstance")


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_rate(value: object) -> bool:
    return is_number(value) and 0 <= value <= 1  # type: ignore[operator]


def is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def fits(current: object, value: object) -> bool:
    """Whether ``value`` may replace ``current`` going by its type alone: booleans stay
    booleans, numbers stay non-negative numbers."""
    if isinstance(current, bool):
        return isinstance(value, bool)
    if isinstance(current, int):
        return is_count(value)
    if isinstance(current, float):
        return is_number(value) and value >= 0  # type: ignore[operator]
    return isinstance(value, type(current))


def _as_given(_target: object, _key: str, value: Any) -> Any:
    return value


@dataclass(frozen=True)
class KnobRules:
    """A simulator's rules for its knobs: which values each accepts (``valid``) and what
    is stored for an accepted one (``stored``, e.g. a list kept as a tuple)."""

    valid: Callable[[object, str, Any], bool]
    stored: Callable[[object, str, Any], Any] = _as_given

    def apply(self, target: object, body: dict[str, Any], allowed: tuple[str, ...]) -> str | None:
        """Set the given attributes after checking them all; the error message or ``None``."""
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            return f"unknown keys: {', '.join(unknown)}"
        for key, value in body.items():
            if not self.valid(target, key, value):
                return f"invalid value for {key}"
        for key, value in body.items():
            setattr(target, key, self.stored(target, key, value))
        return None

    def edited(self, knobs: KnobsT, body: dict[str, Any], allowed: tuple[str, ...]) -> KnobsT | str:
        """A copy of ``knobs`` with ``body`` applied, or what is wrong with ``body``."""
        copy = dataclasses.replace(knobs)
        error = self.apply(copy, body, allowed)
        return error if error else copy
