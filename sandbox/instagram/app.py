"""The Instagram simulator as one FastAPI application (mounted at ``/instagram`` by
``sandbox.app``).

Paths, relative to the mount, standing in for Meta's hosts:

| real                                      | sandbox                         |
|-------------------------------------------|---------------------------------|
| ``www.instagram.com/oauth/authorize``      | ``/oauth/authorize``            |
| ``api.instagram.com/oauth/access_token``   | ``/oauth/access_token``         |
| ``graph.instagram.com``                    | ``/graph``                      |
| ``www.facebook.com/v25.0/dialog/oauth``    | ``/facebook/v25.0/dialog/oauth`` |
| ``graph.facebook.com``                     | ``/facebook-graph``             |

and the test knobs under ``/_sandbox``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from sandbox.instagram import problems
from sandbox.instagram.admin import build_admin_router
from sandbox.instagram.config import InstagramSimConfig
from sandbox.instagram.graph import Graph, Host
from sandbox.instagram.oauth import build_oauth_router
from sandbox.instagram.publishing import PublishingRoutes
from sandbox.instagram.reads import ReadRoutes
from sandbox.instagram.state import InstagramSim


def create_instagram_app(data_dir: Path, config: InstagramSimConfig | None = None) -> FastAPI:
    """A simulator of the Instagram Platform (both login paths) whose state lives in
    ``data_dir/instagram.sqlite3``.

    ``config`` is copied: runtime changes through ``/_sandbox/`` never leak back.
    The state is on ``app.state.sim``; call ``app.state.sim.close()`` when done.
    """
    sim = InstagramSim.open(Path(data_dir), dataclasses.replace(config or InstagramSimConfig()))
    app = FastAPI(title="Instagram Platform (sandbox)", version="v25.0-sandbox")
    app.state.sim = sim

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            return problems.graph_error(400, 100, "(#100) Unsupported request method")
        return problems.unknown_path(request.url.path)

    app.include_router(build_oauth_router(sim))
    app.include_router(build_admin_router(sim))
    hosts: tuple[tuple[str, Host], ...] = (("/graph", "instagram"), ("/facebook-graph", "facebook"))
    for prefix, host in hosts:
        graph = Graph(sim, host)
        app.include_router(PublishingRoutes(graph).router(), prefix=prefix)
        app.include_router(ReadRoutes(graph).router(), prefix=prefix)
    return app
