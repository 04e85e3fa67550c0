"""Connected accounts keep themselves alive, over real PostgreSQL, Redis and the X simulator.

The session's pipeline dispatches; the workers here also run the ``accounts`` queue (the
session's own workers only publish). Token lifetimes, refresh failures and revocations are
set per sandbox user, so no other test sharing the simulator is affected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest

from application.credentials import AccessTokens
from application.upkeep import AccountUpkeep, UpkeepPolicy
from domain.integration import Integration
from interfaces.bootstrap import platform_adapters, utc_now
from interfaces.postgres.locks import PostgresLocks
from tests.conftest import Account, unique
from workers.runtime import Pipeline

TERMINAL = {"published", "failed", "partial"}


# --- the simulator's per-user knobs --------------------------------------------------------------


class SandboxUsers:
    """Per-user token knobs of the X simulator; every user touched is reset at teardown."""

    def __init__(self, sandbox_url: str) -> None:
        self._admin = f"{sandbox_url}/x/_sandbox/users"
        self.touched: set[str] = set()

    def tokens(self, username: str, **knobs: Any) -> dict[str, Any]:
        self.touched.add(username)
        response = httpx.post(f"{self._admin}/{username}/tokens", json=knobs)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def refresh_requests(self, username: str) -> int:
        user = httpx.get(f"{self._admin}/{username}").json()
        return int(user["tokens"]["refresh_requests"])

    def revoke(self, username: str, tokens: str = "all") -> None:
        httpx.post(f"{self._admin}/{username}/revoke", json={"tokens": tokens}).raise_for_status()

    def reset(self) -> None:
        for username in self.touched:
            httpx.delete(f"{self._admin}/{username}/tokens").raise_for_status()


@pytest.fixture
def sandbox_users(sandbox_url: str) -> Iterator[SandboxUsers]:
    users = SandboxUsers(sandbox_url)
    try:
        yield users
    finally:
        users.reset()  # later refreshes get X's two-hour tokens: the accounts calm down


@pytest.fixture(scope="module")
def account_workers(kairos: Any, pipeline: Any, redis_url: str) -> Iterator[Pipeline]:
    """Workers with the upkeep service, consuming every queue; the session pipeline's
    dispatcher sends them the account work as it comes due."""
    running = Pipeline(
        kairos.publishing,
        kairos.datastore,
        redis_url,
        lease=timedelta(seconds=4),
        upkeep=kairos.upkeep,
    )
    running.start_workers(threads=4)
    yield running
    running.stop()


# --- helpers -------------------------------------------------------------------------------------


def history(kairos: Any, integration_id: UUID) -> list[str]:
    return [type(e).__name__ for e in kairos.app.history(integration_id)]


def wait_until(
    condition: Callable[[], bool], what: str, timeout: float = 20, step: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(step)


def integration_of(account: Account, integration_id: UUID) -> dict[str, Any]:
    response = account.http.get(f"/api/integrations/{integration_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["integration"]
    return found


def due_rows(database_url: str, integration_id: UUID) -> dict[str, datetime]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT kind, due_at FROM due_work WHERE subject_id = %s", (integration_id,)
        ).fetchall()
    return dict(rows)


def bring_forward(database_url: str, integration_id: UUID, kind: str) -> None:
    """Make one of the account's rows due now, and wake the dispatcher, as time passing
    would (a day is too long to wait for a health check)."""
    with psycopg.connect(database_url) as conn:
        updated = conn.execute(
            "UPDATE due_work SET due_at = now(), claimed_until = NULL, dispatches = 0 "
            "WHERE kind = %s AND subject_id = %s",
            (kind, integration_id),
        ).rowcount
        conn.execute("NOTIFY kairos_due")
    assert updated == 1, f"no {kind} row for {integration_id}"


def wait_for_post(account: Account, post_id: str, statuses: set[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def reached() -> bool:
        found.update(account.http.get(f"/api/posts/{post_id}").json()["post"])
        return found["status"] in statuses

    wait_until(reached, f"post {post_id} to reach {statuses}")
    return found


# --- (1) refreshing by itself --------------------------------------------------------------------


def test_an_account_refreshes_itself_before_its_token_expires(
    account_workers: Pipeline,
    kairos: Any,
    account: Account,
    sandbox_users: SandboxUsers,
    database_url: str,
) -> None:
    username = unique("renews")
    sandbox_users.tokens(username, access_token_ttl=4)  # refreshed every two seconds
    x = account.connect_x(username)
    integration_id = UUID(x["id"])
    first_expiry = datetime.fromisoformat(x["tokenExpiresAt"])
    assert first_expiry - datetime.now(UTC) < timedelta(seconds=5)

    wait_until(
        lambda: history(kairos, integration_id).count("TokenRefreshed") >= 2,
        "two refreshes by the upkeep",
    )

    assert sandbox_users.refresh_requests(username) >= 2
    wait_until(
        lambda: (
            datetime.fromisoformat(integration_of(account, integration_id)["tokenExpiresAt"])
            > first_expiry
        ),
        "the read model to show the new expiry",
    )
    shown = integration_of(account, integration_id)
    assert shown["status"] == "connected"
    assert shown["lastError"] is None
    integration = kairos.app.get_integration(integration_id)
    assert integration.token_expires_at > first_expiry
    # The refresh row follows the token actually held; the daily check is a day away.
    rows = due_rows(database_url, integration_id)
    assert rows["health_check"] > datetime.now(UTC) + timedelta(hours=23)
    assert rows["refresh"] <= integration.token_expires_at + timedelta(seconds=4)
    # And the credential the upkeep keeps is the one publishing uses: a post goes out.
    created = account.http.post(
        "/api/posts",
        json={
            "content": "still connected",
            "accountIds": [str(integration_id)],
            "scheduledAt": (datetime.now(UTC) + timedelta(seconds=1)).isoformat(),
        },
    ).json()["post"]
    assert wait_for_post(account, created["id"], TERMINAL)["status"] == "published"


# --- (2) a revoked refresh token expires the account; the post fails for it alone ----------------


def test_a_revoked_refresh_token_expires_the_account_and_fails_only_its_deliveries(
    account_workers: Pipeline,
    kairos: Any,
    account: Account,
    sandbox_users: SandboxUsers,
    database_url: str,
) -> None:
    lapsing, steady = unique("lapsing"), unique("steady")
    sandbox_users.tokens(lapsing, access_token_ttl=4)
    lapsing_id = UUID(account.connect_x(lapsing)["id"])
    steady_id = UUID(account.connect_x(steady)["id"])
    wait_until(lambda: "TokenRefreshed" in history(kairos, lapsing_id), "a first refresh")
    created = account.http.post(
        "/api/posts",
        json={
            "content": "one of two",
            "accountIds": [str(lapsing_id), str(steady_id)],
            "scheduledAt": (datetime.now(UTC) + timedelta(seconds=5)).isoformat(),
        },
    )
    assert created.status_code == 201, created.text
    post_id = created.json()["post"]["id"]

    sandbox_users.revoke(lapsing, tokens="refresh")  # the access token works until it expires

    wait_until(lambda: "TokenExpired" in history(kairos, lapsing_id), "the account to expire")
    expired = kairos.app.get_integration(lapsing_id)
    assert expired.status == "expired"
    assert "reconnect" in expired.last_error
    assert due_rows(database_url, lapsing_id) == {}  # nothing left to keep alive
    wait_until(
        lambda: integration_of(account, lapsing_id)["status"] == "expired",
        "the read model to show it expired",
    )

    post = wait_for_post(account, post_id, TERMINAL)
    assert post["status"] == "partial"
    results = {r["accountId"]: r for r in post["results"]}
    assert results[str(steady_id)]["status"] == "published"
    failed = results[str(lapsing_id)]
    assert failed["status"] == "failed"
    assert "reconnect" in failed["error"]["message"]

    # Reconnecting replaces only the credential; republishing retries only the failed account.
    sandbox_users.reset()
    account.connect_x(lapsing)
    assert integration_of(account, lapsing_id)["status"] == "connected"
    assert "refresh" in due_rows(database_url, lapsing_id)
    assert account.http.post(f"/api/posts/{post_id}/republish").status_code == 200
    assert wait_for_post(account, post_id, {"published"})["status"] == "published"


# --- (3) two workers refreshing the same account at the same moment ------------------------------


def test_workers_refreshing_one_account_at_once_make_one_refresh_call(
    kairos: Any, account: Account, sandbox_users: SandboxUsers
) -> None:
    username = unique("racing")
    # 100 s: due for the upkeep (10 min margin) and for publishing (2 min), yet far enough
    # that the session's dispatcher leaves it alone during the test.
    sandbox_users.tokens(username, access_token_ttl=100)
    integration_id = UUID(account.connect_x(username)["id"])
    adapters = platform_adapters(kairos.settings)

    def separate_tokens() -> AccessTokens:
        """Another process's view: its own adapters, locks and connections."""
        return AccessTokens(
            kairos.app, adapters, kairos.vault, PostgresLocks(kairos.datastore), utc_now
        )

    for round_ in range(3):
        if round_:  # a short-lived token again, then the race
            sandbox_users.tokens(username, access_token_ttl=100)
            separate_tokens().renew(current(kairos, integration_id), within=timedelta(days=1))
        sandbox_users.tokens(username, access_token_ttl=7200)  # what the winner gets
        before = sandbox_users.refresh_requests(username)
        refreshes_before = history(kairos, integration_id).count("TokenRefreshed")
        upkeeps = [AccountUpkeep(kairos.app, adapters, separate_tokens(), utc_now) for _ in "ab"]
        publisher = separate_tokens()
        integration = current(kairos, integration_id)

        errors = race(
            partial(upkeeps[0].refresh, integration_id),
            partial(upkeeps[1].refresh, integration_id),
            partial(publisher.for_publishing, integration),
        )

        assert errors == []
        assert sandbox_users.refresh_requests(username) == before + 1
        assert history(kairos, integration_id).count("TokenRefreshed") == refreshes_before + 1

    # The stored credential works: the access token calls X, and the refresh token renews.
    integration = current(kairos, integration_id)
    stored = kairos.vault.read(integration.credential_id)
    assert adapters["twitter"].fetch_profile(stored.access_token).username == username
    renewed = separate_tokens().renew(integration, within=timedelta(days=1))
    assert renewed is not None
    assert adapters["twitter"].fetch_profile(renewed.access_token).username == username
    assert current(kairos, integration_id).status == "connected"


