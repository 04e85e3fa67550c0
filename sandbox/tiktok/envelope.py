"""TikTok's answers: the v2 ``{data, error}`` envelope, the flat OAuth errors, lost answers."""

from __future__ import annotations

import secrets
import time
from typing import Any

from starlette.responses import JSONResponse, Response

from sandbox.common.faults import DropMode, LostAnswer

MESSAGES = {
    "access_token_invalid": "The access token is invalid or not found in the request.",
    "scope_not_authorized": "The user did not authorize the scope required for completing"
    " this request.",
    "rate_limit_exceeded": "API rate limit was exceeded. Please try again later.",
    "internal_error": "Something went wrong. Please try again later.",
    "spam_risk_too_many_posts": "The daily post cap from the API is reached for the current user.",
    "spam_risk_user_banned_from_posting": "The user is banned from making new posts.",
    "reached_active_user_cap": "The daily quota for active publishing users from your client"
    " is reached.",
    "unaudited_client_can_only_post_to_private_accounts": "Unaudited clients can only post to"
    " a private account.",
    "url_ownership_unverified": "To use your URL as a media source, please verify the domain"
    " or URL prefix.",
    "privacy_level_option_mismatch": "privacy_level is not one of the privacy_level_options"
    " returned by the creator info endpoint.",
    "invalid_publish_id": "The publish_id does not exist.",
    "token_not_authorized_for_specified_publish_id": "The access token does not own this"
    " publish_id.",
    "publish_not_cancellable": "The publish is no longer cancellable.",
}


def log_id() -> str:
    """A log id shaped like TikTok's: a timestamp and 18 hex digits."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(9).upper()


class TikTokJSONResponse(JSONResponse):
    media_type = "application/json; charset=UTF-8"


def ok(data: dict[str, Any]) -> JSONResponse:
    logged = log_id()
    body = {"data": data, "error": {"code": "ok", "message": "", "log_id": logged}}
    return TikTokJSONResponse(body, headers={"x-tt-logid": logged})


def error(code: str, status: int, message: str | None = None) -> JSONResponse:
    """A failed v2 call: an empty ``data`` and the error; the status may well be 200."""
    text = message if message is not None else MESSAGES.get(code, code.replace("_", " "))
    logged = log_id()
    body = {"data": {}, "error": {"code": code, "message": text, "log_id": logged}}
    return TikTokJSONResponse(body, status_code=status, headers={"x-tt-logid": logged})


def invalid_params(message: str) -> JSONResponse:
    return error("invalid_params", 400, message)


def server_error(status: int = 500) -> JSONResponse:
    return error("internal_error", status)


def oauth_error(
    code: str, description: str, status: int = 400, *, as_200: bool = False
) -> JSONResponse:
    """Login Kit's flat error body (not the v2 envelope), with HTTP 200 when configured."""
    body = {"error": code, "error_description": description, "log_id": log_id()}
    return TikTokJSONResponse(
        body, status_code=200 if as_200 else status, headers={"cache-control": "no-store"}
    )


#: A request whose answer dies after its first bytes ("done, answer lost").
LOST_ANSWER = LostAnswer(200, b"application/json; charset=UTF-8", b'{"data":')


def lost_response(mode: DropMode) -> Response:
    """What the client sees of a request that did its work but whose answer got lost."""
    return LOST_ANSWER.response(mode)
