"""The simulator's shared state, handed to every router."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.common.clock import SimClock
from sandbox.x.config import Faults, UserTokens, XSimConfig
from sandbox.x.store import XStore


@dataclass
class XSim:
    config: XSimConfig
    store: XStore
    clock: SimClock
    faults: Faults
    #: Where appended media segments wait for finalize.
    media_dir: Path
    #: Per-user token knobs, by user id (in memory, like the global config).
    user_tokens: dict[str, UserTokens] = field(default_factory=dict)
    #: Refresh requests that reached the token endpoint, by user id (failed ones included).
    refresh_requests: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

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

    def token_ttls(self, user_id: str) -> tuple[int, int]:
        """(access, refresh) lifetimes of the tokens issued to ``user_id`` now."""
        knobs = self.user_tokens.get(user_id, UserTokens())
        access = knobs.access_token_ttl
        refresh = knobs.refresh_token_ttl
        return (
            self.config.access_token_ttl if access is None else access,
            self.config.refresh_token_ttl if refresh is None else refresh,
        )

    def count_refresh(self, user_id: str) -> int | None:
        """Count a refresh request from ``user_id``; the status to fail it with, if any."""
        with self.lock:
            self.refresh_requests[user_id] += 1
            knobs = self.user_tokens.get(user_id)
            if knobs is None or knobs.refresh_failures <= 0:
                return None
            knobs.refresh_failures -= 1
            return knobs.refresh_fail_status
