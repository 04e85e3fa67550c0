"""X (Twitter) weighted length (twitter-text v3) and media-URL helpers in domain.text."""

from __future__ import annotations

import pytest

from domain.text import X_MAX_WEIGHTED_LENGTH, is_image_url, is_video_url, x_weighted_length

ZWJ = "\u200d"
VS16 = "\ufe0f"
FAMILY = ZWJ.join(["\U0001f468", "\U0001f469", "\U0001f467", "\U0001f466"])  # man woman girl boy
LONG_URL = "https://example.com/articles/2024/" + "a" * 200 + "?utm_source=kairos&x=1"


# --- plain text --------------------------------------------------------------------


def test_limit_is_280() -> None:
    assert X_MAX_WEIGHTED_LENGTH == 280


def test_plain_ascii_at_and_over_the_limit() -> None:
    assert x_weighted_length("a" * 280) == 280
    assert x_weighted_length("a" * 280) <= X_MAX_WEIGHTED_LENGTH
    assert x_weighted_length("a" * 281) == 281
    assert x_weighted_length("a" * 281) > X_MAX_WEIGHTED_LENGTH


def test_empty_text_is_zero() -> None:
    assert x_weighted_length("") == 0


def test_cjk_counts_two_each() -> None:
    assert x_weighted_length("日本語") == 6
    assert x_weighted_length("the故人西辞") == 3 + 4 * 2
    assert x_weighted_length("한국어") == 6
    assert x_weighted_length("字" * 140) == 280
    assert x_weighted_length("字" * 141) == 282


def test_latin1_and_other_scripts_below_u1100_weigh_one() -> None:
    assert x_weighted_length("àéîõüñçß") == 8
    assert x_weighted_length("Привет") == 6  # Cyrillic
    assert x_weighted_length("שלום") == 4  # Hebrew
    assert x_weighted_length(chr(4351)) == 1  # last code point of the first range
    assert x_weighted_length(chr(4352)) == 2  # first one after it


def test_typographic_punctuation_ranges() -> None:
    assert x_weighted_length("\u201cquoted\u201d") == 8  # double curly quotes (8220, 8221)
    assert x_weighted_length("\u2018it\u2019s\u2019") == 6  # single curly quotes (8216/8217)
    assert x_weighted_length("\u2010\u2013\u2014\u201f") == 4  # 8208..8223
    assert x_weighted_length("\u2002\u2009\u200d") == 3  # spaces and ZWJ in 8192..8205
    assert x_weighted_length("\u2032\u2033\u2037") == 3  # primes in 8242..8247
    assert x_weighted_length("\u2026") == 2  # ellipsis (8230) is outside every range
    assert x_weighted_length("\u2020") == 2  # dagger (8224) just past 8208..8223
    assert x_weighted_length("\u20ac") == 2  # euro sign


def test_text_is_nfc_normalised_first() -> None:
    decomposed = "Cafe\u0301 cre\u0300me"  # e + combining acute / grave
    assert x_weighted_length(decomposed) == 10
    assert x_weighted_length(decomposed) == x_weighted_length("Café crème")
    # A combining mark with no precomposed form still counts on its own.
    assert x_weighted_length("q\u0301") == 2


# --- emoji -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("\U0001f637", 2, id="single-emoji"),
        pytest.param("\U0001f637\U0001f47e\U0001f621\U0001f525\U0001f4a9", 10, id="five-emoji"),
        pytest.param("\U0001f44b\U0001f3fd", 2, id="skin-tone-modifier"),
        pytest.param(FAMILY, 2, id="zwj-family"),
        pytest.param(FAMILY * 140, 280, id="140-families"),
        pytest.param("\U0001f1ef\U0001f1f5", 2, id="flag-jp"),
        pytest.param("\U0001f1fa\U0001f1f8\U0001f1ec\U0001f1e7", 4, id="two-flags"),
        pytest.param("1" + VS16 + "\u20e3", 2, id="keycap"),
        pytest.param("#\u20e3", 2, id="keycap-without-vs16"),
        pytest.param("\u2764" + VS16, 2, id="heart-with-vs16"),
        pytest.param("\U0001f3f3" + VS16 + ZWJ + "\U0001f308", 2, id="rainbow-flag"),
        pytest.param(
            "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
            2,
            id="england-tag-sequence",
        ),
        pytest.param("\u263a" + "\ufe0e", 4, id="text-presentation-is-not-emoji"),
        pytest.param("\u00a9", 1, id="copyright-sign-is-latin1"),
        pytest.param("\u00a9" + VS16, 2, id="copyright-emoji"),
        pytest.param("H\U0001f431\u263a" + FAMILY, 7, id="conformance-mix"),
        pytest.param("Unicode 9.0 emoji: \U0001f920; \U0001f483; \U0001f483\U0001f3fe", 29),
    ],
)
def test_emoji_count_two_each(text: str, expected: int) -> None:
    assert x_weighted_length(text) == expected


