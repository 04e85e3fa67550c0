"""Media storage in a local directory, served by Kairos itself: what ``kairos up`` uses.

It keeps S3's presigned-URL semantics so clients cannot tell the difference: the upload URL
is signed (HMAC-SHA256 over method, key, Content-Type, size and expiry), and the PUT is
refused with 403 when the signature, the Content-Type or the byte count differs from what
was signed, or once the URL has expired. Files are written to a temporary name and renamed
when complete, so a reader never sees half a file.

Keys come from URLs anyone can send, so every one is checked (``valid_key``) before it names
a path, and a filesystem error while looking one up means "no such file", never a crash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, TypedDict
from urllib.parse import quote, unquote, urlencode

from application.media import MediaChanged, MediaUnavailable, StoredObject

UPLOAD_PATH = "/media/upload/"
PUBLIC_PATH = "/media/"
MIN_SECRET_BYTES = 32
MAX_KEY_CHARS = 1024
"""S3's own limit on a key (bytes there; characters here, with each segment also bounded)."""
MAX_SEGMENT_BYTES = 255
"""The longest file name most filesystems accept."""
UPLOAD_GRACE_SECONDS = 600.0
"""How long an upload may go on after its URL expires: the URL is checked when the PUT
starts, as S3 does, but a body trickling in must not hold a connection and a temporary
file for ever."""
_SIGNATURE = re.compile(r"[0-9a-f]{64}")

log = logging.getLogger("kairos.media")


class _Meta(TypedDict):
    size: int
    content_type: str
    etag: str


