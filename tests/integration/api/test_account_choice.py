"""Choosing the account after authorizing, over real HTTP: the callback's chooser page and
its forms, the JSON routes for API clients, the plan's cap at the choice, and refusals.

The platform is an in-process fake of Facebook Login (one Instagram account per Page);
everything else is the session's Kairos: its database, vault, plans and read models.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import psycopg
import pytest

from application.connections import ConnectionService
from application.platforms import AccountProfile, PersonalAccountRefused, TokenSet
from interfaces.consent import choose
from interfaces.postgres.account_choices import PostgresAccountChoices
from interfaces.postgres.locks import PostgresLocks
from interfaces.postgres.oauth_states import PostgresOAuthStateStore
from tests.conftest import Account, unique

PROVIDER = "instagram-facebook"


class FakeFacebookLogin:
    """Authorizes whatever the code names: ``pages=ann,bob`` reaches the Instagram accounts
    @ann and @bob, one per Facebook Page; ``pages=`` reaches none."""

    provider = PROVIDER

    def capabilities(self) -> tuple[str, ...]:
        return ("text", "images")

    def authorization_url(self, *, state: str, code_challenge: str, redirect_uri: str) -> str:
        return f"https://facebook.test/dialog/oauth?{urlencode({'state': state})}"

    def exchange_code(self, *, code: str, code_verifier: str, redirect_uri: str) -> TokenSet:
        pages = code.removeprefix("pages=")
        expires = datetime.now(UTC) + timedelta(days=60)
        return TokenSet(f"fb|{pages}|{uuid.uuid4().hex}", None, expires, scopes=("pages_show",))

    def fetch_profile(self, access_token: str) -> AccountProfile:
        raise AssertionError("a chooser platform is asked for its accounts instead")

    def connectable_accounts(self, access_token: str) -> list[AccountProfile]:
        names = [name for name in access_token.split("|")[1].split(",") if name]
        if not names:
            raise PersonalAccountRefused(
                "none of your Facebook Pages has an Instagram professional account linked"
            )
        return [
            AccountProfile(
                f"ig-{name}",
                name,
                f"{name.title()} & <Co>",
                detail=f"Page: <b>{name}</b> Shop",
            )
            for name in names
        ]


@pytest.fixture(scope="module")
def chooser_url(kairos: Any) -> Iterator[str]:
    """The session's Kairos, serving a second platform where the user chooses the account.

    Built here because the composition root does not yet pass a choice store."""
    from interfaces.api.app import create_api
    from interfaces.bootstrap import utc_now
    from interfaces.serving import serve

    adapters: dict[str, Any] = {PROVIDER: FakeFacebookLogin()}
    connections = ConnectionService(
        kairos.app,
        adapters,
        PostgresOAuthStateStore(kairos.datastore),
        kairos.vault,
        callback_url=lambda provider: f"https://kairos.test/api/integrations/{provider}/callback",
        clock=utc_now,
        plans=kairos.plans,
        accounts=kairos.integrations_view,
        deliveries=kairos.posts_view,
        locks=PostgresLocks(kairos.datastore),
        choices=PostgresAccountChoices(kairos.datastore),
    )
    with serve(create_api(dataclasses.replace(kairos, connections=connections))) as url:
        yield url


@pytest.fixture
def make_user(make_account: Any, chooser_url: str) -> Any:
    def create(label: str = "chooser") -> Account:
        account: Account = make_account(label)
        account.http.base_url = httpx.URL(chooser_url)
        return account

    return create


@pytest.fixture
def user(make_user: Any) -> Account:
    created: Account = make_user()
    return created


def callback(user: Account, *usernames: str) -> httpx.Response:
    """Authorize Facebook Login for the Pages of ``usernames``; Kairos's answer."""
    url = user.http.get(f"/api/integrations/{PROVIDER}/auth").json()["url"]
    state = parse_qs(urlsplit(url).query)["state"][0]
    return user.http.get(
        f"/api/integrations/{PROVIDER}/callback",
        params={"state": state, "code": f"pages={','.join(usernames)}"},
    )


def choice_of(page: httpx.Response) -> str:
    found = re.search(r"name='choice' value='([^']+)'", page.text)
    assert found, page.text
    return found.group(1)


def pending_credential(kairos: Any, choice: str) -> uuid.UUID:
    with psycopg.connect(kairos.settings.database_url) as conn:
        row = conn.execute(
            "SELECT credential_id FROM account_choices WHERE choice_hash = %s",
            (hashlib.sha256(choice.encode()).digest(),),
        ).fetchone()
    assert row is not None, "only the hash of the choice is stored"
    credential_id: uuid.UUID = row[0]
    return credential_id


