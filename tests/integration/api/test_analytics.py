"""``/api/analytics`` over real HTTP, against engagement whose true best hours are known.

Each organization's history is built from events as the pipeline records them (a post
published to an account, then its engagement read three days later), with timestamps from
a simulated clock spanning six weeks, and counters from the simulators' own engagement
model (``sandbox/engagement.py``) for an audience whose best hours and days are chosen
here. The API must find them.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from domain.clock import simulated_clock
from domain.post import Post
from projections.engagement import EngagementView
from projections.rebuild import rebuild
from sandbox.engagement import Audience, counters
from tests.conftest import Account, unique

NOW = datetime.now(UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def seed_history(
    kairos: Any,
    account: Account,
    integration_id: str,
    audience: Audience,
    *,
    weeks: int = 6,
    per_day: int = 4,
    seed: int = 7,
) -> int:
    """Posts at random times over ``weeks``, each published and read three days later (or
    now, if sooner), saved as the pipeline saves them. Returns the number of posts."""
    rng = random.Random(seed)
    clock = Clock()
    posts = 0
    start = NOW - timedelta(weeks=weeks)
    with simulated_clock(clock):
        for day in range(weeks * 7):
            for _ in range(per_day):
                published_at = start + timedelta(days=day, seconds=rng.randrange(86_400))
                read_at = min(published_at + timedelta(days=3), NOW)
                clock.now = published_at - timedelta(minutes=5)
                post = Post.draft(
                    organization_id=account.organization_id,
                    author_id=account.user_id,
                    content=f"history {posts}",
                    thread=[],
                    media_urls=[],
                    accounts={integration_id: "twitter"},
                )
                post.schedule(published_at, now=clock.now)
                clock.now = published_at
                post.start_publishing()
                post.record_published(integration_id, remote_id=str(post.id), url="https://x.test")
                clock.now = read_at
                seen = counters(audience, str(post.id), published_at, read_at)
                post.record_metrics(
                    integration_id,
                    likes=seen.likes,
                    comments=seen.comments,
                    shares=seen.shares,
                    views=seen.views,
                    reach=None,
                    saves=seen.saves,
                    next_collection_at=None,
                )
                kairos.app.save_all(post)
                posts += 1
    return posts


def caught_up(kairos: Any) -> None:
    view: EngagementView = kairos.engagement_view
    assert view.catch_up_to(kairos.app.recorder.max_notification_id(), timeout=30)


@pytest.fixture
def history(kairos: Any, account: Account) -> dict[str, Any]:
    """Two X accounts whose audiences peak at 09:00 and 18:00 UTC on Tuesdays and
    Thursdays, one sixty times the other's size."""
    first = account.connect_x(unique("peaks"))
    second = account.connect_x(unique("small"))
    big = Audience(best_hours=(9, 18), best_days=(1, 3), size=50_000)
    small = Audience(best_hours=(9, 18), best_days=(1, 3), size=800)
    seed_history(kairos, account, first["id"], big, seed=1)
    seed_history(kairos, account, second["id"], small, seed=2)
    caught_up(kairos)
    return {"big": first, "small": second}


def near(hour: int, targets: set[int]) -> bool:
    return any(min(abs(hour - t), 24 - abs(hour - t)) <= 1 for t in targets)


