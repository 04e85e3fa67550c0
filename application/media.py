"""Media: presigned uploads, the assets posts reference, and their bytes at publish time.

Files never pass through the API. A client asks for a presigned URL (``presign``), PUTs the
file straight to storage, then names the returned public URL in a post's ``mediaUrls``. The
first time a post references a URL, the object is checked (it exists, belongs to the
caller's organization, its bytes are the type it was uploaded as, within the size limit) and
recorded as a ``MediaAsset`` with what was read from its header (dimensions, duration), so
the platforms' rules are checked when the post is written, not when it fires.

A URL outside Kairos's storage is fetched once through an SSRF guard and copied into the
organization's storage, so what is published is exactly what was checked.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Protocol
from uuid import UUID, uuid4

from application.errors import ServiceUnavailable
from application.platforms import ContentRejected, PlatformError
from domain.errors import InvalidField
from domain.media import MAX_UPLOAD_BYTES, MediaInfo, upload_violation

PRESIGN_EXPIRES_IN = 300
"""Seconds an upload URL stays valid (the seed's ``expiresIn``)."""
PROBE_HEAD_BYTES = 256 * 1024
PROBE_TAIL_BYTES = 256 * 1024
MAX_IMPORT_BYTES = 100 * 1024 * 1024
"""The largest file fetched from an outside URL; bigger ones must be uploaded."""


# ---- ports -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    content_type: str | None
    etag: str | None


class MediaStorage(Protocol):
    """Where media files live: S3-compatible storage, or a local directory for ``kairos up``.

    Both sign upload URLs so that the storage itself refuses a PUT whose Content-Type or
    size differs from what was declared, or that comes after the URL expired."""

    def upload_url(self, key: str, *, content_type: str, size: int, expires_in: int) -> str: ...

    def public_url(self, key: str) -> str: ...

    def key_for_url(self, url: str) -> str | None:
        """The key behind one of this storage's public URLs; None for any other URL."""
        ...

    def stat(self, key: str) -> StoredObject | None: ...

    def read(self, key: str, *, start: int, length: int) -> bytes: ...

    def chunks(self, key: str, *, chunk_size: int, etag: str | None) -> Iterator[bytes]:
        """The object's bytes in order; raises ``MediaChanged`` if its etag is not ``etag``."""
        ...

    def put(self, key: str, body: IO[bytes], *, content_type: str, size: int) -> StoredObject: ...

    def check(self) -> str | None:
        """None when the storage is reachable and writable as configured, else why not."""
        ...


@dataclass(frozen=True)
class Probe:
    content_type: str | None
    width: int | None
    height: int | None
    duration_ms: int | None


Prober = Callable[[bytes, bytes, int], Probe]
"""Reads a file's type and dimensions from its first and last bytes and its size."""


@dataclass(frozen=True)
class FetchedFile:
    url: str
    content_type: str | None
    size: int
    file: IO[bytes]


class RemoteMediaRefused(Exception):
    """An outside media URL that may not or could not be fetched; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RemoteFetcher(Protocol):
    def fetch(self, url: str, *, max_bytes: int) -> FetchedFile:
        """Fetch ``url`` through the SSRF guard; raises ``RemoteMediaRefused``."""
        ...


@dataclass(frozen=True)
class MediaAsset:
    """A file a post references, as checked when it was first referenced."""

    organization_id: UUID
    url: str
    key: str
    content_type: str
    size: int
    etag: str | None
    width: int | None
    height: int | None
    duration_ms: int | None
    recorded_at: datetime

    @property
    def info(self) -> MediaInfo:
        return MediaInfo(
            url=self.url,
            content_type=self.content_type,
            size=self.size,
            width=self.width,
            height=self.height,
            duration_ms=self.duration_ms,
        )


class MediaAssets(Protocol):
    def get(self, organization_id: UUID, url: str) -> MediaAsset | None: ...

    def add(self, asset: MediaAsset) -> MediaAsset:
        """Record ``asset``; if the URL was recorded meanwhile, the first record wins."""
        ...


class MediaUnavailable(PlatformError):
    """The file could not be read from storage just now; publishing retries. The message
    is shown to users: storage adapters log their details and keep it generic."""

    retryable = True


class MediaChanged(ContentRejected):
    """The stored file is gone or was replaced after the post was scheduled."""


# ---- the service -------------------------------------------------------------------------


@dataclass(frozen=True)
class PresignedUpload:
    key: str
    upload_url: str
    public_url: str
    expires_in: int
    content_type: str
    size: int


@dataclass(frozen=True)
class StoredMedia:
    """One asset's bytes, read from storage while a platform upload consumes them."""

    storage: MediaStorage
    key: str
    content_type: str
    size: int
    etag: str | None
    url: str = ""
    """Where the platform can fetch the stored copy (Instagram's ``image_url``)."""
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        return self.storage.chunks(self.key, chunk_size=chunk_size, etag=self.etag)


class MediaService:
    def __init__(
        self,
        storage: MediaStorage,
        assets: MediaAssets,
        prober: Prober,
        fetcher: RemoteFetcher,
        clock: Callable[[], datetime],
    ) -> None:
        self._storage = storage
        self._assets = assets
        self._probe = prober
        self._fetcher = fetcher
        self._clock = clock

    def presign(
        self, organization_id: UUID, *, filename: str, content_type: str, size: int
    ) -> PresignedUpload:
        content_type = content_type.split(";", maxsplit=1)[0].strip().lower()
        violation = upload_violation(filename, content_type, size)
        if violation is not None:
            raise InvalidField(violation.field, violation.message)
        key = f"{organization_id}/{uuid4().hex}/{_safe_name(filename)}"
        return PresignedUpload(
            key=key,
            upload_url=self._storage.upload_url(
                key, content_type=content_type, size=size, expires_in=PRESIGN_EXPIRES_IN
            ),
            public_url=self._storage.public_url(key),
            expires_in=PRESIGN_EXPIRES_IN,
            content_type=content_type,
            size=size,
        )

    def record(self, organization_id: UUID, urls: Sequence[str]) -> list[MediaInfo]:
        """Check and record every URL a post references; raises ``InvalidField`` naming the
        first one that cannot be used, or ``ServiceUnavailable`` if storage cannot answer."""
        return [
            self._recorded(organization_id, url, f"mediaUrls[{index}]").info
            for index, url in enumerate(urls)
        ]

    def payloads(self, organization_id: UUID, urls: Sequence[str]) -> list[StoredMedia]:
        """The stored files behind a post's media, for publishing.

        A post scheduled before Kairos recorded media assets references URLs with no record:
        they get the checks now that they would have had when the post was written, and a
        file that fails them fails the delivery, saying why."""
        found = []
        for index, url in enumerate(urls):
            asset = self._assets.get(organization_id, url)
            if asset is None:
                try:
                    asset = self._asset(organization_id, url, f"mediaUrls[{index}]")
                except InvalidField as refused:
                    raise MediaChanged(f"{url} cannot be published: {refused.message}") from None
            found.append(
                StoredMedia(
                    self._storage,
                    asset.key,
                    asset.content_type,
                    asset.size,
                    asset.etag,
                    url=self._storage.public_url(asset.key),
                    width=asset.width,
                    height=asset.height,
                    duration_ms=asset.duration_ms,
                )
            )
        return found

    def _recorded(self, organization_id: UUID, url: str, field: str) -> MediaAsset:
        """``_asset``, with storage failures told as API errors: a file that vanished or
        changed while it was checked is the caller's to fix, an outage is not."""
        try:
            return self._asset(organization_id, url, field)
        except MediaChanged as changed:
            raise InvalidField(field, changed.message) from None
        except MediaUnavailable:
            raise ServiceUnavailable(
                "media storage cannot be reached just now; try again in a moment"
            ) from None

    def _asset(self, organization_id: UUID, url: str, field: str) -> MediaAsset:
        known = self._assets.get(organization_id, url)
        if known is not None:
            return known
        key = self._storage.key_for_url(url)
        if key is None:
            key = self._import(organization_id, url, field)
        elif not key.startswith(f"{organization_id}/"):
            raise InvalidField(field, _NOT_UPLOADED)
        stored = self._storage.stat(key)
        if stored is None:
            raise InvalidField(field, _NOT_UPLOADED)
        head = self._storage.read(key, start=0, length=min(stored.size, PROBE_HEAD_BYTES))
        tail_start = max(stored.size - PROBE_TAIL_BYTES, len(head))
        tail = (
            self._storage.read(key, start=tail_start, length=stored.size - tail_start)
            if tail_start < stored.size
            else b""
        )
        probe = self._probe(head, tail, stored.size)
        declared = (stored.content_type or "").split(";")[0].strip().lower()
        if probe.content_type is None:
            raise InvalidField(
                field,
                "the file is not an image or video Kairos can publish "
                "(JPEG, PNG, WebP, GIF, MP4 or MOV)",
            )
        if declared and declared != probe.content_type:
            raise InvalidField(
                field,
                f"the file's content is {probe.content_type} but it was uploaded as "
                f"{declared}; upload it again with the right Content-Type",
            )
        limit = MAX_UPLOAD_BYTES.get(probe.content_type)
        if limit is not None and stored.size > limit:
            raise InvalidField(field, f"the file is larger than {limit} bytes")
        return self._assets.add(
            MediaAsset(
                organization_id=organization_id,
                url=url,
                key=key,
                content_type=probe.content_type,
                size=stored.size,
                etag=stored.etag,
                width=probe.width,
                height=probe.height,
                duration_ms=probe.duration_ms,
                recorded_at=self._clock(),
            )
        )

    def _import(self, organization_id: UUID, url: str, field: str) -> str:
        """Copy an outside URL into the organization's storage, through the SSRF guard."""
        try:
            fetched = self._fetcher.fetch(url, max_bytes=MAX_IMPORT_BYTES)
        except RemoteMediaRefused as refused:
            raise InvalidField(field, refused.message) from None
        with fetched.file:
            head = fetched.file.read(PROBE_HEAD_BYTES)
            fetched.file.seek(0)
            probe = self._probe(head, b"", fetched.size)
            if probe.content_type is None:
                raise InvalidField(
                    field,
                    "the URL does not serve an image or video Kairos can publish "
                    "(JPEG, PNG, WebP, GIF, MP4 or MOV)",
                )
            name = _safe_name(fetched.url.rsplit("/", 1)[-1].split("?")[0] or "media")
            key = f"{organization_id}/imported/{uuid4().hex}/{name}"
            self._storage.put(key, fetched.file, content_type=probe.content_type, size=fetched.size)
        return key


_NOT_UPLOADED = (
    "no uploaded file at this address in your organization: request an upload URL with "
    "POST /api/media/presign, PUT the file to it, then use the returned publicUrl"
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe_name(filename: str) -> str:
    """A storage-safe version of a client's file name (the key's last segment)."""
    base = unicodedata.normalize("NFKD", filename.replace("\\", "/").rsplit("/", 1)[-1])
    cleaned = _UNSAFE.sub("-", base.encode("ascii", "ignore").decode()).strip(".-")
    if "." in cleaned:
        stem, _, extension = cleaned.rpartition(".")
        return f"{stem[:80] or 'media'}.{extension[:10]}"
    return cleaned[:80] or "media"
