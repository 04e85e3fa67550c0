"""The X simulator's media upload over real HTTP: chunked and one-shot uploads, what finalize
checks, the processing state machine on the sandbox clock, attaching media to posts, faults."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox import samples
from sandbox.app import create_sandbox_app
from sandbox.x import XSimConfig
from tests.integration.test_x_simulator import Sim, bearer
from tests.support.servers import serve

MEDIA_SCOPES = "tweet.read tweet.write users.read offline.access media.write"
INVALID_REQUEST = "https://api.twitter.com/2/problems/invalid-request"
FORBIDDEN = {"title": "Forbidden", "detail": "Forbidden", "type": "about:blank", "status": 403}
MIB = 1024 * 1024
_MP4 = samples.mp4_bytes(640, 360, 5_000)
FTYP_ONLY = _MP4[: int.from_bytes(_MP4[:4], "big")]


@dataclass
class Uploader:
    """One user's media calls against the simulator."""

    sim: Sim
    token: str

    @property
    def url(self) -> str:
        return self.sim.x + "/2/media/upload"

    def initialize(self, body: object) -> httpx.Response:
        return self.sim.http.post(self.url + "/initialize", json=body, headers=bearer(self.token))

    def append(self, media_id: str, index: object, data: bytes) -> httpx.Response:
        return self.sim.http.post(
            f"{self.url}/{media_id}/append",
            data={"segment_index": str(index)},
            files={"media": ("blob", data, "application/octet-stream")},
            headers=bearer(self.token),
        )

    def finalize(self, media_id: str) -> httpx.Response:
        return self.sim.http.post(f"{self.url}/{media_id}/finalize", headers=bearer(self.token))

    def status(self, media_id: str) -> httpx.Response:
        params = {"command": "STATUS", "media_id": media_id}
        return self.sim.http.get(self.url, params=params, headers=bearer(self.token))

    def start(self, media_type: str, size: int, category: str | None = None) -> str:
        body: dict[str, Any] = {"media_type": media_type, "total_bytes": size}
        if category is not None:
            body["media_category"] = category
        response = self.initialize(body)
        assert response.status_code == 200, response.text
        media_id: str = response.json()["data"]["id"]
        return media_id

    def upload(
        self, data: bytes, media_type: str, category: str | None = None, chunk: int = 4 * MIB
    ) -> tuple[str, httpx.Response]:
        """Initialize and append every chunk; the id and the finalize response."""
        media_id = self.start(media_type, len(data), category)
        for index, offset in enumerate(range(0, len(data), chunk)):
            response = self.append(media_id, index, data[offset : offset + chunk])
            assert response.status_code == 200, response.text
        return media_id, self.finalize(media_id)

    def ready(self, data: bytes, media_type: str, category: str | None = None) -> str:
        """An upload that finished processing."""
        media_id, finalized = self.upload(data, media_type, category)
        assert finalized.status_code == 200, finalized.text
        if "processing_info" in finalized.json()["data"]:
            self.sim.admin("/clock", {"advance_seconds": 2})
            state = self.status(media_id).json()["data"]["processing_info"]["state"]
            assert state == "succeeded"
        return media_id

    def post(self, body: object) -> httpx.Response:
        return self.sim.tweet(self.token, body)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Sim]]:
    with ExitStack() as stack:

        def _start(config: XSimConfig | None = None) -> Sim:
            base = stack.enter_context(serve(create_sandbox_app(tmp_path, x_config=config)))
            http = stack.enter_context(httpx.Client(timeout=30))
            return Sim(base, http)

        yield _start


@pytest.fixture
def sim(start: Callable[..., Sim]) -> Sim:
    return start()


def uploader(sim: Sim, username: str = "sandbox_user") -> Uploader:
    return Uploader(sim, sim.tokens(username, scope=MEDIA_SCOPES)["access_token"])


@pytest.fixture
def alice(sim: Sim) -> Uploader:
    return uploader(sim, "alice")


def assert_invalid(response: httpx.Response, message: str) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    problem: dict[str, Any] = response.json()
    assert problem["title"] == "Invalid Request"
    assert problem["detail"] == "One or more parameters to your request was invalid."
    assert problem["type"] == INVALID_REQUEST
    error = problem["errors"][0]
    assert message in error.get("message", error.get("detail", ""))
    return problem


def media_record(sim: Sim, media_id: str) -> dict[str, Any]:
    uploads = sim.admin("/media").json()["data"]
    return next(item for item in uploads if item["id"] == media_id)


