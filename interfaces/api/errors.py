"""Every error leaves the API as ``{"success": false, "message": …}`` with one mapped status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from application.connections import AccountHasScheduledPosts, AuthorizationFailed
from application.errors import (
    AuthenticationFailed,
    Conflict,
    IdempotencyKeyReused,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
)
from application.plans import PlanLimitReached
from domain.errors import (
    DomainError,
    IntegrationNotUsable,
    InvalidField,
    PostAlreadyDeleted,
    PostNotEditable,
)
from interfaces.api.schemas import ErrorBody

log = logging.getLogger("kairos.api")

STATUS_BY_ERROR: list[tuple[type[DomainError], int]] = [
    (NotFound, 404),
    (PostAlreadyDeleted, 404),
    (AuthenticationFailed, 401),
    (PermissionDenied, 403),
    (PlanLimitReached, 402),
    (IdempotencyKeyReused, 422),
    (PostNotEditable, 409),
    (Conflict, 409),
    (ServiceUnavailable, 503),
    (InvalidField, 400),
    (IntegrationNotUsable, 400),
    (AuthorizationFailed, 400),
    (DomainError, 400),
]

UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ErrorBody,
        "description": "Media storage or an up-to-date read model cannot answer just now; "
        "retry after the Retry-After seconds",
    }
}
"""For the ``responses`` of routes that depend on one of them."""


RETRY_AFTER_SECONDS = 5
"""What a 503 suggests: storage blips and projector lag pass within seconds."""


class Unauthorized(AuthenticationFailed):
    pass


def error_response(
    status: int,
    message: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"success": False, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra or {})
    return JSONResponse(body, status_code=status, headers=headers)


def _extra(exc: DomainError) -> dict[str, Any] | None:
    """What some errors add to the envelope, so a client can act without another call."""
    if isinstance(exc, AccountHasScheduledPosts):
        return {
            "scheduledPosts": [
                {
                    "id": str(post.id),
                    "scheduledAt": post.scheduled_at.isoformat() if post.scheduled_at else None,
                    "status": post.status,
                }
                for post in exc.scheduled_posts
            ]
        }
    return None


def _field_of(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    def _domain(request: Request, exc: DomainError) -> JSONResponse:
        status = next(code for kind, code in STATUS_BY_ERROR if isinstance(exc, kind))
        field = getattr(exc, "field", None)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status == 503:
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return error_response(status, exc.message, field=field, headers=headers, extra=_extra(exc))

    @app.exception_handler(RequestValidationError)
    def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
        loc = tuple(first.get("loc", ()))
        if loc and loc[0] == "path":
            return error_response(404, "not found")
        if first.get("type") == "json_invalid":
            return error_response(400, "the request body is not valid JSON")
        field = _field_of(loc)
        message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        if first.get("type") == "extra_forbidden":
            message = f"unknown field '{field}'"
        elif first.get("type") == "missing":
            message = f"{field} is required"
        elif field and not message.startswith(field):
            message = f"{field}: {message}"
        return error_response(400, message, field=field or None)

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {404: "not found", 405: "method not allowed"}
        detail = exc.detail if isinstance(exc.detail, str) else None
        message = (
            messages.get(exc.status_code)
            if detail in (None, "Not Found", "Method Not Allowed")
            else detail
        )
        return error_response(
            exc.status_code, message or "request failed", headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error")
