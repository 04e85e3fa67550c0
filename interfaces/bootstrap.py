"""The composition root: builds every component from one ``Settings``.

Processes (API, projector, workers, ``kairos up``) and tests all call ``build``; tests pass
other settings or adapters rather than patching modules.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from eventsourcing.postgres import PostgresDatastore
from psycopg.conninfo import conninfo_to_dict

from application.app import KairosApplication
from application.collections import CollectionService
from application.connections import ConnectionService
from application.credentials import AccessTokens
from application.identity import IdentityService
from application.insights import Insights
from application.media import MediaService, MediaStorage, Probe
from application.metrics import EngagementCollector
from application.plans import Plans
from application.platforms import PlatformAdapter
from application.posts import PostService
from application.publishing import PublishingPolicy, PublishingService
from application.upkeep import AccountUpkeep
from interfaces.config import Settings
from interfaces.email import EmailOutbox, email_outbox, organization_admins
from interfaces.platforms.instagram import FacebookInstagramAdapter, InstagramAdapter
from interfaces.platforms.tiktok import TikTokAdapter
from interfaces.platforms.x import XAdapter
from interfaces.postgres.account_choices import PostgresAccountChoices
from interfaces.postgres.collections import PostgresCollections
from interfaces.postgres.identity_store import PostgresIdentityStore
from interfaces.postgres.locks import PostgresLocks
from interfaces.postgres.media_assets import PostgresMediaAssets
from interfaces.postgres.oauth_states import PostgresOAuthStateStore
from interfaces.postgres.plans import PostgresPlans
from interfaces.postgres.recorder import schema_lock
from interfaces.postgres.schema import create_tables
from interfaces.postgres.vault import PostgresCredentialVault, parse_keyring
from interfaces.security import Argon2PasswordHasher
from interfaces.storage.local import MIN_SECRET_BYTES, LocalStorage
from interfaces.storage.probe import probe
from interfaces.storage.remote import GuardedRemoteFetcher
from interfaces.storage.s3 import S3Storage
from projections.base import ReadModel
from projections.engagement import EngagementView
from projections.integrations import IntegrationsView
from projections.notifications import NotificationsView
from projections.posts import PostsView
from projections.runner import ProjectionRunner

log = logging.getLogger("kairos")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Kairos:
    """Everything one process needs, wired once."""

    settings: Settings
    app: KairosApplication
    identity: IdentityService
    posts: PostService
    connections: ConnectionService
    posts_view: PostsView
    integrations_view: IntegrationsView
    notifications_view: NotificationsView
    engagement_view: EngagementView
    vault: PostgresCredentialVault
    publishing: PublishingService
    media: MediaService
    storage: MediaStorage
    upkeep: AccountUpkeep
    metrics: EngagementCollector
    insights: Insights
    collections: CollectionService
    plans: Plans
    runners: list[ProjectionRunner] = field(default_factory=list)
    outbox: EmailOutbox | None = None
    """Sends email notifications; None without SMTP settings."""

    @property
    def datastore(self) -> PostgresDatastore:
        return self.posts_view.datastore

    @property
    def views(self) -> list[ReadModel]:
        return [
            self.posts_view,
            self.integrations_view,
            self.notifications_view,
            self.engagement_view,
        ]

    def start_projections(self) -> None:
        """Run one supervised runner per read model in this process."""
        self.runners = [ProjectionRunner(view).start() for view in self.views]

    def stop_projections(self) -> None:
        for runner in self.runners:
            runner.stop()
        self.runners = []

    def start_email(self) -> None:
        """Send queued email notifications from this process (when SMTP is configured)."""
        if self.outbox is not None and not self.outbox.alive:
            self.outbox.start()

    def close(self) -> None:
        if self.outbox is not None:
            self.outbox.stop()
        self.stop_projections()
        self.app.close()


def postgres_env(database_url: str, settings: Settings) -> dict[str, str]:
    params = conninfo_to_dict(database_url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(params.get("dbname", "postgres")),
        "POSTGRES_HOST": str(params.get("host", "127.0.0.1")),
        "POSTGRES_PORT": str(params.get("port", "5432")),
        "POSTGRES_USER": str(params.get("user", "postgres")),
        "POSTGRES_PASSWORD": str(params.get("password", "")),
        "POSTGRES_POOL_SIZE": str(settings.db_pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.db_max_overflow),
        "POSTGRES_CONNECT_TIMEOUT": "10",
        # No pre-ping: it costs a round trip on every checkout, and the recorder already
        # retries statements that fail on a dropped connection.
        "POSTGRES_PRE_PING": "n",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "10",
        # Never the DB-function insert path: it skips the table lock that keeps commit
        # order equal to notification order, which every projection relies on.
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        "CREATE_TABLE": "y",
        # Writes the due-work index in the same transaction as the events.
        "APPLICATION_RECORDER_TOPIC": "interfaces.postgres.recorder:KairosRecorder",
    }


def publishing_policy(settings: Settings) -> PublishingPolicy:
    return PublishingPolicy(
        lease=settings.delivery_lease,
        max_attempts=settings.max_attempts,
        first_backoff=settings.retry_first_backoff,
        max_backoff=settings.retry_max_backoff,
        settle_after=settings.settle_after,
        missed_after=settings.missed_after,
    )


def platform_adapters(
    settings: Settings, sleep: Callable[[float], None] = time.sleep
) -> dict[str, PlatformAdapter]:
    """``sleep`` is how adapters wait on a platform (processing, polling): a simulation of
    time (``kairos sandbox seed-history``) advances its clock instead."""
    return {
        "twitter": XAdapter(
            client_id=settings.x_client_id,
            client_secret=settings.x_client_secret.get_secret_value(),
            authorize_url=settings.x_authorize_url,
            api_base_url=settings.x_api_base_url,
            sleep=sleep,
        ),
        "instagram": InstagramAdapter(
            client_id=settings.instagram_client_id,
            client_secret=settings.instagram_client_secret.get_secret_value(),
            authorize_url=settings.instagram_authorize_url,
            token_url=settings.instagram_token_url,
            graph_url=settings.instagram_graph_url,
            api_version=settings.graph_api_version,
            sleep=sleep,
        ),
        "instagram-facebook": FacebookInstagramAdapter(
            client_id=settings.facebook_client_id,
            client_secret=settings.facebook_client_secret.get_secret_value(),
            authorize_url=settings.facebook_authorize_url,
            graph_url=settings.facebook_graph_url,
            api_version=settings.graph_api_version,
            sleep=sleep,
        ),
        "tiktok": TikTokAdapter(
            client_key=settings.tiktok_client_key,
            client_secret=settings.tiktok_client_secret.get_secret_value(),
            authorize_url=settings.tiktok_authorize_url,
            api_base_url=settings.tiktok_api_base_url,
            pull_url_prefixes=settings.tiktok_pull_url_prefixes,
            sleep=sleep,
        ),
    }


def media_storage(settings: Settings) -> MediaStorage:
    """S3-compatible storage when a bucket is configured, else a local directory."""
    if settings.s3_bucket:
        secret = settings.s3_secret_access_key
        s3 = S3Storage(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            presign_endpoint_url=settings.s3_presign_endpoint_url,
            public_base_url=settings.s3_public_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
        )
        if settings.s3_create_bucket:
            s3.ensure_bucket()
        return s3
    signing_key = settings.secret_key.get_secret_value().encode()
    if len(signing_key) < MIN_SECRET_BYTES:
        # Only a development setup gets this far without a real secret (Settings refuses it
        # elsewhere; kairos up always has one). Signing with a guessable key would let anyone
        # upload, so sign with a random key instead: upload URLs then do not survive a restart.
        log.warning(
            "KAIROS_SECRET_KEY is shorter than %d bytes: media upload URLs are signed with a "
            "random key, valid only until this process exits",
            MIN_SECRET_BYTES,
        )
        signing_key = secrets.token_bytes(MIN_SECRET_BYTES)
    return LocalStorage(
        settings.media_dir or settings.data_dir / "media",
        base_url=settings.public_base_url,
        secret=signing_key + b"/media",
    )


def _probe(head: bytes, tail: bytes, size: int) -> Probe:
    found = probe(head, tail, size)
    return Probe(found.content_type, found.width, found.height, found.duration_ms)


def build(
    settings: Settings,
    *,
    adapters: Mapping[str, PlatformAdapter] | None = None,
    clock: Callable[[], datetime] = utc_now,
    policy: PublishingPolicy | None = None,
) -> Kairos:
    if settings.database_url is None:
        raise ValueError("database_url is required (kairos up starts an embedded server)")
    app = KairosApplication(env=postgres_env(settings.database_url, settings))
    datastore: PostgresDatastore = app.recorder.datastore  # type: ignore[attr-defined]
    create_tables(datastore)
    posts_view = PostsView(datastore, app)
    integrations_view = IntegrationsView(datastore, app)
    notifications_view = NotificationsView(
        datastore,
        app,
        recipients=organization_admins if settings.smtp_host else None,
        email_max_age=settings.smtp_max_age,
        clock=clock,
    )
    engagement_view = EngagementView(datastore, app)
    with schema_lock(datastore):
        for view in (posts_view, integrations_view, notifications_view, engagement_view):
            view.create_table()
    vault = PostgresCredentialVault(
        datastore, parse_keyring(settings.vault_keys.get_secret_value())
    )
    identity_store = PostgresIdentityStore(datastore)
    identity = IdentityService(
        identity_store,
        Argon2PasswordHasher(),
        pepper=settings.secret_key.get_secret_value().encode(),
        clock=clock,
    )
    adapters = adapters if adapters is not None else platform_adapters(settings)
    storage = media_storage(settings)
    media = MediaService(
        storage, PostgresMediaAssets(datastore), _probe, GuardedRemoteFetcher(), clock
    )
    plans = Plans(PostgresPlans(datastore))
    collection_store = PostgresCollections(datastore)
    connections = ConnectionService(
        app,
        adapters,
        PostgresOAuthStateStore(datastore),
        vault,
        callback_url=lambda provider: (
            f"{settings.callback_base}/api/integrations/{provider}/callback"
        ),
        clock=clock,
        plans=plans,
        accounts=integrations_view,
        deliveries=posts_view,
        locks=PostgresLocks(datastore),
        choices=PostgresAccountChoices(datastore),
    )
    # One lock namespace for every refresh: publishing's and the upkeep's never race.
    tokens = AccessTokens(app, adapters, vault, PostgresLocks(datastore), clock)
    return Kairos(
        settings=settings,
        app=app,
        identity=identity,
        posts=PostService(app, integrations_view, clock, media, collection_store),
        connections=connections,
        posts_view=posts_view,
        integrations_view=integrations_view,
        notifications_view=notifications_view,
        engagement_view=engagement_view,
        outbox=email_outbox(settings, datastore),
        vault=vault,
        publishing=PublishingService(
            app,
            adapters,
            tokens,
            identity_store,
            clock,
            policy or publishing_policy(settings),
            media,
        ),
        media=media,
        storage=storage,
        upkeep=AccountUpkeep(app, adapters, tokens, clock),
        metrics=EngagementCollector(app, adapters, tokens, clock),
        insights=Insights(engagement_view, plans, clock),
        collections=CollectionService(app, collection_store, clock),
        plans=plans,
    )
