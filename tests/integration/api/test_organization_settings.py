"""``PATCH /api/organization``: the active organization's publishing settings."""

from __future__ import annotations

from tests.conftest import Account


def test_each_setting_changes_alone_and_the_answer_shows_both(account: Account) -> None:
    late = account.http.patch("/api/organization", json={"publishLate": True})
    assert late.status_code == 200, late.text
    assert late.json() == {"success": True, "publishLate": True, "delayOnQuota": False}

    quota = account.http.patch("/api/organization", json={"delayOnQuota": True})
    assert quota.status_code == 200, quota.text
    assert quota.json() == {"success": True, "publishLate": True, "delayOnQuota": True}

    kept = account.http.patch("/api/organization", json={})
    assert kept.json() == {"success": True, "publishLate": True, "delayOnQuota": True}


def test_settings_belong_to_one_organization(make_account: object) -> None:
    first, second = make_account("first"), make_account("second")  # type: ignore[operator]
    first.http.patch("/api/organization", json={"delayOnQuota": True})

    untouched = second.http.patch("/api/organization", json={})
    assert untouched.json()["delayOnQuota"] is False


def test_a_setting_must_be_a_boolean(account: Account) -> None:
    refused = account.http.patch("/api/organization", json={"delayOnQuota": "yes"})
    assert refused.status_code == 400, refused.text
    assert refused.json()["success"] is False
    assert "delayOnQuota" in refused.text
