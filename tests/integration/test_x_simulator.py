"""The X simulator over real HTTP: consent form, PKCE, token rotation, tweets, limits, faults."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from sandbox.app import create_sandbox_app
from sandbox.x import XSimConfig
from sandbox.x.text import weighted_length
from tests.support.servers import serve

CLIENT = ("kairos-sandbox", "kairos-sandbox-secret")
REDIRECT = "http://127.0.0.1:9/callback"
ALL_SCOPES = "tweet.read tweet.write users.read offline.access"
UNAUTHORIZED = {
    "title": "Unauthorized",
    "type": "about:blank",
    "status": 401,
    "detail": "Unauthorized",
}
BAD_CODE = {
    "error": "invalid_request",
    "error_description": "Value passed for the authorization code was invalid.",
}
BAD_TOKEN = {
    "error": "invalid_request",
    "error_description": "Value passed for the token was invalid.",
}
TOO_LONG = (
    "Your Tweet text is too long. For more information on how Twitter determines text length"
    " see https://github.com/twitter/twitter-text."
)


class ConsentForm(HTMLParser):
    """The consent page's <form>: its action, its inputs and its buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method: str | None = None
        self.fields: dict[str, str] = {}
        self.buttons: list[tuple[str, str]] = []
        self.headings: list[str] = []
        self._in_h1 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.action, self.method = attr.get("action", ""), attr.get("method", "")
        elif tag == "input" and attr.get("type") in ("hidden", "text"):
            self.fields[attr["name"]] = attr.get("value", "")
        elif tag == "button":
            self.buttons.append((attr["name"], attr["value"]))
        elif tag == "h1":
            self._in_h1 = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "h1":
            self._in_h1 = False

    def handle_data(self, data: str) -> None:
        if self._in_h1:
            self.headings.append(data)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Sim:
    base: str
    http: httpx.Client

    @property
    def x(self) -> str:
        return self.base + "/x"

    def authorize_params(self, challenge: str, **overrides: str) -> dict[str, str]:
        params = {
            "response_type": "code",
            "client_id": CLIENT[0],
            "redirect_uri": REDIRECT,
            "scope": ALL_SCOPES,
            "state": "state-123",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        params.update(overrides)
        return params

    def consent(
        self, params: dict[str, str], *, username: str = "sandbox_user", action: str = "allow"
    ) -> httpx.Response:
        """Open the consent page, fill in the form, press a button; the 302 response."""
        page = self.http.get(self.x + "/i/oauth2/authorize", params=params)
        assert page.status_code == 200, page.text
        form = ConsentForm()
        form.feed(page.text)
        assert form.method == "post"
        assert ("action", action) in form.buttons
        data = {**form.fields, "username": username, "action": action}
        return self.http.post(urljoin(str(page.url), form.action or ""), data=data)

    def code(self, challenge: str, *, username: str = "sandbox_user", **overrides: str) -> str:
        response = self.consent(self.authorize_params(challenge, **overrides), username=username)
        assert response.status_code == 302
        query = parse_qs(urlsplit(response.headers["location"]).query)
        assert query["state"] == ["state-123"]
        return query["code"][0]

    def exchange(self, code: str, verifier: str, redirect_uri: str = REDIRECT) -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        return self.http.post(self.x + "/2/oauth2/token", data=form, auth=CLIENT)

    def tokens(self, username: str = "sandbox_user", scope: str = ALL_SCOPES) -> dict[str, Any]:
        verifier, challenge = pkce()
        response = self.exchange(self.code(challenge, username=username, scope=scope), verifier)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def refresh(self, refresh_token: str) -> httpx.Response:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self.http.post(self.x + "/2/oauth2/token", data=form, auth=CLIENT)

    def me(self, access_token: str) -> httpx.Response:
        return self.http.get(self.x + "/2/users/me", headers=bearer(access_token))

    def tweet(self, access_token: str, body: object) -> httpx.Response:
        return self.http.post(self.x + "/2/tweets", json=body, headers=bearer(access_token))

    def admin(self, path: str, body: object | None = None) -> httpx.Response:
        if body is None:
            return self.http.get(self.x + "/_sandbox" + path)
        return self.http.post(self.x + "/_sandbox" + path, json=body)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Sim]]:
    with ExitStack() as stack:

        def _start(config: XSimConfig | None = None) -> Sim:
            base = stack.enter_context(serve(create_sandbox_app(tmp_path, x_config=config)))
            http = stack.enter_context(httpx.Client(timeout=10))
            return Sim(base, http)

        yield _start


