"""The TikTok adapter against the TikTok simulator over real HTTP, consent form included.

The adapter's ``sleep`` advances the sandbox clock (and yields a moment of real time, for
pulls the simulator downloads in a thread), so processing and moderation settle at once.
Publishing runs through a ``PublishProgress`` kept in a dict, which can lose its claim.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from application.platforms import (
    AuthorizationExpired,
    ClaimLost,
    ContentRejected,
    MediaPayload,
    MetricsSource,
    OAuthExchangeFailed,
    PlatformAdapter,
    PlatformError,
    PublishMedia,
    PublishRequest,
    QuotaReached,
    RateLimited,
    RemotePost,
    StagedPublisher,
    TokenSet,
    TransientPlatformError,
)
from interfaces.consent import approve
from interfaces.platforms.tiktok import PUBLISH_ID, PULL_REQUESTED_AT, ChunkPlan, TikTokAdapter
from sandbox import samples
from sandbox.app import create_sandbox_app
from sandbox.tiktok import TikTokSimConfig
from tests.integration.test_tiktok_simulator import pkce
from tests.support.servers import serve

REDIRECT = "http://127.0.0.1:9/oauth/tiktok/callback"
MIB = 1024 * 1024
CLIP = samples.mp4_bytes(720, 1280, 8_000, size=1 * MIB)


@dataclass
class Payload:
    """A stored file as the adapter sees it."""

    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        for offset in range(0, len(self.data), chunk_size):
            yield self.data[offset : offset + chunk_size]


@dataclass
class Progress:
    """``PublishProgress`` in a dict. ``lose_at_check`` makes the Nth ``check`` (1-based)
    raise ``ClaimLost``, as when the lease ran out or another worker took over."""

    checkpoints: dict[str, str] = field(default_factory=dict)
    holds: list[timedelta] = field(default_factory=list)
    lose_at_check: int | None = None
    checks: int = 0
    resumed: bool = False
    attempt_started: datetime | None = None

    def get(self, key: str) -> str | None:
        return self.checkpoints.get(key)

    def record(self, key: str, value: str) -> None:
        if value:
            self.checkpoints[key] = value
        else:
            self.checkpoints.pop(key, None)

    def hold(self, duration: timedelta) -> None:
        self.holds.append(duration)

    def check(self) -> None:
        self.checks += 1
        if self.lose_at_check is not None and self.checks >= self.lose_at_check:
            raise ClaimLost("another worker holds this delivery now")


@dataclass
class World:
    base: str
    http: httpx.Client
    adapter: TikTokAdapter
    sleeps: list[float]
    media_base: str

    def admin(self, path: str, body: object | None = None) -> Any:
        url = f"{self.base}/tiktok/_sandbox{path}"
        response = self.http.get(url) if body is None else self.http.post(url, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def connect(self, username: str = "creator") -> TokenSet:
        verifier, challenge = pkce()
        url = self.adapter.authorization_url(
            state="st", code_challenge=challenge, redirect_uri=REDIRECT
        )
        location = approve(url, username=username, client=self.http)
        code = parse_qs(urlsplit(location).query)["code"][0]
        return self.adapter.exchange_code(code=code, code_verifier=verifier, redirect_uri=REDIRECT)

    def request(
        self,
        data: bytes = CLIP,
        text: str = "a clip #sandbox",
        *,
        url: str = "https://media.example/elsewhere/clip.mp4",
        content_type: str = "video/mp4",
        duration_ms: int | None = 8_000,
        username: str = "creator",
    ) -> PublishRequest:
        payload: MediaPayload = Payload(content_type, data)
        media = PublishMedia(url=url, payload=payload, duration_ms=duration_ms)
        return PublishRequest(account_id="", username=username, text=text, media=[media])

    def publish(
        self,
        token: TokenSet,
        request: PublishRequest | None = None,
        progress: Progress | None = None,
    ) -> RemotePost:
        return self.adapter.publish(
            token.access_token, request or self.request(), progress or Progress()
        )

    def videos(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.admin("/videos")["data"]
        return found

    def publishes(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.admin("/publishes")["data"]
        return found

    def fault(self, endpoint: str, **fault: Any) -> None:
        self.admin(f"/faults/{endpoint}", fault)

    def clear_faults(self) -> None:
        self.http.delete(f"{self.base}/tiktok/_sandbox/faults").raise_for_status()


@pytest.fixture
def media_server() -> Iterator[str]:
    """Serves ``/media/<name>`` from the files the tests put in ``app.state.files``."""
    files: dict[str, tuple[bytes, str]] = {
        "clip.mp4": (CLIP, "video/mp4"),
        "a.jpg": (samples.jpeg_bytes(1080, 1350), "image/jpeg"),
        "b.webp": (samples.webp_bytes(1080, 1080), "image/webp"),
    }

    async def file(request: Request) -> Response:
        content, kind = files[request.path_params["name"]]
        return Response(content, media_type=kind)

    with serve(Starlette(routes=[Route("/media/{name}", file)])) as base:
        yield base


@pytest.fixture
def start(tmp_path: Path, media_server: str) -> Iterator[Callable[..., World]]:
    prefix = f"{media_server}/media/"
    with ExitStack() as stack:

        def _start(**options: Any) -> World:
            config = {
                "processing_secs": 2.0,
                "moderation_secs": 4.0,
                "verified_url_prefixes": (prefix,),
                **options.pop("sim", {}),
            }
            app = create_sandbox_app(tmp_path, tiktok_config=TikTokSimConfig(**config))
            base = stack.enter_context(serve(app))
            http = stack.enter_context(httpx.Client(timeout=30))
            sleeps: list[float] = []

            def sleep(seconds: float) -> None:
                sleeps.append(seconds)
                clock = http.post(
                    f"{base}/tiktok/_sandbox/clock", json={"advance_seconds": seconds}
                )
                assert clock.status_code == 200
                time.sleep(0.005)

            adapter_options: dict[str, Any] = {
                "client_key": "kairos-sandbox",
                "client_secret": "kairos-sandbox-secret",
                "authorize_url": f"{base}/tiktok/v2/auth/authorize/",
                "api_base_url": f"{base}/tiktok",
                "pull_url_prefixes": (prefix,),
                "sleep": sleep,
                "status_interval": 2.0,
                "processing_timeout": 60.0,
                "post_id_timeout": 20.0,
                "pull_settle_timeout": 60.0,
                **options,
            }
            adapter = stack.enter_context(TikTokAdapter(**adapter_options))
            return World(base, http, adapter, sleeps, media_server)

        yield _start


@pytest.fixture
def world(start: Callable[..., World]) -> World:
    return start()


def assert_no_secret(error: PlatformError, *secrets_: str | None) -> None:
    text = f"{error} {error.message!r} {error.args!r}"
    for secret in secrets_:
        assert secret
        assert secret not in text


# -- identity and OAuth -----------------------------------------------------------------


def test_the_adapter_implements_the_ports(world: World) -> None:
    adapter: PlatformAdapter = world.adapter
    assert adapter.provider == "tiktok"
    assert adapter.capabilities() == ("video",)
    assert isinstance(world.adapter, StagedPublisher)
    assert isinstance(world.adapter, MetricsSource)


def test_authorization_url_asks_for_the_scopes_with_pkce(world: World) -> None:
    url = world.adapter.authorization_url(state="s t", code_challenge="ch", redirect_uri=REDIRECT)
    parts = urlsplit(url)
    assert (
        f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{world.base}/tiktok/v2/auth/authorize/"
    )
    assert {key: values[0] for key, values in parse_qs(parts.query).items()} == {
        "client_key": "kairos-sandbox",
        "response_type": "code",
        "scope": "user.info.basic,user.info.profile,video.publish,video.upload,video.list",
        "redirect_uri": REDIRECT,
        "state": "s t",
        "code_challenge": "ch",
        "code_challenge_method": "S256",
    }


def test_connect_read_the_profile_and_rotate_the_refresh_token(
    start: Callable[..., World],
) -> None:
    world = start(sim={"access_token_ttl": 600, "refresh_token_ttl": 86_400})
    before = datetime.now(UTC)
    tokens = world.connect("dancer")
    assert tokens.expires_at is not None
    assert tokens.refresh_expires_at is not None
    assert (
        before + timedelta(seconds=600)
        <= tokens.expires_at
        <= datetime.now(UTC) + timedelta(seconds=600)
    )
    assert tokens.refresh_expires_at - tokens.expires_at == timedelta(seconds=86_400 - 600)
    assert tokens.scopes == (
        "user.info.basic",
        "user.info.profile",
        "video.publish",
        "video.upload",
        "video.list",
    )
    profile = world.adapter.fetch_profile(tokens.access_token)
    assert profile.username == "dancer"
    assert profile.display_name == "Sandbox dancer"
    assert profile.external_id == world.admin("/users/dancer")["open_id"]
    assert profile.avatar_url

    assert tokens.refresh_token is not None
    rotated = world.adapter.refresh(tokens.refresh_token)
    assert rotated.refresh_token not in (None, tokens.refresh_token)
    assert rotated.refresh_expires_at is not None
    assert world.adapter.fetch_profile(rotated.access_token).username == "dancer"
    with pytest.raises(OAuthExchangeFailed) as spent:
        world.adapter.refresh(tokens.refresh_token)
    assert "invalid_grant" in spent.value.message
    assert_no_secret(spent.value, tokens.refresh_token)


def test_an_oauth_error_with_http_200_is_still_an_error(start: Callable[..., World]) -> None:
    world = start(sim={"oauth_errors_http_200": True})
    with pytest.raises(OAuthExchangeFailed) as refused:
        world.adapter.refresh("rft.not-a-token")
    assert refused.value.status == 200
    with pytest.raises(OAuthExchangeFailed):
        world.adapter.exchange_code(code="nope", code_verifier="v", redirect_uri=REDIRECT)


def test_token_endpoint_outage_is_transient(world: World) -> None:
    world.fault("oauth_token", fail_next=1, fail_status=503)
    with pytest.raises(TransientPlatformError):
        world.adapter.refresh("rft.whatever")


def test_an_expired_token_asks_to_reconnect(world: World) -> None:
    world.admin("/users/creator", {"access_token_ttl": 5})
    tokens = world.connect()
    world.admin("/clock", {"advance_seconds": 6})
    with pytest.raises(AuthorizationExpired) as expired:
        world.adapter.fetch_profile(tokens.access_token)
    assert_no_secret(expired.value, tokens.access_token)
    with pytest.raises(AuthorizationExpired):
        world.publish(tokens)


def test_a_withheld_scope_says_which_to_grant(world: World) -> None:
    world.admin("/users/creator", {"withheld_scopes": ["video.publish"]})
    tokens = world.connect()
    with pytest.raises(AuthorizationExpired) as missing:
        world.publish(tokens)
    assert "video.publish" in missing.value.message
    assert "reconnect" in missing.value.message


# -- publishing -------------------------------------------------------------------------


def test_publish_a_small_video_whole(world: World) -> None:
    tokens = world.connect()
    progress = Progress()
    published = world.publish(tokens, progress=progress)
    videos = world.videos()
    assert len(videos) == 1
    assert published.remote_id == videos[0]["id"]
    assert int(published.remote_id) > 2**53
    assert published.url == f"https://www.tiktok.com/@creator/video/{published.remote_id}"
    assert videos[0]["title"] == "a clip #sandbox"
    assert videos[0]["privacy_level"] == "PUBLIC_TO_EVERYONE"
    (publish,) = world.publishes()
    assert progress.checkpoints == {PUBLISH_ID: publish["publish_id"]}
    assert (publish["source"], publish["total_chunk_count"]) == ("FILE_UPLOAD", 1)
    assert progress.holds
    assert progress.holds[0] >= timedelta(seconds=30)  # the upload, then steps of 30 s
    assert world.sleeps
    assert all(seconds >= 2 for seconds in world.sleeps)


def test_publish_a_video_in_chunks(start: Callable[..., World]) -> None:
    world = start(chunk_size=5 * MIB)
    tokens = world.connect()
    data = samples.mp4_bytes(1080, 1920, 30_000, size=12 * MIB)
    assert ChunkPlan.for_size(len(data), 5 * MIB) == ChunkPlan(len(data), 5 * MIB, 2)
    published = world.publish(tokens, world.request(data))
    (publish,) = world.publishes()
    assert (publish["chunk_size"], publish["total_chunk_count"]) == (5 * MIB, 2)
    assert publish["uploaded_bytes"] == len(data)
    assert [video["id"] for video in world.videos()] == [published.remote_id]


def test_a_chunk_answered_with_a_5xx_is_sent_again(start: Callable[..., World]) -> None:
    world = start(chunk_size=5 * MIB)
    tokens = world.connect()
    world.fault("upload_chunk", fail_next=1, fail_status=502)
    world.publish(tokens, world.request(samples.mp4_bytes(720, 1280, 8_000, size=11 * MIB)))
    assert world.admin("/faults/upload_chunk")["fail_next"] == 0
    assert len(world.videos()) == 1


@pytest.mark.parametrize("mode", ["abort", "503"])
def test_a_chunk_whose_answer_was_lost_is_not_sent_twice(
    start: Callable[..., World], mode: str
) -> None:
    """Lost outright, the status says where the upload stands; answered 503, the chunk is
    sent again and TikTok's 416 says where it stands."""
    world = start(chunk_size=5 * MIB)
    tokens = world.connect()
    world.fault("upload_chunk", drop_next=1, drop_response_mode=mode)
    published = world.publish(
        tokens, world.request(samples.mp4_bytes(720, 1280, 8_000, size=11 * MIB))
    )
    assert world.admin("/faults/upload_chunk")["drop_next"] == 0
    (publish,) = world.publishes()
    assert publish["uploaded_bytes"] == 11 * MIB
    assert [video["id"] for video in world.videos()] == [published.remote_id]


