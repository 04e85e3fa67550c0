"""The posts API as the seeds document it, over real HTTP, on real PostgreSQL."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import Account, unique

FUTURE = "2030-07-01T15:00:00.000Z"


def _create(account: Account, **body: Any) -> Any:
    return account.http.post("/api/posts", json=body)


@pytest.fixture
def x_account(account: Account) -> dict[str, Any]:
    return account.connect_x(unique("poster"))


def test_a_post_with_a_time_starts_scheduled_and_one_without_is_a_draft(
    account: Account, x_account: dict[str, Any]
) -> None:
    scheduled = _create(account, content="timed", accountIds=[x_account["id"]], scheduledAt=FUTURE)
    draft = _create(account, content="untimed", accountIds=[x_account["id"]])
    assert scheduled.status_code == 201
    assert draft.status_code == 201
    assert scheduled.json()["success"] is True
    assert scheduled.json()["post"]["status"] == "scheduled"
    assert scheduled.json()["post"]["scheduledAt"].startswith("2030-07-01T15:00:00")
    assert draft.json()["post"]["status"] == "draft"
    assert draft.json()["post"]["scheduledAt"] is None
    result = scheduled.json()["post"]["results"][0]
    assert result["accountId"] == x_account["id"]
    assert result["provider"] == "twitter"
    assert result["status"] == "pending"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2001-01-01T00:00:00Z", "in the future"),
        (1893456000, "ISO 8601"),
        ("1893456000", "ISO 8601"),
        ("next tuesday", "ISO 8601"),
        ("2030-07-01", "include a time"),
        (True, "ISO 8601"),
    ],
)
def test_scheduled_at_must_be_a_strict_future_iso_timestamp(
    account: Account, x_account: dict[str, Any], value: Any, fragment: str
) -> None:
    response = _create(account, content="hi", accountIds=[x_account["id"]], scheduledAt=value)
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert body["field"] == "scheduledAt"
    assert fragment in body["message"]


def test_targets_by_platform_pick_every_connected_account(account: Account) -> None:
    first = account.connect_x(unique("first"))
    second = account.connect_x(unique("second"))
    response = _create(account, content="to all", platforms=["twitter"])
    assert response.status_code == 201, response.text
    assert sorted(response.json()["post"]["accountIds"]) == sorted([first["id"], second["id"]])
    assert response.json()["post"]["platforms"] == ["twitter"]


def test_platform_targets_need_a_connected_account(account: Account) -> None:
    response = _create(account, content="nobody home", platforms=["twitter"])
    assert response.status_code == 400
    assert response.json()["field"] == "platforms[0]"
    assert "connect one" in response.json()["message"]
    unknown = _create(account, content="x", platforms=["myspace"])
    assert unknown.status_code == 400
    assert "unknown platform" in unknown.json()["message"]


def test_account_ids_must_belong_to_the_organization(make_account: Any) -> None:
    owner, stranger = make_account("owner"), make_account("stranger")
    theirs = owner.connect_x(unique("theirs"))
    response = _create(stranger, content="hijack", accountIds=[theirs["id"]])
    assert response.status_code == 400
    assert response.json()["field"] == "accountIds[0]"
    assert "unknown account" in response.json()["message"]
    missing = _create(stranger, content="x", accountIds=[str(uuid.uuid4())])
    assert missing.status_code == 400


def test_no_target_at_all_is_refused(account: Account) -> None:
    response = _create(account, content="into the void")
    assert response.status_code == 400
    assert response.json()["field"] == "accountIds"


def test_x_counts_characters_its_own_way(account: Account, x_account: dict[str, Any]) -> None:
    url = "https://example.com/" + "a" * 200
    fits = _create(account, content=f"{'a' * 250} {url}", accountIds=[x_account["id"]])
    assert fits.status_code == 201, fits.text
    too_long = _create(account, content="a" * 281, accountIds=[x_account["id"]])
    assert too_long.status_code == 400
    assert too_long.json()["field"] == "content"
    assert "281" in too_long.json()["message"]
    wide = _create(account, content="日" * 141, accountIds=[x_account["id"]])
    assert wide.status_code == 400
    part = _create(account, content="ok", thread=["fine", "b" * 281], accountIds=[x_account["id"]])
    assert part.status_code == 400
    assert part.json()["field"] == "thread[1]"
    many = _create(account, content="ok", thread=["p"] * 25, accountIds=[x_account["id"]])
    assert many.status_code == 400
    assert many.json()["field"] == "thread"


def test_an_expired_account_cannot_be_targeted(
    kairos: Any, account: Account, x_account: dict[str, Any]
) -> None:
    integration = kairos.app.get_integration(uuid.UUID(x_account["id"]))
    integration.record_token_expired("revoked on the platform")
    kairos.app.save_all(integration)
    response = _create(account, content="hello", accountIds=[x_account["id"]], scheduledAt=FUTURE)
    assert response.status_code == 400
    assert "reconnect" in response.json()["message"]
    assert response.json()["field"] == "accountIds[0]"
    listed = account.http.get("/api/integrations").json()["integrations"]
    assert next(i for i in listed if i["id"] == x_account["id"])["status"] == "expired"
    by_platform = _create(account, content="hello", platforms=["twitter"])
    assert by_platform.status_code == 400


def test_bad_bodies_get_the_error_envelope(account: Account, x_account: dict[str, Any]) -> None:
    unknown = _create(account, content="x", accountIds=[x_account["id"]], scheduled_at=FUTURE)
    assert unknown.status_code == 400
    assert unknown.json() == {
        "success": False,
        "message": "unknown field 'scheduled_at'",
        "field": "scheduled_at",
    }
    not_json = account.http.post(
        "/api/posts", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["success"] is False
    missing = account.http.post("/api/posts", json={"accountIds": [x_account["id"]]})
    assert missing.status_code == 400
    assert missing.json()["field"] == "content"
    wrong_type = _create(account, content=42, accountIds=[x_account["id"]])
    assert wrong_type.status_code == 400


def test_oversized_bodies_get_413(account: Account, x_account: dict[str, Any]) -> None:
    response = _create(account, content="x" * 2_000_000, accountIds=[x_account["id"]])
    assert response.status_code == 413
    assert response.json()["success"] is False


def test_list_is_newest_first_with_cursor_pages_and_status_filter(
    account: Account, x_account: dict[str, Any]
) -> None:
    ids = []
    for index in range(5):
        body: dict[str, Any] = {"content": f"post {index}", "accountIds": [x_account["id"]]}
        if index % 2 == 0:
            body["scheduledAt"] = FUTURE
        response = _create(account, **body)
        assert response.status_code == 201
        ids.append(response.json()["post"]["id"])
    first = account.http.get("/api/posts", params={"limit": 2}).json()
    assert [p["id"] for p in first["posts"]] == ids[::-1][:2]
    second = account.http.get(
        "/api/posts", params={"limit": 2, "cursor": first["nextCursor"]}
    ).json()
    assert [p["id"] for p in second["posts"]] == ids[::-1][2:4]
    third = account.http.get(
        "/api/posts", params={"limit": 2, "cursor": second["nextCursor"]}
    ).json()
    assert [p["id"] for p in third["posts"]] == ids[::-1][4:]
    assert third["nextCursor"] is None
    drafts = account.http.get("/api/posts", params={"status": "draft"}).json()["posts"]
    assert sorted(p["id"] for p in drafts) == sorted([ids[1], ids[3]])
    bad_status = account.http.get("/api/posts", params={"status": "SCHEDULED"})
    assert bad_status.status_code == 400
    bad_cursor = account.http.get("/api/posts", params={"cursor": "bm9wZQ"})
    assert bad_cursor.status_code == 400
    assert bad_cursor.json()["field"] == "cursor"


def test_a_created_post_is_listed_at_once(account: Account, x_account: dict[str, Any]) -> None:
    for index in range(20):
        created = _create(account, content=f"ryw {index}", accountIds=[x_account["id"]])
        listed = account.http.get("/api/posts", params={"limit": 1}).json()["posts"]
        assert listed[0]["id"] == created.json()["post"]["id"]


def test_edit_schedule_and_unschedule(account: Account, x_account: dict[str, Any]) -> None:
    post = _create(account, content="draft", accountIds=[x_account["id"]]).json()["post"]
    path = f"/api/posts/{post['id']}"
    edited = account.http.patch(path, json={"content": "edited"})
    assert edited.status_code == 200
    assert edited.json()["post"]["content"] == "edited"
    assert edited.json()["post"]["status"] == "draft"
    scheduled = account.http.patch(path, json={"scheduledAt": FUTURE}).json()["post"]
    assert scheduled["status"] == "scheduled"
    moved = account.http.patch(path, json={"scheduledAt": "2031-01-01T00:00:00Z"}).json()["post"]
    assert moved["scheduledAt"].startswith("2031-01-01")
    back = account.http.patch(path, json={"scheduledAt": None}).json()["post"]
    assert back["status"] == "draft"
    assert back["scheduledAt"] is None
    past = account.http.patch(path, json={"scheduledAt": "2000-01-01T00:00:00Z"})
    assert past.status_code == 400
    too_long = account.http.patch(path, json={"content": "z" * 300})
    assert too_long.status_code == 400
    assert account.http.get(path).json()["post"]["content"] == "edited"


def test_delete_cancels_and_keeps_history(account: Account, x_account: dict[str, Any]) -> None:
    post = _create(account, content="soon gone", accountIds=[x_account["id"]], scheduledAt=FUTURE)
    post_id = post.json()["post"]["id"]
    deleted = account.http.delete(f"/api/posts/{post_id}")
    assert deleted.status_code == 200
    assert deleted.json() == {"success": True, "id": post_id, "deleted": True}
    assert account.http.get(f"/api/posts/{post_id}").status_code == 404
    assert account.http.delete(f"/api/posts/{post_id}").status_code == 404
    listed = account.http.get("/api/posts").json()["posts"]
    assert post_id not in [p["id"] for p in listed]
    history = account.http.get(f"/api/posts/{post_id}/history").json()
    assert [e["type"] for e in history["events"]] == ["PostDrafted", "PostScheduled", "PostDeleted"]


def test_history_lists_every_event_in_order(account: Account, x_account: dict[str, Any]) -> None:
    post_id = _create(account, content="v1", accountIds=[x_account["id"]]).json()["post"]["id"]
    account.http.patch(f"/api/posts/{post_id}", json={"content": "v2"})
    account.http.patch(f"/api/posts/{post_id}", json={"scheduledAt": FUTURE})
    history = account.http.get(f"/api/posts/{post_id}/history").json()
    assert history["success"] is True
    assert history["postId"] == post_id
    events = history["events"]
    assert [e["type"] for e in events] == ["PostDrafted", "PostEdited", "PostScheduled"]
    assert [e["version"] for e in events] == [1, 2, 3]
    assert events[0]["data"]["content"] == "v1"
    assert events[1]["data"]["content"] == "v2"
    assert events[2]["data"]["scheduled_at"].startswith("2030-07-01T15:00:00")
    stamps = [datetime.fromisoformat(e["timestamp"]) for e in events]
    assert stamps == sorted(stamps)


def test_as_of_returns_the_post_as_it_stood(account: Account, x_account: dict[str, Any]) -> None:
    before_creation = datetime.now(UTC) - timedelta(seconds=1)
    post_id = _create(account, content="original", accountIds=[x_account["id"]]).json()["post"][
        "id"
    ]
    time.sleep(0.05)
    between = datetime.now(UTC)
    time.sleep(0.05)
    account.http.patch(f"/api/posts/{post_id}", json={"content": "rewritten"})
    then = account.http.get(f"/api/posts/{post_id}", params={"asOf": between.isoformat()})
    assert then.status_code == 200
    assert then.json()["post"]["content"] == "original"
    now = account.http.get(f"/api/posts/{post_id}").json()["post"]
    assert now["content"] == "rewritten"
    too_early = account.http.get(
        f"/api/posts/{post_id}", params={"asOf": before_creation.isoformat()}
    )
    assert too_early.status_code == 404
    garbage = account.http.get(f"/api/posts/{post_id}", params={"asOf": "yesterday"})
    assert garbage.status_code == 400
    assert garbage.json()["field"] == "asOf"


def test_idempotency_key_replays_and_refuses_another_body(
    make_account: Any,
) -> None:
    account, other = make_account(), make_account()
    x = account.connect_x(unique("idem"))
    other_x = other.connect_x(unique("idem_other"))
    key = {"Idempotency-Key": f"key-{uuid.uuid4()}"}
    body = {"content": "exactly once", "accountIds": [x["id"]], "scheduledAt": FUTURE}
    first = account.http.post("/api/posts", json=body, headers=key)
    again = account.http.post("/api/posts", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json()["post"]["id"] == again.json()["post"]["id"]
    changed = account.http.post("/api/posts", json={**body, "content": "changed"}, headers=key)
    assert changed.status_code == 422
    assert "different request body" in changed.json()["message"]
    elsewhere = other.http.post(
        "/api/posts", json={**body, "accountIds": [other_x["id"]]}, headers=key
    )
    assert elsewhere.status_code == 201
    assert elsewhere.json()["post"]["id"] != first.json()["post"]["id"]
    listed = [p["id"] for p in account.http.get("/api/posts").json()["posts"]]
    assert listed.count(first.json()["post"]["id"]) == 1


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"content": "mine now"}),
        ("DELETE", "", None),
        ("GET", "/history", None),
        ("GET", "?asOf=2030-01-01T00:00:00Z", None),
    ],
)
def test_another_organizations_post_is_404(
    make_account: Any, method: str, suffix: str, body: Any
) -> None:
    owner, stranger = make_account("owner"), make_account("stranger")
    x = owner.connect_x(unique("owned"))
    post_id = _create(owner, content="private", accountIds=[x["id"]]).json()["post"]["id"]
    response = stranger.http.request(method, f"/api/posts/{post_id}{suffix}", json=body)
    assert response.status_code == 404
    assert response.json() == {"success": False, "message": f"post {post_id} not found"}
    assert owner.http.get(f"/api/posts/{post_id}").json()["post"]["content"] == "private"
    assert post_id not in [p["id"] for p in stranger.http.get("/api/posts").json()["posts"]]


def test_ids_that_are_not_uuids_are_404(account: Account) -> None:
    assert account.http.get("/api/posts/not-a-uuid").status_code == 404
    assert account.http.get(f"/api/posts/{uuid.uuid4()}").status_code == 404


def test_nul_characters_are_refused_before_they_reach_the_event_store(
    kairos: Any, account: Account, x_account: dict[str, Any]
) -> None:
    before = kairos.app.last_position()
    for body in (
        {"content": "a\x00b", "accountIds": [x_account["id"]]},
        {"content": "ok", "thread": ["fine", "b\x00"], "accountIds": [x_account["id"]]},
        {"content": "ok", "platforms": ["twit\x00ter"]},
    ):
        response = _create(account, **body)
        assert response.status_code == 400, response.text
        assert "NUL" in response.json()["message"]
    assert account.http.post("/api/organizations", json={"name": "a\x00b"}).status_code == 400
    assert kairos.app.last_position() == before
    assert account.http.get("/readyz").status_code == 200


def crafted_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


CRAFTED_CURSORS = [
    ["2024-01-01T00:00:00", 1],
    ["2024-01-01T00:00:00+00:00", ["not", "an", "id"]],
    [1, str(uuid.uuid4())],
    ["2024-01-01T00:00:00", str(uuid.uuid4())],
    ["2024-01-01T00:00:00+00:00", str(uuid.uuid4()), "extra"],
    {"created": "2024-01-01T00:00:00+00:00", "id": str(uuid.uuid4())},
    None,
]
"""Well-formed base64 of JSON no page ever issued: wrong types, arity, or a naive time."""


@pytest.mark.parametrize("value", CRAFTED_CURSORS)
def test_a_crafted_cursor_is_refused_naming_the_cursor(account: Account, value: Any) -> None:
    response = account.http.get("/api/posts", params={"cursor": crafted_cursor(value)})

    assert response.status_code == 400, response.text
    assert response.json()["success"] is False
    assert response.json()["field"] == "cursor"