def test_overlong_zwj_chain_is_not_one_emoji() -> None:
    # Real ZWJ sequences join at most four emoji; a longer chain must not count as 2.
    chain = ZWJ.join(["\U0001f468"] * 8)
    assert x_weighted_length(chain) == 2 + 1 + 2  # two 4-element runs joined by a ZWJ


# --- URLs --------------------------------------------------------------------------


def test_long_url_counts_23() -> None:
    assert len(LONG_URL) > 200
    assert x_weighted_length(LONG_URL) == 23
    assert x_weighted_length("Read this: " + LONG_URL) == 11 + 23


def test_short_url_also_counts_23() -> None:
    assert x_weighted_length("http://t.co") == 23
    assert x_weighted_length("Hi http://test.co") == 26


def test_two_urls() -> None:
    text = f"{LONG_URL} and http://example.org/x"
    assert x_weighted_length(text) == 23 + 5 + 23


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Read https://example.com/page.", 5 + 23 + 1, id="period"),
        pytest.param("See https://example.com/a, then", 4 + 23 + 6, id="comma"),
        pytest.param("(see https://example.com/a)", 1 + 4 + 23 + 1, id="closing-paren"),
        pytest.param("Wow https://example.com!", 4 + 23 + 1, id="exclamation"),
        pytest.param("Seen https://example.com/q?a=1?", 5 + 23 + 1, id="question-mark"),
        pytest.param("https://example.com.", 23 + 1, id="period-after-host"),
        pytest.param("https://en.wikipedia.org/wiki/Film_(1999)", 23, id="balanced-parens"),
    ],
)
def test_trailing_punctuation_is_not_part_of_the_url(text: str, expected: int) -> None:
    assert x_weighted_length(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("example.com", 23, id="gtld"),
        pytest.param("Visit www.example.co.uk/path/to/page today", 6 + 23 + 6, id="cctld-path"),
        pytest.param("docs at kairos.io.", 8 + 23 + 1, id="cctld-period"),
        pytest.param("EXAMPLE.ORG/About", 23, id="upper-case"),
    ],
)
def test_bare_domains_count_23(text: str, expected: int) -> None:
    assert x_weighted_length(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("hello.world", id="unknown-tld"),
        pytest.param("readme.txt", id="file-name"),
        pytest.param("version 3.14", id="number"),
        pytest.param("e.g. this", id="abbreviation"),
        pytest.param("mail user@example.com", id="email"),
        pytest.param("a/example.com", id="glued-to-slash"),
    ],
)
def test_dotted_words_that_are_not_urls_count_per_character(text: str) -> None:
    assert x_weighted_length(text) == len(text)


def test_url_with_overlong_domain_label_counts_per_character() -> None:
    domain = "x" * 64 + ".com"  # DNS labels are at most 63 characters
    assert x_weighted_length(domain) == 68
    assert x_weighted_length("x" * 63 + ".com") == 23


def test_url_next_to_cjk() -> None:
    assert x_weighted_length("見て https://example.com/a 今") == 4 + 1 + 23 + 1 + 2


# --- media helpers -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example.com/v/clip.mp4",
        "https://cdn.example.com/v/CLIP.MP4?sig=abc&exp=1",
        "https://cdn.example.com/v/clip.mov#t=10",
        "https://cdn.example.com/clip.m4v",
        "http://cdn.example.com/a/b/clip.WebM",
    ],
)
def test_is_video_url_true(url: str) -> None:
    assert is_video_url(url) is True
    assert is_image_url(url) is False


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example.com/p/photo.jpg",
        "https://cdn.example.com/p/photo.JPEG?w=1080",
        "https://cdn.example.com/p/photo.png",
        "https://cdn.example.com/p/photo.webp",
        "https://cdn.example.com/p/anim.gif",
        "https://cdn.example.com/p/IMG_0001.HEIC",
    ],
)
def test_is_image_url_true(url: str) -> None:
    assert is_image_url(url) is True
    assert is_video_url(url) is False


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/watch",
        "https://example.com/clip.mp4.html",
        "https://example.com/download?file=clip.mp4",
        "https://example.com/page#photo.jpg",
        "https://clip.mp4",
        "https://example.com/archive.tar.gz",
        "",
    ],
)
def test_other_urls_are_neither_video_nor_image(url: str) -> None:
    assert is_video_url(url) is False
    assert is_image_url(url) is False
