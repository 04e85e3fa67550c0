"""Best time to post: the hours and weekdays at which an organization's OWN published posts
drew the most engagement. Pure and deterministic: observations in, recommendations out.

How the scores are made:

1. Engagement of a post is a weighted count of its interactions (see :func:`engagement`),
   taken on the log scale: y = log1p(engagement), so "twice as much" is the same step for
   an account with 50 likes a post and one with 50,000.
2. Recency: a post weighs w = 0.5 ** (age_days / 45). Audiences' habits drift; a
   six-month-old post counts about 1/16 of today's.
3. Per account, z = y - the account's w-weighted mean of y: each post is judged against its
   own account's usual, so one big account does not drown the others.
4. Each post's local hour (0-23) and weekday in the requested IANA zone at the instant it
   was published, DST-correct (zoneinfo).
5. Per account, an additive model z ~ hour effect + day effect, fitted by backfitting: a
   few rounds of (hour effects from z minus the day effects, day effects from z minus the
   hour effects). An hour effect is a weighted mean over a circular kernel -- weights 1,
   0.5, 0.25 for hours at distance 0, 1, 2 -- so a sparse hour borrows from its
   neighbours; a day effect is a weighted mean per weekday.
6. Shrinkage (empirical Bayes): est = (sum w*z + k*prior) / (sum w + k). An account's
   effects shrink toward its organization's pattern on the same platform (k = 8 effective
   posts); the organization's pattern -- the same model over all its accounts' posts --
   shrinks toward a built-in platform curve (k = 4). The platform curves are not measured
   from anyone's data: mild lunchtime and evening bumps in local time (at most ~10 %
   engagement), there to fill and rank hours nobody tried; there is no weekday prior.
7. Scores 0-1: min-max over the 24 hour effects, the 7 day effects, or the 7x24 cells
   (hour + day effect) of the weekly grid, rounded to 2 decimals. When the best and worst
   differ by less than ``MEANINGFUL_SPREAD`` on the log scale (~22 % engagement), the
   scores are squeezed around 0.5: 1.0 means a real difference, and no differences at all
   score 0.5 everywhere.
8. With fewer than ``MIN_DATA_POINTS`` observations for what is asked, no hours or days are
   recommended. Only hours within two of an hour the organization posted at (on the
   platform asked), and days it posted on, are ever recommended: the curves of step 6 rank,
   they never invent a slot.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from operator import mul
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

MIN_DATA_POINTS = 10
HALF_LIFE_DAYS = 45.0
HOUR_KERNEL = (1.0, 0.5, 0.25)
"""Weight of a post in the estimate of an hour 0, 1 and 2 hours away (circularly)."""
ACCOUNT_PRIOR_STRENGTH = 8.0
"""Effective posts the organization's pattern counts for in an account's estimates."""
PLATFORM_PRIOR_STRENGTH = 4.0
"""Effective posts the platform curve counts for in the organization's estimates."""
MEANINGFUL_SPREAD = 0.2
TOP_HOURS = 5
TOP_DAYS = 3
NEXT_SLOT_SHARE = 0.9
"""A slot is among the best when its grid score is at least this share of the best one."""
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

_DAY = 86_400.0
_HOUR = 3_600.0
_CELLS = 7 * 24  # weekday * 24 + hour
_BACKFIT_ROUNDS = 4
_EPOCH_HOUR_OF_WEEK = 72  # 1970-01-01 00:00 UTC was a Thursday
_SAME_PLATFORM = {"instagram-facebook": "instagram"}  # two login paths, one audience


def _bumps(*peaks: tuple[float, float, float]) -> tuple[float, ...]:
    """A daily curve: Gaussian bumps (hour, height, width in hours), centred on 0."""
    curve = [
        sum(
            height * math.exp(-(min(abs(h - at), 24 - abs(h - at)) ** 2) / (2 * width**2))
            for at, height, width in peaks
        )
        for h in range(24)
    ]
    mean = sum(curve) / 24
    return tuple(value - mean for value in curve)


