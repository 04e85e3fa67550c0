"""Configuration, per-user knobs and fault injection of the TikTok simulator."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sandbox.common.admin import public_config as shared_public_config
from sandbox.common.faults import DropMode, FaultTable

MIB = 1024 * 1024
WINDOW_SECONDS = 60.0
"""TikTok's rate limits count requests per token in a one-minute sliding window."""

#: Every scope Login Kit knows (reference §2.1).
KNOWN_SCOPES = frozenset(
    {
        "user.info.basic",
        "user.info.profile",
        "user.info.stats",
        "video.list",
        "video.upload",
        "video.publish",
    }
)
PRIVACY_LEVELS = ("PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY")
PUBLIC_OPTIONS = ("PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY")
PRIVATE_OPTIONS = ("FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY")
#: ``fail_reason`` values of the status endpoint (reference §2.3 (h)).
FAIL_REASONS = (
    "file_format_check_failed",
    "duration_check_failed",
    "frame_rate_check_failed",
    "picture_size_check_failed",
    "internal",
    "video_pull_failed",
    "photo_pull_failed",
    "publish_cancelled",
    "auth_removed",
    "spam_risk_too_many_posts",
    "spam_risk_user_banned_from_posting",
    "spam_risk_text",
    "spam_risk",
)


@dataclass
class TikTokSimConfig:
    """Knobs of the simulated TikTok APIs. Defaults follow TikTok's documented behaviour."""

    client_key: str = "kairos-sandbox"
    client_secret: str = "kairos-sandbox-secret"
    app_name: str = "Kairos (sandbox)"
    #: Registered redirect URIs; ``None`` accepts any http(s) URL.
    redirect_uris: tuple[str, ...] | None = None
    #: Token lifetimes (Nov 2026 docs: 2 h and 180 days), answered in ``expires_in`` and
    #: ``refresh_expires_in``.
    access_token_ttl: int = 7200
    refresh_token_ttl: int = 180 * 24 * 3600
    code_ttl: int = 300
    #: Answer token-endpoint errors with HTTP 200, as a third-party report says TikTok does.
    oauth_errors_http_200: bool = False
    # Per-token limits per minute (reference §2.3, §2.4).
    user_info_per_min: int = 600
    creator_info_per_min: int = 20
    init_per_min: int = 6
    status_per_min: int = 30
    video_list_per_min: int = 600
    video_query_per_min: int = 600
    #: Direct posts a creator may make per UTC day (undocumented; ~15 is commonly cited).
    daily_post_cap: int = 15
    #: An app TikTok has not audited may only post privately (SELF_ONLY).
    unaudited_client: bool = False
    #: Domains or URL prefixes verified for PULL_FROM_URL (``http://host/path/``).
    verified_url_prefixes: tuple[str, ...] = ()
    max_video_post_duration_sec: int = 600
    #: Sandbox seconds between the last byte and PUBLISH_COMPLETE (or FAILED).
    processing_secs: float = 2.0
    #: Sandbox seconds after PUBLISH_COMPLETE before the public post id shows.
    moderation_secs: float = 5.0
    upload_url_ttl: int = 3600
    min_chunk_size: int = 5 * MIB
    max_chunk_size: int = 64 * MIB
    max_final_chunk_size: int = 128 * MIB
    max_video_size: int = 4 * 1024 * MIB
    # Global fault injection; per-endpoint faults are in ``Faults.endpoints``.
    latency_ms: int = 0
    fault_seed: int | None = None


#: Endpoints ``POST /_sandbox/faults/{endpoint}`` aims at.
FAULT_ENDPOINTS = (
    "oauth_token",
    "user_info",
    "creator_info",
    "video_init",
    "content_init",
    "upload_chunk",
    "upload_final",
    "status_fetch",
    "video_list",
    "video_query",
)
#: Statuses an injected failure may answer with (all carry ``internal_error``).
FAIL_STATUSES = (500, 502, 503, 504)
CONFIG_KEYS = tuple(f.name for f in fields(TikTokSimConfig) if f.name != "fault_seed")

