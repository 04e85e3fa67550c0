"""The analytics API's use cases: best times to post and engagement totals, per organization.

Answers are computed by ``application/analytics.py`` from the engagement read model and
kept in a small in-process cache until the organization's engagement changes (the read
model's per-organization version moves) or five minutes pass, so a dashboard asking again
and again costs one indexed lookup, not a pass over every post.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

from application import analytics
from application.analytics import NextSlot, Observation, Recommendation
from application.identity import Principal
from application.posts import PLATFORM_PROVIDERS
from domain.errors import InvalidField

FEATURE = "best_time"
CACHE_SIZE = 1024
TIME_STEP = timedelta(minutes=5)
"""Answers are computed as of ``now`` rounded down to this, so they can be cached."""

T = TypeVar("T")


class Totals(Protocol):
    @property
    def provider(self) -> str: ...
    @property
    def posts(self) -> int: ...
    @property
    def likes(self) -> int: ...
    @property
    def comments(self) -> int: ...
    @property
    def shares(self) -> int: ...
    @property
    def views(self) -> int: ...


ScoringRow = tuple[
    str, str, datetime, int | None, int | None, int | None, int | None, int | None, int | None
]
"""(account id, provider, published_at, likes, comments, shares, views, reach, saves)."""


class EngagementSource(Protocol):
    def version(self, organization_id: UUID) -> int: ...

    def scoring_rows(
        self, organization_id: UUID, providers: Sequence[str] | None = None
    ) -> Sequence[ScoringRow]: ...

    def totals(
        self, organization_id: UUID, providers: Sequence[str] | None = None
    ) -> Sequence[Totals]: ...


class FeatureGate(Protocol):
    def require_feature(self, organization_id: UUID, feature: str) -> None: ...


@dataclass(frozen=True)
class Query:
    providers: tuple[str, ...] | None
    """None: every platform."""
    zone: ZoneInfo


@dataclass(frozen=True)
class Summary:
    totals: dict[str, int]
    per_platform: dict[str, dict[str, int]]


class Insights:
    def __init__(
        self,
        engagement: EngagementSource,
        plans: FeatureGate,
        clock: Callable[[], datetime],
    ) -> None:
        self._engagement = engagement
        self._plans = plans
        self._clock = clock
        self._cache: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def query(platform: str | None, timezone: str | None) -> Query:
        """Parse the ``platform`` and ``timezone`` parameters, naming the one that is wrong."""
        providers = None
        if platform is not None:
            found = PLATFORM_PROVIDERS.get(platform.lower())
            if found is None:
                known = ", ".join(sorted(PLATFORM_PROVIDERS))
                raise InvalidField("platform", f"unknown platform '{platform}' ({known})")
            providers = found
        try:
            zone = analytics.from_request_timezone(timezone or "UTC")
        except ValueError as exc:
            raise InvalidField("timezone", str(exc)) from None
        return Query(providers, zone)

    # ---- the answers ---------------------------------------------------------------------

    def optimal_times(self, principal: Principal, query: Query) -> Recommendation:
        return self._answer(
            principal,
            query,
            "optimal",
            lambda obs, now: analytics.recommend(obs, now=now, timezone=query.zone),
        )

    def optimal_times_by_account(
        self, principal: Principal, query: Query
    ) -> dict[str, Recommendation]:
        return self._answer(
            principal,
            query,
            "by-account",
            lambda obs, now: analytics.recommend_by_account(obs, now=now, timezone=query.zone),
        )

    def weekly_schedule(
        self, principal: Principal, query: Query, account_id: UUID | None = None
    ) -> tuple[list[list[float]], Recommendation]:
        account = str(account_id) if account_id else None

        def compute(
            obs: list[Observation], now: datetime
        ) -> tuple[list[list[float]], Recommendation]:
            grid = analytics.weekly_grid(obs, now=now, timezone=query.zone, account_id=account)
            chosen = [o for o in obs if account is None or o.account_id == account]
            return grid, analytics.recommend(chosen, now=now, timezone=query.zone)

        return self._answer(principal, query, ("weekly", account), compute)

    def next_optimal_time(
        self, principal: Principal, query: Query, account_id: UUID | None = None
    ) -> tuple[NextSlot | None, Recommendation]:
        account = str(account_id) if account_id else None

        def compute(
            obs: list[Observation], now: datetime
        ) -> tuple[NextSlot | None, Recommendation]:
            chosen = [o for o in obs if account is None or o.account_id == account]
            slot = analytics.next_optimal_time(
                obs,
                now=now,
                timezone=query.zone,
                account_id=account,
                min_lead=TIME_STEP + timedelta(minutes=15),
            )
            return slot, analytics.recommend(chosen, now=now, timezone=query.zone)

        return self._answer(principal, query, ("next", account), compute)

    def engagement_summary(self, principal: Principal, query: Query) -> Summary:
        """Totals of every post's newest read, in all and per platform (not plan-gated:
        these are the user's own counters)."""
        rows = self._engagement.totals(principal.organization_id, query.providers)
        names = ("posts", "likes", "comments", "shares", "views")
        per_platform: dict[str, dict[str, int]] = {}
        for row in rows:
            platform = "instagram" if row.provider == "instagram-facebook" else row.provider
            counts = per_platform.setdefault(platform, dict.fromkeys(names, 0))
            for name in names:
                counts[name] += getattr(row, name)
        totals = {name: sum(c[name] for c in per_platform.values()) for name in names}
        return Summary(totals, per_platform)

    # ---- computing and caching -----------------------------------------------------------

    def _answer(
        self,
        principal: Principal,
        query: Query,
        kind: Hashable,
        compute: Callable[[list[Observation], datetime], T],
    ) -> T:
        organization_id = principal.organization_id
        self._plans.require_feature(organization_id, FEATURE)
        now = _floor(self._clock(), TIME_STEP)
        version = self._engagement.version(organization_id)
        key = (organization_id, query.providers, query.zone.key, kind, version, now)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]  # type: ignore[return-value]
        rows = self._engagement.scoring_rows(organization_id, query.providers)
        observations = [Observation(*row) for row in rows]
        answer = compute(observations, now)
        with self._lock:
            self._cache[key] = answer
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return answer


def _floor(moment: datetime, step: timedelta) -> datetime:
    seconds = step.total_seconds()
    return datetime.fromtimestamp(moment.timestamp() // seconds * seconds, tz=moment.tzinfo)
