"""Seed 001, "Media uploads": presign, PUT the file straight to storage, reference the
public URL in a post. Run against the local store ``kairos up`` uses (the S3 store has the
same contract, in tests/integration/test_media_storage.py, and its own API test below)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from pydantic import SecretStr

from sandbox.samples import jpeg_bytes, mp4_bytes, png_bytes
from tests.conftest import Account, S3Server, unique

JPEG = jpeg_bytes(1200, 900)


def presign(account: Account, filename: str, content_type: str, size: int) -> httpx.Response:
    return account.http.post(
        "/api/media/presign",
        json={"filename": filename, "contentType": content_type, "size": size},
    )


def upload(account: Account, body: bytes, content_type: str, filename: str) -> str:
    """The seed's three steps' first two; returns the publicUrl."""
    issued = presign(account, filename, content_type, len(body))
    assert issued.status_code == 200, issued.text
    put = httpx.put(
        issued.json()["uploadUrl"], content=body, headers={"Content-Type": content_type}
    )
    assert put.status_code == 200, put.text
    public_url: str = issued.json()["publicUrl"]
    return public_url


def create(account: Account, **body: Any) -> httpx.Response:
    return account.http.post("/api/posts", json=body)


def test_presign_answers_in_the_seeds_shape(account: Account) -> None:
    response = presign(account, "launch.jpg", "image/jpeg", 482133)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["expiresIn"] == 300
    assert body["key"].startswith(f"{account.organization_id}/")
    assert body["key"].endswith("/launch.jpg")
    assert body["publicUrl"].endswith(body["key"])
    assert body["uploadUrl"] != body["publicUrl"]
    assert body["headers"] == {"Content-Type": "image/jpeg"}


@pytest.mark.parametrize(
    ("filename", "content_type", "size", "words"),
    [
        ("launch.exe", "application/x-msdownload", 10, "cannot be uploaded"),
        ("launch.png", "image/jpeg", 10, "must end in .jpg"),
        ("clip.mp4", "video/mp4", 2 * 1024**4, "size"),
        ("huge.jpg", "image/jpeg", 50 * 1024 * 1024, "MB"),
        ("empty.jpg", "image/jpeg", 0, "size"),
    ],
)
def test_presign_refuses_what_no_platform_accepts(
    account: Account, filename: str, content_type: str, size: int, words: str
) -> None:
    response = presign(account, filename, content_type, size)

    assert response.status_code == 400, response.text
    assert response.json()["success"] is False
    assert words.lower() in response.json()["message"].lower()


def test_presign_needs_a_token(api_url: str) -> None:
    response = httpx.post(
        f"{api_url}/api/media/presign",
        json={"filename": "a.jpg", "contentType": "image/jpeg", "size": 10},
    )
    assert response.status_code == 401


def test_an_uploaded_image_goes_into_a_post(account: Account) -> None:
    x = account.connect_x(unique("media"))
    url = upload(account, JPEG, "image/jpeg", "launch.jpg")

    response = create(account, content="Launch day!", accountIds=[x["id"]], mediaUrls=[url])

    assert response.status_code == 201, response.text
    assert response.json()["post"]["mediaUrls"] == [url]


def test_a_url_presigned_but_never_uploaded_is_refused(account: Account) -> None:
    x = account.connect_x(unique("media"))
    issued = presign(account, "later.jpg", "image/jpeg", len(JPEG)).json()

    response = create(
        account, content="Too soon", accountIds=[x["id"]], mediaUrls=[issued["publicUrl"]]
    )

    assert response.status_code == 400
    assert response.json()["field"] == "mediaUrls[0]"
    assert "PUT the file" in response.json()["message"]


def test_another_organizations_upload_cannot_be_used(make_account: Any) -> None:
    owner, other = make_account("owner"), make_account("other")
    url = upload(owner, JPEG, "image/jpeg", "mine.jpg")
    x = other.connect_x(unique("media"))

    response = create(other, content="Borrowed", accountIds=[x["id"]], mediaUrls=[url])

    assert response.status_code == 400
    assert "no uploaded file at this address in your organization" in response.json()["message"]


def test_content_that_is_not_what_it_was_uploaded_as_is_refused(account: Account) -> None:
    x = account.connect_x(unique("media"))
    url = upload(account, JPEG, "image/png", "disguised.png")

    response = create(account, content="Disguised", accountIds=[x["id"]], mediaUrls=[url])

    assert response.status_code == 400
    assert "image/jpeg" in response.json()["message"]
    assert "image/png" in response.json()["message"]


def test_a_video_x_would_refuse_is_refused_at_creation(account: Account) -> None:
    x = account.connect_x(unique("media"))
    url = upload(account, mp4_bytes(1280, 720, 200_000), "video/mp4", "long.mp4")

    response = create(account, content="Too long", accountIds=[x["id"]], mediaUrls=[url])

    assert response.status_code == 400, response.text
    assert response.json()["field"] == "mediaUrls[0]"
    assert "X" in response.json()["message"]
    assert "140" in response.json()["message"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/launch.jpg",
        "https://127.0.0.1/launch.jpg",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.1/a.jpg",
        "https://[::1]/a.jpg",
        "https://2130706433/a.jpg",
        "https://localhost./a.jpg",
        "file:///etc/passwd",
    ],
)
def test_internal_addresses_in_media_urls_are_refused(account: Account, url: str) -> None:
    x = account.connect_x(unique("ssrf"))

    response = create(account, content="Internal", accountIds=[x["id"]], mediaUrls=[url])

    assert response.status_code == 400, response.text
    assert response.json()["field"] == "mediaUrls[0]"
    assert response.json()["message"]


@pytest.fixture
def s3_account(
    s3_server: S3Server, kairos: Any, make_account: Any, database_url: str
) -> Iterator[tuple[Account, Any]]:
    """The same API, on a Kairos whose media lives in the S3 server."""
    from interfaces.api.app import create_api
    from interfaces.bootstrap import build
    from interfaces.serving import serve

    settings = replace_settings(
        kairos.settings,
        s3_bucket=f"media-{unique('b').replace('_', '-')}",
        s3_endpoint_url=s3_server.endpoint_url,
        s3_access_key_id=s3_server.access_key_id,
        s3_secret_access_key=SecretStr(s3_server.secret_access_key),
        s3_create_bucket=True,
    )
    system = build(settings)
    account: Account = make_account("s3")
    with serve(create_api(system)) as url:
        account.http.base_url = httpx.URL(url)
        yield account, system
    system.close()


def replace_settings(settings: Any, **changes: Any) -> Any:
    return settings.model_copy(update=changes)


def test_against_s3_the_bucket_refuses_a_wrong_upload_and_kairos_a_foreign_one(
    s3_account: tuple[Account, Any],
) -> None:
    account, system = s3_account
    body = png_bytes(800, 800)
    issued = presign(account, "square.png", "image/png", len(body)).json()
    assert issued["uploadUrl"].startswith(system.settings.s3_endpoint_url)

    too_big = httpx.put(
        issued["uploadUrl"], content=body + b"!", headers={"Content-Type": "image/png"}
    )
    wrong_type = httpx.put(
        issued["uploadUrl"], content=body, headers={"Content-Type": "image/jpeg"}
    )
    right = httpx.put(issued["uploadUrl"], content=body, headers={"Content-Type": "image/png"})

    assert (too_big.status_code, wrong_type.status_code, right.status_code) == (403, 403, 200)
    x = account.connect_x(unique("s3"))
    response = create(
        account, content="From S3", accountIds=[x["id"]], mediaUrls=[issued["publicUrl"]]
    )
    assert response.status_code == 201, response.text
    assert system.media.payloads(UUID(str(account.organization_id)), [issued["publicUrl"]])[
        0
    ].size == len(body)


def test_readiness_covers_the_media_storage(s3_account: tuple[Account, Any], api_url: str) -> None:
    account, system = s3_account
    assert httpx.get(f"{api_url}/readyz").json()["checks"]["mediaStorage"] == "ok"
    ready = account.http.get("/readyz").json()
    assert ready["checks"]["mediaStorage"] == "ok"
    system.storage.bucket = "no-such-bucket"
    not_ready = account.http.get("/readyz")
    assert not_ready.status_code == 503
    assert "no-such-bucket" in not_ready.json()["checks"]["mediaStorage"]
