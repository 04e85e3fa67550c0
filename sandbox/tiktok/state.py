"""The simulator's shared state, handed to every router."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.common.clock import SimClock
from sandbox.engagement import Audience, default_audience
from sandbox.tiktok.config import WINDOW_SECONDS, Faults, TikTokSimConfig, UserKnobs
from sandbox.tiktok.store import TikTokStore


@dataclass
class TikTokSim:
    config: TikTokSimConfig
    store: TikTokStore
    clock: SimClock
    faults: Faults
    #: Where uploaded and pulled bytes wait until processing has read them.
    media_dir: Path
    #: Per-user knobs and audiences, by open_id (in memory, like the global config).
    users: dict[str, UserKnobs] = field(default_factory=dict)
    audiences: dict[str, Audience] = field(default_factory=dict)
    #: ``fail_reason`` values the next publishes to finish processing fail with, in order.
    forced_fail_reasons: deque[str] = field(default_factory=deque)
    #: Refresh requests that reached the token endpoint, by open_id (failed ones included).
    refresh_requests: Counter[str] = field(default_factory=Counter)
    _hits: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    _pulls: list[threading.Thread] = field(default_factory=list)
    closing: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, data_dir: Path, config: TikTokSimConfig) -> TikTokSim:
        media_dir = data_dir / "tiktok-media"
        media_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            config=config,
            store=TikTokStore(data_dir / "tiktok.sqlite3"),
            clock=SimClock(),
            faults=Faults(config),
            media_dir=media_dir,
        )

    def close(self) -> None:
        """Stop pulling media and close the store."""
        self.closing.set()
        for thread in list(self._pulls):
            thread.join(timeout=5)
        self.store.close()

    def now(self) -> float:
        return self.clock.now()

    async def delay(self) -> None:
        """Injected latency (``latency_ms``) before the simulator does anything."""
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000)

    def knobs(self, open_id: str) -> UserKnobs:
        with self.lock:
            return self.users.get(open_id) or UserKnobs()

    def audience(self, open_id: str, username: str) -> Audience:
        with self.lock:
            return self.audiences.get(open_id) or default_audience(username)

    def token_ttls(self, open_id: str) -> tuple[int, int]:
        """(access, refresh) lifetimes of the tokens issued to ``open_id`` now."""
        knobs = self.knobs(open_id)
        access, refresh = knobs.access_token_ttl, knobs.refresh_token_ttl
        return (
            self.config.access_token_ttl if access is None else access,
            self.config.refresh_token_ttl if refresh is None else refresh,
        )

    def count_refresh(self, open_id: str) -> int | None:
        """Count a refresh request of ``open_id``; the status to fail it with, if any."""
        with self.lock:
            self.refresh_requests[open_id] += 1
            knobs = self.users.get(open_id)
            if knobs is None or knobs.refresh_failures <= 0:
                return None
            knobs.refresh_failures -= 1
            return knobs.refresh_fail_status

    def hit(self, token_digest: str, bucket: str, limit: int) -> bool:
        """Count one request of a token to ``bucket``; False when the sliding minute is full."""
        now = self.now()
        with self.lock:
            hits = self._hits.setdefault((token_digest, bucket), deque())
            while hits and hits[0] <= now - WINDOW_SECONDS:
                hits.popleft()
            if len(hits) >= limit:
                return False
            hits.append(now)
            return True

    def next_fail_reason(self) -> str | None:
        with self.lock:
            return self.forced_fail_reasons.popleft() if self.forced_fail_reasons else None

    def start_pull(self, target: threading.Thread) -> None:
        with self.lock:
            self._pulls = [thread for thread in self._pulls if thread.is_alive()]
            self._pulls.append(target)
        target.start()
