"""Plans: the account caps of seed 003 and the feature check of seed 001."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from application.errors import NotFound, PermissionDenied
from application.identity import AuditEntry
from application.plans import (
    FeatureNotInPlan,
    Plan,
    PlanLimitReached,
    Plans,
    account_limit,
    parse_plan,
    require_feature,
    require_room_for_account,
)
from domain.errors import InvalidField


@pytest.mark.parametrize(
    ("plan", "limit"),
    [
        (Plan.STARTER, 5),
        (Plan.PLUS, 10),
        (Plan.PRO, 30),
        (Plan.MAX, 100),
        (Plan.SELF_HOSTED, None),
    ],
)
def test_each_plan_caps_connected_accounts(plan: Plan, limit: int | None) -> None:
    assert account_limit(plan) == limit
    if limit is None:
        require_room_for_account(plan, 100_000)
        return
    require_room_for_account(plan, limit - 1)
    with pytest.raises(PlanLimitReached) as refused:
        require_room_for_account(plan, limit)
    assert f"{plan.label} plan allows {limit} connected accounts" in refused.value.message
    with pytest.raises(PlanLimitReached):
        require_room_for_account(plan, limit + 3)  # after a downgrade


@pytest.mark.parametrize("plan", [Plan.PRO, Plan.MAX, Plan.SELF_HOSTED])
def test_best_time_comes_with_pro_max_and_self_hosted(plan: Plan) -> None:
    require_feature(plan, "best_time")


@pytest.mark.parametrize("plan", [Plan.STARTER, Plan.PLUS])
def test_best_time_is_refused_in_the_seeds_words(plan: Plan) -> None:
    with pytest.raises(FeatureNotInPlan) as refused:
        require_feature(plan, "best_time")
    assert isinstance(refused.value, PermissionDenied)  # the API answers 403
    assert refused.value.message.startswith("Requires a plan with the best-time-to-post feature")
    assert plan.label in refused.value.message


def test_plan_names_are_parsed_strictly() -> None:
    assert parse_plan(" Pro ") is Plan.PRO
    assert parse_plan("self-hosted") is Plan.SELF_HOSTED
    with pytest.raises(InvalidField) as refused:
        parse_plan("platinum")
    assert refused.value.field == "plan"


class FakePlanStore:
    def __init__(self) -> None:
        self.plans: dict[UUID, str] = {}
        self.audit: list[AuditEntry] = []

    def plan_of(self, organization_id: UUID) -> str | None:
        return self.plans.get(organization_id)

    def set_plan(self, organization_id: UUID, plan: str, audit: AuditEntry) -> bool:
        if organization_id not in self.plans:
            return False
        self.plans[organization_id] = plan
        self.audit.append(audit)
        return True


def test_setting_a_plan_is_audited_and_checked() -> None:
    store = FakePlanStore()
    org = uuid4()
    store.plans[org] = "self-hosted"
    plans = Plans(store)
    assert plans.set_plan(org, "starter") is Plan.STARTER
    assert plans.plan_of(org) is Plan.STARTER
    assert store.audit[-1].action == "organization.plan_changed"
    assert store.audit[-1].details == {"plan": "starter", "previous": "self-hosted"}
    with pytest.raises(FeatureNotInPlan):
        plans.require_feature(org, "best_time")
    with pytest.raises(NotFound):
        plans.set_plan(uuid4(), "pro")
    with pytest.raises(NotFound):
        plans.plan_of(uuid4())
    with pytest.raises(InvalidField):
        plans.set_plan(org, "gold")
    assert len(store.audit) == 1
