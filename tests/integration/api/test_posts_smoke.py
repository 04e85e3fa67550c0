from __future__ import annotations

from typing import Any


def test_seed_create_then_list_shows_the_post(account: Any) -> None:
    x = account.connect_x("smoke_user_1")
    created = account.http.post(
        "/api/posts",
        json={
            "content": "Launch day! 🚀",
            "accountIds": [x["id"]],
            "thread": ["Tweet 2 of your X thread…", "Tweet 3 — up to 24 parts, 280 chars each"],
            "scheduledAt": "2030-07-01T15:00:00.000Z",
        },
    )
    assert created.status_code == 201, created.text
    post = created.json()["post"]
    assert post["status"] == "scheduled"
    listed = account.http.get("/api/posts").json()
    assert listed["success"] is True
    assert [p["id"] for p in listed["posts"]] == [post["id"]]