def race(*works: Callable[[], object]) -> list[BaseException]:
    """Run ``works`` in threads released at the same instant; what they raised."""
    start = threading.Barrier(len(works))
    errors: list[BaseException] = []

    def run(work: Callable[[], object]) -> None:
        start.wait()
        try:
            work()
        except BaseException as exc:  # surfaced by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(work,)) for work in works]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return errors


def current(kairos: Any, integration_id: UUID) -> Integration:
    integration: Integration | None = kairos.app.get_integration(integration_id)
    assert integration is not None
    return integration


# --- (4) the daily health check ------------------------------------------------------------------


def test_the_health_check_records_a_passing_check_then_an_expiry_after_revocation(
    account_workers: Pipeline,
    kairos: Any,
    account: Account,
    sandbox_users: SandboxUsers,
    database_url: str,
) -> None:
    username = unique("checked")
    integration_id = UUID(account.connect_x(username)["id"])
    first_check = due_rows(database_url, integration_id)["health_check"]
    assert first_check > datetime.now(UTC) + timedelta(hours=23)

    bring_forward(database_url, integration_id, "health_check")
    wait_until(lambda: "IntegrationChecked" in history(kairos, integration_id), "a passing check")
    assert due_rows(database_url, integration_id)["health_check"] > first_check

    sandbox_users.revoke(username)  # every token of the grant: X answers 401
    bring_forward(database_url, integration_id, "health_check")
    wait_until(lambda: "TokenExpired" in history(kairos, integration_id), "the expiry")

    integration = current(kairos, integration_id)
    assert integration.status == "expired"
    assert integration.last_error is not None
    assert "HTTP 401" in integration.last_error
    assert "reconnect" in integration.last_error
    assert due_rows(database_url, integration_id) == {}


