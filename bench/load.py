"""Load generators (open- and closed-loop), a lean keep-alive HTTP/1.1 client, percentiles.

The client is raw asyncio rather than ``httpx``: on a 2-core machine every microsecond the
load generator burns is taken from the server or PostgreSQL, and ``httpx.AsyncClient``
costs several times more CPU per request (``calibrate`` measures both against a null
server so the report can say how much of the machine the client itself used).

Open loop: request ``i`` is due at ``start + i / rate`` whether or not earlier requests have
completed, and its latency is measured from that *scheduled* time, so a stalled server is
charged for the requests that queued behind the stall (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

RequestFactory = Callable[[int], bytes]
"""Builds the raw bytes of request number ``i`` (so each can carry its own key or body)."""

ResponseHook = Callable[[int, int, bytes, float], Awaitable[None] | None]
"""Called with (i, status, body, perf_counter at completion) for every response."""


# ---- percentiles ------------------------------------------------------------------------


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (exact: every sample is kept)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Summary:
    n: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        ordered = sorted(values)
        if not ordered:
            return cls(0, math.nan, math.nan, math.nan, math.nan, math.nan)
        return cls(
            n=len(ordered),
            p50=percentile(ordered, 50),
            p90=percentile(ordered, 90),
            p99=percentile(ordered, 99),
            max=ordered[-1],
            mean=sum(ordered) / len(ordered),
        )

    def ms(self) -> str:
        """``p50 … p90 … p99 … max …`` in milliseconds."""
        return (
            f"p50 {self.p50 * 1e3:7.2f} ms  p90 {self.p90 * 1e3:7.2f} ms  "
            f"p99 {self.p99 * 1e3:7.2f} ms  max {self.max * 1e3:7.2f} ms"
        )


# ---- a minimal HTTP/1.1 keep-alive client -----------------------------------------------


def build_request(
    method: str,
    path: str,
    *,
    host: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


class HttpConnection:
    """One persistent connection; one request at a time (no pipelining)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def open(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self) -> None:
        # asyncio sets TCP_NODELAY on TCP transports by default.
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if not self.open:
            await self.connect()
        assert self._reader is not None
        assert self._writer is not None
        self._writer.write(raw)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        chunked = False
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        body = await self._read_chunked() if chunked else await self._reader.readexactly(length)
        if close:
            self.close()
        return status, body

    async def _read_chunked(self) -> bytes:
        assert self._reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class ConnectionPool:
    """Idle keep-alive connections; a new one is opened whenever none is idle."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._idle: list[HttpConnection] = []
        self.opened = 0

    async def prewarm(self, count: int) -> None:
        for _ in range(count):
            conn = HttpConnection(self.host, self.port)
            await conn.connect()
            self.opened += 1
            self._idle.append(conn)

    def acquire(self) -> HttpConnection:
        if self._idle:
            return self._idle.pop()
        self.opened += 1
        return HttpConnection(self.host, self.port)

    def release(self, conn: HttpConnection) -> None:
        if conn.open:
            self._idle.append(conn)

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


# ---- runs -------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What one load phase measured. Times are seconds."""

    wall: float = 0.0
    client_cpu: float = 0.0
    sent: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    """Open loop: from the scheduled send time. Closed loop: from the actual send."""
    service: list[float] = field(default_factory=list)
    """From the moment the request was actually written to the complete response."""
    send_lag: list[float] = field(default_factory=list)
    """Open loop only: actual send - scheduled send (the generator's own lateness)."""
    connections: int = 0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def throughput(self) -> float:
        return self.ok / self.wall if self.wall else 0.0

    @property
    def client_cores(self) -> float:
        return self.client_cpu / self.wall if self.wall else 0.0

    def error_text(self) -> str:
        if not self.errors:
            return "0"
        detail = ", ".join(f"{k} x{v}" for k, v in self.errors.most_common(4))
        return f"{self.error_count} ({detail})"


async def _call(conn: HttpConnection, raw: bytes) -> tuple[int, bytes] | str:
    """The response, or the name of the exception that lost it (the connection is dropped)."""
    try:
        return await conn.request(raw)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        conn.close()
        return type(exc).__name__


