"""Fault injection: the table of per-endpoint faults, and what a lost response looks like."""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, Literal, Protocol, TypeVar

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

DropMode = Literal["abort", "503"]


class SeededConfig(Protocol):
    fault_seed: int | None


ConfigT = TypeVar("ConfigT", bound=SeededConfig)
FaultT = TypeVar("FaultT")


@dataclass
class FaultTable(Generic[ConfigT, FaultT]):
    """The faults aimed at each endpoint, and the random source that rolls them
    (seeded by ``fault_seed`` so a test can replay the same faults)."""

    config: ConfigT
    rng: random.Random = field(default_factory=random.Random)
    lock: threading.Lock = field(default_factory=threading.Lock)
    endpoints: dict[str, FaultT] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.config.fault_seed is not None:
            self.rng.seed(self.config.fault_seed)

    def set(self, endpoint: str, fault: FaultT) -> None:
        """Aim ``fault`` at ``endpoint`` (call with ``lock`` held)."""
        self.endpoints[endpoint] = fault


@dataclass(frozen=True)
class LostAnswer:
    """How a platform's response dies on the wire: the status line and the first bytes of
    the body it sends before the connection drops."""

    status: int
    content_type: bytes
    first_bytes: bytes

    def response(self, mode: DropMode, headers: Mapping[str, str] | None = None) -> Response:
        """What the client sees of a request that did its work but whose answer got lost:
        a bare 503, or a connection that dies mid-response."""
        if mode == "503":
            return Response(status_code=503, headers=headers)
        return AbortedResponse(self)


class AbortedResponse(Response):
    """Starts a response, sends part of the body, then lets the server drop the connection:
    the client sees the connection die mid-response ("done, answer lost")."""

    def __init__(self, lost: LostAnswer) -> None:
        super().__init__(status_code=lost.status)
        self._lost = lost

    async def __call__(self, _scope: Scope, _receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": self._lost.status,
                "headers": [
                    (b"content-type", self._lost.content_type),
                    (b"content-length", b"4096"),
                ],
            }
        )
        body = self._lost.first_bytes
        await send({"type": "http.response.body", "body": body, "more_body": True})