# -- initialize -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("media_type", "category", "prefix"),
    [
        ("image/png", "tweet_image", "3_"),
        ("image/gif", "tweet_gif", "16_"),
        ("video/mp4", "tweet_video", "13_"),
        ("image/gif", None, "16_"),
        ("video/quicktime", None, "13_"),
    ],
)
def test_initialize_returns_an_id_a_key_and_a_lifetime(
    alice: Uploader, media_type: str, category: str | None, prefix: str
) -> None:
    body: dict[str, Any] = {"media_type": media_type, "total_bytes": 1000}
    if category:
        body["media_category"] = category
    response = alice.initialize(body)
    assert response.status_code == 200
    data = response.json()["data"]
    assert set(data) == {"id", "media_key", "expires_after_secs"}
    assert data["id"].isdigit()
    assert len(data["id"]) == 19
    assert data["media_key"] == prefix + data["id"]
    assert 15 * 24 * 3600 - 5 <= data["expires_after_secs"] <= 15 * 24 * 3600
    assert response.headers["x-rate-limit-limit"] == "1875"
    assert response.headers["x-rate-limit-remaining"] == "1874"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"media_type": "image/png"}, "$.total_bytes: is missing"),
        ({"total_bytes": 10}, "$.media_type: is missing"),
        ({"media_type": "image/png", "total_bytes": "10"}, "string found, integer expected"),
        ({"media_type": "image/png", "total_bytes": 10, "foo": 1}, "$.foo: is not defined"),
        ({"media_type": "image/avif", "total_bytes": 10}, "$.media_type: does not have a value"),
        (
            {"media_type": "image/png", "total_bytes": 10, "media_category": "tweet_photo"},
            "$.media_category: does not have a value",
        ),
        (
            {"media_type": "image/png", "total_bytes": 10, "media_category": "tweet_video"},
            "media_type image/png cannot be uploaded as media_category tweet_video",
        ),
        (
            {"media_type": "video/mp4", "total_bytes": 10, "media_category": "tweet_image"},
            "cannot be uploaded as media_category tweet_image",
        ),
        (
            {"media_type": "image/jpeg", "total_bytes": 10, "media_category": "tweet_gif"},
            "cannot be uploaded as media_category tweet_gif",
        ),
        ({"media_type": "text/srt", "total_bytes": 10}, "cannot be uploaded as media_category"),
        ({"media_type": "image/png", "total_bytes": 0}, "total_bytes must be between 1 and"),
        (
            {"media_type": "image/jpeg", "total_bytes": 5 * MIB + 1},
            f"between 1 and {5 * MIB} for tweet_image",
        ),
        (
            {"media_type": "image/gif", "total_bytes": 15 * MIB + 1},
            f"between 1 and {15 * MIB} for tweet_gif",
        ),
        (
            {"media_type": "video/mp4", "total_bytes": 512 * MIB + 1},
            f"between 1 and {512 * MIB} for tweet_video",
        ),
        (["media_type"], "$: object expected"),
    ],
)
def test_invalid_initialize_bodies_are_400(alice: Uploader, body: object, message: str) -> None:
    assert_invalid(alice.initialize(body), message)
    assert alice.sim.admin("/media").json()["count"] == 0


def test_size_limits_are_inclusive(alice: Uploader) -> None:
    for media_type, size in (
        ("image/png", 5 * MIB),
        ("image/gif", 15 * MIB),
        ("video/mp4", 512 * MIB),
    ):
        assert alice.initialize({"media_type": media_type, "total_bytes": size}).status_code == 200
    oversized = alice.initialize({"media_type": "image/gif", "total_bytes": 5 * MIB + 1})
    assert oversized.status_code == 200  # an animated GIF may be 15 MB
    as_photo = {
        "media_type": "image/gif",
        "total_bytes": 5 * MIB + 1,
        "media_category": "tweet_image",
    }
    assert_invalid(alice.initialize(as_photo), "for tweet_image")


def test_a_non_json_initialize_body_is_400(alice: Uploader) -> None:
    response = alice.sim.http.post(
        alice.url + "/initialize",
        content=b"media_type=image/png",
        headers={**bearer(alice.token), "content-type": "application/json"},
    )
    assert_invalid(response, "could not be parsed as JSON")


