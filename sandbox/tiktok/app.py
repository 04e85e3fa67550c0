"""The TikTok simulator as one FastAPI application (mounted at ``/tiktok`` by ``sandbox.app``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from sandbox.tiktok.admin import build_admin_router
from sandbox.tiktok.api import ApiRoutes
from sandbox.tiktok.config import TikTokSimConfig
from sandbox.tiktok.envelope import error
from sandbox.tiktok.oauth import build_oauth_router
from sandbox.tiktok.publish import build_publish_router
from sandbox.tiktok.state import TikTokSim


def create_tiktok_app(data_dir: Path, config: TikTokSimConfig | None = None) -> FastAPI:
    """A simulator of TikTok's Login Kit v2, Content Posting API and Display API whose state
    lives in ``data_dir/tiktok.sqlite3`` (bytes in flight under ``data_dir/tiktok-media/``).

    ``config`` is copied: runtime changes through ``/_sandbox/`` never leak back.
    The state is on ``app.state.sim``; call ``app.state.sim.close()`` when done.
    """
    sim = TikTokSim.open(Path(data_dir), dataclasses.replace(config or TikTokSimConfig()))
    app = FastAPI(title="TikTok API v2 (sandbox)", version="v2-sandbox")
    app.state.sim = sim

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        messages = {404: "Not found.", 405: "Method not allowed."}
        return error("invalid_params", exc.status_code, messages.get(exc.status_code, "Error."))

    app.include_router(build_oauth_router(sim))
    api = ApiRoutes(sim)
    app.include_router(api.router())
    app.include_router(build_publish_router(api))
    app.include_router(build_admin_router(sim))
    return app
