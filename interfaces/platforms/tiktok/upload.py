"""A FILE_UPLOAD: the video PUT in the chunks its plan announced, resumed where TikTok
says it stands. The upload URL is a credential: it never appears in exception messages."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from application.platforms import (
    ContentRejected,
    MediaPayload,
    PublishProgress,
    TransientPlatformError,
)
from interfaces.platforms.tiktok.api import TikTokApi, forget

MIB = 1024 * 1024
MIN_CHUNK = 5 * MIB
"""Files under this are uploaded whole; chunks are 5 to 64 MB, the last up to 128 MB."""
MAX_CHUNK = 64 * MIB
DEFAULT_CHUNK = 10 * MIB
MAX_CHUNKS = 1000
CHUNK_RETRIES = 3


@dataclass(frozen=True)
class ChunkPlan:
    """A FILE_UPLOAD's ``source_info``: ``count = floor(size / chunk_size)`` chunks, the last
    absorbing the remainder."""

    size: int
    chunk_size: int
    count: int

    @classmethod
    def for_size(cls, size: int, preferred: int = DEFAULT_CHUNK) -> ChunkPlan:
        if size < MIN_CHUNK:
            return cls(size, size, 1)
        chunk = min(max(preferred, MIN_CHUNK, math.ceil(size / MAX_CHUNKS)), MAX_CHUNK, size)
        return cls(size, chunk, size // chunk)

    def bounds(self, index: int) -> tuple[int, int]:
        """The first byte and the byte after the last of chunk ``index``."""
        start = index * self.chunk_size
        return start, self.size if index == self.count - 1 else start + self.chunk_size

    def index_at(self, offset: int) -> int | None:
        """The chunk that starts at ``offset``, if one does."""
        index = offset // self.chunk_size
        return index if index < self.count and offset == index * self.chunk_size else None


class _ChunkReader:
    """Reads chunk after chunk of a payload in its plan's sizes, one chunk in memory."""

    def __init__(self, payload: MediaPayload, plan: ChunkPlan) -> None:
        self._payload = payload
        self._plan = plan
        self._restart()

    def _restart(self) -> None:
        self._pieces: Iterator[bytes] = iter(self._payload.chunks(min(self._plan.chunk_size, MIB)))
        self._buffer = bytearray()
        self._offset = 0

    def read(self, index: int) -> bytes:
        start, end = self._plan.bounds(index)
        if start < self._offset:
            self._restart()
        while self._offset + len(self._buffer) < end:
            piece = next(self._pieces, None)
            if piece is None:
                raise TransientPlatformError("The stored video ended before its recorded size")
            self._buffer += piece
            if self._offset < start:  # skipping chunks TikTok already has
                dropped = min(start - self._offset, len(self._buffer))
                del self._buffer[:dropped]
                self._offset += dropped
        data = bytes(self._buffer[start - self._offset : end - self._offset])
        del self._buffer[: end - self._offset]
        self._offset = end
        return data


class ChunkUploader(TikTokApi):
    """Uploads a video to the URL a FILE_UPLOAD init gave."""

    _status_interval: float
    _upload_rate_floor: int

    def _upload(
        self,
        token: str,
        publish_id: str,
        upload_url: str,
        payload: MediaPayload,
        plan: ChunkPlan,
        progress: PublishProgress,
    ) -> None:
        """PUT the chunks in order (206 each, 201 for the last). A 5xx retries the chunk; a
        416 resumes where TikTok's ``Content-Range`` says it stands; a lost answer asks the
        status endpoint how many bytes arrived."""
        reader = _ChunkReader(payload, plan)
        content_type = media_type(payload)
        index, failures = 0, 0
        while index < plan.count:
            progress.check()  # a worker past its claim never completes an upload
            start, end = plan.bounds(index)
            response = self._put(upload_url, content_type, start, reader.read(index), plan.size)
            status = None if response is None else response.status_code
            if status == 201:
                return
            if status == 206:
                index, failures = index + 1, 0
                continue
            if status in (403, 404):
                forget(progress)
                raise TransientPlatformError(
                    "TikTok's upload URL expired before the video was uploaded; it will be "
                    "sent again",
                    status=status,
                )
            if status is not None and 400 <= status < 500 and status not in (416, 429):
                raise ContentRejected(
                    f"TikTok refused bytes {start}-{end - 1} of the video (HTTP {status})",
                    status=status,
                )
            failures += 1
            if failures > CHUNK_RETRIES:
                raise TransientPlatformError(
                    f"Uploading the video to TikTok kept failing (last: "
                    f"{'no answer' if status is None else f'HTTP {status}'})",
                    status=status,
                )
            if response is not None and status != 416:
                self._sleep(self._status_interval * failures)  # 5xx or 429: the same chunk
                continue
            stands = _range_end(response) if response is not None else None
            if stands is None:
                stands = self._uploaded_bytes(token, publish_id, plan.size)
            if stands >= plan.size:
                return
            resumed_at = plan.index_at(stands)
            if resumed_at is None:
                raise TransientPlatformError(f"TikTok holds {stands} bytes, not a whole chunk")
            index = resumed_at
        raise TransientPlatformError("TikTok did not confirm the video's last chunk")

    def _put(
        self, upload_url: str, content_type: str, start: int, data: bytes, total: int
    ) -> httpx.Response | None:
        headers = {
            "Content-Type": content_type,
            "Content-Length": str(len(data)),
            "Content-Range": f"bytes {start}-{start + len(data) - 1}/{total}",
        }
        timeout = self._timeout + len(data) / self._upload_rate_floor
        try:
            return self._http.put(upload_url, content=data, headers=headers, timeout=timeout)
        except httpx.TransportError:  # timeouts included: the chunk may or may not be there
            return None

    def _uploaded_bytes(self, token: str, publish_id: str, size: int) -> int:
        data = self._status(token, publish_id)
        uploaded = data.get("uploaded_bytes")
        if data.get("status") != "PROCESSING_UPLOAD":
            return size  # TikTok is past the upload
        return uploaded if isinstance(uploaded, int) else 0


def media_type(payload: MediaPayload) -> str:
    return payload.content_type.split(";", 1)[0].strip().lower()


def _range_end(response: httpx.Response) -> int | None:
    """How many bytes an upload answer's ``Content-Range`` says TikTok holds."""
    raw = response.headers.get("content-range", "")
    unit, _, spec = raw.partition(" ")
    span = spec.partition("/")[0]
    if unit != "bytes" or not span:
        return None
    if span == "*":
        return 0
    last = span.partition("-")[2]
    return int(last) + 1 if last.isdigit() else None
