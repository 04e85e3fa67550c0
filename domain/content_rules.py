"""What each platform accepts, checked when a post is written rather than when it fires.

A post that would be refused at publish time is refused at creation with the rule named,
so the user fixes it while they are still looking at it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from domain.errors import InvalidField
from domain.text import X_MAX_WEIGHTED_LENGTH, is_image_url, is_video_url, x_weighted_length

MAX_TEXT_CHARS = 10_000
MAX_THREAD_PARTS = 24
MAX_MEDIA = 10
MAX_URL_LENGTH = 2048
X_MAX_MEDIA = 4
INSTAGRAM_MAX_CAPTION = 2_200
INSTAGRAM_MAX_HASHTAGS = 30

PROVIDER_LABELS = {"twitter": "X", "instagram": "Instagram", "tiktok": "TikTok"}
_HASHTAG = re.compile(r"(?<!\w)#\w+")
_HTTP_URL = re.compile(r"^https?://[^\s/?#]+\.[^\s/?#]+(?:[/?#]\S*)?$", re.IGNORECASE)


@dataclass(frozen=True)
class Violation:
    field: str
    message: str


def check_post_content(
    *, content: str, thread: list[str], media_urls: list[str], providers: Iterable[str]
) -> list[Violation]:
    """Every rule the content breaks for the given platforms, in field order."""
    violations = _check_shape(content, thread, media_urls)
    for provider in dict.fromkeys(providers):
        violations.extend(_PROVIDER_RULES.get(provider, _no_rules)(content, thread, media_urls))
    return violations


def require_valid_content(
    *, content: str, thread: list[str], media_urls: list[str], providers: Iterable[str]
) -> None:
    violations = check_post_content(
        content=content, thread=thread, media_urls=media_urls, providers=providers
    )
    if violations:
        first = violations[0]
        raise InvalidField(first.field, first.message)


def _check_shape(content: str, thread: list[str], media_urls: list[str]) -> list[Violation]:
    found: list[Violation] = [
        Violation(name, "must not contain NUL (U+0000) characters")
        for name, text in [
            ("content", content),
            *((f"thread[{i}]", part) for i, part in enumerate(thread)),
            *((f"mediaUrls[{i}]", url) for i, url in enumerate(media_urls)),
        ]
        if "\x00" in text
    ]
    if not content.strip() and not media_urls:
        found.append(Violation("content", "content must not be empty unless media is attached"))
    if len(content) > MAX_TEXT_CHARS:
        found.append(Violation("content", f"content is longer than {MAX_TEXT_CHARS} characters"))
    if len(thread) > MAX_THREAD_PARTS:
        found.append(Violation("thread", f"a thread has at most {MAX_THREAD_PARTS} parts"))
    for index, part in enumerate(thread):
        if not part.strip():
            found.append(Violation(f"thread[{index}]", "thread parts must not be empty"))
        elif len(part) > MAX_TEXT_CHARS:
            found.append(Violation(f"thread[{index}]", "thread part is too long"))
    if len(media_urls) > MAX_MEDIA:
        found.append(Violation("mediaUrls", f"at most {MAX_MEDIA} media items per post"))
    for index, url in enumerate(media_urls):
        if len(url) > MAX_URL_LENGTH or not _HTTP_URL.match(url):
            found.append(Violation(f"mediaUrls[{index}]", "must be an absolute http(s) URL"))
    return found


def _no_rules(content: str, thread: list[str], media_urls: list[str]) -> list[Violation]:
    return []


def _x_rules(content: str, thread: list[str], media_urls: list[str]) -> list[Violation]:
    found: list[Violation] = []
    length = x_weighted_length(content)
    if length > X_MAX_WEIGHTED_LENGTH:
        found.append(
            Violation(
                "content",
                f"X allows {X_MAX_WEIGHTED_LENGTH} characters per post; this one counts "
                f"{length} (URLs count as 23, emoji and CJK characters as 2)",
            )
        )
    for index, part in enumerate(thread):
        part_length = x_weighted_length(part)
        if part_length > X_MAX_WEIGHTED_LENGTH:
            found.append(
                Violation(
                    f"thread[{index}]",
                    f"X allows {X_MAX_WEIGHTED_LENGTH} characters per thread part; "
                    f"this one counts {part_length}",
                )
            )
    if len(media_urls) > X_MAX_MEDIA:
        found.append(Violation("mediaUrls", f"X allows at most {X_MAX_MEDIA} media per post"))
    return found


def _instagram_rules(content: str, thread: list[str], media_urls: list[str]) -> list[Violation]:
    found: list[Violation] = []
    if not any(is_image_url(url) or is_video_url(url) for url in media_urls):
        found.append(
            Violation(
                "mediaUrls",
                "Instagram posts must include at least one image or video; "
                "caption-only posts are rejected by the platform",
            )
        )
    if len(content) > INSTAGRAM_MAX_CAPTION:
        found.append(
            Violation(
                "content", f"Instagram captions are at most {INSTAGRAM_MAX_CAPTION} characters"
            )
        )
    if len(_HASHTAG.findall(content)) > INSTAGRAM_MAX_HASHTAGS:
        found.append(
            Violation("content", f"Instagram allows at most {INSTAGRAM_MAX_HASHTAGS} hashtags")
        )
    return found


def _tiktok_rules(content: str, thread: list[str], media_urls: list[str]) -> list[Violation]:
    if any(is_video_url(url) for url in media_urls):
        return []
    return [
        Violation("mediaUrls", "TikTok is video-first: attach a video (MP4 or MOV) to post there")
    ]


_PROVIDER_RULES = {
    "twitter": _x_rules,
    "instagram": _instagram_rules,
    "instagram-facebook": _instagram_rules,
    "tiktok": _tiktok_rules,
}