def test_media_endpoints_need_the_media_write_scope(sim: Sim) -> None:
    token = sim.tokens("bob", scope="tweet.read tweet.write users.read")["access_token"]
    owner = uploader(sim, "bob")
    media_id = owner.start("image/png", 10)
    for response in (
        Uploader(sim, token).initialize({"media_type": "image/png", "total_bytes": 10}),
        Uploader(sim, token).append(media_id, 0, b"x" * 10),
        Uploader(sim, token).finalize(media_id),
        Uploader(sim, token).status(media_id),
        sim.http.post(
            sim.x + "/2/media/upload",
            data={"media_category": "tweet_image"},
            files={"media": ("a.png", samples.png_bytes(4, 4), "image/png")},
            headers=bearer(token),
        ),
    ):
        assert response.status_code == 403
        assert response.json() == FORBIDDEN
        assert "x-rate-limit-remaining" in response.headers
    assert sim.admin("/media").json()["count"] == 1


def test_media_endpoints_need_a_bearer_token(sim: Sim) -> None:
    response = sim.http.post(
        sim.x + "/2/media/upload/initialize", json={"media_type": "image/png", "total_bytes": 1}
    )
    assert response.status_code == 401
    assert response.json()["title"] == "Unauthorized"


# -- append and finalize ----------------------------------------------------------------


def test_a_photo_in_segments_appended_out_of_order(alice: Uploader) -> None:
    png = samples.png_bytes(640, 480)
    media_id = alice.start("image/png", len(png), "tweet_image")
    half = len(png) // 2
    second = alice.append(media_id, 1, png[half:])
    assert second.status_code == 200
    expires_at = second.json()["data"]["expires_at"]
    assert isinstance(expires_at, int)
    assert second.headers["x-rate-limit-limit"] == "1875"
    assert alice.append(media_id, 0, png[:half]).json() == {"data": {"expires_at": expires_at}}

    finalized = alice.finalize(media_id)
    assert finalized.status_code == 200
    data = finalized.json()["data"]
    assert data["id"] == media_id
    assert data["media_key"] == f"3_{media_id}"
    assert data["size"] == len(png)
    assert data["image"] == {"image_type": "image/png", "w": 640, "h": 480}
    assert "processing_info" not in data
    assert alice.status(media_id).json()["data"]["image"]["w"] == 640
    record = media_record(alice.sim, media_id)
    assert record["state"] == "succeeded"
    assert record["sha256"] == hashlib.sha256(png).hexdigest()
    assert (record["width"], record["height"]) == (640, 480)


@pytest.mark.parametrize(
    ("media_type", "data", "size"),
    [
        ("image/jpeg", samples.jpeg_bytes(1200, 675), (1200, 675)),
        ("image/jpeg", samples.jpeg_bytes(64, 48, size=3 * MIB), (64, 48)),
        ("image/pjpeg", samples.jpeg_bytes(10, 10), (10, 10)),
        ("image/png", samples.png_bytes(1, 1), (1, 1)),
        ("image/webp", samples.webp_bytes(800, 600), (800, 600)),
        ("image/gif", samples.gif_bytes(320, 200), (320, 200)),
    ],
)
def test_every_photo_type_is_measured(
    alice: Uploader, media_type: str, data: bytes, size: tuple[int, int]
) -> None:
    media_id, finalized = alice.upload(data, media_type, "tweet_image", chunk=MIB)
    assert finalized.status_code == 200, finalized.text
    image = finalized.json()["data"]["image"]
    assert (image["w"], image["h"]) == size
    assert image["image_type"] == media_type
    assert media_record(alice.sim, media_id)["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("index", "shown"), [("-1", "-1"), ("1000", "1000"), ("abc", "abc"), (None, "None")]
)
def test_segment_index_must_be_0_to_999(alice: Uploader, index: str | None, shown: str) -> None:
    media_id = alice.start("image/png", 10)
    data = {} if index is None else {"segment_index": index}
    response = alice.sim.http.post(
        f"{alice.url}/{media_id}/append",
        data=data,
        files={"media": ("blob", b"0123456789", "application/octet-stream")},
        headers=bearer(alice.token),
    )
    problem = assert_invalid(response, "is not between 0 and 999")
    assert problem["errors"][0]["parameters"] == {"segment_index": [shown]}
    assert alice.append(media_id, 999, b"0123456789").status_code == 200


def test_append_needs_a_media_file(alice: Uploader) -> None:
    media_id = alice.start("image/png", 10)
    response = alice.sim.http.post(
        f"{alice.url}/{media_id}/append",
        data={"segment_index": "0", "media": "not a file"},
        headers=bearer(alice.token),
    )
    assert_invalid(response, "$.media: is missing")


