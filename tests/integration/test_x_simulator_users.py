"""The X simulator's per-user token knobs: lifetimes, refresh outages, refresh-only revocation.

They let one test (or a user trying Kairos) shorten one account's tokens or break its refreshes
without touching any other account sharing the simulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox.app import create_sandbox_app
from tests.integration.test_x_simulator import BAD_TOKEN, Sim
from tests.support.servers import serve


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    with serve(create_sandbox_app(tmp_path)) as base, httpx.Client(timeout=10) as http:
        yield Sim(base, http)


def test_a_users_token_lifetimes_apply_to_that_user_only(sim: Sim) -> None:
    knobs = sim.admin("/users/alice/tokens", {"access_token_ttl": 4, "refresh_token_ttl": 60})
    assert knobs.status_code == 200
    assert knobs.json() == {
        "access_token_ttl": 4,
        "refresh_token_ttl": 60,
        "refresh_failures": 0,
        "refresh_fail_status": 503,
        "refresh_requests": 0,
    }

    alice, bob = sim.tokens("alice"), sim.tokens("bob")
    assert alice["expires_in"] == 4
    assert bob["expires_in"] == 7200
    assert sim.refresh(alice["refresh_token"]).json()["expires_in"] == 4

    cleared = sim.http.delete(sim.x + "/_sandbox/users/alice/tokens")
    assert cleared.status_code == 200
    assert sim.tokens("alice")["expires_in"] == 7200


def test_a_refresh_token_with_no_lifetime_cannot_refresh(sim: Sim) -> None:
    sim.admin("/users/alice/tokens", {"refresh_token_ttl": 0})
    alice = sim.tokens("alice")
    assert sim.refresh(alice["refresh_token"]).json() == BAD_TOKEN


def test_a_users_refreshes_can_fail_without_spending_the_token(sim: Sim) -> None:
    sim.admin("/users/alice/tokens", {"refresh_failures": 2, "refresh_fail_status": 503})
    alice, bob = sim.tokens("alice"), sim.tokens("bob")

    first, second = sim.refresh(alice["refresh_token"]), sim.refresh(alice["refresh_token"])
    assert (first.status_code, second.status_code) == (503, 503)
    assert first.json()["title"] == "Service Unavailable"
    assert sim.refresh(bob["refresh_token"]).status_code == 200  # bob is unaffected
    third = sim.refresh(alice["refresh_token"])  # the outage is over; the token still works
    assert third.status_code == 200

    user = sim.admin("/users/alice").json()
    assert user["tokens"]["refresh_requests"] == 3
    assert user["tokens"]["refresh_failures"] == 0


def test_knobs_for_a_user_not_seen_yet_create_it(sim: Sim) -> None:
    assert sim.admin("/users/newcomer").status_code == 404
    assert sim.admin("/users/newcomer/tokens", {"access_token_ttl": 4}).status_code == 200
    assert sim.admin("/users/newcomer").json()["username"] == "newcomer"
    assert sim.tokens("newcomer")["expires_in"] == 4


def test_bad_knobs_are_refused(sim: Sim) -> None:
    for body in (
        {"access_token_ttl": -1},
        {"access_token_ttl": "soon"},
        {"refresh_failures": True},
        {"refresh_fail_status": 418},
        {"unknown": 1},
    ):
        assert sim.admin("/users/alice/tokens", body).status_code == 400, body
    assert sim.admin("/users/not a name/tokens", {}).status_code == 400
    assert sim.admin("/users/alice/tokens", {"access_token_ttl": None}).status_code == 200


def test_revoking_only_the_refresh_tokens_lets_access_tokens_run_out(sim: Sim) -> None:
    alice, bob = sim.tokens("alice"), sim.tokens("bob")

    response = sim.admin("/users/alice/revoke", {"tokens": "refresh"})

    assert response.json() == {"revoked_refresh_tokens": 1}
    assert sim.me(alice["access_token"]).status_code == 200  # until it expires
    assert sim.refresh(alice["refresh_token"]).json() == BAD_TOKEN
    assert sim.refresh(bob["refresh_token"]).status_code == 200
    assert sim.admin("/users/alice/revoke", {"tokens": "some"}).status_code == 400


def test_revoking_all_is_still_the_default(sim: Sim) -> None:
    alice = sim.tokens("alice")
    assert sim.http.post(sim.x + "/_sandbox/users/alice/revoke").json() == {"revoked_grants": 1}
    assert sim.me(alice["access_token"]).status_code == 401
