"""Request validation for the X API v2 endpoints (CreatePostsRequest, query params)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.x.db import Media

ID_RE = re.compile(r"^[0-9]{1,19}$")

TWEET_FIELDS = frozenset(
    {
        "article",
        "attachments",
        "author_id",
        "card_uri",
        "community_id",
        "context_annotations",
        "conversation_id",
        "created_at",
        "display_text_range",
        "edit_controls",
        "edit_history_tweet_ids",
        "entities",
        "geo",
        "id",
        "in_reply_to_user_id",
        "lang",
        "media_metadata",
        "non_public_metrics",
        "note_tweet",
        "organic_metrics",
        "possibly_sensitive",
        "promoted_metrics",
        "public_metrics",
        "referenced_tweets",
        "reply_settings",
        "scopes",
        "source",
        "text",
        "withheld",
    }
)
USER_FIELDS = frozenset(
    {
        "affiliation",
        "connection_status",
        "created_at",
        "description",
        "entities",
        "id",
        "location",
        "most_recent_tweet_id",
        "name",
        "pinned_tweet_id",
        "profile_banner_url",
        "profile_image_url",
        "protected",
        "public_metrics",
        "receives_your_dm",
        "subscription_type",
        "url",
        "username",
        "verified",
        "verified_type",
        "withheld",
    }
)

# CreatePostsRequest, additionalProperties: false.
_TWEET_KEYS = {
    "card_uri": str,
    "community_id": str,
    "direct_message_deep_link": str,
    "edit_options": dict,
    "for_super_followers_only": bool,
    "geo": dict,
    "made_with_ai": bool,
    "media": dict,
    "nullcast": bool,
    "paid_partnership": bool,
    "poll": dict,
    "quote_tweet_id": str,
    "reply": dict,
    "reply_settings": str,
    "share_with_followers": bool,
    "text": str,
}
_REPLY_SETTINGS = ("following", "mentionedUsers", "subscribers", "verified")
_TYPE_NAMES = {str: "string", bool: "boolean", dict: "object", list: "array", int: "integer"}


def is_id(value: str) -> bool:
    return bool(ID_RE.match(value))


def _err(path: str, message: str) -> dict[str, Any]:
    return {"message": f"{path}: {message}"}


def check_object(
    value: dict[str, Any], path: str, allowed: dict[str, type], required: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    errors = []
    for key, item in value.items():
        expected = allowed.get(key)
        if expected is None:
            errors.append(
                _err(
                    f"{path}.{key}",
                    "is not defined in the schema and the schema does not allow additional"
                    " properties",
                )
            )
        elif not isinstance(item, expected) or (expected is int and isinstance(item, bool)):
            errors.append(
                _err(f"{path}.{key}", f"{_type_name(item)} found, {_TYPE_NAMES[expected]} expected")
            )
    errors.extend(
        _err(f"{path}.{key}", "is missing but it is required")
        for key in required
        if key not in value
    )
    return errors


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    for kind, name in _TYPE_NAMES.items():
        if isinstance(value, kind):
            return "boolean" if isinstance(value, bool) else name
    return type(value).__name__


def _check_ids(value: object, path: str, low: int, high: int) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return [_err(path, f"{_type_name(value)} found, array expected")]
    errors = []
    if not low <= len(value) <= high:
        errors.append(_err(path, f"must have between {low} and {high} items"))
    for index, item in enumerate(value):
        if not isinstance(item, str) or not is_id(item):
            errors.append(
                _err(f"{path}[{index}]", "does not match the regex pattern ^[0-9]{1,19}$")
            )
    return errors


def validate_tweet_body(body: object) -> list[dict[str, Any]]:
    """Schema errors of a ``POST /2/tweets`` body, empty when it is valid."""
    if not isinstance(body, dict):
        return [_err("$", f"{_type_name(body)} found, object expected")]
    errors = check_object(body, "$", _TWEET_KEYS)
    if errors:
        return errors
    if "text" not in body and "media" not in body and "poll" not in body:
        return [_err("$.text", "is missing but it is required")]
    if "text" in body and not body["text"].strip() and "media" not in body:
        return [_err("$.text", "must be at least 1 characters long")]
    if "reply" in body:
        reply = body["reply"]
        errors += check_object(
            reply,
            "$.reply",
            {"in_reply_to_tweet_id": str, "exclude_reply_user_ids": list},
            required=("in_reply_to_tweet_id",),
        )
        target = reply.get("in_reply_to_tweet_id")
        if isinstance(target, str) and not is_id(target):
            errors.append(
                _err(
                    "$.reply.in_reply_to_tweet_id", "does not match the regex pattern ^[0-9]{1,19}$"
                )
            )
        if isinstance(reply.get("exclude_reply_user_ids"), list):
            errors += _check_ids(
                reply["exclude_reply_user_ids"], "$.reply.exclude_reply_user_ids", 0, 50
            )
    if "media" in body:
        media = body["media"]
        errors += check_object(
            media, "$.media", {"media_ids": list, "tagged_user_ids": list}, required=("media_ids",)
        )
        if isinstance(media.get("media_ids"), list):
            errors += _check_ids(media["media_ids"], "$.media.media_ids", 1, 4)
        if isinstance(media.get("tagged_user_ids"), list):
            errors += _check_ids(media["tagged_user_ids"], "$.media.tagged_user_ids", 0, 10)
    if "quote_tweet_id" in body and not is_id(body["quote_tweet_id"]):
        errors.append(_err("$.quote_tweet_id", "does not match the regex pattern ^[0-9]{1,19}$"))
    if "reply_settings" in body and body["reply_settings"] not in _REPLY_SETTINGS:
        errors.append(_err("$.reply_settings", "does not have a value in the enumeration"))
    if "poll" in body:
        errors += _check_poll(body["poll"])
    return errors


INVALID_MEDIA_IDS = "Your media IDs are invalid."
MEDIA_MIX = "You can attach up to 4 photos, or 1 animated GIF, or 1 video, but not a mix."


def attachment_problem(
    ids: Sequence[str], found: Sequence[Media | None], owner_id: str, now: float
) -> str | None:
    """Why ``media.media_ids`` cannot go on this user's post, or ``None``.

    Each id must name an upload of the poster that finished processing and has not expired;
    together they are 1-4 photos or a single video or animated GIF (reference §3.2).
    """
    if len(set(ids)) != len(ids):
        return INVALID_MEDIA_IDS
    if any(
        media is None or media.owner_id != owner_id or not media.is_ready(now) for media in found
    ):
        return INVALID_MEDIA_IDS
    kinds = [media.kind for media in found if media is not None]
    if len(kinds) > 1 and any(kind != "photo" for kind in kinds):
        return MEDIA_MIX
    return None


def _check_poll(poll: dict[str, Any]) -> list[dict[str, Any]]:
    errors = check_object(
        poll,
        "$.poll",
        {"options": list, "duration_minutes": int, "reply_settings": str},
        required=("options", "duration_minutes"),
    )
    options = poll.get("options")
    if isinstance(options, list):
        if not 2 <= len(options) <= 4:
            errors.append(_err("$.poll.options", "must have between 2 and 4 items"))
        for index, option in enumerate(options):
            if not isinstance(option, str) or not 1 <= len(option) <= 25:
                errors.append(_err(f"$.poll.options[{index}]", "must be 1 to 25 characters"))
    duration = poll.get("duration_minutes")
    if isinstance(duration, int) and not 5 <= duration <= 10080:
        errors.append(_err("$.poll.duration_minutes", "must be between 5 and 10080"))
    return errors


def parse_fields(raw: str | None, allowed: frozenset[str]) -> set[str] | list[dict[str, Any]]:
    """The requested ``*.fields`` set, or the invalid-request errors for unknown names."""
    if raw is None:
        return set()
    names = [name for name in raw.split(",") if name]
    unknown = [name for name in names if name not in allowed]
    if unknown:
        choices = ",".join(sorted(allowed))
        return [
            {
                "parameters": {"fields": unknown},
                "message": f"The fields query parameter value [{name}] is not one of [{choices}]",
            }
            for name in unknown
        ]
    return set(names)


def parse_ids(raw: str | None) -> tuple[list[str], list[dict[str, Any]]]:
    """The ``ids`` of a lookup (1 to 100 post ids, comma-separated) and the invalid-request
    errors, in X's words."""
    if not raw:
        return [], [
            {"parameters": {"ids": []}, "message": "The `ids` query parameter can not be empty"}
        ]
    ids = raw.split(",")
    if len(ids) > 100:
        message = (
            f"The number of values in the `ids` query parameter list [{len(ids)}]"
            " is not between 1 and 100"
        )
        return [], [_bad_param("ids", raw, message)]
    errors = [
        _bad_param("ids", value, f"The `ids` query parameter value [{value}] is not valid")
        for value in ids
        if not is_id(value)
    ]
    return ([], errors) if errors else (ids, [])