@pytest.fixture
def sim(start: Callable[..., Sim]) -> Sim:
    return start()


# -- the consent page -------------------------------------------------------------------


def test_root_lists_the_mounted_simulators(sim: Sim) -> None:
    body = sim.http.get(sim.base + "/").json()
    assert [s["path"] for s in body["simulators"]] == ["/x", "/instagram", "/tiktok"]


def test_consent_page_is_a_form_posting_back_with_the_parameters(sim: Sim) -> None:
    _, challenge = pkce()
    params = sim.authorize_params(challenge)
    page = sim.http.get(sim.x + "/i/oauth2/authorize", params=params)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    form = ConsentForm()
    form.feed(page.text)
    assert "".join(form.headings) == "Authorize Kairos (sandbox) to access your X account?"
    assert form.action == "/x/i/oauth2/authorize"
    assert form.fields == {**params, "username": "sandbox_user"}
    assert form.buttons == [("action", "allow"), ("action", "deny")]


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"response_type": "token"}, "response_type"),
        ({"client_id": "someone-else"}, "client_id"),
        ({"redirect_uri": "ftp://example.com/cb"}, "redirect_uri"),
        ({"scope": "tweet.read tweet.launch"}, "tweet.launch"),
        ({"state": "s" * 501}, "state"),
        ({"code_challenge": ""}, "code_challenge"),
        ({"code_challenge_method": "S512"}, "code_challenge_method"),
    ],
)
def test_invalid_authorize_parameters_show_an_error_page(
    sim: Sim, override: dict[str, str], reason: str
) -> None:
    _, challenge = pkce()
    params = sim.authorize_params(challenge, **override)
    page = sim.http.get(sim.x + "/i/oauth2/authorize", params=params)
    assert page.status_code == 400
    assert page.headers["content-type"].startswith("text/html")
    assert reason in page.text
    assert "<form" not in page.text
    tampered = sim.http.post(sim.x + "/i/oauth2/authorize", data={**params, "action": "allow"})
    assert tampered.status_code == 400
    assert "location" not in tampered.headers


def test_registered_redirect_uris_are_enforced(start: Callable[..., Sim]) -> None:
    sim = start(XSimConfig(redirect_uris=(REDIRECT,)))
    _, challenge = pkce()
    ok = sim.http.get(sim.x + "/i/oauth2/authorize", params=sim.authorize_params(challenge))
    assert ok.status_code == 200
    other = sim.authorize_params(challenge, redirect_uri="http://127.0.0.1:9/elsewhere")
    assert sim.http.get(sim.x + "/i/oauth2/authorize", params=other).status_code == 400


def test_deny_redirects_with_access_denied(sim: Sim) -> None:
    _, challenge = pkce()
    response = sim.consent(sim.authorize_params(challenge), action="deny")
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    assert parse_qs(location.query) == {"error": ["access_denied"], "state": ["state-123"]}


def test_allow_redirects_with_state_and_code(sim: Sim) -> None:
    _, challenge = pkce()
    params = sim.authorize_params(challenge, redirect_uri=REDIRECT + "?keep=1")
    response = sim.consent(params, username="alice")
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["keep"] == ["1"]
    assert query["state"] == ["state-123"]
    assert len(query["code"][0]) >= 32


def test_invalid_username_redisplays_the_form(sim: Sim) -> None:
    _, challenge = pkce()
    response = sim.consent(sim.authorize_params(challenge), username="not a user!")
    assert response.status_code == 400
    assert "<form" in response.text
    assert "location" not in response.headers


