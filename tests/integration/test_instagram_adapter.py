"""The Instagram adapters (Instagram Login and Facebook Login) against the Instagram
simulator over real HTTP, consent form included.

The adapters' ``sleep`` advances the sandbox clock instead of waiting, so containers that
process for seconds on Instagram settle at once and the waits asked for can be asserted.
Publishing runs with an in-memory ``PublishProgress`` that keeps the checkpoints in a dict
and can lose its claim on cue, as a worker whose lease ran out would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from application.platforms import (
    AccountChooser,
    AccountProfile,
    AuthorizationExpired,
    ClaimLost,
    ContentRejected,
    MetricsSource,
    OAuthExchangeFailed,
    PersonalAccountRefused,
    PlatformAdapter,
    PlatformError,
    PublishMedia,
    PublishProgress,
    PublishRequest,
    QuotaReached,
    RateLimited,
    StagedPublisher,
    TokenSet,
    TransientPlatformError,
)
from interfaces.consent import approve
from interfaces.platforms.instagram import FacebookInstagramAdapter, InstagramAdapter
from sandbox import samples
from sandbox.instagram import InstagramSimConfig
from tests.integration.test_instagram_simulator import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT,
    MediaServer,
    Sim,
    instagram_server,
)
from tests.support.servers import free_port, serve

DAY = 24 * 3600
SQUARE = samples.jpeg_bytes(1080, 1080)
PORTRAIT = samples.jpeg_bytes(1080, 1350)
REEL = samples.mp4_bytes(720, 1280, 8_000)


@dataclass
class Payload:
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
    """Checkpoints in a dict; ``lose_claim_at_check`` makes the n-th ``check`` (from 1)
    raise ``ClaimLost``, as when another worker took the delivery over."""

    checkpoints: dict[str, str] = field(default_factory=dict)
    attempt_started: datetime | None = None
    lose_claim_at_check: int | None = None
    checks: int = 0
    holds: list[timedelta] = field(default_factory=list)
    recorded: list[tuple[str, str]] = field(default_factory=list)

    @property
    def resumed(self) -> bool:
        return self.attempt_started is not None

    def get(self, key: str) -> str | None:
        return self.checkpoints.get(key)

    def record(self, key: str, value: str) -> None:
        self.recorded.append((key, value))
        if value:
            self.checkpoints[key] = value
        else:
            self.checkpoints.pop(key, None)

    def hold(self, duration: timedelta) -> None:
        self.holds.append(duration)

    def check(self) -> None:
        self.checks += 1
        if self.lose_claim_at_check is not None and self.checks >= self.lose_claim_at_check:
            raise ClaimLost("another worker holds this delivery now")

    def next_attempt(self) -> Progress:
        """The same delivery as the next claim sees it."""
        started = self.attempt_started or datetime.now(UTC) - timedelta(seconds=5)
        return Progress(dict(self.checkpoints), started)


@dataclass
class World:
    sim: Sim
    ig: InstagramAdapter
    fb: FacebookInstagramAdapter
    #: Every wait the adapters asked for, in seconds of sandbox time.
    sleeps: list[float]
    #: Called with each wait after the clock advanced: what happens meanwhile.
    meanwhile: list[Callable[[float], None]] = field(default_factory=list)

    @property
    def http(self) -> httpx.Client:
        return self.sim.http

    def code(self, adapter: InstagramAdapter | FacebookInstagramAdapter, username: str) -> str:
        url = adapter.authorization_url(
            state="st4te", code_challenge="ignored", redirect_uri=REDIRECT
        )
        location = urlsplit(approve(url, username=username, client=self.http))
        query = parse_qs(location.query)
        assert query["state"] == ["st4te"]
        return query["code"][0]

    def connect_ig(self, username: str = "sandbox_user") -> tuple[TokenSet, AccountProfile]:
        code = self.code(self.ig, username)
        tokens = self.ig.exchange_code(code=code, code_verifier="unused", redirect_uri=REDIRECT)
        return tokens, self.ig.fetch_profile(tokens.access_token)

    def connect_fb(self, username: str = "sandbox_fb") -> TokenSet:
        code = self.code(self.fb, username)
        return self.fb.exchange_code(code=code, code_verifier="unused", redirect_uri=REDIRECT)

    def media(self, name: str, data: bytes, content_type: str = "image/jpeg") -> PublishMedia:
        url = self.sim.media.add(name, data, content_type)
        return PublishMedia(url=url, payload=Payload(content_type, data))

    def photo_post(
        self, profile: AccountProfile, text: str, data: bytes = SQUARE
    ) -> PublishRequest:
        return PublishRequest(
            account_id=profile.external_id,
            username=profile.username,
            text=text,
            media=[self.media(f"{len(text)}-{hash(text)}.jpg", data)],
        )

    def published(self) -> list[dict[str, Any]]:
        media: list[dict[str, Any]] = self.sim.admin("/media")["data"]
        return media


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., World]]:
    with ExitStack() as stack:

        def _start(config: InstagramSimConfig | None = None, **options: Any) -> World:
            media = MediaServer()
            media.base = stack.enter_context(serve(media.app()))
            base = instagram_server(stack, tmp_path, config)
            http = stack.enter_context(httpx.Client(timeout=30))
            sim = Sim(base, http, media)
            sleeps: list[float] = []
            meanwhile: list[Callable[[float], None]] = []

            def sleep(seconds: float) -> None:
                sleeps.append(seconds)
                sim.advance(seconds)
                for happening in meanwhile:
                    happening(seconds)

            common = {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "sleep": sleep,
                **options,
            }
            ig = stack.enter_context(
                InstagramAdapter(
                    authorize_url=f"{base}/oauth/authorize",
                    token_url=f"{base}/oauth/access_token",
                    graph_url=f"{base}/graph",
                    **common,
                )
            )
            fb = stack.enter_context(
                FacebookInstagramAdapter(
                    authorize_url=f"{base}/facebook/v25.0/dialog/oauth",
                    graph_url=f"{base}/facebook-graph",
                    **common,
                )
            )
            return World(sim, ig, fb, sleeps, meanwhile)

        yield _start


@pytest.fixture
def world(start: Callable[..., World]) -> World:
    return start()


def assert_no_secret(error: BaseException, *secrets: str) -> None:
    text = f"{error} {error.args!r} {getattr(error, 'message', '')}"
    for secret in secrets:
        assert secret
        assert secret not in text


# -- the port -------------------------------------------------------------------------------


def test_both_adapters_implement_the_ports(world: World) -> None:
    for adapter, provider in ((world.ig, "instagram"), (world.fb, "instagram-facebook")):
        port: PlatformAdapter = adapter
        assert port.provider == provider
        assert isinstance(adapter, StagedPublisher)
        assert isinstance(adapter, MetricsSource)
        assert "images" in port.capabilities()
        assert port.post_url("123").startswith("https://www.instagram.com/")
    assert isinstance(world.fb, AccountChooser)
    assert not isinstance(world.ig, AccountChooser)


# -- Instagram Login ------------------------------------------------------------------------


def test_instagram_authorization_url(world: World) -> None:
    url = world.ig.authorization_url(state="a b", code_challenge="chal", redirect_uri=REDIRECT)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{world.sim.base}/oauth/authorize"
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert query == {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "instagram_business_basic,instagram_business_content_publish,"
        "instagram_business_manage_insights",
        "state": "a b",
    }


@pytest.mark.parametrize("shape", ["data", "flat"])
def test_instagram_login_gives_a_long_lived_self_refreshing_token(
    start: Callable[..., World], shape: str
) -> None:
    world = start(InstagramSimConfig(token_response_shape=shape))  # type: ignore[arg-type]
    before = datetime.now(UTC)
    tokens, profile = world.connect_ig("alice")
    assert tokens.refresh_token == tokens.access_token
    assert tokens.expires_at is not None
    assert abs((tokens.expires_at - (before + timedelta(days=60))).total_seconds()) < 30
    assert tokens.refresh_expires_at == tokens.expires_at
    assert tokens.scopes == (
        "instagram_business_basic",
        "instagram_business_content_publish",
        "instagram_business_manage_insights",
    )
    user = world.sim.admin("/users/alice")
    assert profile == AccountProfile(
        external_id=user["id"],
        username="alice",
        display_name="Sandbox alice",
        avatar_url=profile.avatar_url,
    )


def test_instagram_refresh_once_the_token_is_a_day_old(world: World) -> None:
    tokens, _ = world.connect_ig("alice")
    assert tokens.refresh_token is not None
    with pytest.raises(OAuthExchangeFailed) as too_young:
        world.ig.refresh(tokens.refresh_token)
    assert "24 hours" in too_young.value.message
    assert_no_secret(too_young.value, tokens.refresh_token)

    world.sim.advance(DAY + 60)
    renewed = world.ig.refresh(tokens.refresh_token)
    assert renewed.access_token != tokens.access_token
    assert renewed.refresh_token == renewed.access_token
    assert renewed.expires_at is not None
    assert world.ig.fetch_profile(renewed.access_token).username == "alice"

    world.sim.advance(61 * DAY)
    with pytest.raises(OAuthExchangeFailed):
        world.ig.refresh(renewed.access_token)
    with pytest.raises(AuthorizationExpired) as expired:
        world.ig.fetch_profile(renewed.access_token)
    assert "Session has expired" in expired.value.message
    assert_no_secret(expired.value, renewed.access_token)


def test_instagram_code_problems_fail_the_exchange(world: World) -> None:
    code = world.code(world.ig, "alice")
    world.ig.exchange_code(code=code, code_verifier="x", redirect_uri=REDIRECT)
    with pytest.raises(OAuthExchangeFailed) as reused:
        world.ig.exchange_code(code=code, code_verifier="x", redirect_uri=REDIRECT)
    assert "This authorization code has been used" in reused.value.message
    assert not reused.value.retryable
    assert_no_secret(reused.value, code, CLIENT_SECRET)

    world.sim.fault("oauth_token", fail_rate=1, fail_status=503, times=1)
    with pytest.raises(TransientPlatformError):
        world.ig.exchange_code(
            code=world.code(world.ig, "alice"), code_verifier="x", redirect_uri=REDIRECT
        )


def test_a_personal_instagram_account_is_refused(world: World) -> None:
    world.sim.admin("/users/casual", {"account_type": "PERSONAL"})
    code = world.code(world.ig, "casual")
    tokens = world.ig.exchange_code(code=code, code_verifier="x", redirect_uri=REDIRECT)
    with pytest.raises(PersonalAccountRefused) as refused:
        world.ig.fetch_profile(tokens.access_token)
    assert "@casual is a personal Instagram account" in refused.value.message
    assert "Business or Creator" in refused.value.message


# -- Facebook Login -------------------------------------------------------------------------


def test_facebook_login_chooses_among_page_linked_accounts(world: World) -> None:
    before = datetime.now(UTC)
    tokens = world.connect_fb("dana")
    assert tokens.refresh_token is None
    assert tokens.expires_at is not None
    assert abs((tokens.expires_at - (before + timedelta(days=60))).total_seconds()) < 30
    with pytest.raises(OAuthExchangeFailed, match="cannot be refreshed; reconnect"):
        world.fb.refresh("anything")

    accounts = world.fb.connectable_accounts(tokens.access_token)
    assert [(a.username, a.detail) for a in accounts] == [
        ("dana_studio", "via the Facebook Page 'dana Studio'"),
        ("dana_shop", "via the Facebook Page 'dana Shop'"),
    ]
    assert accounts[0].external_id == world.sim.admin("/users/dana_studio")["id"]
    me = world.fb.fetch_profile(tokens.access_token)
    assert me.display_name == "Sandbox dana"

    world.sim.admin(
        "/facebook-users/dana/pages", [{"name": "Just a page", "instagram": None}], method="PUT"
    )
    with pytest.raises(PersonalAccountRefused) as refused:
        world.fb.connectable_accounts(tokens.access_token)
    assert "professional account" in refused.value.message
    assert "link it to a Facebook Page" in refused.value.message


def test_facebook_code_problems_fail_the_exchange(world: World) -> None:
    code = world.code(world.fb, "dana")
    with pytest.raises(OAuthExchangeFailed) as mismatch:
        world.fb.exchange_code(code=code, code_verifier="x", redirect_uri=REDIRECT + "/other")
    assert "redirect_uri is identical" in mismatch.value.message
    assert_no_secret(mismatch.value, code, CLIENT_SECRET)


# -- publishing ----------------------------------------------------------------------------


def test_publish_a_photo_with_checkpoints(world: World) -> None:
    tokens, profile = world.connect_ig("alice")
    progress = Progress()
    request = world.photo_post(profile, "Hello from Kairos #first")

    posted = world.ig.publish(tokens.access_token, request, progress)

    (media,) = world.published()
    assert posted.remote_id == media["id"]
    assert posted.url == media["permalink"]
    assert media["caption"] == "Hello from Kairos #first"
    assert [key for key, _ in progress.recorded] == ["container", "media"]
    assert progress.checkpoints["media"] == posted.remote_id
    assert progress.holds == []  # a photo is ready in a second
    assert world.sleeps == [1.0]
    assert progress.checks == 2  # before the container, before media_publish
    # Once the media is recorded, another run only reads its permalink.
    assert world.ig.publish(tokens.access_token, request, progress.next_attempt()) == posted
    assert len(world.published()) == 1


def test_publish_a_reel_holds_the_claim_while_it_processes(start: Callable[..., World]) -> None:
    world = start(InstagramSimConfig(video_processing_secs=12))
    tokens, profile = world.connect_ig("alice")
    progress = Progress()
    request = PublishRequest(
        account_id=profile.external_id,
        username="alice",
        text="A reel",
        media=[world.media("reel.mp4", REEL, "video/mp4")],
    )
    posted = world.ig.publish(tokens.access_token, request, progress)
    (media,) = world.published()
    assert (media["id"], media["media_product_type"]) == (posted.remote_id, "REELS")
    assert "/reel/" in posted.url
    assert world.sleeps == [5.0, 5.0, 5.0]
    assert progress.holds == [timedelta(seconds=30)]


def test_publish_a_carousel_through_facebook_login(world: World) -> None:
    tokens = world.connect_fb("dana")
    account = world.fb.connectable_accounts(tokens.access_token)[0]
    progress = Progress()
    request = PublishRequest(
        account_id=account.external_id,
        username=account.username,
        text="Three things",
        media=[
            world.media("one.jpg", SQUARE),
            world.media("two.jpg", PORTRAIT),
            world.media("three.mp4", samples.mp4_bytes(1080, 1080, 5_000), "video/mp4"),
        ],
    )
    posted = world.fb.publish(tokens.access_token, request, progress)
    (media,) = world.published()
    assert media["id"] == posted.remote_id
    assert media["media_type"] == "CAROUSEL_ALBUM"
    assert media["children"] == 3
    assert media["username"] == "dana_studio"
    assert [key for key, _ in progress.recorded] == [
        "item/0",
        "item/1",
        "item/2",
        "container",
        "media",
    ]


def test_media_publish_lost_after_commit_settles_to_the_same_post(world: World) -> None:
    tokens, profile = world.connect_ig("alice")
    request = world.photo_post(profile, "Did  this\ngo out?")
    world.sim.fault("media_publish", drop_response_rate=1, times=1)
    # Nor can the container's status be read right after (the two reads while it processed
    # go through): the outcome stays unknown.
    world.sim.fault("container_status", fail_rate=1, fail_status=503, after=2, times=1)
    first = Progress()
    with pytest.raises(TransientPlatformError) as lost:
        world.ig.publish(tokens.access_token, request, first)
    assert_no_secret(lost.value, tokens.access_token)
    assert "media" not in first.checkpoints
    (media,) = world.published()

    retry = first.next_attempt()
    posted = world.ig.publish(tokens.access_token, request, retry)

    assert posted.remote_id == media["id"]
    assert retry.checkpoints["media"] == media["id"]
    assert len(world.published()) == 1
    assert world.sim.admin("/media")["duplicates"] == 0


@pytest.mark.parametrize("mode", ["abort", "503"])
def test_a_lost_publish_answer_is_settled_at_once_from_the_container(
    world: World, mode: str
) -> None:
    tokens, profile = world.connect_ig("alice")
    request = world.photo_post(profile, "Lost and found")
    world.sim.fault("media_publish", drop_response_rate=1, drop_response_mode=mode, times=1)
    posted = world.ig.publish(tokens.access_token, request, Progress())
    (media,) = world.published()
    assert posted.remote_id == media["id"]


def test_a_lost_container_answer_leaves_an_orphan_not_a_duplicate(world: World) -> None:
    tokens, profile = world.connect_ig("alice")
    request = world.photo_post(profile, "Orphans are harmless")
    world.sim.fault("media", drop_response_rate=1, times=1)
    first = Progress()
    with pytest.raises(TransientPlatformError):
        world.ig.publish(tokens.access_token, request, first)
    assert first.checkpoints == {}

    posted = world.ig.publish(tokens.access_token, request, first.next_attempt())
    (media,) = world.published()
    assert media["id"] == posted.remote_id
    containers = world.sim.admin("/containers")["data"]
    assert [c["status_code"] for c in containers] == ["FINISHED", "PUBLISHED"]


def test_already_published_answer_is_settled_not_republished(world: World) -> None:
    tokens, profile = world.connect_ig("alice")
    request = world.photo_post(profile, "Published by another worker")
    progress = Progress()
    world.sim.fault("media_publish", error_rate=1, error_code=9007, error_subcode=2207027, times=1)

    def another_worker_publishes(seconds: float) -> None:
        if seconds == 3.0:  # while this one waits for "not ready" to pass
            container = progress.checkpoints["container"]
            world.sim.publish(tokens.access_token, profile.external_id, container)

    world.meanwhile.append(another_worker_publishes)
    posted = world.ig.publish(tokens.access_token, request, progress)
    assert [m["id"] for m in world.published()] == [posted.remote_id]
    assert progress.checkpoints["media"] == posted.remote_id


def test_a_published_container_whose_post_is_not_listed_yet_is_transient(world: World) -> None:
    tokens, profile = world.connect_ig("alice")
    url = world.sim.media.add("x.jpg", SQUARE)
    container = world.sim.container(
        tokens.access_token, profile.external_id, image_url=url, caption="Edited on Instagram since"
    )
    world.sim.advance(2)
    world.sim.publish(tokens.access_token, profile.external_id, container)
    progress = Progress({"container": container}, datetime.now(UTC))
    request = world.photo_post(profile, "As Kairos wrote it")
    with pytest.raises(TransientPlatformError, match="does not list it yet"):
        world.ig.publish(tokens.access_token, request, progress)
    assert len(world.published()) == 1
    assert progress.checks == 0


def test_expired_or_failed_containers_are_created_again(world: World) -> None:
    tokens, profile = world.connect_ig("alice")
    request = world.photo_post(profile, "Second chance")
    world.sim.fault("media_publish", fail_rate=1, fail_status=500, times=1)
    world.sim.fault("container_status", fail_rate=1, after=2, times=1)
    first = Progress()
    with pytest.raises(TransientPlatformError):
        world.ig.publish(tokens.access_token, request, first)
    expired = first.checkpoints["container"]
    world.sim.advance(DAY + 60)

    posted = world.ig.publish(tokens.access_token, request, first.next_attempt())
    assert [m["id"] for m in world.published()] == [posted.remote_id]
    containers = {c["id"]: c for c in world.sim.admin("/containers")["data"]}
    assert containers[expired]["status_code"] == "EXPIRED"

    # A container that failed processing is forgotten too; the new one succeeds.
    reel = world.media("reel.mp4", REEL, "video/mp4")
    short = world.sim.media.add("short.mp4", samples.mp4_bytes(720, 1280, 1_000), "video/mp4")
    failed = world.sim.container(
        tokens.access_token, profile.external_id, media_type="REELS", video_url=short
    )
    world.sim.advance(10)
    progress = Progress({"container": failed}, datetime.now(UTC))
    reel_request = PublishRequest(profile.external_id, "alice", "Reel again", [reel])
    posted = world.ig.publish(tokens.access_token, reel_request, progress)
    assert progress.checkpoints["container"] != failed
    assert posted.remote_id in {m["id"] for m in world.published()}


def test_an_unknown_container_is_looked_for_before_it_is_created_again(world: World) -> None:
    tokens, profile = world.connect_ig("alice")
    started = datetime.now(UTC)
    unknown = "17900000000999999"
    # Its post went out (Instagram forgot the container since): settled, not republished.
    posted = world.sim.post_image(tokens.access_token, profile.external_id, "Went out")
    progress = Progress({"container": unknown}, started)
    found = world.ig.publish(tokens.access_token, world.photo_post(profile, "Went out"), progress)
    assert found.remote_id == posted
    assert len(world.published()) == 1
    # Nothing went out: the containers are built again.
    progress = Progress({"container": unknown}, started)
    fresh = world.ig.publish(tokens.access_token, world.photo_post(profile, "Never did"), progress)
    assert progress.checkpoints["container"] != unknown
    assert [m["id"] for m in world.published()] == [posted, fresh.remote_id]


def test_a_lost_claim_stops_before_media_publish(world: World) -> None:
    tokens, profile = world.connect_ig("alice")
    request = world.photo_post(profile, "Only once")
    first = Progress(lose_claim_at_check=2)
    with pytest.raises(ClaimLost):
        world.ig.publish(tokens.access_token, request, first)
    assert world.published() == []
    assert "container" in first.checkpoints

    posted = world.ig.publish(tokens.access_token, request, first.next_attempt())
    assert [m["id"] for m in world.published()] == [posted.remote_id]
    assert len(world.sim.admin("/containers")["data"]) == 1  # the container was reused


def test_media_not_ready_is_waited_for(world: World) -> None:
    tokens, profile = world.connect_ig("alice")
    world.sim.fault("media_publish", error_rate=1, error_code=9007, error_subcode=2207027, times=2)
    posted = world.ig.publish(
        tokens.access_token, world.photo_post(profile, "Patience"), Progress()
    )
    assert [m["id"] for m in world.published()] == [posted.remote_id]
    assert world.sleeps == [1.0, 3.0, 3.0]


def test_quota_reached_says_when_a_slot_frees_up(world: World) -> None:
    tokens, profile = world.connect_ig("alice")
    world.sim.admin("/users/alice", {"quota_total": 1})
    world.ig.publish(tokens.access_token, world.photo_post(profile, "One a day"), Progress())
    (first,) = world.published()
    first_at = datetime.strptime(first["timestamp"], "%Y-%m-%dT%H:%M:%S%z")

    progress = Progress()
    with pytest.raises(QuotaReached) as reached:
        world.ig.publish(tokens.access_token, world.photo_post(profile, "Too many"), progress)
    assert reached.value.message.startswith(
        "Instagram allows 1 API posts per 24 hours; @alice has used 1"
    )
    assert reached.value.retry_at is not None
    expected = first_at + timedelta(days=1, minutes=1)
    assert abs((reached.value.retry_at - expected).total_seconds()) <= 1
    assert len(world.published()) == 1
    assert "container" in progress.checkpoints  # kept for when the quota allows


def test_content_problems_are_rejected_with_a_clear_message(world: World) -> None:
    tokens, profile = world.connect_ig("alice")
    png = PublishRequest(
        profile.external_id,
        "alice",
        "png",
        [world.media("a.png", samples.png_bytes(800, 800), "image/png")],
    )
    with pytest.raises(ContentRejected) as not_jpeg:
        world.ig.publish(tokens.access_token, png, Progress())
    assert not_jpeg.value.message.startswith(
        "Instagram refused to create a media container: Instagram accepts only JPEG photos."
    )
    assert not not_jpeg.value.retryable
    wide = world.photo_post(profile, "too wide", samples.jpeg_bytes(2000, 1000))
    with pytest.raises(ContentRejected, match=r"aspect ratio is outside .*\(4:5 to 1\.91:1\)"):
        world.ig.publish(tokens.access_token, wide, Progress())
    long = world.photo_post(profile, "x" * 2201)
    with pytest.raises(ContentRejected, match="2,200 characters"):
        world.ig.publish(tokens.access_token, long, Progress())
    short_reel = PublishRequest(
        profile.external_id,
        "alice",
        "2 s",
        [world.media("s.mp4", samples.mp4_bytes(720, 1280, 2_000), "video/mp4")],
    )
    with pytest.raises(
        ContentRejected, match=r"could not process the media.*cannot use this video"
    ):
        world.ig.publish(tokens.access_token, short_reel, Progress())
    with pytest.raises(ContentRejected):
        world.ig.publish(
            tokens.access_token, PublishRequest(profile.external_id, "a", "x"), Progress()
        )
    assert world.published() == []


def test_an_expired_or_revoked_token_is_authorization_expired(world: World) -> None:
    tokens, profile = world.connect_ig("alice")
    world.sim.admin("/users/alice/revoke", {})
    with pytest.raises(AuthorizationExpired) as revoked:
        world.ig.publish(tokens.access_token, world.photo_post(profile, "x"), Progress())
    assert not revoked.value.retryable
    assert_no_secret(revoked.value, tokens.access_token)

    fb_tokens = world.connect_fb("dana")
    account = world.fb.connectable_accounts(fb_tokens.access_token)[0]
    world.sim.advance(61 * DAY)
    request = PublishRequest(
        account.external_id, account.username, "x", [world.media("b.jpg", SQUARE)]
    )
    with pytest.raises(AuthorizationExpired, match="Session has expired"):
        world.fb.publish(fb_tokens.access_token, request, Progress())


def test_an_account_whose_page_was_unlinked_needs_a_reconnect(world: World) -> None:
    tokens = world.connect_fb("dana")
    account = world.fb.connectable_accounts(tokens.access_token)[0]
    world.sim.admin("/facebook-users/dana/pages", [], method="PUT")
    request = PublishRequest(
        account.external_id, account.username, "x", [world.media("c.jpg", SQUARE)]
    )
    with pytest.raises(AuthorizationExpired, match="Page is still linked"):
        world.fb.publish(tokens.access_token, request, Progress())
    assert world.published() == []


def test_rate_limits_carry_the_time_access_comes_back(start: Callable[..., World]) -> None:
    world = start(InstagramSimConfig(account_calls_per_hour=2))
    tokens, _profile = world.connect_ig("alice")  # fetch_profile is the first call
    world.ig.fetch_profile(tokens.access_token)
    with pytest.raises(RateLimited) as limited:
        world.ig.fetch_profile(tokens.access_token)
    assert limited.value.retryable
    assert limited.value.reset_at is not None
    assert datetime.now(UTC) < limited.value.reset_at <= datetime.now(UTC) + timedelta(hours=1)


def test_server_errors_and_timeouts_are_transient(start: Callable[..., World]) -> None:
    world = start(timeout=0.5)
    tokens, profile = world.connect_ig("alice")
    world.sim.fault("media", fail_rate=1, fail_status=502, times=1)
    with pytest.raises(TransientPlatformError) as failed:
        world.ig.publish(tokens.access_token, world.photo_post(profile, "x"), Progress())
    assert failed.value.status == 502
    world.sim.fault("me", latency_ms=1500, times=0)
    with pytest.raises(TransientPlatformError, match="timed out"):
        world.ig.fetch_profile(tokens.access_token)
    world.sim.admin("/faults/me", method="DELETE")
    world.sim.fault("me", error_rate=1, error_code=-1, error_subcode=2207001, times=1)
    with pytest.raises(TransientPlatformError):
        world.ig.fetch_profile(tokens.access_token)


def test_connection_failures_are_transient() -> None:
    base = f"http://127.0.0.1:{free_port()}"
    with InstagramAdapter(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        token_url=f"{base}/t",
        graph_url=base,
        timeout=2.0,
    ) as adapter:
        with pytest.raises(TransientPlatformError) as refused:
            adapter.fetch_profile("some-token")
        assert_no_secret(refused.value, "some-token")
        with pytest.raises(TransientPlatformError):
            adapter.refresh("some-refresh-token")


# -- metrics --------------------------------------------------------------------------------


def test_post_metrics_grow_and_skip_missing_media(world: World) -> None:
    tokens, profile = world.connect_ig("alice")
    world.sim.admin(
        "/users/alice/audience",
        {"best_hours": list(range(24)), "best_days": list(range(7)), "size": 5_000},
    )
    posted = world.ig.publish(
        tokens.access_token, world.photo_post(profile, "Count me"), Progress()
    )
    world.sim.advance(3600)
    early = world.ig.post_metrics(
        tokens.access_token,
        account_id=profile.external_id,
        remote_ids=[posted.remote_id, "17900000000999999"],
    )
    world.sim.advance(2 * DAY)
    (late,) = world.ig.post_metrics(
        tokens.access_token, account_id=profile.external_id, remote_ids=[posted.remote_id]
    )
    assert [m.remote_id for m in early] == [posted.remote_id]
    assert late.views is not None
    assert early[0].views is not None
    assert 0 < early[0].views < late.views
    assert late.reach is not None
    assert late.reach < late.views
    assert None not in (late.likes, late.comments, late.shares, late.saves)


def test_an_injected_http_client_is_left_open(world: World) -> None:
    with httpx.Client() as http:
        adapter = InstagramAdapter(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            authorize_url=f"{world.sim.base}/oauth/authorize",
            token_url=f"{world.sim.base}/oauth/access_token",
            graph_url=f"{world.sim.base}/graph",
            http=http,
        )
        code = world.code(adapter, "alice")
        tokens = adapter.exchange_code(code=code, code_verifier="x", redirect_uri=REDIRECT)
        adapter.close()
        assert not http.is_closed
        assert adapter.fetch_profile(tokens.access_token).username == "alice"


def test_errors_are_platform_errors() -> None:
    assert issubclass(QuotaReached, PlatformError)
    progress: PublishProgress = Progress()
    assert progress.get("container") is None
