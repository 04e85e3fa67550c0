"""Graph API error bodies (reference §1.7) and response helpers."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse, Response

from sandbox.common.faults import DropMode, LostAnswer
from sandbox.instagram.config import Injected

GRAPH_DOCS = (
    "Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"
)


class GraphJSONResponse(JSONResponse):
    media_type = "application/json; charset=UTF-8"


def fbtrace_id() -> str:
    return secrets.token_urlsafe(8)[:11]


def graph_error(
    status: int,
    code: int,
    message: str,
    *,
    subcode: int | None = None,
    kind: str = "OAuthException",
    transient: bool = False,
    user_title: str | None = None,
    user_msg: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """``{"error": {...}}`` as Graph answers a failed call."""
    error: dict[str, Any] = {"message": message, "type": kind, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["is_transient"] = transient
    if user_title is not None:
        error["error_user_title"] = user_title
    if user_msg is not None:
        error["error_user_msg"] = user_msg
    error["fbtrace_id"] = fbtrace_id()
    return GraphJSONResponse({"error": error}, status_code=status, headers=headers)


def _fb_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%A, %d-%b-%y %H:%M:%S UTC")


def _invalid_token(message: str, subcode: int | None) -> JSONResponse:
    challenge = f'OAuth "Facebook Platform" "invalid_token" "{message}"'
    return graph_error(400, 190, message, subcode=subcode, headers={"www-authenticate": challenge})


def unparsable_token() -> JSONResponse:
    return _invalid_token("Invalid OAuth access token - Cannot parse access token", None)


def expired_token(expired_at: float, now: float) -> JSONResponse:
    message = (
        f"Error validating access token: Session has expired on {_fb_time(expired_at)}."
        f" The current time is {_fb_time(now)}."
    )
    return _invalid_token(message, 463)


def revoked_token(app_name: str) -> JSONResponse:
    message = f"Error validating access token: The user has not authorized application {app_name}."
    return _invalid_token(message, 458)


def missing_token() -> JSONResponse:
    return graph_error(400, 104, "An access token is required to request this resource.")


def no_permission() -> JSONResponse:
    return graph_error(400, 10, "(#10) Application does not have permission for this action")


def unsupported(node_id: str, method: str = "get") -> JSONResponse:
    message = (
        f"Unsupported {method} request. Object with ID '{node_id}' does not exist, cannot be"
        f" loaded due to missing permissions, or does not support this operation. {GRAPH_DOCS}"
    )
    return graph_error(400, 100, message, subcode=33, kind="GraphMethodException")


def nonexisting_field(name: str, node_type: str) -> JSONResponse:
    message = f"(#100) Tried accessing nonexisting field ({name}) on node type ({node_type})"
    return graph_error(400, 100, message)


def invalid_parameter(message: str, subcode: int | None = None) -> JSONResponse:
    return graph_error(400, 100, message, subcode=subcode)


def unknown_path(path: str) -> JSONResponse:
    return graph_error(400, 2500, f"Unknown path components: {path}")


def injected(failure: Injected, headers: dict[str, str] | None = None) -> JSONResponse:
    return graph_error(
        failure.status,
        failure.code,
        failure.message,
        subcode=failure.subcode,
        transient=failure.transient,
        headers=headers,
    )


def legacy_error(message: str, status: int = 400) -> JSONResponse:
    """The older ``api.instagram.com`` error shape its token endpoint still answers with."""
    body = {"error_type": "OAuthException", "code": status, "error_message": message}
    return GraphJSONResponse(body, status_code=status)


#: A write whose response dies after its first bytes ("done, response lost").
LOST_ANSWER = LostAnswer(200, b"application/json; charset=UTF-8", b'{"id":"')


def lost_response(mode: DropMode, headers: dict[str, str]) -> Response:
    """What the client sees of a write that committed but whose response got lost."""
    return LOST_ANSWER.response(mode, headers)
