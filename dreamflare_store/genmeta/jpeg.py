"""JPEG: a marker walker that reads EXIF, XMP, COM and C2PA (APP11) segments, and a stripper.

All metadata precedes the first scan, so both stop at SOS: the entropy-coded data is never
read. Every segment is at most 64 KiB, so reading one whole is bounded by the format.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import BinaryIO

from dreamflare_store.genmeta.source import (
    Found,
    Limits,
    Source,
    StripError,
    decode_text,
    read_exact,
)
from dreamflare_store.genmeta.tiff import orientation_tiff, read_exif

__all__ = ["read_jpeg", "strip_jpeg"]

_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})
_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
_EXIF = b"Exif\x00"
_NO_TEXTS = Limits(max_texts=0)
_GARBAGE_MAX = 65536  # bytes of junk between segments tolerated before giving up


def _next_marker(read: Callable[[int], bytes]) -> int | None:
    """Return the next marker byte, after any fill bytes and a bounded run of junk."""
    for _ in range(_GARBAGE_MAX):
        byte = read(1)
        if not byte:
            return None
        if byte == b"\xff":
            break
    else:
        return None
    for _ in range(_GARBAGE_MAX):
        byte = read(1)
        if not byte:
            return None
        if byte != b"\xff":
            return byte[0]
    return None


def read_jpeg(src: Source, found: Found) -> None:
    """Walk the segments before the first scan and collect metadata into ``found``."""
    if src.read_header(2) != b"\xff\xd8":
        return
    app11: dict[int, list[tuple[int, bytes]]] = {}
    for _ in range(src.limits.max_units):
        marker = _next_marker(src.read_header)
        if marker is None or marker in (0xD9, 0xDA):
            break
        if marker in _STANDALONE:
            continue
        head = src.read_header(2)
        if len(head) < 2 or struct.unpack(">H", head)[0] < 2:
            break
        length = struct.unpack(">H", head)[0] - 2
        if marker in _SOF:
            sof = src.read_header(length)
            if len(sof) >= 5:
                height, width = struct.unpack(">HH", sof[1:5])
                found.set_size(width, height)
            continue
        if marker not in (0xE1, 0xEB, 0xFE):
            if not src.skip(length):
                break
            continue
        data = src.read(length)
        if len(data) < length:
            src.skip(length - len(data))
        if marker == 0xE1 and data.startswith(_EXIF):
            read_exif(data[6:], found)
        elif marker == 0xE1 and data.startswith(_XMP):
            found.add_xmp(decode_text(data[len(_XMP) :]))
        elif marker == 0xFE and data.strip(b"\x00 \r\n"):
            found.add_text("JPEG comment", decode_text(data.rstrip(b"\x00"), latin1=True))
        elif marker == 0xEB and data[:2] == b"JP" and len(data) >= 16:
            instance, sequence = struct.unpack(">HI", data[2:8])
            app11.setdefault(instance, []).append((sequence, data[8:]))
    for parts in app11.values():
        store = _reassemble(parts, src.limits.max_c2pa)
        if store[4:8] == b"jumb":
            found.c2pa.append(store)


def _reassemble(parts: list[tuple[int, bytes]], cap: int) -> bytes:
    """Join a JUMBF box split over APP11 segments: later ones repeat the 8-byte box header."""
    parts.sort(key=lambda part: part[0])
    out = bytearray(parts[0][1])
    for _, data in parts[1:]:
        if len(out) >= cap:
            break
        out += data[8:]
    return bytes(out[:cap])


def strip_jpeg(src: BinaryIO, dst: BinaryIO, limit: int) -> None:
    """Copy a JPEG without its metadata segments; the entropy-coded data passes byte for byte.

    Kept: APP0 (JFIF), APP2 ICC_PROFILE, APP14 (Adobe colour transform) and every non-APP
    segment (tables, frame and scan headers). APP1 EXIF is replaced by an EXIF holding only
    the orientation, when that is not the default, since viewers rotate by it (its
    thumbnail, which may show the unedited image, goes too). Dropped: other APP1 (XMP),
    other APPn (MPF, IPTC, C2PA), COM, between scans as well, and anything after EOI.
    Raises StripError when the file ends before its first scan.
    """
    if src.read(2) != b"\xff\xd8":
        raise StripError("not a JPEG")
    dst.write(b"\xff\xd8")
    scanned = False
    for _ in range(limit):
        byte = src.read(1)
        if not byte and scanned:
            return  # no EOI: the file is kept as complete as it was
        while byte != b"\xff":  # junk between segments is dropped, as decoders ignore it
            byte = read_exact(src, 1)
        while byte == b"\xff":
            byte = read_exact(src, 1)
        marker = byte[0]
        if marker in _STANDALONE:
            dst.write(b"\xff" + byte)
            continue
        if marker == 0xD9:
            if not scanned:
                raise StripError("JPEG ends before its first scan")
            dst.write(b"\xff\xd9")
            return
        head = read_exact(src, 2)
        length = struct.unpack(">H", head)[0]
        if length < 2:
            raise StripError("JPEG segment length out of range")
        data = read_exact(src, length - 2)
        if marker == 0xE1 and data.startswith(_EXIF):
            orientation = read_exif(data[6:], Found(_NO_TEXTS))
            if orientation not in (None, 1):
                block = orientation_tiff(orientation, exif_prefix=True)
                dst.write(b"\xff\xe1" + struct.pack(">H", len(block) + 2) + block)
        elif _keep(marker, data):
            dst.write(b"\xff" + byte + head + data)
        if marker == 0xDA:
            scanned = True
            _copy_entropy(src, dst)
    raise StripError("too many JPEG segments")


def _keep(marker: int, data: bytes) -> bool:
    if marker == 0xE2:
        return data.startswith(b"ICC_PROFILE\x00")
    return marker in (0xE0, 0xEE) or not (0xE0 <= marker <= 0xEF or marker == 0xFE)


def _copy_entropy(src: BinaryIO, dst: BinaryIO) -> None:
    """Copy entropy-coded data up to the next marker, and leave ``src`` on that marker.

    Inside a scan, 0xFF is followed by 0x00 (a stuffed byte), a restart marker or another
    0xFF (fill); anything else is a marker that ends the scan.
    """
    while True:
        base = src.tell()
        block = src.read(1 << 20)
        if not block:
            return
        at = 0
        while (k := block.find(b"\xff", at)) >= 0 and k + 1 < len(block):
            follower = block[k + 1]
            if follower == 0 or 0xD0 <= follower <= 0xD7 or follower == 0xFF:
                at = k + 1
                continue
            dst.write(block[:k])
            src.seek(base + k)
            return
        end = len(block) - 1 if k == len(block) - 1 else len(block)
        dst.write(block[:end])  # a 0xFF at the very end is looked at with what follows
        src.seek(base + end)
        if end == 0:
            dst.write(block)  # a lone 0xFF at the end of the file
            return
