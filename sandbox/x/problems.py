"""X's error bodies (problem details) and response helpers."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from sandbox.common.faults import LostAnswer
from sandbox.x.db import RateDecision

PROBLEMS = "https://api.twitter.com/2/problems/"

SERVER_ERROR_DETAIL = (
    "Something is broken. This is usually a temporary error, for example in a high load"
    " situation or if an endpoint is temporarily having issues. Check in the developer forums"
    " in case others are having similar issues, or try again later."
)
TOO_LONG_DETAIL = (
    "Your Tweet text is too long. For more information on how Twitter determines text length"
    " see https://github.com/twitter/twitter-text."
)
DUPLICATE_DETAIL = "You are not allowed to create a Tweet with duplicate content."
REPLY_MISSING_DETAIL = "You attempted to reply to a Tweet that is deleted or not visible to you."
REPLY_RESTRICTED_DETAIL = (
    "Reply to this conversation is not allowed because you have not been mentioned or"
    " otherwise engaged by the author of the post you are replying to."
)


class XJSONResponse(JSONResponse):
    media_type = "application/json; charset=utf-8"


def problem(
    status: int, title: str, detail: str, *, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"title": title, "detail": detail, "type": "about:blank", "status": status}
    return XJSONResponse(body, status_code=status, headers=headers)


def unauthorized() -> JSONResponse:
    return problem(401, "Unauthorized", "Unauthorized")


def forbidden(detail: str, headers: dict[str, str]) -> JSONResponse:
    return problem(403, "Forbidden", detail, headers=headers)


def too_many_requests(headers: dict[str, str]) -> JSONResponse:
    return problem(429, "Too Many Requests", "Too Many Requests", headers=headers)


def server_error(headers: dict[str, str] | None = None) -> JSONResponse:
    return problem(500, "Internal Server Error", SERVER_ERROR_DETAIL, headers=headers)


def invalid_request(
    errors: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {
        "errors": errors,
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": PROBLEMS + "invalid-request",
    }
    return XJSONResponse(body, status_code=400, headers=headers)


def not_found_error(resource_type: str, parameter: str, value: str) -> dict[str, str]:
    return {
        "value": value,
        "detail": f"Could not find {resource_type} with id: [{value}].",
        "title": "Not Found Error",
        "resource_type": resource_type,
        "parameter": parameter,
        "resource_id": value,
        "type": PROBLEMS + "resource-not-found",
    }


def rate_headers(decision: RateDecision) -> dict[str, str]:
    return {
        "x-rate-limit-limit": str(decision.limit),
        "x-rate-limit-remaining": str(decision.remaining),
        "x-rate-limit-reset": str(decision.reset),
    }


#: A created post whose response dies after its first bytes ("accepted, response lost").
LOST_ANSWER = LostAnswer(201, b"application/json; charset=utf-8", b'{"data":')
