"""Outside media URLs, fetched only through the SSRF guard (``interfaces/net/guard.py``)."""

from __future__ import annotations

from application.media import FetchedFile, RemoteMediaRefused
from interfaces.net.guard import FetchRefused, GuardedFetcher


class GuardedRemoteFetcher:
    def __init__(self, guard: GuardedFetcher | None = None) -> None:
        self._guard = guard or GuardedFetcher()

    def fetch(self, url: str, *, max_bytes: int) -> FetchedFile:
        try:
            fetched = self._guard.fetch(url, max_bytes=max_bytes)
        except FetchRefused as refused:
            raise RemoteMediaRefused(refused.message) from None
        return FetchedFile(
            url=fetched.url, content_type=fetched.content_type, size=fetched.size, file=fetched.file
        )
