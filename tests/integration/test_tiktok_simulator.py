"""The TikTok simulator over real HTTP: Login Kit v2, the Content Posting API, the Display API
and the ``/_sandbox/`` knobs."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from interfaces.consent import approve
from sandbox import samples
from sandbox.app import create_sandbox_app
from sandbox.tiktok import TikTokSimConfig
from tests.support.servers import serve

CLIENT = {"client_key": "kairos-sandbox", "client_secret": "kairos-sandbox-secret"}
REDIRECT = "http://127.0.0.1:9/oauth/tiktok/callback"
ALL_SCOPES = "user.info.basic,user.info.profile,video.publish,video.upload,video.list"
VIDEO = samples.mp4_bytes(720, 1280, 5_000, size=20_000)
FAST: dict[str, Any] = {"processing_secs": 0.0, "moderation_secs": 0.0, "status_per_min": 100_000}


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Sim:
    base: str
    http: httpx.Client

    @property
    def api(self) -> str:
        return f"{self.base}/tiktok"

    def admin(self, path: str, body: object | None = None) -> Any:
        url = f"{self.api}/_sandbox{path}"
        response = self.http.get(url) if body is None else self.http.post(url, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def advance(self, seconds: float) -> None:
        self.admin("/clock", {"advance_seconds": seconds})

    def authorize_url(self, challenge: str, scope: str = ALL_SCOPES) -> str:
        query = {
            "client_key": "kairos-sandbox",
            "response_type": "code",
            "scope": scope,
            "redirect_uri": REDIRECT,
            "state": "the-state",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        return f"{self.api}/v2/auth/authorize/?{urlencode(query)}"

    def code(self, username: str = "creator") -> tuple[str, str]:
        verifier, challenge = pkce()
        location = approve(self.authorize_url(challenge), username=username, client=self.http)
        query = parse_qs(urlsplit(location).query)
        assert query["state"] == ["the-state"]
        return query["code"][0], verifier

    def token(self, **form: str) -> httpx.Response:
        return self.http.post(f"{self.api}/v2/oauth/token/", data={**CLIENT, **form})

    def connect(self, username: str = "creator") -> dict[str, Any]:
        code, verifier = self.code(username)
        response = self.token(
            grant_type="authorization_code",
            code=code,
            redirect_uri=REDIRECT,
            code_verifier=verifier,
        )
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        return tokens

    def call(self, path: str, token: str, body: object = None, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        if path.startswith("/v2/user/info/"):
            return self.http.get(self.api + path, headers=headers, params=params)
        return self.http.post(self.api + path, headers=headers, json=body, params=params)

    def init(self, token: str, source: dict[str, Any], **post_info: Any) -> httpx.Response:
        info = {"title": "a clip", "privacy_level": "PUBLIC_TO_EVERYONE", **post_info}
        body = {"post_info": info, "source_info": source}
        return self.call("/v2/post/publish/video/init/", token, body)

    def upload(self, token: str, data: bytes = VIDEO, title: str = "a clip") -> str:
        """Init a whole-file upload and PUT it; the publish id."""
        source = {
            "source": "FILE_UPLOAD",
            "video_size": len(data),
            "chunk_size": len(data),
            "total_chunk_count": 1,
        }
        started = self.init(token, source, title=title)
        assert started.status_code == 200, started.text
        put = self.put(started.json()["data"]["upload_url"], data, 0, len(data))
        assert put.status_code == 201, put.text
        publish_id: str = started.json()["data"]["publish_id"]
        return publish_id

    def put(self, url: str, data: bytes, first: int, total: int, **headers: str) -> httpx.Response:
        sent = {
            "Content-Type": "video/mp4",
            "Content-Range": f"bytes {first}-{first + len(data) - 1}/{total}",
            **headers,
        }
        return self.http.put(url, content=data, headers=sent)

    def status(self, token: str, publish_id: str) -> dict[str, Any]:
        response = self.call("/v2/post/publish/status/fetch/", token, {"publish_id": publish_id})
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def wait_status(self, token: str, publish_id: str, *, until: str) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        while True:
            data = self.status(token, publish_id)
            if data["status"] == until or time.monotonic() > deadline:
                return data
            time.sleep(0.02)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Sim]]:
    with ExitStack() as stack:

        def _start(**config: Any) -> Sim:
            app = create_sandbox_app(tmp_path, tiktok_config=TikTokSimConfig(**config))
            base = stack.enter_context(serve(app))
            return Sim(base, stack.enter_context(httpx.Client(timeout=10)))

        yield _start


@pytest.fixture
def sim(start: Callable[..., Sim]) -> Sim:
    return start(**FAST)


def envelope_error(response: httpx.Response) -> str:
    body = response.json()
    assert body["data"] == {}
    assert body["error"]["log_id"]
    code: str = body["error"]["code"]
    return code


# -- Login Kit v2 -----------------------------------------------------------------------


def test_code_exchange_checks_pkce_and_answers_lifetimes(start: Callable[..., Sim]) -> None:
    sim = start(access_token_ttl=600, refresh_token_ttl=86_400)
    code, verifier = sim.code()
    wrong = sim.token(
        grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier="nope"
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"

    code, verifier = sim.code()
    granted = sim.token(
        grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier
    )
    body = granted.json()
    assert body["expires_in"] == 600
    assert body["refresh_expires_in"] == 86_400
    assert body["scope"] == ALL_SCOPES
    assert body["token_type"] == "Bearer"
    assert body["open_id"]
    again = sim.token(
        grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier
    )
    assert again.json()["error"] == "invalid_grant"


def test_refresh_rotates_and_the_old_refresh_token_stops_working(sim: Sim) -> None:
    first = sim.connect()
    second = sim.token(grant_type="refresh_token", refresh_token=first["refresh_token"]).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["refresh_expires_in"] == 180 * 24 * 3600
    info = sim.call("/v2/user/info/", second["access_token"], fields="open_id,username")
    assert info.json()["data"]["user"]["username"] == "creator"

    spent = sim.token(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert spent.status_code == 400
    assert spent.json()["error"] == "invalid_grant"
    assert sim.token(grant_type="refresh_token", refresh_token=second["refresh_token"]).is_success


def test_oauth_errors_can_come_with_http_200(start: Callable[..., Sim]) -> None:
    sim = start(oauth_errors_http_200=True)
    refused = sim.token(grant_type="refresh_token", refresh_token="rft.unknown")
    assert refused.status_code == 200
    assert refused.json()["error"] == "invalid_grant"
    assert "error_description" in refused.json()


def test_denying_consent_redirects_with_access_denied(sim: Sim) -> None:
    page = sim.http.get(sim.authorize_url(pkce()[1]))
    assert page.status_code == 200
    form = {**parse_hidden(page.text), "username": "creator", "action": "deny"}
    decision = sim.http.post(f"{sim.api}/v2/auth/authorize/", data=form)
    query = parse_qs(urlsplit(decision.headers["location"]).query)
    assert query["error"] == ["access_denied"]
    assert query["state"] == ["the-state"]


def parse_hidden(page: str) -> dict[str, str]:
    from html.parser import HTMLParser

    found: dict[str, str] = {}

    class Hidden(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            values = dict(attrs)
            if tag == "input" and values.get("type") == "hidden":
                found[values["name"] or ""] = values.get("value") or ""

    Hidden().feed(page)
    return found


def test_revoke_ends_the_authorization(sim: Sim) -> None:
    tokens = sim.connect()
    revoked = sim.http.post(
        f"{sim.api}/v2/oauth/revoke/", data={**CLIENT, "token": tokens["access_token"]}
    )
    assert revoked.status_code == 200
    info = sim.call("/v2/user/info/", tokens["access_token"], fields="open_id")
    assert info.status_code == 401
    assert envelope_error(info) == "access_token_invalid"
    refreshed = sim.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refreshed.json()["error"] == "invalid_grant"


# -- envelope, scopes, creator info -----------------------------------------------------


def test_errors_come_in_the_envelope(sim: Sim) -> None:
    no_token = sim.call("/v2/user/info/", "act.nothing", fields="open_id")
    assert no_token.status_code == 401
    assert envelope_error(no_token) == "access_token_invalid"
    tokens = sim.connect()
    bad_field = sim.call("/v2/user/info/", tokens["access_token"], fields="open_id,shoe_size")
    assert bad_field.status_code == 400
    assert envelope_error(bad_field) == "invalid_params"
    fine = sim.call("/v2/user/info/", tokens["access_token"], fields="open_id,display_name")
    assert fine.json()["error"] == {
        "code": "ok",
        "message": "",
        "log_id": fine.json()["error"]["log_id"],
    }
    assert fine.json()["data"]["user"]["open_id"] == tokens["open_id"]


def test_a_scope_the_user_withheld_is_refused(sim: Sim) -> None:
    sim.admin("/users/shy_creator", {"withheld_scopes": ["user.info.profile", "video.publish"]})
    tokens = sim.connect("shy_creator")
    assert "video.publish" not in tokens["scope"].split(",")
    username = sim.call("/v2/user/info/", tokens["access_token"], fields="open_id,username")
    assert username.status_code == 401
    assert envelope_error(username) == "scope_not_authorized"
    creator = sim.call("/v2/post/publish/creator_info/query/", tokens["access_token"])
    assert envelope_error(creator) == "scope_not_authorized"


def test_creator_info_offers_privacy_levels_by_account_and_audit(start: Callable[..., Sim]) -> None:
    sim = start(**FAST)
    public = sim.connect("public_one")["access_token"]
    data = sim.call("/v2/post/publish/creator_info/query/", public).json()["data"]
    assert data["privacy_level_options"] == [
        "PUBLIC_TO_EVERYONE",
        "MUTUAL_FOLLOW_FRIENDS",
        "SELF_ONLY",
    ]
    assert data["creator_username"] == "public_one"
    assert data["max_video_post_duration_sec"] == 600

    sim.admin("/users/private_one", {"private_account": True, "max_video_post_duration_sec": 180})
    private = sim.connect("private_one")["access_token"]
    data = sim.call("/v2/post/publish/creator_info/query/", private).json()["data"]
    assert data["privacy_level_options"] == [
        "FOLLOWER_OF_CREATOR",
        "MUTUAL_FOLLOW_FRIENDS",
        "SELF_ONLY",
    ]
    assert data["max_video_post_duration_sec"] == 180
    refused = sim.init(private, {"source": "PULL_FROM_URL", "video_url": "https://x/y.mp4"})
    assert refused.status_code == 403
    assert envelope_error(refused) == "privacy_level_option_mismatch"

    sim.admin("/config", {"unaudited_client": True})
    data = sim.call("/v2/post/publish/creator_info/query/", public).json()["data"]
    assert data["privacy_level_options"] == ["SELF_ONLY"]
    unaudited = sim.init(public, {"source": "PULL_FROM_URL", "video_url": "https://x/y.mp4"})
    assert envelope_error(unaudited) == "unaudited_client_can_only_post_to_private_accounts"


def test_a_banned_creator_hears_it_with_http_200(sim: Sim) -> None:
    sim.admin("/users/naughty", {"banned_from_posting": True})
    token = sim.connect("naughty")["access_token"]
    answer = sim.call("/v2/post/publish/creator_info/query/", token)
    assert answer.status_code == 200
    assert envelope_error(answer) == "spam_risk_user_banned_from_posting"


# -- video init -------------------------------------------------------------------------

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("size", "chunk", "count", "valid"),
    [
        (50_000_123, 10_000_000, 5, True),  # TikTok's worked example
        (50_000_123, 10_000_000, 6, False),  # count is floor(size / chunk)
        (3 * MIB, 3 * MIB, 1, True),  # under 5 MB: whole
        (3 * MIB, MIB, 3, False),  # under 5 MB cannot be chunked
        (30 * MIB, 30 * MIB, 1, True),  # 5-64 MB may go whole
        (100 * MIB, 100 * MIB, 1, False),  # over 64 MB must be chunked
        (100 * MIB, 4 * MIB, 25, False),  # chunks are at least 5 MB
        (15 * MIB, 10 * MIB, 1, True),  # the only chunk absorbs the remainder
        (5 * 1024 * MIB, 64 * MIB, 80, False),  # over 4 GB
    ],
)
def test_init_checks_the_chunk_rules(
    sim: Sim, size: int, chunk: int, count: int, valid: bool
) -> None:
    token = sim.connect()["access_token"]
    source = {
        "source": "FILE_UPLOAD",
        "video_size": size,
        "chunk_size": chunk,
        "total_chunk_count": count,
    }
    answer = sim.init(token, source)
    if valid:
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["publish_id"].startswith("v_pub_file~")
        assert "upload_id=" in answer.json()["data"]["upload_url"]
    else:
        assert answer.status_code == 400
        assert envelope_error(answer) == "invalid_params"


def test_init_checks_the_title_in_utf16_units_and_the_pull_prefix(sim: Sim) -> None:
    token = sim.connect()["access_token"]
    source = {"source": "FILE_UPLOAD", "video_size": 100, "chunk_size": 100, "total_chunk_count": 1}
    assert sim.init(token, source, title="🎬" * 1100).status_code == 200  # 2200 units
    too_long = sim.init(token, source, title="🎬" * 1100 + "!")
    assert envelope_error(too_long) == "invalid_params"
    unverified = sim.init(
        token, {"source": "PULL_FROM_URL", "video_url": "https://elsewhere/v.mp4"}
    )
    assert unverified.status_code == 403
    assert envelope_error(unverified) == "url_ownership_unverified"


# -- upload URL -------------------------------------------------------------------------


def test_chunks_answer_206_then_201_and_416_out_of_order(start: Callable[..., Sim]) -> None:
    sim = start(**FAST, min_chunk_size=10_000)
    token = sim.connect()["access_token"]
    data = samples.mp4_bytes(720, 1280, 5_000, size=35_000)  # 10 000 x 2 + 15 000
    source = {
        "source": "FILE_UPLOAD",
        "video_size": 35_000,
        "chunk_size": 10_000,
        "total_chunk_count": 3,
    }
    started = sim.init(token, source).json()["data"]
    url, publish_id = started["upload_url"], started["publish_id"]

    skipped = sim.put(url, data[10_000:20_000], 10_000, 35_000)
    assert skipped.status_code == 416
    assert skipped.headers["content-range"] == "bytes */35000"
    first = sim.put(url, data[:10_000], 0, 35_000)
    assert first.status_code == 206
    assert first.headers["content-range"] == "bytes 0-9999/35000"
    assert sim.status(token, publish_id)["uploaded_bytes"] == 10_000
    again = sim.put(url, data[:10_000], 0, 35_000)
    assert again.status_code == 416
    assert again.headers["content-range"] == "bytes 0-9999/35000"
    short_body = sim.put(
        url, data[10_000:19_999], 10_000, 35_000, **{"Content-Range": "bytes 10000-19999/35000"}
    )
    assert short_body.status_code == 400  # Content-Length does not match the range
    assert sim.put(url, data[10_000:20_000], 10_000, 35_000).status_code == 206
    short_last = sim.put(url, data[20_000:30_000], 20_000, 35_000)
    assert short_last.status_code == 400  # the last chunk absorbs the remainder
    assert sim.put(url, data[20_000:], 20_000, 35_000).status_code == 201

    done = sim.wait_status(token, publish_id, until="PUBLISH_COMPLETE")
    assert done["uploaded_bytes"] == 35_000
    post_id = done["publicaly_available_post_id"][0]
    assert isinstance(post_id, int)
    assert post_id > 2**53


def test_an_upload_url_expires_after_an_hour(sim: Sim) -> None:
    token = sim.connect()["access_token"]
    source = {
        "source": "FILE_UPLOAD",
        "video_size": len(VIDEO),
        "chunk_size": len(VIDEO),
        "total_chunk_count": 1,
    }
    url = sim.init(token, source).json()["data"]["upload_url"]
    sim.advance(3601)
    assert sim.put(url, VIDEO, 0, len(VIDEO)).status_code == 403
    forged = url.replace("upload_token=", "upload_token=x")
    assert sim.put(forged, VIDEO, 0, len(VIDEO)).status_code == 404


# -- processing -------------------------------------------------------------------------


def test_processing_takes_its_time_then_moderation_shows_the_post_id(
    start: Callable[..., Sim],
) -> None:
    sim = start(processing_secs=3.0, moderation_secs=30.0)
    token = sim.connect()["access_token"]
    publish_id = sim.upload(token)
    assert sim.status(token, publish_id)["status"] == "PROCESSING_UPLOAD"
    sim.advance(3)
    done = sim.status(token, publish_id)
    assert done["status"] == "PUBLISH_COMPLETE"
    assert done["publicaly_available_post_id"] == []
    sim.advance(30)
    assert len(sim.status(token, publish_id)["publicaly_available_post_id"]) == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (samples.mp4_bytes(720, 1280, 2_000), "duration_check_failed"),
        (samples.mp4_bytes(720, 1280, 601_000), "duration_check_failed"),
        (samples.mp4_bytes(200, 200, 5_000), "picture_size_check_failed"),
        (samples.jpeg_bytes(720, 1280), "file_format_check_failed"),
        (b"\x00" * 5_000, "file_format_check_failed"),
    ],
)
def test_processing_fails_with_the_documented_reason(sim: Sim, data: bytes, reason: str) -> None:
    token = sim.connect()["access_token"]
    publish_id = sim.upload(token, data)
    failed = sim.wait_status(token, publish_id, until="FAILED")
    assert failed["status"] == "FAILED"
    assert failed["fail_reason"] == reason
    assert sim.admin("/videos")["count"] == 0


def test_a_creator_limit_shorter_than_the_video_fails_it(sim: Sim) -> None:
    sim.admin("/users/creator", {"max_video_post_duration_sec": 4})
    token = sim.connect()["access_token"]
    failed = sim.wait_status(token, sim.upload(token), until="FAILED")
    assert failed["fail_reason"] == "duration_check_failed"


def test_a_forced_fail_reason_fails_the_next_publish(sim: Sim) -> None:
    token = sim.connect()["access_token"]
    sim.admin("/fail_reasons", {"fail_reason": "internal"})
    first = sim.wait_status(token, sim.upload(token), until="FAILED")
    assert first["fail_reason"] == "internal"
    assert sim.wait_status(token, sim.upload(token), until="PUBLISH_COMPLETE")["status"] == (
        "PUBLISH_COMPLETE"
    )


# -- PULL_FROM_URL and photos -----------------------------------------------------------


@pytest.fixture
def media_server() -> Iterator[str]:
    files = {
        "/media/clip.mp4": (VIDEO, "video/mp4"),
        "/media/a.jpg": (samples.jpeg_bytes(1080, 1350), "image/jpeg"),
        "/media/b.webp": (samples.webp_bytes(1080, 1080), "image/webp"),
    }

    async def file(request: Request) -> Response:
        content, kind = files[request.url.path]
        return Response(content, media_type=kind)

    async def moved(_request: Request) -> Response:
        return RedirectResponse("/media/clip.mp4")

    routes = [Route(path, file) for path in files] + [Route("/media/moved.mp4", moved)]
    with serve(Starlette(routes=routes)) as base:
        yield base


def test_pull_from_url_downloads_from_a_verified_prefix(
    start: Callable[..., Sim], media_server: str
) -> None:
    sim = start(**FAST, verified_url_prefixes=(f"{media_server}/media/",))
    token = sim.connect()["access_token"]
    started = sim.init(
        token, {"source": "PULL_FROM_URL", "video_url": f"{media_server}/media/clip.mp4"}
    )
    data = started.json()["data"]
    assert data["publish_id"].startswith("v_pub_url~")
    assert "upload_url" not in data
    done = sim.wait_status(token, data["publish_id"], until="PUBLISH_COMPLETE")
    assert done["status"] == "PUBLISH_COMPLETE"
    assert done["downloaded_bytes"] == len(VIDEO)

    moved = sim.init(
        token, {"source": "PULL_FROM_URL", "video_url": f"{media_server}/media/moved.mp4"}
    )
    failed = sim.wait_status(token, moved.json()["data"]["publish_id"], until="FAILED")
    assert failed["fail_reason"] == "video_pull_failed"  # redirects are not followed


def test_photo_posts_are_pulled(start: Callable[..., Sim], media_server: str) -> None:
    sim = start(**FAST, verified_url_prefixes=(f"{media_server}/media/",))
    token = sim.connect()["access_token"]
    body = {
        "post_info": {"title": "two", "description": "two photos", "privacy_level": "SELF_ONLY"},
        "source_info": {
            "source": "PULL_FROM_URL",
            "photo_cover_index": 0,
            "photo_images": [f"{media_server}/media/a.jpg", f"{media_server}/media/b.webp"],
        },
        "post_mode": "DIRECT_POST",
        "media_type": "PHOTO",
    }
    started = sim.call("/v2/post/publish/content/init/", token, body)
    publish_id = started.json()["data"]["publish_id"]
    assert publish_id.startswith("p_pub_url~")
    done = sim.wait_status(token, publish_id, until="PUBLISH_COMPLETE")
    assert done["publicaly_available_post_id"] == []  # SELF_ONLY never becomes public
    video = sim.admin("/videos")["data"][0]
    assert (video["media_type"], video["description"]) == ("PHOTO", "two photos")


# -- limits -----------------------------------------------------------------------------


def test_rate_limits_count_per_token_in_a_sliding_minute(sim: Sim) -> None:
    first = sim.connect()["access_token"]
    second = sim.connect()["access_token"]
    for _ in range(20):
        assert sim.call("/v2/post/publish/creator_info/query/", first).status_code == 200
    limited = sim.call("/v2/post/publish/creator_info/query/", first)
    assert limited.status_code == 429
    assert envelope_error(limited) == "rate_limit_exceeded"
    assert sim.call("/v2/post/publish/creator_info/query/", second).status_code == 200
    sim.advance(61)
    assert sim.call("/v2/post/publish/creator_info/query/", first).status_code == 200


def test_init_allows_six_a_minute(sim: Sim) -> None:
    token = sim.connect()["access_token"]
    source = {"source": "FILE_UPLOAD", "video_size": 100, "chunk_size": 100, "total_chunk_count": 1}
    answers = [sim.init(token, source).status_code for _ in range(7)]
    assert answers == [200] * 6 + [429]


def test_the_daily_post_cap(start: Callable[..., Sim]) -> None:
    sim = start(**FAST, daily_post_cap=2)
    token = sim.connect()["access_token"]
    sim.upload(token)
    sim.upload(token)
    source = {"source": "FILE_UPLOAD", "video_size": 100, "chunk_size": 100, "total_chunk_count": 1}
    capped = sim.init(token, source)
    assert capped.status_code == 403
    assert envelope_error(capped) == "spam_risk_too_many_posts"
    creator = sim.call("/v2/post/publish/creator_info/query/", token)
    assert creator.status_code == 200
    assert envelope_error(creator) == "spam_risk_too_many_posts"
    sim.advance(24 * 3600)
    token = sim.connect()["access_token"]  # the last one expired meanwhile
    assert sim.init(token, source).status_code == 200


# -- faults -----------------------------------------------------------------------------


def test_init_can_commit_then_lose_its_answer(sim: Sim) -> None:
    token = sim.connect()["access_token"]
    sim.admin("/faults/video_init", {"drop_next": 1})
    source = {"source": "FILE_UPLOAD", "video_size": 100, "chunk_size": 100, "total_chunk_count": 1}
    with pytest.raises(httpx.TransportError):
        sim.init(token, source)
    assert sim.admin("/publishes")["count"] == 1
    assert sim.init(token, source).status_code == 200


def test_the_final_chunk_can_land_and_lose_its_answer(sim: Sim) -> None:
    token = sim.connect()["access_token"]
    sim.admin("/faults/upload_final", {"drop_next": 1, "drop_response_mode": "503"})
    source = {
        "source": "FILE_UPLOAD",
        "video_size": len(VIDEO),
        "chunk_size": len(VIDEO),
        "total_chunk_count": 1,
    }
    started = sim.init(token, source).json()["data"]
    assert sim.put(started["upload_url"], VIDEO, 0, len(VIDEO)).status_code == 503
    done = sim.wait_status(token, started["publish_id"], until="PUBLISH_COMPLETE")
    assert done["status"] == "PUBLISH_COMPLETE"


def test_forced_errors_and_failures(sim: Sim) -> None:
    token = sim.connect()["access_token"]
    sim.admin("/faults/creator_info", {"error_code": "reached_active_user_cap", "error_next": 1})
    capped = sim.call("/v2/post/publish/creator_info/query/", token)
    assert (capped.status_code, envelope_error(capped)) == (403, "reached_active_user_cap")
    assert sim.call("/v2/post/publish/creator_info/query/", token).status_code == 200
    sim.admin("/faults/user_info", {"fail_next": 1, "fail_status": 503})
    failed = sim.call("/v2/user/info/", token, fields="open_id")
    assert (failed.status_code, envelope_error(failed)) == (503, "internal_error")
    sim.admin("/faults/status_fetch", {"drop_next": 1})
    publish_id = sim.upload(token)
    with pytest.raises(httpx.TransportError):
        sim.call("/v2/post/publish/status/fetch/", token, {"publish_id": publish_id})
    assert sim.status(token, publish_id)["status"] in ("PROCESSING_UPLOAD", "PUBLISH_COMPLETE")


def test_per_user_token_lifetimes_and_revocation(sim: Sim) -> None:
    sim.admin("/users/brief", {"access_token_ttl": 5})
    tokens = sim.connect("brief")
    assert tokens["expires_in"] == 5
    sim.advance(6)
    expired = sim.call("/v2/user/info/", tokens["access_token"], fields="open_id")
    assert envelope_error(expired) == "access_token_invalid"
    sim.admin("/users/brief/revoke", {"tokens": "refresh"})
    refreshed = sim.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refreshed.json()["error"] == "invalid_grant"


# -- Display API ------------------------------------------------------------------------


def test_video_list_pages_newest_first_and_query_leaves_out_unknown_ids(sim: Sim) -> None:
    token = sim.connect()["access_token"]
    for index in range(3):
        sim.wait_status(token, sim.upload(token, title=f"clip {index}"), until="PUBLISH_COMPLETE")
        sim.advance(1)
    fields = "id,title,create_time,share_url"
    page = sim.call("/v2/video/list/", token, {"max_count": 2}, fields=fields).json()["data"]
    assert [video["title"] for video in page["videos"]] == ["clip 2", "clip 1"]
    assert page["has_more"] is True
    rest = sim.call(
        "/v2/video/list/", token, {"max_count": 2, "cursor": page["cursor"]}, fields=fields
    )
    assert [video["title"] for video in rest.json()["data"]["videos"]] == ["clip 0"]
    assert rest.json()["data"]["has_more"] is False

    ids = [video["id"] for video in page["videos"]]
    assert all(isinstance(value, str) and int(value) > 2**53 for value in ids)
    query = {"filters": {"video_ids": [*ids, "7000000000000000001"]}}
    found = sim.call("/v2/video/query/", token, query, fields="id,view_count").json()["data"]
    assert sorted(video["id"] for video in found["videos"]) == sorted(ids)
    too_many = sim.call(
        "/v2/video/query/", token, {"filters": {"video_ids": ["1"] * 21}}, fields="id"
    )
    assert envelope_error(too_many) == "invalid_params"


def test_metrics_grow_with_age_and_follow_the_audience(sim: Sim) -> None:
    hour = time.gmtime(sim.admin("/clock")["now"]).tm_hour
    every_day = list(range(7))
    sim.admin(
        "/users/in_tune/audience", {"best_hours": [hour], "best_days": every_day, "size": 10_000}
    )
    off_hour = (hour + 12) % 24
    sim.admin(
        "/users/off_beat/audience",
        {"best_hours": [off_hour], "best_days": every_day, "size": 10_000},
    )

    def views(token: str, video_id: str) -> int:
        query = {"filters": {"video_ids": [video_id]}}
        found = sim.call("/v2/video/query/", token, query, fields="id,view_count,like_count")
        count: int = found.json()["data"]["videos"][0]["view_count"]
        return count

    ids = {}
    tokens = {}
    for name in ("in_tune", "off_beat"):
        tokens[name] = sim.connect(name)["access_token"]
        publish_id = sim.upload(tokens[name])
        done = sim.wait_status(tokens[name], publish_id, until="PUBLISH_COMPLETE")
        ids[name] = str(done["publicaly_available_post_id"][0])
    sim.advance(3600)
    early = {name: views(tokens[name], ids[name]) for name in ids}
    sim.advance(47 * 3600)
    tokens = {name: sim.connect(name)["access_token"] for name in ids}
    late = {name: views(tokens[name], ids[name]) for name in ids}
    assert late["in_tune"] > early["in_tune"] > 0
    assert late["off_beat"] >= early["off_beat"]
    assert late["in_tune"] > 3 * late["off_beat"]


# -- the sandbox app --------------------------------------------------------------------


def test_the_sandbox_app_mounts_tiktok(tmp_path: Path) -> None:
    with serve(create_sandbox_app(tmp_path)) as base, httpx.Client() as http:
        index = {item["path"]: item for item in http.get(base).json()["simulators"]}
        assert index["/tiktok"]["authorize_url"] == "/tiktok/v2/auth/authorize/"
        assert index["/tiktok"]["api_base_url"] == "/tiktok"
        config = http.get(f"{base}/tiktok/_sandbox/config").json()
        assert config["access_token_ttl"] == 7200
        assert "client_secret" not in config


def test_tokens_and_videos_survive_a_restart(tmp_path: Path) -> None:
    app = create_sandbox_app(tmp_path, tiktok_config=TikTokSimConfig(**FAST))
    with serve(app) as base, httpx.Client(timeout=10) as http:
        sim = Sim(base, http)
        tokens = sim.connect()
        token = tokens["access_token"]
        sim.wait_status(token, sim.upload(token), until="PUBLISH_COMPLETE")
    with serve(create_sandbox_app(tmp_path)) as base, httpx.Client(timeout=10) as http:
        sim = Sim(base, http)
        assert sim.admin("/videos")["count"] == 1
        refreshed = sim.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"])
        assert refreshed.status_code == 200
    assert (tmp_path / "tiktok.sqlite3").exists()