def test_users_get_stable_19_digit_ids(sim: Sim) -> None:
    first = sim.me(sim.tokens("alice")["access_token"]).json()["data"]
    again = sim.me(sim.tokens("alice")["access_token"]).json()["data"]
    other = sim.me(sim.tokens("bob")["access_token"]).json()["data"]
    assert first == again
    assert first["username"] == "alice"
    assert first["id"].isdigit()
    assert len(first["id"]) == 19
    assert other["id"] != first["id"]
    assert set(first) == {"id", "name", "username"}


# -- the token endpoint -----------------------------------------------------------------


def test_code_exchange_with_the_right_verifier(sim: Sim) -> None:
    verifier, challenge = pkce()
    response = sim.exchange(sim.code(challenge), verifier)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token_type", "expires_in", "access_token", "scope", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 7200
    assert body["scope"] == ALL_SCOPES
    assert body["access_token"] != body["refresh_token"]
    assert response.headers["cache-control"] == "no-store"
    assert sim.me(body["access_token"]).status_code == 200


def test_code_exchange_with_a_wrong_verifier_fails_and_burns_the_code(sim: Sim) -> None:
    verifier, challenge = pkce()
    code = sim.code(challenge)
    wrong = sim.exchange(code, pkce()[0])
    assert wrong.status_code == 400
    assert wrong.json() == BAD_CODE
    assert sim.exchange(code, verifier).json() == BAD_CODE


def test_plain_pkce_is_supported(sim: Sim) -> None:
    verifier = secrets.token_urlsafe(48)
    code = sim.code(verifier, code_challenge_method="plain")
    assert sim.exchange(code, "not-" + verifier).status_code == 400
    code = sim.code(verifier, code_challenge_method="plain")
    assert sim.exchange(code, verifier).status_code == 200


def test_a_code_is_single_use_and_its_reuse_revokes_the_tokens(sim: Sim) -> None:
    verifier, challenge = pkce()
    code = sim.code(challenge)
    first = sim.exchange(code, verifier)
    assert first.status_code == 200
    second = sim.exchange(code, verifier)
    assert second.status_code == 400
    assert second.json() == BAD_CODE
    assert sim.me(first.json()["access_token"]).status_code == 401
    assert sim.refresh(first.json()["refresh_token"]).status_code == 400


def test_an_expired_code_is_refused(start: Callable[..., Sim]) -> None:
    sim = start(XSimConfig(code_ttl=2))
    verifier, challenge = pkce()
    code = sim.code(challenge)
    assert sim.admin("/clock", {"advance_seconds": 3}).status_code == 200
    response = sim.exchange(code, verifier)
    assert response.status_code == 400
    assert response.json() == BAD_CODE


def test_the_redirect_uri_must_match_exactly(sim: Sim) -> None:
    verifier, challenge = pkce()
    response = sim.exchange(sim.code(challenge), verifier, redirect_uri=REDIRECT + "/")
    assert response.status_code == 400
    assert response.json() == BAD_CODE


def test_the_token_endpoint_requires_client_authentication(sim: Sim) -> None:
    verifier, challenge = pkce()
    code = sim.code(challenge)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_id": CLIENT[0],
    }
    expected = {
        "error": "unauthorized_client",
        "error_description": "Missing valid authorization header",
    }
    anonymous = sim.http.post(sim.x + "/2/oauth2/token", data=form)
    assert anonymous.status_code == 401
    assert anonymous.json() == expected
    wrong = sim.http.post(sim.x + "/2/oauth2/token", data=form, auth=(CLIENT[0], "nope"))
    assert wrong.status_code == 401
    assert wrong.json() == expected
    # The code was not burned by unauthenticated attempts.
    assert sim.exchange(code, verifier).status_code == 200


def test_a_public_client_sends_its_client_id_in_the_body(start: Callable[..., Sim]) -> None:
    sim = start(XSimConfig(client_type="public"))
    verifier, challenge = pkce()
    form = {
        "grant_type": "authorization_code",
        "code": sim.code(challenge),
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_id": CLIENT[0],
    }
    response = sim.http.post(sim.x + "/2/oauth2/token", data=form)
    assert response.status_code == 200
    assert "access_token" in response.json()


