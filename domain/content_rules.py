"""What each platform accepts, checked when a post is written rather than when it fires.

A post that would be refused at publish time is refused at creation with the rule named,
so the user fixes it while they are still looking at it. Attached files are judged by what
they are (``domain.media``) when the caller has read them, else by their URLs' extensions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from domain.errors import InvalidField
from domain.media import INSTAGRAM_NEEDS_MEDIA, TIKTOK_NEEDS_VIDEO, MediaInfo, media_violations
from domain.text import X_MAX_WEIGHTED_LENGTH, is_image_url, is_video_url, x_weighted_length
from domain.violations import Violation

__all__ = [
    "INSTAGRAM_MAX_CAPTION",
    "INSTAGRAM_MAX_HASHTAGS",
    "MAX_MEDIA",
    "MAX_TEXT_CHARS",
    "MAX_THREAD_PARTS",
    "MAX_URL_LENGTH",
    "PROVIDER_LABELS",
    "X_MAX_MEDIA",
    "Violation",
    "check_post_content",
    "require_valid_content",
]

MAX_TEXT_CHARS = 10_000
MAX_THREAD_PARTS = 24
MAX_MEDIA = 10
MAX_URL_LENGTH = 2048
X_MAX_MEDIA = 4
INSTAGRAM_MAX_CAPTION = 2_200
INSTAGRAM_MAX_HASHTAGS = 30

PROVIDER_LABELS = {
    "twitter": "X",
    "instagram": "Instagram",
    "instagram-facebook": "Instagram",
    "tiktok": "TikTok",
}
_HASHTAG = re.compile(r"(?<!\w)#\w+")
_HTTP_URL = re.compile(r"^https?://[^\s/?#]+\.[^\s/?#]+(?:[/?#]\S*)?$", re.IGNORECASE)


def check_post_content(
    *,
    content: str,
    thread: list[str],
    media_urls: list[str],
    providers: Iterable[str],
    media: Sequence[MediaInfo] | None = None,
) -> list[Violation]:
    """Every rule the content breaks for the given platforms, in field order.

    ``media`` describes the files behind ``media_urls``, one per URL and in the same order;
    without it the platforms' media rules can only go by the URLs' extensions.
    """
    if media is not None and len(media) != len(media_urls):
        raise ValueError("media must describe media_urls one for one")
    violations = _check_shape(content, thread, media_urls)
    for provider in dict.fromkeys(providers):
        violations.extend(_TEXT_RULES.get(provider, _no_text_rules)(content, thread))
        if media is None:
            violations.extend(_URL_MEDIA_RULES.get(provider, _no_url_rules)(media_urls))
        else:
            violations.extend(media_violations(provider, media))
    return violations


def require_valid_content(
    *,
    content: str,
    thread: list[str],
    media_urls: list[str],
    providers: Iterable[str],
    media: Sequence[MediaInfo] | None = None,
) -> None:
    violations = check_post_content(
        content=content, thread=thread, media_urls=media_urls, providers=providers, media=media
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


def _no_text_rules(content: str, thread: list[str]) -> list[Violation]:
    return []


def _no_url_rules(media_urls: list[str]) -> list[Violation]:
    return []


def _x_text(content: str, thread: list[str]) -> list[Violation]:
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
    return found


def _instagram_text(content: str, thread: list[str]) -> list[Violation]:
    found: list[Violation] = []
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


# Without the files' own description, the URLs' extensions are the best guess there is.
def _x_media_urls(media_urls: list[str]) -> list[Violation]:
    if len(media_urls) > X_MAX_MEDIA:
        return [Violation("mediaUrls", f"X allows at most {X_MAX_MEDIA} media per post")]
    return []


def _instagram_media_urls(media_urls: list[str]) -> list[Violation]:
    if any(is_image_url(url) or is_video_url(url) for url in media_urls):
        return []
    return [Violation("mediaUrls", INSTAGRAM_NEEDS_MEDIA)]


def _tiktok_media_urls(media_urls: list[str]) -> list[Violation]:
    if any(is_video_url(url) for url in media_urls):
        return []
    return [Violation("mediaUrls", TIKTOK_NEEDS_VIDEO)]


_TEXT_RULES: dict[str, Callable[[str, list[str]], list[Violation]]] = {
    "twitter": _x_text,
    "instagram": _instagram_text,
    "instagram-facebook": _instagram_text,
}
_URL_MEDIA_RULES: dict[str, Callable[[list[str]], list[Violation]]] = {
    "twitter": _x_media_urls,
    "instagram": _instagram_media_urls,
    "instagram-facebook": _instagram_media_urls,
    "tiktok": _tiktok_media_urls,
}
