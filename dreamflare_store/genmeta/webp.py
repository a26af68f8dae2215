"""WebP: a RIFF walker that reads EXIF, XMP and C2PA chunks, and a stripper.

The RIFF size is not trusted (writers get it wrong): the walk goes by chunk sizes until the
stream ends. Chunks of odd size are followed by one padding byte.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from dreamflare_store.genmeta.source import (
    Found,
    Limits,
    Region,
    Source,
    StripError,
    copy_exact,
    decode_text,
    read_exact,
)
from dreamflare_store.genmeta.tiff import orientation_tiff, read_exif

__all__ = ["read_webp", "strip_webp"]

_EXIF_FLAG, _XMP_FLAG = 0x08, 0x04
_NO_TEXTS = Limits(max_texts=0)
# Chunks that hold or shape the pixels; strip drops every other chunk.
_IMAGE = frozenset({b"VP8X", b"ICCP", b"ANIM", b"ANMF", b"ALPH", b"VP8 ", b"VP8L"})


def read_webp(src: Source, found: Found) -> None:
    """Walk the RIFF chunks and collect metadata into ``found``."""
    head = src.read_header(12)
    if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return
    for _ in range(src.limits.max_units):
        chunk = src.read_header(8)
        if len(chunk) < 8:
            return
        fourcc, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        region = Region(src, size + (size & 1))
        if fourcc in (b"VP8X", b"VP8 ", b"VP8L"):
            _size(fourcc, region.read(10), found)
        elif fourcc == b"EXIF":
            read_exif(region.read(min(size, src.limits.max_c2pa)), found)
        elif fourcc == b"XMP ":
            data = region.read(min(size, src.limits.max_text + 1))
            found.add_xmp(decode_text(data[: src.limits.max_text]), len(data) > src.limits.max_text)
        elif fourcc == b"C2PA":
            store = region.read(min(size, src.limits.max_c2pa))
            if store:
                found.c2pa.append(store)
        if not region.finish():
            return


def _size(fourcc: bytes, data: bytes, found: Found) -> None:
    if fourcc == b"VP8X" and len(data) >= 10:
        width = int.from_bytes(data[4:7], "little") + 1
        found.set_size(width, int.from_bytes(data[7:10], "little") + 1)
    elif fourcc == b"VP8 " and len(data) >= 10 and data[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[6:10])
        found.set_size(width & 0x3FFF, height & 0x3FFF)
    elif fourcc == b"VP8L" and len(data) >= 5 and data[0] == 0x2F:
        bits = int.from_bytes(data[1:5], "little")
        found.set_size((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)


def strip_webp(src: BinaryIO, dst: BinaryIO, limit: int) -> None:
    """Copy a WebP keeping only its image chunks, with the RIFF size and VP8X flags fixed.

    EXIF is replaced by an EXIF holding only the orientation, when that is not the default;
    XMP, C2PA and unknown chunks are dropped. The chunks are planned in a first pass over
    their headers (seeks only), so the RIFF size is known before anything is written.
    Raises StripError when an image chunk is cut short.
    """
    head = src.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        raise StripError("not a WebP")
    end = src.seek(0, 2)
    plan: list[tuple[bytes, int, int]] = []  # fourcc, payload offset, size
    at = 12
    while at + 8 <= end and len(plan) < limit:
        src.seek(at)
        fourcc, size = struct.unpack("<4sI", read_exact(src, 8))
        if at + 8 + size > end:
            if fourcc in _IMAGE:
                raise StripError("WebP ends inside an image chunk")
            break
        plan.append((fourcc, at + 8, size))
        at += 8 + size + (size & 1)
    orientation = _orientation(src, plan)
    exif = orientation_tiff(orientation, exif_prefix=False) if orientation else b""
    kept = [(f, o, s) for f, o, s in plan if f in _IMAGE]
    if not any(f in (b"VP8 ", b"VP8L", b"ANMF") for f, _, _ in kept):
        raise StripError("WebP without image data")
    extended = kept[0][0] == b"VP8X"
    body = sum(8 + s + (s & 1) for _, _, s in kept) + (8 + len(exif) if extended and exif else 0)
    dst.write(b"RIFF" + struct.pack("<I", 4 + body) + b"WEBP")
    for fourcc, offset, size in kept:
        src.seek(offset)
        if fourcc == b"VP8X" and size >= 1:
            flags = read_exact(src, 1)[0] & ~(_EXIF_FLAG | _XMP_FLAG)
            flags |= _EXIF_FLAG if exif else 0
            dst.write(fourcc + struct.pack("<I", size) + bytes([flags]))
            copy_exact(src, dst, size - 1)
        else:
            dst.write(fourcc + struct.pack("<I", size))
            copy_exact(src, dst, size)
        dst.write(b"\x00" * (size & 1))  # the padding byte, even if the source lacks it
    if extended and exif:
        # EXIF goes after the image data, where the container spec orders it.
        dst.write(b"EXIF" + struct.pack("<I", len(exif)) + exif + b"\x00" * (len(exif) & 1))


def _orientation(src: BinaryIO, plan: list[tuple[bytes, int, int]]) -> int | None:
    for fourcc, offset, size in plan:
        if fourcc == b"EXIF" and size <= 1024 * 1024:
            src.seek(offset)
            value = read_exif(read_exact(src, size), Found(_NO_TEXTS))
            return value if value not in (None, 1) else None
    return None