def test_no_refresh_token_without_offline_access(sim: Sim) -> None:
    body = sim.tokens(scope="tweet.read tweet.write users.read")
    assert "refresh_token" not in body
    assert body["scope"] == "tweet.read tweet.write users.read"


def test_refresh_tokens_rotate_and_reuse_revokes_the_family(sim: Sim) -> None:
    first = sim.tokens()
    rotated = sim.refresh(first["refresh_token"])
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] not in (first["refresh_token"], None)
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == ALL_SCOPES
    assert sim.me(second["access_token"]).status_code == 200
    third = sim.refresh(second["refresh_token"]).json()

    reused = sim.refresh(first["refresh_token"])
    assert reused.status_code == 400
    assert reused.json() == BAD_TOKEN
    # The whole family is gone, including the newest pair.
    assert sim.me(third["access_token"]).status_code == 401
    assert sim.refresh(third["refresh_token"]).json() == BAD_TOKEN


def test_unknown_refresh_token_and_grant_type(sim: Sim) -> None:
    assert sim.refresh("made-up").json() == BAD_TOKEN
    response = sim.http.post(
        sim.x + "/2/oauth2/token", data={"grant_type": "password"}, auth=CLIENT
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_revoke_an_access_token(sim: Sim) -> None:
    tokens = sim.tokens()
    response = sim.http.post(
        sim.x + "/2/oauth2/revoke", data={"token": tokens["access_token"]}, auth=CLIENT
    )
    assert response.status_code == 200
    assert response.json() == {"revoked": True}
    me = sim.me(tokens["access_token"])
    assert me.status_code == 401
    assert me.json() == UNAUTHORIZED
    # Revoking the access token leaves the grant alive.
    assert sim.refresh(tokens["refresh_token"]).status_code == 200


def test_revoke_a_refresh_token_ends_the_grant(sim: Sim) -> None:
    tokens = sim.tokens()
    sim.http.post(sim.x + "/2/oauth2/revoke", data={"token": tokens["refresh_token"]}, auth=CLIENT)
    assert sim.me(tokens["access_token"]).status_code == 401
    assert sim.refresh(tokens["refresh_token"]).json() == BAD_TOKEN


def test_admin_revokes_every_token_of_a_user(sim: Sim) -> None:
    alice_one, alice_two, bob = sim.tokens("alice"), sim.tokens("alice"), sim.tokens("bob")
    response = sim.admin("/users/alice/revoke", {})
    assert response.json() == {"revoked_grants": 2}
    assert sim.me(alice_one["access_token"]).status_code == 401
    assert sim.me(alice_two["access_token"]).status_code == 401
    assert sim.refresh(alice_two["refresh_token"]).status_code == 400
    assert sim.me(bob["access_token"]).status_code == 200


def test_access_tokens_expire_after_the_configured_ttl(start: Callable[..., Sim]) -> None:
    sim = start(XSimConfig(access_token_ttl=60))
    tokens = sim.tokens()
    assert tokens["expires_in"] == 60
    assert sim.me(tokens["access_token"]).status_code == 200
    sim.admin("/clock", {"advance_seconds": 61})
    assert sim.me(tokens["access_token"]).json() == UNAUTHORIZED
    refreshed = sim.refresh(tokens["refresh_token"]).json()
    assert sim.me(refreshed["access_token"]).status_code == 200
    # The TTL can be changed at runtime.
    sim.admin("/config", {"access_token_ttl": 5})
    assert sim.refresh(refreshed["refresh_token"]).json()["expires_in"] == 5


def test_tokens_survive_a_restart(tmp_path: Path) -> None:
    with serve(create_sandbox_app(tmp_path)) as base, httpx.Client() as http:
        tokens = Sim(base, http).tokens("alice")
    with serve(create_sandbox_app(tmp_path)) as base, httpx.Client() as http:
        sim = Sim(base, http)
        me = sim.me(tokens["access_token"])
        assert me.status_code == 200
        assert me.json()["data"]["username"] == "alice"
        assert sim.refresh(tokens["refresh_token"]).status_code == 200
    assert (tmp_path / "x.sqlite3").exists()


def test_requests_without_a_valid_bearer_token_are_401(sim: Sim) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = sim.http.get(sim.x + "/2/users/me", headers=headers)
        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert sim.http.post(sim.x + "/2/tweets", json={"text": "x"}, headers=headers).json() == (
            UNAUTHORIZED
        )


def test_missing_scopes_are_forbidden(sim: Sim) -> None:
    token = sim.tokens(scope="tweet.read users.read")["access_token"]
    assert sim.me(token).status_code == 200
    response = sim.tweet(token, {"text": "hello"})
    assert response.status_code == 403
    assert response.json()["title"] == "Forbidden"
    assert response.headers["x-rate-limit-limit"] == "100"


# -- tweets -----------------------------------------------------------------------------


def test_create_a_tweet_and_a_thread(sim: Sim) -> None:
    token = sim.tokens("alice")["access_token"]
    first = sim.tweet(token, {"text": "Thread 1/2"})
    assert first.status_code == 201
    data = first.json()["data"]
    assert set(data) == {"id", "text", "edit_history_tweet_ids"}
    assert data["text"] == "Thread 1/2"
    assert data["id"].isdigit()
    assert len(data["id"]) == 19
    assert data["edit_history_tweet_ids"] == [data["id"]]
    reply = sim.tweet(token, {"text": "Thread 2/2", "reply": {"in_reply_to_tweet_id": data["id"]}})
    assert reply.status_code == 201
    reply_id = reply.json()["data"]["id"]
    assert int(reply_id) > int(data["id"])

    recorded = sim.admin("/tweets").json()
    assert recorded["duplicates"] == 0
    by_id = {t["id"]: t for t in recorded["data"]}
    me = sim.me(token).json()["data"]
    assert by_id[data["id"]]["author_id"] == me["id"]
    assert by_id[data["id"]]["in_reply_to"] is None
    assert by_id[reply_id]["in_reply_to"] == data["id"]
    assert by_id[reply_id]["conversation_id"] == data["id"]
    assert by_id[reply_id]["created_at"].endswith("Z")


def test_replying_to_a_missing_tweet_is_forbidden(sim: Sim) -> None:
    token = sim.tokens()["access_token"]
    response = sim.tweet(token, {"text": "hi", "reply": {"in_reply_to_tweet_id": "1234567890"}})
    assert response.status_code == 403
    assert "deleted or not visible" in response.json()["detail"]
    assert sim.admin("/tweets").json()["data"] == []


def test_restricted_replies_switch(start: Callable[..., Sim]) -> None:
    sim = start(XSimConfig(restrict_replies=True))
    alice, bob = sim.tokens("alice")["access_token"], sim.tokens("bob")["access_token"]
    root = sim.tweet(alice, {"text": "root"}).json()["data"]["id"]
    assert (
        sim.tweet(alice, {"text": "self", "reply": {"in_reply_to_tweet_id": root}}).status_code
        == 201
    )
    refused = sim.tweet(bob, {"text": "drive-by", "reply": {"in_reply_to_tweet_id": root}})
    assert refused.status_code == 403
    summoned = sim.tweet(alice, {"text": "hey @bob"}).json()["data"]["id"]
    ok = sim.tweet(bob, {"text": "hello", "reply": {"in_reply_to_tweet_id": summoned}})
    assert ok.status_code == 201


def test_duplicate_text_within_24_hours_is_forbidden(start: Callable[..., Sim]) -> None:
    sim = start(XSimConfig(access_token_ttl=2 * 24 * 3600))
    alice, bob = sim.tokens("alice")["access_token"], sim.tokens("bob")["access_token"]
    assert sim.tweet(alice, {"text": "same words"}).status_code == 201
    duplicate = sim.tweet(alice, {"text": "same words"})
    assert duplicate.status_code == 403
    assert duplicate.json() == {
        "detail": "You are not allowed to create a Tweet with duplicate content.",
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
    }
    assert sim.tweet(bob, {"text": "same words"}).status_code == 201
    sim.admin("/clock", {"advance_seconds": 24 * 3600 + 1})
    assert sim.tweet(alice, {"text": "same words"}).status_code == 201
    recorded = sim.admin("/tweets").json()
    assert recorded["count"] == 3
    assert recorded["duplicates"] == 1


def test_the_duplicate_guard_can_be_switched_off(start: Callable[..., Sim]) -> None:
    sim = start(XSimConfig(duplicate_check=False))
    token = sim.tokens()["access_token"]
    assert sim.tweet(token, {"text": "again"}).status_code == 201
    assert sim.tweet(token, {"text": "again"}).status_code == 201
    assert sim.admin("/tweets").json()["duplicates"] == 1


def test_text_over_280_weighted_characters_is_forbidden(sim: Sim) -> None:
    token = sim.tokens()["access_token"]
    assert sim.tweet(token, {"text": "a" * 280}).status_code == 201
    too_long = sim.tweet(token, {"text": "b" * 281})
    assert too_long.status_code == 403
    assert too_long.json() == {
        "title": "Forbidden",
        "detail": TOO_LONG,
        "type": "about:blank",
        "status": 403,
    }
    assert sim.tweet(token, {"text": "漢" * 140}).status_code == 201
    assert sim.tweet(token, {"text": "字" * 141}).status_code == 403
    long_url = "https://example.com/" + "p" * 300
    assert sim.tweet(token, {"text": "c" * 256 + " " + long_url}).status_code == 201
    assert sim.tweet(token, {"text": "d" * 257 + " " + long_url}).status_code == 403
    assert len(sim.admin("/tweets").json()["data"]) == 3


def test_weighted_length_follows_twitter_text_v3() -> None:
    assert weighted_length("hello") == 5
    assert weighted_length("日本語") == 6
    assert weighted_length("go to https://example.com/a/very/long/path?x=1 now") == 6 + 23 + 4
    assert weighted_length("see example.com.") == 4 + 23 + 1
    assert weighted_length("😀") == 2
    assert weighted_length("👩‍👩‍👧‍👦") == 2  # a ZWJ family is one emoji
    assert weighted_length("👍🏽") == 2  # skin tone modifier
    assert weighted_length("🇫🇷") == 2  # flag
    assert weighted_length("1️⃣") == 2  # keycap
    assert weighted_length("café") == weighted_length("cafe\u0301") == 4  # NFC
    # Curly quotes and dashes sit in the weight-100 ranges, the ellipsis (U+2026) does not.
    assert weighted_length("“quotes” — dash…") == 17


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"text": "hi", "foo": 1}, "$.foo: is not defined in the schema"),
        ({"text": "hi", "reply": {"in_reply_to_tweet_id": "1", "x": 1}}, "$.reply.x"),
        ({"reply": {"in_reply_to_tweet_id": "1"}}, "$.text: is missing"),
        ({"text": 5}, "$.text: integer found, string expected"),
        ({"text": "hi", "reply": {}}, "$.reply.in_reply_to_tweet_id: is missing"),
        ({"text": "hi", "reply": {"in_reply_to_tweet_id": "abc"}}, "regex"),
        ({"text": "hi", "media": {"media_ids": ["123"]}}, "Your media IDs are invalid."),
        ({"text": "hi", "poll": {"options": ["a"], "duration_minutes": 60}}, "$.poll.options"),
        (["text"], "$: array found, object expected"),
    ],
)
def test_invalid_bodies_are_400_invalid_request(sim: Sim, body: object, message: str) -> None:
    token = sim.tokens()["access_token"]
    response = sim.tweet(token, body)
    assert response.status_code == 400
    problem = response.json()
    assert problem["title"] == "Invalid Request"
    assert problem["detail"] == "One or more parameters to your request was invalid."
    assert problem["type"] == "https://api.twitter.com/2/problems/invalid-request"
    assert message in problem["errors"][0]["message"]
    assert sim.admin("/tweets").json()["data"] == []