def test_finalize_needs_the_declared_number_of_bytes(alice: Uploader) -> None:
    png = samples.png_bytes(100, 100)
    media_id = alice.start("image/png", len(png))
    assert_invalid(alice.finalize(media_id), f"(0 of {len(png)} bytes)")
    alice.append(media_id, 0, png[:50])
    problem = assert_invalid(alice.finalize(media_id), "Segments do not add up")
    assert problem["errors"][0]["parameters"] == {"total_bytes": [str(len(png))]}
    alice.append(media_id, 1, png[50:] + b"extra")
    assert_invalid(alice.finalize(media_id), f"({len(png) + 5} of {len(png)} bytes)")
    alice.append(media_id, 1, png[50:])  # a segment index can be sent again
    assert alice.finalize(media_id).status_code == 200


def test_content_must_match_the_declared_type(alice: Uploader) -> None:
    media_id, finalized = alice.upload(samples.png_bytes(10, 10), "image/jpeg")
    problem = assert_invalid(
        finalized, "Invalid media: media_type is image/jpeg but the file is image/png."
    )
    assert problem["errors"][0]["parameters"] == {"media_type": ["image/jpeg"]}
    assert_invalid(alice.status(media_id), "Invalid media")
    assert_invalid(alice.finalize(media_id), "Invalid media")
    assert media_record(alice.sim, media_id)["state"] == "failed"
    assert_invalid(alice.post({"media": {"media_ids": [media_id]}}), "Your media IDs are invalid.")

    _, garbage = alice.upload(b"\x00" * 100, "video/mp4")
    assert_invalid(garbage, "but the file is an unrecognised format")
    _, gif_as_video = alice.upload(samples.gif_bytes(10, 10), "video/mp4")
    assert_invalid(gif_as_video, "but the file is image/gif")


def test_a_truncated_picture_is_invalid(alice: Uploader) -> None:
    jpeg = samples.jpeg_bytes(10, 10)
    head = jpeg[: jpeg.index(b"\xff\xc0")]  # cut before the frame header
    _, finalized = alice.upload(head, "image/jpeg")
    assert_invalid(finalized, "Invalid media: JPEG file without a frame header")


def test_appending_to_a_finalized_upload_is_refused(alice: Uploader) -> None:
    png = samples.png_bytes(10, 10)
    media_id, _ = alice.upload(png, "image/png")
    assert_invalid(alice.append(media_id, 1, b"more"), "already been finalized")
    again = alice.finalize(media_id)  # finalize answers the same again
    assert again.status_code == 200
    assert again.json()["data"]["image"]["w"] == 10


def test_uploads_are_private_to_their_owner(sim: Sim, alice: Uploader) -> None:
    bob = uploader(sim, "bob")
    png = samples.png_bytes(10, 10)
    media_id = alice.start("image/png", len(png))
    problem = assert_invalid(bob.append(media_id, 0, png), f"with id: [{media_id}]")
    assert problem["errors"][0]["resource_type"] == "media"
    assert problem["errors"][0]["type"] == "https://api.twitter.com/2/problems/resource-not-found"
    alice.append(media_id, 0, png)
    assert_invalid(bob.finalize(media_id), "Could not find media")
    assert alice.finalize(media_id).status_code == 200
    assert_invalid(bob.status(media_id), "Could not find media")
    assert_invalid(bob.post({"media": {"media_ids": [media_id]}}), "Your media IDs are invalid.")
    assert_invalid(alice.finalize("1234567890123456789"), "Could not find media")


def test_status_validates_its_parameters(alice: Uploader) -> None:
    url = alice.url
    headers = bearer(alice.token)
    wrong = alice.sim.http.get(url, params={"command": "INIT", "media_id": "1"}, headers=headers)
    assert_invalid(wrong, "The `command` query parameter value [INIT] is not one of [STATUS]")
    bad_id = alice.sim.http.get(url, params={"command": "STATUS", "media_id": "x"}, headers=headers)
    assert_invalid(bad_id, "The `media_id` query parameter value [x] is not valid")
    media_id = alice.start("image/png", 10)
    assert_invalid(alice.status(media_id), "has not been finalized")


def test_uploads_expire(start: Callable[..., Sim]) -> None:
    sim = start(XSimConfig(media_ttl=600))
    alice = uploader(sim, "alice")
    png = samples.png_bytes(10, 10)
    started = alice.initialize({"media_type": "image/png", "total_bytes": len(png)}).json()
    assert started["data"]["expires_after_secs"] == 600
    media_id = started["data"]["id"]
    alice.append(media_id, 0, png)
    ready = alice.ready(png, "image/png")
    sim.admin("/clock", {"advance_seconds": 601})
    assert_invalid(alice.finalize(media_id), "Could not find media")
    assert_invalid(alice.post({"media": {"media_ids": [ready]}}), "Your media IDs are invalid.")