def parse_time(name: str, raw: str | None) -> float | dict[str, Any] | None:
    """An RFC 3339 timestamp as epoch seconds, or the invalid-request error."""
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        return {
            "parameters": {name: [raw]},
            "message": f"Invalid '{name}':'{raw}'. '{name}' must be a valid RFC 3339 timestamp.",
        }
    return moment.timestamp()


@dataclass(frozen=True)
class TimelineQuery:
    max_results: int
    start_time: float | None
    end_time: float | None
    since_id: int | None
    until_id: int | None
    exclude_replies: bool
    fields: set[str]


def _bad_param(name: str, value: str, message: str) -> dict[str, Any]:
    return {"parameters": {name: [value]}, "message": message}


def parse_timeline_query(
    user_id: str, query: Mapping[str, str]
) -> TimelineQuery | list[dict[str, Any]]:
    """``GET /2/users/:id/tweets`` parameters, or the invalid-request errors."""
    errors: list[dict[str, Any]] = []
    if not is_id(user_id):
        errors.append(
            _bad_param("id", user_id, f"The `id` query parameter value [{user_id}] is not valid")
        )
    raw_max = query.get("max_results", "10")
    if not raw_max.isdigit() or not 5 <= int(raw_max) <= 100:
        message = f"The `max_results` query parameter value [{raw_max}] is not between 5 and 100"
        errors.append(_bad_param("max_results", raw_max, message))
    times: dict[str, float | None] = {}
    for name in ("start_time", "end_time"):
        parsed = parse_time(name, query.get(name))
        if isinstance(parsed, dict):
            errors.append(parsed)
        else:
            times[name] = parsed
    ids: dict[str, int | None] = {"since_id": None, "until_id": None}
    for name in ids:
        value = query.get(name)
        if value is None:
            continue
        if is_id(value):
            ids[name] = int(value)
        else:
            message = f"The `{name}` query parameter value [{value}] is not valid"
            errors.append(_bad_param(name, value, message))
    token = query.get("pagination_token")
    if token is not None:
        try:
            cursor = int(token, 36)
        except ValueError:
            message = f"The `pagination_token` query parameter value [{token}] is not valid"
            errors.append(_bad_param("pagination_token", token, message))
        else:
            until = ids["until_id"]
            ids["until_id"] = cursor if until is None else min(until, cursor)
    fields = parse_fields(query.get("tweet.fields"), TWEET_FIELDS)
    if isinstance(fields, list):
        errors.extend(fields)
    if errors or isinstance(fields, list):
        return errors
    return TimelineQuery(
        max_results=int(raw_max),
        start_time=times["start_time"],
        end_time=times["end_time"],
        since_id=ids["since_id"],
        until_id=ids["until_id"],
        exclude_replies="replies" in query.get("exclude", "").split(","),
        fields=fields,
    )
