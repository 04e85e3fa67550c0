"""Posts with media, published through the real pipeline to the X simulator: the seed's
three steps (presign, PUT, reference) end with the file attached to the tweet."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from sandbox.samples import jpeg_bytes, mp4_bytes, png_bytes
from tests.conftest import Account, unique
from tests.integration.api.test_media import upload
from tests.integration.test_publishing import TERMINAL, tweets, wait_for


def soon(seconds: float = 1.5) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def test_an_uploaded_image_is_published_attached_to_the_tweet(
    pipeline: Any, account: Account, sandbox_url: str
) -> None:
    username = unique("img")
    x = account.connect_x(username)
    image = jpeg_bytes(1200, 800)
    url = upload(account, image, "image/jpeg", "launch.jpg")

    created = account.http.post(
        "/api/posts",
        json={
            "content": "Launch day!",
            "accountIds": [x["id"]],
            "mediaUrls": [url],
            "scheduledAt": soon(),
        },
    )
    assert created.status_code == 201, created.text
    post = wait_for(account, created.json()["post"]["id"], TERMINAL)

    assert post["status"] == "published", post
    (tweet,) = tweets(sandbox_url, username)
    assert tweet["text"] == "Launch day!"
    assert [(m["media_type"], m["size"], m["sha256"]) for m in tweet["media"]] == [
        ("image/jpeg", len(image), sha256(image))
    ]
    history = [
        e["type"] for e in account.http.get(f"/api/posts/{post['id']}/history").json()["events"]
    ]
    assert history.count("AccountMediaUploaded") == 1


def test_a_thread_with_a_video_and_images_on_another_post(
    pipeline: Any, account: Account, sandbox_url: str
) -> None:
    username = unique("vid")
    x = account.connect_x(username)
    video = mp4_bytes(1280, 720, 12_000, size=3_000_000)
    video_url = upload(account, video, "video/mp4", "clip.mp4")
    images = [png_bytes(640, 640), jpeg_bytes(800, 600)]
    image_urls = [
        upload(account, images[0], "image/png", "a.png"),
        upload(account, images[1], "image/jpeg", "b.jpg"),
    ]

    thread = account.http.post(
        "/api/posts",
        json={
            "content": "Watch this",
            "thread": ["and this part has no media"],
            "accountIds": [x["id"]],
            "mediaUrls": [video_url],
            "scheduledAt": soon(),
        },
    ).json()["post"]
    album = account.http.post(
        "/api/posts",
        json={
            "content": "Two pictures",
            "accountIds": [x["id"]],
            "mediaUrls": image_urls,
            "scheduledAt": soon(),
        },
    ).json()["post"]

    assert wait_for(account, thread["id"], TERMINAL, timeout=40)["status"] == "published"
    assert wait_for(account, album["id"], TERMINAL)["status"] == "published"
    posted = {t["text"]: t for t in tweets(sandbox_url, username)}
    assert [m["sha256"] for m in posted["Watch this"]["media"]] == [sha256(video)]
    assert posted["and this part has no media"]["media"] == []
    assert [m["sha256"] for m in posted["Two pictures"]["media"]] == [sha256(i) for i in images]


def test_the_simulator_and_kairos_agree_an_oversized_image_never_reaches_x(
    account: Account, sandbox_url: str
) -> None:
    x = account.connect_x(unique("big"))
    big = jpeg_bytes(1000, 1000, size=6 * 1024 * 1024)
    url = upload(account, big, "image/jpeg", "big.jpg")

    refused = account.http.post(
        "/api/posts", json={"content": "Big", "accountIds": [x["id"]], "mediaUrls": [url]}
    )

    assert refused.status_code == 400
    assert "X accepts images up to 5 MB" in refused.json()["message"]
    direct = httpx.get(f"{sandbox_url}/x/_sandbox/tweets").json()["data"]
    assert all(t["text"] != "Big" for t in direct)


def test_a_retried_delivery_attaches_the_media_it_already_uploaded(
    pipeline: Any, account: Account, sandbox_url: str
) -> None:
    username = unique("retry")
    x = account.connect_x(username)
    image = jpeg_bytes(900, 900)
    url = upload(account, image, "image/jpeg", "again.jpg")
    with in_doubt_while(sandbox_url, account, {"fail_rate": 1.0, "fail_status": 503}) as wait:
        post_id = account.http.post(
            "/api/posts",
            json={
                "content": "Third time lucky",
                "accountIds": [x["id"]],
                "mediaUrls": [url],
                "scheduledAt": soon(0.5),
            },
        ).json()["post"]["id"]
        wait(post_id)

    post = wait_for(account, post_id, TERMINAL, timeout=30)

    assert post["status"] == "published", post
    assert post["results"][0]["attempts"] >= 2
    user = httpx.get(f"{sandbox_url}/x/_sandbox/users/{username}").json()
    uploaded = [
        m
        for m in httpx.get(f"{sandbox_url}/x/_sandbox/media").json()["data"]
        if m["owner_id"] == user["id"]
    ]
    assert len(uploaded) == 1  # uploaded once, attached on the retry
    (tweet,) = tweets(sandbox_url, username)
    assert [m["id"] for m in tweet["media"]] == [uploaded[0]["id"]]
    assert history(account, post_id).count("AccountMediaUploaded") == 1


def history(account: Account, post_id: str) -> list[str]:
    events = account.http.get(f"/api/posts/{post_id}/history").json()["events"]
    return [e["type"] for e in events]


@contextlib.contextmanager
def in_doubt_while(
    sandbox_url: str, account: Account, fault: dict[str, Any]
) -> Iterator[Callable[[str], None]]:
    """X's create-tweet endpoint misbehaves as ``fault`` says until the block ends. The
    block schedules its post and calls the yielded function with its id, which waits until
    the delivery is recorded in doubt."""
    faults = f"{sandbox_url}/x/_sandbox/faults/create_tweet"

    def until_in_doubt(post_id: str) -> None:
        deadline = time.monotonic() + 20
        while "AccountPublishInDoubt" not in history(account, post_id):
            assert time.monotonic() < deadline, history(account, post_id)
            time.sleep(0.1)

    httpx.post(faults, json=fault).raise_for_status()
    try:
        yield until_in_doubt
    finally:
        httpx.delete(faults).raise_for_status()


def test_a_lost_answer_is_settled_although_x_rewrote_the_links_and_added_the_media_link(
    pipeline: Any, account: Account, sandbox_url: str
) -> None:
    username = unique("tco")
    x = account.connect_x(username)
    url = upload(account, jpeg_bytes(640, 640), "image/jpeg", "tco.jpg")
    # The tweet is created, then the answer is lost: Kairos must find it, not post again.
    with in_doubt_while(sandbox_url, account, {"drop_response_rate": 1.0}) as wait:
        post_id = account.http.post(
            "/api/posts",
            json={
                "content": "Read more at example.com/launch and https://kairos.dev/notes",
                "accountIds": [x["id"]],
                "mediaUrls": [url],
                "scheduledAt": soon(0.5),
            },
        ).json()["post"]["id"]
        wait(post_id)

    post = wait_for(account, post_id, TERMINAL, timeout=30)

    assert post["status"] == "published", post
    (tweet,) = tweets(sandbox_url, username)  # found on the timeline, never posted again
    assert post["results"][0]["remoteId"] == tweet["id"]
    assert len(tweet["media"]) == 1
    events = history(account, post_id)
    assert events.count("AccountMediaUploaded") == 1
    assert events.count("ThreadSegmentPosted") == 1


def test_an_in_doubt_post_is_not_taken_for_one_differing_only_in_its_link(
    pipeline: Any, account: Account, sandbox_url: str
) -> None:
    username = unique("links")
    x = account.connect_x(username)

    def schedule(content: str) -> str:
        created = account.http.post(
            "/api/posts",
            json={"content": content, "accountIds": [x["id"]], "scheduledAt": soon(0.5)},
        )
        assert created.status_code == 201, created.text
        post_id: str = created.json()["post"]["id"]
        return post_id

    first = wait_for(account, schedule("New article: https://ex.com/a"), TERMINAL)
    assert first["status"] == "published", first
    # X answers 503 without posting: the second post is in doubt, and its search must not
    # settle it as the first, whose text differs only in the link.
    with in_doubt_while(sandbox_url, account, {"fail_rate": 1.0, "fail_status": 503}) as wait:
        second_id = schedule("New article: https://ex.com/b")
        wait(second_id)

    second = wait_for(account, second_id, TERMINAL, timeout=30)

    assert second["status"] == "published", second
    posted = {t["text"]: t["id"] for t in tweets(sandbox_url, username)}
    assert posted == {
        "New article: https://ex.com/a": first["results"][0]["remoteId"],
        "New article: https://ex.com/b": second["results"][0]["remoteId"],
    }