# -- processing -------------------------------------------------------------------------


def test_a_video_goes_pending_in_progress_succeeded_on_the_sandbox_clock(alice: Uploader) -> None:
    video = samples.mp4_bytes(1280, 720, 10_000)
    media_id, finalized = alice.upload(video, "video/mp4")
    assert finalized.status_code == 200
    data = finalized.json()["data"]
    assert data["media_key"] == f"13_{media_id}"
    assert data["size"] == len(video)
    assert data["processing_info"] == {"state": "pending", "check_after_secs": 1}
    assert "video" not in data
    status = alice.status(media_id)
    assert status.headers["x-rate-limit-limit"] == "1000"
    assert status.json()["data"]["processing_info"]["state"] == "pending"
    assert_invalid(alice.post({"media": {"media_ids": [media_id]}}), "Your media IDs are invalid.")

    alice.sim.admin("/clock", {"advance_seconds": 1})
    info = alice.status(media_id).json()["data"]["processing_info"]
    assert info["state"] == "in_progress"
    assert info["check_after_secs"] == 1
    assert 50 <= info["progress_percent"] < 100

    alice.sim.admin("/clock", {"advance_seconds": 1})
    done = alice.status(media_id).json()["data"]
    assert done["processing_info"] == {"state": "succeeded", "progress_percent": 100}
    assert done["video"] == {"video_type": "video/mp4"}
    record = media_record(alice.sim, media_id)
    assert record["state"] == "succeeded"
    assert (record["width"], record["height"], record["duration_ms"]) == (1280, 720, 10_000)
    posted = alice.post({"text": "a video", "media": {"media_ids": [media_id]}})
    assert posted.status_code == 201, posted.text


def test_processing_time_is_a_config_knob(sim: Sim, alice: Uploader) -> None:
    assert sim.admin("/config").json()["media_processing_secs"] == 2
    assert sim.admin("/config", {"media_processing_secs": 10}).status_code == 200
    video = samples.mp4_bytes(640, 360, 5_000)
    media_id, finalized = alice.upload(video, "video/mp4")
    assert finalized.json()["data"]["processing_info"] == {
        "state": "pending",
        "check_after_secs": 5,
    }
    sim.admin("/clock", {"advance_seconds": 5})
    info = alice.status(media_id).json()["data"]["processing_info"]
    assert info["state"] == "in_progress"
    assert info["check_after_secs"] == 5
    sim.admin("/config", {"media_processing_secs": 0})
    _, instant = alice.upload(video, "video/mp4")
    assert instant.json()["data"]["processing_info"]["state"] == "succeeded"
    assert sim.admin("/config", {"media_processing_secs": -1}).status_code == 400


def test_a_20_mb_video_in_5_segments(alice: Uploader) -> None:
    video = samples.mp4_bytes(1280, 720, 30_000, size=20_000_000, moov_first=False)
    media_id = alice.ready(video, "video/mp4", "tweet_video")
    record = media_record(alice.sim, media_id)
    assert record["size"] == 20_000_000
    assert record["sha256"] == hashlib.sha256(video).hexdigest()
    assert record["duration_ms"] == 30_000


@pytest.mark.parametrize(
    ("video", "media_type"),
    [
        (samples.mp4_bytes(1280, 1024, 500), "video/mp4"),
        (samples.mp4_bytes(32, 32, 140_000), "video/mp4"),
        (samples.mp4_bytes(720, 1280, 60_000), "video/mp4"),
        (samples.mp4_bytes(960, 320, 1_000), "video/mp4"),
        (samples.mp4_bytes(320, 960, 1_000), "video/mp4"),
        (samples.mov_bytes(640, 480, 3_000), "video/quicktime"),
        (samples.mov_bytes(640, 480, 3_000), "video/mp4"),
        (samples.mp4_bytes(640, 480, 3_000, moov_first=False), "video/mp4"),
    ],
)
def test_videos_within_the_limits_succeed(alice: Uploader, video: bytes, media_type: str) -> None:
    alice.ready(video, media_type)


