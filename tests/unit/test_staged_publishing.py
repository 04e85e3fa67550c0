"""``PublishingService`` driving a platform that publishes in stages (Instagram containers,
TikTok publish ids): the adapter checkpoints each handle through ``PublishProgress`` and
settles an earlier attempt from them, so a lost answer or a dead worker never publishes
twice, and a worker that lost its claim stops before the irreversible step.

The platform here is a scripted fake with a container model; the real adapters are tested
against the simulators in ``tests/integration``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from application.app import KairosApplication
from application.credentials import AccessTokens
from application.platforms import (
    AccountProfile,
    AuthorizationExpired,
    MediaPayload,
    PlatformError,
    PublishProgress,
    PublishRequest,
    QuotaReached,
    RemotePost,
    StagedPublisher,
    TimelinePost,
    TokenSet,
    TransientPlatformError,
    UploadedMedia,
)
from application.publishing import PublishingPolicy, PublishingService
from domain.integration import Integration, IntegrationStatus
from domain.post import DeliveryStatus, Post, PostStatus
from tests.unit.test_publishing_service import (
    AUTHOR,
    LEASE,
    ORG,
    T0,
    Clock,
    FakeLatePublishing,
    FakeLocks,
    FakeMediaLibrary,
    FakeVault,
    WorkerCrashed,
)

OK, LOST, CRASH_AFTER = "ok", "lost", "crash-after"


@dataclass
class Published:
    media_id: str
    container: str
    caption: str


@dataclass
class FakeContainers:
    """Instagram's model in miniature: a container per attempt, published once. ``script``
    answers the publish calls in order ("ok" once it runs out); ``before_publish`` runs
    while the worker is between its checkpoint and the publish call."""

    clock: Clock
    provider: str = "instagram"
    script: list[str | PlatformError] = field(default_factory=list)
    containers: dict[str, str] = field(default_factory=dict)
    published: list[Published] = field(default_factory=list)
    requests: list[PublishRequest] = field(default_factory=list)
    before_publish: Callable[[], None] | None = None

    def capabilities(self) -> tuple[str, ...]:
        return ("images", "video")

    def authorization_url(self, *, state: str, code_challenge: str, redirect_uri: str) -> str:
        raise AssertionError("publishing never authorizes")

    def exchange_code(self, *, code: str, code_verifier: str, redirect_uri: str) -> TokenSet:
        raise AssertionError("publishing never exchanges codes")

    def refresh(self, refresh_token: str) -> TokenSet:
        raise AssertionError("no refresh in these scenarios")

    def fetch_profile(self, access_token: str) -> AccountProfile:
        raise AssertionError("publishing never fetches profiles")

    def upload_media(self, access_token: str, media: MediaPayload) -> UploadedMedia:
        raise AssertionError("a staged publisher is never asked to upload on its own")

    def create_post(self, access_token: str, **_: object) -> RemotePost:
        raise AssertionError("a staged publisher is never asked to create a post")

    def recent_posts(self, access_token: str, **_: object) -> list[TimelinePost]:
        raise AssertionError("a staged publisher settles from its own checkpoints")

    def post_url(self, remote_id: str) -> str:
        return f"https://instagram.test/p/{remote_id}"

    def publish(
        self, access_token: str, request: PublishRequest, progress: PublishProgress
    ) -> RemotePost:
        self.requests.append(request)
        if access_token == "revoked":
            raise AuthorizationExpired("Error validating access token", status=400)
        container = progress.get("container")
        if container is not None and self.containers[container] == "PUBLISHED":
            found = next(p for p in self.published if p.container == container)
            return RemotePost(found.media_id, self.post_url(found.media_id))
        if container is None:
            progress.check()
            container = f"c{len(self.containers) + 1}"
            self.containers[container] = "FINISHED"
            progress.record("container", container)
        if self.before_publish is not None:
            hook, self.before_publish = self.before_publish, None
            hook()
        progress.check()
        step = self.script.pop(0) if self.script else OK
        if isinstance(step, PlatformError):
            raise step
        media_id = f"m{len(self.published) + 1}"
        self.containers[container] = "PUBLISHED"
        self.published.append(Published(media_id, container, request.text))
        if step == LOST:
            raise TransientPlatformError("connection reset before the response arrived")
        if step == CRASH_AFTER:
            raise WorkerCrashed
        return RemotePost(media_id, self.post_url(media_id))


def test_the_fake_is_a_staged_publisher() -> None:
    assert isinstance(FakeContainers(Clock(T0)), StagedPublisher)


class StagedWorld:
    def __init__(self, policy: PublishingPolicy | None = None) -> None:
        self.clock = Clock(T0)
        self.app = KairosApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        self.platform = FakeContainers(self.clock)
        adapters = {"instagram": self.platform}
        self.vault = FakeVault()
        self.late = FakeLatePublishing()
        tokens = AccessTokens(self.app, adapters, self.vault, FakeLocks(), self.clock)
        self.policy = policy or PublishingPolicy()
        self.service = PublishingService(
            self.app, adapters, tokens, self.late, self.clock, self.policy, FakeMediaLibrary()
        )

    def connect(self, name: str, token: str | None = None) -> str:
        credential_id = uuid4()
        integration = Integration.connect(
            organization_id=ORG,
            provider="instagram",
            external_account_id=f"ig-{name}",
            account_name=name,
            display_name=name.title(),
            avatar_url=None,
            credential_id=credential_id,
            token_expires_at=None,
            scopes=["instagram_business_content_publish"],
            capabilities=["images", "video"],
        )
        self.app.save_all(integration)
        self.vault.tokens[credential_id] = TokenSet(token or f"token-{name}", None, None)
        return str(integration.id)

    def started(self, *account_ids: str, content: str = "a caption #kairos") -> UUID:
        post = Post.draft(
            organization_id=ORG,
            author_id=AUTHOR,
            content=content,
            thread=[],
            media_urls=["https://media.test/launch.jpg"],
            accounts=dict.fromkeys(account_ids, "instagram"),
        )
        post.schedule(T0, now=T0 - timedelta(hours=1))
        post.start_publishing()
        self.app.save_all(post)
        return post.id

    def post(self, post_id: UUID) -> Post:
        post = self.app.get_post(post_id)
        assert post is not None
        return post

    def names(self, post_id: UUID) -> list[str]:
        return [type(e).__name__ for e in self.app.history(post_id)]

    def deliver_when_due(self, post_id: UUID, account_id: str) -> None:
        due = self.post(post_id).deliveries[account_id].next_attempt_at
        if due is not None and due > self.clock():
            self.clock.now = due
        self.service.deliver(post_id, account_id)


@pytest.fixture
def world() -> StagedWorld:
    return StagedWorld()


def test_a_staged_delivery_checkpoints_its_container_then_records_the_post(
    world: StagedWorld,
) -> None:
    account = world.connect("studio")
    post_id = world.started(account)

    world.service.deliver(post_id, account)

    delivery = world.post(post_id).deliveries[account]
    assert delivery.status is DeliveryStatus.PUBLISHED
    assert (delivery.remote_id, delivery.url) == ("m1", "https://instagram.test/p/m1")
    assert delivery.checkpoints == {"container": "c1"}
    assert world.post(post_id).status is PostStatus.PUBLISHED
    names = world.names(post_id)
    assert names.index("AccountPublishCheckpointed") < names.index("AccountPublished")
    (request,) = world.platform.requests
    assert (request.account_id, request.username) == ("ig-studio", "studio")
    assert request.text == "a caption #kairos"
    assert [m.url for m in request.media] == [""]  # the fake library's stored copy
    assert request.media[0].payload.content_type == "image/jpeg"


def test_a_lost_publish_answer_is_settled_by_the_container_without_publishing_again(
    world: StagedWorld,
) -> None:
    account = world.connect("studio")
    post_id = world.started(account)
    world.platform.script = [LOST]

    world.service.deliver(post_id, account)
    assert world.post(post_id).deliveries[account].status is DeliveryStatus.IN_DOUBT

    world.deliver_when_due(post_id, account)

    delivery = world.post(post_id).deliveries[account]
    assert (delivery.status, delivery.remote_id) == (DeliveryStatus.PUBLISHED, "m1")
    assert len(world.platform.published) == 1
    assert len(world.platform.containers) == 1


def test_a_worker_dying_after_the_publish_is_settled_when_its_lease_ends(
    world: StagedWorld,
) -> None:
    account = world.connect("studio")
    post_id = world.started(account)
    world.platform.script = [CRASH_AFTER]

    with pytest.raises(WorkerCrashed):
        world.service.deliver(post_id, account)
    world.service.deliver(post_id, account)  # the lease still runs: nothing happens
    assert world.post(post_id).deliveries[account].status is DeliveryStatus.PUBLISHING

    world.deliver_when_due(post_id, account)

    delivery = world.post(post_id).deliveries[account]
    assert (delivery.status, delivery.remote_id, delivery.attempts) == (
        DeliveryStatus.PUBLISHED,
        "m1",
        2,
    )
    assert len(world.platform.published) == 1


def test_a_worker_dying_before_the_publish_leaves_a_container_the_next_attempt_uses(
    world: StagedWorld,
) -> None:
    account = world.connect("studio")
    post_id = world.started(account)

    def crash() -> None:
        raise WorkerCrashed

    world.platform.before_publish = crash
    with pytest.raises(WorkerCrashed):
        world.service.deliver(post_id, account)

    world.deliver_when_due(post_id, account)

    assert world.post(post_id).deliveries[account].status is DeliveryStatus.PUBLISHED
    assert list(world.platform.containers) == ["c1"]
    assert [p.container for p in world.platform.published] == ["c1"]


def test_a_worker_whose_claim_was_taken_over_stops_before_publishing(
    world: StagedWorld,
) -> None:
    """The first worker stalls past its lease between its checkpoint and the publish; a
    second worker claims the delivery and publishes it. When the first wakes, its own
    lease check stops it: one post, the second worker's outcome stands."""
    account = world.connect("studio")
    post_id = world.started(account)

    def stall_then_lose_the_claim() -> None:
        world.clock.advance(LEASE + timedelta(seconds=1))
        world.service.deliver(post_id, account)  # the second worker

    world.platform.before_publish = stall_then_lose_the_claim
    world.service.deliver(post_id, account)  # returns quietly: ClaimLost

    delivery = world.post(post_id).deliveries[account]
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PUBLISHED, 2)
    assert len(world.platform.published) == 1


