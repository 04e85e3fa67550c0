"""The X adapter against the X simulator over real HTTP, consent form included."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from application.platforms import (
    AccountProfile,
    AuthorizationExpired,
    ContentRejected,
    OAuthExchangeFailed,
    PlatformAdapter,
    PlatformError,
    RateLimited,
    RemotePost,
    TokenSet,
    TransientPlatformError,
)
from interfaces.platforms.x import XAdapter, XDuplicateContent
from sandbox.app import create_sandbox_app
from sandbox.x import XSimConfig
from tests.support.servers import free_port, serve

CLIENT_ID, CLIENT_SECRET = "kairos-sandbox", "kairos-sandbox-secret"
REDIRECT = "http://127.0.0.1:9/oauth/x/callback"


class FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self.buttons: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.action = attr.get("action", "")
        elif tag == "input" and attr.get("type") in ("hidden", "text"):
            self.fields[attr["name"]] = attr.get("value", "")
        elif tag == "button":
            self.buttons.append((attr["name"], attr["value"]))


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class World:
    base: str
    http: httpx.Client
    adapter: XAdapter

    def admin(self, path: str, body: object | None = None) -> Any:
        url = f"{self.base}/x/_sandbox{path}"
        response = self.http.get(url) if body is None else self.http.post(url, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def authorize(self, username: str = "sandbox_user") -> tuple[str, str]:
        """Walk the consent page like a browser; the (code, verifier) the callback got."""
        verifier, challenge = pkce()
        state = secrets.token_urlsafe(16)
        url = self.adapter.authorization_url(
            state=state, code_challenge=challenge, redirect_uri=REDIRECT
        )
        page = self.http.get(url)
        assert page.status_code == 200, page.text
        form = FormParser()
        form.feed(page.text)
        assert ("action", "allow") in form.buttons
        data = {**form.fields, "username": username, "action": "allow"}
        redirect = self.http.post(urljoin(str(page.url), form.action), data=data)
        assert redirect.status_code == 302
        location = urlsplit(redirect.headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
        query = parse_qs(location.query)
        assert query["state"] == [state]
        return query["code"][0], verifier

    def connect(self, username: str = "sandbox_user") -> TokenSet:
        code, verifier = self.authorize(username)
        return self.adapter.exchange_code(code=code, code_verifier=verifier, redirect_uri=REDIRECT)


def make_adapter(base: str, **kwargs: Any) -> XAdapter:
    options: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "authorize_url": f"{base}/x/i/oauth2/authorize",
        "api_base_url": f"{base}/x",
        **kwargs,
    }
    return XAdapter(**options)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., World]]:
    with ExitStack() as stack:

        def _start(config: XSimConfig | None = None, **adapter_options: Any) -> World:
            base = stack.enter_context(serve(create_sandbox_app(tmp_path, x_config=config)))
            http = stack.enter_context(httpx.Client(timeout=10))
            adapter = stack.enter_context(make_adapter(base, **adapter_options))
            return World(base, http, adapter)

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


def test_the_adapter_is_a_platform_adapter(world: World) -> None:
    adapter: PlatformAdapter = world.adapter
    assert adapter.provider == "twitter"
    assert adapter.capabilities() == ("text", "images", "video", "threads")


def test_authorization_url_asks_for_the_scopes_with_s256(world: World) -> None:
    url = world.adapter.authorization_url(
        state="s t&ate", code_challenge="challenge-value", redirect_uri=REDIRECT
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{world.base}/x/i/oauth2/authorize"
    assert "+" not in parts.query  # spaces are %20, as X documents
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert query == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": "tweet.read tweet.write users.read offline.access media.write",
        "state": "s t&ate",
        "code_challenge": "challenge-value",
        "code_challenge_method": "S256",
    }


def test_full_oauth_flow_through_the_consent_form(start: Callable[..., World]) -> None:
    world = start(XSimConfig(access_token_ttl=1234))
    before = datetime.now(UTC)
    tokens = world.connect("alice")
    after = datetime.now(UTC)
    assert tokens.access_token
    assert tokens.refresh_token
    assert tokens.refresh_token != tokens.access_token
    assert tokens.scopes == (
        "tweet.read",
        "tweet.write",
        "users.read",
        "offline.access",
        "media.write",
    )
    assert tokens.expires_at is not None
    assert before + timedelta(seconds=1234) <= tokens.expires_at
    assert tokens.expires_at <= after + timedelta(seconds=1234)
    profile = world.adapter.fetch_profile(tokens.access_token)
    assert profile.username == "alice"


def test_refresh_rotates_and_a_spent_refresh_token_is_refused(world: World) -> None:
    first = world.connect()
    assert first.refresh_token is not None
    second = world.adapter.refresh(first.refresh_token)
    assert second.refresh_token not in (None, first.refresh_token)
    assert second.access_token != first.access_token
    assert second.expires_at is not None
    assert world.adapter.fetch_profile(second.access_token).username == "sandbox_user"

    with pytest.raises(OAuthExchangeFailed) as spent:
        world.adapter.refresh(first.refresh_token)
    assert spent.value.status == 400
    assert "Value passed for the token was invalid." in spent.value.message
    assert not spent.value.retryable
    assert_no_secret(spent.value, first.refresh_token, second.refresh_token)
    # Reuse revoked the family: the newest tokens are dead too.
    with pytest.raises(AuthorizationExpired):
        world.adapter.fetch_profile(second.access_token)


def test_bad_codes_and_verifiers_fail_the_exchange(world: World) -> None:
    code, verifier = world.authorize()
    with pytest.raises(OAuthExchangeFailed) as wrong_verifier:
        world.adapter.exchange_code(code=code, code_verifier=pkce()[0], redirect_uri=REDIRECT)
    assert wrong_verifier.value.status == 400
    assert "authorization code was invalid" in wrong_verifier.value.message
    assert_no_secret(wrong_verifier.value, code, verifier)

    code, verifier = world.authorize()
    world.adapter.exchange_code(code=code, code_verifier=verifier, redirect_uri=REDIRECT)
    with pytest.raises(OAuthExchangeFailed):  # a code is single-use
        world.adapter.exchange_code(code=code, code_verifier=verifier, redirect_uri=REDIRECT)
    with pytest.raises(OAuthExchangeFailed):
        world.adapter.exchange_code(code="made-up", code_verifier=verifier, redirect_uri=REDIRECT)


def test_wrong_client_secret_fails_the_exchange(world: World) -> None:
    code, verifier = world.authorize()
    adapter = make_adapter(world.base, client_secret="not-the-secret")
    with adapter, pytest.raises(OAuthExchangeFailed) as failed:
        adapter.exchange_code(code=code, code_verifier=verifier, redirect_uri=REDIRECT)
    assert failed.value.status == 401
    assert "unauthorized_client" in failed.value.message
    assert_no_secret(failed.value, "not-the-secret", code)


def test_revoke_ends_the_grant(world: World) -> None:
    tokens = world.connect()
    assert tokens.refresh_token is not None
    world.adapter.revoke(tokens.refresh_token)
    with pytest.raises(AuthorizationExpired):
        world.adapter.fetch_profile(tokens.access_token)
    with pytest.raises(OAuthExchangeFailed):
        world.adapter.refresh(tokens.refresh_token)


def test_token_endpoint_outage_is_transient(world: World) -> None:
    tokens = world.connect()
    assert tokens.refresh_token is not None
    world.admin("/faults", {"fail_rate": 1.0})
    with pytest.raises(TransientPlatformError) as outage:
        world.adapter.refresh(tokens.refresh_token)
    assert outage.value.status == 500
    assert outage.value.retryable
    world.admin("/faults", {"fail_rate": 0})
    # The failed attempt did not spend the refresh token.
    assert world.adapter.refresh(tokens.refresh_token).access_token


# -- profile and posts ------------------------------------------------------------------


def test_fetch_profile(world: World) -> None:
    tokens = world.connect("kairos_fan")
    profile = world.adapter.fetch_profile(tokens.access_token)
    user = world.admin("/users/kairos_fan")
    assert profile == AccountProfile(
        external_id=user["id"],
        username="kairos_fan",
        display_name=user["name"],
        avatar_url=profile.avatar_url,
    )
    assert len(profile.external_id) == 19
    assert profile.avatar_url is not None
    assert profile.avatar_url.startswith("https://")


def test_create_a_post_and_a_thread(world: World) -> None:
    token = world.connect().access_token
    first = world.adapter.create_post(token, text="Kairos thread 1/2")
    assert isinstance(first, RemotePost)
    assert first.url == f"https://x.com/i/web/status/{first.remote_id}"
    second = world.adapter.create_post(token, text="Kairos thread 2/2", in_reply_to=first.remote_id)
    recorded = {t["id"]: t for t in world.admin("/tweets")["data"]}
    assert recorded[first.remote_id]["text"] == "Kairos thread 1/2"
    assert recorded[first.remote_id]["in_reply_to"] is None
    assert recorded[second.remote_id]["in_reply_to"] == first.remote_id


def test_revoked_or_expired_tokens_raise_authorization_expired(world: World) -> None:
    tokens = world.connect("alice")
    world.admin("/users/alice/revoke", {})
    with pytest.raises(AuthorizationExpired) as revoked:
        world.adapter.create_post(tokens.access_token, text="hello")
    assert revoked.value.status == 401
    assert not revoked.value.retryable
    assert_no_secret(revoked.value, tokens.access_token)

    fresh = world.connect("alice")
    world.admin("/clock", {"advance_seconds": 7201})
    with pytest.raises(AuthorizationExpired):
        world.adapter.fetch_profile(fresh.access_token)
    assert world.admin("/tweets")["count"] == 0


def test_rate_limits_raise_rate_limited_with_the_reset_time(start: Callable[..., World]) -> None:
    world = start(XSimConfig(tweets_per_15min=2))
    token = world.connect().access_token
    world.adapter.create_post(token, text="one")
    world.adapter.create_post(token, text="two")
    with pytest.raises(RateLimited) as limited:
        world.adapter.create_post(token, text="three")
    assert limited.value.status == 429
    assert limited.value.retryable
    assert limited.value.reset_at is not None
    expected = datetime.now(UTC) + timedelta(minutes=15)
    assert abs((limited.value.reset_at - expected).total_seconds()) < 15


def test_duplicate_content_is_rejected(world: World) -> None:
    token = world.connect().access_token
    world.adapter.create_post(token, text="same again")
    with pytest.raises(XDuplicateContent) as duplicate:
        world.adapter.create_post(token, text="same again")
    assert isinstance(duplicate.value, ContentRejected)
    assert duplicate.value.status == 403
    assert not duplicate.value.retryable
    assert "duplicate content" in duplicate.value.message


def test_too_long_text_is_rejected(world: World) -> None:
    token = world.connect().access_token
    with pytest.raises(ContentRejected) as too_long:
        world.adapter.create_post(token, text="x" * 281)
    assert not isinstance(too_long.value, XDuplicateContent)
    assert too_long.value.status == 403
    assert "too long" in too_long.value.message


def test_replying_to_a_missing_post_is_rejected(world: World) -> None:
    token = world.connect().access_token
    with pytest.raises(ContentRejected) as rejected:
        world.adapter.create_post(token, text="reply", in_reply_to="1234567890123456789")
    assert rejected.value.status == 403


def test_server_errors_are_transient(world: World) -> None:
    token = world.connect().access_token
    world.admin("/faults", {"fail_rate": 1.0})
    with pytest.raises(TransientPlatformError) as failed:
        world.adapter.create_post(token, text="during an outage")
    assert failed.value.status == 500
    assert failed.value.retryable
    world.admin("/faults", {"fail_rate": 0.0})
    assert world.admin("/tweets")["count"] == 0


@pytest.mark.parametrize("mode", ["abort", "503"])
def test_a_lost_response_is_transient_and_reconcilable(
    start: Callable[..., World], mode: str
) -> None:
    world = start()
    tokens = world.connect()
    profile = world.adapter.fetch_profile(tokens.access_token)
    attempted_at = datetime.now(UTC) - timedelta(seconds=5)
    world.admin("/faults", {"drop_response_rate": 1.0, "drop_response_mode": mode})
    with pytest.raises(TransientPlatformError) as lost:
        world.adapter.create_post(tokens.access_token, text="did this go out?")
    assert lost.value.retryable
    assert_no_secret(lost.value, tokens.access_token)
    world.admin("/faults", {"drop_response_rate": 0.0})
    # The post landed: the timeline shows it, and a blind retry would be a duplicate.
    recent = world.adapter.recent_posts(
        tokens.access_token, user_id=profile.external_id, since=attempted_at
    )
    assert [post.text for post in recent] == ["did this go out?"]
    assert recent[0].created_at is not None
    assert recent[0].created_at >= attempted_at
    with pytest.raises(XDuplicateContent):
        world.adapter.create_post(tokens.access_token, text="did this go out?")


def test_recent_posts_give_each_post_back_as_it_was_written(world: World) -> None:
    tokens = world.connect()
    profile = world.adapter.fetch_profile(tokens.access_token)
    written = ["New article: https://ex.com/a", "New article: ex.com/b", "Fish & chips <3"]
    for text in written:
        world.adapter.create_post(tokens.access_token, text=text)

    recent = world.adapter.recent_posts(tokens.access_token, user_id=profile.external_id)

    # X shows t.co links; their entities give back the links (a bare one with http://).
    assert [(post.text, post.media_ids) for post in recent] == [
        ("Fish & chips <3", ()),  # X sends it as "Fish &amp; chips &lt;3"
        ("New article: http://ex.com/b", ()),
        ("New article: https://ex.com/a", ()),
    ]


def test_timeouts_are_transient(start: Callable[..., World]) -> None:
    world = start(timeout=0.2)
    token = world.connect().access_token
    world.admin("/faults", {"latency_ms": 600})
    with pytest.raises(TransientPlatformError) as slow:
        world.adapter.fetch_profile(token)
    assert "timed out" in slow.value.message
    assert slow.value.status is None
    world.admin("/faults", {"latency_ms": 0})


def test_connection_failures_are_transient() -> None:
    base = f"http://127.0.0.1:{free_port()}"
    with make_adapter(base, timeout=2.0) as adapter:
        with pytest.raises(TransientPlatformError) as refused:
            adapter.create_post("some-token", text="hello")
        assert "some-token" not in str(refused.value)
        with pytest.raises(TransientPlatformError):
            adapter.refresh("some-refresh-token")


def test_an_injected_http_client_is_used_and_left_open(world: World) -> None:
    with httpx.Client() as http:
        adapter = make_adapter(world.base, http=http)
        code, verifier = world.authorize()
        tokens = adapter.exchange_code(code=code, code_verifier=verifier, redirect_uri=REDIRECT)
        adapter.close()
        assert not http.is_closed
        assert adapter.fetch_profile(tokens.access_token).username == "sandbox_user"
