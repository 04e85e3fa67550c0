"""The ``kairos`` command: ``up`` for laptops, one process per role for servers, admin tasks."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from interfaces.config import Settings

if TYPE_CHECKING:
    from projections.base import ReadModel

cli = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
users = typer.Typer(help="Manage users (self-hosting admin).")
tokens = typer.Typer(help="Mint API tokens (self-hosting admin).")
projections = typer.Typer(help="Operate read models.")
organizations = typer.Typer(help="Manage organizations (self-hosting admin).")
accounts = typer.Typer(help="Look after connected accounts (self-hosting admin).")
metrics = typer.Typer(help="Engagement metrics of published posts (self-hosting admin).")
sandbox = typer.Typer(help="The sandbox platforms of kairos up.")
cli.add_typer(users, name="users")
cli.add_typer(tokens, name="tokens")
cli.add_typer(projections, name="projections")
cli.add_typer(organizations, name="organizations")
cli.add_typer(metrics, name="metrics")
cli.add_typer(sandbox, name="sandbox")
cli.add_typer(accounts, name="accounts")

DataDir = Annotated[Path, typer.Option(help="Where kairos up keeps its data.")]


def _settings() -> Settings:
    """Production settings from KAIROS_*; without a database URL, the local ``kairos up`` data."""
    if os.environ.get("KAIROS_DATABASE_URL"):
        return Settings()
    from interfaces.local import local_settings

    data_dir = Path(os.environ.get("KAIROS_DATA_DIR", ".kairos"))
    return local_settings(data_dir, int(os.environ.get("KAIROS_PORT", "8000")), 8001)


def _wait_for_signal() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()


@cli.command()
def up(
    data_dir: DataDir = Path(".kairos"),
    port: Annotated[int, typer.Option(help="API port.")] = 8000,
    sandbox_port: Annotated[int, typer.Option(help="Sandbox platforms port.")] = 8001,
) -> None:
    """Run everything in one process: embedded PostgreSQL, API, projector, sandbox platforms."""
    from interfaces.local import run_up

    run_up(data_dir, port, sandbox_port)


@cli.command()
def api() -> None:
    """The REST API (production process)."""
    import uvicorn

    from interfaces.api.app import create_api
    from interfaces.bootstrap import build

    settings = _settings()
    kairos = build(settings)
    try:
        uvicorn.run(create_api(kairos), host=settings.host, port=settings.port, proxy_headers=True)
    finally:
        kairos.close()


@cli.command()
def projector() -> None:
    """Keep every read model caught up (run one copy; a lock makes extra copies harmless),
    and send email notifications when KAIROS_SMTP_HOST is set."""
    from interfaces.bootstrap import build

    kairos = build(_settings())
    kairos.start_projections()
    kairos.start_email()
    typer.echo(f"projector running: {', '.join(v.name for v in kairos.views)}")
    _wait_for_signal()
    kairos.close()


@cli.command()
def worker(
    threads: Annotated[int, typer.Option(help="Concurrent deliveries in this process.")] = 8,
) -> None:
    """Publishing and account upkeep workers: Dramatiq actors on Redis (KAIROS_REDIS_URL).
    Run any number."""
    from interfaces.bootstrap import build
    from workers.runtime import Pipeline

    settings = _settings()
    if not settings.redis_url:
        raise typer.BadParameter("kairos worker needs KAIROS_REDIS_URL (kairos up runs in-process)")
    kairos = build(settings)
    pipeline = Pipeline(
        kairos.publishing,
        kairos.datastore,
        settings.redis_url,
        lease=settings.dispatch_lease,
        upkeep=kairos.upkeep,
        metrics=kairos.metrics,
    )
    pipeline.start_workers(threads)
    typer.echo(f"worker running: {threads} threads on {settings.redis_url}")
    _wait_for_signal()
    pipeline.stop()
    kairos.close()


@cli.command()
def scheduler() -> None:
    """The due-work dispatcher: sends each due row to the workers. Any number of copies."""
    from interfaces.bootstrap import build
    from workers.runtime import Pipeline

    settings = _settings()
    if not settings.redis_url:
        raise typer.BadParameter("kairos scheduler needs KAIROS_REDIS_URL")
    kairos = build(settings)
    pipeline = Pipeline(
        kairos.publishing, kairos.datastore, settings.redis_url, lease=settings.dispatch_lease
    )
    pipeline.start_dispatcher()
    typer.echo("scheduler running")
    _wait_for_signal()
    pipeline.stop()
    kairos.close()


@cli.command("secrets")
def generate_secrets() -> None:
    """Print fresh values for KAIROS_SECRET_KEY and KAIROS_VAULT_KEYS."""
    import secrets as stdlib_secrets

    from interfaces.postgres.vault import new_vault_key

    typer.echo(f"KAIROS_SECRET_KEY={stdlib_secrets.token_urlsafe(48)}")
    typer.echo(f"KAIROS_VAULT_KEYS={new_vault_key('k1')}")


@users.command("create")
def create_user(
    email: Annotated[str, typer.Option(help="Login email.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    name: Annotated[str, typer.Option()] = "",
    organization: Annotated[
        str | None, typer.Option(help="Name of the user's organization.")
    ] = None,
) -> None:
    """Create a user and their organization."""
    from interfaces.bootstrap import build

    kairos = build(_settings())
    try:
        user, org = kairos.identity.create_user(
            email=email, password=password, name=name, organization_name=organization
        )
    finally:
        kairos.close()
    typer.echo(f"created user {user.email} ({user.id}) in organization {org.name} ({org.id})")


@tokens.command("create")
def create_token(
    email: Annotated[str, typer.Option(help="The user the token acts as.")],
    name: Annotated[str, typer.Option()] = "admin CLI",
    expires_in_days: Annotated[int | None, typer.Option(min=1, max=365)] = None,
) -> None:
    """Mint a ttp_ token for a user's active organization. Shown once."""
    from interfaces.bootstrap import build

    kairos = build(_settings())
    try:
        user = kairos.identity.user_by_email(email)
        if user is None or user.active_organization_id is None:
            raise typer.BadParameter(f"no user {email}")
        issued = kairos.identity.issue_token_for(
            user.id, user.active_organization_id, name=name, expires_in_days=expires_in_days
        )
    finally:
        kairos.close()
    typer.echo(issued.secret)


