"""One contract, two media stores: S3-compatible (a real S3 server on loopback) and the
local directory ``kairos up`` serves itself. Both must refuse, on their own, an upload whose
Content-Type or size differs from what its URL was signed for."""

from __future__ import annotations

import io
import logging
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from application.media import MediaChanged, MediaStorage, MediaUnavailable
from interfaces.storage.local import LocalStorage
from interfaces.storage.s3 import S3Storage

BODY = b"\xff\xd8\xff\xe0" + secrets.token_bytes(70_000)


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> Iterator[MediaStorage]:
    if request.param == "local":
        kairos = request.getfixturevalue("kairos")
        request.getfixturevalue("api_url")  # the API serves the local store's URLs
        assert isinstance(kairos.storage, LocalStorage)
        yield kairos.storage
        return
    server = request.getfixturevalue("s3_server")
    s3 = S3Storage(
        bucket=f"media-{secrets.token_hex(4)}",
        endpoint_url=server.endpoint_url,
        access_key_id=server.access_key_id,
        secret_access_key=server.secret_access_key,
        region=server.region,
    )
    s3.ensure_bucket()
    yield s3


def new_key() -> str:
    return f"00000000-0000-4000-8000-{secrets.token_hex(6)}/{secrets.token_hex(8)}/a.jpg"


def put(url: str, body: bytes, content_type: str, **headers: Any) -> httpx.Response:
    return httpx.put(url, content=body, headers={"Content-Type": content_type, **headers})


def test_a_signed_upload_is_stored_and_read_back(storage: MediaStorage) -> None:
    key = new_key()
    url = storage.upload_url(key, content_type="image/jpeg", size=len(BODY), expires_in=300)
    assert storage.stat(key) is None

    response = put(url, BODY, "image/jpeg")

    assert response.status_code == 200, response.text
    stored = storage.stat(key)
    assert stored is not None
    assert (stored.size, stored.content_type) == (len(BODY), "image/jpeg")
    assert stored.etag
    assert storage.read(key, start=0, length=4) == BODY[:4]
    assert storage.read(key, start=len(BODY) - 10, length=10) == BODY[-10:]
    assert b"".join(storage.chunks(key, chunk_size=8192, etag=stored.etag)) == BODY


@pytest.mark.parametrize(
    ("body", "content_type", "why"),
    [
        (BODY, "image/png", "another content type"),
        (BODY + b"x", "image/jpeg", "one byte more"),
        (BODY[:-1], "image/jpeg", "one byte less"),
        (BODY, "", "no content type"),
    ],
)
def test_the_storage_itself_refuses_what_was_not_signed(
    storage: MediaStorage, body: bytes, content_type: str, why: str
) -> None:
    key = new_key()
    url = storage.upload_url(key, content_type="image/jpeg", size=len(BODY), expires_in=300)

    response = put(url, body, content_type)

    assert response.status_code == 403, (why, response.status_code, response.text)
    assert storage.stat(key) is None


def test_a_tampered_or_expired_url_is_refused(storage: MediaStorage) -> None:
    key = new_key()
    url = storage.upload_url(key, content_type="image/jpeg", size=len(BODY), expires_in=300)
    other_key = new_key()
    assert put(url.replace(key, other_key), BODY, "image/jpeg").status_code == 403
    flipped = url[:-1] + ("0" if url[-1] != "0" else "1")
    assert put(flipped, BODY, "image/jpeg").status_code == 403

    short = storage.upload_url(key, content_type="image/jpeg", size=len(BODY), expires_in=1)
    time.sleep(2.1)
    assert put(short, BODY, "image/jpeg").status_code == 403
    assert storage.stat(key) is None
    assert storage.stat(other_key) is None


def test_public_urls_map_back_to_their_keys_only(storage: MediaStorage) -> None:
    key = new_key()
    url = storage.public_url(key)
    assert storage.key_for_url(url) == key
    assert storage.key_for_url("https://elsewhere.example/" + key) is None
    assert storage.key_for_url(url.replace(key, "../etc/passwd")) is None


def test_a_replaced_file_is_noticed_when_read_for_publishing(storage: MediaStorage) -> None:
    key = new_key()
    stored = storage.put(key, io.BytesIO(BODY), content_type="image/jpeg", size=len(BODY))
    assert stored.size == len(BODY)
    replaced = storage.put(key, io.BytesIO(BODY[::-1]), content_type="image/jpeg", size=len(BODY))
    assert replaced.etag != stored.etag

    with pytest.raises(MediaChanged):
        b"".join(storage.chunks(key, chunk_size=4096, etag=stored.etag))
    with pytest.raises(MediaChanged):
        b"".join(storage.chunks(new_key(), chunk_size=4096, etag=None))


def test_the_local_store_serves_public_files(kairos: Any, api_url: str) -> None:
    storage = kairos.storage
    key = new_key()
    storage.put(key, io.BytesIO(BODY), content_type="image/jpeg", size=len(BODY))

    response = httpx.get(storage.public_url(key))

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content == BODY
    assert httpx.get(f"{api_url}/media/../../secrets.json").status_code == 404
    assert httpx.get(storage.public_url(new_key())).status_code == 404


def test_unreachable_s3_is_logged_in_full_and_told_to_users_in_general(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What storage says reaches delivery errors, notifications and emails: never the
    internal endpoint or the bucket."""
    from interfaces.serving import free_port

    address = f"127.0.0.1:{free_port()}"
    s3 = S3Storage(
        bucket="media-internal-name",
        endpoint_url=f"http://{address}",
        access_key_id="test",
        secret_access_key="test",
    )
    failures = []
    with caplog.at_level(logging.WARNING, logger="kairos.media"):
        for attempt in (
            lambda: s3.stat(new_key()),
            lambda: s3.read(new_key(), start=0, length=10),
            lambda: b"".join(s3.chunks(new_key(), chunk_size=4096, etag=None)),
            lambda: s3.put(new_key(), io.BytesIO(BODY), content_type="image/jpeg", size=len(BODY)),
        ):
            with pytest.raises(MediaUnavailable) as failure:
                attempt()
            failures.append(failure.value.message)
        problem = s3.check()

    for told in [*failures, problem or ""]:
        assert address not in told
        assert "media-internal-name" not in told
    assert (problem or "").startswith("unreachable")
    assert address in caplog.text