def test_a_quota_reached_fails_the_delivery_saying_why(world: StagedWorld) -> None:
    account = world.connect("studio")
    post_id = world.started(account)
    retry_at = T0 + timedelta(hours=5)
    world.platform.script = [
        QuotaReached("Instagram allows 50 API posts per 24 hours", retry_at=retry_at)
    ]

    world.service.deliver(post_id, account)

    delivery = world.post(post_id).deliveries[account]
    assert delivery.status is DeliveryStatus.FAILED
    assert (delivery.error_category, delivery.retryable) == ("quota_exceeded", False)
    assert "50 API posts per 24 hours" in (delivery.error_message or "")
    assert world.post(post_id).status is PostStatus.FAILED


def test_an_organization_that_waits_for_the_quota_is_retried_when_it_has_room(
    world: StagedWorld,
) -> None:
    account = world.connect("studio")
    post_id = world.started(account)
    world.late.quota_waiters.add(ORG)
    retry_at = T0 + timedelta(hours=5)
    world.platform.script = [
        QuotaReached("Instagram allows 50 API posts per 24 hours", retry_at=retry_at)
    ]

    world.service.deliver(post_id, account)

    delivery = world.post(post_id).deliveries[account]
    assert (delivery.error_category, delivery.retryable) == ("quota_exceeded", True)
    assert delivery.next_attempt_at == retry_at
    assert "waiting for the quota" in (delivery.error_message or "")

    world.deliver_when_due(post_id, account)

    delivery = world.post(post_id).deliveries[account]
    assert (delivery.status, world.clock()) == (DeliveryStatus.PUBLISHED, retry_at)
    assert len(world.platform.published) == 1


