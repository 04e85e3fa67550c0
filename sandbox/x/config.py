"""Configuration and fault knobs of the X simulator."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from sandbox.common.admin import public_config as shared_public_config
from sandbox.common.faults import DropMode, FaultTable

ClientType = Literal["confidential", "public"]
MetricsKeyStyle = Literal["retweet", "repost"]

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
    #: ``public_metrics`` names reposts ``retweet_count`` (X's docs) or ``repost_count``
    #: (OpenAPI 2.167): the naming drift of reference §3.7.
    metrics_key_style: MetricsKeyStyle = "retweet"
    # Media upload (reference §3.4).
    #: How long an uploaded media id stays usable (X: ``expires_after_secs``, about 15 days).
    media_ttl: int = 15 * 24 * 3600
    #: Sandbox seconds a video or animated GIF spends in pending + in_progress after finalize.
    media_processing_secs: int = 2
    media_upload_per_15min: int = 500
    media_status_per_15min: int = 1000
    media_initialize_per_15min: int = 1875
    media_append_per_15min: int = 1875
    media_finalize_per_15min: int = 1875
    # Fault injection (changeable at runtime through POST /_sandbox/faults).
    latency_ms: int = 0
    fail_rate: float = 0.0
    drop_response_rate: float = 0.0
    drop_response_mode: DropMode = "abort"
    fault_seed: int | None = None


#: Endpoints whose faults ``POST /_sandbox/faults/{endpoint}`` sets one by one; each name is
#: also the endpoint's rate-limit bucket.
FAULT_ENDPOINTS = (
    "users_me",
    "create_tweet",
    "tweet_lookup",
    "user_tweets",
    "media_upload",
    "media_initialize",
    "media_append",
    "media_finalize",
    "media_status",
)
#: Statuses an endpoint fault may answer with (500 carries X's "Something is broken" body).
FAIL_STATUSES = (500, 502, 503, 504)

#: Keys ``POST /_sandbox/faults`` and ``POST /_sandbox/config`` may change.
FAULT_KEYS = ("latency_ms", "fail_rate", "drop_response_rate", "drop_response_mode")
CONFIG_KEYS = tuple(
    f.name for f in fields(XSimConfig) if f.name not in {*FAULT_KEYS, "fault_seed", "client_id"}
)


@dataclass
class EndpointFault:
    """Faults aimed at one endpoint, on top of the global ones in ``XSimConfig``.

    ``drop_response_*`` applies to writes only: the write commits, then the response is lost.
    """

    fail_rate: float = 0.0
    fail_status: int = 500
    drop_response_rate: float = 0.0
    drop_response_mode: DropMode = "abort"


ENDPOINT_FAULT_KEYS = tuple(f.name for f in fields(EndpointFault))


@dataclass
class UserTokens:
    """One user's token knobs (``POST /_sandbox/users/{username}/tokens``), on top of the
    global ones: shorten this account's token lifetimes, or make its refreshes fail, without
    touching any other account sharing the simulator."""

    #: Lifetimes of the tokens issued to this user from now on (``None``: the global ones).
    access_token_ttl: int | None = None
    refresh_token_ttl: int | None = None
    #: The user's next N refresh requests fail with ``refresh_fail_status``; the refresh
    #: token is not spent, as when the platform is down.
    refresh_failures: int = 0
    refresh_fail_status: int = 503


USER_TOKEN_KEYS = tuple(f.name for f in fields(UserTokens))


class Faults(FaultTable[XSimConfig, EndpointFault]):
    """Decides, per request, whether to inject a failure."""

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

    def failure(self, endpoint: str) -> int | None:
        """The status of the failure to inject into this request to ``endpoint``, if any."""
        if self.should_fail():
            return 500
        fault = self.endpoints.get(endpoint)
        if fault is not None and self._roll(fault.fail_rate):
            return fault.fail_status
        return None

    def drop(self, endpoint: str) -> DropMode | None:
        """How to lose the response of a write to ``endpoint`` that just committed, if at all.

        The global ``drop_response_rate`` keeps applying to ``create_tweet`` only."""
        if endpoint == "create_tweet" and self.should_drop():
            return self.config.drop_response_mode
        fault = self.endpoints.get(endpoint)
        if fault is not None and self._roll(fault.drop_response_rate):
            return fault.drop_response_mode
        return None

    def snapshot(self) -> dict[str, Any]:
        return {key: getattr(self.config, key) for key in FAULT_KEYS}


def public_config(config: XSimConfig) -> dict[str, Any]:
    return shared_public_config(config, "redirect_uris")