def test_publish_by_pull_from_a_verified_prefix(world: World) -> None:
    tokens = world.connect()
    progress = Progress()
    request = world.request(url=f"{world.media_base}/media/clip.mp4")
    published = world.publish(tokens, request, progress)
    (publish,) = world.publishes()
    assert publish["source"] == "PULL_FROM_URL"
    assert publish["downloaded_bytes"] == len(CLIP)
    assert set(progress.checkpoints) == {PUBLISH_ID, PULL_REQUESTED_AT}
    assert [video["id"] for video in world.videos()] == [published.remote_id]


def test_a_photo_post_is_pulled(world: World) -> None:
    tokens = world.connect()
    images = [
        PublishMedia(
            url=f"{world.media_base}/media/{name}",
            payload=Payload(kind, samples.jpeg_bytes(10, 10)),
        )
        for name, kind in (("a.jpg", "image/jpeg"), ("b.webp", "image/webp"))
    ]
    request = PublishRequest(account_id="", username="creator", text="two photos", media=images)
    published = world.publish(tokens, request)
    assert published.url == f"https://www.tiktok.com/@creator/photo/{published.remote_id}"
    (video,) = world.videos()
    assert (video["media_type"], video["description"]) == ("PHOTO", "two photos")

    elsewhere = [PublishMedia(url="https://cdn.example/a.jpg", payload=images[0].payload)]
    with pytest.raises(ContentRejected) as refused:
        world.publish(tokens, PublishRequest("", "creator", "x", elsewhere))
    assert "verified with TikTok" in refused.value.message


