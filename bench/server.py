"""Entry points of the benchmark's child processes (started with ``multiprocessing`` spawn).

The API runs in its own process so the load generator never competes with it for the GIL;
it is wired exactly like production (``build`` + ``create_api``) with the projection
runners in the same process, served by uvicorn with uvloop/httptools when installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import signal
from typing import Any, cast


def uvicorn_options() -> dict[str, str]:
    """The fastest event loop and HTTP parser that are installed."""
    return {
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
    }


def run_projector(settings_values: dict[str, Any]) -> None:
    """The production projector process (``kairos projector``): runners only, no HTTP."""
    import signal
    import threading

    from interfaces.bootstrap import build
    from interfaces.config import Settings

    logging.basicConfig(level=logging.WARNING)
    kairos = build(Settings(**settings_values))
    kairos.start_projections()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    kairos.close()


def run_api(settings_values: dict[str, Any], port: int) -> None:
    """Build Kairos and serve the API on ``port`` until SIGTERM, as ``kairos api`` does
    (the projector runs in its own process, as in production)."""
    import uvicorn

    from interfaces.api.app import create_api
    from interfaces.bootstrap import build
    from interfaces.config import Settings

    logging.basicConfig(level=logging.WARNING)
    kairos = build(Settings(**settings_values))
    config = uvicorn.Config(
        create_api(kairos),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        backlog=2048,
        # Longer than the load generator's idle gaps, so a reused keep-alive connection is
        # never closed under it (that race showed up as a client-side IncompleteReadError).
        timeout_keep_alive=75,
        **uvicorn_options(),  # type: ignore[arg-type]
    )
    try:
        uvicorn.Server(config).run()
    finally:
        kairos.close()


_NULL_RESPONSE = (
    b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 16\r\n\r\n"
    b'{"success":true}'
)


class _NullProtocol(asyncio.Protocol):
    """Answers every HTTP/1.1 request (with or without a body) with a fixed 201."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            assert self.transport is not None
            self.transport.write(_NULL_RESPONSE)


def run_null(port: int) -> None:
    """A null HTTP server: measures what the load generator alone can push."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_NullProtocol, "127.0.0.1", port, backlog=1024)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with server:
            await stop.wait()

    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())
