"""Plan limits over real HTTP: connecting past the plan's cap is 402, at the authorization URL
and at the OAuth callback; a reconnect is never blocked. The plan is set by the operator."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from interfaces.cli import cli
from interfaces.consent import approve
from tests.conftest import TEST_SECRET, Account, unique


def _fill(account: Account, count: int) -> list[dict[str, Any]]:
    return [account.connect_x(unique("cap")) for _ in range(count)]


def test_a_new_organization_is_self_hosted_with_no_cap(account: Account) -> None:
    me = account.http.get("/api/auth/me").json()
    assert me["organizations"][0]["plan"] == "self-hosted"


def test_connecting_past_the_cap_is_402_at_the_authorization_url(
    kairos: Any, account: Account
) -> None:
    kairos.plans.set_plan(account.organization_id, "starter")
    accounts = _fill(account, 5)
    response = account.http.get("/api/integrations/twitter/auth")
    assert response.status_code == 402, response.text
    body = response.json()
    assert body["success"] is False
    assert "Starter plan" in body["message"]
    assert "5 connected accounts" in body["message"]

    # An inactive account still counts; a disconnected one does not.
    account.http.patch(f"/api/integrations/{accounts[0]['id']}", json={"active": False})
    assert account.http.get("/api/integrations/twitter/auth").status_code == 402
    assert account.http.delete(f"/api/integrations/{accounts[1]['id']}").status_code == 200
    assert account.http.get("/api/integrations/twitter/auth").status_code == 200

    kairos.plans.set_plan(account.organization_id, "plus")
    assert account.http.get("/api/integrations/twitter/auth").status_code == 200


def test_the_callback_refuses_a_new_account_past_the_cap(kairos: Any, account: Account) -> None:
    kairos.plans.set_plan(account.organization_id, "starter")
    _fill(account, 4)
    early_url = account.http.get("/api/integrations/twitter/auth").json()["url"]
    account.connect_x(unique("fifth"))  # the last place goes meanwhile
    page = account.http.get(approve(early_url, username=unique("sixth")))
    assert page.status_code == 402
    assert "text/html" in page.headers["content-type"]
    assert "Starter plan allows 5 connected accounts" in page.text
    listed = account.http.get("/api/integrations").json()["integrations"]
    assert len(listed) == 5


def test_a_reconnect_at_the_cap_is_never_blocked(kairos: Any, account: Account) -> None:
    kairos.plans.set_plan(account.organization_id, "starter")
    accounts = _fill(account, 5)
    target = accounts[2]
    auth = account.http.get(
        "/api/integrations/twitter/auth", params={"integrationId": target["id"]}
    )
    assert auth.status_code == 200, auth.text
    page = account.http.get(approve(auth.json()["url"], username=target["accountName"]))
    assert page.status_code == 200, page.text
    assert "Reconnected" in page.text

    # Naming an account to reconnect but authorizing a new one is still a new account.
    auth = account.http.get(
        "/api/integrations/twitter/auth", params={"integrationId": target["id"]}
    )
    page = account.http.get(approve(auth.json()["url"], username=unique("sneaky")))
    assert page.status_code == 402


def test_bringing_back_a_disconnected_account_needs_room(kairos: Any, account: Account) -> None:
    kairos.plans.set_plan(account.organization_id, "starter")
    accounts = _fill(account, 5)
    gone = accounts[0]
    url = account.http.get("/api/integrations/twitter/auth").json()  # at 5: refused
    assert url["success"] is False
    account.http.delete(f"/api/integrations/{gone['id']}")
    early_url = account.http.get("/api/integrations/twitter/auth").json()["url"]
    account.connect_x(unique("newcomer"))  # takes the freed place
    revived = account.http.get(
        "/api/integrations/twitter/auth", params={"integrationId": gone["id"]}
    )
    assert revived.status_code == 402  # a disconnected account is not a reconnect
    page = account.http.get(approve(early_url, username=gone["accountName"]))
    assert page.status_code == 402


def test_the_reconnect_hint_must_name_an_account_of_that_platform(account: Account) -> None:
    unknown = account.http.get(
        "/api/integrations/twitter/auth",
        params={"integrationId": "00000000-0000-4000-8000-000000000000"},
    )
    assert unknown.status_code == 404
    bad = account.http.get("/api/integrations/twitter/auth", params={"integrationId": "nope"})
    assert bad.status_code == 400
    assert bad.json()["field"] == "integrationId"


# ---- the operator's command ------------------------------------------------------------


@pytest.fixture
def env(kairos: Any) -> dict[str, str]:
    return {
        "KAIROS_ENVIRONMENT": "production",
        "KAIROS_DATABASE_URL": kairos.settings.database_url,
        "KAIROS_SECRET_KEY": TEST_SECRET,
        "KAIROS_VAULT_KEYS": kairos.settings.vault_keys.get_secret_value(),
    }


def test_the_cli_sets_an_organizations_plan(
    env: dict[str, str], account: Account, database_url: str
) -> None:
    org = str(account.organization_id)
    runner = CliRunner()
    result = runner.invoke(cli, ["organizations", "set-plan", "--org", org, "pro"], env=env)
    assert result.exit_code == 0, result.output
    assert "Pro plan" in result.output
    assert "up to 30 connected accounts" in result.output
    assert account.http.get("/api/auth/me").json()["organizations"][0]["plan"] == "pro"
    with psycopg.connect(database_url) as conn:
        audit = conn.execute(
            "SELECT details FROM audit_log WHERE action = 'organization.plan_changed' "
            "AND organization_id = %s ORDER BY id",
            (account.organization_id,),
        ).fetchall()
    assert [row[0] for row in audit] == [{"plan": "pro", "previous": "self-hosted"}]

    for args in (
        ["--org", org, "platinum"],
        ["--org", "not-an-id", "pro"],
        ["--org", "00000000-0000-4000-8000-000000000000", "pro"],
    ):
        refused = runner.invoke(cli, ["organizations", "set-plan", *args], env=env)
        assert refused.exit_code != 0, args
    assert account.http.get("/api/auth/me").json()["organizations"][0]["plan"] == "pro"