def test_an_unaudited_app_posts_privately_and_no_post_id_shows(start: Callable[..., World]) -> None:
    world = start(sim={"unaudited_client": True})
    tokens = world.connect()
    published = world.publish(tokens)
    (video,) = world.videos()
    assert video["privacy_level"] == "SELF_ONLY"
    (publish,) = world.publishes()
    assert published == RemotePost(
        remote_id=publish["publish_id"], url="https://www.tiktok.com/@creator"
    )


# -- in doubt ---------------------------------------------------------------------------


def test_a_lost_init_answer_for_an_upload_is_simply_sent_again(world: World) -> None:
    tokens = world.connect()
    world.fault("video_init", drop_next=1)
    progress = Progress()
    with pytest.raises(TransientPlatformError):
        world.publish(tokens, progress=progress)
    assert progress.checkpoints == {}  # nothing can publish without the upload URL
    world.publish(tokens, progress=progress)
    assert len(world.publishes()) == 2
    assert len(world.videos()) == 1


def test_a_lost_answer_to_the_last_chunk_settles_by_status(world: World) -> None:
    tokens = world.connect()
    world.fault("upload_final", drop_next=1)
    published = world.publish(tokens)
    assert world.admin("/faults/upload_final")["drop_next"] == 0  # the answer was lost
    assert [video["id"] for video in world.videos()] == [published.remote_id]


