"""The media probe: type, pixel size and duration read from a file's first and last bytes."""

from __future__ import annotations

import random
import struct

import pytest

from interfaces.storage.probe import HEAD_BYTES, TAIL_BYTES, Probe, probe
from sandbox.samples import gif_bytes, jpeg_bytes, mov_bytes, mp4_bytes, png_bytes, webp_bytes


def probe_file(data: bytes) -> Probe:
    """What a caller reading only the head and tail of ``data`` learns."""
    return probe(data[:HEAD_BYTES], data[-TAIL_BYTES:], len(data))


# --- ISO BMFF building blocks ------------------------------------------------------------------

UNITY = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
QUARTER_TURN = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", len(body) + 8) + kind + body


def ftyp(brand: bytes = b"isom") -> bytes:
    return box(b"ftyp", brand, b"\x00\x00\x02\x00", brand)


def mvhd(timescale: int, duration: int, *, version: int = 0) -> bytes:
    times = (
        struct.pack(">QQIQ", 0, 0, timescale, duration)
        if version
        else struct.pack(">IIII", 0, 0, timescale, duration)
    )
    return box(b"mvhd", bytes([version, 0, 0, 0]), times, b"\x00" * 80)


def tkhd(width: int, height: int, *, version: int = 0, matrix: bytes = UNITY) -> bytes:
    times = b"\x00" * (32 if version else 20)  # creation .. duration
    return box(
        b"tkhd",
        bytes([version, 0, 0, 3]),
        times,
        b"\x00" * 16,  # reserved, layer, alternate group, volume, reserved
        matrix,
        struct.pack(">II", width << 16, height << 16),
    )


def trak(handler: bytes, width: int = 0, height: int = 0, *, header: bytes | None = None) -> bytes:
    hdlr = box(b"hdlr", b"\x00" * 8, handler, b"\x00" * 12, b"\x00")
    return box(b"trak", header or tkhd(width, height), box(b"mdia", hdlr))


def moov(*children: bytes) -> bytes:
    return box(b"moov", *children)


VIDEO_MOOV = moov(mvhd(600, 6000), trak(b"vide", 1080, 1920))  # 10 s, portrait


# --- images ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (png_bytes(640, 480), "image/png"),
        (gif_bytes(640, 480), "image/gif"),
        (gif_bytes(640, 480, frames=3), "image/gif"),
        (jpeg_bytes(640, 480), "image/jpeg"),
        (webp_bytes(640, 480), "image/webp"),
    ],
    ids=["png", "gif", "animated-gif", "jpeg", "webp-lossless"],
)
def test_images_report_their_type_and_size(data: bytes, content_type: str) -> None:
    assert probe(data) == Probe(content_type, 640, 480)


def test_width_and_height_are_not_swapped() -> None:
    for make in (png_bytes, gif_bytes, jpeg_bytes, webp_bytes):
        assert probe(make(1, 3000)) == Probe(probe(make(1, 1)).content_type, 1, 3000)


def test_a_padded_jpeg_still_finds_its_frame_header() -> None:
    data = jpeg_bytes(1080, 1350, size=9 * 1024 * 1024)

    assert probe(data[:HEAD_BYTES], data[-TAIL_BYTES:], len(data)) == Probe(
        "image/jpeg", 1080, 1350
    )


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def test_jpeg_tables_with_sof_like_marker_numbers_are_skipped() -> None:
    # DHT (C4), JPG (C8) and DAC (CC) sit inside the SOF range but carry no frame size.
    decoy = b"\x08\x11\x11\x22\x22\x03"
    data = (
        b"\xff\xd8"
        + jpeg_segment(0xE1, b"Exif\x00\x00" + b"\x00" * 100)
        + jpeg_segment(0xC4, decoy)
        + jpeg_segment(0xC8, decoy)
        + jpeg_segment(0xCC, decoy)
        + b"\xff\xff"  # fill bytes before a marker
        + jpeg_segment(0xC2, struct.pack(">BHHB", 8, 3000, 4000, 3))  # progressive
        + b"\xff\xd9"
    )
    assert probe(data) == Probe("image/jpeg", 4000, 3000)


def test_a_jpeg_whose_scan_starts_before_any_frame_header_has_no_size() -> None:
    data = b"\xff\xd8" + jpeg_segment(0xDA, b"\x00" * 10) + b"\x12\x34" + b"\xff\xd9"
    assert probe(data) == Probe("image/jpeg")


def test_a_gif87a_is_read_too() -> None:
    assert probe(b"GIF87a" + struct.pack("<HH", 320, 200) + b"\x00" * 10) == Probe(
        "image/gif", 320, 200
    )


def webp(chunk: bytes, payload: bytes) -> bytes:
    body = chunk + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def test_a_lossy_webp_reads_its_key_frame_header() -> None:
    frame = b"\x10\x02\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", 1920 | 0x4000, 1080)
    assert probe(webp(b"VP8 ", frame + b"\x00" * 20)) == Probe("image/webp", 1920, 1080)


