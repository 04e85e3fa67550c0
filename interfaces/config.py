"""One settings object for every process, read from ``KAIROS_*`` environment variables."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _seconds(value: object) -> object:
    """Durations read as seconds ("30", "0.5") or ISO 8601 ("PT30S")."""
    if isinstance(value, str) and value.replace(".", "", 1).isdigit():
        return float(value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_seconds)]

PLACEHOLDERS = frozenset(
    {"", "changethis", "change-me", "changeme", "secret", "placeholder", "xxx"}
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAIROS_", extra="ignore")

    environment: Literal["development", "test", "production"] = "production"
    database_url: str | None = Field(
        default=None, description="postgresql:// URL; unset means the embedded server (kairos up)"
    )
    redis_url: str | None = None
    secret_key: SecretStr = Field(
        default=SecretStr(""), description="pepper for API-token and session hashes (≥32 chars)"
    )
    vault_keys: SecretStr = Field(
        default=SecretStr(""), description="'kid:base64(32 bytes)' list, newest first"
    )
    public_base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".kairos")
    max_body_bytes: int = 1_048_576
    db_pool_size: int = 10
    db_max_overflow: int = 30
    cookie_secure: bool = True
    read_your_writes_timeout: float = 2.0
    missed_after: Duration = Field(
        default=timedelta(hours=1),
        description="a post not started this long after its time is recorded as missed",
    )
    worker_threads: int = 8
    delivery_lease: Duration = Field(
        default=timedelta(minutes=2),
        description="how long an attempt may run before it is presumed dead and settled",
    )
    dispatch_lease: Duration = Field(
        default=timedelta(seconds=30),
        description="how long a dispatched message may go unacted on before it is re-sent",
    )
    settle_after: Duration = Field(
        default=timedelta(seconds=5),
        description="wait before checking whether an in-doubt post landed",
    )
    retry_first_backoff: Duration = timedelta(seconds=30)
    retry_max_backoff: Duration = timedelta(minutes=30)
    max_attempts: int = 5

    media_dir: Path | None = Field(
        default=None,
        description="local media storage directory when no S3 bucket is set "
        "(default: <data_dir>/media), served by the API under /media/",
    )
    s3_bucket: str | None = Field(
        default=None, description="store media in this S3-compatible bucket instead"
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3 endpoint Kairos calls (unset: AWS); e.g. http://minio:9000"
    )
    s3_presign_endpoint_url: str | None = Field(
        default=None,
        description="endpoint written into upload URLs, reachable by clients "
        "(default: s3_endpoint_url)",
    )
    s3_public_url: str | None = Field(
        default=None,
        description="base URL of public media links, e.g. a CDN "
        "(default: <presign endpoint>/<bucket>)",
    )
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_create_bucket: bool = Field(
        default=False, description="create the bucket at start-up if it is missing"
    )

    smtp_host: str | None = Field(
        default=None,
        description="SMTP server for email notifications; unset: notifications stay in-app",
    )
    smtp_port: int = Field(default=587, description="SMTP port (587 STARTTLS, 465 implicit TLS)")
    smtp_username: str | None = Field(default=None, description="SMTP login, if needed")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password")
    smtp_from: str | None = Field(
        default=None,
        description="From address of notification emails, e.g. 'Kairos <kairos@example.com>' "
        "(required with smtp_host)",
    )
    smtp_starttls: bool = Field(
        default=True, description="upgrade the connection with STARTTLS (ignored with smtp_ssl)"
    )
    smtp_ssl: bool = Field(default=False, description="connect with implicit TLS (port 465)")
    smtp_max_attempts: int = Field(
        default=10, ge=1, description="tries per email before it is given up as failed"
    )
    smtp_retry_backoff: Duration = Field(
        default=timedelta(seconds=30),
        description="wait before retrying a failed email; doubles per attempt up to an hour",
    )
    smtp_max_age: Duration = Field(
        default=timedelta(days=1),
        description="notifications of events older than this when projected are not emailed "
        "(a replay or a projector back from a long outage does not mail the past)",
    )

    sandbox_port: int = 8001
    x_client_id: str = "kairos-sandbox"
    x_client_secret: SecretStr = SecretStr("kairos-sandbox-secret")
    x_authorize_url: str = "https://x.com/i/oauth2/authorize"
    x_api_base_url: str = "https://api.x.com"

    # Instagram API with Instagram Login (provider "instagram").
    instagram_client_id: str = "kairos-sandbox"
    instagram_client_secret: SecretStr = SecretStr("kairos-sandbox-secret")
    instagram_authorize_url: str = "https://www.instagram.com/oauth/authorize"
    instagram_token_url: str = "https://api.instagram.com/oauth/access_token"  # noqa: S105
    instagram_graph_url: str = "https://graph.instagram.com"
    # Instagram API with Facebook Login for Business (provider "instagram-facebook").
    facebook_client_id: str = "kairos-sandbox"
    facebook_client_secret: SecretStr = SecretStr("kairos-sandbox-secret")
    facebook_authorize_url: str = "https://www.facebook.com/v25.0/dialog/oauth"
    facebook_graph_url: str = "https://graph.facebook.com"
    graph_api_version: str = "v25.0"
    # TikTok Login Kit v2 and Content Posting API (provider "tiktok").
    tiktok_client_key: str = "kairos-sandbox"
    tiktok_client_secret: SecretStr = SecretStr("kairos-sandbox-secret")
    tiktok_authorize_url: str = "https://www.tiktok.com/v2/auth/authorize/"
    tiktok_api_base_url: str = "https://open.tiktokapis.com"
    tiktok_pull_url_prefixes: list[str] = Field(
        default_factory=list,
        description="URL prefixes verified with TikTok: media under them is published with "
        "PULL_FROM_URL (TikTok fetches it); anything else is uploaded with FILE_UPLOAD",
    )

    @model_validator(mode="after")
    def _email_needs_a_sender(self) -> Self:
        if self.smtp_host and not self.smtp_from:
            raise ValueError("KAIROS_SMTP_FROM must be set when KAIROS_SMTP_HOST is")
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Self:
        if self.environment == "development":
            return self
        problems = []
        for name in ("secret_key", "vault_keys"):
            value: SecretStr = getattr(self, name)
            secret = value.get_secret_value()
            if secret.strip().lower() in PLACEHOLDERS or len(secret) < 32:
                problems.append(f"KAIROS_{name.upper()}")
        if self.database_url is None:
            problems.append("KAIROS_DATABASE_URL")
        if problems:
            raise ValueError(
                f"{', '.join(problems)} must be set to real values outside development "
                "(secrets: at least 32 characters; generate them with `kairos secrets`)"
            )
        return self

    @property
    def callback_base(self) -> str:
        return self.public_base_url.rstrip("/")