def test_lost_status_answers_are_tolerated_then_settled_by_the_checkpoint(world: World) -> None:
    tokens = world.connect()
    world.fault("status_fetch", drop_next=1)
    world.publish(tokens)
    assert world.admin("/faults/status_fetch")["drop_next"] == 0
    assert len(world.videos()) == 1

    world.fault("status_fetch", drop_response_rate=1.0, drop_response_mode="503")
    progress = Progress()
    with pytest.raises(TransientPlatformError):
        world.publish(tokens, world.request(text="second"), progress)
    assert PUBLISH_ID in progress.checkpoints
    world.clear_faults()
    published = world.publish(
        tokens, world.request(text="second"), Progress(dict(progress.checkpoints))
    )
    assert len(world.publishes()) == 2
    seconds = [video for video in world.videos() if video["title"] == "second"]
    assert [video["id"] for video in seconds] == [published.remote_id]


def test_a_worker_that_died_mid_upload_is_started_over(start: Callable[..., World]) -> None:
    world = start(chunk_size=5 * MIB)
    tokens = world.connect()
    request = world.request(samples.mp4_bytes(720, 1280, 8_000, size=11 * MIB))
    dying = Progress(lose_at_check=4)  # before init, before init, chunk 1, then chunk 2
    with pytest.raises(ClaimLost):
        world.publish(tokens, request, dying)
    (abandoned,) = world.publishes()
    assert abandoned["status"] == "PROCESSING_UPLOAD"
    assert 0 < abandoned["uploaded_bytes"] < 11 * MIB
    assert dying.checkpoints == {PUBLISH_ID: abandoned["publish_id"]}

    taking_over = Progress(dict(dying.checkpoints), resumed=True)
    published = world.publish(tokens, request, taking_over)
    assert len(world.publishes()) == 2
    assert [video["id"] for video in world.videos()] == [published.remote_id]
    assert taking_over.checkpoints[PUBLISH_ID] != abandoned["publish_id"]


