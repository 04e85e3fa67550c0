"""Media rules: what each platform accepts of an attached file, checked when a post is written."""

from __future__ import annotations

import pytest

from domain import content_rules
from domain.content_rules import check_post_content, require_valid_content
from domain.errors import InvalidField
from domain.media import (
    ALLOWED_UPLOAD_TYPES,
    GB,
    INSTAGRAM_NEEDS_MEDIA,
    MAX_UPLOAD_BYTES,
    MB,
    TIKTOK_NEEDS_VIDEO,
    MediaInfo,
    media_violations,
    upload_violation,
)
from domain.violations import Violation

URL = "https://cdn.example.com/media/0b6f"


def image(
    content_type: str = "image/jpeg",
    size: int = MB,
    width: int | None = 1080,
    height: int | None = 1080,
) -> MediaInfo:
    return MediaInfo(URL, content_type, size, width, height)


def gif(size: int = MB, width: int | None = 480, height: int | None = 480) -> MediaInfo:
    return MediaInfo(URL, "image/gif", size, width, height)


def video(
    content_type: str = "video/mp4",
    size: int = 10 * MB,
    width: int | None = 1280,
    height: int | None = 720,
    duration_ms: int | None = 10_000,
) -> MediaInfo:
    return MediaInfo(URL, content_type, size, width, height, duration_ms)


def messages(provider: str, *media: MediaInfo) -> list[str]:
    return [violation.message for violation in media_violations(provider, media)]


def fields(provider: str, *media: MediaInfo) -> list[str]:
    return [violation.field for violation in media_violations(provider, media)]


# --- kinds -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("image/jpeg", "image"),
        ("image/heic", "image"),
        ("image/gif", "gif"),
        ("Image/GIF; charset=binary", "gif"),
        ("video/mp4", "video"),
        ("video/quicktime", "video"),
        ("application/pdf", "other"),
        ("", "other"),
    ],
)
def test_the_kind_follows_the_content_type(content_type: str, kind: str) -> None:
    assert MediaInfo(URL, content_type, 1).kind == kind


def test_providers_without_media_rules_accept_anything() -> None:
    assert media_violations("linkedin", [MediaInfo(URL, "application/pdf", 10 * GB)]) == []


# --- X ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png", "image/webp"])
def test_x_takes_images_up_to_5_mb(content_type: str) -> None:
    assert messages("twitter", image(content_type, size=5 * MB)) == []
    assert messages("twitter", image(content_type, size=5 * MB + 1)) == [
        "X accepts images up to 5 MB; this one is 5.1 MB"
    ]


def test_x_names_the_actual_size_of_an_oversized_image() -> None:
    assert media_violations("twitter", [image(size=int(7.2 * MB))]) == [
        Violation("mediaUrls[0]", "X accepts images up to 5 MB; this one is 7.2 MB")
    ]


def test_x_takes_gifs_up_to_15_mb() -> None:
    assert messages("twitter", gif(size=15 * MB)) == []
    assert messages("twitter", gif(size=15 * MB + 1)) == [
        "X accepts GIFs up to 15 MB; this one is 15.1 MB"
    ]


@pytest.mark.parametrize("content_type", ["video/mp4", "video/quicktime"])
def test_x_takes_videos_up_to_512_mb(content_type: str) -> None:
    assert messages("twitter", video(content_type, size=512 * MB)) == []
    assert messages("twitter", video(content_type, size=512 * MB + 1)) == [
        "X accepts videos up to 512 MB; this one is 512.1 MB"
    ]


@pytest.mark.parametrize(
    ("duration_ms", "ok"), [(499, False), (500, True), (140_000, True), (140_001, False)]
)
def test_x_takes_videos_from_half_a_second_to_140_seconds(duration_ms: int, ok: bool) -> None:
    found = messages("twitter", video(duration_ms=duration_ms))
    expected = (
        "X accepts videos from 0.5 seconds to 140 seconds long; "
        f"this one is {duration_ms / 1000:g} seconds"
    )
    assert found == ([] if ok else [expected])


