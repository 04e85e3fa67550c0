"""The X adapter's media upload against the X simulator over real HTTP.

The adapter's ``sleep`` advances the sandbox clock instead of waiting, so processing that
takes seconds on X settles at once and the waits the adapter asked for can be asserted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest

from application.platforms import (
    AuthorizationExpired,
    ContentRejected,
    MediaPayload,
    RateLimited,
    TransientPlatformError,
    UploadedMedia,
)
from interfaces.platforms.x import MEDIA_CHUNK_SIZE, media_category
from sandbox import samples
from sandbox.app import create_sandbox_app
from sandbox.x import XSimConfig
from tests.integration.test_x_adapter import REDIRECT, FormParser, World, make_adapter, pkce
from tests.support.servers import serve


@dataclass
class Payload:
    """A stored file as the adapter sees it; remembers how it was read."""

    content_type: str
    data: bytes
    reads: list[int] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.data)

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        self.reads.append(chunk_size)
        for offset in range(0, len(self.data), chunk_size):
            yield self.data[offset : offset + chunk_size]


@dataclass
class MediaWorld(World):
    #: Every wait the adapter asked for, in seconds of sandbox time.
    sleeps: list[float] = field(default_factory=list)

    def upload(self, token: str, content_type: str, data: bytes) -> UploadedMedia:
        payload: MediaPayload = Payload(content_type, data)
        return self.adapter.upload_media(token, payload)

    def uploads(self) -> dict[str, dict[str, Any]]:
        return {item["id"]: item for item in self.admin("/media")["data"]}


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., MediaWorld]]:
    with ExitStack() as stack:

        def _start(config: XSimConfig | None = None, **adapter_options: Any) -> MediaWorld:
            base = stack.enter_context(serve(create_sandbox_app(tmp_path, x_config=config)))
            http = stack.enter_context(httpx.Client(timeout=30))
            sleeps: list[float] = []

            def sleep(seconds: float) -> None:
                sleeps.append(seconds)
                advanced = http.post(f"{base}/x/_sandbox/clock", json={"advance_seconds": seconds})
                assert advanced.status_code == 200

            adapter = stack.enter_context(
                make_adapter(base, sleep=sleep, timeout=30.0, **adapter_options)
            )
            return MediaWorld(base, http, adapter, sleeps)

        yield _start


@pytest.fixture
def world(start: Callable[..., MediaWorld]) -> MediaWorld:
    return start()


def test_upload_a_photo_and_post_it(world: MediaWorld) -> None:
    token = world.connect().access_token
    png = samples.png_bytes(1200, 675)
    before = datetime.now(UTC)
    uploaded = world.upload(token, "image/png", png)
    assert uploaded.remote_id.isdigit()
    assert uploaded.expires_at is not None
    expected = before + timedelta(days=15)
    assert abs((uploaded.expires_at - expected).total_seconds()) < 60
    assert world.sleeps == []  # photos need no processing

    post = world.adapter.create_post(token, text="a photo", media_ids=[uploaded.remote_id])
    (tweet,) = world.admin("/tweets")["data"]
    assert tweet["id"] == post.remote_id
    assert tweet["text"] == "a photo"
    assert tweet["media"] == [
        {
            "id": uploaded.remote_id,
            "media_type": "image/png",
            "size": len(png),
            "sha256": hashlib.sha256(png).hexdigest(),
            "width": 1200,
            "height": 675,
        }
    ]


def test_a_post_of_media_alone(world: MediaWorld) -> None:
    token = world.connect().access_token
    photos = [
        world.upload(token, "image/jpeg", samples.jpeg_bytes(100 + i, 100)).remote_id
        for i in range(4)
    ]
    world.adapter.create_post(token, text="", media_ids=photos)
    (tweet,) = world.admin("/tweets")["data"]
    assert tweet["text"] == ""
    assert [media["id"] for media in tweet["media"]] == photos


def test_a_20_mb_video_is_sent_in_4_mib_segments_and_awaited(world: MediaWorld) -> None:
    token = world.connect().access_token
    video = samples.mp4_bytes(1280, 720, 45_000, size=20_000_000)
    payload = Payload("video/mp4", video)
    uploaded = world.adapter.upload_media(token, payload)
    assert payload.reads == [MEDIA_CHUNK_SIZE]
    assert world.sleeps == [1.0, 1.0]  # pending, then in_progress, each "check after 1 s"
    record = world.uploads()[uploaded.remote_id]
    assert record["state"] == "succeeded"
    assert record["media_key"] == f"13_{uploaded.remote_id}"
    assert record["size"] == 20_000_000
    assert record["sha256"] == hashlib.sha256(video).hexdigest()
    assert record["duration_ms"] == 45_000
    post = world.adapter.create_post(token, text="a video", media_ids=[uploaded.remote_id])
    assert post.remote_id.isdigit()


def test_an_animated_gif_is_processed(world: MediaWorld) -> None:
    token = world.connect().access_token
    uploaded = world.upload(token, "image/gif", samples.gif_bytes(320, 240, frames=4))
    assert world.uploads()[uploaded.remote_id]["media_key"].startswith("16_")
    assert world.sleeps == [1.0, 1.0]


def test_an_invalid_video_is_rejected(world: MediaWorld) -> None:
    token = world.connect().access_token
    with pytest.raises(ContentRejected) as rejected:
        world.upload(token, "video/mp4", samples.mp4_bytes(640, 360, 200_000))
    assert "Video duration 200 s is outside 0.5-140 s." in rejected.value.message
    assert not rejected.value.retryable
    with pytest.raises(ContentRejected) as too_wide:
        world.upload(token, "video/mp4", samples.mp4_bytes(1200, 300, 5_000))
    assert "aspect ratio" in too_wide.value.message


def test_content_that_is_not_its_type_is_rejected(world: MediaWorld) -> None:
    token = world.connect().access_token
    with pytest.raises(ContentRejected) as rejected:
        world.upload(token, "image/jpeg", samples.png_bytes(10, 10))
    assert rejected.value.status == 400
    assert "media_type is image/jpeg but the file is image/png" in rejected.value.message


def test_an_oversized_photo_is_rejected_before_any_bytes_are_sent(world: MediaWorld) -> None:
    token = world.connect().access_token
    payload = Payload("image/jpeg", samples.jpeg_bytes(10, 10, size=6 * 1024 * 1024))
    with pytest.raises(ContentRejected) as rejected:
        world.adapter.upload_media(token, payload)
    assert rejected.value.status == 400
    assert "for tweet_image" in rejected.value.message
    assert payload.reads == []


def test_a_503_on_append_is_transient(world: MediaWorld) -> None:
    tokens = world.connect()
    world.admin("/faults/media_append", {"fail_rate": 1.0, "fail_status": 503})
    with pytest.raises(TransientPlatformError) as unavailable:
        world.upload(tokens.access_token, "image/png", samples.png_bytes(10, 10))
    assert unavailable.value.status == 503
    assert unavailable.value.retryable
    assert tokens.access_token not in str(unavailable.value)
    world.admin("/faults/media_append", {"fail_rate": 0.0})
    assert world.upload(tokens.access_token, "image/png", samples.png_bytes(10, 10)).remote_id


def test_a_lost_finalize_response_is_transient(world: MediaWorld) -> None:
    token = world.connect().access_token
    world.admin("/faults/media_finalize", {"drop_response_rate": 1.0})
    with pytest.raises(TransientPlatformError):
        world.upload(token, "image/png", samples.png_bytes(10, 10))
    (record,) = world.uploads().values()
    assert record["state"] == "succeeded"  # committed; X just never said so


def test_an_expired_token_needs_reconnecting(world: MediaWorld) -> None:
    tokens = world.connect()
    world.admin("/clock", {"advance_seconds": 7201})
    with pytest.raises(AuthorizationExpired) as expired:
        world.upload(tokens.access_token, "image/png", samples.png_bytes(10, 10))
    assert expired.value.status == 401
    assert not expired.value.retryable
    assert world.admin("/media")["count"] == 0


def test_a_grant_without_media_write_fails_the_upload_not_the_account(world: MediaWorld) -> None:
    token = connect_with_scopes(world, "tweet.read tweet.write users.read")
    with pytest.raises(ContentRejected) as forbidden:
        world.upload(token, "image/png", samples.png_bytes(10, 10))
    assert type(forbidden.value) is ContentRejected
    assert forbidden.value.status == 403
    assert not forbidden.value.retryable
    assert "may lack X's media permission (media.write): reconnect it" in forbidden.value.message
    # The token is fine for what it was granted: text still posts.
    assert world.adapter.create_post(token, text="words only").remote_id


def test_recent_posts_list_the_media_and_drop_the_media_link(world: MediaWorld) -> None:
    token = world.connect().access_token
    profile = world.adapter.fetch_profile(token)
    photos = [world.upload(token, "image/png", samples.png_bytes(10, 10)) for _ in range(2)]
    ids = [photo.remote_id for photo in photos]
    world.adapter.create_post(token, text="two at example.com/p", media_ids=ids)
    world.adapter.create_post(token, text="", media_ids=ids[:1])

    recent = world.adapter.recent_posts(token, user_id=profile.external_id)

    assert [(post.text, post.media_ids) for post in recent] == [
        ("", (ids[0],)),
        ("two at http://example.com/p", tuple(ids)),
    ]


def test_processing_longer_than_the_cap_is_transient(start: Callable[..., MediaWorld]) -> None:
    world = start(XSimConfig(media_processing_secs=600), media_processing_timeout=5.0)
    token = world.connect().access_token
    with pytest.raises(TransientPlatformError) as slow:
        world.upload(token, "video/mp4", samples.mp4_bytes(640, 360, 3_000))
    assert "still processing" in slow.value.message
    assert sum(world.sleeps) == 5.0


def test_rate_limited_uploads(start: Callable[..., MediaWorld]) -> None:
    world = start(XSimConfig(media_initialize_per_15min=1))
    token = world.connect().access_token
    world.upload(token, "image/png", samples.png_bytes(10, 10))
    with pytest.raises(RateLimited) as limited:
        world.upload(token, "image/png", samples.png_bytes(10, 10))
    assert limited.value.reset_at is not None
    assert limited.value.reset_at > datetime.now(UTC) + timedelta(minutes=14)


def test_mixed_media_posts_are_rejected_with_x_s_reason(world: MediaWorld) -> None:
    token = world.connect().access_token
    photo = world.upload(token, "image/png", samples.png_bytes(10, 10)).remote_id
    video = world.upload(token, "video/mp4", samples.mp4_bytes(640, 360, 3_000)).remote_id
    with pytest.raises(ContentRejected) as mixed:
        world.adapter.create_post(token, text="both", media_ids=[photo, video])
    assert mixed.value.status == 400
    assert "or 1 video, but not a mix" in mixed.value.message
    assert world.admin("/tweets")["count"] == 0


@pytest.mark.parametrize(
    ("content_type", "category"),
    [
        ("image/gif", "tweet_gif"),
        ("image/png", "tweet_image"),
        ("image/jpeg", "tweet_image"),
        ("IMAGE/WEBP", "tweet_image"),
        ("video/mp4", "tweet_video"),
        ("video/quicktime; codecs=avc1", "tweet_video"),
    ],
)
def test_media_category_follows_the_content_type(content_type: str, category: str) -> None:
    assert media_category(content_type) == category


def connect_with_scopes(world: MediaWorld, scopes: str) -> str:
    """An access token for a grant narrower than the adapter asks for."""
    verifier, challenge = pkce()
    url = world.adapter.authorization_url(
        state="narrow", code_challenge=challenge, redirect_uri=REDIRECT
    )
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    page = world.http.get(parts._replace(query=urlencode({**query, "scope": scopes})).geturl())
    assert page.status_code == 200, page.text
    form = FormParser()
    form.feed(page.text)
    data = {**form.fields, "username": "narrow", "action": "allow"}
    redirect = world.http.post(urljoin(str(page.url), form.action), data=data)
    code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
    tokens = world.adapter.exchange_code(code=code, code_verifier=verifier, redirect_uri=REDIRECT)
    assert "media.write" not in tokens.scopes
    return tokens.access_token
