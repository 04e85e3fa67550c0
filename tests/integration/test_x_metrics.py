"""Post metrics on X over real HTTP: the simulator's lookup, audiences and seeded history,
and the adapter's ``post_metrics`` (batches of 100, missing ids, both key names, errors)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from application.platforms import (
    AuthorizationExpired,
    MetricsSource,
    PostMetrics,
    RateLimited,
    TransientPlatformError,
)
from sandbox.app import create_sandbox_app
from sandbox.engagement import Audience, Counters, counters, default_audience
from sandbox.x import XSimConfig
from tests.integration.test_x_adapter import World, make_adapter
from tests.support.servers import serve

AUDIENCE = Audience(best_hours=(14,), best_days=(2,), size=10_000)  # Wednesdays, 14:00 UTC
DAY = 24 * 3600
LONG_LIVED = XSimConfig(access_token_ttl=60 * DAY)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., World]]:
    with ExitStack() as stack:

        def _start(config: XSimConfig | None = None, **adapter_options: Any) -> World:
            config = config or LONG_LIVED
            base = stack.enter_context(serve(create_sandbox_app(tmp_path, x_config=config)))
            http = stack.enter_context(httpx.Client(timeout=10))
            adapter = stack.enter_context(make_adapter(base, **adapter_options))
            return World(base, http, adapter)

        yield _start


@pytest.fixture
def world(start: Callable[..., World]) -> World:
    return start()


def sim_now(world: World) -> datetime:
    return datetime.fromtimestamp(world.admin("/clock")["now"], UTC)


def advance(world: World, seconds: float) -> None:
    world.admin("/clock", {"advance_seconds": seconds})


def seed(world: World, username: str, *moments: datetime, text: str = "post") -> list[str]:
    """Posts ``username`` made at ``moments``, through the admin endpoint; their ids."""
    tweets = [
        {"text": f"{text} {i}", "created_at": moment.isoformat()}
        for i, moment in enumerate(moments)
    ]
    seeded = world.admin(f"/users/{username}/tweets", {"tweets": tweets})
    return [item["id"] for item in seeded["data"]]


def latest(before: datetime, *, hour: int, weekday: Callable[[int], bool]) -> datetime:
    """The latest whole ``hour`` (UTC) no later than ``before`` on a matching weekday."""
    moment = before.replace(hour=hour, minute=0, second=0, microsecond=0)
    while moment > before or not weekday(moment.weekday()):
        moment -= timedelta(days=1)
    return moment


def as_metrics(remote_id: str, counted: Counters) -> PostMetrics:
    """What the adapter should report for these counters (the mapping of the brief)."""
    return PostMetrics(
        remote_id=remote_id,
        likes=counted.likes,
        comments=counted.comments,
        shares=counted.shares + counted.shares // 4,
        views=counted.views,
        saves=counted.saves,
    )


def assert_between(got: PostMetrics, low: PostMetrics, high: PostMetrics) -> None:
    """Every counter grows with time: read between two clock readings, it lies between."""
    for name in ("likes", "comments", "shares", "views", "saves"):
        value, floor, ceiling = getattr(got, name), getattr(low, name), getattr(high, name)
        assert floor <= value <= ceiling, (name, floor, value, ceiling)
    assert got.reach is None


def lookup(world: World, token: str, **params: str) -> httpx.Response:
    return world.http.get(
        f"{world.base}/x/2/tweets", params=params, headers={"Authorization": f"Bearer {token}"}
    )


# -- the adapter ----------------------------------------------------------------------------


def test_the_adapter_is_a_metrics_source(world: World) -> None:
    assert isinstance(world.adapter, MetricsSource)


def test_metrics_grow_as_the_sim_clock_advances(world: World) -> None:
    world.admin("/users/grower/audience", {**AUDIENCE.as_json(), "size": 100_000})
    token = world.connect("grower").access_token
    post = world.adapter.create_post(token, text="watch me grow")

    readings = []
    for hours in (1, 5, 48):
        advance(world, hours * 3600)
        (reading,) = world.adapter.post_metrics(token, account_id="", remote_ids=[post.remote_id])
        readings.append(reading)

    views = [reading.views or 0 for reading in readings]
    likes = [reading.likes or 0 for reading in readings]
    assert 0 < views[0] < views[1] < views[2]
    assert 0 < likes[0] < likes[1] < likes[2]
    # Six hours in, a post has 1 - 1/e of its final count; two days later nearly all of it.
    assert 0.6 < views[1] / views[2] < 0.66


def test_a_post_at_the_audiences_best_hour_ends_with_more_views(world: World) -> None:
    assert world.admin("/users/timing/audience", AUDIENCE.as_json())["default"] is False
    token = world.connect("timing").access_token
    settled = sim_now(world) - timedelta(days=3)  # both have grown all they will
    best = latest(settled, hour=14, weekday=lambda day: day in AUDIENCE.best_days)
    off = latest(settled, hour=2, weekday=lambda day: day not in AUDIENCE.best_days)
    best_id, off_id = seed(world, "timing", best, off)

    before = sim_now(world)
    got = world.adapter.post_metrics(token, account_id="", remote_ids=[best_id, off_id])
    after = sim_now(world)

    assert [metrics.remote_id for metrics in got] == [best_id, off_id]
    for metrics, published in zip(got, (best, off), strict=True):
        low = as_metrics(
            metrics.remote_id, counters(AUDIENCE, metrics.remote_id, published, before)
        )
        high = as_metrics(
            metrics.remote_id, counters(AUDIENCE, metrics.remote_id, published, after)
        )
        assert_between(metrics, low, high)
    best_views, off_views = got[0].views or 0, got[1].views or 0
    assert best_views > 8_000  # the audience's size, give or take the per-post variation
    assert best_views > 5 * off_views


def test_more_than_100_posts_are_read_in_batches(start: Callable[..., World]) -> None:
    lookups: list[httpx.Request] = []

    def record(request: httpx.Request) -> None:
        if request.url.path.endswith("/2/tweets"):
            lookups.append(request)

    with httpx.Client(timeout=10, event_hooks={"request": [record]}) as http:
        world = start(http=http)
        token = world.connect("prolific").access_token
        now = sim_now(world)
        ids = seed(world, "prolific", *(now - timedelta(minutes=i) for i in range(250)))
        missing = ["1234567890123456789", "42"]
        asked = [*ids[:120], *missing, *ids[120:], "not-an-id", ids[0]]

        got = world.adapter.post_metrics(token, account_id="", remote_ids=asked)

    assert [metrics.remote_id for metrics in got] == ids
    assert all(metrics.views is not None for metrics in got)
    batches = [request.url.params["ids"].split(",") for request in lookups]
    assert [len(batch) for batch in batches] == [100, 100, 52]
    assert {request.url.params["tweet.fields"] for request in lookups} == {"public_metrics"}


def test_posts_x_does_not_have_are_left_out(world: World) -> None:
    token = world.connect().access_token
    post = world.adapter.create_post(token, text="still here")
    got = world.adapter.post_metrics(
        token, account_id="", remote_ids=["1234567890123456789", post.remote_id]
    )
    assert [metrics.remote_id for metrics in got] == [post.remote_id]
    assert world.adapter.post_metrics(token, account_id="", remote_ids=["42"]) == []
    assert world.adapter.post_metrics(token, account_id="", remote_ids=[]) == []


def test_repost_count_is_read_as_well_as_retweet_count(world: World) -> None:
    world.admin("/users/drift/audience", AUDIENCE.as_json())
    token = world.connect("drift").access_token
    (post_id,) = seed(world, "drift", sim_now(world) - timedelta(days=2))
    retweet_style = world.adapter.post_metrics(token, account_id="", remote_ids=[post_id])

    assert world.admin("/config", {"metrics_key_style": "repost"})["metrics_key_style"] == "repost"
    raw = lookup(world, token, ids=post_id, **{"tweet.fields": "public_metrics"}).json()
    counts = raw["data"][0]["public_metrics"]
    assert "retweet_count" not in counts
    assert counts["repost_count"] > 0
    repost_style = world.adapter.post_metrics(token, account_id="", remote_ids=[post_id])

    assert repost_style[0].shares == counts["repost_count"] + counts["quote_count"]
    assert repost_style[0].shares == retweet_style[0].shares
    assert (
        world.http.post(
            f"{world.base}/x/_sandbox/config", json={"metrics_key_style": "reposts"}
        ).status_code
        == 400
    )


def test_a_revoked_token_is_authorization_expired(world: World) -> None:
    tokens = world.connect("leaver")
    post = world.adapter.create_post(tokens.access_token, text="before I go")
    world.admin("/users/leaver/revoke", {})
    with pytest.raises(AuthorizationExpired) as expired:
        world.adapter.post_metrics(tokens.access_token, account_id="", remote_ids=[post.remote_id])
    assert expired.value.status == 401


def test_the_lookup_rate_limit_is_rate_limited(start: Callable[..., World]) -> None:
    world = start(XSimConfig(access_token_ttl=60 * DAY, tweet_lookup_per_15min=2))
    token = world.connect("busy").access_token
    ids = seed(world, "busy", *(sim_now(world) - timedelta(minutes=i) for i in range(250)))
    with pytest.raises(RateLimited) as limited:
        world.adapter.post_metrics(token, account_id="", remote_ids=ids)  # the third batch
    assert limited.value.status == 429
    assert limited.value.retryable
    assert limited.value.reset_at is not None
    window_end = datetime.now(UTC) + timedelta(minutes=15)
    assert abs((limited.value.reset_at - window_end).total_seconds()) < 15
    advance(world, 901)
    assert len(world.adapter.post_metrics(token, account_id="", remote_ids=ids[:200])) == 200


def test_a_lookup_outage_is_transient(world: World) -> None:
    token = world.connect().access_token
    post = world.adapter.create_post(token, text="during an outage")
    world.admin("/faults/tweet_lookup", {"fail_rate": 1.0, "fail_status": 503})
    with pytest.raises(TransientPlatformError) as outage:
        world.adapter.post_metrics(token, account_id="", remote_ids=[post.remote_id])
    assert outage.value.status == 503
    assert outage.value.retryable


# -- the simulator --------------------------------------------------------------------------


def test_lookup_reports_metrics_and_missing_ids_as_x_does(world: World) -> None:
    token = world.connect("author").access_token
    (post_id,) = seed(world, "author", sim_now(world) - timedelta(hours=12))
    fields = "public_metrics,created_at,text,author_id"
    response = lookup(
        world, token, ids=f"{post_id},1234567890123456789", **{"tweet.fields": fields}
    )

    assert response.status_code == 200
    assert response.headers["x-rate-limit-limit"] == "5000"
    assert response.headers["x-rate-limit-remaining"] == "4999"
    body = response.json()
    (tweet,) = body["data"]
    assert tweet["author_id"] == world.admin("/users/author")["id"]
    assert tweet["created_at"].endswith("Z")
    assert set(tweet["public_metrics"]) == {
        "retweet_count",
        "reply_count",
        "like_count",
        "quote_count",
        "bookmark_count",
        "impression_count",
    }
    assert tweet["public_metrics"]["impression_count"] > 0
    assert body["errors"] == [
        {
            "value": "1234567890123456789",
            "detail": "Could not find tweet with id: [1234567890123456789].",
            "title": "Not Found Error",
            "resource_type": "tweet",
            "parameter": "ids",
            "resource_id": "1234567890123456789",
            "type": "https://api.twitter.com/2/problems/resource-not-found",
        }
    ]
    single = world.http.get(
        f"{world.base}/x/2/tweets/{post_id}",
        params={"tweet.fields": "public_metrics"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert single["data"]["id"] == post_id
    assert single["data"]["public_metrics"]["like_count"] > 0


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ("", "The `ids` query parameter can not be empty"),
        (",".join(["1"] * 101), "The number of values in the `ids` query parameter list [101]"),
        ("12,abc", "The `ids` query parameter value [abc] is not valid"),
    ],
)
def test_lookup_validates_its_ids(world: World, ids: str, message: str) -> None:
    token = world.connect().access_token
    response = lookup(world, token, ids=ids)
    assert response.status_code == 400
    body = response.json()
    assert body["title"] == "Invalid Request"
    assert body["type"] == "https://api.twitter.com/2/problems/invalid-request"
    assert body["errors"][0]["message"].startswith(message)
    assert "x-rate-limit-remaining" in response.headers


def test_author_only_metrics_for_the_authors_recent_posts(world: World) -> None:
    author = world.connect("owner").access_token
    stranger = world.connect("stranger").access_token
    now = sim_now(world)
    recent, old = seed(world, "owner", now - timedelta(days=2), now - timedelta(days=31))
    fields = {"tweet.fields": "public_metrics,non_public_metrics,organic_metrics"}

    own = lookup(world, author, ids=f"{recent},{old}", **fields).json()
    by_id = {tweet["id"]: tweet for tweet in own["data"]}
    private = by_id[recent]["non_public_metrics"]
    assert set(private) == {
        "impression_count",
        "user_profile_clicks",
        "url_link_clicks",
        "engagements",
    }
    assert private["impression_count"] == by_id[recent]["public_metrics"]["impression_count"]
    assert private["engagements"] > by_id[recent]["public_metrics"]["like_count"]
    assert by_id[recent]["organic_metrics"]["like_count"] > 0
    # After 30 days X no longer gives them, even to the author: the post comes back without.
    assert "non_public_metrics" not in by_id[old]
    assert {error["resource_id"] for error in own["errors"]} == {old}

    theirs = lookup(world, stranger, ids=recent, **fields).json()
    assert "non_public_metrics" not in theirs["data"][0]
    assert "public_metrics" in theirs["data"][0]
    refused = theirs["errors"][0]
    assert refused["title"] == "Field Authorization Error"
    assert refused["type"] == "https://api.twitter.com/2/problems/not-authorized-for-field"
    assert refused["field"] == "non_public_metrics.impression_count"
    assert {error["field"].partition(".")[0] for error in theirs["errors"]} == {
        "non_public_metrics",
        "organic_metrics",
    }


def test_the_audience_admin_endpoint(world: World) -> None:
    default = world.admin("/users/someone/audience")
    assert default == {**default_audience("someone").as_json(), "default": True}

    url = f"{world.base}/x/_sandbox/users/someone/audience"
    bad = world.http.post(url, json={"best_hours": [25], "best_days": [1]})
    assert bad.status_code == 400
    assert bad.json() == {"error": "best_hours must hold integers from 0 to 23"}
    assert world.http.post(url, json=[1]).status_code == 400
    assert world.http.post(url.replace("someone", "not a name"), json={}).status_code == 400

    chosen = {"best_hours": [9, 21], "best_days": [5, 6], "size": 1234}
    assert world.admin("/users/someone/audience", chosen) == {**chosen, "default": False}
    assert world.admin("/users/someone/audience") == {**chosen, "default": False}
    assert world.http.delete(url).json()["default"] is True


def test_audiences_and_seeded_posts_survive_a_restart(tmp_path: Path) -> None:
    chosen = {"best_hours": [7], "best_days": [0], "size": 777}
    with serve(create_sandbox_app(tmp_path)) as base, httpx.Client() as http:
        http.post(f"{base}/x/_sandbox/users/keeper/audience", json=chosen).raise_for_status()
        seeded = http.post(
            f"{base}/x/_sandbox/users/keeper/tweets",
            json={"tweets": [{"text": "kept", "created_at": "2024-05-06T07:00:00Z"}]},
        ).json()
    with serve(create_sandbox_app(tmp_path)) as base, httpx.Client() as http:
        audience = http.get(f"{base}/x/_sandbox/users/keeper/audience").json()
        assert audience == {**chosen, "default": False}
        (tweet,) = http.get(f"{base}/x/_sandbox/tweets").json()["data"]
    assert tweet["id"] == seeded["data"][0]["id"]
    assert tweet["created_at"] == "2024-05-06T07:00:00.000Z"


def test_seeded_posts_get_ids_that_follow_their_time(world: World) -> None:
    token = world.connect("historian").access_token
    now = sim_now(world)
    live = world.adapter.create_post(token, text="now").remote_id
    older, oldest = seed(world, "historian", now - timedelta(days=1), now - timedelta(days=9))
    same_ms = seed(world, "historian", *[now - timedelta(days=1)] * 3, text="twin")
    assert int(oldest) < int(older) < int(live)
    assert len({older, *same_ms}) == 4

    url = f"{world.base}/x/_sandbox/users/historian/tweets"
    future = (now + timedelta(hours=1)).isoformat()
    refused: list[dict[str, Any]] = [
        {"tweets": [{"text": "later", "created_at": future}]},
        {"tweets": [{"text": "naive", "created_at": "2024-05-06T07:00:00"}]},
        {"tweets": [{"text": "", "created_at": "2024-05-06T07:00:00Z"}]},
        {"tweets": [{"text": "x", "extra": 1}]},
        {"tweets": []},
        {"posts": []},
    ]
    for body in refused:
        assert world.http.post(url, json=body).status_code == 400, body
