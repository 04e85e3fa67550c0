"""``kairos sandbox seed-history``: weeks of published posts and their engagement, in a
minute, through the real services, adapters and simulators.

Best-time analytics needs history, and history takes weeks. This runs those weeks on a
simulated clock: Kairos's services and its events' timestamps (``domain.clock``) and the
simulators' clocks all follow it, and the adapters' waits advance it instead of sleeping.
For each slot a post with a video is written (``PostService``), published to every sandbox
account of the owner's organization (``PublishingService``, the platform adapters over HTTP,
the simulators), and its engagement is read at +1 h, +6 h, +1 d... (``EngagementCollector``)
while those times are in the past. The events are the ones the live pipeline records; the
reads still in the future stay on the due-work index for ``kairos up`` to make.

Before starting, each sandbox account's audience is set in its simulator (the hours and
days it favours), and printed: the optimal-times endpoints should find them.

It needs ``kairos up`` to have run once (the owner and the sandbox accounts exist) and not
to be running (this serves the sandbox and the media itself, on the same ports).
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from heapq import heappop, heappush
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from application.due import METRICS_SCHEDULE
from application.posts import PostInput
from domain.clock import simulated_clock
from domain.post import DeliveryStatus
from interfaces.local import OWNER_EMAIL, local_settings

#: What each sandbox account's audience favours (UTC hours, weekdays with 0 = Monday).
AUDIENCES: dict[tuple[str, str], dict[str, Any]] = {
    ("twitter", "kairos_demo"): {"best_hours": [8, 17], "best_days": [1, 3], "size": 4000},
    ("instagram", "kairos_demo"): {"best_hours": [12, 20], "best_days": [2, 5], "size": 6000},
    ("instagram-facebook", "kairos_demo_studio"): {
        "best_hours": [11, 19],
        "best_days": [0, 4],
        "size": 3000,
    },
    ("tiktok", "kairos_demo"): {"best_hours": [21], "best_days": [4, 5], "size": 9000},
}
SIMULATOR = {"twitter": "x", "instagram": "instagram", "instagram-facebook": "instagram"}
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class SimulatedTime:
    """The clock everything follows while history is made. Setting it also sets the
    simulators' clocks; ``sleep`` advances it (the adapters' waits)."""

    def __init__(self, start: datetime, simulators: list[Any]) -> None:
        self.now = start
        self._simulators = simulators
        self._sync()

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = max(self.now, moment)
        self._sync()

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self._sync()

    def _sync(self) -> None:
        for simulator in self._simulators:
            simulator.clock.set(self.now.timestamp())


@dataclass(order=True)
class Step:
    at: datetime
    order: int
    kind: str
    post_id: UUID | None = None
    account_id: str | None = None


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def seed_history(
    data_dir: Path,
    *,
    port: int,
    sandbox_port: int,
    weeks: int,
    per_day: int,
    seed: int = 1,
    say: Callable[[str], None] = print,
) -> int:
    """Make ``weeks`` of history ending now; returns the number of posts published."""
    from interfaces.api.app import create_api
    from interfaces.bootstrap import build, platform_adapters
    from interfaces.serving import serve
    from sandbox.app import create_sandbox_app
    from sandbox.samples import mp4_bytes

    for needed in (port, sandbox_port):
        if not port_free(needed):
            raise RuntimeError(
                f"port {needed} is in use: stop kairos up first (this serves the sandbox and "
                "the media itself while it makes history)"
            )
    settings = local_settings(data_dir, port, sandbox_port)
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(weeks=weeks)
    with ExitStack() as stack:
        sandbox = create_sandbox_app(data_dir / "sandbox")
        simulators = list(sandbox.state.simulators.values())
        clock = SimulatedTime(start, simulators)
        kairos = build(settings, adapters=platform_adapters(settings, clock.sleep), clock=clock)
        stack.callback(kairos.close)
        stack.enter_context(serve(sandbox, sandbox_port))
        stack.enter_context(serve(create_api(kairos), port))
        stack.enter_context(simulated_clock(clock))
        owner = kairos.identity.user_by_email(OWNER_EMAIL)
        if owner is None or owner.active_organization_id is None:
            raise RuntimeError("run kairos up once first: it creates the owner and accounts")
        organization_id = owner.active_organization_id
        accounts = [
            i
            for i in kairos.integrations_view.list_integrations(organization_id)
            if (i.provider, i.account_name) in AUDIENCES and i.status == "connected"
        ]
        if not accounts:
            raise RuntimeError("no sandbox account is connected: run kairos up once first")
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        for account in accounts:
            simulator = SIMULATOR.get(account.provider, account.provider)
            name = account.account_name
            httpx.post(
                f"{sandbox_url}/{simulator}/_sandbox/users/{name}/audience",
                json=AUDIENCES[(account.provider, name)],
            ).raise_for_status()
        _quiet_simulators(sandbox_url)
        clip = mp4_bytes(1280, 720, 6_000)
        upload = kairos.media.presign(
            organization_id, filename="history.mp4", content_type="video/mp4", size=len(clip)
        )
        httpx.put(
            upload.upload_url, content=clip, headers={"Content-Type": "video/mp4"}
        ).raise_for_status()
        published = _run(
            kairos,
            clock,
            organization_id,
            owner.id,
            [str(a.id) for a in accounts],
            upload.public_url,
            start,
            end,
            per_day,
            random.Random(seed),  # noqa: S311 - a repeatable history, not a secret
            say,
        )
        kairos.start_projections()
        kairos.engagement_view.catch_up_to(kairos.app.recorder.max_notification_id() or 0, 60)
        kairos.stop_projections()
    say(f"Seeded {published} posts over {weeks} weeks, each to {len(accounts)} accounts.")
    say("The simulators' audiences favour (UTC):")
    for account in accounts:
        audience = AUDIENCES[(account.provider, account.account_name)]
        hours = ", ".join(f"{h:02d}:00" for h in audience["best_hours"])
        days = ", ".join(DAY_NAMES[d] for d in audience["best_days"])
        say(f"  {account.provider:<19} @{account.account_name:<19} {hours} on {days}")
    return published


def _quiet_simulators(sandbox_url: str) -> None:
    """No waiting on processing or moderation, and caps wide enough for weeks of posts:
    the history is about engagement, not about the platforms' pacing."""
    for simulator, values in (
        (
            "instagram",
            {
                "image_processing_secs": 0.0,
                "video_processing_secs": 0.0,
                "account_calls_per_hour": 1_000_000,
            },
        ),
        ("tiktok", {"processing_secs": 0.0, "moderation_secs": 0.0, "daily_post_cap": 10_000}),
    ):
        httpx.post(f"{sandbox_url}/{simulator}/_sandbox/config", json=values).raise_for_status()


