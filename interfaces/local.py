"""``kairos up``: everything on one laptop, no services to install.

An embedded PostgreSQL (the ``pgserver`` package) keeps its data under ``./.kairos/pg``;
secrets are generated once into ``./.kairos/secrets.json``; the sandbox platforms run on
their own port. On first start it creates an owner account and connects one sandbox account
of each platform (X, Instagram, a Page-linked Instagram account chosen after Facebook Login,
TikTok) through the real OAuth flow. Every start prints a fresh API token and a curl that
works.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from interfaces.config import Settings
from interfaces.consent import approve, choose
from interfaces.postgres.vault import new_vault_key

OWNER_EMAIL = "owner@kairos.local"
SANDBOX_USERNAME = "kairos_demo"
"""The sandbox account connected on each platform at first start."""
SANDBOX_PAGE_ACCOUNT = "kairos_demo_studio"
"""The Page-linked Instagram account chosen after the sandbox's Facebook Login."""


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) the embedded server; return its connection URI."""
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server: Any = pgserver.get_server(data_dir, cleanup_mode="stop")
    return str(server.get_uri())


def development_secrets(data_dir: Path) -> dict[str, str]:
    """Generated on first start and kept: the vault key must survive restarts."""
    path = data_dir / "secrets.json"
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    data_dir.mkdir(parents=True, exist_ok=True)
    created = {"secret_key": secrets.token_urlsafe(48), "vault_keys": new_vault_key("k1")}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(created, handle)
    return created


def sandbox_platform_settings(sandbox_url: str) -> dict[str, str]:
    """Settings that point every platform adapter at the ``sandbox/`` simulators served at
    ``sandbox_url`` (the same paths the real platforms use, under one host)."""
    return {
        "x_authorize_url": f"{sandbox_url}/x/i/oauth2/authorize",
        "x_api_base_url": f"{sandbox_url}/x",
        "instagram_authorize_url": f"{sandbox_url}/instagram/oauth/authorize",
        "instagram_token_url": f"{sandbox_url}/instagram/oauth/access_token",
        "instagram_graph_url": f"{sandbox_url}/instagram/graph",
        "facebook_authorize_url": f"{sandbox_url}/instagram/facebook/v25.0/dialog/oauth",
        "facebook_graph_url": f"{sandbox_url}/instagram/facebook-graph",
        "tiktok_authorize_url": f"{sandbox_url}/tiktok/v2/auth/authorize/",
        "tiktok_api_base_url": f"{sandbox_url}/tiktok",
    }


def local_settings(
    data_dir: Path, port: int, sandbox_port: int, mailbox: tuple[str, int] | None = None
) -> Settings:
    generated = development_secrets(data_dir)
    platforms: dict[str, Any] = sandbox_platform_settings(f"http://127.0.0.1:{sandbox_port}")
    email: dict[str, Any] = {}
    if mailbox is not None:
        email = {
            "smtp_host": mailbox[0],
            "smtp_port": mailbox[1],
            "smtp_from": "Kairos <kairos@kairos.local>",
            "smtp_starttls": False,
        }
    return Settings(
        **email,
        environment="development",
        database_url=start_embedded_postgres(data_dir / "pg"),
        secret_key=generated["secret_key"],
        vault_keys=generated["vault_keys"],
        public_base_url=f"http://127.0.0.1:{port}",
        port=port,
        data_dir=data_dir,
        sandbox_port=sandbox_port,
        **platforms,
    )


def run_up(data_dir: Path, port: int, sandbox_port: int) -> None:
    from interfaces.api.app import create_api
    from interfaces.bootstrap import build
    from interfaces.serving import serve
    from sandbox.app import create_sandbox_app
    from workers.runtime import Pipeline

    mailbox = None
    if not os.environ.get("KAIROS_SMTP_HOST"):
        from interfaces.mailbox import LocalMailbox

        mailbox = LocalMailbox(data_dir / "mail").start()
    settings = local_settings(
        data_dir, port, sandbox_port, (mailbox.host, mailbox.port) if mailbox else None
    )
    kairos = build(settings)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with ExitStack() as stack:
        if mailbox is not None:
            stack.callback(mailbox.stop)
        stack.callback(kairos.close)
        sandbox_url = stack.enter_context(
            serve(create_sandbox_app(data_dir / "sandbox"), sandbox_port)
        )
        kairos.start_projections()
        kairos.start_email()
        pipeline = Pipeline(
            kairos.publishing,
            kairos.datastore,
            None,
            lease=kairos.settings.dispatch_lease,
            upkeep=kairos.upkeep,
            metrics=kairos.metrics,
        )
        pipeline.start_workers(kairos.settings.worker_threads)
        pipeline.start_dispatcher()
        stack.callback(pipeline.stop)
        api_url = stack.enter_context(serve(create_api(kairos), port, log_level="info"))
        _welcome(kairos, api_url, sandbox_url)
        stop.wait()
        print("\nStopping Kairos…")  # noqa: T201


def _welcome(kairos: Any, api_url: str, sandbox_url: str) -> None:
    owner = kairos.identity.user_by_email(OWNER_EMAIL)
    password = None
    if owner is None:
        password = secrets.token_urlsafe(12)
        owner, _organization = kairos.identity.create_user(
            email=OWNER_EMAIL, password=password, name="Owner", organization_name="My organization"
        )
    organization_id = owner.active_organization_id
    issued = kairos.identity.issue_token_for(
        owner.id, organization_id, name="kairos up", expires_in_days=30
    )
    token = issued.secret
    if password is not None:
        _connect_sandbox_accounts(api_url, token)
    lines = [
        "",
        "Kairos is running.",
        f"  API            {api_url}   (OpenAPI: {api_url}/docs)",
        f"  Sandbox        {sandbox_url}   (X /x, Instagram /instagram, TikTok /tiktok)",
        f"  Data           {kairos.settings.data_dir.resolve()}",
    ]
    if not os.environ.get("KAIROS_SMTP_HOST"):
        mail = (kairos.settings.data_dir / "mail").resolve()
        lines.append(
            f"  Email          saved as .eml files in {mail} (set KAIROS_SMTP_HOST to send)"
        )
    if password is not None:
        lines.append(f"  Owner login    {OWNER_EMAIL} / {password}   (shown once)")
    lines += [
        f"  API token      {token}   (new each start, expires in 30 days)",
        "",
        "Try it:",
        f'  curl {api_url}/api/integrations -H "Authorization: Bearer {token}"',
        "",
        "Schedule a post to every connected X account:",
        f'  curl -X POST {api_url}/api/posts -H "Authorization: Bearer {token}" '
        "-H 'Content-Type: application/json' "
        '-d \'{"content": "Hello from Kairos", "platforms": ["twitter"], '
        '"scheduledAt": "2030-01-01T09:00:00Z"}\'',
        "",
        "Instagram and TikTok need a video or image: upload one (POST /api/media/presign,",
        'then PUT the file), and add its publicUrl as "mediaUrls" with "platforms":',
        '["instagram", "tiktok", "twitter"]. The sandbox accounts are @kairos_demo on each',
        "platform and the Page-linked Instagram account @kairos_demo_studio.",
        "",
        "Press Ctrl+C to stop.",
    ]
    print("\n".join(lines), flush=True)  # noqa: T201


def _connect_sandbox_accounts(api_url: str, token: str) -> None:
    """Connect one sandbox account of each platform through the same popup flow a user
    clicks: auth URL, consent, callback (and, for Facebook Login, the account chooser)."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=30) as http:
        for provider in ("twitter", "instagram", "instagram-facebook", "tiktok"):
            auth = http.get(f"{api_url}/api/integrations/{provider}/auth", headers=headers)
            callback = approve(auth.json()["url"], username=SANDBOX_USERNAME, client=http)
            page = http.get(callback)
            page.raise_for_status()
            if provider == "instagram-facebook":
                choose(page, username=SANDBOX_PAGE_ACCOUNT, client=http).raise_for_status()