@organizations.command("set-plan")
def set_plan(
    org: Annotated[str, typer.Option(help="The organization's id.")],
    plan: Annotated[str, typer.Argument(help="starter, plus, pro, max or self-hosted.")],
) -> None:
    """Set an organization's plan: its cap on connected accounts and its features."""
    from uuid import UUID

    from application.plans import account_limit
    from domain.errors import DomainError
    from interfaces.bootstrap import build

    try:
        organization_id = UUID(org)
    except ValueError:
        raise typer.BadParameter(f"{org!r} is not an organization id", param_hint="--org") from None
    kairos = build(_settings())
    try:
        chosen = kairos.plans.set_plan(organization_id, plan)
    except DomainError as exc:
        raise typer.BadParameter(exc.message) from None
    finally:
        kairos.close()
    limit = account_limit(chosen)
    cap = "no cap on" if limit is None else f"up to {limit}"
    typer.echo(
        f"organization {organization_id} is on the {chosen.label} plan: {cap} connected accounts"
    )


@accounts.command("check")
def check_accounts(
    org: Annotated[
        str | None, typer.Option(help="Only this organization's accounts (its id).")
    ] = None,
) -> None:
    """Health-check every connected account now (refreshing tokens that need it).

    Each check's event also puts the account's next refresh and daily check on the
    due-work index, so this is how accounts connected before upkeep existed join it. One
    account's failure is reported and the rest are still checked; the exit status says
    whether any failed."""
    from uuid import UUID

    from interfaces.bootstrap import build

    try:
        organization_id = UUID(org) if org else None
    except ValueError:
        raise typer.BadParameter(f"{org!r} is not an organization id", param_hint="--org") from None
    kairos = build(_settings())
    failed = 0
    try:
        ids = kairos.integrations_view.live_account_ids(organization_id)
        for integration_id in ids:
            try:
                kairos.upkeep.health_check(integration_id)
            except Exception as exc:
                failed += 1
                typer.echo(f"{integration_id}  check failed: {type(exc).__name__}: {exc}")
                continue
            after = kairos.app.get_integration(integration_id)
            typer.echo(f"{integration_id}  {after.status if after is not None else 'gone'}")
        typer.echo(f"checked {len(ids)} accounts, {failed} failed")
    finally:
        kairos.close()
    if failed:
        raise typer.Exit(1)


