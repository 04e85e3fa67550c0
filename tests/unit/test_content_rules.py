"""Content rules: what each targeted platform accepts, checked when the post is written."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from domain.content_rules import (
    INSTAGRAM_MAX_HASHTAGS,
    MAX_MEDIA,
    MAX_THREAD_PARTS,
    X_MAX_MEDIA,
    Violation,
    check_post_content,
    require_valid_content,
)
from domain.errors import InvalidField
from domain.text import x_weighted_length

IMAGE = "https://cdn.example.com/uploads/photo.jpg"
VIDEO = "https://cdn.example.com/uploads/clip.mp4"


def check(
    content: str = "hello",
    *,
    thread: list[str] | None = None,
    media: list[str] | None = None,
    providers: Iterable[str] = (),
) -> list[Violation]:
    return check_post_content(
        content=content, thread=thread or [], media_urls=media or [], providers=providers
    )


def fields(violations: list[Violation]) -> list[str]:
    return [v.field for v in violations]


# --- shape, whatever the platform ---------------------------------------------------------


@pytest.mark.parametrize("content", ["", "   \n\t"], ids=["empty", "blank"])
def test_empty_content_without_media_is_refused(content: str) -> None:
    assert check(content) == [
        Violation("content", "content must not be empty unless media is attached")
    ]


def test_empty_content_with_media_is_allowed() -> None:
    assert check("", media=[IMAGE]) == []
    assert check("", media=[IMAGE], providers=["twitter", "instagram"]) == []


def test_a_thread_of_24_parts_is_allowed_and_25_is_refused() -> None:
    assert check(thread=["part"] * MAX_THREAD_PARTS) == []
    assert check(thread=["part"] * (MAX_THREAD_PARTS + 1)) == [
        Violation("thread", "a thread has at most 24 parts")
    ]


def test_an_empty_thread_part_is_named_by_its_index() -> None:
    assert check(thread=["one", "  ", "three", ""]) == [
        Violation("thread[1]", "thread parts must not be empty"),
        Violation("thread[3]", "thread parts must not be empty"),
    ]


def test_more_than_ten_media_is_refused_for_any_platform() -> None:
    assert check(media=[IMAGE] * MAX_MEDIA) == []
    assert fields(check(media=[IMAGE] * (MAX_MEDIA + 1))) == ["mediaUrls"]


@pytest.mark.parametrize(
    "bad_url",
    ["ftp://x", "not a url", "https://nohost/a.jpg", "https://a.example.com/" + "p" * 2048],
    ids=["ftp", "words", "no-dot-host", "too-long"],
)
def test_an_invalid_media_url_is_named_by_its_index(bad_url: str) -> None:
    assert check(media=[IMAGE, bad_url]) == [
        Violation("mediaUrls[1]", "must be an absolute http(s) URL")
    ]


def test_every_invalid_media_url_is_reported_in_order() -> None:
    assert fields(check(media=["ftp://x", IMAGE, "not a url"])) == ["mediaUrls[0]", "mediaUrls[2]"]


# --- X ---------------------------------------------------------------------------------------


def test_x_allows_280_weighted_characters() -> None:
    assert check("a" * 280, providers=["twitter"]) == []


def test_x_refuses_281_weighted_characters_naming_content() -> None:
    violations = check("a" * 281, providers=["twitter"])

    assert fields(violations) == ["content"]
    assert "X allows 280 characters per post; this one counts 281" in violations[0].message


def test_x_names_the_long_thread_part() -> None:
    violations = check("first", thread=["second", "a" * 281], providers=["twitter"])
    violations_third = check("first", thread=["second", "third", "字" * 141], providers=["twitter"])

    assert fields(violations) == ["thread[1]"]
    assert fields(violations_third) == ["thread[2]"]
    assert "this one counts 282" in violations_third[0].message


def test_x_counts_a_url_as_23_so_a_300_character_post_with_a_link_fits() -> None:
    content = "a" * 250 + " https://example.com/" + "p" * 29
    assert len(content) == 300
    assert x_weighted_length(content) == 274  # 250 + 1 + 23

    assert check(content, providers=["twitter"]) == []


def test_x_allows_four_media_and_refuses_five() -> None:
    assert check(media=[IMAGE] * X_MAX_MEDIA, providers=["twitter"]) == []
    assert check(media=[IMAGE] * (X_MAX_MEDIA + 1), providers=["twitter"]) == [
        Violation("mediaUrls", "X allows at most 4 media per post")
    ]


def test_two_x_accounts_report_a_violation_once() -> None:
    assert fields(check("a" * 281, providers=["twitter", "twitter"])) == ["content"]


# --- Instagram -------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["instagram", "instagram-facebook"])
def test_instagram_without_an_image_or_video_is_refused(provider: str) -> None:
    violations = check("caption", media=["https://cdn.example.com/doc.pdf"], providers=[provider])

    assert fields(violations) == ["mediaUrls"]
    assert "caption-only" in violations[0].message


@pytest.mark.parametrize("media", [IMAGE, VIDEO, "https://cdn.example.com/P.JPG?sig=1"])
def test_instagram_with_an_image_or_video_is_fine(media: str) -> None:
    assert check("caption", media=[media], providers=["instagram"]) == []


def test_instagram_caption_limit() -> None:
    assert check("a" * 2200, media=[IMAGE], providers=["instagram"]) == []
    assert check("a" * 2201, media=[IMAGE], providers=["instagram"]) == [
        Violation("content", "Instagram captions are at most 2200 characters")
    ]


def test_instagram_hashtag_limit() -> None:
    thirty = " ".join(f"#tag{i}" for i in range(INSTAGRAM_MAX_HASHTAGS))
    thirty_one = f"{thirty} #one_more"

    assert check(thirty, media=[IMAGE], providers=["instagram"]) == []
    assert check(thirty_one, media=[IMAGE], providers=["instagram"]) == [
        Violation("content", "Instagram allows at most 30 hashtags")
    ]


def test_a_hash_inside_a_word_is_not_a_hashtag() -> None:
    content = " ".join(["issue#1"] * 40)
    assert check(content, media=[IMAGE], providers=["instagram"]) == []


# --- TikTok ----------------------------------------------------------------------------------


def test_tiktok_without_a_video_is_refused() -> None:
    assert check("clip", media=[IMAGE], providers=["tiktok"]) == [
        Violation("mediaUrls", "TikTok is video-first: attach a video (MP4 or MOV) to post there")
    ]


def test_tiktok_with_an_mp4_is_fine() -> None:
    assert check("clip", media=[VIDEO], providers=["tiktok"]) == []


# --- rules apply only to targeted platforms ------------------------------------------------


def test_a_400_character_post_to_instagram_only_is_fine() -> None:
    content = "a" * 400
    assert check(content, media=[IMAGE], providers=["instagram"]) == []
    assert fields(check(content, media=[IMAGE], providers=["instagram", "twitter"])) == ["content"]


def test_no_platform_rules_without_providers_or_for_unknown_ones() -> None:
    assert check("a" * 400, media=[IMAGE] * 6, providers=[]) == []
    assert check("a" * 400, media=[IMAGE] * 6, providers=["linkedin"]) == []


def test_shape_violations_come_first_then_each_platform_in_order() -> None:
    violations = check("hi", thread=[""], media=["ftp://x"], providers=["instagram", "tiktok"])

    assert fields(violations) == ["thread[0]", "mediaUrls[0]", "mediaUrls", "mediaUrls"]
    assert "Instagram" in violations[2].message
    assert "TikTok" in violations[3].message


# --- require_valid_content ---------------------------------------------------------------


def test_require_valid_content_raises_the_first_violation() -> None:
    with pytest.raises(InvalidField) as refused:
        require_valid_content(
            content="a" * 281,
            thread=["ok", ""],
            media_urls=[],
            providers=["twitter"],
        )
    assert refused.value.field == "thread[1]"
    assert refused.value.message == "thread parts must not be empty"


def test_require_valid_content_names_the_x_field() -> None:
    with pytest.raises(InvalidField) as refused:
        require_valid_content(content="a" * 281, thread=[], media_urls=[], providers=["twitter"])
    assert refused.value.field == "content"


def test_require_valid_content_accepts_valid_content() -> None:
    require_valid_content(
        content="hello", thread=["and more"], media_urls=[VIDEO], providers=["twitter", "tiktok"]
    )


def test_nul_characters_are_refused_in_every_text_field() -> None:
    violations = check_post_content(
        content="a\x00", thread=["ok", "b\x00"], media_urls=["https://e.com/\x00.jpg"], providers=[]
    )
    assert [v.field for v in violations][:3] == ["content", "thread[1]", "mediaUrls[0]"]
