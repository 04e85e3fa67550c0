"""Sessions, CSRF, organizations and API tokens (seed 001: tokens cannot manage tokens)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from application.identity import IdentityService
from interfaces.postgres.identity_store import PostgresIdentityStore
from interfaces.security import Argon2PasswordHasher
from tests.conftest import TEST_SECRET, Account

TOKEN_FORMAT = re.compile(r"^ttp_[0-9a-f]{48}$")


def _browser(api_url: str, account: Account) -> tuple[httpx.Client, str]:
    browser = httpx.Client(base_url=api_url, timeout=10)
    login = browser.post(
        "/api/auth/login", json={"email": account.email, "password": account.password}
    )
    assert login.status_code == 200, login.text
    return browser, login.json()["csrfToken"]


def test_login_sets_an_http_only_cookie(api_url: str, account: Account) -> None:
    browser = httpx.Client(base_url=api_url, timeout=10)
    response = browser.post(
        "/api/auth/login", json={"email": account.email.upper(), "password": account.password}
    )
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("kairos_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    me = browser.get("/api/auth/me").json()
    assert me["organizationId"] == str(account.organization_id)
    wrong = browser.post(
        "/api/auth/login", json={"email": account.email, "password": "nope-nope-nope"}
    )
    assert wrong.status_code == 401
    assert wrong.json() == {"success": False, "message": "email or password is incorrect"}


def test_tokens_are_shown_once_and_stored_only_as_hashes(
    api_url: str, account: Account, database_url: str
) -> None:
    browser, csrf = _browser(api_url, account)
    created = browser.post(
        "/api/tokens", json={"name": "ci", "expiresInDays": 30}, headers={"X-CSRF-Token": csrf}
    )
    assert created.status_code == 201, created.text
    secret = created.json()["token"]
    assert TOKEN_FORMAT.match(secret)
    token = created.json()["apiToken"]
    assert token["prefix"] == secret[:8]
    assert datetime.fromisoformat(token["expiresAt"]) > datetime.now(UTC) + timedelta(days=29)
    listed = browser.get("/api/tokens").json()["tokens"]
    assert secret not in str(listed)
    assert token["id"] in [t["id"] for t in listed]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT * FROM api_tokens").fetchall()
    assert all(secret not in str(row) and secret.encode() not in bytes(row[4]) for row in rows)
    usable = httpx.get(f"{api_url}/api/posts", headers={"Authorization": f"Bearer {secret}"})
    assert usable.status_code == 200


def test_api_tokens_cannot_manage_tokens(account: Account) -> None:
    for method, path in (
        ("GET", "/api/tokens"),
        ("POST", "/api/tokens"),
        ("DELETE", f"/api/tokens/{uuid.uuid4()}"),
    ):
        response = account.http.request(method, path, json={} if method == "POST" else None)
        assert response.status_code == 403, (method, response.text)
        assert "tokens cannot" in response.json()["message"].lower()


def test_cookie_writes_need_the_csrf_token(api_url: str, account: Account) -> None:
    browser, _csrf = _browser(api_url, account)
    refused = browser.post("/api/tokens", json={"name": "no csrf"})
    assert refused.status_code == 403
    assert "x-csrf-token" in refused.json()["message"]
    wrong = browser.post("/api/tokens", json={"name": "x"}, headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    assert browser.get("/api/posts").status_code == 200  # reads need no CSRF token


def test_revoked_tokens_stop_working_and_revocation_is_audited(
    api_url: str, account: Account, database_url: str
) -> None:
    browser, csrf = _browser(api_url, account)
    made = browser.post("/api/tokens", json={"name": "short-lived"}, headers={"X-CSRF-Token": csrf})
    secret, token_id = made.json()["token"], made.json()["apiToken"]["id"]
    headers = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(f"{api_url}/api/posts", headers=headers).status_code == 200
    revoked = browser.delete(f"/api/tokens/{token_id}", headers={"X-CSRF-Token": csrf})
    assert revoked.status_code == 200
    after = httpx.get(f"{api_url}/api/posts", headers=headers)
    assert after.status_code == 401
    assert after.headers["www-authenticate"] == "Bearer"
    again = browser.delete(f"/api/tokens/{token_id}", headers={"X-CSRF-Token": csrf})
    assert again.status_code == 404
    with psycopg.connect(database_url) as conn:
        actions = [
            row[0]
            for row in conn.execute(
                "SELECT action FROM audit_log WHERE subject = %s ORDER BY id", (token_id,)
            )
        ]
        assert actions == ["token.issued", "token.revoked"]
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("DELETE FROM audit_log WHERE subject = %s", (token_id,))


def test_another_users_token_cannot_be_revoked(api_url: str, make_account: Any) -> None:
    owner, stranger = make_account("owner"), make_account("stranger")
    owner_browser, owner_csrf = _browser(api_url, owner)
    token_id = owner_browser.post(
        "/api/tokens", json={"name": "mine"}, headers={"X-CSRF-Token": owner_csrf}
    ).json()["apiToken"]["id"]
    browser, csrf = _browser(api_url, stranger)
    response = browser.delete(f"/api/tokens/{token_id}", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 404
    assert token_id in [t["id"] for t in owner_browser.get("/api/tokens").json()["tokens"]]


@pytest.mark.parametrize("days", [0, 366, "30", 1.5])
def test_token_expiry_is_1_to_365_days(api_url: str, account: Account, days: Any) -> None:
    browser, csrf = _browser(api_url, account)
    response = browser.post(
        "/api/tokens", json={"expiresInDays": days}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status_code == 400
    assert response.json()["field"] == "expiresInDays"


def test_expired_tokens_are_refused(kairos: Any, account: Account) -> None:
    issued = kairos.identity.issue_token_for(
        account.user_id, account.organization_id, name="expiring", expires_in_days=1
    )
    later = IdentityService(
        PostgresIdentityStore(kairos.datastore),
        Argon2PasswordHasher(),
        pepper=TEST_SECRET.encode(),
        clock=lambda: datetime.now(UTC) + timedelta(days=1, seconds=1),
    )
    assert kairos.identity.authenticate_token(issued.secret) is not None
    assert later.authenticate_token(issued.secret) is None


def test_last_used_time_is_recorded(kairos: Any, account: Account) -> None:
    assert account.http.get("/api/posts").status_code == 200
    tokens = kairos.identity._store.tokens(account.user_id, account.organization_id)
    assert tokens[0].last_used_at is not None


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ttp_short", "Basic dXNlcjpwYXNz", "Bearer ttp_" + "0" * 48],
)
def test_missing_or_invalid_tokens_get_401(api_url: str, header: str) -> None:
    headers = {"Authorization": header} if header else {}
    response = httpx.get(f"{api_url}/api/posts", headers=headers)
    assert response.status_code == 401
    assert response.json()["success"] is False


def test_switching_organization_scopes_every_request(api_url: str, make_account: Any) -> None:
    account = make_account("switcher")
    browser, csrf = _browser(api_url, account)
    first_org = str(account.organization_id)
    x = account.connect_x("switch_first")
    account.http.post("/api/posts", json={"content": "in first", "accountIds": [x["id"]]})
    made = browser.post(
        "/api/organizations", json={"name": "Agency client"}, headers={"X-CSRF-Token": csrf}
    )
    assert made.status_code == 201
    second_org = made.json()["organization"]["id"]
    switched = browser.post(
        "/api/organizations/active",
        json={"organizationId": second_org},
        headers={"X-CSRF-Token": csrf},
    )
    assert switched.status_code == 200
    assert browser.get("/api/auth/me").json()["organizationId"] == second_org
    assert browser.get("/api/posts").json()["posts"] == []
    assert browser.get("/api/integrations").json()["integrations"] == []
    foreign = browser.post(
        "/api/organizations/active",
        json={"organizationId": str(uuid.uuid4())},
        headers={"X-CSRF-Token": csrf},
    )
    assert foreign.status_code == 404
    assert len(account.http.get("/api/posts").json()["posts"]) == 1  # the token keeps its org
    assert first_org != second_org
