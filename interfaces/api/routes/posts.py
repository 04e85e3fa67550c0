"""``/api/posts``: the seeds' posts API, plus edit, history and as-of reads for auditors.

Endpoints are plain ``def``: the event store is synchronous, so they run in the thread pool
and never block the event loop.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from application.posts import PostChanges, PostInput
from domain.errors import InvalidField
from interfaces.api.deps import KairosDep, PrincipalDep
from interfaces.api.errors import UNAVAILABLE
from interfaces.api.schemas import (
    DeletedEnvelope,
    ErrorBody,
    HistoryEnvelope,
    HistoryEvent,
    PostCreate,
    PostEnvelope,
    PostListEnvelope,
    PostOut,
    PostStatusName,
    PostUpdate,
    parse_timestamp,
)

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Validation error naming the field"},
    401: {"model": ErrorBody, "description": "Missing, invalid, expired or revoked token"},
    403: {"model": ErrorBody, "description": "Permission or plan limit"},
    404: {"model": ErrorBody, "description": "Not found (including other organizations' posts)"},
}

router = APIRouter(prefix="/api/posts", tags=["posts"], responses=ERRORS)


def as_json(model: BaseModel, status_code: int = 200) -> Response:
    """Serialize once, in pydantic-core. Returning the model itself would make FastAPI
    validate it a second time against ``response_model`` before serializing it."""
    return Response(
        model.model_dump_json(by_alias=True), status_code=status_code, media_type="application/json"
    )


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Same key and body return the same post; same key, other body: 422.",
    ),
]


@router.get("", response_model=PostListEnvelope)
def list_posts(
    kairos: KairosDep,
    principal: PrincipalDep,
    status: Annotated[PostStatusName | None, Query(description="Only posts in this status")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    """Newest first. Sees every write that committed before the request arrived."""
    kairos.posts_view.catch_up_to(
        kairos.app.last_position(), kairos.settings.read_your_writes_timeout
    )
    try:
        page, next_cursor = kairos.posts_view.list_posts(
            principal.organization_id, status=status, cursor=cursor, limit=limit
        )
    except ValueError as exc:
        raise InvalidField("cursor", str(exc)) from None
    return as_json(PostListEnvelope(posts=[PostOut.of(p) for p in page], next_cursor=next_cursor))


@router.post(
    "",
    status_code=201,
    response_model=PostEnvelope,
    responses={
        422: {"model": ErrorBody, "description": "Idempotency-Key reused with another body"},
        **UNAVAILABLE,
    },
)
def create_post(
    body: PostCreate,
    kairos: KairosDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    fingerprint = None
    if idempotency_key is not None:
        canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        fingerprint = hashlib.sha256(canonical.encode()).hexdigest()
    saved = kairos.posts.create(
        principal.organization_id,
        principal.user_id,
        PostInput(
            content=body.content,
            thread=body.thread,
            media_urls=body.media_urls,
            account_ids=body.account_ids,
            platforms=body.platforms,
            collection_ids=body.collection_ids,
            scheduled_at=body.scheduled_datetime(),
        ),
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
    )
    response = as_json(PostEnvelope(post=PostOut.of(saved.post)), status_code=201)
    if saved.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@router.get("/{post_id}", response_model=PostEnvelope)
def get_post(
    post_id: UUID,
    kairos: KairosDep,
    principal: PrincipalDep,
    as_of: Annotated[
        str | None,
        Query(alias="asOf", max_length=64, description="ISO 8601: the post as it stood then"),
    ] = None,
) -> Response:
    moment = None
    if as_of is not None:
        try:
            moment = parse_timestamp(as_of, "asOf")
        except ValueError as exc:
            raise InvalidField("asOf", str(exc)) from None
    post = kairos.posts.get(principal.organization_id, post_id, moment)
    return as_json(PostEnvelope(post=PostOut.of(post)))


@router.patch(
    "/{post_id}",
    response_model=PostEnvelope,
    responses={409: {"model": ErrorBody}, **UNAVAILABLE},
)
def update_post(
    post_id: UUID, body: PostUpdate, kairos: KairosDep, principal: PrincipalDep
) -> Response:
    """Edit a draft or scheduled post; ``scheduledAt`` schedules, moves, or (null) unschedules."""
    sent = body.model_fields_set
    scheduled_at = parse_timestamp(body.scheduled_at) if body.scheduled_at is not None else None
    saved = kairos.posts.update(
        principal.organization_id,
        post_id,
        PostChanges(
            content=body.content,
            thread=body.thread,
            media_urls=body.media_urls,
            account_ids=body.account_ids,
            platforms=body.platforms,
            collection_ids=body.collection_ids,
            scheduled_at=scheduled_at,
            unschedule="scheduled_at" in sent and body.scheduled_at is None,
        ),
    )
    return as_json(PostEnvelope(post=PostOut.of(saved.post)))


@router.post(
    "/{post_id}/republish", response_model=PostEnvelope, responses={409: {"model": ErrorBody}}
)
def republish_post(post_id: UUID, kairos: KairosDep, principal: PrincipalDep) -> Response:
    """Try again the accounts of a failed or partial post that failed; the others stay."""
    saved = kairos.posts.republish(principal.organization_id, post_id)
    return as_json(PostEnvelope(post=PostOut.of(saved.post)))


@router.delete("/{post_id}", response_model=DeletedEnvelope, responses={409: {"model": ErrorBody}})
def delete_post(post_id: UUID, kairos: KairosDep, principal: PrincipalDep) -> DeletedEnvelope:
    """Cancel before it fires. The history stays readable for auditors."""
    kairos.posts.delete(principal.organization_id, post_id)
    return DeletedEnvelope(id=post_id)


@router.get("/{post_id}/history", response_model=HistoryEnvelope)
def post_history(post_id: UUID, kairos: KairosDep, principal: PrincipalDep) -> JSONResponse:
    """Every event of the post, oldest first: type, version, time and data (no secrets)."""
    entries = kairos.posts.history(principal.organization_id, post_id)
    envelope = HistoryEnvelope(
        post_id=post_id,
        events=[
            HistoryEvent(type=e.type, version=e.version, timestamp=e.timestamp, data=e.data)
            for e in entries
        ],
    )
    return JSONResponse(envelope.model_dump(mode="json", by_alias=True))
