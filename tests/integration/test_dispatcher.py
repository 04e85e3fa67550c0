"""The due-work dispatcher on real PostgreSQL: exclusive claims, leases, no fixed tick.

Each test gets its own database, so no other dispatcher in the session can claim its rows.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from application.app import KairosApplication
from application.due import WorkKind
from domain.post import Post
from interfaces.bootstrap import postgres_env
from tests.conftest import _with_database, make_settings
from workers.dispatcher import Dispatcher

Sent = list[tuple[WorkKind, uuid.UUID, str]]


@pytest.fixture
def app(server_url: str) -> Iterator[KairosApplication]:
    name = f"kairos_dispatch_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(server_url, name)
    application = KairosApplication(env=postgres_env(url, make_settings(url, "http://127.0.0.1:9")))
    yield application
    application.close()
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _schedule(app: KairosApplication, count: int, at: datetime) -> list[uuid.UUID]:
    now = datetime.now(UTC)
    posts = []
    for index in range(count):
        post = Post.draft(
            organization_id=uuid.uuid4(),
            author_id=uuid.uuid4(),
            content=f"post {index}",
            thread=[],
            media_urls=[],
            accounts={"a": "twitter"},
        )
        post.schedule(at if at > now else now + timedelta(milliseconds=50), now=now)
        posts.append(post)
    app.save_all(*posts)
    return [p.id for p in posts]


def _collector() -> tuple[Sent, Any]:
    sent: Sent = []
    lock = threading.Lock()

    def send(kind: WorkKind, subject_id: uuid.UUID, key: str) -> None:
        with lock:
            sent.append((kind, subject_id, key))

    return sent, send


def test_copies_of_the_dispatcher_claim_disjoint_rows(app: KairosApplication) -> None:
    ids = _schedule(app, 300, datetime.now(UTC))
    time.sleep(0.1)
    datastore = app.recorder.datastore  # type: ignore[attr-defined]
    outputs = [_collector() for _ in range(3)]
    dispatchers = [Dispatcher(datastore, send, batch=20) for _, send in outputs]
    threads = [threading.Thread(target=d.dispatch_due) for d in dispatchers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [item for sent, _ in outputs for item in sent]
    assert len(everything) == len(set(everything)) == 300
    assert {subject for _, subject, _ in everything} == set(ids)
    assert all(kind is WorkKind.PUBLISH for kind, _, _ in everything)


def test_a_message_is_sent_again_only_when_its_lease_ends(app: KairosApplication) -> None:
    _schedule(app, 1, datetime.now(UTC))
    time.sleep(0.1)
    sent, send = _collector()
    dispatcher = Dispatcher(app.recorder.datastore, send, lease=timedelta(seconds=1))  # type: ignore[attr-defined]
    assert dispatcher.dispatch_due() == 1
    assert dispatcher.dispatch_due() == 0  # claimed: not sent twice within the lease
    time.sleep(1.1)
    assert dispatcher.dispatch_due() == 1  # nothing finished the work: sent again
    assert sent[0] == sent[1]


def test_future_work_waits_and_the_sleep_ends_at_its_time(app: KairosApplication) -> None:
    _schedule(app, 1, datetime.now(UTC) + timedelta(seconds=5))
    _, send = _collector()
    dispatcher = Dispatcher(app.recorder.datastore, send)  # type: ignore[attr-defined]
    assert dispatcher.dispatch_due() == 0
    assert 4.0 < dispatcher.seconds_until_next() <= 5.0


def test_new_work_wakes_a_sleeping_dispatcher_at_once(app: KairosApplication) -> None:
    sent, send = _collector()
    dispatcher = Dispatcher(app.recorder.datastore, send).start()  # type: ignore[attr-defined]
    try:
        time.sleep(0.5)  # asleep: nothing is due, so it waits up to 30 s or a NOTIFY
        due_at = datetime.now(UTC) + timedelta(milliseconds=300)
        (post_id,) = _schedule(app, 1, due_at)
        deadline = time.monotonic() + 5
        while not sent:
            assert time.monotonic() < deadline, "the dispatcher did not wake"
            time.sleep(0.01)
        assert datetime.now(UTC) - due_at < timedelta(milliseconds=500)
        assert sent == [(WorkKind.PUBLISH, post_id, "")]
    finally:
        dispatcher.stop()


def test_deleting_a_post_removes_its_due_row_in_the_same_transaction(
    app: KairosApplication,
) -> None:
    (post_id,) = _schedule(app, 1, datetime.now(UTC) + timedelta(hours=1))
    post = app.get_post(post_id)
    assert post is not None
    post.delete()
    app.save_all(post)
    _, send = _collector()
    dispatcher = Dispatcher(app.recorder.datastore, send)  # type: ignore[attr-defined]
    assert dispatcher.seconds_until_next() == 30.0  # nothing left to wait for


def test_a_backlogged_broker_gets_no_re_sends_but_still_gets_new_work(
    app: KairosApplication,
) -> None:
    _schedule(app, 1, datetime.now(UTC))
    time.sleep(0.1)
    sent, send = _collector()
    queued = {"depth": 0}
    dispatcher = Dispatcher(
        app.recorder.datastore,  # type: ignore[attr-defined]
        send,
        lease=timedelta(seconds=1),
        backlog=lambda: queued["depth"],
        backlog_limit=100,
    )
    assert dispatcher.dispatch_due() == 1
    queued["depth"] = 5000  # the first message is presumably still waiting in the queue
    time.sleep(1.1)
    assert dispatcher.dispatch_due() == 0  # its lease ended, but a re-send would only pile up
    (new_post,) = _schedule(app, 1, datetime.now(UTC))
    time.sleep(0.1)
    assert dispatcher.dispatch_due() == 1  # new work is never held back
    assert sent[-1] == (WorkKind.PUBLISH, new_post, "")
    queued["depth"] = 0
    assert dispatcher.dispatch_due() == 1  # drained: the old row is sent again
    assert len(sent) == 3
