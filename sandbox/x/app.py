"""The X simulator as one FastAPI application (mounted at ``/x`` by ``sandbox.app``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from sandbox.x.admin import build_admin_router
from sandbox.x.api import ApiRoutes
from sandbox.x.config import XSimConfig
from sandbox.x.media import build_media_router
from sandbox.x.oauth import build_oauth_router
from sandbox.x.problems import problem
from sandbox.x.state import XSim


def create_x_app(data_dir: Path, config: XSimConfig | None = None) -> FastAPI:
    """A simulator of X's OAuth 2.0 and API v2 whose state lives in ``data_dir/x.sqlite3``
    (media segments under ``data_dir/x-media/`` until finalize).

    ``config`` is copied: runtime changes through ``/_sandbox/`` never leak back.
    The open store is on ``app.state.xsim``; call ``app.state.xsim.store.close()`` when done.
    """
    sim = XSim.open(data_dir, dataclasses.replace(config or XSimConfig()))
    app = FastAPI(title="X API v2 (sandbox)", version="2.167-sandbox")
    app.state.xsim = sim

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "Not Found", 405: "Method Not Allowed"}
        title = titles.get(exc.status_code, "Error")
        return problem(exc.status_code, title, title)

    app.include_router(build_oauth_router(sim))
    api = ApiRoutes(sim)
    app.include_router(api.router())
    app.include_router(build_media_router(api))
    app.include_router(build_admin_router(sim))
    return app
