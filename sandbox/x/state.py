"""The simulator's shared state, handed to every router."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from sandbox.x.config import Faults, SimClock, XSimConfig
from sandbox.x.store import XStore


@dataclass
class XSim:
    config: XSimConfig
    store: XStore
    clock: SimClock
    faults: Faults
    #: Where appended media segments wait for finalize.
    media_dir: Path

    @classmethod
    def open(cls, data_dir: Path, config: XSimConfig) -> XSim:
        return cls(
            config=config,
            store=XStore(data_dir / "x.sqlite3"),
            clock=SimClock(),
            faults=Faults(config),
            media_dir=data_dir / "x-media",
        )

    def now(self) -> float:
        return self.clock.now()

    async def delay(self) -> None:
        """Injected latency (``latency_ms``) before the simulator does anything."""
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000)
