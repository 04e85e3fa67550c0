"""Engagement reads through the real pipeline: a published post's metrics are read from the
X simulator by a worker, recorded on the post, and projected into the engagement tables; a
rebuild of that projection from the event store gives the same rows."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx

from projections.engagement import EngagementView, LatestEngagement
from projections.rebuild import rebuild
from tests.conftest import Account, unique
from tests.integration.test_publishing import soon, wait_for


def eventually(check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def published_post(account: Account, integration_id: str, text: str) -> str:
    created = account.http.post(
        "/api/posts",
        json={"content": text, "accountIds": [integration_id], "scheduledAt": soon()},
    )
    assert created.status_code == 201, created.text
    post_id: str = created.json()["post"]["id"]
    assert wait_for(account, post_id, {"published", "failed"})["status"] == "published"
    return post_id


def latest(kairos: Any, account: Account, post_id: str) -> list[LatestEngagement]:
    view: EngagementView = kairos.engagement_view
    return [r for r in view.latest(account.organization_id) if str(r.post_id) == post_id]


def test_a_read_is_recorded_on_the_post_and_projected(
    pipeline: Any, kairos: Any, account: Account, sandbox_url: str
) -> None:
    username = unique("reads")
    x = account.connect_x(username)
    httpx.post(
        f"{sandbox_url}/x/_sandbox/users/{username}/audience",
        json={"best_hours": [datetime.now(UTC).hour], "best_days": list(range(7)), "size": 10**9},
    ).raise_for_status()
    post_id = published_post(account, x["id"], f"Engagement {unique('e')}")
    history = account.http.get(f"/api/posts/{post_id}/history").json()["events"]
    assert not any(e["type"] == "AccountMetricsCollected" for e in history)

    assert kairos.metrics.request(UUID(post_id), x["id"], datetime.now(UTC))
    first = eventually(lambda: latest(kairos, account, post_id))[0]

    assert first.provider == "twitter"
    assert first.views is not None
    assert first.views > 0  # a huge audience shows engagement within seconds
    assert first.likes is not None
    history = account.http.get(f"/api/posts/{post_id}/history").json()["events"]
    collected = [e for e in history if e["type"] == "AccountMetricsCollected"]
    assert len(collected) == 1
    published_at = datetime.fromisoformat(
        next(e for e in history if e["type"] == "AccountPublished")["timestamp"]
    )
    assert datetime.fromisoformat(collected[0]["data"]["next_collection_at"]) == (
        published_at + timedelta(hours=1)
    )

    time.sleep(1.1)  # the simulator's counters grow with the post's age
    assert kairos.metrics.request(UUID(post_id), x["id"], datetime.now(UTC))
    second = eventually(
        lambda: [r for r in latest(kairos, account, post_id) if r.collected_at > first.collected_at]
    )[0]
    assert second.views is not None
    assert second.views >= first.views
    with kairos.datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(
            "SELECT count(*) AS n, min(age_seconds) AS youngest FROM engagement_observations "
            "WHERE post_id = %s",
            (UUID(post_id),),
        )
        row = curs.fetchone()
    assert row is not None
    assert row["n"] == 2
    assert row["youngest"] >= 0

    (totals,) = kairos.engagement_view.totals(account.organization_id)
    assert (totals.provider, totals.posts, totals.views) == ("twitter", 1, second.views)


def test_rebuilding_the_engagement_projection_gives_identical_rows(
    pipeline: Any, kairos: Any, account: Account
) -> None:
    x = account.connect_x(unique("rebuild"))
    post_id = published_post(account, x["id"], f"Rebuild {unique('r')}")
    assert kairos.metrics.request(UUID(post_id), x["id"], datetime.now(UTC))
    eventually(lambda: latest(kairos, account, post_id))
    view: EngagementView = kairos.engagement_view

    report = rebuild(view, lambda prefix: EngagementView(view.datastore, view.app, prefix=prefix))

    assert report.identical, report.differences
    assert report.rows["engagement_latest"] >= 1
    assert report.rows["engagement_observations"] >= 1