def listed(user: Account) -> dict[str, dict[str, Any]]:
    integrations = user.http.get("/api/integrations").json()["integrations"]
    return {i["accountName"]: i for i in integrations}


# ---- in the browser -------------------------------------------------------------------


def test_the_callback_lists_each_account_and_its_form_connects_that_one(user: Account) -> None:
    ann, bob = unique("ann"), unique("bob")
    page = callback(user, ann, bob)
    assert page.status_code == 200, page.text
    assert "text/html" in page.headers["content-type"]
    assert "<title>Choose the Instagram account</title>" in page.text
    assert page.text.count(f"action='/api/integrations/{PROVIDER}/choose'") == 2
    assert f"@{bob}</strong> {bob.title()} &amp; &lt;Co&gt;" in page.text
    assert f"Page: &lt;b&gt;{bob}&lt;/b&gt; Shop" in page.text
    assert "<b>" not in page.text
    assert "<Co>" not in page.text
    assert "kairos:integration-choice" in page.text
    assert listed(user) == {}

    connected = choose(page, username=bob, client=user.http)
    assert connected.status_code == 200, connected.text
    assert f"Connected @{bob}" in connected.text
    assert "kairos:integration-connected" in connected.text
    accounts = listed(user)
    assert set(accounts) == {bob}
    assert accounts[bob]["provider"] == PROVIDER
    assert accounts[bob]["displayName"] == f"{bob.title()} & <Co>"

    replay = choose(page, username=ann, client=user.http)
    assert replay.status_code == 400
    assert "already made" in replay.text
    assert set(listed(user)) == {bob}


def test_one_account_connects_without_a_choice(user: Account) -> None:
    solo = unique("solo")
    page = callback(user, solo)
    assert page.status_code == 200, page.text
    assert f"Connected @{solo}" in page.text
    assert set(listed(user)) == {solo}


def test_a_personal_account_only_grant_is_refused_with_the_reason(user: Account) -> None:
    page = callback(user)
    assert page.status_code == 400
    assert "none of your Facebook Pages has an Instagram professional account" in page.text
    assert listed(user) == {}


def test_forged_malformed_and_foreign_account_choices_are_400_pages(
    user: Account, chooser_url: str
) -> None:
    page = callback(user, unique("ann"), unique("bob"))
    choice = choice_of(page)
    url = f"{chooser_url}/api/integrations/{PROVIDER}/choose"
    answers = [
        httpx.post(url, data={"choice": "forged", "accountId": "1"}),
        httpx.post(url, data={"choice": choice, "accountId": "not-offered"}),
        httpx.post(url, data={"choice": choice * 10, "accountId": "1"}),
        httpx.post(url),
        httpx.post(f"{chooser_url}/api/integrations/twitter/choose", data={"choice": choice}),
    ]
    assert [a.status_code for a in answers] == [400, 400, 400, 400, 404]
    assert all("text/html" in a.headers["content-type"] for a in answers)
    assert "not one this authorization reaches" in answers[1].text
    assert listed(user) == {}


def test_an_expired_choice_is_refused_and_its_credential_shredded(
    kairos: Any, user: Account
) -> None:
    ann = unique("ann")
    page = callback(user, ann, unique("bob"))
    credential_id = pending_credential(kairos, choice_of(page))
    kairos.vault.read(credential_id)  # the tokens wait in the vault meanwhile
    with psycopg.connect(kairos.settings.database_url) as conn:
        conn.execute(
            "UPDATE account_choices SET expires_at = now() - interval '1 second' "
            "WHERE credential_id = %s",
            (credential_id,),
        )
    refused = choose(page, username=ann, client=user.http)
    assert refused.status_code == 400
    assert "expired" in refused.text
    with pytest.raises(LookupError):
        kairos.vault.read(credential_id)
    assert listed(user) == {}


def test_the_plan_cap_holds_at_the_choice(kairos: Any, user: Account) -> None:
    kairos.plans.set_plan(user.organization_id, "starter")
    ann = unique("ann")
    page = callback(user, ann, unique("bob"))
    for _ in range(5):
        assert callback(user, unique("full")).status_code == 200
    refused = choose(page, username=ann, client=user.http)
    assert refused.status_code == 402
    assert "Starter plan allows 5 connected accounts" in refused.text
    json_refused = user.http.post(
        f"/api/integrations/choices/{choice_of(page)}",
        json={"accountId": _account_id(page, ann)},
    )
    assert json_refused.status_code == 402
    assert json_refused.json()["success"] is False

    kairos.plans.set_plan(user.organization_id, "plus")
    assert choose(page, username=ann, client=user.http).status_code == 200
    assert ann in listed(user)


