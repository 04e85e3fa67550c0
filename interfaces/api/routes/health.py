"""Liveness and readiness for orchestrators and the status page."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from interfaces.api.deps import KairosDep
from interfaces.api.schemas import HealthOut

router = APIRouter(tags=["health"])

MAX_READY_LAG = 1000
STALLED_AFTER_SECONDS = 60.0
OVERDUE = """
SELECT count(*) AS overdue, EXTRACT(EPOCH FROM now() - min(due_at)) AS oldest_seconds
FROM due_work
WHERE due_at < now() - interval '5 seconds'
  AND (claimed_until IS NULL OR claimed_until < now())
"""


def _dispatcher_check(kairos: KairosDep) -> tuple[dict[str, object], bool]:
    """Due work nobody claimed: the dispatcher is down or stuck (or far behind)."""
    with kairos.datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(OVERDUE)
        row = curs.fetchone()
    overdue = int(row["overdue"]) if row else 0
    oldest = float(row["oldest_seconds"] or 0.0) if row else 0.0
    return {"overdue": overdue, "oldestSeconds": round(oldest, 1)}, oldest < STALLED_AFTER_SECONDS


def _broker_check(redis_url: str | None) -> tuple[object, bool]:
    if not redis_url:
        return "in-process", True
    import redis

    try:
        redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        return f"unreachable: {type(exc).__name__}", False
    return "ok", True


@router.get("/healthz", response_model=HealthOut)
def healthz() -> HealthOut:
    """The process is up and serving."""
    return HealthOut(status="ok")


@router.get("/readyz", response_model=HealthOut, responses={503: {"model": HealthOut}})
def readyz(kairos: KairosDep) -> JSONResponse:
    """Ready when the database answers, every projection is within MAX_READY_LAG events of
    the store, no due work has waited unclaimed for a minute, and the broker and the media
    storage answer."""
    checks: dict[str, object] = {}
    ready = True
    try:
        head = kairos.app.last_position()
        checks["database"] = "ok"
        for view in kairos.views:
            lag = head - view.position
            checks[f"projection:{view.name}"] = {"lag": lag}
            ready = ready and lag <= MAX_READY_LAG
        checks["dispatcher"], dispatching = _dispatcher_check(kairos)
        ready = ready and dispatching
    except Exception as exc:  # any failure to reach the database means not ready
        checks["database"] = f"unreachable: {type(exc).__name__}"
        ready = False
    checks["broker"], reachable = _broker_check(kairos.settings.redis_url)
    ready = ready and reachable
    storage_problem = kairos.storage.check()
    checks["mediaStorage"] = storage_problem or "ok"
    ready = ready and storage_problem is None
    body = HealthOut(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
