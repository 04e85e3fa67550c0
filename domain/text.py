"""X (Twitter) weighted character counting (twitter-text v3) and media-URL helpers.

Standard library only. Mirrors twitter-text's ``parseTweet`` with the v3 config:

* the text is NFC-normalised first;
* every URL (with an ``http(s)://`` scheme, or a bare domain ending in a known TLD)
  counts ``transformedURLLength`` = 23, whatever its real length;
* every emoji -- including ZWJ sequences, skin-tone modifiers, keycaps, flags
  (regional-indicator pairs), tag sequences and variation selectors -- counts
  ``defaultWeight`` once (= 2);
* any other code point weighs 100 (= 1) inside the configured ranges, 200 (= 2) outside.

Simplifications vs. twitter-text (checked against its conformance suite: all weighted-
length cases pass, and all Unicode 12 fully-qualified emoji are single emoji): the bare-
domain TLD list is a common subset (twitter-text knows ~1,500, e.g. ``hello.world`` is
a URL there but not here), hosts after an explicit scheme may end in any alphabetic TLD,
any ZWJ chain of up to 4 pictographs counts as one emoji, and bare domains with a
non-ASCII TLD are not recognised.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

X_MAX_WEIGHTED_LENGTH = 280

# twitter-text config v3
_SCALE = 100
_DEFAULT_WEIGHT = 200
_TRANSFORMED_URL_LENGTH = 23
_RANGES: tuple[tuple[int, int, int], ...] = (
    (0, 4351, 100),
    (8192, 8205, 100),
    (8208, 8223, 100),
    (8242, 8247, 100),
)
_MAX_URL_LENGTH = 4096  # longer "URLs" are counted character by character
_MAX_LABEL_LENGTH = 63  # per DNS label, after punycode encoding
_MAX_TCO_SLUG_LENGTH = 40

# --- emoji -------------------------------------------------------------------------
# Extended_Pictographic, approximated by ranges. Over-inclusion is harmless: any code
# point outside the weight-1 ranges weighs 2 anyway, exactly what one emoji costs.
_PICTO = (
    "\u203c\u2049\u2139\u2194-\u2199\u21a9\u21aa\u231a\u231b\u2328\u23cf\u23e9-\u23f3"
    "\u23f8-\u23fa\u24c2\u25aa\u25ab\u25b6\u25c0\u25fb-\u25fe\u2600-\u27bf\u2934\u2935"
    "\u2b05-\u2b07\u2b1b\u2b1c\u2b50\u2b55\u3030\u303d\u3297\u3299\U0001f000-\U0001faff"
)
# One element: a pictograph (not in text presentation, i.e. not followed by U+FE0E),
# an optional tag sequence (subdivision flags), VS16 and a skin-tone modifier; or one
# of the text-default symbols (c) (r) (tm) that only become emoji with an explicit VS16.
_EMOJI_ELEMENT = (
    f"(?:[{_PICTO}](?:[\U000e0020-\U000e007e]{{1,8}}\U000e007f)?(?!\ufe0e)\ufe0f?"
    "[\U0001f3fb-\U0001f3ff]?|[\u00a9\u00ae\u2122]\ufe0f)"
)
_EMOJI_RE = re.compile(
    "[\U0001f1e6-\U0001f1ff]{2}"  # flag = regional-indicator pair
    "|[#*0-9]\ufe0f?\u20e3"  # keycap
    # ZWJ sequence (or a single emoji); real ones join at most 4 elements, so a longer
    # chain is several emoji, as twitter-text (which only knows the real ones) counts it.
    f"|{_EMOJI_ELEMENT}(?:\u200d{_EMOJI_ELEMENT}){{0,3}}"
    "|\ufe0f"  # stray VS16
)

# --- URLs --------------------------------------------------------------------------
_GTLDS = (  # common generic TLDs (twitter-text knows ~1,500)
    "com net org edu gov mil int info biz name pro aero asia cat coop jobs mobi museum tel "
    "travel app dev page blog shop store online site tech website space xyz club top live "
    "news cloud design art social media agency studio digital email link today life "
    "network solutions services group company center academy games fun icu vip wiki "
    "video music photo photos inc ltd llc gmbh"
)
_CCTLDS = (
    "ac ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bl bm "
    "bn bo bq br bs bt bv bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy "
    "cz de dj dk dm do dz ec ee eg eh er es et eu fi fj fk fm fo fr ga gb gd ge gf gg gh "
    "gi gl gm gn gp gq gr gs gt gu gw gy hk hm hn hr ht hu id ie il im in io iq ir is it "
    "je jm jo jp ke kg kh ki km kn kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc "
    "md me mf mg mh mk ml mm mn mo mp mq mr ms mt mu mv mw mx my mz na nc ne nf ng ni nl "
    "no np nr nu nz om pa pe pf pg ph pk pl pm pn pr ps pt pw py qa re ro rs ru rw sa sb "
    "sc sd se sg sh si sj sk sl sm sn so sr ss st su sv sx sy sz tc td tf tg th tj tk tl "
    "tm tn to tr tt tv tw tz ua ug uk um us uy uz va vc ve vg vi vn vu wf ws ye yt za zm "
    "zw"
)
_TLD_ALT = "|".join(sorted({*_GTLDS.split(), *_CCTLDS.split()}, key=lambda t: (-len(t), t)))

_LETTERS = "\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u0300-\u036f\u1e00-\u1eff\u0400-\u052f"
_PATH_CHAR = f"[a-z0-9!*';:=+,.$/%#\\[\\]\\-\u2013_~@|&{_LETTERS}]"
_PARENS = f"\\((?:{_PATH_CHAR}+|{_PATH_CHAR}*\\({_PATH_CHAR}+\\){_PATH_CHAR}*)\\)"
# A path never ends in punctuation such as . , ! ? : ; or an unbalanced ")".
_PATH_END = f"(?:[+\\-a-z0-9=_#/{_LETTERS}]|{_PARENS})"
_PATH = f"(?:{_PATH_CHAR}*(?:{_PARENS}{_PATH_CHAR}*)*{_PATH_END}|@{_PATH_CHAR}+/)"
_QUERY = r"\?[a-z0-9!?*'@();:&=+$/%#\[\]\-_.,~|]*[a-z0-9\-_&=#/]"

# Host after a scheme: sub-domain labels may hold "_" and "-" (not at either end), the
# domain name only inner "-"; the TLD may be any alphabetic (or punycode) label.
_SCHEME_HOST = (
    r"(?:[^\W_](?:[\w-]*[^\W_])?\.)*[^\W_](?:-*[^\W_])*\."
    r"(?:xn--[a-z0-9-]+|[a-z]{2,63}|[^\W\d_a-z]{2,})(?!_)"
)
_URL_RE = re.compile(
    "(?<![a-z0-9@$#\uff20\uff03])(?:"
    f"(?P<scheme>https?://)(?P<host>{_SCHEME_HOST})"
    # bare domain: ASCII(-ish) labels ending in a known TLD, not glued to - _ . /
    f"|(?<![-_./])(?P<bare>(?:[a-z0-9{_LETTERS}-]+\\.)+(?:{_TLD_ALT}))"
    ")(?![a-z0-9@+-])"
    f"(?::[0-9]+)?(?P<path>/{_PATH}*)?(?:{_QUERY})?",
    re.IGNORECASE,
)
# t.co links end after their slug (at most 40 characters) and optional query.
_TCO_RE = re.compile(f"https?://t\\.co/([a-z0-9]+)(?:{_QUERY})?", re.IGNORECASE)


def _ascii_host_length(host: str) -> int | None:
    """Length of the punycode form of ``host``; None if some label is empty or too long."""
    total = len(host.split(".")) - 1
    for label in host.split("."):
        if label[:4].lower() == "xn--" and not label.isascii():
            return None
        encoded = label if label.isascii() else "xn--" + label.encode("punycode").decode()
        if not 0 < len(encoded) <= _MAX_LABEL_LENGTH:
            return None
        total += len(encoded)
    return total


def _url_spans(text: str) -> dict[int, int]:
    """Start -> end offsets of the URLs in ``text`` (twitter-text ``extractUrls`` rules)."""
    spans: dict[int, int] = {}
    for match in _URL_RE.finditer(text):
        scheme, host = match["scheme"], match["host"] or match["bare"]
        ascii_length = _ascii_host_length(host)
        if ascii_length is None:
            continue
        start, end = match.span()
        url_length = len(scheme or "https://") + end - start + ascii_length - len(host)
        if url_length > _MAX_URL_LENGTH:
            continue
        if scheme is None and not match["path"]:
            end = match.end("bare")  # a query without a path is not part of the URL
        elif scheme and host.lower() == "t.co" and (tco := _TCO_RE.match(text, start)):
            if len(tco[1]) > _MAX_TCO_SLUG_LENGTH:
                continue
            end = tco.end()
        spans[start] = end
    return spans


def _char_weight(char: str) -> int:
    code_point = ord(char)
    for low, high, weight in _RANGES:
        if low <= code_point <= high:
            return weight
    return _DEFAULT_WEIGHT


def x_weighted_length(text: str) -> int:
    """Weighted length of ``text`` as X counts it (limit: ``X_MAX_WEIGHTED_LENGTH``)."""
    normalized = unicodedata.normalize("NFC", text)
    urls = _url_spans(normalized)
    total = 0
    index = 0
    while index < len(normalized):
        if index in urls:
            total += _TRANSFORMED_URL_LENGTH * _SCALE
            index = urls[index]
        elif emoji := _EMOJI_RE.match(normalized, index):
            total += _DEFAULT_WEIGHT
            index = emoji.end()
        else:
            total += _char_weight(normalized[index])
            index += 1
    return total // _SCALE


# --- media URLs --------------------------------------------------------------------
_VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".webm"})
_IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".heic"})


def _path_extension(url: str) -> str:
    """Lower-cased extension of the URL's path (query string and fragment ignored)."""
    try:
        path = urlsplit(url.strip()).path
    except ValueError:
        return ""
    return PurePosixPath(unquote(path)).suffix.lower()


def is_video_url(url: str) -> bool:
    """True if the URL's path ends in .mp4, .mov, .m4v or .webm (case-insensitive)."""
    return _path_extension(url) in _VIDEO_EXTENSIONS


def is_image_url(url: str) -> bool:
    """True if the URL's path ends in .jpg, .jpeg, .png, .webp, .gif or .heic."""
    return _path_extension(url) in _IMAGE_EXTENSIONS
