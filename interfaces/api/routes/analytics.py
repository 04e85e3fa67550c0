"""``/api/analytics``: best times to post, from the organization's own published posts, and
engagement totals. The best-time routes need a plan with that feature (403 otherwise).

Hours and days are in UTC unless ``timezone`` names an IANA zone; each post counts at the
local hour it was published, so daylight-saving changes are handled.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response

from application.analytics import DAY_NAMES
from application.identity import Principal
from application.insights import Query as InsightsQuery
from interfaces.api.analytics_schemas import (
    AccountRecommendationOut,
    EngagementSummaryEnvelope,
    NextOptimalTimeEnvelope,
    NextSlotOut,
    OptimalTimesByAccountEnvelope,
    OptimalTimesEnvelope,
    RecommendationOut,
    WeeklyScheduleEnvelope,
)
from interfaces.api.deps import KairosDep, PrincipalDep
from interfaces.api.routes.posts import ERRORS, as_json
from interfaces.bootstrap import Kairos

router = APIRouter(prefix="/api/analytics", tags=["analytics"], responses=ERRORS)

Platform = Annotated[
    str | None,
    Query(
        max_length=40,
        description="Narrow to one platform: twitter (or x), instagram, instagram-facebook, tiktok",
    ),
]
TimeZone = Annotated[
    str | None,
    Query(max_length=64, description="IANA time zone of the hours and days (default UTC)"),
]
AccountId = Annotated[
    UUID | None, Query(alias="accountId", description="Only this connected account")
]
GATED: dict[int | str, dict[str, Any]] = {
    403: {"description": "The plan lacks the best-time-to-post feature"}
}


def _query(
    kairos: Kairos,
    principal: Principal,
    platform: str | None,
    timezone: str | None,
    account_id: UUID | None,
) -> InsightsQuery:
    """The parsed parameters; another organization's account is a 404."""
    if account_id is not None:
        kairos.connections.integration(principal, account_id)
    return kairos.insights.query(platform, timezone)


@router.get("/optimal-times", response_model=OptimalTimesEnvelope, responses=GATED)
def optimal_times(
    kairos: KairosDep, principal: PrincipalDep, platform: Platform = None, timezone: TimeZone = None
) -> Response:
    """The organization's top five hours and top three days to post, scored 0-1."""
    query = kairos.insights.query(platform, timezone)
    found = kairos.insights.optimal_times(principal, query)
    return as_json(
        OptimalTimesEnvelope(recommendation=RecommendationOut.of(found), timezone=query.zone.key)
    )


@router.get(
    "/optimal-times/by-account", response_model=OptimalTimesByAccountEnvelope, responses=GATED
)
def optimal_times_by_account(
    kairos: KairosDep, principal: PrincipalDep, platform: Platform = None, timezone: TimeZone = None
) -> Response:
    """One recommendation per connected account with published posts; an account with few
    posts leans on the organization's pattern."""
    query = kairos.insights.query(platform, timezone)
    found = kairos.insights.optimal_times_by_account(principal, query)
    names = {
        str(i.id): (i.account_name, i.provider)
        for i in kairos.integrations_view.list_integrations(principal.organization_id)
    }
    accounts = [
        AccountRecommendationOut(
            account_id=UUID(account_id),
            account_name=names.get(account_id, ("", ""))[0],
            provider=names.get(account_id, ("", ""))[1],
            recommendation=RecommendationOut.of(recommendation),
        )
        for account_id, recommendation in sorted(found.items())
    ]
    return as_json(OptimalTimesByAccountEnvelope(accounts=accounts, timezone=query.zone.key))


@router.get("/next-optimal-time", response_model=NextOptimalTimeEnvelope, responses=GATED)
def next_optimal_time(
    kairos: KairosDep,
    principal: PrincipalDep,
    platform: Platform = None,
    timezone: TimeZone = None,
    account_id: AccountId = None,
) -> Response:
    """The next best slot from now (at least 20 minutes ahead, within a week)."""
    query = _query(kairos, principal, platform, timezone, account_id)
    slot, basis = kairos.insights.next_optimal_time(principal, query, account_id)
    return as_json(
        NextOptimalTimeEnvelope(
            next_optimal_time=NextSlotOut.of(slot) if slot is not None else None,
            timezone=query.zone.key,
            data_points=basis.data_points,
            message=basis.message,
        )
    )


@router.get("/weekly-schedule", response_model=WeeklyScheduleEnvelope, responses=GATED)
def weekly_schedule(
    kairos: KairosDep,
    principal: PrincipalDep,
    platform: Platform = None,
    timezone: TimeZone = None,
    account_id: AccountId = None,
) -> Response:
    """Every hour of every weekday scored 0-1 (0.5 everywhere until there is enough data)."""
    query = _query(kairos, principal, platform, timezone, account_id)
    grid, basis = kairos.insights.weekly_schedule(principal, query, account_id)
    return as_json(
        WeeklyScheduleEnvelope(
            timezone=query.zone.key,
            days=list(DAY_NAMES),
            scores=grid,
            data_points=basis.data_points,
            message=basis.message,
        )
    )


@router.get("/engagement-summary", response_model=EngagementSummaryEnvelope)
def engagement_summary(
    kairos: KairosDep, principal: PrincipalDep, platform: Platform = None
) -> Response:
    """Likes, comments, shares and views of every published post (each post's newest
    read), in all and per platform."""
    query = kairos.insights.query(platform, None)
    return as_json(
        EngagementSummaryEnvelope.of(kairos.insights.engagement_summary(principal, query))
    )
