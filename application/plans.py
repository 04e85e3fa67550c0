"""Plans: how many accounts an organization may connect, and which features it has.

The caps follow TimeToPost's cloud plans; ``self-hosted`` (every new organization's plan)
has no cap and every feature. An organization's plan is set by the operator
(``kairos organizations set-plan``); Kairos does no billing itself.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol
from uuid import UUID

from application.errors import NotFound, PermissionDenied
from application.identity import AuditEntry
from domain.errors import DomainError, InvalidField


class Plan(StrEnum):
    STARTER = "starter"
    PLUS = "plus"
    PRO = "pro"
    MAX = "max"
    SELF_HOSTED = "self-hosted"

    @property
    def label(self) -> str:
        return "self-hosted" if self is Plan.SELF_HOSTED else self.value.capitalize()


ACCOUNT_LIMITS: dict[Plan, int | None] = {
    Plan.STARTER: 5,
    Plan.PLUS: 10,
    Plan.PRO: 30,
    Plan.MAX: 100,
    Plan.SELF_HOSTED: None,
}
"""Connected accounts per organization; ``None`` is no cap."""

FEATURES: dict[str, frozenset[Plan]] = {
    "best_time": frozenset({Plan.PRO, Plan.MAX, Plan.SELF_HOSTED}),
}
"""Which plans include each feature."""

FEATURE_NAMES = {"best_time": "best-time-to-post"}


class PlanLimitReached(DomainError):
    """Connecting one more account would pass the plan's cap (HTTP 402)."""


class FeatureNotInPlan(PermissionDenied):
    """The organization's plan does not include the feature (HTTP 403)."""


def parse_plan(name: str) -> Plan:
    try:
        return Plan(name.strip().lower())
    except ValueError:
        known = ", ".join(p.value for p in Plan)
        raise InvalidField("plan", f"unknown plan '{name}' (known: {known})") from None


def account_limit(plan: Plan) -> int | None:
    return ACCOUNT_LIMITS[plan]


def require_room_for_account(plan: Plan, connected: int) -> None:
    """Refuse a new connection when ``connected`` accounts already fill the plan."""
    limit = account_limit(plan)
    if limit is not None and connected >= limit:
        raise PlanLimitReached(
            f"the {plan.label} plan allows {limit} connected accounts and this organization "
            f"has {connected}: disconnect one or upgrade the plan to connect another"
        )


def require_feature(plan: Plan, feature: str) -> None:
    """Refuse a feature the plan lacks, in the seeds' words."""
    if plan not in FEATURES[feature]:
        name = FEATURE_NAMES.get(feature, feature)
        with_it = ", ".join(p.label for p in Plan if p in FEATURES[feature])
        raise FeatureNotInPlan(
            f"Requires a plan with the {name} feature (the {plan.label} plan does not "
            f"include it; these do: {with_it})"
        )


class PlanStore(Protocol):
    def plan_of(self, organization_id: UUID) -> str | None:
        """The stored plan name; None when the organization does not exist."""
        ...

    def set_plan(self, organization_id: UUID, plan: str, audit: AuditEntry) -> bool:
        """Store the plan and its audit entry atomically; False if there is no such
        organization."""
        ...


class Plans:
    def __init__(self, store: PlanStore) -> None:
        self._store = store

    def plan_of(self, organization_id: UUID) -> Plan:
        stored = self._store.plan_of(organization_id)
        if stored is None:
            raise NotFound(f"organization {organization_id} not found")
        return Plan(stored)

    def set_plan(
        self, organization_id: UUID, plan_name: str, *, actor_user_id: UUID | None = None
    ) -> Plan:
        plan = parse_plan(plan_name)
        previous = self._store.plan_of(organization_id)
        audit = AuditEntry(
            "organization.plan_changed",
            actor_user_id,
            organization_id,
            str(organization_id),
            {"plan": plan.value, "previous": previous},
        )
        if previous is None or not self._store.set_plan(organization_id, plan.value, audit):
            raise NotFound(f"organization {organization_id} not found")
        return plan

    def require_feature(self, organization_id: UUID, feature: str) -> None:
        require_feature(self.plan_of(organization_id), feature)
