"""All platform simulators behind one ASGI app: ``/x``, ``/instagram`` and ``/tiktok``.

Run it standalone with ``python -m sandbox.app --data-dir .sandbox --port 8001``.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from starlette.responses import JSONResponse

from sandbox.instagram import create_instagram_app
from sandbox.instagram.state import InstagramSim
from sandbox.tiktok import TikTokSimConfig, create_tiktok_app
from sandbox.tiktok.state import TikTokSim
from sandbox.x import XSimConfig, create_x_app
from sandbox.x.state import XSim


def create_sandbox_app(
    data_dir: Path,
    *,
    x_config: XSimConfig | None = None,
    tiktok_config: TikTokSimConfig | None = None,
) -> FastAPI:
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    x_app = create_x_app(data_dir, x_config)
    x_sim: XSim = x_app.state.xsim
    instagram_app = create_instagram_app(data_dir)
    instagram_sim: InstagramSim = instagram_app.state.sim
    tiktok_app = create_tiktok_app(data_dir, tiktok_config)
    tiktok_sim: TikTokSim = tiktok_app.state.sim
    simulators = {
        "x": {
            "name": "X (Twitter) API v2",
            "path": "/x",
            "authorize_url": "/x/i/oauth2/authorize",
            "api_base_url": "/x",
            "admin": "/x/_sandbox",
        },
        "instagram": {
            "name": "Instagram Platform (Instagram Login, Facebook Login for Business)",
            "path": "/instagram",
            "authorize_url": "/instagram/oauth/authorize",
            "token_url": "/instagram/oauth/access_token",
            "api_base_url": "/instagram/graph",
            "facebook_authorize_url": "/instagram/facebook/v25.0/dialog/oauth",
            "facebook_api_base_url": "/instagram/facebook-graph",
            "admin": "/instagram/_sandbox",
        },
        "tiktok": {
            "name": "TikTok Login Kit v2, Content Posting API and Display API",
            "path": "/tiktok",
            "authorize_url": "/tiktok/v2/auth/authorize/",
            "api_base_url": "/tiktok",
            "admin": "/tiktok/_sandbox",
        },
    }

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            x_sim.store.close()
            instagram_sim.close()
            tiktok_sim.close()

    app = FastAPI(title="Kairos platform sandbox", lifespan=lifespan)
    app.state.simulators = {"x": x_sim, "instagram": instagram_sim, "tiktok": tiktok_sim}

    @app.get("/")
    async def index() -> JSONResponse:
        return JSONResponse({"simulators": list(simulators.values())})

    app.mount("/x", x_app)
    app.mount("/instagram", instagram_app)
    app.mount("/tiktok", tiktok_app)
    return app


def main() -> None:  # pragma: no cover - manual entry point
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path(".sandbox"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(create_sandbox_app(args.data_dir), host=args.host, port=args.port)


if __name__ == "__main__":  # pragma: no cover
    main()
