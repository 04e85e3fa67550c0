"""Publishing on time, once per account, through the dispatcher, Dramatiq on Redis and the
X simulator over HTTP."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import Account, unique

TERMINAL = {"published", "failed", "partial"}


def soon(seconds: float = 1.5) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def wait_for(
    account: Account, post_id: str, statuses: set[str], timeout: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        post: dict[str, Any] = account.http.get(f"/api/posts/{post_id}").json()["post"]
        if post["status"] in statuses:
            return post
        assert time.monotonic() < deadline, f"post stuck as {post['status']}: {post}"
        time.sleep(0.1)


def tweets(sandbox_url: str, username: str) -> list[dict[str, Any]]:
    user = httpx.get(f"{sandbox_url}/x/_sandbox/users/{username}").json()
    data = httpx.get(f"{sandbox_url}/x/_sandbox/tweets").json()["data"]
    return [t for t in data if t["author_id"] == user["id"]]


@pytest.fixture
def faults(sandbox_url: str) -> Any:
    def set_faults(**values: Any) -> None:
        httpx.post(f"{sandbox_url}/x/_sandbox/faults", json=values).raise_for_status()

    yield set_faults
    set_faults(latency_ms=0, fail_rate=0.0, drop_response_rate=0.0)


def test_a_scheduled_post_publishes_on_time_with_its_result(
    pipeline: Any, account: Account, sandbox_url: str
) -> None:
    username = unique("ontime")
    x = account.connect_x(username)
    scheduled_at = datetime.now(UTC) + timedelta(seconds=1.5)
    created = account.http.post(
        "/api/posts",
        json={
            "content": "On time",
            "accountIds": [x["id"]],
            "scheduledAt": scheduled_at.isoformat(),
        },
    ).json()["post"]
    post = wait_for(account, created["id"], TERMINAL)
    assert post["status"] == "published"
    published_at = datetime.fromisoformat(post["publishedAt"])
    assert scheduled_at <= published_at < scheduled_at + timedelta(seconds=2)
    result = post["results"][0]
    assert result["status"] == "published"
    assert result["url"] == f"https://x.com/i/web/status/{result['remoteId']}"
    assert [t["text"] for t in tweets(sandbox_url, username)] == ["On time"]
    history = [
        e["type"] for e in account.http.get(f"/api/posts/{created['id']}/history").json()["events"]
    ]
    assert history == [
        "PostDrafted",
        "PostScheduled",
        "PublishingStarted",
        "AccountPublishAttempted",
        "ThreadSegmentPosted",
        "AccountPublished",
        "PostPublished",
    ]


def test_a_thread_is_chained_by_replies_to_each_account(
    pipeline: Any, account: Account, sandbox_url: str
) -> None:
    first, second = unique("thread_a"), unique("thread_b")
    accounts = [account.connect_x(first)["id"], account.connect_x(second)["id"]]
    created = account.http.post(
        "/api/posts",
        json={
            "content": "1/3 a thread",
            "thread": ["2/3 middle", "3/3 end"],
            "accountIds": accounts,
            "scheduledAt": soon(),
        },
    ).json()["post"]
    post = wait_for(account, created["id"], TERMINAL)
    assert post["status"] == "published"
    for username in (first, second):
        posted = sorted(tweets(sandbox_url, username), key=lambda t: t["created_at"])
        assert [t["text"] for t in posted] == ["1/3 a thread", "2/3 middle", "3/3 end"]
        assert posted[0]["in_reply_to"] is None
        assert posted[1]["in_reply_to"] == posted[0]["id"]
        assert posted[2]["in_reply_to"] == posted[1]["id"]


def test_a_post_deleted_before_its_time_is_never_published(
    pipeline: Any, account: Account, sandbox_url: str, database_url: str
) -> None:
    username = unique("deleted")
    x = account.connect_x(username)
    created = account.http.post(
        "/api/posts", json={"content": "never", "accountIds": [x["id"]], "scheduledAt": soon(1.0)}
    ).json()["post"]
    assert account.http.delete(f"/api/posts/{created['id']}").status_code == 200
    time.sleep(2.5)
    assert tweets(sandbox_url, username) == []
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM due_work WHERE subject_id = %s", (created["id"],)
        ).fetchone()
    assert rows == (0,)


def test_a_rescheduled_post_publishes_only_at_its_new_time(
    pipeline: Any, account: Account, sandbox_url: str
) -> None:
    username = unique("moved")
    x = account.connect_x(username)
    created = account.http.post(
        "/api/posts", json={"content": "moved", "accountIds": [x["id"]], "scheduledAt": soon(1.0)}
    ).json()["post"]
    new_time = datetime.now(UTC) + timedelta(seconds=4)
    account.http.patch(f"/api/posts/{created['id']}", json={"scheduledAt": new_time.isoformat()})
    time.sleep(2.5)
    assert tweets(sandbox_url, username) == []
    post = wait_for(account, created["id"], TERMINAL)
    assert post["status"] == "published"
    assert datetime.fromisoformat(post["publishedAt"]) >= new_time


def test_a_lost_response_is_settled_without_posting_twice(
    pipeline: Any, account: Account, sandbox_url: str, faults: Any
) -> None:
    username = unique("lost")
    x = account.connect_x(username)
    faults(drop_response_rate=1.0)
    created = account.http.post(
        "/api/posts",
        json={"content": "answer lost", "accountIds": [x["id"]], "scheduledAt": soon(1.0)},
    ).json()["post"]
    deadline = time.monotonic() + 15
    while not tweets(sandbox_url, username):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    faults(drop_response_rate=0.0)
    post = wait_for(account, created["id"], TERMINAL)
    assert post["status"] == "published"
    assert len(tweets(sandbox_url, username)) == 1
    history = [
        e["type"] for e in account.http.get(f"/api/posts/{created['id']}/history").json()["events"]
    ]
    assert "AccountPublishInDoubt" in history
    assert post["results"][0]["remoteId"] == tweets(sandbox_url, username)[0]["id"]


def test_a_revoked_account_fails_alone_and_republish_retries_only_it(
    pipeline: Any, account: Account, sandbox_url: str
) -> None:
    healthy, revoked = unique("healthy"), unique("revoked")
    accounts = [account.connect_x(healthy)["id"], account.connect_x(revoked)["id"]]
    httpx.post(f"{sandbox_url}/x/_sandbox/users/{revoked}/revoke").raise_for_status()
    created = account.http.post(
        "/api/posts", json={"content": "partly", "accountIds": accounts, "scheduledAt": soon()}
    ).json()["post"]
    post = wait_for(account, created["id"], TERMINAL)
    assert post["status"] == "partial"
    by_account = {r["accountId"]: r for r in post["results"]}
    assert by_account[accounts[0]]["status"] == "published"
    failed = by_account[accounts[1]]
    assert failed["status"] == "failed"
    assert failed["error"]["category"] == "auth_expired"
    assert "reconnect" in failed["error"]["message"]
    listed = {i["id"]: i for i in account.http.get("/api/integrations").json()["integrations"]}
    assert listed[accounts[1]]["status"] == "expired"
    account.connect_x(revoked)  # reconnect through the same OAuth flow
    republished = account.http.post(f"/api/posts/{created['id']}/republish")
    assert republished.status_code == 200, republished.text
    post = wait_for(account, created["id"], {"published"})
    assert len(tweets(sandbox_url, healthy)) == 1
    assert len(tweets(sandbox_url, revoked)) == 1
    again = account.http.post(f"/api/posts/{created['id']}/republish")
    assert again.status_code == 409


def test_another_organizations_post_cannot_be_republished(make_account: Any) -> None:
    owner, stranger = make_account("owner"), make_account("stranger")
    x = owner.connect_x(unique("own"))
    post_id = owner.http.post(
        "/api/posts", json={"content": "mine", "accountIds": [x["id"]]}
    ).json()["post"]["id"]
    assert stranger.http.post(f"/api/posts/{post_id}/republish").status_code == 404
    assert owner.http.post(f"/api/posts/{post_id}/republish").status_code == 409  # a draft


def test_a_post_whose_time_passed_long_ago_is_missed_not_published_late(
    kairos: Any, account: Account, sandbox_url: str
) -> None:
    from application.posts import PostInput
    from application.publishing import PublishingService

    username = unique("missed")
    x = account.connect_x(username)
    # Due in an hour, so the running pipeline leaves it alone; the service's clock says
    # three days have passed since then (the system "was down").
    scheduled_at = datetime.now(UTC) + timedelta(hours=1)
    saved = kairos.posts.create(
        account.organization_id,
        account.user_id,
        PostInput(content="too late", account_ids=[uuid.UUID(x["id"])], scheduled_at=scheduled_at),
    )
    service = PublishingService(
        kairos.app,
        {},
        kairos.publishing._tokens,
        kairos.identity,
        lambda: scheduled_at + timedelta(days=3),
        kairos.publishing.policy,
    )
    service.start(saved.post.id)
    post = kairos.posts.get(account.organization_id, saved.post.id)
    assert post.status == "failed"
    assert post.results[0].error_category == "missed"
    assert "late" in (post.results[0].error_message or "")
    assert tweets(sandbox_url, username) == []


@pytest.fixture
def one_tweet_per_window(sandbox_url: str) -> Any:
    before = httpx.get(f"{sandbox_url}/x/_sandbox/config").json()["tweets_per_15min"]
    httpx.post(f"{sandbox_url}/x/_sandbox/config", json={"tweets_per_15min": 1}).raise_for_status()
    yield
    httpx.post(
        f"{sandbox_url}/x/_sandbox/config", json={"tweets_per_15min": before}
    ).raise_for_status()


def test_a_rate_limited_delivery_retries_after_the_platforms_reset(
    pipeline: Any, account: Account, sandbox_url: str, one_tweet_per_window: Any
) -> None:
    username = unique("limited")
    x = account.connect_x(username)
    created = account.http.post(
        "/api/posts",
        json={
            "content": "first",
            "thread": ["second"],
            "accountIds": [x["id"]],
            "scheduledAt": soon(),
        },
    ).json()["post"]
    deadline = time.monotonic() + 15
    while True:
        events = account.http.get(f"/api/posts/{created['id']}/history").json()["events"]
        retries = [e for e in events if e["type"] == "AccountRetryScheduled"]
        if retries:
            break
        assert time.monotonic() < deadline, [e["type"] for e in events]
        time.sleep(0.1)
    failure = next(e for e in events if e["type"] == "AccountPublishFailed")
    assert failure["data"]["category"] == "rate_limited"
    assert failure["data"]["retryable"] is True
    retry_at = datetime.fromisoformat(retries[0]["data"]["retry_at"])
    assert retry_at > datetime.now(UTC) + timedelta(minutes=5)  # X's 15-minute window reset
    post = account.http.get(f"/api/posts/{created['id']}").json()["post"]
    assert post["status"] == "publishing"
    assert post["results"][0]["status"] == "pending"
    assert [t["text"] for t in tweets(sandbox_url, username)] == ["first"]  # resumes after it
