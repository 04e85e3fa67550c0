"""Instagram and TikTok accounts keep themselves alive through the real pipeline: TikTok's
rotating refresh tokens and Instagram Login's long-lived tokens are refreshed before they
expire; a Facebook Login token, which cannot be refreshed, warns a week ahead."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest

from tests.conftest import Account, unique


def history(kairos: Any, integration_id: str) -> list[str]:
    return [type(e).__name__ for e in kairos.app.history(UUID(integration_id))]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def instagram_refresh_any_age(sandbox_url: str) -> Iterator[None]:
    """Instagram refreshes only tokens at least a day old: a test cannot wait that long."""
    url = f"{sandbox_url}/instagram/_sandbox/config"
    before = httpx.get(url).json()["refresh_min_age"]
    httpx.post(url, json={"refresh_min_age": 0}).raise_for_status()
    yield
    httpx.post(url, json={"refresh_min_age": before}).raise_for_status()


def test_tiktok_rotating_tokens_are_refreshed_before_they_expire(
    pipeline: Any, kairos: Any, account: Account, sandbox_url: str
) -> None:
    name = unique("ttref")
    users = f"{sandbox_url}/tiktok/_sandbox/users/{name}"
    httpx.post(users, json={"access_token_ttl": 4}).raise_for_status()
    try:
        tiktok = account.connect_tiktok(name)
        wait_until(
            lambda: history(kairos, tiktok["id"]).count("TokenRefreshed") >= 3,
            "three refreshes, each with the refresh token the one before returned",
        )
        assert "TokenExpired" not in history(kairos, tiktok["id"])
        current = account.http.get(f"/api/integrations/{tiktok['id']}").json()["integration"]
        assert current["status"] == "connected"
    finally:
        httpx.delete(users).raise_for_status()


def test_instagram_login_tokens_are_refreshed_before_they_expire(
    pipeline: Any,
    kairos: Any,
    account: Account,
    sandbox_url: str,
    instagram_refresh_any_age: None,
) -> None:
    name = unique("igref")
    tokens = f"{sandbox_url}/instagram/_sandbox/users/{name}/tokens"
    httpx.post(tokens, json={"long_token_ttl": 4}).raise_for_status()
    try:
        instagram = account.connect_instagram(name)
        wait_until(
            lambda: history(kairos, instagram["id"]).count("TokenRefreshed") >= 2,
            "the long-lived token to be refreshed",
        )
        assert "TokenExpired" not in history(kairos, instagram["id"])
    finally:
        httpx.post(tokens, json={"long_token_ttl": None}).raise_for_status()


def test_a_facebook_login_token_warns_a_week_ahead_then_asks_for_a_reconnect(
    pipeline: Any, kairos: Any, account: Account, sandbox_url: str
) -> None:
    facebook_user = unique("fbexp")
    tokens = f"{sandbox_url}/instagram/_sandbox/facebook-users/{facebook_user}/tokens"
    httpx.post(tokens, json={"long_token_ttl": 3}).raise_for_status()
    try:
        linked = account.connect_instagram_facebook(facebook_user, f"{facebook_user}_studio")
        wait_until(
            lambda: "TokenExpired" in history(kairos, linked["id"]),
            "the unrenewable token to expire",
        )
        events = history(kairos, linked["id"])
        assert "TokenRefreshed" not in events
        assert events.index("ConnectionExpiringSoon") < events.index("TokenExpired")
        notices = account.http.get("/api/notifications").json()["notifications"]
        kinds = {n["kind"] for n in notices if n["subjectId"] == linked["id"]}
        assert {"connection_expiring", "connection_expired"} <= kinds, notices
    finally:
        httpx.post(tokens, json={"long_token_ttl": None}).raise_for_status()
