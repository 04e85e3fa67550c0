"""The local media store's own defences: what it signs with, and which keys may name a file.

Keys arrive in URLs anyone can send, so a key the filesystem would choke on (too long, NUL,
a file where a directory would be) must read as "no such file", never as an error."""

from __future__ import annotations

import hashlib
import hmac
import io
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from interfaces.bootstrap import media_storage
from interfaces.config import Settings
from interfaces.storage.local import LocalStorage, UploadRefused

SECRET = b"s" * 32
KEY = "00000000-0000-4000-8000-000000000001/0123abcd/photo.jpg"
BODY = b"\xff\xd8\xff\xe0" + b"x" * 100


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path, base_url="http://kairos.test", secret=SECRET)


def signed_query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def test_a_short_signing_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        LocalStorage(tmp_path, base_url="http://kairos.test", secret=b"/media")


def test_without_a_secret_upload_urls_are_not_signed_with_a_guessable_key(tmp_path: Path) -> None:
    settings = Settings(
        environment="development", media_dir=tmp_path, public_base_url="http://kairos.test"
    )
    storage = media_storage(settings)
    url = storage.upload_url(KEY, content_type="image/jpeg", size=10, expires_in=300)
    query = signed_query(url)

    message = f"PUT\n{KEY}\nimage/jpeg\n10\n{query['expires']}".encode()
    guessed = hmac.new(b"/media", message, hashlib.sha256).hexdigest()
    assert query["signature"] != guessed


@pytest.mark.parametrize("signature", ["é" * 64, "\u0663" * 64, "\uff21\uff22" * 32, ""])
def test_a_signature_that_is_not_hex_is_refused_as_a_mismatch(
    storage: LocalStorage, signature: str
) -> None:
    query = signed_query(storage.upload_url(KEY, content_type="image/jpeg", size=10, expires_in=60))

    with pytest.raises(UploadRefused) as refused:
        storage.begin_upload(
            KEY, {**query, "signature": signature}, content_type="image/jpeg", length="10"
        )

    assert refused.value.status == 403


@pytest.mark.parametrize(
    "key",
    [
        "org/upload/a\0b.jpg",
        f"org/upload/{'a' * 256}.jpg",
        f"org/upload/{'é' * 128}",
        "org/" + "/".join(["abcdefgh"] * 120) + "/a.jpg",
        "org/upload/../a.jpg",
        "org/a.jpg",
    ],
    ids=["nul", "long segment", "long segment in bytes", "long key", "dot-dot", "too short"],
)
def test_keys_no_filesystem_can_hold_are_not_keys(storage: LocalStorage, key: str) -> None:
    assert storage.valid_key(key) is None
    assert storage.stat(key) is None
    assert storage.file_for(key) is None
    assert storage.key_for_url(storage.public_url(key)) is None


def test_a_key_below_a_stored_file_is_missing_not_an_error(storage: LocalStorage) -> None:
    storage.put(KEY, io.BytesIO(BODY), content_type="image/jpeg", size=len(BODY))

    for below in (f"{KEY}/x", f"{KEY}.json/x"):
        assert storage.stat(below) is None
        assert storage.file_for(below) is None
