"""``/api/media/presign`` (seed 001, "Media uploads"), and the local store's own endpoints.

With S3-compatible storage the upload URL points at the bucket and files never touch Kairos.
With the local store (``kairos up``), Kairos plays the bucket: ``PUT /media/upload/<key>``
checks the signed URL exactly as S3 would, and ``GET /media/<key>`` serves public files.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from interfaces.api.deps import KairosDep, PrincipalDep
from interfaces.api.errors import error_response
from interfaces.api.routes.posts import ERRORS
from interfaces.api.schemas import PresignEnvelope, PresignInput
from interfaces.storage.local import LocalStorage, UploadRefused

router = APIRouter(prefix="/api/media", tags=["media"], responses=ERRORS)
files_router = APIRouter(include_in_schema=False)


@router.post("/presign", response_model=PresignEnvelope)
def presign(body: PresignInput, kairos: KairosDep, principal: PrincipalDep) -> PresignEnvelope:
    """A short-lived URL to PUT one file to, and the public URL to use in ``mediaUrls``.

    The file's type and size are checked against every platform's limits before a URL is
    issued, and the URL is signed for exactly that Content-Type and size: storage refuses
    anything else."""
    upload = kairos.media.presign(
        principal.organization_id,
        filename=body.filename,
        content_type=body.content_type,
        size=body.size,
    )
    return PresignEnvelope(
        key=upload.key,
        upload_url=upload.upload_url,
        public_url=upload.public_url,
        expires_in=upload.expires_in,
        headers={"Content-Type": upload.content_type},
    )


@files_router.put("/media/upload/{key:path}")
async def upload(key: str, request: Request, kairos: KairosDep) -> Response:
    storage = kairos.storage
    if not isinstance(storage, LocalStorage):
        return error_response(404, "not found")
    try:
        upload = await run_in_threadpool(
            storage.begin_upload,
            key,
            dict(request.query_params),
            content_type=request.headers.get("content-type"),
            length=request.headers.get("content-length"),
        )
        try:
            # File writes run in the thread pool, and a body still arriving once the URL
            # (plus some grace) has expired is cut off rather than held open for ever.
            async with asyncio.timeout(upload.seconds_left(storage.upload_grace)):
                async for chunk in request.stream():
                    await run_in_threadpool(upload.write, chunk)
        except TimeoutError:
            upload.abort()
            return error_response(408, "the upload took too long; request a new URL")
        except BaseException:
            upload.abort()
            raise
        stored = await run_in_threadpool(upload.commit)
    except UploadRefused as refused:
        return error_response(refused.status, refused.message)
    return Response(status_code=200, headers={"ETag": stored.etag or ""})


@files_router.api_route("/media/{key:path}", methods=["GET", "HEAD"])
def public_file(key: str, kairos: KairosDep) -> Response:
    storage = kairos.storage
    found = storage.file_for(key) if isinstance(storage, LocalStorage) else None
    if found is None:
        return error_response(404, "not found")
    path, content_type = found
    return FileResponse(
        path, media_type=content_type, headers={"Cache-Control": "public, max-age=31536000"}
    )