def test_an_expired_token_expires_the_account_and_fails_the_delivery(
    world: StagedWorld,
) -> None:
    account = world.connect("studio", token="revoked")
    post_id = world.started(account)

    world.service.deliver(post_id, account)

    delivery = world.post(post_id).deliveries[account]
    assert (delivery.status, delivery.error_category) == (DeliveryStatus.FAILED, "auth_expired")
    integration = world.app.get_integration(UUID(account))
    assert integration is not None
    assert integration.status is IntegrationStatus.EXPIRED


def test_each_account_keeps_its_own_checkpoints(world: StagedWorld) -> None:
    first, second = world.connect("studio"), world.connect("shop")
    post_id = world.started(first, second)
    world.platform.script = [LOST]

    world.service.deliver(post_id, first)
    world.service.deliver(post_id, second)
    world.deliver_when_due(post_id, first)

    post = world.post(post_id)
    assert post.deliveries[first].checkpoints == {"container": "c1"}
    assert post.deliveries[second].checkpoints == {"container": "c2"}
    assert post.status is PostStatus.PUBLISHED
    assert sorted(p.container for p in world.platform.published) == ["c1", "c2"]


def test_a_checkpoint_can_be_forgotten() -> None:
    post = Post.draft(
        organization_id=ORG,
        author_id=AUTHOR,
        content="x",
        thread=[],
        media_urls=[],
        accounts={"a": "tiktok"},
    )
    post.schedule(T0, now=T0 - timedelta(hours=1))
    post.start_publishing()
    post.attempt("a", attempt_key="k", lease_until=T0 + LEASE)
    post.record_checkpoint("a", key="publish_id", value="v_pub_file~1")
    post.record_checkpoint("a", key="publish_id", value="v_pub_file~1")  # no new event
    assert post.deliveries["a"].checkpoints == {"publish_id": "v_pub_file~1"}
    post.record_checkpoint("a", key="publish_id", value="")
    assert post.deliveries["a"].checkpoints == {}
    names = [type(e).__name__ for e in post.collect_events()]
    assert names.count("AccountPublishCheckpointed") == 2


def test_claims_without_checkpoints_stop_at_the_attempt_ceiling() -> None:
    world = StagedWorld(PublishingPolicy(max_attempts=1))
    account = world.connect("studio")
    post_id = world.started(account)
    post = world.post(post_id)
    for attempt in range(1, world.policy.attempt_ceiling + 1):
        post.attempt(account, attempt_key=f"k{attempt}", lease_until=world.clock() + LEASE)
        post.extend_lease(account, lease_until=world.clock() + LEASE)
    world.app.save_all(post)

    world.deliver_when_due(post_id, account)

    delivery = world.post(post_id).deliveries[account]
    assert (delivery.status, delivery.error_category) == (DeliveryStatus.FAILED, "timed_out")
    assert world.platform.published == []
