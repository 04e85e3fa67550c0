"""An account's life after connecting, over real HTTP: switched off and on, disconnected
(refused while posts are scheduled to it, unless forced), reconnected, and its history."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.conftest import Account, unique

FUTURE = "2030-07-01T15:00:00.000Z"
TERMINAL = {"published", "failed", "partial"}


def _soon(seconds: float = 1.5) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def _wait_for(account: Account, post_id: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        post: dict[str, Any] = account.http.get(f"/api/posts/{post_id}").json()["post"]
        if post["status"] in TERMINAL:
            return post
        assert time.monotonic() < deadline, f"post stuck as {post['status']}: {post}"
        time.sleep(0.1)


def _schedule(account: Account, account_id: str, when: str = FUTURE) -> dict[str, Any]:
    response = account.http.post(
        "/api/posts",
        json={
            "content": f"post {uuid.uuid4().hex[:8]}",
            "accountIds": [account_id],
            "scheduledAt": when,
        },
    )
    assert response.status_code == 201, response.text
    post: dict[str, Any] = response.json()["post"]
    return post


def _credential_rows(database_url: str, credential_id: uuid.UUID) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM credentials WHERE id = %s", (credential_id,)
        ).fetchone()
    assert row is not None
    return int(row[0])


# ---- active / inactive -----------------------------------------------------------------


def test_an_inactive_account_is_left_out_of_posts_by_platform(account: Account) -> None:
    on = account.connect_x(unique("on"))
    off = account.connect_x(unique("off"))
    response = account.http.patch(f"/api/integrations/{off['id']}", json={"active": False})
    assert response.status_code == 200, response.text
    assert response.json()["integration"]["active"] is False
    assert response.json()["integration"]["status"] == "connected"
    listed = {i["id"]: i for i in account.http.get("/api/integrations").json()["integrations"]}
    assert listed[off["id"]]["active"] is False  # still listed, marked inactive

    post = account.http.post("/api/posts", json={"content": "all X", "platforms": ["twitter"]})
    assert post.status_code == 201, post.text
    assert post.json()["post"]["accountIds"] == [on["id"]]

    back = account.http.patch(f"/api/integrations/{off['id']}", json={"active": True})
    assert back.json()["integration"]["active"] is True
    again = account.http.post("/api/posts", json={"content": "all X", "platforms": ["twitter"]})
    assert sorted(again.json()["post"]["accountIds"]) == sorted([on["id"], off["id"]])


def test_only_inactive_accounts_means_no_platform_target(account: Account) -> None:
    x = account.connect_x(unique("paused"))
    account.http.patch(f"/api/integrations/{x['id']}", json={"active": False})
    response = account.http.post("/api/posts", json={"content": "hi", "platforms": ["twitter"]})
    assert response.status_code == 400
    assert response.json()["field"] == "platforms[0]"


def test_naming_an_inactive_account_is_refused(account: Account) -> None:
    x = account.connect_x(unique("named"))
    account.http.patch(f"/api/integrations/{x['id']}", json={"active": False})
    response = account.http.post("/api/posts", json={"content": "hi", "accountIds": [x["id"]]})
    assert response.status_code == 400
    assert response.json()["field"] == "accountIds[0]"
    assert "inactive" in response.json()["message"]
    assert '"active": true' in response.json()["message"]


def test_a_post_scheduled_before_deactivating_still_publishes(
    pipeline: Any, account: Account
) -> None:
    x = account.connect_x(unique("holiday"))
    post = _schedule(account, x["id"], _soon())
    account.http.patch(f"/api/integrations/{x['id']}", json={"active": False})
    assert account.http.get(f"/api/posts/{post['id']}").json()["post"]["accountIds"] == [x["id"]]
    assert _wait_for(account, post["id"])["status"] == "published"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"active": "no"}, "active"),
        ({"active": 0}, "active"),
        ({}, "active"),
        ({"active": True, "status": "x"}, "status"),
    ],
)
def test_the_toggle_takes_a_strict_boolean(
    account: Account, body: dict[str, Any], field: str
) -> None:
    x = account.connect_x(unique("strict"))
    response = account.http.patch(f"/api/integrations/{x['id']}", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


# ---- disconnect ------------------------------------------------------------------------


def test_disconnecting_is_refused_while_posts_are_scheduled_to_the_account(
    kairos: Any, account: Account, database_url: str
) -> None:
    x = account.connect_x(unique("busy"))
    later = _schedule(account, x["id"], "2031-01-01T09:00:00Z")
    sooner = _schedule(account, x["id"], FUTURE)
    account.http.post("/api/posts", json={"content": "a draft", "accountIds": [x["id"]]})

    refused = account.http.delete(f"/api/integrations/{x['id']}")
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["success"] is False
    assert "2 scheduled posts" in body["message"]
    assert "force=true" in body["message"]
    assert [p["id"] for p in body["scheduledPosts"]] == [sooner["id"], later["id"]]
    assert body["scheduledPosts"][0]["scheduledAt"].startswith("2030-07-01T15:00:00")
    assert body["scheduledPosts"][0]["status"] == "scheduled"
    still = account.http.get(f"/api/integrations/{x['id']}").json()["integration"]
    assert still["status"] == "connected"
    credential_id = kairos.app.get_integration(uuid.UUID(x["id"])).credential_id
    assert _credential_rows(database_url, credential_id) == 1


def test_a_forced_disconnect_shreds_the_credential_and_those_posts_fail(
    kairos: Any, pipeline: Any, account: Account, database_url: str
) -> None:
    x = account.connect_x(unique("forced"))
    other = account.connect_x(unique("stays"))
    credential_id = kairos.app.get_integration(uuid.UUID(x["id"])).credential_id
    response = account.http.post(
        "/api/posts",
        json={
            "content": "goes out partly",
            "accountIds": [x["id"], other["id"]],
            "scheduledAt": _soon(2.0),
        },
    )
    post = response.json()["post"]

    forced = account.http.delete(f"/api/integrations/{x['id']}", params={"force": "true"})
    assert forced.status_code == 200, forced.text
    body = forced.json()
    assert body["success"] is True
    assert body["deleted"] is True
    assert body["integration"]["status"] == "disconnected"
    assert [p["id"] for p in body["scheduledPosts"]] == [post["id"]]
    assert _credential_rows(database_url, credential_id) == 0
    assert kairos.app.get_integration(uuid.UUID(x["id"])).credential_id is None
    listed = [i["id"] for i in account.http.get("/api/integrations").json()["integrations"]]
    assert x["id"] not in listed

    finished = _wait_for(account, post["id"])
    assert finished["status"] == "partial"
    results = {r["accountId"]: r for r in finished["results"]}
    assert results[other["id"]]["status"] == "published"
    assert results[x["id"]]["status"] == "failed"
    assert "disconnected" in results[x["id"]]["error"]["message"]


def test_an_account_without_scheduled_posts_disconnects_at_once(
    kairos: Any, account: Account, database_url: str
) -> None:
    x = account.connect_x(unique("free"))
    credential_id = kairos.app.get_integration(uuid.UUID(x["id"])).credential_id
    response = account.http.delete(f"/api/integrations/{x['id']}")
    assert response.status_code == 200, response.text
    assert response.json()["scheduledPosts"] == []
    assert _credential_rows(database_url, credential_id) == 0
    again = account.http.delete(f"/api/integrations/{x['id']}")
    assert again.status_code == 200  # disconnecting twice changes nothing
    types = [
        e["type"] for e in account.http.get(f"/api/integrations/{x['id']}/history").json()["events"]
    ]
    assert types.count("IntegrationDisconnected") == 1
    # A disconnected account can be neither targeted nor switched on.
    post = account.http.post("/api/posts", json={"content": "hi", "accountIds": [x["id"]]})
    assert post.status_code == 400
    assert "disconnected" in post.json()["message"]
    toggle = account.http.patch(f"/api/integrations/{x['id']}", json={"active": True})
    assert toggle.status_code == 409


def test_reconnecting_after_a_disconnect_continues_the_same_integration(
    kairos: Any, account: Account
) -> None:
    username = unique("comeback")
    x = account.connect_x(username)
    collection = account.http.post(
        "/api/collections", json={"name": "Returning", "accountIds": [x["id"]]}
    ).json()["collection"]
    assert account.http.delete(f"/api/integrations/{x['id']}").status_code == 200
    back = account.connect_x(username)
    assert back["id"] == x["id"]
    assert back["status"] == "connected"
    assert kairos.app.get_integration(uuid.UUID(x["id"])).credential_id is not None
    post = account.http.post(
        "/api/posts", json={"content": "back again", "collectionIds": [collection["id"]]}
    )
    assert post.status_code == 201, post.text
    assert post.json()["post"]["accountIds"] == [x["id"]]


# ---- history ----------------------------------------------------------------------------


def test_the_history_lists_every_event_and_no_token(kairos: Any, account: Account) -> None:
    username = unique("story")
    x = account.connect_x(username)
    first_credential = kairos.app.get_integration(uuid.UUID(x["id"])).credential_id
    tokens = kairos.vault.read(first_credential)
    account.http.patch(f"/api/integrations/{x['id']}", json={"active": False})
    account.http.patch(f"/api/integrations/{x['id']}", json={"active": True})
    account.connect_x(username)
    account.http.delete(f"/api/integrations/{x['id']}")

    response = account.http.get(f"/api/integrations/{x['id']}/history")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["integrationId"] == x["id"]
    events = body["events"]
    assert [e["type"] for e in events] == [
        "IntegrationConnected",
        "IntegrationDeactivated",
        "IntegrationActivated",
        "IntegrationReconnected",
        "IntegrationDisconnected",
    ]
    assert [e["version"] for e in events] == [1, 2, 3, 4, 5]
    assert all(e["timestamp"] for e in events)
    connected = events[0]["data"]
    assert connected["account_name"] == username
    assert connected["provider"] == "twitter"
    assert connected["credential_id"] == str(first_credential)
    assert events[4]["data"] == {"reason": "disconnected by the user"}
    for secret in (tokens.access_token, tokens.refresh_token):
        assert secret
        assert secret not in response.text


# ---- another organization's accounts ----------------------------------------------------


def test_another_organizations_integration_is_404_on_every_new_route(
    make_account: Any, database_url: str, kairos: Any
) -> None:
    owner, stranger = make_account("owner"), make_account("stranger")
    x = owner.connect_x(unique("guarded"))
    base = f"/api/integrations/{x['id']}"
    responses = [
        stranger.http.patch(base, json={"active": False}),
        stranger.http.delete(base),
        stranger.http.delete(base, params={"force": "true"}),
        stranger.http.get(f"{base}/history"),
        stranger.http.get("/api/integrations/twitter/auth", params={"integrationId": x["id"]}),
    ]
    for response in responses:
        assert response.status_code == 404, (response.request.url, response.text)
        assert response.json()["success"] is False
    integration = owner.http.get(base).json()["integration"]
    assert integration["status"] == "connected"
    assert integration["active"] is True
    credential_id = kairos.app.get_integration(uuid.UUID(x["id"])).credential_id
    assert _credential_rows(database_url, credential_id) == 1