@pytest.mark.parametrize(
    ("width", "height", "ok"),
    [
        (32, 32, True),
        (31, 32, False),
        (32, 31, False),
        (1280, 1024, True),
        (1281, 1024, False),
        (1280, 1025, False),
        (1080, 1920, False),  # portrait phone video: taller than X's documented 1024
    ],
)
def test_x_takes_videos_from_32x32_to_1280x1024(width: int, height: int, ok: bool) -> None:
    found = messages("twitter", video(width=width, height=height))
    assert found == (
        []
        if ok
        else [f"X accepts videos from 32x32 to 1280x1024 pixels; this one is {width}x{height}"]
    )


@pytest.mark.parametrize(
    ("width", "height", "ok"),
    [(96, 32, True), (97, 32, False), (32, 96, True), (32, 97, False)],
)
def test_x_takes_video_aspect_ratios_from_1_3_to_3_1(width: int, height: int, ok: bool) -> None:
    found = messages("twitter", video(width=width, height=height))
    if ok:
        assert found == []
    else:
        assert len(found) == 1
        assert found[0].startswith("X accepts videos with an aspect ratio from 1:3 to 3:1; ")
        assert f"this one is {width}x{height}" in found[0]


def test_x_skips_what_the_probe_could_not_read() -> None:
    unknown = video(width=None, height=None, duration_ms=None)
    assert messages("twitter", unknown) == []
    assert messages("twitter", video(width=5000, height=None, duration_ms=None)) == []


@pytest.mark.parametrize(
    ("content_type", "shown"),
    [("image/heic", "HEIC"), ("video/webm", "WebM"), ("application/pdf", "application/pdf")],
)
def test_x_names_a_type_it_does_not_take(content_type: str, shown: str) -> None:
    assert media_violations("twitter", [MediaInfo(URL, content_type, 1)]) == [
        Violation(
            "mediaUrls[0]",
            f"X accepts JPEG, PNG or WebP images, GIFs and MP4 or MOV videos; this one is {shown}",
        )
    ]


def test_x_takes_up_to_four_images() -> None:
    assert messages("twitter", *[image()] * 4) == []
    assert media_violations("twitter", [image()] * 5) == [
        Violation("mediaUrls", "X allows at most 4 images per post; this post has 5")
    ]


def test_x_takes_exactly_one_gif_or_one_video() -> None:
    assert messages("twitter", gif()) == []
    assert messages("twitter", video()) == []
    assert media_violations("twitter", [gif(), gif()]) == [
        Violation(
            "mediaUrls",
            "X takes up to 4 images, or exactly 1 GIF, or exactly 1 video per post, "
            "never a mix; this post has 2 GIFs",
        )
    ]


@pytest.mark.parametrize(
    ("media", "has"),
    [
        ([image(), video()], "1 image and 1 video"),
        ([gif(), image(), image()], "2 images and 1 GIF"),
        ([video(), gif()], "1 GIF and 1 video"),
        ([video(), video()], "2 videos"),
    ],
)
def test_x_never_mixes_media_kinds(media: list[MediaInfo], has: str) -> None:
    assert fields("twitter", *media) == ["mediaUrls"]
    assert messages("twitter", *media)[0].endswith(f"never a mix; this post has {has}")


def test_x_reports_each_file_by_index_then_the_set() -> None:
    found = fields("twitter", image(), image(size=6 * MB), image(), video(duration_ms=200_000))
    assert found == ["mediaUrls[1]", "mediaUrls[3]", "mediaUrls"]


# --- Instagram -------------------------------------------------------------------------------

INSTAGRAM = pytest.mark.parametrize("provider", ["instagram", "instagram-facebook"])


@INSTAGRAM
def test_instagram_needs_at_least_one_image_or_video(provider: str) -> None:
    assert media_violations(provider, []) == [Violation("mediaUrls", INSTAGRAM_NEEDS_MEDIA)]
    assert "caption-only" in INSTAGRAM_NEEDS_MEDIA
    assert fields(provider, MediaInfo(URL, "application/pdf", 1)) == ["mediaUrls[0]", "mediaUrls"]


