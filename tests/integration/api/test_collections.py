"""Collections over real HTTP: named groups of accounts, usable as a post target."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.conftest import Account, unique

FUTURE = "2030-07-01T15:00:00.000Z"


def _create(account: Account, name: str, account_ids: list[str] | None = None) -> Any:
    body: dict[str, Any] = {"name": name}
    if account_ids is not None:
        body["accountIds"] = account_ids
    return account.http.post("/api/collections", json=body)


def test_a_collection_is_created_listed_renamed_and_deleted(account: Account) -> None:
    first = account.connect_x(unique("coll_a"))
    second = account.connect_x(unique("coll_b"))
    created = _create(account, "Clients", [first["id"], second["id"], first["id"]])
    assert created.status_code == 201, created.text
    collection = created.json()["collection"]
    assert created.json()["success"] is True
    assert collection["name"] == "Clients"
    assert collection["accountIds"] == [first["id"], second["id"]]  # once each, in order
    collection_id = collection["id"]

    listed = account.http.get("/api/collections").json()["collections"]
    assert [c["id"] for c in listed] == [collection_id]
    assert account.http.get(f"/api/collections/{collection_id}").json()["collection"] == collection

    renamed = account.http.patch(f"/api/collections/{collection_id}", json={"name": "Agency"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["collection"]["name"] == "Agency"
    assert renamed.json()["collection"]["accountIds"] == [first["id"], second["id"]]

    deleted = account.http.delete(f"/api/collections/{collection_id}")
    assert deleted.status_code == 200
    assert deleted.json() == {"success": True, "id": collection_id, "deleted": True}
    assert account.http.get(f"/api/collections/{collection_id}").status_code == 404
    assert account.http.get("/api/collections").json()["collections"] == []
    # The accounts themselves stay connected.
    assert account.http.get(f"/api/integrations/{first['id']}").json()["integration"]["status"] == (
        "connected"
    )


def test_accounts_are_added_and_removed(account: Account) -> None:
    first = account.connect_x(unique("add_a"))
    second = account.connect_x(unique("add_b"))
    collection_id = _create(account, "Group").json()["collection"]["id"]
    assert account.http.get(f"/api/collections/{collection_id}").json()["collection"][
        "accountIds"
    ] == ([])

    added = account.http.post(
        f"/api/collections/{collection_id}/accounts", json={"accountIds": [first["id"]]}
    )
    assert added.status_code == 200, added.text
    again = account.http.post(
        f"/api/collections/{collection_id}/accounts",
        json={"accountIds": [second["id"], first["id"]]},
    )
    assert again.json()["collection"]["accountIds"] == [first["id"], second["id"]]

    removed = account.http.delete(f"/api/collections/{collection_id}/accounts/{first['id']}")
    assert removed.status_code == 200, removed.text
    assert removed.json()["collection"]["accountIds"] == [second["id"]]
    not_a_member = account.http.delete(f"/api/collections/{collection_id}/accounts/{first['id']}")
    assert not_a_member.status_code == 404
    assert not_a_member.json()["success"] is False


def test_names_are_unique_per_organization_ignoring_case(make_account: Any) -> None:
    owner, other = make_account("names"), make_account("names2")
    assert _create(owner, "Clients").status_code == 201
    clash = _create(owner, "clients")
    assert clash.status_code == 409
    assert clash.json()["success"] is False
    assert "already exists" in clash.json()["message"]
    second = _create(owner, "Friends").json()["collection"]["id"]
    rename_clash = owner.http.patch(f"/api/collections/{second}", json={"name": "CLIENTS"})
    assert rename_clash.status_code == 409
    assert _create(other, "Clients").status_code == 201  # another organization may use it
    same = owner.http.patch(f"/api/collections/{second}", json={"name": "Friends"})
    assert same.status_code == 200  # renaming to its own name is no clash


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({}, "name"),
        ({"name": 7}, "name"),
        ({"name": "ok", "accountIds": ["not-a-uuid"]}, "accountIds[0]"),
        ({"name": "ok", "accountIds": [str(uuid.uuid4())]}, "accountIds[0]"),
        ({"name": "ok", "colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_400_naming_the_field(
    account: Account, body: dict[str, Any], field: str
) -> None:
    response = account.http.post("/api/collections", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["success"] is False
    assert response.json()["field"] == field


def test_accounts_must_belong_to_the_organization(make_account: Any) -> None:
    owner, stranger = make_account("mine"), make_account("theirs")
    theirs = stranger.connect_x(unique("theirs"))
    refused = _create(owner, "Borrowed", [theirs["id"]])
    assert refused.status_code == 400
    assert refused.json()["field"] == "accountIds[0]"
    collection_id = _create(owner, "Mine").json()["collection"]["id"]
    adding = owner.http.post(
        f"/api/collections/{collection_id}/accounts", json={"accountIds": [theirs["id"]]}
    )
    assert adding.status_code == 400
    assert adding.json()["field"] == "accountIds[0]"
    empty = owner.http.post(f"/api/collections/{collection_id}/accounts", json={"accountIds": []})
    assert empty.status_code == 400
    assert empty.json()["field"] == "accountIds"


def test_another_organizations_collection_is_404_on_every_route(make_account: Any) -> None:
    owner, stranger = make_account("owner"), make_account("stranger")
    x = owner.connect_x(unique("guarded"))
    mine = stranger.connect_x(unique("strangers"))
    collection_id = _create(owner, "Private", [x["id"]]).json()["collection"]["id"]
    base = f"/api/collections/{collection_id}"
    responses = [
        stranger.http.get(base),
        stranger.http.patch(base, json={"name": "Taken over"}),
        stranger.http.delete(base),
        stranger.http.post(f"{base}/accounts", json={"accountIds": [mine["id"]]}),
        stranger.http.delete(f"{base}/accounts/{x['id']}"),
    ]
    for response in responses:
        assert response.status_code == 404, response.request.method
        assert response.json()["success"] is False
    assert stranger.http.get("/api/collections").json()["collections"] == []
    untouched = owner.http.get(base).json()["collection"]
    assert untouched["name"] == "Private"
    assert untouched["accountIds"] == [x["id"]]


def test_every_change_is_in_the_audit_trail(account: Account, database_url: str) -> None:
    x = account.connect_x(unique("audited"))
    collection_id = _create(account, "Audited").json()["collection"]["id"]
    base = f"/api/collections/{collection_id}"
    account.http.patch(base, json={"name": "Audited 2"})
    account.http.post(f"{base}/accounts", json={"accountIds": [x["id"]]})
    account.http.delete(f"{base}/accounts/{x['id']}")
    account.http.delete(base)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT action, actor_user_id, organization_id, details FROM audit_log "
            "WHERE subject = %s ORDER BY id",
            (collection_id,),
        ).fetchall()
    assert [row[0] for row in rows] == [
        "collection.created",
        "collection.renamed",
        "collection.accounts_added",
        "collection.account_removed",
        "collection.deleted",
    ]
    assert all(row[1] == account.user_id and row[2] == account.organization_id for row in rows)
    assert rows[1][3] == {"name": "Audited 2", "previous": "Audited"}


# ---- as a post target --------------------------------------------------------------------


def test_a_post_aimed_at_a_collection_targets_its_active_connected_accounts(
    account: Account,
) -> None:
    active = account.connect_x(unique("in_on"))
    paused = account.connect_x(unique("in_off"))
    outside = account.connect_x(unique("outside"))
    collection_id = _create(account, "Launch", [active["id"], paused["id"]]).json()["collection"][
        "id"
    ]
    account.http.patch(f"/api/integrations/{paused['id']}", json={"active": False})
    response = account.http.post(
        "/api/posts",
        json={"content": "to the group", "collectionIds": [collection_id], "scheduledAt": FUTURE},
    )
    assert response.status_code == 201, response.text
    post = response.json()["post"]
    assert post["accountIds"] == [active["id"]]
    assert post["status"] == "scheduled"

    # Collections combine with explicit accounts, each account once.
    both = account.http.post(
        "/api/posts",
        json={
            "content": "both",
            "accountIds": [outside["id"], active["id"]],
            "collectionIds": [collection_id],
        },
    )
    assert both.status_code == 201, both.text
    assert sorted(both.json()["post"]["accountIds"]) == sorted([outside["id"], active["id"]])

    # Editing a post can re-aim it at a collection.
    draft = account.http.post(
        "/api/posts", json={"content": "re-aim me", "accountIds": [outside["id"]]}
    ).json()["post"]
    edited = account.http.patch(
        f"/api/posts/{draft['id']}", json={"collectionIds": [collection_id]}
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["post"]["accountIds"] == [active["id"]]


def test_a_collection_without_usable_accounts_is_a_400_naming_it(
    make_account: Any,
) -> None:
    account, stranger = make_account("empty"), make_account("nosy")
    x = account.connect_x(unique("lonely"))
    empty = _create(account, "Empty").json()["collection"]["id"]
    paused = _create(account, "Paused", [x["id"]]).json()["collection"]["id"]
    account.http.patch(f"/api/integrations/{x['id']}", json={"active": False})
    for collection_id in (empty, paused):
        response = account.http.post(
            "/api/posts", json={"content": "nobody", "collectionIds": [collection_id]}
        )
        assert response.status_code == 400, response.text
        assert response.json()["field"] == "collectionIds[0]"
        assert "no connected, active account" in response.json()["message"]
    unknown = account.http.post(
        "/api/posts", json={"content": "who", "collectionIds": [str(uuid.uuid4())]}
    )
    assert unknown.status_code == 400
    assert unknown.json()["field"] == "collectionIds[0]"
    assert "unknown collection" in unknown.json()["message"]
    # Another organization's collection is as unknown as a made-up id.
    theirs = stranger.http.post(
        "/api/posts", json={"content": "borrowed", "collectionIds": [paused]}
    )
    assert theirs.status_code == 400
    assert theirs.json()["field"] == "collectionIds[0]"
    assert "unknown collection" in theirs.json()["message"]
