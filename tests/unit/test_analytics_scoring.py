"""Best-time scoring: synthetic posts with a known truth, and the recommendation finds it.

Engagement is drawn as ``size * exp(lift(local hour, weekday) + noise)`` from a seeded
``random.Random``, so every test knows which hour and day should win.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from application.analytics import (
    DAY_NAMES,
    MIN_DATA_POINTS,
    Confidence,
    Observation,
    engagement,
    fit,
    from_request_timezone,
    next_optimal_time,
    recommend,
    recommend_by_account,
    weekly_grid,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")
TUESDAY, SATURDAY, SUNDAY = 1, 5, 6

Lift = Callable[[datetime], float]
"""The log-engagement lift of a post published at a local time."""


def peak(hour: int, day: int | None = None, *, height: float = 1.0) -> Lift:
    """A bump one hour wide (sigma) around ``hour``, and +0.7 on ``day``."""

    def lift(local: datetime) -> float:
        distance = min(abs(local.hour - hour), 24 - abs(local.hour - hour))
        bonus = 0.7 if local.weekday() == day else 0.0
        return height * math.exp(-(distance**2) / 2) + bonus

    return lift


def posts(
    account: str,
    lift: Lift,
    *,
    count: int = 200,
    start: datetime = NOW - timedelta(days=120),
    end: datetime = NOW,
    size: float = 200,
    noise: float = 0.3,
    provider: str = "twitter",
    zone: ZoneInfo | None = None,
    hours: Sequence[int] = range(24),
    seed: int = 1,
) -> list[Observation]:
    """``count`` posts at random instants between ``start`` and ``end``, at whole-hour
    minutes of ``hours`` (local to ``zone``, UTC by default)."""
    rng = random.Random(f"{account}/{seed}")
    zone = zone or ZoneInfo("UTC")
    made = []
    for _ in range(count):
        instant = start + (end - start) * rng.random()
        local = instant.astimezone(zone).replace(hour=rng.choice(hours), minute=rng.randrange(60))
        at = local.astimezone(UTC)
        likes = round(size * math.exp(lift(local) + rng.gauss(0, noise)))
        made.append(
            Observation(
                account, provider, at, likes, likes // 20, likes // 50, likes * 30, None, None
            )
        )
    return made


def hourly(
    account: str, lift: Lift, *, zone: ZoneInfo, weeks: int, end: datetime, seed: int = 1
) -> list[Observation]:
    """One post at every whole local hour of the ``weeks`` before ``end``: no weekday is
    favoured, so the grid's best cells are exactly the best hour on every day."""
    rng = random.Random(seed)
    made = []
    at = end - timedelta(weeks=weeks)
    while at < end:
        local = at.astimezone(zone)
        likes = round(300 * math.exp(lift(local) + rng.gauss(0, 0.05)))
        made.append(Observation(account, "twitter", at, likes=likes, comments=likes // 10))
        at += timedelta(hours=1)
    return made


def hour_distance(a: int, b: int) -> int:
    return min(abs(a - b), 24 - abs(a - b))


def best_hour(effects: Sequence[float]) -> int:
    return max(range(24), key=lambda h: effects[h])


def mean_distance(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def top_hours(observations: Sequence[Observation]) -> list[int]:
    return [h.hour for h in recommend(observations, now=NOW).best_hours]


# ---- engagement and scores ---------------------------------------------------------------


def test_engagement_weighs_interactions_and_counts_missing_figures_as_zero() -> None:
    full = Observation("a", "x", NOW, likes=10, comments=3, shares=2, views=999, reach=5, saves=4)
    assert engagement(full) == 10 + 2 * 3 + 3 * 2 + 2 * 4
    assert engagement(Observation("a", "x", NOW, likes=7)) == 7
    assert engagement(Observation("a", "x", NOW)) == 0


@pytest.mark.parametrize(
    ("hour", "day", "seed"),
    [(18, TUESDAY, 1), (7, SATURDAY, 2), (0, SUNDAY, 3), (12, 3, 4)],
)
def test_the_peak_hour_and_day_are_found(hour: int, day: int, seed: int) -> None:
    recommendation = recommend(posts("a", peak(hour, day), seed=seed), now=NOW)

    assert recommendation.data_points == 200
    assert len(recommendation.best_hours) == 5
    assert len(recommendation.best_days) == 3
    best = recommendation.best_hours[0]
    assert hour_distance(best.hour, hour) <= 1
    assert best.score == 1.0
    assert recommendation.best_days[0].day == DAY_NAMES[day]
    assert recommendation.best_days[0].score == 1.0
    scores = [h.score for h in recommendation.best_hours]
    assert scores == sorted(scores, reverse=True)


def test_the_answer_has_the_documented_shape() -> None:
    body = recommend(posts("a", peak(18)), now=NOW).as_json()

    assert set(body) == {"bestHours", "bestDays", "dataPoints", "message"}
    assert set(body["bestHours"][0]) == {"hour", "score"}
    assert set(body["bestDays"][0]) == {"day", "score"}
    assert body["dataPoints"] == 200
    assert all(0 <= h["score"] <= 1 for h in body["bestHours"])


def test_without_real_differences_no_hour_scores_one() -> None:
    flat = posts("a", lambda local: 0.0, noise=0.0, count=300)

    recommendation = recommend(flat, now=NOW)

    assert recommendation.best_hours
    assert all(0.4 <= h.score <= 0.6 for h in recommendation.best_hours)
    assert all(0.4 <= d.score <= 0.6 for d in recommendation.best_days)


# ---- per-account normalisation, recency, shrinkage ---------------------------------------


def test_a_huge_account_does_not_drown_a_small_one() -> None:
    big = posts("big", peak(18), size=100_000, count=300, seed=5)
    small = posts("small", peak(6), size=30, count=300, seed=6)
    per_hour: Counter[int] = Counter()
    for observation in big + small:
        per_hour[observation.published_at.hour] += int(engagement(observation))
    naive = [hour for hour, _ in per_hour.most_common(5)]
    assert hour_distance(naive[0], 18) <= 1
    assert all(hour_distance(hour, 6) > 1 for hour in naive)  # summing ignores the small one

    best = top_hours(big + small)

    assert any(hour_distance(hour, 18) <= 1 for hour in best)
    assert any(hour_distance(hour, 6) <= 1 for hour in best)


def test_recent_posts_outweigh_older_ones() -> None:
    old = posts("a", peak(10), count=150, start=NOW - timedelta(days=400), end=NOW - timedelta(200))
    recent = posts("a", peak(20), count=60, start=NOW - timedelta(days=60), seed=2)

    assert hour_distance(top_hours(old + recent)[0], 20) <= 1


def test_a_sparse_account_leans_on_its_organization_and_a_rich_one_keeps_its_own() -> None:
    main = posts("main", peak(9), count=400, seed=7)
    sparse = [  # on its own, 03:00 looks best
        Observation("sparse", "twitter", datetime(2026, 2, 24, 3, tzinfo=UTC), likes=900),
        Observation("sparse", "twitter", datetime(2026, 2, 25, 14, tzinfo=UTC), likes=40),
        Observation("sparse", "twitter", datetime(2026, 2, 26, 15, tzinfo=UTC), likes=50),
    ]
    rich = posts("rich", peak(20), count=300, seed=8)

    model = fit(main + sparse + rich, now=NOW)

    organization = model.prior_of("sparse").hours
    sparse_hours, rich_hours = model.accounts["sparse"].hours, model.accounts["rich"].hours
    assert best_hour(organization) == 9
    assert best_hour(sparse_hours) == 9
    assert hour_distance(best_hour(rich_hours), 20) <= 1
    assert mean_distance(sparse_hours, organization) < mean_distance(rich_hours, organization) / 2


def test_each_account_gets_its_own_recommendation_once_it_has_enough_posts() -> None:
    observations = [
        *posts("evening", peak(19), count=120, seed=9),
        *posts("morning", peak(8), count=120, seed=10),
        *posts("new", peak(8), count=4, seed=11),
    ]

    by_account = recommend_by_account(observations, now=NOW)

    assert sorted(by_account) == ["evening", "morning", "new"]
    assert hour_distance(by_account["evening"].best_hours[0].hour, 19) <= 1
    assert hour_distance(by_account["morning"].best_hours[0].hour, 8) <= 1
    new = by_account["new"]
    assert new.best_hours == ()
    assert new.best_days == ()
    assert new.data_points == 4
    assert "10 published posts with metrics on this account" in new.message
    assert "there are 4" in new.message


# ---- too little data ---------------------------------------------------------------------


def test_below_the_minimum_nothing_is_invented() -> None:
    few = posts("a", peak(18), count=MIN_DATA_POINTS - 3)

    recommendation = recommend(few, now=NOW)

    assert recommendation.best_hours == ()
    assert recommendation.best_days == ()
    assert recommendation.data_points == 7
    assert recommendation.confidence is Confidence.NONE
    assert "at least 10 published posts with metrics" in recommendation.message
    assert "there are 7" in recommendation.message
    assert weekly_grid(few, now=NOW) == [[0.5] * 24 for _ in range(7)]
    assert next_optimal_time(few, now=NOW) is None
    assert recommend([], now=NOW).data_points == 0


def test_the_minimum_applies_to_the_platform_asked() -> None:
    observations = posts("x", peak(18), count=50) + posts("t", peak(18), count=5, provider="tiktok")

    assert recommend(observations, now=NOW).data_points == 55
    tiktok = recommend(observations, now=NOW, provider="tiktok")
    assert tiktok.data_points == 5
    assert tiktok.best_hours == ()
    both = recommend(observations, now=NOW, provider={"twitter", "tiktok"})
    assert both.data_points == 55


def test_only_hours_near_those_tried_are_recommended() -> None:
    mornings = posts("a", peak(10), hours=[9, 10, 11], count=60)

    recommendation = recommend(mornings, now=NOW)

    assert {h.hour for h in recommendation.best_hours} <= set(range(7, 14))
    assert "hours you haven't tried yet" in recommendation.message


# ---- the message ------------------------------------------------------------------------


def test_the_message_says_how_confident_and_what_would_sharpen_it() -> None:
    thin = posts("a", peak(18), count=12, hours=[17, 18, 19], start=NOW - timedelta(days=6))
    thick = posts("a", peak(18), count=300)
    weekdays_only = [o for o in thick if o.published_at.weekday() < SATURDAY]

    low = recommend(thin, now=NOW)
    high = recommend(thick, now=NOW)

    assert low.confidence is Confidence.LOW
    assert re.match(r"Low confidence: 12 posts over \d days at 3 hours\. To sharpen", low.message)
    assert "post at hours you haven't tried yet (" in low.message
    assert "keep publishing for a few more weeks" in low.message
    assert high.confidence is Confidence.HIGH
    assert re.fullmatch(r"High confidence: 300 posts over 1[67] weeks at 24 hours\.", high.message)
    assert "publish on weekends too" in recommend(weekdays_only, now=NOW).message


# ---- time zones -----------------------------------------------------------------------


def _nine_in_new_york(local: datetime) -> float:
    return 1.2 if local.astimezone(NEW_YORK).hour == 9 else 0.0


@pytest.mark.parametrize(
    ("summer", "winter", "now"),
    [
        # 9:00 in New York is 13:00 UTC in July (EDT) and 14:00 UTC in January (EST).
        (datetime(2025, 7, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), NOW),
        (datetime(2025, 10, 1, tzinfo=UTC), datetime(2025, 11, 3, tzinfo=UTC), NOW - timedelta(90)),
    ],
)
def test_local_hours_follow_daylight_saving_time(
    summer: datetime, winter: datetime, now: datetime
) -> None:
    observations = [
        *posts("a", _nine_in_new_york, start=summer, end=summer + timedelta(28), seed=1),
        *posts("a", _nine_in_new_york, start=winter, end=winter + timedelta(28), seed=2),
    ]

    in_new_york = recommend(observations, now=now, timezone="America/New_York")
    in_utc = recommend(observations, now=now)

    assert in_new_york.best_hours[0].hour == 9
    assert in_utc.best_hours[0].hour in {13, 14}
    new_york_peak = max(fit(observations, now=now, timezone=NEW_YORK).organization.hours)
    utc_peak = max(fit(observations, now=now).organization.hours)
    assert new_york_peak > utc_peak  # in UTC the same audience is split over two hours


def test_unknown_time_zones_are_refused_clearly() -> None:
    assert from_request_timezone(" Europe/Paris ") == ZoneInfo("Europe/Paris")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        from_request_timezone("Mars/Olympus")
    with pytest.raises(ValueError, match="did you mean 'UTC'"):
        from_request_timezone("utc")
    for bad in ("", "../etc/passwd", "/etc/localtime", "zone.tab", "America"):
        with pytest.raises(ValueError, match="unknown time zone"):
            from_request_timezone(bad)
    with pytest.raises(ValueError, match="unknown time zone"):
        recommend(posts("a", peak(18)), now=NOW, timezone="Nowhere/Special")


def test_naive_datetimes_and_negative_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="published_at must be timezone-aware"):
        Observation("a", "twitter", datetime(2026, 1, 1, 9), likes=1)
    with pytest.raises(ValueError, match="likes must not be negative"):
        Observation("a", "twitter", NOW, likes=-1)
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        recommend(posts("a", peak(18)), now=datetime(2026, 1, 1, 9))


# ---- the weekly grid and the next slot ---------------------------------------------------


def test_the_weekly_grid_is_seven_days_of_24_scores() -> None:
    grid = weekly_grid(posts("a", peak(18, TUESDAY), count=400), now=NOW)

    assert len(grid) == 7
    assert all(len(row) == 24 for row in grid)
    assert all(0.0 <= score <= 1.0 for row in grid for score in row)
    best_day, best_hour = max(
        ((d, h) for d in range(7) for h in range(24)), key=lambda cell: grid[cell[0]][cell[1]]
    )
    assert grid[best_day][best_hour] == 1.0
    assert best_day == TUESDAY
    assert hour_distance(best_hour, 18) <= 1
    assert min(score for row in grid for score in row) == 0.0


def test_the_grid_and_next_slot_of_one_account() -> None:
    observations = [
        *hourly("evening", peak(19), zone=ZoneInfo("UTC"), weeks=3, end=NOW),
        *hourly("morning", peak(8), zone=ZoneInfo("UTC"), weeks=3, end=NOW, seed=2),
    ]

    grid = weekly_grid(observations, now=NOW, account_id="morning")
    slot = next_optimal_time(observations, now=NOW, account_id="evening")

    assert all(best_hour(row) == 8 for row in grid)
    assert slot is not None
    assert slot.at_utc == NOW.replace(hour=19)
    assert weekly_grid(observations, now=NOW, account_id="unknown") == [[0.5] * 24] * 7
    assert next_optimal_time(observations, now=NOW, account_id="unknown") is None


def test_the_next_slot_skips_the_hour_that_spring_forward_removes() -> None:
    two_am = hourly("a", peak(2), zone=NEW_YORK, weeks=8, end=datetime(2026, 3, 7, tzinfo=UTC))
    now = datetime(2026, 3, 8, 1, 30, tzinfo=NEW_YORK)  # 02:00 becomes 03:00 at 07:00 UTC
    grid = weekly_grid(two_am, now=now, timezone="America/New_York")
    assert all(row[2] >= 0.9 > max(row[:2] + row[3:]) for row in grid)

    slot = next_optimal_time(two_am, now=now, timezone="America/New_York")

    assert slot is not None
    assert slot.at_utc == datetime(2026, 3, 9, 6, tzinfo=UTC)
    assert slot.at_local == datetime(2026, 3, 9, 2, tzinfo=NEW_YORK)
    assert slot.at_local.utcoffset() == timedelta(hours=-4)
    assert slot.score >= 0.9


def test_the_next_slot_in_the_hour_that_fall_back_repeats() -> None:
    one_am = hourly("a", peak(1), zone=NEW_YORK, weeks=8, end=datetime(2026, 10, 31, tzinfo=UTC))

    def next_slot(now: datetime) -> datetime:
        slot = next_optimal_time(one_am, now=now, timezone=NEW_YORK)
        assert slot is not None
        assert slot.at_local.hour == 1
        return slot.at_utc

    # 2026-11-01: 01:00-01:59 happens twice, first in EDT (05:00 UTC), then in EST (06:00 UTC).
    first, repeat = datetime(2026, 11, 1, 5, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC)
    assert next_slot(first - timedelta(minutes=30)) == first  # from 00:30 EDT
    assert next_slot(first + timedelta(minutes=20)) == repeat  # from 01:20 EDT: 01:00 EST is ahead
    assert next_slot(repeat + timedelta(minutes=20)) == repeat + timedelta(days=1)


def test_the_next_slot_keeps_its_lead_and_horizon() -> None:
    six_pm = hourly("a", peak(18), zone=ZoneInfo("UTC"), weeks=4, end=NOW)

    just_before = next_optimal_time(six_pm, now=NOW.replace(hour=17, minute=50))
    with_no_lead = next_optimal_time(
        six_pm, now=NOW.replace(hour=17, minute=50), min_lead=timedelta(0)
    )
    too_short = next_optimal_time(six_pm, now=NOW.replace(hour=19), horizon=timedelta(hours=12))

    assert just_before is not None
    assert with_no_lead is not None
    assert just_before.at_utc == NOW.replace(hour=18) + timedelta(days=1)
    assert with_no_lead.at_utc == NOW.replace(hour=18)
    assert too_short is None


# ---- determinism and speed ---------------------------------------------------------------


def test_the_same_posts_give_the_same_answer_in_any_order() -> None:
    observations = posts("a", peak(18, TUESDAY)) + posts("b", peak(9), seed=2)
    shuffled = list(observations)
    random.Random(3).shuffle(shuffled)

    first = recommend(observations, now=NOW, timezone="Europe/Paris")

    assert recommend(observations, now=NOW, timezone="Europe/Paris") == first
    assert recommend(shuffled, now=NOW, timezone="Europe/Paris") == first
    assert weekly_grid(shuffled, now=NOW) == weekly_grid(observations, now=NOW)


def test_twenty_thousand_posts_are_scored_quickly() -> None:
    observations = [
        observation
        for account in range(20)
        for observation in posts(f"account-{account}", peak(account), count=1_000, seed=account)
    ]

    started = time.perf_counter()
    recommendation = recommend(observations, now=NOW, timezone="America/New_York")
    elapsed = time.perf_counter() - started

    assert recommendation.data_points == 20_000
    assert elapsed < 1.0  # a loose bound; the benchmark measures it properly