def test_non_json_body_is_400(sim: Sim) -> None:
    token = sim.tokens()["access_token"]
    response = sim.http.post(
        sim.x + "/2/tweets",
        content=b"text=hello",
        headers={**bearer(token), "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["title"] == "Invalid Request"


def test_lookup_tweets_by_ids(sim: Sim) -> None:
    token = sim.tokens()["access_token"]
    tweet_id = sim.tweet(token, {"text": "look me up"}).json()["data"]["id"]
    response = sim.http.get(
        sim.x + "/2/tweets",
        params={"ids": f"{tweet_id},42", "tweet.fields": "public_metrics,created_at"},
        headers=bearer(token),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["data"][0]["id"] == tweet_id
    assert body["data"][0]["public_metrics"]["like_count"] == 0
    assert body["data"][0]["public_metrics"]["impression_count"] == 0
    assert body["errors"][0]["resource_id"] == "42"
    assert body["errors"][0]["title"] == "Not Found Error"
    single = sim.http.get(sim.x + f"/2/tweets/{tweet_id}", headers=bearer(token)).json()
    assert single["data"]["text"] == "look me up"


# -- the user timeline ------------------------------------------------------------------


def test_user_timeline_is_newest_first_and_filters_by_time(sim: Sim) -> None:
    token = sim.tokens("alice")["access_token"]
    user_id = sim.me(token).json()["data"]["id"]
    old = sim.tweet(token, {"text": "old"}).json()["data"]["id"]
    sim.admin("/clock", {"advance_seconds": 3600})
    now = sim.admin("/clock").json()["now"]
    start_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60))
    ids = [sim.tweet(token, {"text": f"new {i}"}).json()["data"]["id"] for i in range(6)]

    url = sim.x + f"/2/users/{user_id}/tweets"
    everything = sim.http.get(url, params={"max_results": 100}, headers=bearer(token)).json()
    assert [t["id"] for t in everything["data"]] == [*reversed(ids), old]
    assert "created_at" not in everything["data"][0]
    assert everything["meta"]["result_count"] == 7

    recent = sim.http.get(
        url,
        params={"max_results": 5, "start_time": start_time, "tweet.fields": "created_at"},
        headers=bearer(token),
    )
    assert recent.headers["x-rate-limit-limit"] == "900"
    body = recent.json()
    assert [t["id"] for t in body["data"]] == list(reversed(ids))[:5]
    assert body["data"][0]["text"] == "new 5"
    assert body["data"][0]["created_at"].endswith("Z")
    assert body["meta"]["newest_id"] == ids[-1]
    assert body["meta"]["result_count"] == 5
    rest = sim.http.get(
        url,
        params={
            "max_results": 5,
            "start_time": start_time,
            "pagination_token": body["meta"]["next_token"],
        },
        headers=bearer(token),
    ).json()
    assert [t["id"] for t in rest["data"]] == [ids[0]]
    assert "next_token" not in rest["meta"]


def test_user_timeline_validates_parameters(sim: Sim) -> None:
    token = sim.tokens()["access_token"]
    user_id = sim.me(token).json()["data"]["id"]
    url = sim.x + f"/2/users/{user_id}/tweets"
    response = sim.http.get(url, params={"max_results": 3}, headers=bearer(token))
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "parameters": {"max_results": ["3"]},
            "message": "The `max_results` query parameter value [3] is not between 5 and 100",
        }
    ]
    bad_time = sim.http.get(url, params={"start_time": "yesterday"}, headers=bearer(token))
    assert bad_time.status_code == 400
    empty = sim.http.get(url, headers=bearer(token))
    assert empty.json() == {"meta": {"result_count": 0}}
    missing = sim.http.get(sim.x + "/2/users/1234/tweets", headers=bearer(token)).json()
    assert missing["errors"][0]["detail"] == "Could not find user with id: [1234]."


