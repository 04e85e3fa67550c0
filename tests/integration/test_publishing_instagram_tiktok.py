"""Instagram (both login paths) and TikTok through the real pipeline: a post written once
publishes everywhere with independent results; lost answers are settled from the
checkpointed container or publish id, never posted twice; content the platforms refuse is
refused when the post is written; Instagram's publishing quota fails or delays a post as
the organization chose."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.samples import jpeg_bytes, mp4_bytes
from tests.conftest import Account, unique
from tests.integration.api.test_media import upload
from tests.integration.test_publishing import TERMINAL, soon, tweets, wait_for


def instagram_media(sandbox_url: str, username: str) -> list[dict[str, Any]]:
    data = httpx.get(f"{sandbox_url}/instagram/_sandbox/media").json()["data"]
    return [m for m in data if m["username"] == username]


def tiktok_videos(sandbox_url: str, username: str) -> list[dict[str, Any]]:
    data = httpx.get(f"{sandbox_url}/tiktok/_sandbox/videos").json()["data"]
    return [v for v in data if v["username"] == username]


def history(account: Account, post_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = account.http.get(f"/api/posts/{post_id}/history").json()[
        "events"
    ]
    return events


@pytest.fixture
def faults(sandbox_url: str) -> Iterator[Any]:
    """Set one endpoint's faults on a simulator; every endpoint touched is cleared after."""
    touched: list[str] = []

    def set_fault(platform: str, endpoint: str, **values: Any) -> None:
        url = f"{sandbox_url}/{platform}/_sandbox/faults/{endpoint}"
        httpx.post(url, json=values).raise_for_status()
        touched.append(url)

    yield set_fault
    for url in touched:
        httpx.delete(url).raise_for_status()


def video(account: Account) -> str:
    """A 5-second 1280x720 MP4, within what X, Instagram (a reel) and TikTok accept."""
    return upload(account, mp4_bytes(1280, 720, 5_000), "video/mp4", "launch.mp4")


def test_one_post_with_a_video_publishes_to_instagram_tiktok_and_x(
    pipeline: Any, account: Account, sandbox_url: str
) -> None:
    name = unique("all")
    instagram = account.connect_instagram(name)
    facebook_user = unique("fb")
    page_linked = account.connect_instagram_facebook(facebook_user, f"{facebook_user}_studio")
    tiktok = account.connect_tiktok(name)
    x = account.connect_x(name)
    text = f"Launch day everywhere {unique('v')} #kairos"

    created = account.http.post(
        "/api/posts",
        json={
            "content": text,
            "platforms": ["instagram", "tiktok", "twitter"],
            "mediaUrls": [video(account)],
            "scheduledAt": soon(),
        },
    )

    assert created.status_code == 201, created.text
    post = wait_for(account, created.json()["post"]["id"], TERMINAL, timeout=60)
    results = {r["accountId"]: r for r in post["results"]}
    assert post["status"] == "published", results
    assert set(results) == {instagram["id"], page_linked["id"], tiktok["id"], x["id"]}
    assert all(r["status"] == "published" and r["url"] for r in results.values()), results
    (reel,) = instagram_media(sandbox_url, name)
    assert (reel["caption"], reel["media_product_type"]) == (text, "REELS")
    assert results[instagram["id"]]["remoteId"] == reel["id"]
    assert results[instagram["id"]]["url"] == reel["permalink"]
    (linked,) = instagram_media(sandbox_url, f"{facebook_user}_studio")
    assert results[page_linked["id"]]["remoteId"] == linked["id"]
    (clip,) = tiktok_videos(sandbox_url, name)
    assert clip["title"] == text
    assert results[tiktok["id"]]["url"] == f"https://www.tiktok.com/@{name}/video/{clip['id']}"
    (tweet,) = tweets(sandbox_url, name)
    assert results[x["id"]]["remoteId"] == tweet["id"]
    checkpoints = [
        e for e in history(account, post["id"]) if e["type"] == "AccountPublishCheckpointed"
    ]
    assert {e["data"]["account_id"] for e in checkpoints} == {
        instagram["id"],
        page_linked["id"],
        tiktok["id"],
    }


def test_each_account_has_its_own_outcome(
    pipeline: Any, account: Account, sandbox_url: str, faults: Any
) -> None:
    """TikTok refuses this creator's posts (banned from posting); Instagram still publishes."""
    name = unique("own")
    instagram = account.connect_instagram(name)
    tiktok = account.connect_tiktok(name)
    httpx.post(
        f"{sandbox_url}/tiktok/_sandbox/users/{name}", json={"banned_from_posting": True}
    ).raise_for_status()

    created = account.http.post(
        "/api/posts",
        json={
            "content": f"Half {unique('h')}",
            "accountIds": [instagram["id"], tiktok["id"]],
            "mediaUrls": [video(account)],
            "scheduledAt": soon(),
        },
    )

    post = wait_for(account, created.json()["post"]["id"], TERMINAL, timeout=60)
    results = {r["accountId"]: r for r in post["results"]}
    assert post["status"] == "partial", results
    assert results[instagram["id"]]["status"] == "published"
    assert results[tiktok["id"]]["status"] == "failed"
    assert "banned" in results[tiktok["id"]]["error"]["message"], results
    assert tiktok_videos(sandbox_url, name) == []


