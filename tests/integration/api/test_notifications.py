"""In-app notifications over HTTP: what triggers them, reading them, and their read model.

These run on the session's Kairos, which has no SMTP settings: notifications stay in-app.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from projections.notifications import NotificationsView, notification_id
from projections.rebuild import rebuild
from tests.conftest import Account, unique
from tests.integration.api.test_posts import CRAFTED_CURSORS, crafted_cursor
from tests.support.notifications import api_with_notifications, connect_directly, eventually

TERMINAL = {"published", "failed", "partial"}


@pytest.fixture(scope="module")
def notifications_url(kairos: Any) -> Iterator[str]:
    from interfaces.serving import serve

    with serve(api_with_notifications(kairos)) as url:
        yield url


@pytest.fixture
def inbox(notifications_url: str) -> Iterator[Any]:
    clients: list[httpx.Client] = []

    def client_of(account: Account) -> httpx.Client:
        http = httpx.Client(
            base_url=notifications_url,
            headers={"Authorization": f"Bearer {account.token}"},
            timeout=15,
        )
        clients.append(http)
        return http

    yield client_of
    for client in clients:
        client.close()


def listed(http: httpx.Client, **params: Any) -> dict[str, Any]:
    response = http.get("/api/notifications", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_an_expired_connection_is_notified_in_app_and_not_queued_for_email(
    kairos: Any, account: Account, inbox: Any
) -> None:
    name = unique("expired")
    integration = connect_directly(kairos, account.organization_id, name)
    integration.record_token_expired("the refresh token was revoked")
    kairos.app.save_all(integration)

    body = listed(inbox(account))
    assert body["success"] is True
    assert body["unreadCount"] == 1
    assert body["nextCursor"] is None
    [notification] = body["notifications"]
    expected_id = notification_id(integration.id, integration.version)
    assert notification == {
        "id": str(expected_id),
        "kind": "connection_expired",
        "title": f"Reconnect @{name} on X: the connection expired",
        "body": notification["body"],
        "subjectType": "integration",
        "subjectId": str(integration.id),
        "createdAt": notification["createdAt"],
        "readAt": None,
    }
    assert "the refresh token was revoked" in notification["body"]
    assert datetime.fromisoformat(notification["createdAt"]) == integration.modified_on
    assert kairos.outbox is None  # no SMTP settings: nothing sends, nothing fails
    with psycopg.connect(kairos.settings.database_url) as conn:
        queued = conn.execute(
            "SELECT count(*) FROM email_outbox WHERE notification_id = %s", (expected_id,)
        ).fetchone()
    assert queued == (0,)


def test_expiring_and_errored_connections_are_notified(
    kairos: Any, account: Account, inbox: Any
) -> None:
    name = unique("warned")
    integration = connect_directly(kairos, account.organization_id, name)
    integration.warn_expiring(datetime(2031, 5, 6, 7, 8, tzinfo=UTC))
    integration.record_error(operation="health_check", message="X answered 503")
    integration.record_checked()  # not worth a notification
    kairos.app.save_all(integration)

    notifications = listed(inbox(account))["notifications"]
    assert [(n["kind"], n["title"]) for n in notifications] == [
        ("connection_errored", f"Problem with @{name} on X"),
        ("connection_expiring", f"Reconnect @{name} on X before 06 May 2031"),
    ]
    assert "during health check: X answered 503." in notifications[0]["body"]
    assert "expires on Tuesday 06 May 2031 at 07:08 UTC" in notifications[1]["body"]


def test_an_account_stuck_in_error_is_notified_once_until_it_recovers(
    kairos: Any, account: Account, inbox: Any
) -> None:
    integration = connect_directly(kairos, account.organization_id, unique("stuck"))
    for attempt in range(3):
        integration.record_error(operation="refresh", message=f"X answered 503 ({attempt})")
    integration.record_checked()
    integration.record_error(operation="health_check", message="X answered 500")
    integration.record_error(operation="health_check", message="X answered 500 again")
    kairos.app.save_all(integration)

    notifications = listed(inbox(account))["notifications"]
    assert [n["body"].split(": ", 1)[1].split(".")[0] for n in notifications] == [
        "X answered 500",
        "X answered 503 (0)",
    ]


def test_failed_and_partial_posts_name_the_accounts_that_failed(
    pipeline: Any, kairos: Any, account: Account, sandbox_url: str, inbox: Any
) -> None:
    revoked, healthy = unique("revoked"), unique("healthy")
    bad = account.connect_x(revoked)
    good = account.connect_x(healthy)
    httpx.post(f"{sandbox_url}/x/_sandbox/users/{revoked}/revoke", json={}).raise_for_status()
    at = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    failed = account.http.post(
        "/api/posts",
        json={
            "content": "Only to the revoked account",
            "accountIds": [bad["id"]],
            "scheduledAt": at,
        },
    ).json()["post"]
    partial = account.http.post(
        "/api/posts",
        json={
            "content": "To both accounts",
            "accountIds": [bad["id"], good["id"]],
            "scheduledAt": at,
        },
    ).json()["post"]

    def finished() -> bool:
        statuses = [
            account.http.get(f"/api/posts/{p['id']}").json()["post"]["status"]
            for p in (failed, partial)
        ]
        return all(s in TERMINAL for s in statuses)

    eventually(finished, timeout=30, what="both posts to reach an outcome")

    notifications = listed(inbox(account))["notifications"]
    by_subject = {n["subjectId"]: n for n in notifications if n["subjectType"] == "post"}
    failure = by_subject[failed["id"]]
    assert failure["kind"] == "post_failed"
    assert failure["subjectType"] == "post"
    assert failure["title"] == 'Your post "Only to the revoked account" could not be published'
    assert f"- @{revoked} on X: " in failure["body"]
    assert f"Reconnect @{revoked} on X, then republish the post." in failure["body"]
    partly = by_subject[partial["id"]]
    assert partly["kind"] == "post_partial"
    assert partly["title"] == 'Your post "To both accounts" was published to 1 of 2 accounts'
    assert f"- @{revoked} on X: " in partly["body"]
    assert f"@{healthy}" not in partly["body"]
    about_the_account = [n for n in notifications if n["subjectId"] == bad["id"]]
    assert any(
        n["title"] == f"Reconnect @{revoked} on X: the connection expired"
        for n in about_the_account
    ), about_the_account
    assert not any(n["subjectId"] == good["id"] for n in notifications)


def test_read_one_read_all_unread_only_and_pages(kairos: Any, account: Account, inbox: Any) -> None:
    http = inbox(account)
    integration = connect_directly(kairos, account.organization_id, unique("pages"))
    for n in range(5):
        integration.record_error(operation="refresh", message=f"failure {n}")
        integration.record_checked()  # recovered: the next error is news again
        kairos.app.save_all(integration)
    errors = range(2, 12, 2)  # the versions of the five IntegrationErrored events
    newest_first = [str(notification_id(integration.id, v)) for v in reversed(errors)]

    seen: list[str] = []
    cursor = None
    for expected_size in (2, 2, 1):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = listed(http, **params)
        assert len(page["notifications"]) == expected_size
        assert page["unreadCount"] == 5
        seen += [n["id"] for n in page["notifications"]]
        cursor = page["nextCursor"]
    assert cursor is None
    assert seen == newest_first

    first = http.post(f"/api/notifications/{newest_first[1]}/read")
    assert first.status_code == 200, first.text
    read_at = first.json()["notification"]["readAt"]
    assert read_at is not None
    time.sleep(0.01)
    again = http.post(f"/api/notifications/{newest_first[1]}/read").json()["notification"]
    assert again["readAt"] == read_at  # the first read time is kept

    unread = listed(http, unread="true")
    assert [n["id"] for n in unread["notifications"]] == [
        i for i in newest_first if i != newest_first[1]
    ]
    assert unread["unreadCount"] == 4
    everything = listed(http)["notifications"]
    assert [n["readAt"] is not None for n in everything] == [False, True, False, False, False]

    marked = http.post("/api/notifications/read-all")
    assert marked.status_code == 200, marked.text
    assert marked.json() == {"success": True, "markedRead": 4, "unreadCount": 0}
    assert listed(http, unread="true") == {
        "success": True,
        "notifications": [],
        "nextCursor": None,
        "unreadCount": 0,
    }
    assert http.post("/api/notifications/read-all").json()["markedRead"] == 0


def test_another_organizations_notification_is_not_found(
    kairos: Any, make_account: Any, inbox: Any
) -> None:
    owner, stranger = make_account("owner"), make_account("stranger")
    integration = connect_directly(kairos, owner.organization_id, unique("private"))
    integration.record_token_expired("revoked")
    kairos.app.save_all(integration)
    [mine] = listed(inbox(owner))["notifications"]

    http = inbox(stranger)
    response = http.post(f"/api/notifications/{mine['id']}/read")
    assert response.status_code == 404
    assert response.json()["success"] is False
    assert http.post(f"/api/notifications/{uuid.uuid4()}/read").status_code == 404
    assert listed(http) == {
        "success": True,
        "notifications": [],
        "nextCursor": None,
        "unreadCount": 0,
    }
    assert http.post("/api/notifications/read-all").json()["markedRead"] == 0
    assert listed(inbox(owner))["notifications"][0]["readAt"] is None
    bad_cursor = http.get("/api/notifications", params={"cursor": "not-a-cursor"})
    assert bad_cursor.status_code == 400
    assert bad_cursor.json()["field"] == "cursor"
    assert http.post("/api/notifications/not-a-uuid/read").status_code == 404


def test_a_rebuild_reproduces_notifications_and_keeps_read_marks(
    kairos: Any, account: Account, inbox: Any
) -> None:
    http = inbox(account)
    integration = connect_directly(kairos, account.organization_id, unique("rebuilt"))
    integration.record_error(operation="refresh", message="first")
    integration.record_token_expired("then expired")
    kairos.app.save_all(integration)
    before = listed(http)["notifications"]
    http.post(f"/api/notifications/{before[0]['id']}/read").raise_for_status()
    before = listed(http)["notifications"]

    view = kairos.notifications_view
    assert view.catch_up_to(kairos.app.last_position(), timeout=10)
    factory = lambda prefix: NotificationsView(kairos.datastore, kairos.app, prefix=prefix)  # noqa: E731
    report = rebuild(view, factory, replace=True)
    assert report.identical, report.differences
    assert report.replaced
    assert listed(http)["notifications"] == before  # same ids, same text, read marks kept
    assert rebuild(view, factory).identical


@pytest.mark.parametrize("value", CRAFTED_CURSORS)
def test_a_crafted_cursor_is_refused_naming_the_cursor(
    account: Account, inbox: Any, value: Any
) -> None:
    response = inbox(account).get("/api/notifications", params={"cursor": crafted_cursor(value)})

    assert response.status_code == 400, response.text
    assert response.json()["success"] is False
    assert response.json()["field"] == "cursor"
