"""Helpers for the notification tests: the API with the notifications router, and accounts
connected straight through the aggregate (no OAuth) when only their events matter."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID, uuid4

from fastapi import FastAPI

from domain.integration import Integration

T = TypeVar("T")


def api_with_notifications(kairos: Any) -> FastAPI:
    """``create_api`` plus ``/api/notifications`` (a no-op once the app registers it)."""
    from interfaces.api.app import create_api
    from interfaces.api.routes import notifications

    api = create_api(kairos)
    if not any(getattr(r, "path", "").startswith("/api/notifications") for r in api.routes):
        api.include_router(notifications.router)
        api.openapi_schema = None
    return api


def connect_directly(kairos: Any, organization_id: UUID, username: str) -> Integration:
    """An X account whose events are all a test needs: it never publishes."""
    integration = Integration.connect(
        organization_id=organization_id,
        provider="twitter",
        external_account_id=f"ext-{username}",
        account_name=username,
        display_name=username.title(),
        avatar_url=None,
        credential_id=uuid4(),
        token_expires_at=None,
        scopes=["tweet.write"],
        capabilities=["text"],
    )
    kairos.app.save_all(integration)
    return integration


def eventually(probe: Callable[[], T | None], *, timeout: float = 15, what: str = "it") -> T:
    """Poll ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