@INSTAGRAM
def test_instagram_takes_jpeg_images_up_to_8_mb(provider: str) -> None:
    assert messages(provider, image(size=8 * MB)) == []
    assert messages(provider, image(size=8 * MB + 1)) == [
        "Instagram accepts images up to 8 MB; this one is 8.1 MB"
    ]


@INSTAGRAM
@pytest.mark.parametrize(
    ("content_type", "shown"),
    [("image/png", "PNG"), ("image/webp", "WebP"), ("image/heic", "HEIC")],
)
def test_instagram_asks_for_other_images_to_be_converted_to_jpeg(
    provider: str, content_type: str, shown: str
) -> None:
    assert media_violations(provider, [image(content_type)]) == [
        Violation(
            "mediaUrls[0]",
            f"Instagram accepts only JPEG images; convert this {shown} to JPEG before scheduling",
        )
    ]


@INSTAGRAM
def test_instagram_refuses_gifs(provider: str) -> None:
    found = media_violations(provider, [gif()])
    assert [v.field for v in found] == ["mediaUrls[0]", "mediaUrls"]
    assert found[0].message.startswith("Instagram does not accept GIFs")


@INSTAGRAM
@pytest.mark.parametrize(
    ("width", "height", "ok"),
    [(1080, 1350, True), (1080, 1351, False), (1910, 1000, True), (1911, 1000, False)],
    ids=["4:5", "taller", "1.91:1", "wider"],
)
def test_instagram_images_are_between_4_5_and_1_91_1(
    provider: str, width: int, height: int, ok: bool
) -> None:
    found = messages(provider, image(width=width, height=height))
    if ok:
        assert found == []
    else:
        assert len(found) == 1
        assert found[0].startswith(
            "Instagram accepts images with an aspect ratio from 4:5 to 1.91:1; "
            f"this one is {width}x{height} ("
        )


@INSTAGRAM
@pytest.mark.parametrize("content_type", ["video/mp4", "video/quicktime"])
def test_instagram_takes_videos_up_to_300_mb(provider: str, content_type: str) -> None:
    assert messages(provider, video(content_type, size=300 * MB)) == []
    assert messages(provider, video(content_type, size=300 * MB + 1)) == [
        "Instagram accepts videos up to 300 MB; this one is 300.1 MB"
    ]


@INSTAGRAM
@pytest.mark.parametrize(
    ("duration_ms", "shown"),
    [
        (2_999, "2.999 seconds"),
        (3_000, None),
        (900_000, None),
        (900_001, "15 minutes 0.001 seconds"),
    ],
)
def test_instagram_videos_last_3_seconds_to_15_minutes(
    provider: str, duration_ms: int, shown: str | None
) -> None:
    found = messages(provider, video(duration_ms=duration_ms))
    expected = f"Instagram accepts videos from 3 seconds to 15 minutes long; this one is {shown}"
    assert found == ([] if shown is None else [expected])


@INSTAGRAM
@pytest.mark.parametrize(
    ("width", "height", "ok"),
    [(10, 1000, True), (10, 1001, False), (1000, 100, True), (1001, 100, False)],
)
def test_instagram_videos_are_between_0_01_1_and_10_1(
    provider: str, width: int, height: int, ok: bool
) -> None:
    found = messages(provider, video(width=width, height=height))
    if ok:
        assert found == []
    else:
        assert len(found) == 1
        assert "aspect ratio from 0.01:1 to 10:1" in found[0]


@INSTAGRAM
def test_instagram_webm_is_not_a_reel(provider: str) -> None:
    assert messages(provider, video("video/webm")) == [
        "Instagram accepts JPEG images and MP4 or MOV videos; this one is WebM"
    ]


@INSTAGRAM
def test_instagram_carousels_hold_up_to_ten_items(provider: str) -> None:
    assert messages(provider, *[image(), video()] * 5) == []
    assert media_violations(provider, [image()] * 11) == [
        Violation("mediaUrls", "Instagram carousels hold at most 10 items; this post has 11")
    ]


@INSTAGRAM
def test_instagram_skips_what_the_probe_could_not_read(provider: str) -> None:
    assert messages(provider, image(width=None, height=None)) == []
    assert messages(provider, video(width=None, height=None, duration_ms=None)) == []