def _run(
    kairos: Any,
    clock: SimulatedTime,
    organization_id: UUID,
    author_id: UUID,
    account_ids: list[str],
    media_url: str,
    start: datetime,
    end: datetime,
    per_day: int,
    rng: random.Random,
    say: Callable[[str], None],
) -> int:
    steps: list[Step] = []
    order = iter(range(1 << 62))
    for day in range((end - start).days):
        for _ in range(per_day):
            at = start + timedelta(days=day, seconds=rng.randrange(86_400))
            if at < end - timedelta(minutes=5):
                heappush(steps, Step(at, next(order), "post"))
    published = 0
    while steps:
        step = heappop(steps)
        clock.set(step.at)
        if step.kind == "post":
            post_id = _publish(kairos, clock, organization_id, author_id, account_ids, media_url)
            published += 1
            post = kairos.app.get_post(post_id)
            for account_id, delivery in post.deliveries.items():
                if delivery.status is not DeliveryStatus.PUBLISHED:
                    say(f"  not published to {account_id}: {delivery.error_message}")
                    continue
                for delay in METRICS_SCHEDULE:
                    at = delivery.published_at + delay
                    if at < end:
                        heappush(steps, Step(at, next(order), "read", post_id, account_id))
            if published % 20 == 0:
                say(f"  {published} posts, simulated time {clock.now:%Y-%m-%d %H:%M} UTC")
        else:
            assert step.post_id is not None
            assert step.account_id is not None
            kairos.metrics.collect(step.post_id, step.account_id)
    return published


def _publish(
    kairos: Any,
    clock: SimulatedTime,
    organization_id: UUID,
    author_id: UUID,
    account_ids: list[str],
    media_url: str,
) -> UUID:
    written = kairos.posts.create(
        organization_id,
        author_id,
        PostInput(
            content=f"From the archive, {clock.now:%A %d %B %H:%M} UTC",
            media_urls=[media_url],
            account_ids=[UUID(a) for a in account_ids],
            scheduled_at=clock.now + timedelta(minutes=1),
        ),
    )
    post_id: UUID = written.post.id
    clock.sleep(60)
    kairos.publishing.start(post_id)
    for account_id in account_ids:
        kairos.publishing.deliver(post_id, account_id)
    return post_id
