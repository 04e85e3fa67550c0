"""Configuration, clock and fault knobs of the X simulator."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

DropMode = Literal["abort", "503"]
ClientType = Literal["confidential", "public"]

#: Every scope X's authorize endpoint knows (reference §3.1).
KNOWN_SCOPES = frozenset(
    {
        "tweet.read",
        "tweet.write",
        "tweet.moderate.write",
        "users.email",
        "users.read",
        "follows.read",
        "follows.write",
        "offline.access",
        "space.read",
        "mute.read",
        "mute.write",
        "like.read",
        "like.write",
        "list.read",
        "list.write",
        "block.read",
        "block.write",
        "bookmark.read",
        "bookmark.write",
        "dm.read",
        "dm.write",
        "media.write",
    }
)

WINDOW_SECONDS = 15 * 60


@dataclass
class XSimConfig:
    """Knobs of the simulated X API. Defaults follow X's documented behaviour."""

    client_id: str = "kairos-sandbox"
    client_secret: str = "kairos-sandbox-secret"
    client_type: ClientType = "confidential"
    app_name: str = "Kairos (sandbox)"
    #: Registered callback URLs; ``None`` accepts any http(s) URL.
    redirect_uris: tuple[str, ...] | None = None
    access_token_ttl: int = 7200
    refresh_token_ttl: int = 180 * 24 * 3600
    code_ttl: int = 30
    tweets_per_15min: int = 100
    users_me_per_15min: int = 75
    user_tweets_per_15min: int = 900
    tweet_lookup_per_15min: int = 5000
    duplicate_window: int = 24 * 3600
    #: X's accidental double-post guard; switch it off to let duplicates through.
    duplicate_check: bool = True
    #: Feb-2026 self-serve rule: replies only to your own posts or posts mentioning you.
    restrict_replies: bool = False
    # Fault injection (changeable at runtime through POST /_sandbox/faults).
    latency_ms: int = 0
    fail_rate: float = 0.0
    drop_response_rate: float = 0.0
    drop_response_mode: DropMode = "abort"
    fault_seed: int | None = None


#: Keys ``POST /_sandbox/faults`` and ``POST /_sandbox/config`` may change.
FAULT_KEYS = ("latency_ms", "fail_rate", "drop_response_rate", "drop_response_mode")
CONFIG_KEYS = tuple(
    f.name for f in fields(XSimConfig) if f.name not in {*FAULT_KEYS, "fault_seed", "client_id"}
)


class SimClock:
    """Wall clock plus an offset that tests can advance."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._offset += seconds
            return self._offset

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset


@dataclass
class Faults:
    """Decides, per request, whether to inject a failure."""

    config: XSimConfig
    rng: random.Random = field(default_factory=random.Random)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.config.fault_seed is not None:
            self.rng.seed(self.config.fault_seed)

    def _roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        if rate >= 1:
            return True
        with self.lock:
            return self.rng.random() < rate

    def should_fail(self) -> bool:
        return self._roll(self.config.fail_rate)

    def should_drop(self) -> bool:
        return self._roll(self.config.drop_response_rate)

    def snapshot(self) -> dict[str, Any]:
        return {key: getattr(self.config, key) for key in FAULT_KEYS}


def public_config(config: XSimConfig) -> dict[str, Any]:
    data = asdict(config)
    data.pop("client_secret", None)
    if config.redirect_uris is not None:
        data["redirect_uris"] = list(config.redirect_uris)
    return data