def test_an_extended_webp_reads_its_canvas() -> None:
    canvas = (
        b"\x10\x00\x00\x00" + (4000 - 1).to_bytes(3, "little") + (3000 - 1).to_bytes(3, "little")
    )
    assert probe(webp(b"VP8X", canvas)) == Probe("image/webp", 4000, 3000)


# --- MP4 and MOV -----------------------------------------------------------------------------


def test_mp4_reports_size_and_duration() -> None:
    assert probe_file(mp4_bytes(1280, 720, 12_345)) == Probe("video/mp4", 1280, 720, 12_345)


def test_mov_is_told_apart_by_its_qt_brand() -> None:
    assert probe_file(mov_bytes(720, 1280, 3_000)) == Probe("video/quicktime", 720, 1280, 3_000)


def test_moov_after_a_large_mdat_is_found_through_the_tail() -> None:
    data = mp4_bytes(640, 480, 9_000, size=HEAD_BYTES + TAIL_BYTES + 1_000_000, moov_first=False)

    assert probe(data[:HEAD_BYTES]) == Probe("video/mp4")  # the head alone cannot tell
    assert probe_file(data) == Probe("video/mp4", 640, 480, 9_000)


def test_moov_in_the_tail_is_found_even_without_the_total_size() -> None:
    data = mov_bytes(1920, 1080, 60_000, size=2 * HEAD_BYTES, moov_first=False)

    assert probe(data[:HEAD_BYTES], data[-TAIL_BYTES:]) == Probe(
        "video/quicktime", 1920, 1080, 60_000
    )


def test_a_moov_larger_than_the_tail_leaves_size_and_duration_unknown() -> None:
    filler = box(b"free", b"\x00" * TAIL_BYTES)  # sits inside moov, pushing its start out
    big_moov = moov(mvhd(1000, 5000), filler, trak(b"vide", 640, 480))
    mdat = box(b"mdat", b"\x00" * HEAD_BYTES)
    data = ftyp() + mdat + big_moov

    assert probe_file(data) == Probe("video/mp4")


def test_a_64_bit_mdat_size_is_followed_to_the_moov() -> None:
    payload = b"\x00" * 100
    mdat = struct.pack(">I4sQ", 1, b"mdat", 16 + len(payload)) + payload
    data = ftyp() + mdat + VIDEO_MOOV

    assert probe(data) == Probe("video/mp4", 1080, 1920, 10_000)


def test_a_5_gb_file_with_moov_at_the_end_is_read_from_head_and_tail() -> None:
    head_part = ftyp()
    total_size = 5 * 1024**3
    mdat_size = total_size - len(head_part) - len(VIDEO_MOOV)
    head = head_part + struct.pack(">I4sQ", 1, b"mdat", mdat_size) + b"\x00" * 1000
    tail = b"\x00" * 1000 + VIDEO_MOOV

    assert probe(head, tail, total_size) == Probe("video/mp4", 1080, 1920, 10_000)


def test_the_total_size_places_the_tail_so_any_moov_layout_is_found() -> None:
    tracks_first = moov(trak(b"vide", 640, 480), mvhd(1000, 8000))  # not what a scan expects
    head = ftyp() + struct.pack(">I4s", 8 + 10 * TAIL_BYTES, b"mdat")
    tail = b"\x00" * 500 + tracks_first
    total_size = len(ftyp()) + 8 + 10 * TAIL_BYTES + len(tracks_first)

    assert probe(head, tail, total_size) == Probe("video/mp4", 640, 480, 8_000)
    assert probe(head, tail) == Probe("video/mp4")


def test_a_last_box_of_size_zero_runs_to_the_end_of_the_file() -> None:
    open_ended_moov = struct.pack(">I", 0) + VIDEO_MOOV[4:]
    assert probe(ftyp() + open_ended_moov) == Probe("video/mp4", 1080, 1920, 10_000)

    open_ended_mdat = struct.pack(">I4s", 0, b"mdat") + b"\x00" * 64
    assert probe(ftyp() + VIDEO_MOOV + open_ended_mdat) == Probe("video/mp4", 1080, 1920, 10_000)


def test_version_1_headers_carry_64_bit_times() -> None:
    data = ftyp() + moov(
        mvhd(90_000, 90_000 * 7 + 45_000, version=1),
        trak(b"vide", header=tkhd(3840, 2160, version=1)),
    )
    assert probe(data) == Probe("video/mp4", 3840, 2160, 7_500)


def test_the_first_video_track_gives_the_size_not_an_audio_track() -> None:
    data = ftyp() + moov(
        mvhd(1000, 4000),
        trak(b"soun", 0, 0),
        trak(b"vide", 720, 1280),
        trak(b"vide", 1920, 1080),
    )
    assert probe(data) == Probe("video/mp4", 720, 1280, 4_000)


def test_a_track_turned_a_quarter_is_reported_as_displayed() -> None:
    data = ftyp(b"qt  ") + moov(
        mvhd(1000, 4000), trak(b"vide", header=tkhd(1920, 1080, matrix=QUARTER_TURN))
    )
    assert probe(data) == Probe("video/quicktime", 1080, 1920, 4_000)


