"""The simulator's shared state, handed to every router."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.common.clock import SimClock
from sandbox.engagement import Audience, default_audience
from sandbox.instagram.config import Faults, InstagramSimConfig, UserTokens
from sandbox.instagram.store import Account, InstagramStore


@dataclass
class InstagramSim:
    config: InstagramSimConfig
    store: InstagramStore
    clock: SimClock
    faults: Faults
    #: Where fetched ``image_url`` / ``video_url`` files wait while they are inspected.
    fetch_dir: Path
    #: Per-account token knobs, by ``instagram:<ig id>`` or ``facebook:<fb user id>``.
    user_tokens: dict[str, UserTokens] = field(default_factory=dict)
    #: Refresh requests that reached the simulator (failed ones included), by the same keys.
    refresh_requests: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, data_dir: Path, config: InstagramSimConfig) -> InstagramSim:
        fetch_dir = data_dir / "instagram-fetch"
        fetch_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            config=config,
            store=InstagramStore(data_dir / "instagram.sqlite3"),
            clock=SimClock(),
            faults=Faults(config),
            fetch_dir=fetch_dir,
        )

    def close(self) -> None:
        self.store.close()

    def now(self) -> float:
        return self.clock.now()

    async def delay(self, endpoint: str) -> None:
        """Injected latency (global ``latency_ms`` plus the endpoint's own)."""
        seconds = self.faults.latency(endpoint)
        if seconds > 0:
            await asyncio.sleep(seconds)

    def token_ttls(self, key: str) -> tuple[int, int]:
        """(short-lived, long-lived) lifetimes of the tokens issued to ``key`` now."""
        knobs = self.user_tokens.get(key, UserTokens())
        short, long = knobs.short_token_ttl, knobs.long_token_ttl
        return (
            self.config.short_token_ttl if short is None else short,
            self.config.long_token_ttl if long is None else long,
        )

    def count_refresh(self, key: str) -> int | None:
        """Count a refresh for ``key``; the status to fail it with, if any."""
        with self.lock:
            self.refresh_requests[key] += 1
            knobs = self.user_tokens.get(key)
            if knobs is None or knobs.refresh_failures <= 0:
                return None
            knobs.refresh_failures -= 1
            return knobs.refresh_fail_status

    @staticmethod
    def audience(account: Account) -> Audience:
        return account.audience or default_audience(account.username)