# --- (5) a platform outage during a refresh ------------------------------------------------------


def test_a_refresh_the_platform_fails_is_recorded_and_retried_later(
    account_workers: Pipeline,
    kairos: Any,
    account: Account,
    sandbox_users: SandboxUsers,
    database_url: str,
) -> None:
    username = unique("outage")
    sandbox_users.tokens(username, access_token_ttl=100)  # due for the upkeep right away
    integration_id = UUID(account.connect_x(username)["id"])
    # X is down for one refresh; the one after gets a two-hour token, so the account calms.
    sandbox_users.tokens(
        username, access_token_ttl=None, refresh_failures=1, refresh_fail_status=503
    )
    adapters = platform_adapters(kairos.settings)
    tokens = AccessTokens(
        kairos.app, adapters, kairos.vault, PostgresLocks(kairos.datastore), utc_now
    )
    quick = UpkeepPolicy(first_backoff=timedelta(seconds=1), max_backoff=timedelta(seconds=2))
    upkeep = AccountUpkeep(kairos.app, adapters, tokens, utc_now, quick)

    upkeep.refresh(integration_id)  # as the actor would: X answers 503

    events = kairos.app.history(integration_id)
    errored, retry = events[-2], events[-1]
    assert isinstance(errored, Integration.IntegrationErrored)
    assert errored.operation == "refresh"
    assert "HTTP 503" in errored.message
    assert isinstance(retry, Integration.RefreshRetryScheduled)
    assert retry.retry_at - retry.timestamp <= timedelta(seconds=1)
    assert due_rows(database_url, integration_id)["refresh"] == retry.retry_at  # not lost
    assert current(kairos, integration_id).status == "error"

    # The dispatcher sends the retry when it comes due; X is back, so it goes through.
    wait_until(
        lambda: history(kairos, integration_id)[-1] == "TokenRefreshed", "the retried refresh"
    )
    assert sandbox_users.refresh_requests(username) == 2
    assert current(kairos, integration_id).status == "connected"
    wait_until(
        lambda: integration_of(account, integration_id)["status"] == "connected",
        "the read model to show it connected again",
    )
