"""Small, structurally valid media files for tests, benchmarks and the demo.

Pure stdlib. Images are truly decodable single-colour pictures; videos are ISO BMFF files whose
boxes (``ftyp``, ``moov/mvhd``, ``trak/tkhd``, ``mdia/hdlr``) carry the duration and dimensions a
platform checks, with an ``mdat`` of filler bytes rather than real frames. Every generator that
takes ``size`` pads to exactly that many bytes by multiplying a byte string, so a 20 MB file costs
one allocation rather than a loop.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Sequence

Colour = tuple[int, int, int]

_DEFAULT_COLOUR: Colour = (46, 134, 193)


def _rgb(colour: Colour) -> Colour:
    if any(not 0 <= channel <= 255 for channel in colour):
        raise ValueError(f"colour channels must be 0-255, got {colour}")
    return colour


def _check_dimensions(width: int, height: int, limit: int = 65535) -> None:
    if not (1 <= width <= limit and 1 <= height <= limit):
        raise ValueError(f"dimensions must be 1-{limit}, got {width}x{height}")


# --- PNG -------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_bytes(width: int, height: int, colour: Colour = _DEFAULT_COLOUR) -> bytes:
    """An 8-bit RGB PNG of one flat colour."""
    _check_dimensions(width, height, limit=2**31 - 1)
    row = b"\x00" + bytes(_rgb(colour)) * width  # filter type 0 (None) per scanline
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(row * height, 9))
        + _png_chunk(b"IEND", b"")
    )


# --- GIF -------------------------------------------------------------------------------------


class _LsbBitWriter:
    """Packs variable-width codes least-significant bit first (GIF LZW, VP8L)."""

    def __init__(self) -> None:
        self._out = bytearray()
        self._accumulator = 0
        self._count = 0

    def write(self, value: int, width: int) -> None:
        self._accumulator |= value << self._count
        self._count += width
        while self._count >= 8:
            self._out.append(self._accumulator & 0xFF)
            self._accumulator >>= 8
            self._count -= 8

    def getvalue(self) -> bytes:
        if self._count:
            return bytes(self._out) + bytes([self._accumulator & 0xFF])
        return bytes(self._out)


def _lzw_encode(indices: Iterable[int], min_code_size: int) -> bytes:
    clear = 1 << min_code_size
    end_of_information = clear + 1
    writer = _LsbBitWriter()

    def reset() -> tuple[dict[tuple[int, int], int], int, int]:
        return {}, end_of_information + 1, min_code_size + 1

    table, next_code, width = reset()
    writer.write(clear, width)
    prefix: int | None = None
    for index in indices:
        if prefix is None:
            prefix = index
            continue
        known = table.get((prefix, index))
        if known is not None:
            prefix = known
            continue
        writer.write(prefix, width)
        table[(prefix, index)] = next_code
        next_code += 1
        if next_code > (1 << width) and width < 12:
            width += 1
        if next_code == 4096:
            writer.write(clear, width)
            table, next_code, width = reset()
        prefix = index
    if prefix is not None:
        writer.write(prefix, width)
    writer.write(end_of_information, width)
    return writer.getvalue()


def _sub_blocks(data: bytes) -> bytes:
    blocks = [bytes([len(data[i : i + 255])]) + data[i : i + 255] for i in range(0, len(data), 255)]
    return b"".join(blocks) + b"\x00"


def gif_bytes(
    width: int,
    height: int,
    frames: int = 1,
    colours: Sequence[Colour] = (_DEFAULT_COLOUR, (240, 240, 240)),
    delay_cs: int = 10,
) -> bytes:
    """A GIF89a; with ``frames > 1`` an endlessly looping animation alternating ``colours``."""
    _check_dimensions(width, height)
    if frames < 1:
        raise ValueError("a GIF needs at least one frame")
    palette = [_rgb(colour) for colour in colours][:4] or [_DEFAULT_COLOUR]
    palette += [(0, 0, 0)] * (4 - len(palette))  # 4-entry global colour table
    parts = [
        b"GIF89a",
        struct.pack("<HHBBB", width, height, 0xF1, 0, 0),  # GCT present, 8-bit, 2^(1+1) entries
        b"".join(bytes(colour) for colour in palette),
    ]
    if frames > 1:
        parts.append(b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")  # loop forever
    frame_data: dict[int, bytes] = {}
    for frame in range(frames):
        colour_index = frame % len(colours) if colours else 0
        if colour_index not in frame_data:
            pixels = bytes([colour_index]) * (width * height)
            frame_data[colour_index] = _sub_blocks(_lzw_encode(pixels, 2))
        parts.append(struct.pack("<BBBBHBB", 0x21, 0xF9, 4, 0, delay_cs, 0, 0))
        parts.append(struct.pack("<BHHHHB", 0x2C, 0, 0, width, height, 0))
        parts.append(b"\x02" + frame_data[colour_index])
    parts.append(b"\x3b")
    return b"".join(parts)


# --- JPEG ------------------------------------------------------------------------------------

_JPEG_QUANT = 8  # every coefficient divided by 8: a flat block's DC becomes the level itself
_DC_CATEGORIES = 12  # Huffman DC table: symbols 0-11, every code 4 bits long
_MAX_SEGMENT_PAYLOAD = 65535 - 2


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _dc_bits(diff: int) -> str:
    """Huffman code + magnitude bits of one DC difference (ITU T.81 F.1.2.1)."""
    category = abs(diff).bit_length()
    code = format(category, "04b")
    if category == 0:
        return code
    magnitude = diff if diff >= 0 else diff + (1 << category) - 1
    return code + format(magnitude, f"0{category}b")


def _ycbcr(colour: Colour) -> tuple[int, int, int]:
    red, green, blue = _rgb(colour)
    luma = 0.299 * red + 0.587 * green + 0.114 * blue
    blue_diff = 128 - 0.168736 * red - 0.331264 * green + 0.5 * blue
    red_diff = 128 + 0.5 * red - 0.418688 * green - 0.081312 * blue

    def level(value: float) -> int:
        return min(255, max(0, round(value)))

    return level(luma), level(blue_diff), level(red_diff)


def _jpeg_scan(width: int, height: int, colour: Colour) -> bytes:
    """Entropy-coded data of a flat image: the first MCU sets each DC, the rest repeat it."""
    mcus = ((width + 7) // 8) * ((height + 7) // 8)
    end_of_block = "0"  # the AC table holds only EOB, coded as a single 0 bit
    first = "".join(_dc_bits(level - 128) + end_of_block for level in _ycbcr(colour))
    repeated = (_dc_bits(0) + end_of_block) * 3
    bits = first + repeated * (mcus - 1)
    bits += "1" * (-len(bits) % 8)  # pad the last byte with 1-bits
    data = int(bits, 2).to_bytes(len(bits) // 8, "big")
    return data.replace(b"\xff", b"\xff\x00")  # byte stuffing


def _comment_padding(total: int) -> bytes:
    """COM segments adding exactly ``total`` bytes (``total`` is 0 or at least 4)."""
    full_segment = 4 + _MAX_SEGMENT_PAYLOAD
    count, rest = divmod(total, full_segment)
    if 0 < rest < 4:  # too small for a segment of its own: borrow from a full one
        count -= 1
        rest += full_segment
    parts = [_jpeg_segment(0xFE, b"\x00" * _MAX_SEGMENT_PAYLOAD) * count]
    while rest:
        chunk = min(rest, full_segment)
        if 0 < rest - chunk < 4:
            chunk = rest - 4
        parts.append(_jpeg_segment(0xFE, b"\x00" * (chunk - 4)))
        rest -= chunk
    return b"".join(parts)


def jpeg_bytes(
    width: int, height: int, size: int | None = None, colour: Colour = _DEFAULT_COLOUR
) -> bytes:
    """A baseline JFIF of one flat colour; ``size`` pads it to exactly that many bytes."""
    _check_dimensions(width, height)
    jfif = _jpeg_segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    quant = _jpeg_segment(0xDB, b"\x00" + bytes([_JPEG_QUANT]) * 64)
    components = b"".join(bytes([ident, 0x11, 0]) for ident in (1, 2, 3))
    frame = _jpeg_segment(0xC0, struct.pack(">BHHB", 8, height, width, 3) + components)
    dc_counts = bytes([0, 0, 0, _DC_CATEGORIES] + [0] * 12)
    ac_counts = bytes([1] + [0] * 15)
    huffman = _jpeg_segment(
        0xC4,
        b"\x00" + dc_counts + bytes(range(_DC_CATEGORIES)) + b"\x10" + ac_counts + b"\x00",
    )
    scan_header = _jpeg_segment(0xDA, b"\x03\x01\x00\x02\x00\x03\x00\x00\x3f\x00")
    head = b"\xff\xd8" + jfif + quant + frame
    tail = huffman + scan_header + _jpeg_scan(width, height, colour)
    natural = len(head) + len(tail) + 2
    if size is None or size == natural:
        return head + tail + b"\xff\xd9"
    padding = size - natural
    if padding < 0:
        raise ValueError(f"a {width}x{height} JPEG needs at least {natural} bytes")
    if padding < 4:  # fill bytes (0xFF) may precede any marker (T.81 B.1.1.2)
        return head + tail + b"\xff" * padding + b"\xff\xd9"
    return head + _comment_padding(padding) + tail + b"\xff\xd9"


# --- WebP ------------------------------------------------------------------------------------


def webp_bytes(width: int, height: int, colour: Colour = _DEFAULT_COLOUR) -> bytes:
    """A lossless (VP8L) WebP of one flat colour.

    Every prefix code is a one-symbol "simple code", so each pixel costs zero bits: the
    bitstream is just the header and five codes naming the colour channels.
    """
    _check_dimensions(width, height, limit=16384)
    red, green, blue = _rgb(colour)
    bits = _LsbBitWriter()
    bits.write(width - 1, 14)
    bits.write(height - 1, 14)
    bits.write(0, 1)  # alpha unused
    bits.write(0, 3)  # version
    bits.write(0, 1)  # no transforms
    bits.write(0, 1)  # no colour cache
    bits.write(0, 1)  # no meta prefix codes
    for symbol in (green, red, blue, 255, 0):  # green, red, blue, alpha, distance
        bits.write(1, 1)  # simple code
        bits.write(0, 1)  # one symbol
        bits.write(1, 1)  # 8-bit symbol
        bits.write(symbol, 8)
    payload = b"\x2f" + bits.getvalue()
    chunk = b"VP8L" + struct.pack("<I", len(payload)) + payload + b"\x00" * (len(payload) % 2)
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


# --- MP4 / MOV -------------------------------------------------------------------------------

_UNITY_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
_TIMESCALE = 1000


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", len(body) + 8) + kind + body


def _full_box(kind: bytes, version_flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version_flags), *payload)


def _video_track(width: int, height: int, duration: int) -> bytes:
    tkhd = _full_box(
        b"tkhd",
        0x000003,  # enabled, in movie
        struct.pack(">IIIII", 0, 0, 1, 0, duration),
        b"\x00" * 8,
        struct.pack(">hhhH", 0, 0, 0, 0),
        _UNITY_MATRIX,
        struct.pack(">II", width << 16, height << 16),
    )
    mdhd = _full_box(b"mdhd", 0, struct.pack(">IIIIHH", 0, 0, _TIMESCALE, duration, 0x55C4, 0))
    hdlr = _full_box(b"hdlr", 0, b"\x00" * 4, b"vide", b"\x00" * 12, b"VideoHandler\x00")
    vmhd = _full_box(b"vmhd", 1, b"\x00" * 8)
    dref = _full_box(b"dref", 0, struct.pack(">I", 1), _full_box(b"url ", 1))
    empty_tables = (
        _full_box(b"stsd", 0, struct.pack(">I", 0)),
        _full_box(b"stts", 0, struct.pack(">I", 0)),
        _full_box(b"stsc", 0, struct.pack(">I", 0)),
        _full_box(b"stsz", 0, struct.pack(">II", 0, 0)),
        _full_box(b"stco", 0, struct.pack(">I", 0)),
    )
    minf = _box(b"minf", vmhd, _box(b"dinf", dref), _box(b"stbl", *empty_tables))
    return _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))


def mp4_bytes(
    width: int,
    height: int,
    duration_ms: int,
    size: int | None = None,
    brand: bytes = b"isom",
    moov_first: bool = True,
) -> bytes:
    """An ISO BMFF file (``ftyp``, ``moov``, ``mdat``) describing one video track.

    ``size`` pads ``mdat`` so the whole file is exactly that many bytes; ``moov_first=False``
    places ``moov`` after ``mdat``, as encoders that are not "fast start" do.
    """
    _check_dimensions(width, height)
    if len(brand) != 4:
        raise ValueError("an ISO BMFF brand is four bytes")
    if duration_ms < 0:
        raise ValueError("duration cannot be negative")
    ftyp = _box(b"ftyp", brand, struct.pack(">I", 0x200), brand, b"isom", b"mp41")
    mvhd = _full_box(
        b"mvhd",
        0,
        struct.pack(">IIII", 0, 0, _TIMESCALE, duration_ms),
        struct.pack(">IH", 0x10000, 0x100),
        b"\x00" * 10,
        _UNITY_MATRIX,
        b"\x00" * 24,
        struct.pack(">I", 2),
    )
    moov = _box(b"moov", mvhd, _video_track(width, height, duration_ms))
    minimum = len(ftyp) + len(moov) + 8
    if size is None:
        size = minimum
    if size < minimum:
        raise ValueError(f"this MP4 needs at least {minimum} bytes")
    if size > 2**32 - 1:
        raise ValueError("sizes above 4 GiB are not supported")
    mdat = struct.pack(">I", size - len(ftyp) - len(moov)) + b"mdat"
    filler = b"\x00" * (size - minimum)
    if moov_first:
        return b"".join((ftyp, moov, mdat, filler))
    return b"".join((ftyp, mdat, filler, moov))


def mov_bytes(
    width: int,
    height: int,
    duration_ms: int,
    size: int | None = None,
    moov_first: bool = True,
) -> bytes:
    """A QuickTime file: the same boxes as :func:`mp4_bytes` under the ``qt  `` brand."""
    return mp4_bytes(width, height, duration_ms, size=size, brand=b"qt  ", moov_first=moov_first)


__all__ = ["gif_bytes", "jpeg_bytes", "mov_bytes", "mp4_bytes", "png_bytes", "webp_bytes"]
