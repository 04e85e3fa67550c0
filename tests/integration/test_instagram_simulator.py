"""The Instagram simulator over real HTTP: both login paths, token lifetimes, the container
state machine, Meta's validation errors, the publishing quota, faults, rate limits, metrics.

Media is served from a small local HTTP server, since Instagram fetches ``image_url`` and
``video_url`` itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from sandbox import samples
from sandbox.app import create_sandbox_app
from sandbox.instagram import InstagramSimConfig, create_instagram_app
from tests.integration.test_x_simulator import ConsentForm
from tests.support.servers import serve

CLIENT_ID, CLIENT_SECRET = "kairos-sandbox", "kairos-sandbox-secret"
REDIRECT = "http://127.0.0.1:9/oauth/instagram/callback"
IG_SCOPES = (
    "instagram_business_basic,instagram_business_content_publish,instagram_business_manage_insights"
)
FB_SCOPES = (
    "instagram_basic,instagram_content_publish,instagram_manage_insights,pages_show_list,"
    "pages_read_engagement,business_management"
)
V = "v25.0"
DAY = 24 * 3600
SQUARE = samples.jpeg_bytes(1080, 1080)
REEL = samples.mp4_bytes(720, 1280, 6_000)


@dataclass
class MediaServer:
    """Files Instagram fetches, by name; ``base`` is where they are served."""

    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    base: str = ""

    def add(self, name: str, data: bytes, content_type: str = "image/jpeg") -> str:
        self.files[name] = (data, content_type)
        return f"{self.base}/{name}"

    def app(self) -> Starlette:
        async def serve_file(request: Request) -> Response:
            found = self.files.get(request.path_params["name"])
            if found is None:
                return Response(status_code=404)
            return Response(found[0], media_type=found[1])

        return Starlette(routes=[Route("/{name}", serve_file)])


def instagram_server(
    stack: ExitStack, data_dir: Path, config: InstagramSimConfig | None = None
) -> str:
    """The simulator alone, mounted at ``/instagram`` as in the sandbox; its base URL."""
    app = create_instagram_app(data_dir, config)
    stack.callback(app.state.sim.close)
    base = stack.enter_context(serve(Starlette(routes=[Mount("/instagram", app=app)])))
    return f"{base}/instagram"


@dataclass
class Sim:
    base: str
    http: httpx.Client
    media: MediaServer

    # -- admin ---------------------------------------------------------------------------

    def admin(self, path: str, body: object | None = None, method: str | None = None) -> Any:
        url = f"{self.base}/_sandbox{path}"
        verb = method or ("GET" if body is None else "POST")
        response = self.http.request(verb, url, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def advance(self, seconds: float) -> None:
        self.admin("/clock", {"advance_seconds": seconds})

    def fault(self, endpoint: str, **fault: Any) -> None:
        self.admin(f"/faults/{endpoint}", fault)

    # -- OAuth ---------------------------------------------------------------------------

    def consent(self, url: str, username: str, action: str = "allow") -> httpx.Response:
        page = self.http.get(url)
        assert page.status_code == 200, page.text
        form = ConsentForm()
        form.feed(page.text)
        assert form.method == "post"
        assert ("action", action) in form.buttons
        data = {**form.fields, "username": username, "action": action}
        return self.http.post(urljoin(str(page.url), form.action or ""), data=data)

    def ig_code(self, username: str = "sandbox_user", scope: str = IG_SCOPES) -> str:
        params = {
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": scope,
            "state": "state-1",
        }
        response = self.consent(f"{self.base}/oauth/authorize?{_query(params)}", username)
        assert response.status_code == 302
        location = urlsplit(response.headers["location"])
        assert location.fragment == "_"
        query = parse_qs(location.query)
        assert query["state"] == ["state-1"]
        return query["code"][0]

    def ig_exchange(self, code: str, **overrides: str) -> httpx.Response:
        form = {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "grant_type": "authorization_code",
            "redirect_uri": REDIRECT,
            "code": code,
            **overrides,
        }
        return self.http.post(f"{self.base}/oauth/access_token", data=form)

    def ig_long_lived(self, short: str) -> httpx.Response:
        params = {
            "grant_type": "ig_exchange_token",
            "client_secret": CLIENT_SECRET,
            "access_token": short,
        }
        return self.http.get(f"{self.base}/graph/access_token", params=params)

    def ig_token(self, username: str = "sandbox_user", scope: str = IG_SCOPES) -> str:
        """A long-lived Instagram Login token for ``username``."""
        exchanged = self.ig_exchange(self.ig_code(username, scope))
        assert exchanged.status_code == 200, exchanged.text
        long_lived = self.ig_long_lived(exchanged.json()["data"][0]["access_token"])
        assert long_lived.status_code == 200, long_lived.text
        token: str = long_lived.json()["access_token"]
        return token

    def fb_code(self, username: str = "sandbox_fb", scope: str = FB_SCOPES) -> str:
        params = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT, "scope": scope, "state": "s"}
        url = f"{self.base}/facebook/{V}/dialog/oauth?{_query(params)}"
        response = self.consent(url, username)
        assert response.status_code == 302
        location = urlsplit(response.headers["location"])
        assert location.fragment == "_=_"
        return parse_qs(location.query)["code"][0]

    def fb_token_call(self, **params: str) -> httpx.Response:
        query = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **params}
        return self.http.get(f"{self.base}/facebook-graph/{V}/oauth/access_token", params=query)

    def fb_token(self, username: str = "sandbox_fb", scope: str = FB_SCOPES) -> str:
        """A long-lived Facebook user token for ``username``."""
        short = self.fb_token_call(redirect_uri=REDIRECT, code=self.fb_code(username, scope))
        assert short.status_code == 200, short.text
        long_lived = self.fb_token_call(
            grant_type="fb_exchange_token", fb_exchange_token=short.json()["access_token"]
        )
        assert long_lived.status_code == 200, long_lived.text
        token: str = long_lived.json()["access_token"]
        return token

    # -- Graph ---------------------------------------------------------------------------

    def graph(
        self, method: str, path: str, token: str, host: str = "graph", **params: str
    ) -> httpx.Response:
        url = f"{self.base}/{host}/{V}{path}"
        headers = {"Authorization": f"Bearer {token}"}
        if method == "GET":
            return self.http.get(url, params=params, headers=headers)
        return self.http.post(url, data=params, headers=headers)

    def ig_user(self, token: str) -> str:
        me = self.graph("GET", "/me", token, fields="user_id")
        assert me.status_code == 200, me.text
        user_id: str = me.json()["user_id"]
        return user_id

    def container(self, token: str, user: str, host: str = "graph", **params: str) -> str:
        created = self.graph("POST", f"/{user}/media", token, host, **params)
        assert created.status_code == 200, created.text
        container: str = created.json()["id"]
        return container

    def status(self, token: str, container: str, host: str = "graph") -> str:
        answer = self.graph("GET", f"/{container}", token, host, fields="status_code,status")
        assert answer.status_code == 200, answer.text
        status: str = answer.json()["status_code"]
        return status

    def publish(self, token: str, user: str, container: str, host: str = "graph") -> httpx.Response:
        return self.graph("POST", f"/{user}/media_publish", token, host, creation_id=container)

    def post_image(self, token: str, user: str, caption: str, host: str = "graph") -> str:
        """Create, let process, publish: the media id."""
        url = self.media.add("square.jpg", SQUARE)
        container = self.container(token, user, host, image_url=url, caption=caption)
        self.advance(2)
        published = self.publish(token, user, container, host)
        assert published.status_code == 200, published.text
        media_id: str = published.json()["id"]
        return media_id


def _query(params: dict[str, str]) -> str:
    return "&".join(
        f"{key}={httpx.QueryParams({key: value})[key]}" for key, value in params.items()
    )


def graph_error(response: httpx.Response) -> dict[str, Any]:
    assert 400 <= response.status_code < 600, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["fbtrace_id"]
    return error


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Sim]]:
    with ExitStack() as stack:

        def _start(config: InstagramSimConfig | None = None) -> Sim:
            media = MediaServer()
            media.base = stack.enter_context(serve(media.app()))
            base = instagram_server(stack, tmp_path, config)
            http = stack.enter_context(httpx.Client(timeout=10))
            return Sim(base, http, media)

        yield _start


@pytest.fixture
def sim(start: Callable[..., Sim]) -> Sim:
    return start()


# -- the sandbox app ------------------------------------------------------------------------


def test_the_sandbox_app_mounts_instagram(tmp_path: Path) -> None:
    with serve(create_sandbox_app(tmp_path)) as base, httpx.Client() as http:
        index = {item["path"]: item for item in http.get(base).json()["simulators"]}
        assert index["/instagram"]["authorize_url"] == "/instagram/oauth/authorize"
        assert index["/instagram"]["api_base_url"] == "/instagram/graph"
        config = http.get(f"{base}/instagram/_sandbox/config").json()
        assert config["quota_total"] == 50
        assert "client_secret" not in config


# -- Instagram Login ------------------------------------------------------------------------


def test_instagram_consent_redirects_with_a_code_or_a_refusal(sim: Sim) -> None:
    code = sim.ig_code("alice")
    assert len(code) > 20
    params = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": IG_SCOPES,
        "state": "st",
    }
    denied = sim.consent(f"{sim.base}/oauth/authorize?{_query(params)}", "alice", "deny")
    assert denied.status_code == 302
    query = parse_qs(urlsplit(denied.headers["location"]).query)
    assert query["error"] == ["access_denied"]
    assert query["error_reason"] == ["user_denied"]
    assert query["state"] == ["st"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"client_id": "someone-else"}, "Invalid platform app"),
        ({"redirect_uri": "not a url"}, "Invalid redirect_uri"),
        ({"response_type": "token"}, "Invalid response_type"),
        ({"scope": "business_basic,business_content_publish"}, "Invalid Scopes: business_basic"),
        ({"scope": "instagram_business_content_publish"}, "instagram_business_basic is required"),
    ],
)
def test_instagram_authorize_validates_its_parameters(
    sim: Sim, override: dict[str, str], message: str
) -> None:
    params = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": IG_SCOPES,
        **override,
    }
    page = sim.http.get(f"{sim.base}/oauth/authorize", params=params)
    assert page.status_code == 400
    assert message in page.text


def test_instagram_code_exchange_answers_data_or_flat_and_burns_the_code(
    start: Callable[..., Sim],
) -> None:
    sim = start()
    code = sim.ig_code("alice")
    exchanged = sim.ig_exchange(code)
    assert exchanged.status_code == 200
    (issued,) = exchanged.json()["data"]
    assert issued["access_token"].startswith("IG")
    assert issued["user_id"].startswith("17841")
    assert issued["permissions"] == IG_SCOPES
    reused = sim.ig_exchange(code)
    assert reused.status_code == 400
    assert reused.json() == {
        "error_type": "OAuthException",
        "code": 400,
        "error_message": "This authorization code has been used",
    }

    sim.admin("/config", {"token_response_shape": "flat"})
    flat = sim.ig_exchange(sim.ig_code("alice")).json()
    assert set(flat) == {"access_token", "user_id", "permissions"}

    wrong_secret = sim.ig_exchange(sim.ig_code("alice"), client_secret="nope")
    assert wrong_secret.json()["error_message"] == "Error validating client secret."
    mismatch = sim.ig_exchange(sim.ig_code("alice"), redirect_uri="http://127.0.0.1:9/other")
    assert "redirect_uri is identical" in mismatch.json()["error_message"]


def test_instagram_tokens_live_an_hour_then_sixty_days_and_refresh_after_a_day(sim: Sim) -> None:
    short = sim.ig_exchange(sim.ig_code("alice")).json()["data"][0]["access_token"]
    long_lived = sim.ig_long_lived(short).json()
    assert long_lived["token_type"] == "bearer"
    assert long_lived["expires_in"] == 60 * DAY
    again = sim.ig_long_lived(long_lived["access_token"])
    assert again.status_code == 400  # only a short-lived token can be exchanged

    def refresh(token: str) -> httpx.Response:
        params = {"grant_type": "ig_refresh_token", "access_token": token}
        return sim.http.get(f"{sim.base}/graph/refresh_access_token", params=params)

    too_young = refresh(long_lived["access_token"])
    assert graph_error(too_young)["code"] == 100
    assert "24 hours" in too_young.json()["error"]["message"]

    sim.advance(DAY + 1)
    refreshed = refresh(long_lived["access_token"]).json()
    assert refreshed["expires_in"] == 60 * DAY
    assert refreshed["access_token"] != long_lived["access_token"]
    assert sim.graph("GET", "/me", refreshed["access_token"]).status_code == 200
    assert sim.graph("GET", "/me", short).status_code == 400  # the 1 h token is long gone

    sim.advance(61 * DAY)
    expired = sim.graph("GET", "/me", refreshed["access_token"])
    error = graph_error(expired)
    assert (error["code"], error["error_subcode"]) == (190, 463)
    assert error["message"].startswith("Error validating access token: Session has expired on")
    assert expired.headers["www-authenticate"].startswith(
        'OAuth "Facebook Platform" "invalid_token"'
    )
    assert graph_error(refresh(refreshed["access_token"]))["code"] == 190


def test_per_user_token_lifetimes_and_revocation(sim: Sim) -> None:
    knobs = sim.admin("/users/brief/tokens", {"short_token_ttl": 60, "long_token_ttl": 600})
    assert knobs["long_token_ttl"] == 600
    short = sim.ig_exchange(sim.ig_code("brief")).json()["data"][0]["access_token"]
    assert sim.ig_long_lived(short).json()["expires_in"] == 600

    token = sim.ig_token("alice")
    assert sim.admin("/users/alice/revoke", {})["revoked_tokens"] >= 1
    error = graph_error(sim.graph("GET", "/me", token))
    assert (error["code"], error["error_subcode"]) == (190, 458)


def test_instagram_me_reports_the_professional_account(sim: Sim) -> None:
    token = sim.ig_token("alice")
    me = sim.graph("GET", "/me", token, fields="user_id,username,name,account_type,id")
    body = me.json()
    assert body["username"] == "alice"
    assert body["account_type"] == "BUSINESS"
    assert body["user_id"].startswith("17841")
    assert body["id"] != body["user_id"]  # the app-scoped id
    unknown = graph_error(sim.graph("GET", "/me", token, fields="id,shoe_size"))
    assert unknown["message"] == (
        "(#100) Tried accessing nonexisting field (shoe_size) on node type (IGUser)"
    )

    sim.admin("/users/alice", {"account_type": "PERSONAL"})
    me = sim.graph("GET", "/me", token, fields="account_type").json()
    assert me == {"account_type": "PERSONAL"}
    refused = sim.graph("POST", f"/{body['user_id']}/media", token, image_url="x")
    assert graph_error(refused)["code"] == 10


# -- Facebook Login -------------------------------------------------------------------------


def test_facebook_login_lists_pages_and_their_instagram_accounts(sim: Sim) -> None:
    short = sim.fb_token_call(redirect_uri=REDIRECT, code=sim.fb_code("dana"))
    assert short.json()["expires_in"] == 3600
    token = sim.fb_token("dana")
    assert sim.graph("GET", "/me", token, "facebook-graph", fields="id,name").json()["name"] == (
        "Sandbox dana"
    )
    fields = "id,name,instagram_business_account{id,username}"
    pages = sim.graph("GET", "/me/accounts", token, "facebook-graph", fields=fields).json()
    linked = [
        (page["name"], page.get("instagram_business_account", {}).get("username"))
        for page in pages["data"]
    ]
    assert linked == [
        ("dana Studio", "dana_studio"),
        ("dana Shop", "dana_shop"),
        ("dana Blog", None),
    ]
    # An Instagram Login token means nothing on graph.facebook.com.
    ig_token = sim.ig_token("dana_studio")
    assert graph_error(sim.graph("GET", "/me", ig_token, "facebook-graph"))["code"] == 190

    sim.admin("/users/dana_shop", {"account_type": "PERSONAL"})
    sim.admin(
        "/facebook-users/dana/pages",
        [{"name": "Only page", "instagram": "dana_shop"}, {"name": "Other", "instagram": None}],
        method="PUT",
    )
    pages = sim.graph("GET", "/me/accounts", token, "facebook-graph", fields=fields).json()
    assert [page.get("instagram_business_account") for page in pages["data"]] == [None, None]


def test_facebook_code_and_token_errors(sim: Sim) -> None:
    code = sim.fb_code("dana")
    mismatch = graph_error(sim.fb_token_call(redirect_uri=REDIRECT + "x", code=code))
    assert (mismatch["code"], mismatch["error_subcode"]) == (100, 36008)
    used = graph_error(sim.fb_token_call(redirect_uri=REDIRECT, code=code))
    assert (used["code"], used["error_subcode"]) == (100, 36009)
    bad_secret = sim.http.get(
        f"{sim.base}/facebook-graph/{V}/oauth/access_token",
        params={"client_id": CLIENT_ID, "client_secret": "x", "code": "y"},
    )
    assert graph_error(bad_secret)["message"] == "Error validating client secret."
    # Facebook Login has no refresh endpoint.
    assert sim.http.get(f"{sim.base}/facebook-graph/refresh_access_token").status_code == 400


def test_facebook_path_publishes_to_a_page_linked_account_only(sim: Sim) -> None:
    token = sim.fb_token("dana")
    studio = sim.admin("/users/dana_studio")["id"]
    media_id = sim.post_image(token, studio, "via the Page", "facebook-graph")
    lookup = sim.graph(
        "GET", f"/{media_id}", token, "facebook-graph", fields="id,permalink,media_type,username"
    ).json()
    assert lookup["media_type"] == "IMAGE"
    assert lookup["username"] == "dana_studio"
    assert lookup["permalink"].startswith("https://www.instagram.com/p/")
    stranger = sim.admin("/users/stranger", {})["id"]
    refused = sim.graph("POST", f"/{stranger}/media", token, "facebook-graph", image_url="x")
    assert graph_error(refused)["error_subcode"] == 33


# -- containers and publishing ----------------------------------------------------------------


def test_an_image_container_processes_then_publishes_once(sim: Sim) -> None:
    token = sim.ig_token()
    user = sim.ig_user(token)
    url = sim.media.add("square.jpg", SQUARE)
    container = sim.container(token, user, image_url=url, caption="First #post")
    assert sim.status(token, container) == "IN_PROGRESS"
    early = graph_error(sim.publish(token, user, container))
    assert (early["code"], early["error_subcode"]) == (9007, 2207027)
    assert early["message"] == "The media is not ready for publishing, please wait for a moment"

    sim.advance(1.5)
    assert sim.status(token, container) == "FINISHED"
    published = sim.publish(token, user, container)
    assert published.status_code == 200
    media_id = published.json()["id"]
    assert sim.status(token, container) == "PUBLISHED"
    again = graph_error(sim.publish(token, user, container))
    assert (again["code"], again["message"]) == (100, "The media has already been published")

    recorded = sim.admin("/media")
    assert [m["id"] for m in recorded["data"]] == [media_id]
    assert recorded["duplicates"] == 0
    assert recorded["data"][0]["caption"] == "First #post"


def test_containers_expire_after_a_day(sim: Sim) -> None:
    token = sim.ig_token()
    user = sim.ig_user(token)
    container = sim.container(token, user, image_url=sim.media.add("a.jpg", SQUARE))
    sim.advance(DAY + 1)
    assert sim.status(token, container) == "EXPIRED"
    error = graph_error(sim.publish(token, user, container))
    assert (error["code"], error["error_subcode"]) == (-2, 2207020)
    unknown = graph_error(sim.publish(token, user, "17900000000999999"))
    assert (unknown["code"], unknown["error_subcode"]) == (24, 2207008)


@pytest.mark.parametrize(
    ("data", "code", "subcode"),
    [
        (samples.png_bytes(1080, 1080), 36001, 2207005),
        (samples.jpeg_bytes(2000, 1000), 36003, 2207009),  # 2:1 is wider than 1.91:1
        (samples.jpeg_bytes(1080, 1440), 36003, 2207009),  # 3:4 is taller than 4:5
        (samples.jpeg_bytes(1080, 1080, size=3_000_000), 36000, 2207004),
    ],
)
def test_images_are_checked_when_the_container_is_created(
    start: Callable[..., Sim], data: bytes, code: int, subcode: int
) -> None:
    sim = start(InstagramSimConfig(max_image_bytes=2_000_000))
    token = sim.ig_token()
    user = sim.ig_user(token)
    url = sim.media.add("picture", data)
    error = graph_error(sim.graph("POST", f"/{user}/media", token, image_url=url))
    assert (error["code"], error["error_subcode"]) == (code, subcode)
    assert error["error_user_msg"]
    assert sim.admin("/containers")["count"] == 0


def test_4_5_and_1_91_are_the_aspect_ratio_bounds(sim: Sim) -> None:
    token = sim.ig_token()
    user = sim.ig_user(token)
    for name, data in (
        ("tall", samples.jpeg_bytes(1080, 1350)),
        ("wide", samples.jpeg_bytes(1910, 1000)),
    ):
        sim.container(token, user, image_url=sim.media.add(name, data))


@pytest.mark.parametrize(
    ("caption", "code", "subcode"),
    [
        ("x" * 2201, 36004, 2207010),
        (" ".join(f"#tag{i}" for i in range(31)), 36004, 2207010),
        (" ".join(f"@user{i}" for i in range(21)), 100, 2207040),
    ],
)
def test_captions_are_checked(sim: Sim, caption: str, code: int, subcode: int) -> None:
    token = sim.ig_token()
    user = sim.ig_user(token)
    url = sim.media.add("square.jpg", SQUARE)
    error = graph_error(sim.graph("POST", f"/{user}/media", token, image_url=url, caption=caption))
    assert (error["code"], error["error_subcode"]) == (code, subcode)
    fine = sim.graph("POST", f"/{user}/media", token, image_url=url, caption="x" * 2200)
    assert fine.status_code == 200


def test_media_that_cannot_be_fetched_or_typed(sim: Sim) -> None:
    token = sim.ig_token()
    user = sim.ig_user(token)
    missing = graph_error(
        sim.graph("POST", f"/{user}/media", token, image_url=f"{sim.media.base}/nothing")
    )
    assert (missing["code"], missing["error_subcode"]) == (9004, 2207052)
    video_as_feed = graph_error(
        sim.graph("POST", f"/{user}/media", token, video_url=sim.media.add("v.mp4", REEL))
    )
    assert video_as_feed["error_subcode"] == 2207023
    plain_video = graph_error(
        sim.graph("POST", f"/{user}/media", token, media_type="VIDEO", video_url="x")
    )
    assert plain_video["error_subcode"] == 2207023


def test_reels_process_for_a_while_and_bad_videos_end_in_error(sim: Sim) -> None:
    token = sim.ig_token()
    user = sim.ig_user(token)
    url = sim.media.add("reel.mp4", REEL, "video/mp4")
    reel = sim.container(token, user, media_type="REELS", video_url=url, caption="A reel")
    sim.advance(2)
    assert sim.status(token, reel) == "IN_PROGRESS"
    sim.advance(1.5)
    assert sim.status(token, reel) == "FINISHED"
    media_id = sim.publish(token, user, reel).json()["id"]
    lookup = sim.graph(
        "GET", f"/{media_id}", token, fields="media_type,media_product_type,permalink"
    )
    assert lookup.json()["media_type"] == "VIDEO"
    assert lookup.json()["media_product_type"] == "REELS"
    assert "/reel/" in lookup.json()["permalink"]

    short = sim.media.add("short.mp4", samples.mp4_bytes(720, 1280, 2_000), "video/mp4")
    failing = sim.container(token, user, media_type="REELS", video_url=short)
    assert sim.status(token, failing) == "IN_PROGRESS"
    sim.advance(4)
    status = sim.graph("GET", f"/{failing}", token, fields="status_code,status").json()
    assert status["status_code"] == "ERROR"
    assert status["status"].endswith("error code 2207026")
    error = graph_error(sim.publish(token, user, failing))
    assert (error["code"], error["error_subcode"]) == (352, 2207026)


def test_carousels_take_two_to_ten_items_and_count_once(sim: Sim) -> None:
    token = sim.ig_token()
    user = sim.ig_user(token)
    image = sim.media.add("square.jpg", SQUARE)
    video = sim.media.add("clip.mp4", samples.mp4_bytes(1080, 1080, 5_000), "video/mp4")
    children = [
        sim.container(token, user, image_url=image, is_carousel_item="true"),
        sim.container(token, user, media_type="VIDEO", video_url=video, is_carousel_item="true"),
    ]
    one = graph_error(
        sim.graph("POST", f"/{user}/media", token, media_type="CAROUSEL", children=children[0])
    )
    assert (one["code"], one["error_subcode"]) == (100, 2207028)
    eleven = ",".join([children[0]] * 11)
    assert (
        graph_error(
            sim.graph("POST", f"/{user}/media", token, media_type="CAROUSEL", children=eleven)
        )["error_subcode"]
        == 2207028
    )
    carousel = sim.container(
        token, user, media_type="CAROUSEL", children=",".join(children), caption="Two"
    )
    sim.advance(2)
    assert sim.status(token, carousel) == "IN_PROGRESS"  # waits for the video item
    sim.advance(2)
    media_id = sim.publish(token, user, carousel).json()["id"]
    kind = sim.graph("GET", f"/{media_id}", token, fields="media_type").json()["media_type"]
    assert kind == "CAROUSEL_ALBUM"
    limit = sim.graph(
        "GET", f"/{user}/content_publishing_limit", token, fields="quota_usage,config"
    ).json()
    assert limit == {
        "data": [{"quota_usage": 1, "config": {"quota_total": 50, "quota_duration": DAY}}]
    }


def test_the_publishing_quota_is_a_rolling_window(sim: Sim) -> None:
    token = sim.ig_token("alice")
    user = sim.ig_user(token)
    sim.admin("/users/alice", {"quota_total": 2})
    first_at = sim.admin("/clock")["now"]
    sim.post_image(token, user, "one")
    sim.advance(3600)
    sim.post_image(token, user, "two")
    url = sim.media.add("square.jpg", SQUARE)
    third = sim.container(token, user, image_url=url, caption="three")
    sim.advance(2)
    error = graph_error(sim.publish(token, user, third))
    assert (error["code"], error["error_subcode"]) == (9, 2207042)
    assert error["error_user_title"] == "Max posts reached"
    usage = sim.graph("GET", f"/{user}/content_publishing_limit", token).json()
    assert usage == {"data": [{"quota_usage": 2}]}
    since = sim.graph(
        "GET", f"/{user}/content_publishing_limit", token, since=str(int(first_at + 60))
    ).json()
    assert since["data"][0]["quota_usage"] == 1

    sim.advance(DAY - 3600 + 5)  # the first post leaves the window
    assert sim.publish(token, user, third).status_code == 200


def test_published_media_are_listed_newest_first_with_cursors(sim: Sim) -> None:
    token = sim.ig_token()
    user = sim.ig_user(token)
    ids = []
    for index in range(3):
        ids.append(sim.post_image(token, user, f"post {index}"))
        sim.advance(60)
    page = sim.graph("GET", f"/{user}/media", token, fields="id,caption,timestamp", limit="2")
    body = page.json()
    assert [item["id"] for item in body["data"]] == [ids[2], ids[1]]
    assert body["data"][0]["timestamp"].endswith("+0000")
    rest = sim.graph(
        "GET",
        f"/{user}/media",
        token,
        fields="id",
        limit="2",
        after=body["paging"]["cursors"]["after"],
    ).json()
    assert [item["id"] for item in rest["data"]] == [ids[0]]
    assert "next" not in rest["paging"]


# -- faults and limits -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["abort", "503"])
def test_a_publish_can_commit_and_lose_its_answer(sim: Sim, mode: str) -> None:
    token = sim.ig_token()
    user = sim.ig_user(token)
    container = sim.container(token, user, image_url=sim.media.add("a.jpg", SQUARE))
    sim.advance(2)
    sim.fault("media_publish", drop_response_rate=1, drop_response_mode=mode, times=1)
    if mode == "abort":
        with pytest.raises(httpx.RemoteProtocolError):
            sim.publish(token, user, container)
    else:
        assert sim.publish(token, user, container).status_code == 503
    assert sim.status(token, container) == "PUBLISHED"
    assert sim.admin("/media")["count"] == 1
    assert sim.admin("/faults/media_publish")["drop_response_rate"] == 0  # used up


def test_a_container_create_can_commit_and_lose_its_answer(sim: Sim) -> None:
    token = sim.ig_token()
    user = sim.ig_user(token)
    sim.fault("media", drop_response_rate=1, times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        sim.graph("POST", f"/{user}/media", token, image_url=sim.media.add("a.jpg", SQUARE))
    assert sim.admin("/containers")["count"] == 1


def test_injected_failures_and_error_codes(sim: Sim) -> None:
    token = sim.ig_token()
    sim.fault("me", fail_rate=1, fail_status=500, times=1)
    failed = sim.graph("GET", "/me", token)
    assert failed.status_code == 500
    error = graph_error(failed)
    assert error["is_transient"] is True
    assert error["code"] == 2
    assert sim.graph("GET", "/me", token).status_code == 200
    sim.fault("me", error_rate=1, error_code=-1, error_subcode=2207001, error_transient=True)
    forced = graph_error(sim.graph("GET", "/me", token))
    assert (forced["code"], forced["error_subcode"], forced["is_transient"]) == (-1, 2207001, True)
    sim.admin("/faults/me", method="DELETE")
    assert sim.graph("GET", "/me", token).status_code == 200
    unknown_endpoint = sim.http.post(f"{sim.base}/_sandbox/faults/nope", json={})
    assert unknown_endpoint.status_code == 400


def test_calls_per_hour_are_limited_per_account_and_per_app(start: Callable[..., Sim]) -> None:
    sim = start(InstagramSimConfig(account_calls_per_hour=3))
    token = sim.ig_token()
    for _ in range(3):
        answer = sim.graph("GET", "/me", token)
        assert answer.status_code == 200
    usage = json.loads(answer.headers["x-business-use-case-usage"])
    (entries,) = usage.values()
    assert entries[0]["call_count"] == 100
    limited = sim.graph("GET", "/me", token)
    error = graph_error(limited)
    assert (error["code"], error["is_transient"]) == (80002, True)
    (entries,) = json.loads(limited.headers["x-business-use-case-usage"]).values()
    assert 0 < entries[0]["estimated_time_to_regain_access"] <= 60
    sim.advance(3600)
    assert sim.graph("GET", "/me", token).status_code == 200

    sim.admin("/config", {"account_calls_per_hour": 1000, "app_calls_per_hour": 1})
    sim.graph("GET", "/me", token)
    app_limited = sim.graph("GET", "/me", token)
    assert graph_error(app_limited)["code"] == 4
    assert json.loads(app_limited.headers["x-app-usage"])["call_count"] == 100


# -- insights -----------------------------------------------------------------------------------


def test_insights_grow_with_age_and_follow_the_audience(sim: Sim) -> None:
    token = sim.ig_token("alice")
    user = sim.ig_user(token)
    hour = datetime.fromtimestamp(sim.admin("/clock")["now"], UTC).hour
    sim.admin(
        "/users/alice/audience", {"best_hours": [hour], "best_days": list(range(7)), "size": 10_000}
    )
    peak = sim.post_image(token, user, "at the best hour")
    sim.advance(12 * 3600)
    off_peak = sim.post_image(token, user, "in the middle of the night")
    metrics = "views,reach,likes,comments,shares,saved"

    def views(media_id: str) -> dict[str, int]:
        answer = sim.graph("GET", f"/{media_id}/insights", token, metric=metrics)
        assert answer.status_code == 200, answer.text
        return {item["name"]: item["values"][0]["value"] for item in answer.json()["data"]}

    young = views(off_peak)
    sim.advance(48 * 3600)
    grown = views(off_peak)
    assert young["views"] == 0
    assert grown["views"] > 0
    assert grown["reach"] < grown["views"]
    assert views(peak)["views"] > 3 * grown["views"]
    counters = sim.graph("GET", f"/{peak}", token, fields="like_count,comments_count").json()
    assert counters["like_count"] == views(peak)["likes"]

    unsupported = graph_error(
        sim.graph("GET", f"/{peak}/insights", token, metric="views,impressions")
    )
    assert unsupported["code"] == 100
    assert "does not support the impressions metric" in unsupported["message"]
    missing = graph_error(sim.graph("GET", "/17900000000999999/insights", token, metric="views"))
    assert missing["error_subcode"] == 33