def _tally(result: RunResult, outcome: tuple[int, bytes] | str) -> None:
    if isinstance(outcome, str):
        result.errors[outcome] += 1
    elif 200 <= outcome[0] < 300:
        result.ok += 1
    else:
        result.errors[f"HTTP {outcome[0]}"] += 1


async def open_loop(
    pool: ConnectionPool,
    make_request: RequestFactory,
    *,
    rate: float,
    duration: float,
    on_response: ResponseHook | None = None,
    first_index: int = 0,
) -> RunResult:
    """Send ``rate * duration`` requests at fixed intervals, regardless of completions."""
    result = RunResult()
    count = round(rate * duration)
    interval = 1.0 / rate
    pending: set[asyncio.Task[None]] = set()

    async def one(i: int, scheduled: float) -> None:
        raw = make_request(i)
        conn = pool.acquire()
        sent = time.perf_counter()
        result.send_lag.append(sent - scheduled)
        outcome = await _call(conn, raw)
        done = time.perf_counter()
        pool.release(conn)
        _tally(result, outcome)
        result.latencies.append(done - scheduled)
        result.service.append(done - sent)
        if not isinstance(outcome, str) and on_response is not None:
            maybe = on_response(i, outcome[0], outcome[1], done)
            if maybe is not None:
                await maybe

    cpu0 = time.process_time()
    start = time.perf_counter() + 0.01
    for n in range(count):
        scheduled = start + n * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(first_index + n, scheduled))
        pending.add(task)
        task.add_done_callback(pending.discard)
        result.sent += 1
    if pending:
        await asyncio.gather(*pending)
    result.wall = time.perf_counter() - start
    result.client_cpu = time.process_time() - cpu0
    result.connections = pool.opened
    return result


async def closed_loop(
    host: str,
    port: int,
    make_request: RequestFactory,
    *,
    concurrency: int,
    duration: float,
    warmup: float = 0.0,
) -> RunResult:
    """``concurrency`` clients, each sending its next request as soon as the last returns.

    Only requests sent after ``warmup`` and completed before its end count.
    """
    result = RunResult()
    counter = iter(range(1 << 62))
    begin = time.perf_counter()
    measure_from = begin + warmup
    measure_to = measure_from + duration
    cpu_at_measure: list[float] = []

    async def client() -> None:
        conn = HttpConnection(host, port)
        try:
            while (sent := time.perf_counter()) < measure_to:
                outcome = await _call(conn, make_request(next(counter)))
                done = time.perf_counter()
                if sent >= measure_from and done <= measure_to:
                    _tally(result, outcome)
                    result.sent += 1
                    result.latencies.append(done - sent)
                    result.service.append(done - sent)
        finally:
            conn.close()

    async def mark_cpu() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        cpu_at_measure.append(time.process_time())

    marker = asyncio.create_task(mark_cpu())
    await asyncio.gather(*(client() for _ in range(concurrency)))
    await marker
    result.wall = duration
    result.client_cpu = time.process_time() - cpu_at_measure[0]
    result.connections = concurrency
    return result


async def httpx_closed_loop(
    base_url: str, path: str, body: bytes, *, concurrency: int, duration: float
) -> RunResult:
    """The same closed loop with ``httpx.AsyncClient`` (only used to calibrate the client)."""
    import httpx

    result = RunResult()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits) as http:
        cpu0 = time.process_time()
        end = time.perf_counter() + duration

        async def client() -> None:
            while time.perf_counter() < end:
                sent = time.perf_counter()
                try:
                    response = await http.post(path, content=body)
                except httpx.HTTPError as exc:
                    result.errors[type(exc).__name__] += 1
                    continue
                result.latencies.append(time.perf_counter() - sent)
                if response.is_success:
                    result.ok += 1
                else:
                    result.errors[f"HTTP {response.status_code}"] += 1

        await asyncio.gather(*(client() for _ in range(concurrency)))
        result.wall = duration
        result.client_cpu = time.process_time() - cpu0
    result.sent = len(result.latencies)
    return result


def run(phase: Callable[[], Awaitable[T]]) -> T:
    """Run one phase on a fresh event loop (uvloop when installed)."""
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop

    async def main() -> T:
        return await phase()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())
