"""Which accounts a post reaches: explicit accounts, platforms and collections, over an
in-memory event store. Inactive accounts are left out of group targets and refused when
named; a group target that reaches nobody is an error naming it."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from application.app import KairosApplication
from application.collections import Collection
from application.posts import PostChanges, PostInput, PostService
from domain.errors import IntegrationNotUsable, InvalidField
from domain.integration import Integration

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
ORG = uuid4()
AUTHOR = uuid4()


class World:
    def __init__(self) -> None:
        self.app = KairosApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        self.accounts: list[tuple[UUID, UUID, str]] = []
        self.groups: dict[UUID, Collection] = {}
        self.service = PostService(self.app, self, lambda: T0, None, self)

    # the ports
    def publishable_account_ids(self, organization_id: UUID, provider: str) -> list[UUID]:
        """Like a read model that lags: every account ever connected, whatever its state."""
        return [a for a, org, p in self.accounts if org == organization_id and p == provider]

    def collection(self, organization_id: UUID, collection_id: UUID) -> Collection | None:
        found = self.groups.get(collection_id)
        return found if found and found.organization_id == organization_id else None

    # given
    def connect(
        self, name: str, organization_id: UUID = ORG, provider: str = "twitter"
    ) -> Integration:
        integration = Integration.connect(
            organization_id=organization_id,
            provider=provider,
            external_account_id=f"ext-{name}",
            account_name=name,
            display_name=name,
            avatar_url=None,
            credential_id=uuid4(),
            token_expires_at=None,
            scopes=[],
            capabilities=["text"],
        )
        self.app.save_all(integration)
        self.accounts.append((integration.id, organization_id, provider))
        return integration

    def change(self, integration: Integration) -> None:
        self.app.save_all(integration)

    def group(self, name: str, *members: Integration) -> UUID:
        collection = Collection(uuid4(), ORG, name, [m.id for m in members], T0, T0)
        self.groups[collection.id] = collection
        return collection.id

    # when
    def create(
        self,
        *,
        account_ids: list[UUID] | None = None,
        platforms: list[str] | None = None,
        collection_ids: list[UUID] | None = None,
    ) -> list[str]:
        given = PostInput(
            content="hello",
            account_ids=account_ids,
            platforms=platforms,
            collection_ids=collection_ids,
        )
        return self.service.create(ORG, AUTHOR, given).post.account_ids


@pytest.fixture
def world() -> World:
    return World()


def test_a_collection_reaches_its_connected_active_members_only(world: World) -> None:
    on = world.connect("on")
    off = world.connect("off")
    off.deactivate()
    world.change(off)
    expired = world.connect("expired")
    expired.record_token_expired("refresh token revoked")
    world.change(expired)
    gone = world.connect("gone")
    gone.disconnect()
    world.change(gone)
    stranger = world.connect("stranger", organization_id=uuid4())
    group = world.group("Everyone", on, off, expired, gone, stranger)
    assert world.create(collection_ids=[group]) == [str(on.id)]


def test_a_collection_that_reaches_nobody_is_refused_naming_it(world: World) -> None:
    on = world.connect("on")
    off = world.connect("off")
    off.deactivate()
    world.change(off)
    paused = world.group("Paused", off)
    with pytest.raises(InvalidField) as refused:
        world.create(account_ids=[on.id], collection_ids=[paused])
    assert refused.value.field == "collectionIds[0]"
    assert "'Paused' has no connected, active account" in refused.value.message
    with pytest.raises(InvalidField) as unknown:
        world.create(collection_ids=[world.group("Fine", on), uuid4()])
    assert unknown.value.field == "collectionIds[1]"
    assert "unknown collection" in unknown.value.message


def test_naming_an_inactive_account_is_refused(world: World) -> None:
    off = world.connect("off")
    off.deactivate()
    world.change(off)
    with pytest.raises(IntegrationNotUsable) as refused:
        world.create(account_ids=[off.id])
    assert refused.value.field == "accountIds[0]"
    assert "@off is inactive" in refused.value.message


def test_platforms_leave_inactive_accounts_out(world: World) -> None:
    on = world.connect("on")
    off = world.connect("off")
    off.deactivate()
    world.change(off)
    assert world.create(platforms=["x"]) == [str(on.id)]
    on.deactivate()
    world.change(on)
    with pytest.raises(InvalidField) as refused:
        world.create(platforms=["twitter"])
    assert refused.value.field == "platforms[0]"


def test_targets_combine_with_each_account_once(world: World) -> None:
    a, b, c = world.connect("a"), world.connect("b"), world.connect("c")
    group = world.group("AB", a, b)
    targets = world.create(account_ids=[c.id, a.id], collection_ids=[group], platforms=["x"])
    assert sorted(targets) == sorted(str(i.id) for i in (a, b, c))


def test_no_target_at_all_names_every_way_to_choose(world: World) -> None:
    with pytest.raises(InvalidField) as refused:
        world.create()
    assert refused.value.field == "accountIds"
    assert "collectionIds" in refused.value.message


def test_editing_a_post_can_aim_it_at_a_collection(world: World) -> None:
    a, b = world.connect("a"), world.connect("b")
    saved = world.service.create(ORG, AUTHOR, PostInput(content="hi", account_ids=[a.id]))
    group = world.group("B", b)
    edited = world.service.update(ORG, saved.post.id, PostChanges(collection_ids=[group]))
    assert edited.post.account_ids == [str(b.id)]
    untouched = world.service.update(ORG, saved.post.id, PostChanges(content="still B"))
    assert untouched.post.account_ids == [str(b.id)]


def test_an_account_in_error_can_be_named_as_it_is_reached_by_platform(world: World) -> None:
    shaky = world.connect("shaky")
    shaky.record_error(operation="health_check", message="503 from the platform")
    world.change(shaky)

    assert world.create(account_ids=[shaky.id]) == [str(shaky.id)]
    assert world.create(platforms=["twitter"]) == [str(shaky.id)]


def test_instagram_reaches_accounts_of_both_login_paths(world: World) -> None:
    standalone = world.connect("studio", provider="instagram")
    page_linked = world.connect("shop", provider="instagram-facebook")
    world.connect("elsewhere", provider="tiktok")

    def accounts(platform: str) -> list[str]:
        given = PostInput(
            content="a reel", media_urls=["https://cdn.example.com/a.mp4"], platforms=[platform]
        )
        return world.service.create(ORG, AUTHOR, given).post.account_ids

    assert sorted(accounts("instagram")) == sorted([str(standalone.id), str(page_linked.id)])
    assert accounts("instagram-facebook") == [str(page_linked.id)]
