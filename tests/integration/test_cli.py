"""The admin commands a self-hoster runs, against the same database the API serves."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import httpx
import pytest
from typer.testing import CliRunner

from interfaces.cli import cli
from tests.conftest import TEST_SECRET, unique


@pytest.fixture
def env(kairos: Any) -> dict[str, str]:
    return {
        "KAIROS_ENVIRONMENT": "production",
        "KAIROS_DATABASE_URL": kairos.settings.database_url,
        "KAIROS_SECRET_KEY": TEST_SECRET,
        "KAIROS_VAULT_KEYS": kairos.settings.vault_keys.get_secret_value(),
    }


def test_users_and_tokens_created_from_the_command_line_work_over_http(
    env: dict[str, str], api_url: str
) -> None:
    runner = CliRunner()
    email = f"{unique('admin')}@example.com"
    made = runner.invoke(
        cli,
        ["users", "create", "--email", email, "--organization", "Acme"],
        input="correct-horse-battery\ncorrect-horse-battery\n",
        env=env,
    )
    assert made.exit_code == 0, made.output
    assert f"created user {email}" in made.output
    minted = runner.invoke(
        cli, ["tokens", "create", "--email", email, "--expires-in-days", "7"], env=env
    )
    assert minted.exit_code == 0, minted.output
    token = minted.output.strip().splitlines()[-1]
    assert re.fullmatch(r"ttp_[0-9a-f]{48}", token)
    response = httpx.get(f"{api_url}/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json()["email"] == email
    assert response.json()["organizations"][0]["name"] == "Acme"
    unknown = runner.invoke(cli, ["tokens", "create", "--email", "nobody@example.com"], env=env)
    assert unknown.exit_code != 0


def test_projections_rebuild_reports_identical_tables(env: dict[str, str], account: Any) -> None:
    account.connect_x(unique("cli"))
    result = CliRunner().invoke(cli, ["projections", "rebuild"], env=env)
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())  # the console wraps long lines anywhere
    for view in ("posts", "integrations"):
        assert re.search(
            rf"{view}: replayed to notification \d+; rows {{[^}}]*}}; identical", printed
        )


def test_production_processes_refuse_placeholder_secrets(env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        cli, ["projections", "rebuild"], env={**env, "KAIROS_SECRET_KEY": "changethis"}
    )
    assert result.exit_code != 0
    assert "KAIROS_SECRET_KEY" in str(result.exception)


def test_accounts_check_health_checks_every_live_account_and_schedules_the_next(
    env: dict[str, str], kairos: Any, account: Any, sandbox_url: str
) -> None:
    connected = account.connect_x(unique("check"))
    sandbox = {
        "KAIROS_X_API_BASE_URL": f"{sandbox_url}/x",
        "KAIROS_X_AUTHORIZE_URL": f"{sandbox_url}/x/i/oauth2/authorize",
    }

    result = CliRunner().invoke(
        cli,
        ["accounts", "check", "--org", str(account.organization_id)],
        env={**env, **sandbox},
    )

    assert result.exit_code == 0, result.output
    assert f"{connected['id']}  connected" in result.output
    assert "checked 1 accounts, 0 failed" in result.output
    events = [type(e).__name__ for e in kairos.app.history(UUID(connected["id"]))]
    assert events[-1] == "IntegrationChecked"
    with kairos.datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(
            "SELECT due_at - now() AS wait FROM due_work "
            "WHERE kind = 'health_check' AND subject_id = %s",
            (UUID(connected["id"]),),
        )
        row = curs.fetchone()
    assert row is not None
    assert row["wait"].total_seconds() > 23 * 3600