# --- TikTok ----------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["video/mp4", "video/quicktime", "video/webm"])
def test_tiktok_takes_a_video_up_to_4_gb(content_type: str) -> None:
    assert messages("tiktok", video(content_type, size=4 * GB)) == []
    assert messages("tiktok", video(content_type, size=4 * GB + 1)) == [
        "TikTok accepts videos up to 4 GB; this one is 4.1 GB"
    ]


@pytest.mark.parametrize(
    ("duration_ms", "shown"),
    [
        (2_999, "2.999 seconds"),
        (3_000, None),
        (600_000, None),
        (600_001, "10 minutes 0.001 seconds"),
    ],
)
def test_tiktok_videos_last_3_seconds_to_10_minutes(duration_ms: int, shown: str | None) -> None:
    found = messages("tiktok", video(duration_ms=duration_ms))
    expected = f"TikTok accepts videos from 3 seconds to 10 minutes long; this one is {shown}"
    assert found == ([] if shown is None else [expected])


@pytest.mark.parametrize(
    "media",
    [
        [],
        [image()],
        [image(), image("image/webp")],
        [gif()],
        [MediaInfo(URL, "video/x-msvideo", 1)],
    ],
    ids=["nothing", "photo", "photos", "gif", "avi"],
)
def test_tiktok_is_video_first(media: list[MediaInfo]) -> None:
    assert media_violations("tiktok", media) == [Violation("mediaUrls", TIKTOK_NEEDS_VIDEO)]
    assert TIKTOK_NEEDS_VIDEO == "TikTok is video-first: attach a video (MP4 or MOV) to post there"


def test_tiktok_posts_carry_one_video_and_nothing_else() -> None:
    assert media_violations("tiktok", [image(), video()]) == [
        Violation(
            "mediaUrls",
            "TikTok posts carry exactly one video and nothing else; this post has 2 media items",
        )
    ]


def test_tiktok_names_the_video_by_its_index() -> None:
    assert fields("tiktok", image(), video(duration_ms=1_000)) == ["mediaUrls[1]", "mediaUrls"]


def test_tiktok_skips_an_unknown_duration() -> None:
    assert messages("tiktok", video(duration_ms=None, width=None, height=None)) == []


# --- in the content rules --------------------------------------------------------------------


def check(media_urls: list[str], media: list[MediaInfo] | None, *providers: str) -> list[Violation]:
    return check_post_content(
        content="hello", thread=[], media_urls=media_urls, providers=providers, media=media
    )


def test_described_media_replace_the_guess_from_the_url() -> None:
    no_extension = "https://cdn.example.com/media/7f3a"

    assert check([no_extension], None, "tiktok") == [Violation("mediaUrls", TIKTOK_NEEDS_VIDEO)]
    assert check([no_extension], [video()], "tiktok") == []


def test_a_png_named_jpg_is_judged_by_its_bytes() -> None:
    named_jpg = "https://cdn.example.com/photo.jpg"

    assert check([named_jpg], None, "instagram") == []
    assert [v.field for v in check([named_jpg], [image("image/png")], "instagram")] == [
        "mediaUrls[0]"
    ]


def test_x_counts_images_rather_than_urls_when_described() -> None:
    urls = [URL] * 5
    assert check(urls, [image()] * 5, "twitter") == [
        Violation("mediaUrls", "X allows at most 4 images per post; this post has 5")
    ]


def test_text_rules_still_apply_and_come_before_media_rules() -> None:
    violations = check_post_content(
        content="a" * 2201,
        thread=[],
        media_urls=[URL],
        providers=["instagram", "twitter"],
        media=[gif(size=20 * MB)],
    )
    assert [v.field for v in violations] == [
        "content",  # Instagram caption
        "mediaUrls[0]",  # Instagram: no GIFs
        "mediaUrls",  # Instagram: no image or video
        "content",  # X: 280 characters
        "mediaUrls[0]",  # X: GIFs up to 15 MB
    ]


def test_shape_rules_still_run_on_the_urls() -> None:
    assert check(["ftp://x"], [image()], "twitter") == [
        Violation("mediaUrls[0]", "must be an absolute http(s) URL")
    ]