#: The HTTP status TikTok documents for each error code (when the endpoint has no other).
ERROR_STATUSES = {
    "access_token_invalid": 401,
    "scope_not_authorized": 401,
    "scope_permission_missed": 401,
    "invalid_params": 400,
    "invalid_param": 400,
    "invalid_file_upload": 400,
    "invalid_publish_id": 400,
    "token_not_authorized_for_specified_publish_id": 400,
    "rate_limit_exceeded": 429,
    "internal_error": 500,
    "spam_risk_too_many_posts": 403,
    "spam_risk_user_banned_from_posting": 403,
    "reached_active_user_cap": 403,
    "unaudited_client_can_only_post_to_private_accounts": 403,
    "url_ownership_unverified": 403,
    "privacy_level_option_mismatch": 403,
}


@dataclass
class EndpointFault:
    """Faults aimed at one endpoint. ``*_next`` counts down one per request; rates roll.

    ``fail_*`` answers a 5xx before doing anything. ``drop_*`` does the work (a write
    commits), then loses the answer: the connection dies mid-response (``abort``) or a bare
    503 comes back. ``error_code`` answers that TikTok error instead of the work, on every
    request while set, or on the next ``error_next`` ones when that is positive."""

    fail_rate: float = 0.0
    fail_next: int = 0
    fail_status: int = 500
    drop_response_rate: float = 0.0
    drop_next: int = 0
    drop_response_mode: DropMode = "abort"
    error_code: str = ""
    error_next: int = 0
    #: HTTP status of the forced error; 0 means the one TikTok documents for the code.
    error_status: int = 0


ENDPOINT_FAULT_KEYS = tuple(f.name for f in fields(EndpointFault))


@dataclass
class UserKnobs:
    """One user's knobs (``POST /_sandbox/users/{username}``), on top of the global ones."""

    #: Lifetimes of the tokens issued to this user from now on (``None``: the global ones).
    access_token_ttl: int | None = None
    refresh_token_ttl: int | None = None
    #: The next N refresh requests fail with ``refresh_fail_status``; nothing is spent.
    refresh_failures: int = 0
    refresh_fail_status: int = 503
    #: A private account is offered FOLLOWER_OF_CREATOR, MUTUAL_FOLLOW_FRIENDS, SELF_ONLY.
    private_account: bool = False
    banned_from_posting: bool = False
    max_video_post_duration_sec: int | None = None
    #: Scopes the user unticks on the consent page (granted: the others requested).
    withheld_scopes: tuple[str, ...] = ()


USER_KNOB_KEYS = tuple(f.name for f in fields(UserKnobs))


class Faults(FaultTable[TikTokSimConfig, EndpointFault]):
    """Decides, per request, whether to inject a failure."""

    def _fires(self, fault: EndpointFault, counter: str, rate: float) -> bool:
        """Whether the countdown ``counter`` or the rate ``rate`` fires (lock held)."""
        left: int = getattr(fault, counter)
        if left > 0:
            setattr(fault, counter, left - 1)
            return True
        return rate > 0 and (rate >= 1 or self.rng.random() < rate)

    def failure(self, endpoint: str) -> int | None:
        """The 5xx status to answer this request to ``endpoint`` with, if any."""
        with self.lock:
            fault = self.endpoints.get(endpoint)
            if fault is not None and self._fires(fault, "fail_next", fault.fail_rate):
                return fault.fail_status
        return None

    def drop(self, endpoint: str) -> DropMode | None:
        """How to lose the answer of a request to ``endpoint`` that just did its work."""
        with self.lock:
            fault = self.endpoints.get(endpoint)
            if fault is not None and self._fires(fault, "drop_next", fault.drop_response_rate):
                return fault.drop_response_mode
        return None

    def forced_error(self, endpoint: str) -> tuple[str, int] | None:
        """The (code, HTTP status) of a TikTok error forced on ``endpoint``, if any."""
        with self.lock:
            fault = self.endpoints.get(endpoint)
            if fault is None or not fault.error_code:
                return None
            code = fault.error_code
            if fault.error_next > 0:
                fault.error_next -= 1
                if fault.error_next == 0:
                    fault.error_code = ""
            return code, fault.error_status or ERROR_STATUSES.get(code, 400)


def public_config(config: TikTokSimConfig) -> dict[str, Any]:
    return shared_public_config(config, "verified_url_prefixes", "redirect_uris")
