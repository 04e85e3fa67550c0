"""Read models: exactly-once batches, recovery from a killed connection, verified rebuilds."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from application.posts import PostInput
from projections.base import StaleBatch
from projections.posts import PostsView
from projections.rebuild import rebuild
from projections.runner import ProjectionRunner
from tests.conftest import Account, unique


def _post(kairos: Any, account: Account, account_id: str, content: str) -> uuid.UUID:
    saved = kairos.posts.create(
        account.organization_id,
        account.user_id,
        PostInput(content=content, account_ids=[uuid.UUID(account_id)]),
    )
    return uuid.UUID(str(saved.post.id))


def _row_count(database_url: str, table: str, post_id: uuid.UUID) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE id = %s", (post_id,)).fetchone()
    assert row is not None
    return int(row[0])


def test_a_batch_is_applied_once(kairos: Any, account: Account) -> None:
    x = account.connect_x(unique("once"))
    _post(kairos, account, x["id"], "tracked")
    assert kairos.posts_view.catch_up_to(kairos.app.last_position())
    position = kairos.posts_view.position
    already_applied = kairos.app.recorder.select_notifications(start=position, limit=1)
    with pytest.raises(StaleBatch):
        kairos.posts_view.process(already_applied)
    assert kairos.posts_view.position == position


def test_the_runner_survives_its_listen_connection_being_killed(
    kairos: Any, account: Account, database_url: str
) -> None:
    x = account.connect_x(unique("killed"))
    runner = next(r for r in kairos.runners if r.view.name == "posts")
    restarts = runner.restarts
    with psycopg.connect(database_url, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query ILIKE 'LISTEN%%'"
        ).fetchall()
    assert killed, "no LISTEN connection found to kill"
    post_id = _post(kairos, account, x["id"], "after the kill")
    deadline = time.monotonic() + 15
    while _row_count(database_url, "posts", post_id) == 0:
        assert time.monotonic() < deadline, "the projection did not recover"
        time.sleep(0.05)
    assert runner.alive
    assert runner.restarts > restarts


def test_rebuild_replays_from_zero_and_equals_the_live_tables(
    kairos: Any, account: Account
) -> None:
    x = account.connect_x(unique("rebuilt"))
    ids = [_post(kairos, account, x["id"], f"post {i}") for i in range(12)]
    kairos.posts.delete(account.organization_id, ids[0])
    later = datetime.now(UTC) + timedelta(days=3)
    from application.posts import PostChanges

    kairos.posts.update(
        account.organization_id, ids[1], PostChanges(content="edited", scheduled_at=later)
    )
    assert kairos.posts_view.catch_up_to(kairos.app.last_position(), timeout=10)
    seen: list[tuple[int, int]] = []
    report = rebuild(
        kairos.posts_view,
        lambda prefix: PostsView(kairos.datastore, kairos.app, prefix=prefix),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert report.identical, report.differences
    assert report.rows["posts"] >= 11
    assert seen[-1] == (report.position, report.position)
    with psycopg.connect(kairos.settings.database_url) as conn:
        leftovers = conn.execute(
            "SELECT tablename FROM pg_tables "
            "WHERE tablename LIKE 'rebuild_%' OR tablename LIKE 'snapshot_%'"
        ).fetchall()
    assert leftovers == []


def test_rebuild_detects_and_repairs_a_damaged_view(
    kairos: Any, account: Account, database_url: str
) -> None:
    x = account.connect_x(unique("damaged"))
    post_id = _post(kairos, account, x["id"], "truth")
    assert kairos.posts_view.catch_up_to(kairos.app.last_position(), timeout=10)
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE posts SET content = 'tampered' WHERE id = %s", (post_id,))
    factory = lambda prefix: PostsView(kairos.datastore, kairos.app, prefix=prefix)  # noqa: E731
    damaged = rebuild(kairos.posts_view, factory)
    assert not damaged.identical
    assert damaged.differences["posts"] == 2  # the tampered row, seen from both sides
    repaired = rebuild(kairos.posts_view, factory, replace=True)
    assert repaired.replaced
    assert account.http.get(f"/api/posts/{post_id}").json()["post"]["content"] == "truth"
    listed = account.http.get("/api/posts").json()["posts"]
    assert next(p for p in listed if p["id"] == str(post_id))["content"] == "truth"
    after = _post(kairos, account, x["id"], "written after the swap")
    assert kairos.posts_view.catch_up_to(kairos.app.last_position(), timeout=10)
    assert _row_count(database_url, "posts", after) == 1
    assert rebuild(kairos.posts_view, factory).identical


def test_two_runners_on_one_view_do_not_double_apply(kairos: Any, account: Account) -> None:
    x = account.connect_x(unique("twins"))
    extra = ProjectionRunner(kairos.posts_view, batch_size=3).start()
    try:
        ids = [_post(kairos, account, x["id"], f"twin {i}") for i in range(20)]
        assert kairos.posts_view.catch_up_to(kairos.app.last_position(), timeout=10)
    finally:
        extra.stop()
    listed = account.http.get("/api/posts", params={"limit": 50}).json()["posts"]
    assert sorted(p["id"] for p in listed) == sorted(str(i) for i in ids)
    assert rebuild(
        kairos.posts_view, lambda prefix: PostsView(kairos.datastore, kairos.app, prefix=prefix)
    ).identical


def test_readyz_reports_the_lag_of_each_projection(api_url: str) -> None:
    import httpx

    assert httpx.get(f"{api_url}/healthz").json() == {"status": "ok", "checks": {}}
    ready = httpx.get(f"{api_url}/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["database"] == "ok"
    assert set(checks) >= {"projection:posts", "projection:integrations"}


def test_readyz_reports_a_stalled_dispatcher(api_url: str, kairos: Any) -> None:
    import httpx

    stale = uuid.uuid4()
    with psycopg.connect(kairos.settings.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO due_work (kind, subject_id, key, due_at) "
            "VALUES ('publish', %s, '', now() - interval '5 minutes')",
            (stale,),
        )
        try:
            ready = httpx.get(f"{api_url}/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["dispatcher"]["overdue"] >= 1
            assert ready.json()["checks"]["dispatcher"]["oldestSeconds"] >= 299
        finally:
            conn.execute("DELETE FROM due_work WHERE subject_id = %s", (stale,))
    assert httpx.get(f"{api_url}/readyz").status_code == 200
