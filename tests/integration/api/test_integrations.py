"""Connecting X through OAuth 2.0 + PKCE against the sandbox, over real HTTP."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest

from interfaces.consent import approve
from tests.conftest import Account, unique


def test_the_authorization_url_carries_pkce_and_state(account: Account) -> None:
    response = account.http.get("/api/integrations/twitter/auth")
    assert response.status_code == 200
    url = response.json()["url"]
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["state"][0]) >= 32
    assert len(query["code_challenge"][0]) == 43
    assert query["redirect_uri"][0].endswith("/api/integrations/twitter/callback")
    assert "offline.access" in query["scope"][0].split(" ")
    assert account.http.get("/api/integrations/myspace/auth").status_code == 404


def test_connecting_lists_the_account_without_any_token(
    kairos: Any, account: Account, database_url: str
) -> None:
    username = unique("listed")
    integration = account.connect_x(username)
    assert integration["provider"] == "twitter"
    assert integration["status"] == "connected"
    assert integration["accountName"] == username
    assert set(integration["capabilities"]) >= {"text", "threads"}
    aggregate = kairos.app.get_integration(uuid.UUID(integration["id"]))
    tokens = kairos.vault.read(aggregate.credential_id)
    listing = account.http.get("/api/integrations").text
    single = account.http.get(f"/api/integrations/{integration['id']}").text
    for secret in (tokens.access_token, tokens.refresh_token):
        assert secret
        assert secret not in listing
        assert secret not in single
    with psycopg.connect(database_url) as conn:
        events = conn.execute(
            "SELECT state FROM kairos_events WHERE originator_id = %s", (aggregate.id,)
        ).fetchall()
        sealed = conn.execute(
            "SELECT ciphertext FROM credentials WHERE id = %s", (aggregate.credential_id,)
        ).fetchone()
    assert events
    assert all(tokens.access_token.encode() not in bytes(row[0]) for row in events)
    assert sealed is not None
    assert tokens.access_token.encode() not in bytes(sealed[0])


def test_reconnecting_the_same_account_keeps_one_integration(kairos: Any, account: Account) -> None:
    username = unique("again")
    first = account.connect_x(username)
    old_credential = kairos.app.get_integration(uuid.UUID(first["id"])).credential_id
    second = account.connect_x(username)
    assert first["id"] == second["id"]
    listed = [
        i
        for i in account.http.get("/api/integrations").json()["integrations"]
        if i["accountName"] == username
    ]
    assert len(listed) == 1
    aggregate = kairos.app.get_integration(uuid.UUID(first["id"]))
    assert aggregate.credential_id != old_credential
    with pytest.raises(LookupError):
        kairos.vault.read(old_credential)  # the replaced credential was shredded


def test_several_accounts_per_platform(account: Account) -> None:
    names = {unique("multi") for _ in range(3)}
    for name in names:
        account.connect_x(name)
    listed = {
        i["accountName"] for i in account.http.get("/api/integrations").json()["integrations"]
    }
    assert names <= listed


def test_the_same_platform_account_in_two_organizations_is_two_integrations(
    make_account: Any,
) -> None:
    a, b = make_account("a"), make_account("b")
    username = unique("shared")
    assert a.connect_x(username)["id"] != b.connect_x(username)["id"]


def test_a_state_is_single_use(account: Account) -> None:
    url = account.http.get("/api/integrations/twitter/auth").json()["url"]
    callback = approve(url, username=unique("once"))
    assert account.http.get(callback).status_code == 200
    replay = account.http.get(callback)
    assert replay.status_code == 400
    assert "already used" in replay.text


def test_a_forged_state_is_refused(api_url: str, account: Account) -> None:
    url = account.http.get("/api/integrations/twitter/auth").json()["url"]
    callback = approve(url, username=unique("forged"))
    parts = urlsplit(callback)
    query = parse_qs(parts.query)
    forged = f"{api_url}{parts.path}?code={query['code'][0]}&state=not-the-state"
    response = httpx.get(forged)
    assert response.status_code == 400
    missing = httpx.get(f"{api_url}{parts.path}?code={query['code'][0]}")
    assert missing.status_code == 400


def test_a_denied_consent_connects_nothing(account: Account) -> None:
    url = account.http.get("/api/integrations/twitter/auth").json()["url"]
    query = parse_qs(urlsplit(url).query)
    callback = f"{query['redirect_uri'][0]}?error=access_denied&state={query['state'][0]}"
    response = httpx.get(callback)
    assert response.status_code == 400
    assert "access_denied" in response.text
    assert account.http.get("/api/integrations").json()["integrations"] == []


def test_another_organizations_integration_is_404(make_account: Any) -> None:
    owner, stranger = make_account("owner"), make_account("stranger")
    integration = owner.connect_x(unique("private"))
    response = stranger.http.get(f"/api/integrations/{integration['id']}")
    assert response.status_code == 404
    assert response.json()["success"] is False
    assert stranger.http.get("/api/integrations").json()["integrations"] == []
    assert owner.http.get(f"/api/integrations/{integration['id']}").status_code == 200


def test_vault_keys_rotate(kairos: Any, account: Account) -> None:
    from interfaces.postgres.vault import PostgresCredentialVault, new_vault_key, parse_keyring

    integration = account.connect_x(unique("rotate"))
    credential_id = kairos.app.get_integration(uuid.UUID(integration["id"])).credential_id
    before = kairos.vault.read(credential_id)
    old = kairos.settings.vault_keys.get_secret_value()
    rotated = PostgresCredentialVault(
        kairos.datastore, parse_keyring(f"{new_vault_key('k2')},{old}")
    )
    assert rotated.rotate() >= 1
    assert rotated.read(credential_id) == before
    with psycopg.connect(kairos.settings.database_url) as conn:
        key_id = conn.execute(
            "SELECT key_id FROM credentials WHERE id = %s", (credential_id,)
        ).fetchone()
    assert key_id == ("k2",)
    with pytest.raises(ValueError, match="unknown key"):
        kairos.vault.read(credential_id)  # the old keyring alone can no longer open it