_PLATFORM_HOURS: dict[str, tuple[float, ...]] = {
    "twitter": _bumps((9, 0.08, 1.5), (12.5, 0.08, 1.5), (18, 0.06, 2)),
    "instagram": _bumps((12, 0.08, 1.5), (20, 0.1, 2)),
    "tiktok": _bumps((13, 0.05, 1.5), (20.5, 0.12, 2)),
}
_DEFAULT_HOURS = _bumps((12.5, 0.08, 1.5), (19.5, 0.1, 2))
_NO_DAY_PRIOR: tuple[float, ...] = (0.0,) * 7


class Confidence(StrEnum):
    NONE = "none"
    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class Observation:
    """The latest metrics of one published post on one account; None where the platform
    does not report a figure."""

    account_id: str
    provider: str
    published_at: datetime
    likes: int | None = None
    comments: int | None = None
    shares: int | None = None
    views: int | None = None
    reach: int | None = None
    saves: int | None = None

    def __post_init__(self) -> None:
        _require_aware(self.published_at, "published_at")
        for name in ("likes", "comments", "shares", "views", "reach", "saves"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")


def engagement(observation: Observation) -> float:
    """likes + 2*comments + 3*shares + 2*saves; a missing figure counts 0.

    Weights follow the effort and reach of each act: a like is one tap; a comment (writing)
    or a save (keeping it for later) shows more intent; a share puts the post in front of a
    new audience. Views and reach are left out: not every platform reports them, those that
    do count them differently (autoplays, impressions), and they measure distribution by
    the platform more than the audience's response."""
    o = observation
    return (o.likes or 0) + 2 * (o.comments or 0) + 3 * (o.shares or 0) + 2 * (o.saves or 0)


@dataclass(frozen=True)
class HourScore:
    hour: int
    score: float


@dataclass(frozen=True)
class DayScore:
    day: str
    score: float


@dataclass(frozen=True)
class Recommendation:
    best_hours: tuple[HourScore, ...]
    """Up to ``TOP_HOURS`` local hours, best first; empty below ``MIN_DATA_POINTS``."""
    best_days: tuple[DayScore, ...]
    data_points: int
    message: str
    confidence: Confidence

    def as_json(self) -> dict[str, Any]:
        return {
            "bestHours": [{"hour": h.hour, "score": h.score} for h in self.best_hours],
            "bestDays": [{"day": d.day, "score": d.score} for d in self.best_days],
            "dataPoints": self.data_points,
            "message": self.message,
        }


@dataclass(frozen=True)
class NextSlot:
    at_utc: datetime
    at_local: datetime
    score: float


@dataclass(frozen=True)
class Pattern:
    """What the posts say, on the log-engagement scale (0 = an account's usual post)."""

    hours: tuple[float, ...]
    """Estimated effect of each local hour 0-23."""
    days: tuple[float, ...]
    """Estimated effect of each weekday, Monday first."""
    hour_weight: tuple[float, ...]
    """Recency-weighted posts published at each local hour (0: never tried)."""
    day_weight: tuple[float, ...]
    data_points: int
    span_days: float
    """From the first post to the last."""


@dataclass(frozen=True)
class Fit:
    organization: Pattern
    """All the selected posts, shrunk toward the platform curves."""
    platforms: dict[str, Pattern]
    """The organization's pattern per platform: the prior of that platform's accounts."""
    accounts: dict[str, Pattern]
    """Each account's own, shrunk toward its platform's organization pattern."""
    platform_of: dict[str, str]
    """Each account's platform: its key in ``platforms``."""

    def prior_of(self, account_id: str) -> Pattern:
        """The organization pattern ``account_id`` is shrunk toward."""
        return self.platforms[self.platform_of[account_id]]


# ---- public API ----------------------------------------------------------------------


def from_request_timezone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ValueError with a readable message when there is none."""
    key = name.strip()
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass  # not a zone, a malformed key, or a file in the zone directory that is no zone
    hint = _zone_names().get(key.lower())
    suggestion = f"; did you mean '{hint}'?" if hint else " such as 'Europe/Paris' or 'UTC'"
    raise ValueError(f"unknown time zone '{name}': use an IANA time zone name{suggestion}")


def fit(
    observations: Iterable[Observation],
    *,
    now: datetime,
    timezone: str | ZoneInfo = "UTC",
    provider: str | Iterable[str] | None = None,
) -> Fit:
    """The model behind every recommendation; ``provider`` selects one or more providers."""
    accounts = _accumulate(observations, now, _zone(timezone), _providers(provider))
    platforms: dict[str, list[_Account]] = {}
    for account in accounts.values():
        platforms.setdefault(_platform(account.provider), []).append(account)
    by_platform = {name: _pattern(group) for name, group in sorted(platforms.items())}
    return Fit(
        organization=_pattern(list(accounts.values())),
        platforms=by_platform,
        accounts={
            account_id: _pattern([account], prior=by_platform[_platform(account.provider)])
            for account_id, account in sorted(accounts.items())
        },
        platform_of={account_id: _platform(a.provider) for account_id, a in accounts.items()},
    )


def recommend(
    observations: Iterable[Observation],
    *,
    now: datetime,
    timezone: str | ZoneInfo = "UTC",
    provider: str | Iterable[str] | None = None,
) -> Recommendation:
    """The organization's best local hours and weekdays, from all its selected posts."""
    accounts = _accumulate(observations, now, _zone(timezone), _providers(provider))
    pattern = _pattern(list(accounts.values()))
    return _recommendation(pattern, pattern, "")


def recommend_by_account(
    observations: Iterable[Observation],
    *,
    now: datetime,
    timezone: str | ZoneInfo = "UTC",
    provider: str | Iterable[str] | None = None,
) -> dict[str, Recommendation]:
    """One recommendation per account, each shrunk toward its organization's pattern on
    the same platform; an account needs ``MIN_DATA_POINTS`` posts of its own."""
    model = fit(observations, now=now, timezone=timezone, provider=provider)
    return {
        account_id: _recommendation(pattern, model.prior_of(account_id), " on this account")
        for account_id, pattern in model.accounts.items()
    }


def weekly_grid(
    observations: Iterable[Observation],
    *,
    now: datetime,
    timezone: str | ZoneInfo = "UTC",
    provider: str | Iterable[str] | None = None,
    account_id: str | None = None,
) -> list[list[float]]:
    """Scores 0-1 of each local hour (columns 0-23) of each weekday (rows Monday..Sunday);
    0.5 everywhere (no preference) below ``MIN_DATA_POINTS``."""
    pattern, _ = _selected(observations, now, timezone, provider, account_id)
    if pattern.data_points < MIN_DATA_POINTS:
        return [[0.5] * 24 for _ in range(7)]
    return _grid(pattern)


def next_optimal_time(
    observations: Iterable[Observation],
    *,
    now: datetime,
    timezone: str | ZoneInfo = "UTC",
    provider: str | Iterable[str] | None = None,
    account_id: str | None = None,
    horizon: timedelta = timedelta(days=7),
    min_lead: timedelta = timedelta(minutes=15),
) -> NextSlot | None:
    """The earliest whole local hour from ``now + min_lead`` to ``now + horizon`` whose grid
    score is at least ``NEXT_SLOT_SHARE`` of the best recommendable cell. Local times that
    do not exist (spring forward) are skipped; of a repeated hour (fall back) the first
    occurrence comes first. None below ``MIN_DATA_POINTS`` or when no slot qualifies."""
    zone = _zone(timezone)
    pattern, evidence = _selected(observations, now, zone, provider, account_id)
    if pattern.data_points < MIN_DATA_POINTS:
        return None
    grid = _grid(pattern)
    hours, days = _recommendable_hours(evidence), _recommendable_days(evidence)
    best = max(grid[d][h] for d in days for h in hours)
    for at_utc, at_local in _whole_local_hours(now + min_lead, now + horizon, zone):
        day, hour = at_local.weekday(), at_local.hour
        if day in days and hour in hours and grid[day][hour] >= NEXT_SLOT_SHARE * best:
            return NextSlot(at_utc, at_local, grid[day][hour])
    return None


# ---- accumulation: one pass over the observations --------------------------------------


class _Account:
    __slots__ = ("count", "first", "last", "provider", "w", "wy")

    def __init__(self, provider: str, published: float) -> None:
        self.provider = provider
        self.w = [0.0] * _CELLS  # sum of recency weights per cell
        self.wy = [0.0] * _CELLS  # sum of weight * log1p(engagement) per cell
        self.count = 0
        self.first = self.last = published

    def centred(self) -> list[float]:
        """Per cell, the sum of w * z (step 3), from the running sums."""
        total = sum(self.w)
        mean = sum(self.wy) / total if total else 0.0
        return [wy - mean * w for wy, w in zip(self.wy, self.w, strict=True)]


class _WeekClock:
    """The hour of the local week (Monday 00:00-00:59 = 0 ... Sunday 23:00-23:59 = 167) of
    UTC instants: ``int((ts + shift) // 3600) % 168``, where ``shift`` is the zone's
    offset plus the 72 hours by which the epoch (a Thursday) lies into its week.
    ``shifts`` holds the shift of each UTC day (epoch seconds // 86400) on which the offset
    does not change; :meth:`shift_at` fills it and answers per instant on the others."""

    def __init__(self, zone: ZoneInfo) -> None:
        self._zone = zone
        self.shifts: dict[float, float] = {}
        self._changing: set[float] = set()

    def shift_at(self, ts: float) -> float:
        day = ts // _DAY
        if day not in self._changing:
            start, end = self._shift(day * _DAY), self._shift(day * _DAY + _DAY - 1)
            if start == end:  # no zone changes its offset twice in a day
                self.shifts[day] = start
                return start
            self._changing.add(day)
        return self._shift(ts)

    def _shift(self, ts: float) -> float:
        offset = datetime.fromtimestamp(ts, self._zone).utcoffset()
        assert offset is not None
        return offset.total_seconds() + _EPOCH_HOUR_OF_WEEK * _HOUR


def _accumulate(
    observations: Iterable[Observation],
    now: datetime,
    zone: ZoneInfo,
    providers: frozenset[str] | None,
) -> dict[str, _Account]:
    """Per account, the recency-weighted sums of each local (weekday, hour) cell. The hot
    loop (20,000 posts in ~20 ms on a slow CPU): it makes no datetime per post and looks
    the zone's offset up once per UTC day."""
    now_ts = _require_aware(now, "now").timestamp()
    decay = math.log(2) / (HALF_LIFE_DAYS * _DAY)
    clock = _WeekClock(zone)
    shifts = clock.shifts
    exp, log1p = math.exp, math.log1p
    accounts: dict[str, _Account] = {}
    for obs in observations:
        if providers is not None and obs.provider not in providers:
            continue
        ts = obs.published_at.timestamp()
        shift = shifts.get(ts // _DAY)
        if shift is None:
            shift = clock.shift_at(ts)
        cell = int((ts + shift) // _HOUR) % _CELLS
        weight = exp(decay * (ts - now_ts)) if ts < now_ts else 1.0
        y = log1p(engagement(obs))
        account = accounts.get(obs.account_id)
        if account is None:
            account = accounts[obs.account_id] = _Account(obs.provider, ts)
        account.w[cell] += weight
        account.wy[cell] += weight * y
        account.count += 1
        if ts < account.first:
            account.first = ts
        elif ts > account.last:
            account.last = ts
    return accounts


# ---- the model ----------------------------------------------------------------------------


def _pattern(accounts: Sequence[_Account], prior: Pattern | None = None) -> Pattern:
    """The additive model over ``accounts``' posts, shrunk toward ``prior`` (an account's
    organization pattern) or, without one, toward the platforms' curves."""
    z, w = [0.0] * _CELLS, [0.0] * _CELLS
    for account in accounts:
        for cell, (zc, wc) in enumerate(zip(account.centred(), account.w, strict=True)):
            z[cell] += zc
            w[cell] += wc
    if prior is None:
        posts: Counter[str] = Counter()
        for account in accounts:
            posts[account.provider] += account.count
        hour_prior, day_prior = _platform_hours(posts), _NO_DAY_PRIOR
        strength = PLATFORM_PRIOR_STRENGTH
    else:
        hour_prior, day_prior, strength = prior.hours, prior.days, ACCOUNT_PRIOR_STRENGTH
    hours, days = _backfit(z, w, hour_prior, day_prior, strength)
    return Pattern(
        hours=tuple(hours),
        days=tuple(days),
        hour_weight=tuple(sum(w[h::24]) for h in range(24)),
        day_weight=tuple(sum(w[d * 24 : d * 24 + 24]) for d in range(7)),
        data_points=sum(a.count for a in accounts),
        span_days=(
            (max(a.last for a in accounts) - min(a.first for a in accounts)) / _DAY
            if accounts
            else 0.0
        ),
    )


def _backfit(
    z: Sequence[float],
    w: Sequence[float],
    hour_prior: Sequence[float],
    day_prior: Sequence[float],
    strength: float,
) -> tuple[list[float], list[float]]:
    """Hour and day effects of step 5, shrunk toward the priors as in step 6. ``z`` and
    ``w`` hold, per cell, the sums of w * z and of w."""
    rows = [w[d * 24 : d * 24 + 24] for d in range(7)]  # one weekday's 24 hours
    columns = [w[h::24] for h in range(24)]  # one hour's 7 weekdays
    z_hour = [sum(z[h::24]) for h in range(24)]
    z_day = [sum(z[d * 24 : d * 24 + 24]) for d in range(7)]
    hour_weight = _smooth([sum(column) for column in columns])
    day_weight = [sum(row) for row in rows]
    hours, days = list(hour_prior), [0.0] * 7
    for _ in range(_BACKFIT_ROUNDS):
        residual = _smooth([z_hour[h] - sum(map(mul, days, columns[h])) for h in range(24)])
        hours = [
            (residual[h] + strength * hour_prior[h]) / (hour_weight[h] + strength)
            for h in range(24)
        ]
        days = [
            (z_day[d] - sum(map(mul, hours, rows[d])) + strength * day_prior[d])
            / (day_weight[d] + strength)
            for d in range(7)
        ]
    return hours, days


def _smooth(per_hour: Sequence[float]) -> list[float]:
    """The circular kernel of step 5 applied to per-hour sums."""
    same, next_, second = HOUR_KERNEL
    return [
        same * per_hour[h]
        + next_ * (per_hour[h - 1] + per_hour[(h + 1) % 24])
        + second * (per_hour[h - 2] + per_hour[(h + 2) % 24])
        for h in range(24)
    ]


def _platform_hours(posts_per_provider: Counter[str]) -> tuple[float, ...]:
    """The platform curve of a selection: the providers' curves, weighted by posts."""
    total = sum(posts_per_provider.values())
    if not total:
        return _DEFAULT_HOURS
    return tuple(
        sum(
            count * _PLATFORM_HOURS.get(_platform(provider), _DEFAULT_HOURS)[h]
            for provider, count in posts_per_provider.items()
        )
        / total
        for h in range(24)
    )


# ---- from the model to answers ----------------------------------------------------------


def _recommendation(pattern: Pattern, evidence: Pattern, scope: str) -> Recommendation:
    n = pattern.data_points
    if n < MIN_DATA_POINTS:
        return Recommendation(
            (),
            (),
            n,
            f"Not enough data yet: best times need at least {MIN_DATA_POINTS} published posts "
            f"with metrics{scope}, and there {'is' if n == 1 else 'are'} {n} so far.",
            Confidence.NONE,
        )
    hour_scores, day_scores = _scores(pattern.hours), _scores(pattern.days)
    hours = sorted(_recommendable_hours(evidence), key=lambda h: (-pattern.hours[h], h))
    days = sorted(_recommendable_days(evidence), key=lambda d: (-pattern.days[d], d))
    confidence, message = _assessment(pattern)
    return Recommendation(
        tuple(HourScore(h, hour_scores[h]) for h in hours[:TOP_HOURS]),
        tuple(DayScore(DAY_NAMES[d], day_scores[d]) for d in days[:TOP_DAYS]),
        n,
        message,
        confidence,
    )


def _assessment(pattern: Pattern) -> tuple[Confidence, str]:
    n, weeks = pattern.data_points, int(pattern.span_days // 7)
    tried = [h for h in range(24) if pattern.hour_weight[h] > 0]
    if n >= 60 and weeks >= 4 and len(tried) >= 8:
        confidence = Confidence.HIGH
    elif n >= 25 and weeks >= 2 and len(tried) >= 4:
        confidence = Confidence.MODERATE
    else:
        confidence = Confidence.LOW
    days = round(pattern.span_days)
    span = f" over {weeks} weeks" if weeks >= 2 else f" over {days} days" if days >= 2 else ""
    plural = "s" if len(tried) != 1 else ""
    facts = f"{confidence.capitalize()} confidence: {n} posts{span} at {len(tried)} hour{plural}."
    hints = []
    if len(tried) < 12:
        untried = [h for h in range(24) if pattern.hour_weight[h] == 0]
        promising = sorted(sorted(untried, key=lambda h: (-pattern.hours[h], h))[:3])
        hints.append(f"post at hours you haven't tried yet ({_join(f'{h}:00' for h in promising)})")
    unused = [d for d in range(7) if pattern.day_weight[d] == 0]
    weekend = (pattern.day_weight[5] + pattern.day_weight[6]) / (sum(pattern.day_weight) or 1)
    if unused == [5, 6]:
        hints.append("publish on weekends too")
    elif unused:
        hints.append(f"publish on {_join(DAY_NAMES[d] for d in unused)} too")
    elif weekend < 0.1:
        hints.append("publish more on weekends")
    if weeks < 4:
        hints.append("keep publishing for a few more weeks")
    return confidence, facts + (f" To sharpen it, {_join(hints)}." if hints else "")


def _scores(values: Sequence[float]) -> list[float]:
    """Min-max to 0-1 (step 7); a spread under ``MEANINGFUL_SPREAD`` stays near 0.5."""
    low, high = min(values), max(values)
    middle, spread = (high + low) / 2, max(high - low, MEANINGFUL_SPREAD)
    return [round(0.5 + (value - middle) / spread, 2) for value in values]


def _grid(pattern: Pattern) -> list[list[float]]:
    flat = _scores([pattern.days[d] + pattern.hours[h] for d in range(7) for h in range(24)])
    return [flat[d * 24 : d * 24 + 24] for d in range(7)]


def _recommendable_hours(evidence: Pattern) -> set[int]:
    return {h for h, weight in enumerate(_smooth(evidence.hour_weight)) if weight > 0}


def _recommendable_days(evidence: Pattern) -> set[int]:
    return {d for d, weight in enumerate(evidence.day_weight) if weight > 0}


def _selected(
    observations: Iterable[Observation],
    now: datetime,
    timezone: str | ZoneInfo,
    provider: str | Iterable[str] | None,
    account_id: str | None,
) -> tuple[Pattern, Pattern]:
    """The pattern asked for and the organization pattern whose posts show which hours
    and days are recommendable."""
    if account_id is None:
        accounts = _accumulate(observations, now, _zone(timezone), _providers(provider))
        pattern = _pattern(list(accounts.values()))
        return pattern, pattern
    model = fit(observations, now=now, timezone=timezone, provider=provider)
    account = model.accounts.get(account_id)
    if account is None:
        return _pattern([]), model.organization
    return account, model.prior_of(account_id)


def _whole_local_hours(
    start: datetime, end: datetime, zone: ZoneInfo
) -> Iterator[tuple[datetime, datetime]]:
    """(UTC, local) of each whole local hour from ``start`` to ``end``, in order. A wall
    time in a spring-forward gap has no instant and is skipped; a repeated one (fall back)
    comes twice, its first occurrence first."""
    wall = start.astimezone(zone).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    wall -= timedelta(hours=1)  # a repeated hour may still lie ahead of ``start``
    while True:
        for fold in (0, 1):
            at_utc = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
            at_local = at_utc.astimezone(zone)
            if at_local.replace(tzinfo=None) != wall or (fold and at_local.fold == 0):
                continue  # in a gap, or not a repeated hour
            if at_utc > end:
                return
            if at_utc >= start:
                yield at_utc, at_local
        wall += timedelta(hours=1)


# ---- small helpers ----------------------------------------------------------------------


def _require_aware(moment: datetime, name: str) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {moment.isoformat()}")
    return moment


def _zone(timezone: str | ZoneInfo) -> ZoneInfo:
    return timezone if isinstance(timezone, ZoneInfo) else from_request_timezone(timezone)


@cache
def _zone_names() -> dict[str, str]:
    """Every IANA name this machine knows, by its lower-case spelling (for hints only:
    listing them reads the whole zone directory)."""
    return {name.lower(): name for name in sorted(available_timezones())}


def _providers(provider: str | Iterable[str] | None) -> frozenset[str] | None:
    if provider is None:
        return None
    return frozenset({provider} if isinstance(provider, str) else provider)


def _platform(provider: str) -> str:
    return _SAME_PLATFORM.get(provider, provider)


def _join(items: Iterable[str]) -> str:
    words = list(items)
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
