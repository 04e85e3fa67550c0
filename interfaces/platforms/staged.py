"""The ``PlatformAdapter`` calls a staged publisher refuses: it uploads and posts in one
checkpointed ``publish``, so neither step can be asked for on its own."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar

from application.platforms import (
    MediaPayload,
    PlatformError,
    RemotePost,
    TimelinePost,
    UploadedMedia,
)


class StagedOnly:
    """Refuses ``upload_media`` and ``create_post`` (and ``recent_posts``, unless the
    publisher reads a timeline and overrides it), each with the class's reason."""

    _upload_refusal: ClassVar[str]
    _post_refusal: ClassVar[str]
    _timeline_refusal: ClassVar[str]

    def upload_media(self, access_token: str, media: MediaPayload) -> UploadedMedia:
        raise PlatformError(self._upload_refusal)

    def create_post(
        self,
        access_token: str,
        *,
        text: str,
        in_reply_to: str | None = None,
        media_ids: Sequence[str] = (),
    ) -> RemotePost:
        raise PlatformError(self._post_refusal)

    def recent_posts(
        self,
        access_token: str,
        *,
        user_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
        max_results: int = 10,
    ) -> list[TimelinePost]:
        raise PlatformError(self._timeline_refusal)