def test_optimal_times_finds_the_hours_and_days_the_audience_favours(
    account: Account, history: dict[str, Any]
) -> None:
    answer = account.http.get("/api/analytics/optimal-times", params={"platform": "twitter"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["success"] is True
    recommendation = body["recommendation"]
    assert set(recommendation) == {"bestHours", "bestDays", "dataPoints", "message"}
    assert recommendation["dataPoints"] == 2 * 6 * 7 * 4
    hours = [h["hour"] for h in recommendation["bestHours"]]
    assert len(hours) == 5
    assert near(hours[0], {9, 18}), hours
    assert all(min(abs(h - t) for t in (9, 18)) <= 2 for h in hours), hours
    assert any(near(h, {9}) for h in hours), hours
    assert any(near(h, {18}) for h in hours), hours
    assert recommendation["bestHours"][0]["score"] == 1.0
    days = [d["day"] for d in recommendation["bestDays"]]
    assert {"Tuesday", "Thursday"} <= set(days), days
    assert recommendation["message"]


def test_by_account_gives_each_account_its_own_peaks(kairos: Any, account: Account) -> None:
    early = account.connect_x(unique("early"))
    late = account.connect_x(unique("late"))
    seed_history(kairos, account, early["id"], Audience((6,), (0,), 20_000), seed=3)
    seed_history(kairos, account, late["id"], Audience((21,), (5,), 900), seed=4)
    caught_up(kairos)

    body = account.http.get("/api/analytics/optimal-times/by-account").json()

    by_id = {a["accountId"]: a for a in body["accounts"]}
    first, second = by_id[early["id"]], by_id[late["id"]]
    assert (first["provider"], first["accountName"]) == ("twitter", early["accountName"])
    assert near(first["recommendation"]["bestHours"][0]["hour"], {6})
    assert first["recommendation"]["bestDays"][0]["day"] == "Monday"
    assert near(second["recommendation"]["bestHours"][0]["hour"], {21})
    assert second["recommendation"]["bestDays"][0]["day"] == "Saturday"


def test_hours_follow_the_asked_time_zone(account: Account, history: dict[str, Any]) -> None:
    """Tokyo has no daylight saving (UTC+9 all year): the same posts give the same hours,
    nine later. (The organization's peaks sit between its two accounts' own: see by-account
    for each.)"""

    def best(timezone: str) -> list[int]:
        body = account.http.get(
            "/api/analytics/optimal-times", params={"platform": "x", "timezone": timezone}
        ).json()
        assert body["timezone"] == timezone
        return [h["hour"] for h in body["recommendation"]["bestHours"]]

    in_utc, in_tokyo = best("UTC"), best("Asia/Tokyo")
    shifted = {(hour + 9) % 24 for hour in in_utc}
    assert len(shifted & set(in_tokyo)) >= 4, (in_utc, in_tokyo)
    assert any(near(hour, {(9 + 9) % 24}) for hour in in_tokyo), in_tokyo


def test_next_optimal_time_is_a_favoured_slot_in_the_coming_week(
    account: Account, history: dict[str, Any]
) -> None:
    body = account.http.get(
        "/api/analytics/next-optimal-time",
        params={"accountId": history["big"]["id"], "timezone": "Europe/Paris"},
    ).json()
    slot = body["nextOptimalTime"]
    assert slot is not None, body
    at = datetime.fromisoformat(slot["at"])
    local = datetime.fromisoformat(slot["localTime"])
    assert at == local
    assert local.utcoffset() == at.astimezone(ZoneInfo("Europe/Paris")).utcoffset()
    assert datetime.now(UTC) < at < datetime.now(UTC) + timedelta(days=7)
    assert near(at.hour, {9, 18}), slot
    assert at.weekday() in (1, 3), slot  # Tuesday or Thursday
    assert slot["day"] in ("Tuesday", "Thursday")
    assert body["dataPoints"] == 6 * 7 * 4


def test_the_weekly_schedule_is_a_seven_by_twenty_four_grid(
    account: Account, history: dict[str, Any]
) -> None:
    body = account.http.get(
        "/api/analytics/weekly-schedule", params={"accountId": history["big"]["id"]}
    ).json()
    assert body["days"][0] == "Monday"
    grid = body["scores"]
    assert len(grid) == 7
    assert all(len(row) == 24 for row in grid)
    assert all(0 <= score <= 1 for row in grid for score in row)
    best_day, best_hour = max(
        ((d, h) for d in range(7) for h in range(24)), key=lambda c: grid[c[0]][c[1]]
    )
    assert best_day in (1, 3)
    assert near(best_hour, {9, 18})


def test_the_engagement_summary_adds_up_every_post(
    account: Account, history: dict[str, Any], kairos: Any
) -> None:
    body = account.http.get("/api/analytics/engagement-summary").json()
    rows = kairos.engagement_view.latest(account.organization_id)
    assert body["totals"]["posts"] == len(rows)
    assert body["totals"]["likes"] == sum(r.likes or 0 for r in rows)
    assert body["totals"]["views"] == sum(r.views or 0 for r in rows)
    assert body["platforms"]["twitter"] == body["totals"]


def test_rebuilding_the_projection_gives_identical_answers(
    account: Account, history: dict[str, Any], kairos: Any
) -> None:
    before = [
        account.http.get(path, params={"timezone": "America/New_York"}).json()
        for path in ("/api/analytics/optimal-times", "/api/analytics/weekly-schedule")
    ]
    view: EngagementView = kairos.engagement_view
    report = rebuild(
        view, lambda prefix: EngagementView(view.datastore, view.app, prefix=prefix), replace=True
    )
    assert report.identical, report.differences
    after = [
        account.http.get(path, params={"timezone": "America/New_York"}).json()
        for path in ("/api/analytics/optimal-times", "/api/analytics/weekly-schedule")
    ]
    assert after == before


def test_too_little_data_says_so_instead_of_inventing_hours(kairos: Any, account: Account) -> None:
    x = account.connect_x(unique("few"))
    seed_history(kairos, account, x["id"], Audience((9,), (1,)), weeks=1, per_day=1)
    caught_up(kairos)

    recommendation = account.http.get("/api/analytics/optimal-times").json()["recommendation"]

    assert recommendation["bestHours"] == []
    assert recommendation["bestDays"] == []
    assert recommendation["dataPoints"] == 7
    assert "10" in recommendation["message"]
    assert "7" in recommendation["message"]
    slot = account.http.get("/api/analytics/next-optimal-time").json()
    assert slot["nextOptimalTime"] is None


def test_a_plan_without_best_time_gets_the_seed_403(kairos: Any, account: Account) -> None:
    with kairos.datastore.get_connection() as conn:
        conn.execute(
            "UPDATE organizations SET plan = 'starter' WHERE id = %s", (account.organization_id,)
        )
        conn.commit()
    for path in (
        "/api/analytics/optimal-times",
        "/api/analytics/optimal-times/by-account",
        "/api/analytics/next-optimal-time",
        "/api/analytics/weekly-schedule",
    ):
        refused = account.http.get(path)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["success"] is False
        assert "Requires a plan with the best-time-to-post feature" in refused.json()["message"]
    assert account.http.get("/api/analytics/engagement-summary").status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [({"timezone": "Mars/Olympus"}, "timezone"), ({"platform": "myspace"}, "platform")],
)
def test_a_bad_parameter_is_a_400_naming_it(
    account: Account, params: dict[str, str], field: str
) -> None:
    refused = account.http.get("/api/analytics/optimal-times", params=params)
    assert refused.status_code == 400, refused.text
    assert refused.json()["field"] == field


def test_another_organizations_account_is_not_found(make_account: Any) -> None:
    owner, stranger = make_account("owner"), make_account("stranger")
    theirs = owner.connect_x(unique("theirs"))
    for path in ("/api/analytics/next-optimal-time", "/api/analytics/weekly-schedule"):
        answer = stranger.http.get(path, params={"accountId": theirs["id"]})
        assert answer.status_code == 404, answer.text
    assert UUID(theirs["id"])