def test_a_finished_earlier_attempt_is_not_posted_again(world: World) -> None:
    tokens = world.connect()
    progress = Progress()
    first = world.publish(tokens, progress=progress)
    again = world.publish(tokens, progress=Progress(dict(progress.checkpoints), resumed=True))
    assert again == first
    assert len(world.publishes()) == 1


def test_a_lost_pull_init_is_found_in_the_video_list(world: World) -> None:
    tokens = world.connect()
    request = world.request(url=f"{world.media_base}/media/clip.mp4", text="pulled once")
    world.fault("video_init", drop_next=1)
    progress = Progress()
    with pytest.raises(TransientPlatformError):
        world.publish(tokens, request, progress)
    assert set(progress.checkpoints) == {PULL_REQUESTED_AT}
    published = world.publish(tokens, request, progress)
    assert len(world.publishes()) == 1
    assert [video["id"] for video in world.videos()] == [published.remote_id]


def test_an_internal_failure_is_sent_again(world: World) -> None:
    tokens = world.connect()
    world.admin("/fail_reasons", {"fail_reason": "internal"})
    progress = Progress()
    with pytest.raises(TransientPlatformError):
        world.publish(tokens, progress=progress)
    assert progress.checkpoints == {}
    world.publish(tokens, progress=progress)
    assert len(world.publishes()) == 2
    assert len(world.videos()) == 1


