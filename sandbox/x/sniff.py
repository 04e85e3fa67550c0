"""What an uploaded file really is: its type from magic bytes, and the facts X checks.

Images: dimensions (PNG IHDR, GIF screen descriptor and frame count, JPEG SOFn, WebP VP8/VP8L/
VP8X). Videos: ISO BMFF (MP4, QuickTime) duration from ``moov/mvhd`` and size from the first
video track's ``tkhd``, wherever ``moov`` sits in the file. WebM and MPEG-TS are recognised by
their signatures only; the sandbox does not look inside them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

#: Declared media types → the detected types that satisfy them.
COMPATIBLE = {
    "image/jpeg": {"image/jpeg"},
    "image/pjpeg": {"image/jpeg"},
    "image/png": {"image/png"},
    "image/gif": {"image/gif"},
    "image/webp": {"image/webp"},
    "video/mp4": {"video/mp4", "video/quicktime"},
    "video/quicktime": {"video/mp4", "video/quicktime"},
    "video/webm": {"video/webm"},
    "video/mp2t": {"video/mp2t"},
}
_MAX_MOOV = 64 * 1024 * 1024
_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip")


@dataclass(frozen=True)
class Facts:
    """What was learned from a file; ``None`` where the format does not say (or is broken)."""

    detected: str | None
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    frames: int | None = None
    #: Why the file cannot be read as its detected type, if it cannot.
    unreadable: str | None = None


def detect(head: bytes) -> str | None:
    """The media type the first bytes of a file announce, or ``None``."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/quicktime" if head[8:12] == b"qt  " else "video/mp4"
    if head[4:8] in _QUICKTIME_ATOMS:
        return "video/quicktime"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if head[:1] == b"\x47" and (len(head) <= 188 or head[188:189] == b"\x47"):
        return "video/mp2t"
    return None


def inspect(path: Path) -> Facts:
    """Read what X would check from the file at ``path``."""
    with path.open("rb") as file:
        head = file.read(512)
        detected = detect(head)
        try:
            if detected == "image/png":
                return _png(head)
            if detected == "image/gif":
                file.seek(0)
                return _gif(file.read())
            if detected == "image/jpeg":
                file.seek(0)
                return _jpeg(file)
            if detected == "image/webp":
                return _webp(head)
            if detected in ("video/mp4", "video/quicktime"):
                return _bmff(file, detected, path.stat().st_size)
        except (struct.error, IndexError, ValueError) as exc:
            return Facts(detected, unreadable=f"Corrupt {detected} file ({exc}).")
        return Facts(detected)


def _png(head: bytes) -> Facts:
    if head[12:16] != b"IHDR":
        return Facts("image/png", unreadable="PNG file without an IHDR chunk.")
    width, height = struct.unpack(">II", head[16:24])
    return Facts("image/png", width=width, height=height)


def _gif(data: bytes) -> Facts:
    width, height, flags = struct.unpack("<HHB", data[6:11])
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    frames = 0
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            pos = _skip_sub_blocks(data, pos + 2)
        elif block == 0x2C:  # image descriptor, optional local colour table, LZW data
            frames += 1
            local = data[pos + 9]
            pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
            pos = _skip_sub_blocks(data, pos + 1)
        else:
            raise ValueError(f"unexpected GIF block 0x{block:02x}")
    if frames == 0:
        return Facts("image/gif", unreadable="GIF file without any image.")
    return Facts("image/gif", width=width, height=height, frames=frames)


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    while data[pos]:
        pos += data[pos] + 1
    return pos + 1


_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(file: BinaryIO) -> Facts:
    file.seek(2)
    while True:
        byte = file.read(1)
        if not byte:
            return Facts("image/jpeg", unreadable="JPEG file without a frame header (SOF).")
        if byte != b"\xff":
            raise ValueError("JPEG marker expected")
        marker = file.read(1)
        while marker == b"\xff":  # fill bytes
            marker = file.read(1)
        code = marker[0]
        if code in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return Facts("image/jpeg", unreadable="JPEG file without a frame header (SOF).")
        if code == 0x01 or 0xD0 <= code <= 0xD7:  # markers without a length
            continue
        (length,) = struct.unpack(">H", file.read(2))
        if code in _SOF_MARKERS:
            _precision, height, width = struct.unpack(">BHH", file.read(5))
            return Facts("image/jpeg", width=width, height=height)
        file.seek(length - 2, 1)


def _webp(head: bytes) -> Facts:
    chunk = head[12:16]
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(head[24:27], "little")
        height = 1 + int.from_bytes(head[27:30], "little")
    elif chunk == b"VP8L":
        if head[20] != 0x2F:
            raise ValueError("bad VP8L signature")
        bits = int.from_bytes(head[21:25], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif chunk == b"VP8 ":
        if head[23:26] != b"\x9d\x01\x2a":
            raise ValueError("bad VP8 start code")
        width, height = (value & 0x3FFF for value in struct.unpack("<HH", head[26:30]))
    else:
        return Facts("image/webp", unreadable="WebP file without an image chunk.")
    return Facts("image/webp", width=width, height=height)


# -- ISO BMFF -----------------------------------------------------------------------------


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> dict[bytes, list[bytes]]:
    """Child boxes of an in-memory box body, by type."""
    end = len(data) if end is None else end
    found: dict[bytes, list[bytes]] = {}
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", data[pos + 8 : pos + 16])
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError(f"box {kind!r} overruns its parent")
        found.setdefault(kind, []).append(data[pos + header : pos + size])
        pos += size
    return found


def _find_moov(file: BinaryIO, file_size: int) -> bytes | None:
    """The body of the top-level ``moov`` box, reading only box headers on the way."""
    pos = 0
    while pos + 8 <= file_size:
        file.seek(pos)
        size, kind = struct.unpack(">I4s", file.read(8))
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", file.read(8))
            header = 16
        elif size == 0:
            size = file_size - pos
        if size < header or pos + size > file_size:
            raise ValueError(f"top-level box {kind!r} overruns the file")
        if kind == b"moov":
            if size > _MAX_MOOV:
                raise ValueError("moov box too large")
            return file.read(size - header)
        pos += size
    return None


def _bmff(file: BinaryIO, detected: str, file_size: int) -> Facts:
    moov = _find_moov(file, file_size)
    if moov is None:
        return Facts(detected, unreadable="Unsupported video format: no moov box.")
    children = _boxes(moov)
    if b"mvhd" not in children:
        return Facts(detected, unreadable="Unsupported video format: no mvhd box.")
    mvhd = children[b"mvhd"][0]
    if mvhd[0] == 1:
        timescale, duration = struct.unpack(">IQ", mvhd[20:32])
    else:
        timescale, duration = struct.unpack(">II", mvhd[12:20])
    if timescale == 0:
        return Facts(detected, unreadable="Unsupported video format: zero timescale.")
    for trak in children.get(b"trak", []):
        parts = _boxes(trak)
        mdia = _boxes(parts[b"mdia"][0]) if b"mdia" in parts else {}
        handler = mdia.get(b"hdlr", [b""])[0][8:12]
        if handler != b"vide" or b"tkhd" not in parts:
            continue
        tkhd = parts[b"tkhd"][0]
        offset = 88 if tkhd[0] == 1 else 76
        width, height = struct.unpack(">II", tkhd[offset : offset + 8])
        return Facts(
            detected,
            width=width >> 16,
            height=height >> 16,
            duration_ms=duration * 1000 // timescale,
        )
    return Facts(detected, unreadable="Unsupported video format: no video track.")
