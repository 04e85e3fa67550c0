"""What a media file is, read from its first (and, for some videos, last) bytes.

Pure and standard library only: the caller fetches ``HEAD_BYTES`` from the start of the file
and, when the file is larger, ``TAIL_BYTES`` from its end, and hands them over with the file's
size. The content type comes from magic bytes, never from the name or a client's header.

Videos written without "fast start" keep their ``moov`` box (duration, dimensions) after the
media data, which is why the tail is read. A moov larger than the tail, a truncated file or
plain garbage yields ``None`` for what could not be read; ``probe`` never raises.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

HEAD_BYTES = 256 * 1024
TAIL_BYTES = 256 * 1024


@dataclass(frozen=True)
class Probe:
    content_type: str | None
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None


_Size = tuple[int, int]
_Span = tuple[int, int]  # payload start, end (the end may lie past the bytes at hand)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
# JPEG start-of-frame markers; C4 (DHT), C8 (JPG extension) and CC (DAC) share the range.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RSTn, SOI
# ISO BMFF brands of still images (HEIF/AVIF): same container, not a video.
_IMAGE_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"})
# Files from QuickTime before ftyp existed start straight with one of these boxes.
_LEGACY_QUICKTIME_BOXES = frozenset({b"moov", b"mdat", b"wide"})


def probe(head: bytes, tail: bytes = b"", total_size: int | None = None) -> Probe:
    """Type, pixel size and duration of the file whose first bytes are ``head``.

    ``tail`` is the file's last bytes and ``total_size`` its length; both only matter for
    MP4/MOV files whose ``moov`` box comes after the media data.
    """
    head, tail = bytes(head), bytes(tail)
    content_type = _sniff(head)
    if content_type is None:
        return Probe(None)
    if content_type in ("video/mp4", "video/quicktime"):
        return _iso_bmff(content_type, head, tail, total_size)
    size = _IMAGE_READERS[content_type](head) if content_type in _IMAGE_READERS else None
    width, height = size if size else (None, None)
    return Probe(content_type, width, height)


def _sniff(head: bytes) -> str | None:
    if head.startswith(_PNG_SIGNATURE):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(_EBML_MAGIC):
        return "video/webm"
    if head[4:8] == b"ftyp" and len(head) >= 12:
        brand = head[8:12]
        if brand in _IMAGE_BRANDS:
            return None
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    first_box_size = _unpack(">I", head, 0)
    if head[4:8] in _LEGACY_QUICKTIME_BOXES and first_box_size:
        size = first_box_size[0]
        return "video/quicktime" if size in (0, 1) or size >= 8 else None
    return None


def _unpack(fmt: str, data: bytes, offset: int, end: int | None = None) -> tuple[int, ...] | None:
    """``struct.unpack_from`` that answers None instead of reading past ``end`` or the data."""
    limit = len(data) if end is None else min(end, len(data))
    if offset < 0 or offset + struct.calcsize(fmt) > limit:
        return None
    return struct.unpack_from(fmt, data, offset)


def _known(width: int, height: int) -> _Size | None:
    """Zero means "not stated here" in every format read below."""
    return (width, height) if width > 0 and height > 0 else None


# --- images ----------------------------------------------------------------------------------


def _png_size(data: bytes) -> _Size | None:
    if data[12:16] != b"IHDR":
        return None
    size = _unpack(">II", data, 16)
    return _known(*size) if size else None


def _gif_size(data: bytes) -> _Size | None:
    size = _unpack("<HH", data, 6)  # logical screen descriptor
    return _known(*size) if size else None


def _jpeg_size(data: bytes) -> _Size | None:
    position = 2
    while position + 1 < len(data):
        if data[position] != 0xFF:
            return None  # not at a marker: corrupt, or we lost our place
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _JPEG_NO_LENGTH:
            position += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or entropy-coded data: no frame header
            return None
        length = _unpack(">H", data, position + 2)
        if length is None or length[0] < 2:
            return None
        if marker in _JPEG_SOF:
            size = _unpack(">HH", data, position + 5)  # after the sample precision byte
            return _known(size[1], size[0]) if size else None
        position += 2 + length[0]
    return None


def _webp_size(data: bytes) -> _Size | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":  # lossy key frame start code
        size = _unpack("<HH", data, 26)
        return _known(size[0] & 0x3FFF, size[1] & 0x3FFF) if size else None
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        bits = _unpack("<I", data, 21)
        return _known((bits[0] & 0x3FFF) + 1, ((bits[0] >> 14) & 0x3FFF) + 1) if bits else None
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        return _known(width, int.from_bytes(data[27:30], "little") + 1)
    return None


_IMAGE_READERS = {
    "image/png": _png_size,
    "image/gif": _gif_size,
    "image/jpeg": _jpeg_size,
    "image/webp": _webp_size,
}


# --- ISO BMFF (MP4, MOV) ---------------------------------------------------------------------


def _iso_bmff(content_type: str, head: bytes, tail: bytes, total_size: int | None) -> Probe:
    moov = _moov_by_walking(head, tail, total_size)
    if moov is None:
        moov = _moov_by_scanning(tail)
    if moov is None:
        return Probe(content_type)
    duration_ms = _movie_duration_ms(moov)
    size = _video_track_size(moov)
    width, height = size if size else (None, None)
    return Probe(content_type, width, height, duration_ms)


def _moov_by_walking(head: bytes, tail: bytes, total_size: int | None) -> bytes | None:
    """Follow the top-level boxes from offset 0, through the head and then the tail."""
    tail_start: int | None = None
    if total_size is not None and len(head) < total_size and len(tail) <= total_size:
        tail_start = total_size - len(tail)
    file_end = total_size if total_size is not None else len(head)

    def read(offset: int, end: int) -> bytes | None:
        """The file's bytes from ``offset`` to ``end`` or as far as one buffer reaches."""
        if offset < len(head):
            return head[offset:end]
        if tail_start is not None and offset >= tail_start:
            return tail[offset - tail_start : end - tail_start]
        return None

    offset = 0
    while offset + 8 <= file_end:
        header = read(offset, offset + 16)
        box_size = _unpack(">I", header, 0) if header else None
        if header is None or box_size is None or len(header) < 8:
            return None
        size, kind, header_length = box_size[0], header[4:8], 8
        if size == 1:
            large = _unpack(">Q", header, 8)
            if large is None:
                return None
            size, header_length = large[0], 16
        elif size == 0:  # the last box, running to the end of the file
            size = file_end - offset
        if size < header_length:
            return None
        if kind == b"moov":
            return read(offset + header_length, offset + size)
        offset += size
    return None


