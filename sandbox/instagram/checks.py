"""What Instagram checks when a container is created (reference §1.4, §1.5, §1.7): the
caption, and the file behind ``image_url`` / ``video_url``, which it downloads itself.

Images are checked at once and refused with the call's error; videos are checked while the
container "processes", so their problems surface later as the container's ``ERROR`` status.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from starlette.concurrency import run_in_threadpool

from sandbox.instagram.db import ContainerError
from sandbox.x.sniff import Facts, inspect

MAX_CAPTION = 2200
MAX_HASHTAGS = 30
MAX_MENTIONS = 20
MIN_ASPECT, MAX_ASPECT = 4 / 5, 1.91
#: Reels: 3 s to 15 min; a video in a carousel: 3 to 60 s.
REEL_MS = (3_000, 15 * 60 * 1000)
CAROUSEL_VIDEO_MS = (3_000, 60 * 1000)
MAX_VIDEO_WIDTH = 1920
_HASHTAG = re.compile(r"(?<!\w)#\w+")
_MENTION = re.compile(r"(?<!\w)@[\w.]+")


@dataclass(frozen=True)
class Refusal:
    """A Graph error to answer the create call with."""

    code: int
    subcode: int
    message: str
    user_title: str
    user_msg: str
    transient: bool = False


def caption_refusal(caption: str) -> Refusal | None:
    if len(caption) > MAX_CAPTION:
        return Refusal(
            36004,
            2207010,
            "The caption is too long.",
            "Caption too long",
            f"The caption has {len(caption)} characters; Instagram allows {MAX_CAPTION}.",
        )
    if len(_HASHTAG.findall(caption)) > MAX_HASHTAGS:
        return Refusal(
            36004,
            2207010,
            "The caption has too many hashtags.",
            "Too many hashtags",
            f"A caption can have at most {MAX_HASHTAGS} hashtags.",
        )
    if len(_MENTION.findall(caption)) > MAX_MENTIONS:
        return Refusal(
            100,
            2207040,
            "The caption has too many @ tags.",
            "Too many tags",
            f"A caption can tag at most {MAX_MENTIONS} accounts with @.",
        )
    return None


@dataclass(frozen=True)
class Fetched:
    """What was learned from the file at a media URL."""

    size: int
    facts: Facts | None
    #: Set when the file could not be fetched: ``"timeout"`` or ``"unreachable"``.
    failure: str | None = None

    @property
    def too_large(self) -> bool:
        return self.failure is None and self.facts is None


async def fetch(url: str, directory: Path, limit: int, seconds: float) -> Fetched:
    """Download ``url`` (at most ``limit`` bytes) and inspect it; the file is not kept."""
    target = directory / uuid.uuid4().hex
    size = 0
    try:
        async with (
            httpx.AsyncClient(timeout=seconds, follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                return Fetched(0, None, "unreachable")
            with target.open("wb") as out:
                async for chunk in response.aiter_bytes(1 << 20):
                    size += len(chunk)
                    if size > limit:
                        return Fetched(size, None)
                    out.write(chunk)
        return Fetched(size, await run_in_threadpool(inspect, target))
    except httpx.TimeoutException:
        return Fetched(size, None, "timeout")
    except (httpx.HTTPError, ValueError):
        return Fetched(size, None, "unreachable")
    finally:
        target.unlink(missing_ok=True)


def _fetch_refusal(fetched: Fetched, url: str) -> Refusal | None:
    if fetched.failure == "timeout":
        return Refusal(
            -2,
            2207003,
            "It takes too long to download the media.",
            "Timeout downloading media",
            "The media took too long to download. Try again.",
            transient=True,
        )
    if fetched.failure is not None:
        return Refusal(
            9004,
            2207052,
            "Only photo or video can be accepted as media type.",
            "Media download has failed.",
            f"The media could not be fetched from this uri: {url}",
        )
    return None


def image_refusal(fetched: Fetched, url: str, max_bytes: int) -> Refusal | None:
    """Why a feed or carousel image is refused at once, if it is."""
    refusal = _fetch_refusal(fetched, url)
    if refusal is not None:
        return refusal
    if fetched.too_large or fetched.size > max_bytes:
        return Refusal(
            36000,
            2207004,
            "Image size too large.",
            "Image size too large",
            f"The image is too large to download. It should be less than {max_bytes} bytes.",
        )
    facts = fetched.facts
    if facts is None or facts.detected != "image/jpeg" or facts.unreadable or not facts.width:
        return Refusal(
            36001,
            2207005,
            "The image format is not supported.",
            "Unsupported format",
            "The image format is not supported. Supported formats are: JPEG",
        )
    ratio = facts.width / (facts.height or 1)
    if not MIN_ASPECT - 1e-9 <= ratio <= MAX_ASPECT + 1e-9:
        return Refusal(
            36003,
            2207009,
            "The aspect ratio is not supported.",
            "Cannot publish the image",
            f"The submitted image with aspect ratio ('{ratio:.4g}:1') cannot be published."
            " Please submit an image with a valid aspect ratio.",
        )
    return None


def video_problem(
    fetched: Fetched, url: str, max_bytes: int, carousel_item: bool
) -> ContainerError | None:
    """Why processing a video fails, if it does (the container ends in ``ERROR``)."""
    refusal = _fetch_refusal(fetched, url)
    if refusal is not None:
        return ContainerError(refusal.code, refusal.subcode, refusal.message)
    unsupported = 352, 2207026
    if fetched.too_large or fetched.size > max_bytes:
        return ContainerError(*unsupported, f"The video is larger than {max_bytes} bytes.")
    facts = fetched.facts
    if (
        facts is None
        or facts.detected not in ("video/mp4", "video/quicktime")
        or facts.unreadable
        or facts.duration_ms is None
    ):
        return ContainerError(
            *unsupported,
            "The video format is not supported. Please check spec for supported video format.",
        )
    low, high = CAROUSEL_VIDEO_MS if carousel_item else REEL_MS
    if not low <= facts.duration_ms <= high:
        return ContainerError(
            *unsupported,
            f"The video is {facts.duration_ms / 1000:g} s long; it must last"
            f" {low // 1000} to {high // 1000} s.",
        )
    width, height = facts.width or 0, facts.height or 0
    if width > MAX_VIDEO_WIDTH or not height or not 0.01 <= width / height <= 10:
        return ContainerError(
            *unsupported,
            f"The video's dimensions {width}x{height} are not supported (at most"
            f" {MAX_VIDEO_WIDTH} px wide, aspect ratio 0.01:1 to 10:1).",
        )
    return None