def test_a_failed_duration_check_is_rejected_for_good(world: World) -> None:
    tokens = world.connect()
    request = world.request(samples.mp4_bytes(720, 1280, 2_000), duration_ms=None)
    with pytest.raises(ContentRejected) as refused:
        world.publish(tokens, request)
    assert "duration" in refused.value.message
    assert world.videos() == []


def test_a_video_longer_than_the_creator_may_post_is_refused_before_init(world: World) -> None:
    world.admin("/users/creator", {"max_video_post_duration_sec": 60})
    tokens = world.connect()
    with pytest.raises(ContentRejected) as refused:
        world.publish(tokens, world.request(duration_ms=90_000))
    assert "60 s" in refused.value.message
    assert world.publishes() == []


def test_a_lost_claim_propagates(world: World) -> None:
    tokens = world.connect()
    with pytest.raises(ClaimLost):
        world.publish(tokens, progress=Progress(lose_at_check=1))
    assert world.publishes() == []


# -- limits -----------------------------------------------------------------------------


def test_the_per_minute_limit_is_rate_limited(start: Callable[..., World]) -> None:
    world = start(sim={"creator_info_per_min": 0})
    tokens = world.connect()
    with pytest.raises(RateLimited) as limited:
        world.publish(tokens)
    assert limited.value.reset_at is not None
    assert limited.value.reset_at - datetime.now(UTC) <= timedelta(seconds=61)


def test_the_daily_cap_is_a_quota_until_tomorrow(start: Callable[..., World]) -> None:
    world = start(sim={"daily_post_cap": 1})
    tokens = world.connect()
    world.publish(tokens)
    with pytest.raises(QuotaReached) as capped:
        world.publish(tokens, world.request(text="another"))
    assert capped.value.retry_at is not None
    assert capped.value.retry_at > datetime.now(UTC)
    assert capped.value.retry_at - datetime.now(UTC) <= timedelta(days=1)


def test_a_banned_account_is_refused(world: World) -> None:
    world.admin("/users/creator", {"banned_from_posting": True})
    tokens = world.connect()
    with pytest.raises(ContentRejected) as banned:
        world.publish(tokens)
    assert "banned" in banned.value.message


# -- metrics ----------------------------------------------------------------------------


def test_post_metrics_batch_and_leave_out_unknown_ids(world: World) -> None:
    tokens = world.connect()
    first = world.publish(tokens)
    second = world.publish(tokens, world.request(text="second"))
    world.admin("/clock", {"advance_seconds": 3600})
    tokens = world.connect()
    ids = [first.remote_id, second.remote_id, "7000000000000000001", "v_pub_file~v2-1.1"]
    early = {
        m.remote_id: m
        for m in world.adapter.post_metrics(tokens.access_token, account_id="", remote_ids=ids * 6)
    }
    assert set(early) == {first.remote_id, second.remote_id}
    assert all(m.views is not None and m.likes is not None for m in early.values())
    world.admin("/clock", {"advance_seconds": 24 * 3600})
    tokens = world.connect()
    later = world.adapter.post_metrics(
        tokens.access_token, account_id="", remote_ids=[first.remote_id]
    )
    before, after = early[first.remote_id].views, later[0].views
    assert before is not None
    assert after is not None
    assert after > before