def test_a_zero_sized_track_header_falls_back_to_the_sample_entry() -> None:
    entry = box(b"avc1", b"\x00" * 6, b"\x00\x01", b"\x00" * 16, struct.pack(">HH", 1280, 720))
    stsd = box(b"stsd", b"\x00" * 4, struct.pack(">I", 1), entry)
    hdlr = box(b"hdlr", b"\x00" * 8, b"vide", b"\x00" * 13)
    mdia = box(b"mdia", hdlr, box(b"minf", box(b"stbl", stsd)))
    data = ftyp() + moov(mvhd(1000, 4000), box(b"trak", tkhd(0, 0), mdia))

    assert probe(data) == Probe("video/mp4", 1280, 720, 4_000)


def test_audio_only_files_have_a_duration_but_no_size() -> None:
    data = ftyp(b"M4A ") + moov(mvhd(44_100, 44_100 * 3), trak(b"soun"))
    assert probe(data) == Probe("video/mp4", None, None, 3_000)


@pytest.mark.parametrize(
    "header",
    [mvhd(0, 5000), mvhd(1000, 0xFFFFFFFF), mvhd(1000, 0)],
    ids=["zero-timescale", "indeterminate", "zero-without-fragments"],
)
def test_an_unusable_movie_duration_is_unknown(header: bytes) -> None:
    assert probe(ftyp() + moov(header, trak(b"vide", 640, 480))) == Probe("video/mp4", 640, 480)


def test_a_fragmented_mp4_takes_its_duration_from_the_movie_extends_header() -> None:
    mehd = box(b"mehd", b"\x00" * 4, struct.pack(">I", 25_000))
    data = ftyp(b"iso6") + moov(mvhd(1000, 0), box(b"mvex", mehd), trak(b"vide", 640, 360))

    assert probe(data) == Probe("video/mp4", 640, 360, 25_000)


def test_durations_round_to_the_nearest_millisecond() -> None:
    assert probe(ftyp() + moov(mvhd(30_000, 1_001))).duration_ms == 33  # 33.37 ms
    assert probe(ftyp() + moov(mvhd(3, 2))).duration_ms == 667


def test_an_old_quicktime_file_without_ftyp_is_still_a_mov() -> None:
    assert probe(VIDEO_MOOV) == Probe("video/quicktime", 1080, 1920, 10_000)


@pytest.mark.parametrize("brand", [b"heic", b"mif1", b"avif"])
def test_heif_and_avif_images_are_not_mistaken_for_video(brand: bytes) -> None:
    assert probe(ftyp(brand) + box(b"meta", b"\x00" * 40)) == Probe(None)


def test_webm_is_recognised_by_its_ebml_header() -> None:
    assert probe(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01" + b"\x00" * 32) == Probe("video/webm")


# --- garbage and truncation ------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"hello, world", b"\x00" * 1024, b"%PDF-1.7\n", b"RIFF\x00\x00\x00\x00WAVE"],
    ids=["empty", "one-byte", "text", "zeros", "pdf", "wav"],
)
def test_unknown_bytes_are_no_media_type(data: bytes) -> None:
    assert probe(data) == Probe(None)


SAMPLES = {
    "png": png_bytes(300, 200),
    "gif": gif_bytes(300, 200),
    "jpeg": jpeg_bytes(300, 200),
    "webp": webp_bytes(300, 200),
    "mp4": mp4_bytes(300, 200, 5_000),
    "mov-moov-last": mov_bytes(300, 200, 5_000, moov_first=False),
}


@pytest.mark.parametrize("name", SAMPLES)
def test_every_truncation_answers_with_what_it_could_read(name: str) -> None:
    data = SAMPLES[name]
    whole = probe(data)
    for length in range(len(data)):
        found = probe(data[:length])
        assert found.content_type in (None, whole.content_type)
        assert found.width in (None, whole.width)
        assert found.height in (None, whole.height)
        assert found.duration_ms in (None, whole.duration_ms)


@pytest.mark.parametrize("name", SAMPLES)
def test_corrupted_files_never_raise(name: str) -> None:
    rng = random.Random(name)
    original = SAMPLES[name]
    for _ in range(300):
        data = bytearray(original)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cut = rng.randint(0, len(data))
        probe(bytes(data[:cut]), bytes(data[cut // 2 :]), rng.choice([None, len(data), cut, 0]))


def test_nonsense_box_sizes_do_not_loop_or_raise() -> None:
    for size in (2, 7, 0xFFFFFFFF):
        data = ftyp() + struct.pack(">I4s", size, b"free") + VIDEO_MOOV
        assert probe(data).content_type == "video/mp4"
    huge = struct.pack(">I4sQ", 1, b"mdat", 2**64 - 1)
    assert probe(ftyp() + huge, VIDEO_MOOV, total_size=2**40) == Probe(
        "video/mp4", 1080, 1920, 10_000
    )
    assert probe(ftyp() + moov(struct.pack(">I4s", 3, b"trak"))) == Probe("video/mp4")
