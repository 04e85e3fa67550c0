"""Attached files, and what each platform accepts of them.

Checked when a post is written, like the text rules in ``content_rules``: a 7 MB image for X
is refused while the user is still looking at it, not when the post fires. Type, pixel size
and duration come from the file's own bytes (the storage probe), never from its name. What
the probe could not read is not guessed: those checks are skipped and the platform decides.

Sources: X "media best practices"; Instagram Graph API "IG User Media" (feed images, reels)
and content-publishing limits; TikTok Content Posting API media transfer guide.

Sizes are binary megabytes (1 MB = 2**20 bytes), the reading that refuses the fewest files
a platform would take; the platforms write "MB" and do not say which they mean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import PurePosixPath
from typing import Literal

from domain.violations import Violation

MB = 1024 * 1024
GB = 1024 * MB

MediaKind = Literal["image", "gif", "video", "other"]

ALLOWED_UPLOAD_TYPES: dict[str, tuple[str, ...]] = {
    "image/jpeg": (".jpg", ".jpeg"),
    "image/png": (".png",),
    "image/webp": (".webp",),
    "image/gif": (".gif",),
    "video/mp4": (".mp4", ".m4v"),
    "video/quicktime": (".mov",),
}

# The most any supported platform accepts of each type, so an upload is refused only when no
# platform could ever publish it. Videos are the exception: TikTok takes up to 4 GB, but one
# presigned PUT of that size ties up a connection for minutes and a self-hosted disk for good,
# while X (512 MB) and Instagram (300 MB) stop far below; 1 GB keeps every X and Instagram
# video and all but the largest TikToks.
MAX_UPLOAD_BYTES: dict[str, int] = {
    "image/jpeg": 20 * MB,  # TikTok photos (Instagram 8 MB, X 5 MB)
    "image/webp": 20 * MB,  # TikTok photos (X 5 MB)
    "image/png": 5 * MB,  # only X takes PNG
    "image/gif": 15 * MB,  # X animated GIFs
    "video/mp4": 1 * GB,
    "video/quicktime": 1 * GB,
}

INSTAGRAM_NEEDS_MEDIA = (
    "Instagram posts must include at least one image or video; "
    "caption-only posts are rejected by the platform"
)
TIKTOK_NEEDS_VIDEO = "TikTok is video-first: attach a video (MP4 or MOV) to post there"

X_MAX_IMAGES = 4
INSTAGRAM_MAX_CAROUSEL = 10

_TYPE_LABELS = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WebP",
    "image/gif": "GIF",
    "video/mp4": "MP4",
    "video/quicktime": "MOV",
    "video/webm": "WebM",
    "image/heic": "HEIC",
}
_MP4_OR_MOV = frozenset({"video/mp4", "video/quicktime"})


@dataclass(frozen=True)
class MediaInfo:
    """One attached file as stored: its sniffed type and, when readable, size and length."""

    url: str
    content_type: str
    size: int
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None

    @property
    def kind(self) -> MediaKind:
        """``other`` for files no platform rule knows (a PDF, an unreadable file)."""
        essence = _essence(self.content_type)
        if essence == "image/gif":
            return "gif"
        if essence.startswith("image/"):
            return "image"
        if essence.startswith("video/"):
            return "video"
        return "other"


def upload_violation(filename: str, content_type: str, size: int) -> Violation | None:
    """Why an upload of this name, type and size is refused before it starts, if it is."""
    essence = _essence(content_type)
    extensions = ALLOWED_UPLOAD_TYPES.get(essence)
    if extensions is None:
        shown = repr(content_type) if content_type else "an empty content type"
        return Violation(
            "contentType",
            f"{shown} cannot be uploaded; upload JPEG, PNG, WebP or GIF images "
            "or MP4 or MOV videos",
        )
    label = _TYPE_LABELS[essence]
    if PurePosixPath(filename).suffix.lower() not in extensions:
        return Violation(
            "filename",
            f"a {label} file's name must end in {' or '.join(extensions)}; got {filename!r}",
        )
    if size <= 0:
        return Violation("size", "size must be a positive number of bytes")
    limit = MAX_UPLOAD_BYTES[essence]
    if size > limit:
        return Violation(
            "size",
            f"{label} uploads are limited to {_size_text(limit)}; this one is {_size_text(size)}",
        )
    return None


def media_violations(provider: str, media: Sequence[MediaInfo]) -> list[Violation]:
    """Every rule ``provider`` has for these files: each file in order, then the set."""
    rules = _PROVIDER_RULES.get(provider)
    return rules(media) if rules else []


# --- limits shared by the platforms ----------------------------------------------------------


@dataclass(frozen=True)
class _Aspect:
    low: Fraction
    high: Fraction
    text: str  # "from 4:5 to 1.91:1"


@dataclass(frozen=True)
class _Frame:
    min_width: int
    min_height: int
    max_width: int
    max_height: int


@dataclass(frozen=True)
class _Limits:
    noun: str  # "images", "videos"
    max_bytes: int
    duration_ms: tuple[int, int] | None = None
    aspect: _Aspect | None = None
    frame: _Frame | None = None


def _item_violations(
    platform: str, index: int, item: MediaInfo, limits: _Limits
) -> list[Violation]:
    field = f"mediaUrls[{index}]"
    accepts = f"{platform} accepts {limits.noun}"
    found: list[Violation] = []
    if item.size > limits.max_bytes:
        found.append(
            Violation(
                field,
                f"{accepts} up to {_size_text(limits.max_bytes)}; "
                f"this one is {_size_text(item.size)}",
            )
        )
    if limits.duration_ms and item.duration_ms is not None:
        shortest, longest = limits.duration_ms
        if not shortest <= item.duration_ms <= longest:
            minutes = longest % 60_000 == 0  # say it in the unit the platform states its limit
            found.append(
                Violation(
                    field,
                    f"{accepts} from {_duration_text(shortest, minutes)} to "
                    f"{_duration_text(longest, minutes)} long; "
                    f"this one is {_duration_text(item.duration_ms, minutes)}",
                )
            )
    if item.width is None or item.height is None:
        return found
    shape = f"{item.width}x{item.height}"
    frame = limits.frame
    if frame and not (
        frame.min_width <= item.width <= frame.max_width
        and frame.min_height <= item.height <= frame.max_height
    ):
        found.append(
            Violation(
                field,
                f"{accepts} from {frame.min_width}x{frame.min_height} to "
                f"{frame.max_width}x{frame.max_height} pixels; this one is {shape}",
            )
        )
    aspect = limits.aspect
    if aspect and item.width > 0 and item.height > 0:
        ratio = Fraction(item.width, item.height)
        if not aspect.low <= ratio <= aspect.high:
            shown = f"{float(ratio):.3f}".rstrip("0").rstrip(".")
            found.append(
                Violation(
                    field,
                    f"{accepts} with an aspect ratio {aspect.text}; "
                    f"this one is {shape} ({shown}:1)",
                )
            )
    return found


# --- X ---------------------------------------------------------------------------------------

_X_IMAGES = _Limits("images", 5 * MB)
_X_GIFS = _Limits("GIFs", 15 * MB)
_X_VIDEOS = _Limits(
    "videos",
    512 * MB,
    duration_ms=(500, 140_000),
    aspect=_Aspect(Fraction(1, 3), Fraction(3), "from 1:3 to 3:1"),
    frame=_Frame(32, 32, 1280, 1024),
)
_X_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})


def _x_rules(media: Sequence[MediaInfo]) -> list[Violation]:
    found: list[Violation] = []
    for index, item in enumerate(media):
        essence = _essence(item.content_type)
        if essence in _X_IMAGE_TYPES:
            found.extend(_item_violations("X", index, item, _X_IMAGES))
        elif essence == "image/gif":
            found.extend(_item_violations("X", index, item, _X_GIFS))
        elif essence in _MP4_OR_MOV:
            found.extend(_item_violations("X", index, item, _X_VIDEOS))
        else:
            found.append(
                Violation(
                    f"mediaUrls[{index}]",
                    "X accepts JPEG, PNG or WebP images, GIFs and MP4 or MOV videos; "
                    f"this one is {_type_text(item.content_type)}",
                )
            )
    images = sum(item.kind == "image" for item in media)
    gifs = sum(item.kind == "gif" for item in media)
    videos = sum(item.kind == "video" for item in media)
    if (gifs or videos) and images + gifs + videos > 1:
        counted = (
            (images, "image", "images"),
            (gifs, "GIF", "GIFs"),
            (videos, "video", "videos"),
        )
        has = " and ".join(
            f"{count} {one if count == 1 else many}" for count, one, many in counted if count
        )
        found.append(
            Violation(
                "mediaUrls",
                f"X takes up to {X_MAX_IMAGES} images, or exactly 1 GIF, or exactly 1 video "
                f"per post, never a mix; this post has {has}",
            )
        )
    elif images > X_MAX_IMAGES:
        found.append(
            Violation(
                "mediaUrls",
                f"X allows at most {X_MAX_IMAGES} images per post; this post has {images}",
            )
        )
    return found


# --- Instagram -------------------------------------------------------------------------------

_INSTAGRAM_IMAGES = _Limits(
    "images", 8 * MB, aspect=_Aspect(Fraction(4, 5), Fraction(191, 100), "from 4:5 to 1.91:1")
)
_INSTAGRAM_VIDEOS = _Limits(  # reels, and videos inside carousels
    "videos",
    300 * MB,
    duration_ms=(3_000, 15 * 60_000),
    aspect=_Aspect(Fraction(1, 100), Fraction(10), "from 0.01:1 to 10:1"),
)


def _instagram_rules(media: Sequence[MediaInfo]) -> list[Violation]:
    found: list[Violation] = []
    for index, item in enumerate(media):
        essence = _essence(item.content_type)
        if essence == "image/jpeg":
            found.extend(_item_violations("Instagram", index, item, _INSTAGRAM_IMAGES))
        elif essence in _MP4_OR_MOV:
            found.extend(_item_violations("Instagram", index, item, _INSTAGRAM_VIDEOS))
        else:
            found.append(Violation(f"mediaUrls[{index}]", _instagram_refusal(item)))
    if len(media) > INSTAGRAM_MAX_CAROUSEL:
        found.append(
            Violation(
                "mediaUrls",
                f"Instagram carousels hold at most {INSTAGRAM_MAX_CAROUSEL} items; "
                f"this post has {len(media)}",
            )
        )
    if not any(item.kind in ("image", "video") for item in media):
        found.append(Violation("mediaUrls", INSTAGRAM_NEEDS_MEDIA))
    return found


def _instagram_refusal(item: MediaInfo) -> str:
    shown = _type_text(item.content_type)
    if item.kind == "gif":
        return "Instagram does not accept GIFs; convert this one to an MP4 video before scheduling"
    if item.kind == "image":
        return f"Instagram accepts only JPEG images; convert this {shown} to JPEG before scheduling"
    return f"Instagram accepts JPEG images and MP4 or MOV videos; this one is {shown}"


# --- TikTok ----------------------------------------------------------------------------------

# The API takes up to 10 minutes, but each creator has their own ceiling (creator_info's
# max_video_post_duration_sec: 3, 5 or 10 minutes), known only once the account is asked
# at publish time; this checks what no creator can exceed.
_TIKTOK_VIDEOS = _Limits("videos", 4 * GB, duration_ms=(3_000, 10 * 60_000))
_TIKTOK_VIDEO_TYPES = frozenset({"video/mp4", "video/quicktime", "video/webm"})


def _tiktok_rules(media: Sequence[MediaInfo]) -> list[Violation]:
    # Photo posts exist (JPEG/WebP, up to 35) but Kairos publishes TikTok videos only.
    videos = [
        (index, item)
        for index, item in enumerate(media)
        if _essence(item.content_type) in _TIKTOK_VIDEO_TYPES
    ]
    if not videos:
        return [Violation("mediaUrls", TIKTOK_NEEDS_VIDEO)]
    found = [
        violation
        for index, item in videos
        for violation in _item_violations("TikTok", index, item, _TIKTOK_VIDEOS)
    ]
    if len(media) > 1:
        found.append(
            Violation(
                "mediaUrls",
                f"TikTok posts carry exactly one video and nothing else; "
                f"this post has {len(media)} media items",
            )
        )
    return found


_PROVIDER_RULES: dict[str, Callable[[Sequence[MediaInfo]], list[Violation]]] = {
    "twitter": _x_rules,
    "instagram": _instagram_rules,
    "instagram-facebook": _instagram_rules,
    "tiktok": _tiktok_rules,
}


# --- wording ---------------------------------------------------------------------------------


def _essence(content_type: str) -> str:
    """``image/jpeg`` from ``Image/JPEG; charset=binary``: parameters and case dropped."""
    return content_type.partition(";")[0].strip().lower()


def _type_text(content_type: str) -> str:
    essence = _essence(content_type)
    if essence in ("", "application/octet-stream"):
        return "a file of unrecognised type"
    return _TYPE_LABELS.get(essence, essence)


def _size_text(size: int) -> str:
    """``7.2 MB``; rounded up, so a file one byte over a limit never reads as the limit."""
    unit, name = (GB, "GB") if size >= GB else (MB, "MB")
    tenths = -(-size * 10 // unit)
    whole, fraction = divmod(tenths, 10)
    return f"{whole}.{fraction} {name}" if fraction else f"{whole} {name}"


def _duration_text(milliseconds: int, in_minutes: bool) -> str:
    """``140.5 seconds``; in minutes ``15 minutes``, ``16 minutes 2.5 seconds``, ``3 seconds``."""
    minutes, rest = divmod(milliseconds, 60_000) if in_minutes else (0, milliseconds)
    parts = []
    if minutes:
        parts.append(f"{minutes} minute{'' if minutes == 1 else 's'}")
    if rest or not minutes:
        seconds = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
        parts.append(f"{seconds} second{'' if seconds == '1' else 's'}")
    return " ".join(parts)
