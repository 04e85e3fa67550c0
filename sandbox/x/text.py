"""Tweet length as X counts it: twitter-text v3 weighted length.

Config v3: scale 100, default weight 200, code points in the ranges below weigh 100,
every URL counts ``transformedURLLength`` (23) whatever its length, emoji sequences
(ZWJ sequences, skin tones, flags, keycaps) count as one character of weight 200,
the text is NFC-normalized first.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

MAX_WEIGHTED_LENGTH = 280
SCALE = 100
DEFAULT_WEIGHT = 200
TRANSFORMED_URL_LENGTH = 23
RANGES: tuple[tuple[int, int, int], ...] = (
    (0, 4351, 100),
    (8192, 8205, 100),
    (8208, 8223, 100),
    (8242, 8247, 100),
)

# A pragmatic subset of twitter-text's URL extractor: scheme URLs, www. hosts and bare
# domains under common TLDs. Trailing punctuation is not part of the URL.
_TLDS = (
    "com|net|org|io|co|dev|app|ai|me|info|biz|edu|gov|tv|ly|gg|xyz|blog|news|page|"
    "uk|de|fr|es|it|nl|jp|cn|ru|br|in|ca|au|us|eu|ch|se|no|fi|dk|pl|be|at|ie|nz"
)
_URL_RE = re.compile(
    r"(?<![\w@.-])(?:"
    r"https?://[^\s<>\"]+"
    r"|www\.[^\s<>\"]+"
    rf"|(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:{_TLDS})\b(?:[/?#][^\s<>\"]*)?"
    r")",
    re.IGNORECASE,
)
_DISPLAY_LENGTH = 26
"""X shortens a long link's ``display_url`` to about this many characters, with an ellipsis."""
_TRAILING_PUNCT = ".,;:!?)]}'\""

_ZWJ = 0x200D
_VS16 = 0xFE0F
_KEYCAP = 0x20E3


def _is_regional_indicator(cp: int) -> bool:
    return 0x1F1E6 <= cp <= 0x1F1FF


def _is_skin_tone(cp: int) -> bool:
    return 0x1F3FB <= cp <= 0x1F3FF


def _is_tag(cp: int) -> bool:
    return 0xE0020 <= cp <= 0xE007F


def _is_pictographic(cp: int) -> bool:
    return (
        0x1F000 <= cp <= 0x1FAFF
        or 0x2600 <= cp <= 0x27BF
        or 0x2300 <= cp <= 0x23FF
        or 0x2B00 <= cp <= 0x2BFF
        or 0x2190 <= cp <= 0x21FF
        or 0x25A0 <= cp <= 0x25FF
        or cp in (0x3030, 0x303D, 0x3297, 0x3299, 0x2122, 0x2139)
    )


def _emoji_length(cps: list[int], i: int) -> int:
    """Length in code points of the emoji sequence starting at ``i`` (0 if none)."""
    n = len(cps)
    cp = cps[i]
    # Keycap: [0-9#*] FE0F? 20E3
    if chr(cp) in "0123456789#*":
        j = i + 1
        if j < n and cps[j] == _VS16:
            j += 1
        return j + 1 - i if j < n and cps[j] == _KEYCAP else 0
    if _is_regional_indicator(cp):
        return 2 if i + 1 < n and _is_regional_indicator(cps[i + 1]) else 1
    if not _is_pictographic(cp) and not (cp < 4352 and i + 1 < n and cps[i + 1] == _VS16):
        return 0
    j = i + 1
    while j < n:
        if cps[j] == _VS16 or _is_skin_tone(cps[j]) or _is_tag(cps[j]) or cps[j] == _KEYCAP:
            j += 1
        elif cps[j] == _ZWJ and j + 1 < n and _is_pictographic(cps[j + 1]):
            j += 2
        else:
            break
    return j - i


def _weight(cp: int) -> int:
    for start, end, weight in RANGES:
        if start <= cp <= end:
            return weight
    return DEFAULT_WEIGHT


def _url_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _URL_RE.finditer(text):
        start, end = match.span()
        while end > start and text[end - 1] in _TRAILING_PUNCT:
            end -= 1
        if end > start:
            spans.append((start, end))
    return spans


def weighted_length(text: str) -> int:
    """The length X compares with 280."""
    text = unicodedata.normalize("NFC", text)
    total = 0
    spans = _url_spans(text)
    cursor = 0
    segments: list[str] = []
    for start, end in spans:
        segments.append(text[cursor:start])
        total += TRANSFORMED_URL_LENGTH * SCALE
        cursor = end
    segments.append(text[cursor:])
    for segment in segments:
        cps = [ord(ch) for ch in segment]
        i = 0
        while i < len(cps):
            emoji = _emoji_length(cps, i)
            if emoji:
                total += DEFAULT_WEIGHT
                i += emoji
            else:
                total += _weight(cps[i])
                i += 1
    return total // SCALE


def is_too_long(text: str, limit: int = MAX_WEIGHTED_LENGTH) -> bool:
    return weighted_length(text) > limit


def link_entities(
    text: str, media_keys: list[str] | None = None, media_page: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Text as X's API returns it, and its ``entities.urls``. Every link is wrapped as a
    t.co link, and a post with media ends in one more t.co link to that media; each entity
    says where its t.co link sits (code-point offsets) and what it stands for: the link as
    written (``expanded_url``; a bare domain gains ``http://``, as on X) or, for the media
    link, its ``media_key`` with ``media_page`` as ``expanded_url``. Deterministic, so tests
    can predict it."""
    pieces: list[str] = []
    urls: list[dict[str, Any]] = []
    last = 0
    for start, end in _url_spans(text):
        pieces.append(text[last:start])
        written = text[start:end]
        expanded = written if "://" in written else f"http://{written}"
        urls.append(_entity(sum(map(len, pieces)), _tco(written), expanded))
        pieces.append(urls[-1]["url"])
        last = end
    shown = "".join([*pieces, text[last:]])
    if media_keys:
        link = _tco("media:" + media_keys[0])
        shown = f"{shown} {link}".lstrip()
        media = _entity(len(shown) - len(link), link, media_page or link)
        urls.append({**media, "media_key": media_keys[0]})
    return shown, urls


def _entity(start: int, link: str, expanded: str) -> dict[str, Any]:
    display = expanded.split("://", 1)[-1]
    if len(display) > _DISPLAY_LENGTH:
        display = display[: _DISPLAY_LENGTH - 1] + "\u2026"
    return {
        "start": start,
        "end": start + len(link),
        "url": link,
        "expanded_url": expanded,
        "display_url": display,
    }


def _tco(target: str) -> str:
    code = hashlib.sha256(target.encode()).hexdigest()[:10]
    return f"https://t.co/{code}"