def _moov_by_scanning(tail: bytes) -> bytes | None:
    """A complete ``moov`` (opening, as encoders write it, with ``mvhd``) inside the tail.

    For callers that cannot say the file size, or files whose boxes cannot be followed there.
    """
    index = tail.find(b"moov", 4)
    while index != -1:
        (size,) = struct.unpack_from(">I", tail, index - 4)
        start, end = index + 4, index - 4 + size
        if size >= 8 and end <= len(tail) and tail[start + 4 : start + 8] == b"mvhd":
            return tail[start:end]
        index = tail.find(b"moov", index + 1)
    return None


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, _Span]]:
    """The boxes laid end to end in ``data[start:end]``, stopping at a malformed header."""
    end = min(end, len(data))
    position = start
    while position + 8 <= end:
        (size,) = struct.unpack_from(">I", data, position)
        kind, header_length = data[position + 4 : position + 8], 8
        if size == 1:
            large = _unpack(">Q", data, position + 8, end)
            if large is None:
                return
            size, header_length = large[0], 16
        elif size == 0:
            size = end - position
        if size < header_length:
            return
        yield kind, (position + header_length, position + size)
        position += size


def _child(data: bytes, span: _Span, *path: bytes) -> _Span | None:
    """The payload of the first box at ``path`` below ``span`` (``b"mdia", b"hdlr"``)."""
    for kind in path:
        found = next((inner for name, inner in _boxes(data, *span) if name == kind), None)
        if found is None:
            return None
        span = found
    return span


def _movie_duration_ms(moov: bytes) -> int | None:
    whole = (0, len(moov))
    header = _child(moov, whole, b"mvhd")
    if header is None:
        return None
    # mvhd: version, flags, creation and modification times, then timescale and duration
    version = moov[header[0] : header[0] + 1]
    fields = (
        _unpack(">QQIQ", moov, header[0] + 4, header[1])
        if version == b"\x01"
        else _unpack(">IIII", moov, header[0] + 4, header[1])
    )
    if fields is None:
        return None
    timescale, duration = fields[2], fields[3]
    unknown = (1 << (64 if version == b"\x01" else 32)) - 1
    if duration == 0:  # fragmented file: the movie extends header holds the total
        duration = _fragmented_duration(moov) or 0
    if timescale == 0 or duration in (0, unknown):
        return None
    return (duration * 1000 + timescale // 2) // timescale


def _fragmented_duration(moov: bytes) -> int | None:
    header = _child(moov, (0, len(moov)), b"mvex", b"mehd")
    if header is None:
        return None
    wide = moov[header[0] : header[0] + 1] == b"\x01"
    duration = _unpack(">Q" if wide else ">I", moov, header[0] + 4, header[1])
    return duration[0] if duration else None


def _video_track_size(moov: bytes) -> _Size | None:
    """Display size of the first track whose handler is ``vide``."""
    for kind, track in _boxes(moov, 0, len(moov)):
        if kind != b"trak":
            continue
        handler = _child(moov, track, b"mdia", b"hdlr")
        if handler is None or moov[handler[0] + 8 : handler[0] + 12] != b"vide":
            continue
        header = _child(moov, track, b"tkhd")
        size = _track_header_size(moov, header) if header else None
        return size or _sample_entry_size(moov, track)
    return None


def _track_header_size(data: bytes, header: _Span) -> _Size | None:
    """tkhd width and height (16.16 fixed point), swapped when the matrix turns by 90°."""
    wide = data[header[0] : header[0] + 1] == b"\x01"
    matrix_at = header[0] + (52 if wide else 40)
    matrix = _unpack(">iiiii", data, matrix_at, header[1])
    size = _unpack(">II", data, matrix_at + 36, header[1])
    if matrix is None or size is None:
        return None
    width, height = ((value + 0x8000) >> 16 for value in size)
    a, b, _, c, d = matrix
    if a == 0 and d == 0 and b != 0 and c != 0:  # rotated a quarter turn (portrait phones)
        width, height = height, width
    return _known(width, height)


def _sample_entry_size(data: bytes, track: _Span) -> _Size | None:
    """Coded size from the first visual sample entry, when tkhd leaves it at zero."""
    descriptions = _child(data, track, b"mdia", b"minf", b"stbl", b"stsd")
    if descriptions is None:
        return None
    entry = descriptions[0] + 8  # version, flags and entry count precede the first entry
    size = _unpack(">HH", data, entry + 32, descriptions[1])
    return _known(*size) if size else None