@pytest.mark.parametrize(
    ("video", "message"),
    [
        (samples.mp4_bytes(640, 360, 499), "Video duration 0.499 s is outside 0.5-140 s."),
        (samples.mp4_bytes(640, 360, 140_001), "Video duration 140.001 s is outside"),
        (samples.mp4_bytes(31, 31, 5_000), "Video dimensions 31x31 are outside 32x32-1280x1024."),
        (samples.mp4_bytes(1281, 720, 5_000), "Video dimensions 1281x720 are outside"),
        (samples.mp4_bytes(1025, 1025, 5_000), "Video dimensions 1025x1025 are outside"),
        (samples.mp4_bytes(1000, 320, 5_000), "Video aspect ratio 1000:320 is outside 1:3-3:1."),
        (samples.mp4_bytes(100, 400, 5_000), "Video aspect ratio 100:400 is outside"),
        (FTYP_ONLY + b"\x00\x00\x00\x08mdat", "Unsupported video format: no moov box."),
    ],
)
def test_invalid_videos_fail_in_processing(alice: Uploader, video: bytes, message: str) -> None:
    media_id, finalized = alice.upload(video, "video/mp4")
    assert finalized.status_code == 200, finalized.text
    assert finalized.json()["data"]["processing_info"]["state"] == "pending"
    alice.sim.admin("/clock", {"advance_seconds": 2})
    status = alice.status(media_id)
    assert status.status_code == 200
    info = status.json()["data"]["processing_info"]
    assert info["state"] == "failed"
    assert info["error"]["code"] == 1
    assert info["error"]["name"] == "InvalidMedia"
    assert message in info["error"]["message"]
    assert "video" not in status.json()["data"]
    assert media_record(alice.sim, media_id)["state"] == "failed"
    assert_invalid(alice.post({"media": {"media_ids": [media_id]}}), "Your media IDs are invalid.")


def test_animated_gifs_are_processed_and_checked(alice: Uploader) -> None:
    gif = samples.gif_bytes(480, 270, frames=3)
    media_id, finalized = alice.upload(gif, "image/gif", "tweet_gif")
    data = finalized.json()["data"]
    assert data["media_key"] == f"16_{media_id}"
    assert data["processing_info"]["state"] == "pending"
    alice.sim.admin("/clock", {"advance_seconds": 2})
    assert alice.status(media_id).json()["data"]["processing_info"]["state"] == "succeeded"

    wide, _ = alice.upload(samples.gif_bytes(1300, 100), "image/gif", "tweet_gif")
    alice.sim.admin("/clock", {"advance_seconds": 2})
    error = alice.status(wide).json()["data"]["processing_info"]["error"]
    assert error["message"] == "GIF dimensions 1300x100 exceed the 1280x1080 maximum."


# -- posts with media -------------------------------------------------------------------


def test_a_post_with_four_photos_lists_them(alice: Uploader) -> None:
    pictures = [
        (samples.png_bytes(100, 50), "image/png"),
        (samples.jpeg_bytes(60, 40), "image/jpeg"),
        (samples.webp_bytes(30, 20), "image/webp"),
        (samples.gif_bytes(10, 10), "image/gif"),
    ]
    ids = [alice.ready(data, media_type, "tweet_image") for data, media_type in pictures]
    posted = alice.post({"text": "four photos", "media": {"media_ids": ids}})
    assert posted.status_code == 201, posted.text
    tweet_id = posted.json()["data"]["id"]
    assert set(posted.json()["data"]) == {"id", "text", "edit_history_tweet_ids"}

    listed = {t["id"]: t for t in alice.sim.admin("/tweets").json()["data"]}
    assert listed[tweet_id]["media"] == [
        {
            "id": media_id,
            "media_type": media_type,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "width": width,
            "height": height,
        }
        for media_id, (data, media_type), (width, height) in zip(
            ids, pictures, [(100, 50), (60, 40), (30, 20), (10, 10)], strict=True
        )
    ]
    plain = alice.post({"text": "no media"}).json()["data"]["id"]
    assert {t["id"]: t for t in alice.sim.admin("/tweets").json()["data"]}[plain]["media"] == []

    lookup = alice.sim.http.get(
        alice.sim.x + f"/2/tweets/{tweet_id}",
        params={"tweet.fields": "attachments"},
        headers=bearer(alice.token),
    ).json()["data"]
    assert lookup["attachments"] == {"media_keys": [f"3_{media_id}" for media_id in ids]}
    default = alice.sim.http.get(alice.sim.x + f"/2/tweets/{tweet_id}", headers=bearer(alice.token))
    assert "attachments" not in default.json()["data"]
    user_id = alice.sim.me(alice.token).json()["data"]["id"]
    timeline = alice.sim.http.get(
        alice.sim.x + f"/2/users/{user_id}/tweets",
        params={"tweet.fields": "attachments"},
        headers=bearer(alice.token),
    ).json()["data"]
    assert "attachments" not in timeline[0]  # the plain post
    assert timeline[1]["attachments"]["media_keys"][0] == f"3_{ids[0]}"


