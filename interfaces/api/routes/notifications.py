"""``/api/notifications``: what needs the user's attention, newest first, and read marks.

Scoped to the caller's organization: another organization's notification is a 404.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response

from application.errors import NotFound
from domain.errors import InvalidField
from interfaces.api.deps import KairosDep, PrincipalDep
from interfaces.api.notification_schemas import (
    NotificationEnvelope,
    NotificationListEnvelope,
    NotificationOut,
    ReadAllEnvelope,
)
from interfaces.api.routes.posts import ERRORS as POST_ERRORS
from interfaces.api.routes.posts import as_json
from interfaces.api.schemas import ErrorBody

ERRORS: dict[int | str, dict[str, Any]] = {
    **POST_ERRORS,
    404: {"model": ErrorBody, "description": "Not found (including other organizations')"},
}

router = APIRouter(prefix="/api/notifications", tags=["notifications"], responses=ERRORS)


@router.get("", response_model=NotificationListEnvelope)
def list_notifications(
    kairos: KairosDep,
    principal: PrincipalDep,
    unread: Annotated[bool, Query(description="Only notifications not yet read")] = False,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    """Newest first. Sees every event that committed before the request arrived."""
    view = kairos.notifications_view
    view.catch_up_to(kairos.app.last_position(), kairos.settings.read_your_writes_timeout)
    try:
        page, next_cursor = view.list_notifications(
            principal.organization_id, unread_only=unread, cursor=cursor, limit=limit
        )
    except ValueError as exc:
        raise InvalidField("cursor", str(exc)) from None
    return as_json(
        NotificationListEnvelope(
            notifications=[NotificationOut.of(n) for n in page],
            next_cursor=next_cursor,
            unread_count=view.unread_count(principal.organization_id),
        )
    )


@router.post("/read-all", response_model=ReadAllEnvelope)
def mark_all_read(kairos: KairosDep, principal: PrincipalDep) -> Response:
    """Mark every notification of the organization read, as of this request."""
    view = kairos.notifications_view
    view.catch_up_to(kairos.app.last_position(), kairos.settings.read_your_writes_timeout)
    marked = view.mark_all_read(principal.organization_id)
    return as_json(
        ReadAllEnvelope(
            marked_read=marked, unread_count=view.unread_count(principal.organization_id)
        )
    )


@router.post("/{notification_id}/read", response_model=NotificationEnvelope)
def mark_read(notification_id: UUID, kairos: KairosDep, principal: PrincipalDep) -> Response:
    """Mark one notification read; reading it again keeps the first read time."""
    view = kairos.notifications_view
    view.catch_up_to(kairos.app.last_position(), kairos.settings.read_your_writes_timeout)
    notification = view.mark_read(principal.organization_id, notification_id)
    if notification is None:
        raise NotFound(f"notification {notification_id} not found")
    return as_json(NotificationEnvelope(notification=NotificationOut.of(notification)))