# -- rate limits ------------------------------------------------------------------------


def test_rate_limit_headers_and_429(start: Callable[..., Sim]) -> None:
    sim = start(XSimConfig(tweets_per_15min=3))
    token = sim.tokens()["access_token"]
    me = sim.me(token)
    assert me.headers["x-rate-limit-limit"] == "75"
    assert me.headers["x-rate-limit-remaining"] == "74"

    remaining, resets = [], set()
    for i in range(3):
        response = sim.tweet(token, {"text": f"post {i}"})
        assert response.status_code == 201
        assert response.headers["x-rate-limit-limit"] == "3"
        remaining.append(response.headers["x-rate-limit-remaining"])
        resets.add(int(response.headers["x-rate-limit-reset"]))
    assert remaining == ["2", "1", "0"]
    assert len(resets) == 1
    (reset,) = resets
    assert time.time() + 890 < reset <= time.time() + 900

    limited = sim.tweet(token, {"text": "one too many"})
    assert limited.status_code == 429
    assert limited.json() == {
        "title": "Too Many Requests",
        "detail": "Too Many Requests",
        "type": "about:blank",
        "status": 429,
    }
    assert limited.headers["x-rate-limit-remaining"] == "0"
    assert int(limited.headers["x-rate-limit-reset"]) == reset
    assert sim.admin("/tweets").json()["count"] == 3
    # Other endpoints and other users have their own windows.
    assert sim.me(token).status_code == 200
    assert sim.tweet(sim.tokens("bob")["access_token"], {"text": "bob"}).status_code == 201
    # A new window opens after 15 minutes.
    sim.admin("/clock", {"advance_seconds": 901})
    again = sim.tweet(token, {"text": "next window"})
    assert again.status_code == 201
    assert again.headers["x-rate-limit-remaining"] == "2"


