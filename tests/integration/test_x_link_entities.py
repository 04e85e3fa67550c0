"""The X simulator shows links as X does: t.co links in the text, and what each stands for in
``entities.urls`` (with the appended media link marked by its ``media_key``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox import samples
from sandbox.app import create_sandbox_app
from tests.integration.test_x_media_simulator import Uploader, uploader
from tests.integration.test_x_simulator import Sim, bearer
from tests.support.servers import serve

TEXT = "Read example.com/launch and https://kairos.dev/notes/2030/a-rather-long-path!"


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    with serve(create_sandbox_app(tmp_path)) as base, httpx.Client(timeout=10) as http:
        yield Sim(base, http)


def timeline(sim: Sim, token: str, fields: str) -> list[dict[str, Any]]:
    user_id = sim.me(token).json()["data"]["id"]
    response = sim.http.get(
        sim.x + f"/2/users/{user_id}/tweets", params={"tweet.fields": fields}, headers=bearer(token)
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def test_each_t_co_link_is_explained_by_its_url_entity(sim: Sim) -> None:
    token = sim.tokens()["access_token"]
    assert sim.tweet(token, {"text": TEXT}).status_code == 201

    (tweet,) = timeline(sim, token, "entities")

    urls = tweet["entities"]["urls"]
    assert [(u["expanded_url"], u["display_url"]) for u in urls] == [
        ("http://example.com/launch", "example.com/launch"),  # a bare domain gains http://
        ("https://kairos.dev/notes/2030/a-rather-long-path", "kairos.dev/notes/2030/a-r…"),
    ]
    text = tweet["text"]
    assert all(text[u["start"] : u["end"]] == u["url"] for u in urls)
    assert all(u["url"].startswith("https://t.co/") for u in urls)
    rebuilt = text
    for u in reversed(urls):
        rebuilt = rebuilt[: u["start"]] + u["expanded_url"] + rebuilt[u["end"] :]
    assert rebuilt == TEXT.replace("example.com", "http://example.com")


def test_entities_appear_only_when_asked_for_and_only_with_links(sim: Sim) -> None:
    token = sim.tokens()["access_token"]
    sim.tweet(token, {"text": TEXT})
    sim.tweet(token, {"text": "no links here"})

    plain, linked = timeline(sim, token, "entities")
    assert "entities" not in plain
    assert "entities" in linked
    assert all("entities" not in tweet for tweet in timeline(sim, token, "created_at"))


def test_the_appended_media_link_names_its_media_key(sim: Sim) -> None:
    alice: Uploader = uploader(sim, "alice")
    photo = alice.ready(samples.png_bytes(10, 10), "image/png")
    posted = alice.post({"text": "see example.com", "media": {"media_ids": [photo]}})
    tweet_id = posted.json()["data"]["id"]

    (tweet,) = timeline(sim, alice.token, "entities,attachments")

    link, media = tweet["entities"]["urls"]
    assert link["expanded_url"] == "http://example.com"
    assert "media_key" not in link
    assert media["media_key"] == f"3_{photo}" == tweet["attachments"]["media_keys"][0]
    assert media["expanded_url"] == f"https://x.com/alice/status/{tweet_id}/photo/1"
    assert tweet["text"] == f"see {link['url']} {media['url']}"
    assert tweet["text"][media["start"] : media["end"]] == media["url"]
