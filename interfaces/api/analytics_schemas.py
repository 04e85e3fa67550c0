"""Bodies of ``/api/analytics``, in the seeds' shapes (``recommendation`` with ``bestHours``,
``bestDays``, ``dataPoints``, ``message``), camelCase like the rest."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import Field

from application.analytics import DAY_NAMES, NextSlot, Recommendation
from application.insights import Summary
from interfaces.api.schemas import Camel, Envelope


class HourScoreOut(Camel):
    hour: int = Field(ge=0, le=23, description="Hour of the day in the asked time zone")
    score: float = Field(ge=0, le=1)


class DayScoreOut(Camel):
    day: str = Field(description="Monday … Sunday, in the asked time zone")
    score: float = Field(ge=0, le=1)


class RecommendationOut(Camel):
    best_hours: list[HourScoreOut] = Field(description="Top 5 hours, best first")
    best_days: list[DayScoreOut] = Field(description="Top 3 days, best first")
    data_points: int = Field(description="Published posts with engagement behind it")
    message: str = Field(description="How confident it is, and what would sharpen it")

    @classmethod
    def of(cls, found: Recommendation) -> RecommendationOut:
        return cls.model_validate(found.as_json())


class OptimalTimesEnvelope(Envelope):
    recommendation: RecommendationOut
    timezone: str = Field(description="The IANA time zone hours and days are in")


class AccountRecommendationOut(Camel):
    account_id: UUID
    account_name: str
    provider: str
    recommendation: RecommendationOut


class OptimalTimesByAccountEnvelope(Envelope):
    accounts: list[AccountRecommendationOut]
    timezone: str


class NextSlotOut(Camel):
    at: datetime = Field(description="The slot in UTC, ready for scheduledAt")
    local_time: datetime = Field(description="The same instant in the asked time zone")
    day: str
    hour: int
    score: float = Field(ge=0, le=1)

    @classmethod
    def of(cls, slot: NextSlot) -> NextSlotOut:
        return cls(
            at=slot.at_utc,
            local_time=slot.at_local,
            day=DAY_NAMES[slot.at_local.weekday()],
            hour=slot.at_local.hour,
            score=slot.score,
        )


class NextOptimalTimeEnvelope(Envelope):
    next_optimal_time: NextSlotOut | None = Field(
        description="The next best slot within a week; null when there is too little data"
    )
    timezone: str
    data_points: int
    message: str


class WeeklyScheduleEnvelope(Envelope):
    timezone: str
    days: list[str] = Field(description="Row labels: Monday … Sunday")
    scores: list[list[float]] = Field(
        description="7 rows (Monday first) of 24 scores 0-1, one per hour of the day"
    )
    data_points: int
    message: str


class EngagementCountsOut(Camel):
    posts: int = Field(description="Published posts with at least one engagement read")
    likes: int
    comments: int
    shares: int
    views: int


class EngagementSummaryEnvelope(Envelope):
    totals: EngagementCountsOut
    platforms: dict[str, EngagementCountsOut] = Field(
        description="The same counts per platform (twitter, instagram, tiktok)"
    )

    @classmethod
    def of(cls, summary: Summary) -> EngagementSummaryEnvelope:
        return cls(
            totals=EngagementCountsOut(**summary.totals),
            platforms={k: EngagementCountsOut(**v) for k, v in summary.per_platform.items()},
        )