def test_reconnecting_through_the_chooser_keeps_the_integration(kairos: Any, user: Account) -> None:
    ann, bob = unique("ann"), unique("bob")
    first = listed_after(user, choose(callback(user, ann, bob), username=ann, client=user.http))
    old_credential = kairos.app.get_integration(uuid.UUID(first[ann]["id"])).credential_id
    url = user.http.get(
        f"/api/integrations/{PROVIDER}/auth", params={"integrationId": first[ann]["id"]}
    ).json()["url"]
    state = parse_qs(urlsplit(url).query)["state"][0]
    page = user.http.get(
        f"/api/integrations/{PROVIDER}/callback",
        params={"state": state, "code": f"pages={ann},{bob}"},
    )
    again = choose(page, username=ann, client=user.http)
    assert again.status_code == 200
    assert f"Reconnected @{ann}" in again.text
    assert listed(user)[ann]["id"] == first[ann]["id"]
    with pytest.raises(LookupError):
        kairos.vault.read(old_credential)


def listed_after(user: Account, page: httpx.Response) -> dict[str, dict[str, Any]]:
    assert page.status_code == 200, page.text
    return listed(user)


def _account_id(page: httpx.Response, username: str) -> str:
    found = re.search(
        rf"data-username='{re.escape(username)}'><input type='hidden' name='choice' "
        r"value='[^']+'><input type='hidden' name='accountId' value='([^']+)'",
        page.text,
    )
    assert found, page.text
    return found.group(1)


# ---- through the API ------------------------------------------------------------------


def test_an_api_client_reads_the_choice_and_makes_it(user: Account) -> None:
    ann, bob = unique("ann"), unique("bob")
    page = callback(user, ann, bob)
    choice = choice_of(page)

    offered = user.http.get(f"/api/integrations/choices/{choice}")
    assert offered.status_code == 200, offered.text
    body = offered.json()
    assert body["success"] is True
    assert body["provider"] == PROVIDER
    assert datetime.fromisoformat(body["expiresAt"]) > datetime.now(UTC) + timedelta(minutes=9)
    assert [a["username"] for a in body["accounts"]] == [ann, bob]
    assert body["accounts"][1] == {
        "id": _account_id(page, bob),
        "username": bob,
        "displayName": f"{bob.title()} & <Co>",
        "avatarUrl": None,
        "detail": f"Page: <b>{bob}</b> Shop",
    }

    not_offered = user.http.post(f"/api/integrations/choices/{choice}", json={"accountId": "x"})
    assert not_offered.status_code == 400
    assert not_offered.json()["field"] == "accountId"

    made = user.http.post(
        f"/api/integrations/choices/{choice}", json={"accountId": _account_id(page, bob)}
    )
    assert made.status_code == 201, made.text
    integration = made.json()["integration"]
    assert integration["accountName"] == bob
    assert made.json() == user.http.get(f"/api/integrations/{integration['id']}").json()

    again = user.http.post(
        f"/api/integrations/choices/{choice}", json={"accountId": _account_id(page, ann)}
    )
    assert again.status_code == 404
    assert again.json()["success"] is False
    assert user.http.get(f"/api/integrations/choices/{choice}").status_code == 404


def test_another_organizations_user_gets_404_and_the_choice_stays(make_user: Any) -> None:
    owner, stranger = make_user("owner"), make_user("stranger")
    ann = unique("ann")
    page = callback(owner, ann, unique("bob"))
    choice = choice_of(page)
    path = f"/api/integrations/choices/{choice}"
    seen = stranger.http.get(path)
    made = stranger.http.post(path, json={"accountId": _account_id(page, ann)})
    assert (seen.status_code, made.status_code) == (404, 404)
    assert made.json()["success"] is False
    assert listed(stranger) == {}
    assert owner.http.get(path).status_code == 200
    assert choose(page, username=ann, client=owner.http).status_code == 200


def test_choice_routes_do_not_collide_with_integration_ids(user: Account) -> None:
    for path in ("/api/integrations/choices/history", "/api/integrations/choices/unknown"):
        answer = user.http.get(path)
        assert answer.status_code == 404
        assert answer.json()["message"].startswith("account choice not found")
    assert user.http.post("/api/integrations/choices/x", json={}).status_code == 400