# -- faults -----------------------------------------------------------------------------


def test_fail_fault_returns_500_and_records_nothing(sim: Sim) -> None:
    token = sim.tokens()["access_token"]
    faults = sim.admin("/faults", {"fail_rate": 1.0})
    assert faults.json()["fail_rate"] == 1.0
    response = sim.tweet(token, {"text": "doomed"})
    assert response.status_code == 500
    problem = response.json()
    assert problem["title"] == "Internal Server Error"
    assert problem["detail"].startswith("Something is broken.")
    assert problem["status"] == 500
    assert "x-rate-limit-remaining" in response.headers
    assert sim.admin("/tweets").json()["data"] == []
    sim.admin("/faults", {"fail_rate": 0})
    assert sim.tweet(token, {"text": "doomed"}).status_code == 201


def test_drop_fault_records_the_tweet_but_loses_the_response(sim: Sim) -> None:
    token = sim.tokens()["access_token"]
    sim.admin("/faults", {"drop_response_rate": 1.0})
    with pytest.raises(httpx.RemoteProtocolError):
        sim.tweet(token, {"text": "did it post?"})
    sim.admin("/faults", {"drop_response_mode": "503"})
    lost = sim.tweet(token, {"text": "and this one?"})
    assert lost.status_code == 503
    assert lost.content == b""
    sim.admin("/faults", {"drop_response_rate": 0})
    texts = [t["text"] for t in sim.admin("/tweets").json()["data"]]
    assert texts == ["did it post?", "and this one?"]
    # Retrying the lost post hits X's duplicate guard: evidence it landed.
    assert sim.tweet(token, {"text": "did it post?"}).status_code == 403


def test_latency_fault_delays_responses(sim: Sim) -> None:
    token = sim.tokens()["access_token"]
    sim.admin("/faults", {"latency_ms": 300})
    started = time.monotonic()
    assert sim.me(token).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_fault_and_config_knobs_are_validated(sim: Sim) -> None:
    assert sim.admin("/faults", {"fail_rate": 2}).status_code == 400
    assert sim.admin("/faults", {"bogus": 1}).status_code == 400
    assert sim.admin("/faults", {"drop_response_mode": "explode"}).status_code == 400
    assert sim.admin("/config", {"access_token_ttl": "soon"}).status_code == 400
    assert sim.admin("/clock", {"advance_seconds": -1}).status_code == 400
    config = sim.admin("/config").json()
    assert config["access_token_ttl"] == 7200
    assert "client_secret" not in config
    assert sim.admin("/faults").json() == {
        "latency_ms": 0,
        "fail_rate": 0.0,
        "drop_response_rate": 0.0,
        "drop_response_mode": "abort",
    }
