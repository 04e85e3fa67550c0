"""The ``/_sandbox/`` endpoints every simulator offers (config, faults, clock) and the
JSON-body handling of all its test knobs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.common.clock import SimClock
from sandbox.common.faults import FaultTable
from sandbox.common.knobs import KnobRules, KnobsT

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def read_json(request: Request) -> Any:
    """The JSON body (``{}`` when empty), or a 400 response when it is not JSON."""
    try:
        return json.loads(await request.body() or b"{}")
    except ValueError:
        return bad("body must be JSON")


async def json_object(request: Request) -> dict[str, Any] | JSONResponse:
    body = await read_json(request)
    if isinstance(body, JSONResponse):
        return body
    return body if isinstance(body, dict) else bad("body must be a JSON object")


def knob_routes(
    path: str,
    target: object,
    allowed: tuple[str, ...],
    rules: KnobRules,
    view: Callable[[], dict[str, Any]],
) -> APIRouter:
    """``GET path`` shows ``view()``; ``POST path`` sets some of ``allowed`` on ``target``."""
    router = APIRouter()

    @router.get(path)
    async def get_knobs() -> Response:
        return JSONResponse(view())

    @router.post(path)
    async def set_knobs(request: Request) -> Response:
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        error = rules.apply(target, body, allowed)
        return bad(error) if error else JSONResponse(view())

    return router


def endpoint_fault_routes(
    faults: FaultTable[Any, KnobsT],
    endpoints: tuple[str, ...],
    blank: Callable[[], KnobsT],
    allowed: tuple[str, ...],
    rules: KnobRules,
) -> APIRouter:
    """``/faults/{endpoint}``: show, change or clear the faults aimed at one endpoint."""
    router = APIRouter()
    unknown = f"unknown endpoint; one of: {', '.join(endpoints)}"

    @router.get("/faults/{endpoint}")
    async def get_endpoint_faults(endpoint: str) -> Response:
        if endpoint not in endpoints:
            return bad(unknown)
        with faults.lock:
            return JSONResponse(asdict(faults.endpoints.get(endpoint) or blank()))

    @router.post("/faults/{endpoint}")
    async def set_endpoint_faults(endpoint: str, request: Request) -> Response:
        if endpoint not in endpoints:
            return bad(unknown)
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        with faults.lock:
            fault = rules.edited(faults.endpoints.get(endpoint) or blank(), body, allowed)
            if isinstance(fault, str):
                return bad(fault)
            faults.set(endpoint, fault)
            return JSONResponse(asdict(fault))

    @router.delete("/faults/{endpoint}")
    async def clear_endpoint_faults(endpoint: str) -> Response:
        with faults.lock:
            faults.endpoints.pop(endpoint, None)
        return JSONResponse(asdict(blank()))

    return router


def clock_routes(clock: SimClock) -> APIRouter:
    """``/clock``: read the simulator's clock, or move it forward."""
    router = APIRouter()

    @router.get("/clock")
    async def get_clock() -> Response:
        return JSONResponse({"now": clock.now(), "offset_seconds": clock.offset})

    @router.post("/clock")
    async def advance_clock(request: Request) -> Response:
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        seconds = body.get("advance_seconds")
        if set(body) != {"advance_seconds"} or not isinstance(seconds, int | float) or seconds < 0:
            return bad('expected {"advance_seconds": <non-negative number>}')
        clock.advance(float(seconds))
        return JSONResponse({"now": clock.now(), "offset_seconds": clock.offset})

    return router


def public_config(config: DataclassInstance, *tuples: str) -> dict[str, Any]:
    """The config as ``GET /_sandbox/config`` shows it: no client secret, tuples as lists."""
    data = asdict(config)
    data.pop("client_secret", None)
    for name in tuples:
        value = getattr(config, name)
        if value is not None:
            data[name] = list(value)
    return data