def test_media_makes_text_optional(alice: Uploader) -> None:
    photo = alice.ready(samples.png_bytes(10, 10), "image/png")
    alone = alice.post({"media": {"media_ids": [photo]}})
    assert alone.status_code == 201, alone.text
    assert alice.post({"text": "", "media": {"media_ids": [photo]}}).status_code == 201
    assert alice.post({"text": "   "}).status_code == 400
    assert alice.sim.admin("/tweets").json()["duplicates"] == 1  # two media-only posts


def test_attachment_rules(alice: Uploader) -> None:
    photos = [alice.ready(samples.png_bytes(10 + i, 10), "image/png") for i in range(5)]
    video = alice.ready(samples.mp4_bytes(640, 360, 3_000), "video/mp4")
    other_video = alice.ready(samples.mp4_bytes(640, 360, 4_000), "video/mp4")
    gif = alice.ready(samples.gif_bytes(40, 40, frames=2), "image/gif", "tweet_gif")
    mix = "You can attach up to 4 photos, or 1 animated GIF, or 1 video, but not a mix."
    for ids, message in (
        (photos, "$.media.media_ids: must have between 1 and 4 items"),
        ([], "$.media.media_ids: must have between 1 and 4 items"),
        (["abc"], "does not match the regex pattern"),
        ([photos[0], video], mix),
        ([video, other_video], mix),
        ([gif, photos[0]], mix),
        ([gif, video], mix),
        ([photos[0], photos[0]], "Your media IDs are invalid."),
        (["1234567890123456789"], "Your media IDs are invalid."),
    ):
        problem = assert_invalid(
            alice.post({"text": "with media", "media": {"media_ids": ids}}), message
        )
        if "media IDs" in message or message == mix:
            assert problem["errors"][0]["parameters"] == {"media.media_ids": ids}
    for ids in (photos[:4], [video], [gif], [photos[4]]):
        assert alice.post({"text": f"ok {ids[0]}", "media": {"media_ids": ids}}).status_code == 201
    assert alice.sim.admin("/tweets").json()["count"] == 4


# -- one-shot upload --------------------------------------------------------------------


def one_shot(alice: Uploader, data: bytes, **fields: str) -> httpx.Response:
    return alice.sim.http.post(
        alice.url,
        data=fields,
        files={"media": ("upload", data, "application/octet-stream")},
        headers=bearer(alice.token),
    )


def test_one_shot_photo_upload(alice: Uploader) -> None:
    jpeg = samples.jpeg_bytes(300, 200)
    response = one_shot(alice, jpeg, media_category="tweet_image")
    assert response.status_code == 200, response.text
    assert response.headers["x-rate-limit-limit"] == "500"
    data = response.json()["data"]
    assert data["image"] == {"image_type": "image/jpeg", "w": 300, "h": 200}
    assert data["size"] == len(jpeg)
    assert alice.post({"media": {"media_ids": [data["id"]]}}).status_code == 201
    typed = one_shot(
        alice, samples.png_bytes(5, 5), media_category="tweet_image", media_type="image/png"
    )
    assert typed.json()["data"]["image"]["image_type"] == "image/png"


def test_one_shot_upload_refusals(alice: Uploader) -> None:
    assert_invalid(
        one_shot(alice, samples.mp4_bytes(64, 64, 1000), media_category="tweet_video"),
        "use initialize, append and finalize",
    )
    big = samples.jpeg_bytes(10, 10, size=5 * MIB + 1)
    assert_invalid(one_shot(alice, big, media_category="tweet_image"), "for tweet_image")
    mismatch = one_shot(
        alice, samples.png_bytes(5, 5), media_category="tweet_image", media_type="image/webp"
    )
    assert_invalid(mismatch, "media_type is image/webp but the file is image/png")
    no_file = alice.sim.http.post(
        alice.url, data={"media_category": "tweet_image"}, headers=bearer(alice.token)
    )
    assert_invalid(no_file, "$.media: is missing")


# -- limits and faults ------------------------------------------------------------------