def test_media_must_describe_every_url() -> None:
    with pytest.raises(ValueError, match="one for one"):
        check([URL, URL], [image()], "twitter")


def test_require_valid_content_raises_the_first_media_violation() -> None:
    with pytest.raises(InvalidField) as refused:
        require_valid_content(
            content="hi",
            thread=[],
            media_urls=[URL],
            providers=["twitter"],
            media=[image(size=6 * MB)],
        )
    assert refused.value.field == "mediaUrls[0]"
    assert refused.value.message == "X accepts images up to 5 MB; this one is 6 MB"


def test_violation_is_still_importable_from_the_content_rules() -> None:
    assert content_rules.Violation is Violation


# --- uploads -----------------------------------------------------------------------------------

EVERY_EXTENSION = [
    (content_type, extension)
    for content_type, extensions in ALLOWED_UPLOAD_TYPES.items()
    for extension in extensions
]


@pytest.mark.parametrize(("content_type", "extension"), EVERY_EXTENSION)
def test_uploads_of_each_type_and_extension_are_accepted(content_type: str, extension: str) -> None:
    assert upload_violation(f"holiday{extension}", content_type, 1) is None
    assert upload_violation(f"HOLIDAY{extension.upper()}", content_type, 1) is None


def test_the_content_type_is_compared_without_case_or_parameters() -> None:
    assert upload_violation("a.jpg", "Image/JPEG; charset=binary", 1) is None


@pytest.mark.parametrize(
    "content_type", ["application/pdf", "image/heic", "video/webm", "image/svg+xml"]
)
def test_unsupported_types_are_refused(content_type: str) -> None:
    assert upload_violation("file.bin", content_type, 1) == Violation(
        "contentType",
        f"{content_type!r} cannot be uploaded; upload JPEG, PNG, WebP or GIF images "
        "or MP4 or MOV videos",
    )


def test_an_empty_content_type_is_refused() -> None:
    refused = upload_violation("a.jpg", "", 1)
    assert refused is not None
    assert refused.field == "contentType"
    assert "empty content type" in refused.message


@pytest.mark.parametrize("filename", ["photo.png", "photo", "photo.jpg.exe", ".jpg", "photo.jpe"])
def test_an_extension_that_does_not_match_the_type_is_refused(filename: str) -> None:
    assert upload_violation(filename, "image/jpeg", 1) == Violation(
        "filename", f"a JPEG file's name must end in .jpg or .jpeg; got {filename!r}"
    )


@pytest.mark.parametrize("size", [0, -1])
def test_an_empty_or_negative_size_is_refused(size: int) -> None:
    assert upload_violation("a.mp4", "video/mp4", size) == Violation(
        "size", "size must be a positive number of bytes"
    )


@pytest.mark.parametrize(
    ("content_type", "filename", "limit"),
    [
        ("image/jpeg", "a.jpg", "20 MB"),
        ("image/webp", "a.webp", "20 MB"),
        ("image/png", "a.png", "5 MB"),
        ("image/gif", "a.gif", "15 MB"),
        ("video/mp4", "a.mp4", "1 GB"),
        ("video/quicktime", "a.mov", "1 GB"),
    ],
)
def test_uploads_above_the_type_limit_are_refused_naming_it(
    content_type: str, filename: str, limit: str
) -> None:
    most = MAX_UPLOAD_BYTES[content_type]
    assert upload_violation(filename, content_type, most) is None

    refused = upload_violation(filename, content_type, most + 1)
    assert refused is not None
    assert refused.field == "size"
    assert f"uploads are limited to {limit}; this one is" in refused.message


def test_every_uploadable_type_has_a_size_limit_at_least_what_x_accepts() -> None:
    assert set(MAX_UPLOAD_BYTES) == set(ALLOWED_UPLOAD_TYPES)
    for content_type, most in MAX_UPLOAD_BYTES.items():
        kind = MediaInfo(URL, content_type, most).kind
        x_limit = {"image": 5 * MB, "gif": 15 * MB, "video": 512 * MB}[kind]
        assert most >= x_limit