def test_a_lost_instagram_publish_answer_is_settled_by_the_container(
    pipeline: Any, account: Account, sandbox_url: str, faults: Any
) -> None:
    name = unique("lost")
    instagram = account.connect_instagram(name)
    faults("instagram", "media_publish", drop_response_rate=1.0, times=1)
    image = upload(account, jpeg_bytes(1080, 1080), "image/jpeg", "square.jpg")

    created = account.http.post(
        "/api/posts",
        json={
            "content": f"Lost answer {unique('l')}",
            "accountIds": [instagram["id"]],
            "mediaUrls": [image],
            "scheduledAt": soon(),
        },
    )

    post = wait_for(account, created.json()["post"]["id"], TERMINAL, timeout=60)
    assert post["status"] == "published", post["results"]
    (media,) = instagram_media(sandbox_url, name)
    assert post["results"][0]["remoteId"] == media["id"]


def test_a_lost_tiktok_upload_answer_is_settled_by_the_publish_id(
    pipeline: Any, account: Account, sandbox_url: str, faults: Any
) -> None:
    name = unique("tklost")
    tiktok = account.connect_tiktok(name)
    faults("tiktok", "upload_final", drop_next=1)

    created = account.http.post(
        "/api/posts",
        json={
            "content": f"Lost upload {unique('t')}",
            "accountIds": [tiktok["id"]],
            "mediaUrls": [video(account)],
            "scheduledAt": soon(),
        },
    )

    post = wait_for(account, created.json()["post"]["id"], TERMINAL, timeout=60)
    assert post["status"] == "published", post["results"]
    (clip,) = tiktok_videos(sandbox_url, name)
    assert post["results"][0]["remoteId"] == clip["id"]


def test_content_the_platforms_refuse_is_refused_when_written(account: Account) -> None:
    name = unique("rules")
    account.connect_instagram(name)
    account.connect_tiktok(name)

    caption_only = account.http.post(
        "/api/posts",
        json={"content": "Just words", "platforms": ["instagram"], "scheduledAt": soon(60)},
    )
    assert caption_only.status_code == 400, caption_only.text
    assert caption_only.json()["field"] == "mediaUrls"
    assert "Instagram" in caption_only.json()["message"]

    image = upload(account, jpeg_bytes(1080, 1080), "image/jpeg", "still.jpg")
    no_video = account.http.post(
        "/api/posts",
        json={
            "content": "A still",
            "platforms": ["tiktok"],
            "mediaUrls": [image],
            "scheduledAt": soon(60),
        },
    )
    assert no_video.status_code == 400, no_video.text
    assert "TikTok" in no_video.json()["message"]
    assert "video" in no_video.json()["message"]

    too_many_tags = " ".join(f"#tag{n}" for n in range(31))
    tagged = account.http.post(
        "/api/posts",
        json={
            "content": too_many_tags,
            "platforms": ["instagram"],
            "mediaUrls": [image],
            "scheduledAt": soon(60),
        },
    )
    assert tagged.status_code == 400, tagged.text
    assert "30 hashtags" in tagged.json()["message"]


@pytest.mark.parametrize("delay", [False, True], ids=["fail", "delay"])
def test_a_post_over_the_instagram_quota_fails_or_waits_as_the_organization_chose(
    pipeline: Any, account: Account, sandbox_url: str, delay: bool
) -> None:
    name = unique("quota")
    instagram = account.connect_instagram(name)
    httpx.post(
        f"{sandbox_url}/instagram/_sandbox/users/{name}", json={"quota_total": 0}
    ).raise_for_status()
    account.http.patch("/api/organization", json={"delayOnQuota": delay}).raise_for_status()
    image = upload(account, jpeg_bytes(1080, 1080), "image/jpeg", "quota.jpg")

    created = account.http.post(
        "/api/posts",
        json={
            "content": f"Over quota {unique('q')}",
            "accountIds": [instagram["id"]],
            "mediaUrls": [image],
            "scheduledAt": soon(),
        },
    )

    post_id = created.json()["post"]["id"]
    if delay:
        events = wait_for_event(account, post_id, "AccountRetryScheduled")
        failed = next(e for e in events if e["type"] == "AccountPublishFailed")
        assert failed["data"]["retryable"] is True
        assert "waiting for the quota" in failed["data"]["message"]
        assert account.http.get(f"/api/posts/{post_id}").json()["post"]["status"] == "publishing"
    else:
        post = wait_for(account, post_id, TERMINAL, timeout=30)
        assert post["status"] == "failed"
        (result,) = post["results"]
        assert result["error"]["category"] == "quota_exceeded"
        assert "Instagram allows 0 API posts per 24 hours" in result["error"]["message"]
    assert instagram_media(sandbox_url, name) == []


def wait_for_event(account: Account, post_id: str, kind: str) -> list[dict[str, Any]]:
    import time

    deadline = time.monotonic() + 30
    while True:
        events = history(account, post_id)
        if any(e["type"] == kind for e in events):
            return events
        assert time.monotonic() < deadline, [e["type"] for e in events]
        time.sleep(0.2)