def test_media_rate_limits(start: Callable[..., Sim]) -> None:
    sim = start(XSimConfig(media_append_per_15min=2))
    alice = uploader(sim, "alice")
    media_id = alice.start("image/png", 30)
    assert alice.append(media_id, 0, b"a" * 10).headers["x-rate-limit-remaining"] == "1"
    assert alice.append(media_id, 1, b"b" * 10).status_code == 200
    limited = alice.append(media_id, 2, b"c" * 10)
    assert limited.status_code == 429
    assert limited.json()["title"] == "Too Many Requests"
    assert limited.headers["x-rate-limit-remaining"] == "0"
    assert sim.admin("/config", {"media_append_per_15min": 3}).status_code == 200
    assert alice.append(media_id, 2, b"c" * 10).status_code == 200


def test_a_503_fault_on_append_stores_nothing(sim: Sim, alice: Uploader) -> None:
    assert sim.admin("/faults/media_append").json() == {
        "fail_rate": 0.0,
        "fail_status": 500,
        "drop_response_rate": 0.0,
        "drop_response_mode": "abort",
    }
    set_fault = sim.admin("/faults/media_append", {"fail_rate": 1.0, "fail_status": 503})
    assert set_fault.json()["fail_status"] == 503
    png = samples.png_bytes(10, 10)
    media_id = alice.start("image/png", len(png))
    failed = alice.append(media_id, 0, png)
    assert failed.status_code == 503
    assert failed.json() == {
        "title": "Service Unavailable",
        "detail": "Service Unavailable",
        "type": "about:blank",
        "status": 503,
    }
    assert "x-rate-limit-remaining" in failed.headers
    assert alice.status(media_id).status_code == 400  # other endpoints are unaffected
    assert_invalid(alice.finalize(media_id), "(0 of")
    assert sim.http.delete(sim.x + "/_sandbox/faults/media_append").status_code == 200
    assert alice.append(media_id, 0, png).status_code == 200
    assert alice.finalize(media_id).status_code == 200


def test_the_global_fail_rate_covers_media_endpoints(sim: Sim, alice: Uploader) -> None:
    sim.admin("/faults", {"fail_rate": 1.0})
    response = alice.initialize({"media_type": "image/png", "total_bytes": 10})
    assert response.status_code == 500
    assert response.json()["detail"].startswith("Something is broken.")
    sim.admin("/faults", {"fail_rate": 0})
    assert sim.admin("/media").json()["count"] == 0


@pytest.mark.parametrize("mode", ["abort", "503"])
def test_finalize_can_commit_then_lose_its_response(sim: Sim, alice: Uploader, mode: str) -> None:
    sim.admin("/faults/media_finalize", {"drop_response_rate": 1.0, "drop_response_mode": mode})
    video = samples.mp4_bytes(640, 360, 2_000)
    media_id = alice.start("video/mp4", len(video))
    alice.append(media_id, 0, video)
    if mode == "abort":
        with pytest.raises(httpx.RemoteProtocolError):
            alice.finalize(media_id)
    else:
        lost = alice.finalize(media_id)
        assert lost.status_code == 503
        assert lost.content == b""
    assert media_record(sim, media_id)["state"] == "pending"
    sim.admin("/clock", {"advance_seconds": 2})
    assert alice.status(media_id).json()["data"]["processing_info"]["state"] == "succeeded"


def test_a_post_with_media_can_lose_its_response(sim: Sim, alice: Uploader) -> None:
    photo = alice.ready(samples.png_bytes(10, 10), "image/png")
    sim.admin("/faults/create_tweet", {"drop_response_rate": 1.0, "drop_response_mode": "503"})
    assert alice.post({"text": "lost", "media": {"media_ids": [photo]}}).status_code == 503
    (tweet,) = sim.admin("/tweets").json()["data"]
    assert [media["id"] for media in tweet["media"]] == [photo]


def test_endpoint_fault_knobs_are_validated(sim: Sim) -> None:
    assert sim.admin("/faults/media_teleport", {"fail_rate": 1}).status_code == 400
    assert sim.admin("/faults/media_teleport").status_code == 400
    assert sim.admin("/faults/media_append", {"fail_status": 404}).status_code == 400
    assert sim.admin("/faults/media_append", {"fail_rate": 1.5}).status_code == 400
    assert sim.admin("/faults/media_append", {"bogus": 1}).status_code == 400
    assert sim.admin("/faults/media_append", {"drop_response_mode": "boom"}).status_code == 400
    assert sim.admin("/faults/media_append").json()["fail_rate"] == 0.0
    # The global knobs keep their shape.
    assert set(sim.admin("/faults").json()) == {
        "latency_ms",
        "fail_rate",
        "drop_response_rate",
        "drop_response_mode",
    }
