"""Configuration, fault knobs and per-account token knobs of the Instagram simulator."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from sandbox.common.admin import public_config as shared_public_config
from sandbox.common.faults import DropMode, FaultTable

TokenShape = Literal["data", "flat"]

#: Instagram Login permissions (reference §1.1); the ``business_*`` names were retired in 2025.
INSTAGRAM_SCOPES = frozenset(
    {
        "instagram_business_basic",
        "instagram_business_content_publish",
        "instagram_business_manage_insights",
        "instagram_business_manage_comments",
        "instagram_business_manage_messages",
    }
)
#: Facebook Login for Business permissions the dialog knows (the ones Instagram apps ask for).
FACEBOOK_SCOPES = frozenset(
    {
        "public_profile",
        "email",
        "instagram_basic",
        "instagram_content_publish",
        "instagram_manage_insights",
        "instagram_manage_comments",
        "instagram_manage_messages",
        "pages_show_list",
        "pages_read_engagement",
        "pages_manage_metadata",
        "business_management",
        "ads_management",
        "ads_read",
    }
)

HOUR = 3600


@dataclass
class InstagramSimConfig:
    """Knobs of the simulated Instagram Platform. Defaults follow Meta's documentation."""

    client_id: str = "kairos-sandbox"
    client_secret: str = "kairos-sandbox-secret"
    app_name: str = "Kairos (sandbox)"
    #: Registered redirect URIs; ``None`` accepts any http(s) URL.
    redirect_uris: tuple[str, ...] | None = None
    #: How the Instagram Login code exchange answers: the documented ``{"data": [...]}`` or
    #: the flat object some integrations see (reference §1.2).
    token_response_shape: TokenShape = "data"
    code_ttl: int = 600
    short_token_ttl: int = HOUR
    long_token_ttl: int = 60 * 24 * HOUR
    #: An Instagram long-lived token can be refreshed once it is this old (and not expired).
    refresh_min_age: int = 24 * HOUR
    # Publishing (reference §1.4).
    quota_total: int = 50
    quota_duration: int = 24 * HOUR
    containers_per_day: int = 400
    container_ttl: int = 24 * HOUR
    image_processing_secs: float = 1.0
    video_processing_secs: float = 3.0
    max_image_bytes: int = 8 * 1024 * 1024
    max_video_bytes: int = 300 * 1024 * 1024
    #: How long fetching an ``image_url`` / ``video_url`` may take (error 2207003 beyond).
    fetch_timeout: float = 10.0
    # Rate limits (reference §1.8): per account (BUC, code 80002) and per app (code 4).
    account_calls_per_hour: int = 1000
    #: 0 switches the app-level limit off.
    app_calls_per_hour: int = 0
    # Fault injection (changeable at runtime through POST /_sandbox/faults).
    latency_ms: int = 0
    fail_rate: float = 0.0
    fault_seed: int | None = None


#: Endpoints whose faults ``POST /_sandbox/faults/{endpoint}`` sets one by one.
FAULT_ENDPOINTS = (
    "oauth_token",
    "me",
    "accounts",
    "node",
    "media",
    "media_list",
    "container_status",
    "media_publish",
    "publishing_limit",
    "insights",
)
#: The endpoints that write: only they can commit and then lose their response.
WRITE_ENDPOINTS = ("media", "media_publish")
FAIL_STATUSES = (500, 502, 503, 504)

FAULT_KEYS = ("latency_ms", "fail_rate")
CONFIG_KEYS = tuple(
    f.name
    for f in fields(InstagramSimConfig)
    if f.name not in {*FAULT_KEYS, "fault_seed", "client_id"}
)


@dataclass
class EndpointFault:
    """Faults aimed at one endpoint, on top of the global ones in ``InstagramSimConfig``.

    ``drop_response_*`` applies to writes only: the write commits, then the response is lost.
    ``error_*`` answers a Graph error of that code instead of doing anything.
    """

    fail_rate: float = 0.0
    fail_status: int = 500
    drop_response_rate: float = 0.0
    drop_response_mode: DropMode = "abort"
    error_rate: float = 0.0
    error_code: int = 1
    #: 0: no ``error_subcode``.
    error_subcode: int = 0
    error_message: str = "An unknown error has occurred."
    error_status: int = 400
    error_transient: bool = False
    latency_ms: int = 0
    #: How many requests to let through untouched before the fault starts.
    after: int = 0
    #: How many more requests the fault may hit before it clears itself; 0: no limit.
    times: int = 0


