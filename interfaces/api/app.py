"""The FastAPI application: routes, error envelope, body-size limit."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interfaces.api.errors import error_response, install_error_handlers
from interfaces.api.routes import (
    account,
    analytics,
    collections,
    health,
    integrations,
    media,
    notifications,
    posts,
)
from interfaces.bootstrap import Kairos
from interfaces.storage.local import UPLOAD_PATH


class BodySizeLimit:
    """413 for bodies over the limit, whether declared by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UPLOAD_PATH):
            # Uploads to the local media store are bounded by their signed size instead.
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._too_large(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, f"request body is larger than {self.max_bytes} bytes")
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def truthful_openapi(api: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, minus the default 422 it adds to every route: Kairos answers
    validation errors with 400 and the seed's envelope, and says 413 for oversized bodies."""
    if api.openapi_schema is not None:
        return api.openapi_schema
    schema = get_openapi(
        title=api.title, version=api.version, description=api.description, routes=api.routes
    )
    too_large = {"description": "Request body too large", "content": _ERROR_CONTENT}
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            responses = operation.get("responses", {})
            default_422 = responses.get("422", {})
            if "HTTPValidationError" in str(default_422):
                del responses["422"]
            if method in ("post", "patch", "put"):
                responses.setdefault("413", too_large)
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    api.openapi_schema = schema
    return schema


_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}


def create_api(kairos: Kairos, **fastapi_kwargs: Any) -> FastAPI:
    api = FastAPI(
        title="Kairos",
        version="0.1.0",
        description="Self-hostable social-media scheduler (TimeToPost-compatible REST API).",
        **fastapi_kwargs,
    )
    api.state.kairos = kairos
    install_error_handlers(api)
    for module in (
        health,
        posts,
        integrations,
        collections,
        account,
        media,
        notifications,
        analytics,
    ):
        api.include_router(module.router)
    api.include_router(integrations.callback_router)
    api.include_router(media.files_router)
    api.add_middleware(BodySizeLimit, max_bytes=kairos.settings.max_body_bytes)
    api.openapi = lambda: truthful_openapi(api)  # type: ignore[method-assign]
    return api
