"""Seed 001, "Media uploads": presign, PUT the file straight to storage, reference the
public URL in a post. Run against the local store ``kairos up`` uses (the S3 store has the
same contract, in tests/integration/test_media_storage.py, and its own API test below)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit
from uuid import UUID, uuid4

import httpx
import pytest
from pydantic import SecretStr

from application.media import MediaChanged
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
    problem = not_ready.json()["checks"]["mediaStorage"]
    assert problem.startswith("unreachable")
    assert "no-such-bucket" not in problem


def test_text_rules_are_checked_before_any_outside_file_is_fetched(account: Account) -> None:
    x = account.connect_x(unique("cheap"))

    response = create(
        account,
        content="x" * 300,
        accountIds=[x["id"]],
        mediaUrls=["https://127.0.0.1/never-fetched.jpg"],
    )

    assert response.status_code == 400
    assert response.json()["field"] == "content"  # not the media URL: nothing was fetched


# ---- the local store's routes take any path and query a client sends ----------------------


def test_a_signature_that_is_not_ascii_is_refused_not_a_crash(account: Account) -> None:
    issued = presign(account, "sig.jpg", "image/jpeg", len(JPEG)).json()
    url = issued["uploadUrl"].split("&signature=")[0] + "&signature=" + quote("é" * 64)

    response = httpx.put(url, content=JPEG, headers={"Content-Type": "image/jpeg"})

    assert response.status_code == 403, response.text
    assert response.json()["success"] is False


def below_a_file(public_url: str) -> str:
    """The URL of a 'file' inside an uploaded file's metadata, as if it were a folder."""
    return f"{public_url}.json/x"


def too_long(account: Account, api_url: str) -> str:
    return f"{api_url}/media/{account.organization_id}/{'a' * 300}/x.jpg"


def test_paths_the_filesystem_refuses_are_not_found(account: Account, api_url: str) -> None:
    url = upload(account, JPEG, "image/jpeg", "there.jpg")

    for path in (below_a_file(url), too_long(account, api_url), f"{url}%00.jpg"):
        response = httpx.get(path)
        assert response.status_code == 404, (path, response.text)
        assert response.json() == {"success": False, "message": "not found"}


def test_such_paths_as_media_urls_are_refused_naming_the_field(
    account: Account, api_url: str
) -> None:
    x = account.connect_x(unique("paths"))
    url = upload(account, JPEG, "image/jpeg", "here.jpg")

    for media_url in (below_a_file(url), too_long(account, api_url)):
        response = create(account, content="Odd path", accountIds=[x["id"]], mediaUrls=[media_url])
        assert response.status_code == 400, (media_url, response.text)
        assert response.json()["field"] == "mediaUrls[0]"


def test_a_file_deleted_while_it_is_checked_is_refused_naming_the_field(
    account: Account, kairos: Any
) -> None:
    x = account.connect_x(unique("gone"))
    url = upload(account, JPEG, "image/jpeg", "gone.jpg")
    key = kairos.storage.key_for_url(url)
    # Its metadata stays, as if the file went between the check that it exists and the read.
    (kairos.storage.root / "objects" / key).unlink()

    response = create(account, content="Gone", accountIds=[x["id"]], mediaUrls=[url])

    assert response.status_code == 400, response.text
    assert response.json()["field"] == "mediaUrls[0]"
    assert "deleted" in response.json()["message"]


def test_an_upload_that_outlasts_its_url_is_cut_off(
    kairos: Any, api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client trickling a body must not hold a connection and a temporary file for ever."""
    # The grace after expiry is minutes in service; a test cannot wait that long.
    monkeypatch.setattr(kairos.storage, "upload_grace", 0.5)
    key = f"{uuid4()}/{uuid4().hex}/slow.jpg"
    url = urlsplit(
        kairos.storage.upload_url(key, content_type="image/jpeg", size=len(JPEG), expires_in=2)
    )
    started = time.monotonic()
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(
            f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Content-Type: image/jpeg\r\nContent-Length: {len(JPEG)}\r\n\r\n".encode()
            + JPEG[:1000]
        )
        answer = sock.recv(65536).decode(errors="replace")

    assert answer.startswith("HTTP/1.1 408"), answer
    assert time.monotonic() - started < 5
    assert kairos.storage.stat(key) is None


# ---- storage failures are API errors, not 500s ----------------------------------------------


@pytest.fixture
def dead_s3_account(kairos: Any, make_account: Any) -> Iterator[tuple[Account, str]]:
    """The API on a Kairos whose S3 endpoint answers nothing at all."""
    from interfaces.api.app import create_api
    from interfaces.bootstrap import build
    from interfaces.serving import free_port, serve

    endpoint = f"http://127.0.0.1:{free_port()}"
    settings = replace_settings(
        kairos.settings,
        s3_bucket="media-unreachable",
        s3_endpoint_url=endpoint,
        s3_access_key_id="test",
        s3_secret_access_key=SecretStr("test"),
        s3_create_bucket=False,
    )
    system = build(settings)
    account: Account = make_account("deads3")
    with serve(create_api(system)) as url:
        account.http.base_url = httpx.URL(url)
        yield account, endpoint
    system.close()


def test_unreachable_media_storage_is_a_503_that_does_not_name_it(
    dead_s3_account: tuple[Account, str],
) -> None:
    account, endpoint = dead_s3_account
    x = account.connect_x(unique("dead"))
    media_url = presign(account, "far.jpg", "image/jpeg", len(JPEG)).json()["publicUrl"]
    draft = create(account, content="Draft", accountIds=[x["id"]])
    assert draft.status_code == 201, draft.text

    created = create(account, content="Far", accountIds=[x["id"]], mediaUrls=[media_url])
    edited = account.http.patch(
        f"/api/posts/{draft.json()['post']['id']}", json={"mediaUrls": [media_url]}
    )

    for response in (created, edited):
        assert response.status_code == 503, response.text
        assert response.json()["success"] is False
        assert "media storage" in response.json()["message"]
        assert endpoint.split("//")[1] not in response.text
        assert response.headers["Retry-After"].isdigit()


# ---- posts written before media assets were recorded ----------------------------------------


def test_media_of_a_post_older_than_asset_records_is_checked_when_it_publishes(
    account: Account, kairos: Any
) -> None:
    url = upload(account, JPEG, "image/jpeg", "old.jpg")
    organization = UUID(str(account.organization_id))

    payload = kairos.media.payloads(organization, [url])[0]

    assert (payload.content_type, payload.size) == ("image/jpeg", len(JPEG))
    assert kairos.media.payloads(organization, [url])[0].etag == payload.etag


def test_unrecorded_media_that_fails_the_checks_fails_saying_why(
    account: Account, kairos: Any
) -> None:
    never_uploaded = presign(account, "never.jpg", "image/jpeg", len(JPEG)).json()["publicUrl"]
    disguised = upload(account, JPEG, "image/png", "disguised.png")
    organization = UUID(str(account.organization_id))

    with pytest.raises(MediaChanged, match="no uploaded file at this address"):
        kairos.media.payloads(organization, [never_uploaded])
    with pytest.raises(MediaChanged, match="uploaded as image/png"):
        kairos.media.payloads(organization, [disguised])