ENDPOINT_FAULT_KEYS = tuple(f.name for f in fields(EndpointFault))


@dataclass
class UserTokens:
    """One account's token knobs (``POST /_sandbox/users/{username}/tokens``)."""

    short_token_ttl: int | None = None
    long_token_ttl: int | None = None
    #: The account's next N ``refresh_access_token`` requests fail with
    #: ``refresh_fail_status`` (the token stays usable), as when Instagram is down.
    refresh_failures: int = 0
    refresh_fail_status: int = 503


USER_TOKEN_KEYS = tuple(f.name for f in fields(UserTokens))


@dataclass(frozen=True)
class Injected:
    """What a fault makes a request answer instead of its real response."""

    status: int
    code: int
    subcode: int | None
    message: str
    transient: bool


SERVER_ERROR = "An unexpected error has occurred. Please retry your request later."
UNAVAILABLE = "Service temporarily unavailable"


@dataclass
class Faults(FaultTable[InstagramSimConfig, EndpointFault]):
    """Decides, per request, whether to inject a failure."""

    #: Requests seen per endpoint since its fault was set (for ``EndpointFault.after``).
    seen: dict[str, int] = field(default_factory=dict)

    def _roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        if rate >= 1:
            return True
        return self.rng.random() < rate

    def _spend(self, endpoint: str, fault: EndpointFault) -> None:
        if fault.times > 0:
            fault.times -= 1
            if fault.times == 0:
                self.endpoints.pop(endpoint, None)

    def set(self, endpoint: str, fault: EndpointFault) -> None:
        """Aim ``fault`` at ``endpoint`` (call with ``lock`` held)."""
        self.endpoints[endpoint] = fault
        self.seen[endpoint] = 0

    def _active(self, endpoint: str) -> EndpointFault | None:
        fault = self.endpoints.get(endpoint)
        if fault is None or self.seen.get(endpoint, 0) <= fault.after:
            return None
        return fault

    def latency(self, endpoint: str) -> float:
        fault = self.endpoints.get(endpoint)
        extra = fault.latency_ms if fault is not None else 0
        return (self.config.latency_ms + extra) / 1000

    def before(self, endpoint: str) -> Injected | None:
        """The failure to answer this request to ``endpoint`` with, if any."""
        with self.lock:
            if self._roll(self.config.fail_rate):
                return Injected(500, 2, None, SERVER_ERROR, True)
            self.seen[endpoint] = self.seen.get(endpoint, 0) + 1
            fault = self._active(endpoint)
            if fault is None:
                return None
            if self._roll(fault.fail_rate):
                self._spend(endpoint, fault)
                message = SERVER_ERROR if fault.fail_status == 500 else UNAVAILABLE
                return Injected(fault.fail_status, 2, None, message, True)
            if self._roll(fault.error_rate):
                self._spend(endpoint, fault)
                return Injected(
                    fault.error_status,
                    fault.error_code,
                    fault.error_subcode or None,
                    fault.error_message,
                    fault.error_transient,
                )
        return None

    def drop(self, endpoint: str) -> DropMode | None:
        """How to lose the response of a write to ``endpoint`` that just committed, if at all."""
        with self.lock:
            fault = self._active(endpoint)
            if fault is None or not self._roll(fault.drop_response_rate):
                return None
            self._spend(endpoint, fault)
            return fault.drop_response_mode

    def snapshot(self) -> dict[str, Any]:
        return {
            **{key: getattr(self.config, key) for key in FAULT_KEYS},
            "endpoints": {name: asdict(fault) for name, fault in self.endpoints.items()},
        }


def public_config(config: InstagramSimConfig) -> dict[str, Any]:
    return shared_public_config(config, "redirect_uris")