class UploadRefused(Exception):
    """A PUT the storage refuses; ``status`` is what S3 would answer (403 or 400)."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Upload:
    """One accepted PUT being written: feed ``write`` the body, then ``commit``."""

    storage: LocalStorage
    key: str
    content_type: str
    size: int
    expires: int
    """When the upload URL expired (or expires), in seconds since the epoch."""
    _file: BinaryIO
    _tmp: Path
    _written: int = 0

    def seconds_left(self, grace: float) -> float:
        """How much longer the body may take to arrive."""
        return self.expires + grace - time.time()

    def write(self, chunk: bytes) -> None:
        self._written += len(chunk)
        if self._written > self.size:
            self.abort()
            raise UploadRefused(
                f"the body is longer than the {self.size} bytes this URL was signed for"
            )
        self._file.write(chunk)

    def commit(self) -> StoredObject:
        if self._written != self.size:
            self.abort()
            raise UploadRefused(
                f"the body has {self._written} bytes; this URL was signed for {self.size}"
            )
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return self.storage._install(self.key, self._tmp, self.content_type)

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)


class LocalStorage:
    def __init__(
        self,
        root: Path,
        *,
        base_url: str,
        secret: bytes,
        upload_grace: float = UPLOAD_GRACE_SECONDS,
    ) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(
                f"the key that signs upload URLs must be at least {MIN_SECRET_BYTES} bytes"
            )
        self.root = root
        self.upload_grace = upload_grace
        self._base = base_url.rstrip("/")
        self._secret = secret
        (root / "objects").mkdir(parents=True, exist_ok=True)
        (root / "meta").mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(parents=True, exist_ok=True)

    # ---- the MediaStorage port ---------------------------------------------------------

    def upload_url(self, key: str, *, content_type: str, size: int, expires_in: int) -> str:
        expires = int(time.time()) + expires_in
        query = urlencode(
            {
                "type": content_type,
                "size": size,
                "expires": expires,
                "signature": self._sign(key, content_type, size, expires),
            }
        )
        return f"{self._base}{UPLOAD_PATH}{quote(key)}?{query}"

    def public_url(self, key: str) -> str:
        return f"{self._base}{PUBLIC_PATH}{quote(key)}"

    def key_for_url(self, url: str) -> str | None:
        prefix = f"{self._base}{PUBLIC_PATH}"
        if not url.startswith(prefix) or url.startswith(f"{self._base}{UPLOAD_PATH}"):
            return None
        return self.valid_key(unquote(url[len(prefix) :].split("?", 1)[0]))

    def stat(self, key: str) -> StoredObject | None:
        meta = self._meta(key) if self.valid_key(key) else None
        if meta is None:
            return None
        return StoredObject(
            key=key, size=meta["size"], content_type=meta["content_type"], etag=meta["etag"]
        )

    def read(self, key: str, *, start: int, length: int) -> bytes:
        try:
            with self._open_object(key) as file:
                file.seek(start)
                return file.read(length)
        except OSError as error:
            raise _read_failure(key, error, "the media file was deleted; upload it again") from None

    def chunks(self, key: str, *, chunk_size: int, etag: str | None) -> Iterator[bytes]:
        meta = self._meta(key) if self.valid_key(key) else None
        if meta is None or (etag is not None and meta["etag"] != etag):
            raise MediaChanged(_GONE)
        try:
            with self._open_object(key) as file:
                while chunk := file.read(chunk_size):
                    yield chunk
        except OSError as error:
            raise _read_failure(key, error, _GONE) from None

    def put(self, key: str, body: IO[bytes], *, content_type: str, size: int) -> StoredObject:
        if self.valid_key(key) is None:
            raise ValueError(f"not a storage key: {key!r}")
        upload = self._open(key, content_type, size, int(time.time()))
        while chunk := body.read(1024 * 1024):
            upload.write(chunk)
        return upload.commit()

    def check(self) -> str | None:
        for part in ("objects", "meta", "tmp"):
            if not os.access(self.root / part, os.W_OK):
                log.warning("media storage: %s is not writable", self.root / part)
                return "not writable"
        return None

    # ---- serving, for the API's routes ---------------------------------------------------

    def begin_upload(
        self, key: str, query: dict[str, str], *, content_type: str | None, length: str | None
    ) -> Upload:
        """Check a PUT against its signed URL; raises ``UploadRefused`` as S3 would."""
        if self.valid_key(key) is None:
            raise UploadRefused("no such upload URL", status=404)
        try:
            signed_type, signed_size = query["type"], int(query["size"])
            expires, signature = int(query["expires"]), query["signature"]
        except (KeyError, ValueError):
            raise UploadRefused("the upload URL is not signed") from None
        expected = self._sign(key, signed_type, signed_size, expires)
        # compare_digest refuses non-ASCII text, so anything but our hex never reaches it.
        if not _SIGNATURE.fullmatch(signature) or not hmac.compare_digest(expected, signature):
            raise UploadRefused("the upload URL's signature does not match")
        if expires < time.time():
            raise UploadRefused("the upload URL has expired; request a new one")
        if (content_type or "").strip().lower() != signed_type:
            raise UploadRefused(
                f"Content-Type must be {signed_type}, as declared when the URL was issued"
            )
        if length is None or not length.isdigit() or int(length) != signed_size:
            raise UploadRefused(
                f"Content-Length must be {signed_size}, as declared when the URL was issued"
            )
        return self._open(key, signed_type, signed_size, expires)

    def file_for(self, key: str) -> tuple[Path, str] | None:
        """The file and Content-Type behind a public URL's key, if it exists."""
        meta = self._meta(key) if self.valid_key(key) else None
        if meta is None or not self._object(key).is_file():
            return None
        return self._object(key), meta["content_type"]

    @staticmethod
    def valid_key(key: str) -> str | None:
        """``key`` if it can name a file under the store's root, else None."""
        parts = key.split("/")
        if (
            len(key) > MAX_KEY_CHARS
            or len(parts) < 3
            or "\\" in key
            or "\0" in key
            or any(part in {"", ".", ".."} for part in parts)
            or any(len(part.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES for part in parts)
        ):
            return None
        return key

    # ---- internals -------------------------------------------------------------------------

    def _sign(self, key: str, content_type: str, size: int, expires: int) -> str:
        message = f"PUT\n{key}\n{content_type}\n{size}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _open(self, key: str, content_type: str, size: int, expires: int) -> Upload:
        handle, name = tempfile.mkstemp(dir=self.root / "tmp")
        return Upload(self, key, content_type, size, expires, os.fdopen(handle, "wb"), Path(name))

    def _install(self, key: str, tmp: Path, content_type: str) -> StoredObject:
        digest = hashlib.md5()  # noqa: S324 - an ETag, as S3 computes it, not security
        with tmp.open("rb") as file:
            while chunk := file.read(1024 * 1024):
                digest.update(chunk)
        size = tmp.stat().st_size
        target = self._object(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        meta: _Meta = {
            "size": size,
            "content_type": content_type,
            "etag": f'"{digest.hexdigest()}"',
        }
        meta_path = self._meta_path(key)
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        # The object first, then its metadata: stat() sees a file only once both exist.
        tmp.replace(target)
        staged = meta_path.with_name(meta_path.name + ".tmp")
        staged.write_text(json.dumps(meta))
        staged.replace(meta_path)
        return StoredObject(key=key, size=size, content_type=content_type, etag=meta["etag"])

    def _object(self, key: str) -> Path:
        return self.root / "objects" / key

    def _open_object(self, key: str) -> BinaryIO:
        if self.valid_key(key) is None:
            raise FileNotFoundError(key)
        return self._object(key).open("rb")

    def _meta_path(self, key: str) -> Path:
        return self.root / "meta" / f"{key}.json"

    def _meta(self, key: str) -> _Meta | None:
        """The key's metadata; None when there is none, whatever the filesystem says why
        (a segment too long, a file where a directory would be, unreadable JSON)."""
        try:
            loaded: _Meta = json.loads(self._meta_path(key).read_text())
        except (OSError, ValueError):
            return None
        return loaded


_GONE = (
    "the media file was deleted or replaced after the post was scheduled; "
    "upload it again and edit the post"
)
_MISSING_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


def _read_failure(key: str, error: OSError, gone: str) -> MediaChanged | MediaUnavailable:
    if isinstance(error, _MISSING_ERRORS):
        return MediaChanged(gone)
    log.warning("media storage: reading %s failed: %s", key, error)
    return MediaUnavailable("media storage could not be read just now")
