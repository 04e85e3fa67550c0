"""Outside development, Kairos refuses to start with placeholder or short secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from interfaces.config import Settings

GOOD = {
    "database_url": "postgresql://kairos@db/kairos",
    "secret_key": "s" * 48,
    "vault_keys": "k1:" + "A" * 43 + "=",
}


def test_production_settings_with_real_secrets_load() -> None:
    settings = Settings(environment="production", **GOOD)  # type: ignore[arg-type]
    assert settings.secret_key.get_secret_value() == "s" * 48
    assert "s" * 48 not in repr(settings)


@pytest.mark.parametrize(
    ("field", "value"),
    [("secret_key", "changethis"), ("secret_key", "short"), ("vault_keys", ""), ("secret_key", "")],
)
def test_placeholder_or_short_secrets_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=f"KAIROS_{field.upper()}"):
        Settings(environment="production", **{**GOOD, field: value})  # type: ignore[arg-type]


def test_production_needs_a_database_url() -> None:
    with pytest.raises(ValidationError, match="KAIROS_DATABASE_URL"):
        Settings(environment="production", **{**GOOD, "database_url": None})  # type: ignore[arg-type]


def test_development_accepts_anything() -> None:
    assert Settings(environment="development").secret_key.get_secret_value() == ""


def test_settings_come_from_kairos_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAIROS_ENVIRONMENT", "development")
    monkeypatch.setenv("KAIROS_PORT", "9100")
    monkeypatch.setenv("KAIROS_X_API_BASE_URL", "http://127.0.0.1:9/x")
    settings = Settings()
    assert settings.port == 9100
    assert settings.x_api_base_url == "http://127.0.0.1:9/x"


def test_durations_read_as_seconds_or_iso_8601(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    monkeypatch.setenv("KAIROS_ENVIRONMENT", "development")
    monkeypatch.setenv("KAIROS_DISPATCH_LEASE", "30")
    monkeypatch.setenv("KAIROS_SETTLE_AFTER", "0.5")
    monkeypatch.setenv("KAIROS_DELIVERY_LEASE", "PT3M")
    settings = Settings()
    assert settings.dispatch_lease == timedelta(seconds=30)
    assert settings.settle_after == timedelta(milliseconds=500)
    assert settings.delivery_lease == timedelta(minutes=3)
