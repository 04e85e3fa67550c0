"""Liveness and readiness for orchestrators and the status page."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from interfaces.api.deps import KairosDep
from interfaces.api.schemas import HealthOut

router = APIRouter(tags=["health"])

MAX_READY_LAG = 1000


@router.get("/healthz", response_model=HealthOut)
def healthz() -> HealthOut:
    """The process is up and serving."""
    return HealthOut(status="ok")


@router.get("/readyz", response_model=HealthOut, responses={503: {"model": HealthOut}})
def readyz(kairos: KairosDep) -> JSONResponse:
    """Database reachable and every projection within MAX_READY_LAG events of the store."""
    checks: dict[str, object] = {}
    ready = True
    try:
        head = kairos.app.last_position()
        checks["database"] = "ok"
        for view in kairos.views:
            lag = head - view.position
            checks[f"projection:{view.name}"] = {"lag": lag}
            ready = ready and lag <= MAX_READY_LAG
    except Exception as exc:  # any failure to reach the database means not ready
        checks["database"] = f"unreachable: {type(exc).__name__}"
        ready = False
    body = HealthOut(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