@projections.command("rebuild")
def rebuild_projections(
    replace: Annotated[
        bool, typer.Option(help="Swap the rebuilt tables in for the live ones.")
    ] = False,
) -> None:
    """Replay every read model from notification 0 and prove it equals the live tables."""
    from rich.progress import Progress, TaskID

    from interfaces.bootstrap import build
    from projections.rebuild import rebuild

    kairos = build(_settings())
    all_identical = True
    try:
        with Progress() as bar:
            for view in kairos.views:
                task = bar.add_task(f"rebuilding {view.name}", total=None)

                def advance(done: int, total: int, task_id: TaskID = task) -> None:
                    bar.update(task_id, completed=done, total=max(total, 1))

                report = rebuild(view, _shadow_of(view), replace=replace, progress=advance)
                verdict = "identical" if report.identical else f"DIFFERENT {report.differences}"
                bar.console.print(
                    f"{view.name}: replayed to notification {report.position}; rows {report.rows}; "
                    f"{verdict}{'; replaced' if report.replaced else ''}"
                )
                all_identical = all_identical and report.identical
    finally:
        kairos.close()
    if not all_identical and not replace:
        raise typer.Exit(code=1)


def _shadow_of(view: ReadModel) -> Callable[[str], ReadModel]:
    kind = type(view)
    return lambda prefix: kind(view.datastore, view.app, prefix=prefix)


@metrics.command("backfill")
def backfill_metrics(
    org: Annotated[
        str | None, typer.Option(help="Only this organization's posts (its id).")
    ] = None,
    spacing: Annotated[
        float, typer.Option(help="Seconds between two reads, to stay under rate limits.")
    ] = 1.0,
) -> None:
    """Read the engagement of every published post again, one read every ``spacing``
    seconds from now (posts published before metrics existed, or after an outage).

    Each read is planned as an event on the post, so the workers (``kairos worker``) do
    the reading and a crash in between loses nothing."""
    from datetime import UTC, datetime, timedelta
    from uuid import UUID

    from interfaces.bootstrap import build

    try:
        organization_id = UUID(org) if org else None
    except ValueError:
        raise typer.BadParameter(f"{org!r} is not an organization id", param_hint="--org") from None
    if spacing < 0:
        raise typer.BadParameter("must not be negative", param_hint="--spacing")
    kairos = build(_settings())
    try:
        pairs = kairos.engagement_view.published(organization_id)
        start = datetime.now(UTC)
        planned = 0
        for index, (post_id, account_id) in enumerate(pairs):
            at = start + timedelta(seconds=spacing * index)
            planned += kairos.metrics.request(post_id, str(account_id), at)
        typer.echo(f"planned {planned} engagement reads of {len(pairs)} published deliveries")
    finally:
        kairos.close()


@sandbox.command("seed-history")
def seed_history(
    data_dir: DataDir = Path(".kairos"),
    weeks: Annotated[int, typer.Option(min=1, max=26, help="Weeks of history, ending now.")] = 4,
    per_day: Annotated[int, typer.Option(min=1, max=12, help="Posts a day, at random times.")] = 4,
    port: Annotated[int, typer.Option(help="The port kairos up serves the API on.")] = 8000,
    sandbox_port: Annotated[int, typer.Option(help="The sandbox's port.")] = 8001,
) -> None:
    """Publish weeks of posts to kairos up's sandbox accounts and read their engagement,
    on a simulated clock, so best-time analytics has history to learn from.

    Run it once kairos up has started once, while it is stopped; then start it again and
    ask GET /api/analytics/optimal-times."""
    from interfaces.history_seed import seed_history as seed

    try:
        seed(data_dir, port=port, sandbox_port=sandbox_port, weeks=weeks, per_day=per_day)
    except RuntimeError as exc:
        raise typer.BadParameter(str(exc)) from None


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Request lines of outbound calls carry OAuth codes and states: keep them out of logs.
    for noisy in ("httpx", "httpcore", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cli()
