"""MP4/MOV (ISO-BMFF): a box walker that reads metadata and C2PA boxes, and a stripper.

The walker descends only into ``moov`` and the boxes that hold metadata inside it, and
skips ``mdat`` wherever it sits. Metadata lives at ``moov/udta/meta`` or ``moov/meta``
(or both), as iTunes ``ilst`` items or QuickTime ``keys`` (the ``mdta`` handler that
ffmpeg's ``use_metadata_tags`` writes); C2PA and XMP are top-level ``uuid`` boxes.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from dreamflare_store.genmeta.source import (
    Found,
    Region,
    Source,
    StripError,
    copy_exact,
    decode_text,
    read_exact,
    write_zeros,
)

__all__ = ["C2PA_UUID", "read_bmff", "strip_bmff"]

C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
XMP_UUID = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")
_CONTAINERS = frozenset({b"moov", b"udta", b"trak"})
_ITEM_NAMES = {
    b"\xa9cmt": "comment",
    b"\xa9too": "encoder",
    b"\xa9nam": "title",
    b"\xa9des": "description",
    b"desc": "description",
    b"\xa9inf": "information",
}
_QT_PREFIX = "com.apple.quicktime."
_MAX_DEPTH = 8


def _box(src: Source, limit: int) -> tuple[bytes, int, int] | None:
    """Read a box header; return (type, header size, payload size), or None at the end."""
    head = src.read_header(8)
    if len(head) < 8:
        return None
    size, kind = struct.unpack(">I4s", head)
    header = 8
    if size == 1:
        large = src.read_header(8)
        if len(large) < 8:
            return None
        size, header = struct.unpack(">Q", large)[0], 16
    elif size == 0:
        size = limit  # "to the end of the enclosing box or file"
    if size < header or size > limit:
        return None
    return kind, header, size - header


def read_bmff(src: Source, found: Found) -> None:
    """Walk the top-level boxes (and moov's metadata) and collect into ``found``."""
    _walk(src, found, 1 << 62, 0, [src.limits.max_units])


def _walk(src: Source, found: Found, length: int, depth: int, units: list[int]) -> None:
    while length >= 8 and units[0] > 0:
        units[0] -= 1
        box = _box(src, length)
        if box is None:
            return
        kind, header, size = box
        length -= header + size
        region = Region(src, size)
        if kind in _CONTAINERS and depth < _MAX_DEPTH:
            start = src.pos
            _walk(src, found, size, depth + 1, units)
            region.left = max(0, start + size - src.pos)  # what the children left unread
        elif kind == b"meta" and depth > 0:
            _read_meta(region, found, units)
        elif kind == b"tkhd":
            _track_size(region.read(min(size, 104)), found)
        elif kind == b"uuid" and depth == 0:
            _read_uuid(region, found)
        elif kind in _ITEM_NAMES and depth > 0:
            data = region.read(min(size, found.limits.max_text + 4))
            if len(data) >= 4:  # QuickTime udta text: u16 length, u16 language, text
                found.add_text(_ITEM_NAMES[kind], decode_text(data[4:]), size > len(data))
        if not region.finish():
            return


def _track_size(data: bytes, found: Found) -> None:
    if len(data) >= 84:
        width, height = struct.unpack(">II", data[-8:])
        found.set_size(width >> 16, height >> 16)  # 16.16 fixed point


def _read_uuid(region: Region, found: Found) -> None:
    usertype = region.read(16)
    if usertype == XMP_UUID:
        xmp = decode_text(region.read(min(region.left, found.limits.max_text)))
        found.add_xmp(xmp, region.left > 0)
    elif usertype == C2PA_UUID:
        head = region.read(min(region.left, 4 + 64 + 8))  # version/flags, purpose, offset
        nul = head.find(b"\x00", 4)
        if nul < 0 or head[4:nul] != b"manifest":
            return
        rest = head[nul + 1 + 8 :]
        store = rest + region.read(max(0, found.limits.max_c2pa - len(rest)))
        if store:
            found.c2pa.append(store)


def _read_meta(region: Region, found: Found, units: list[int]) -> None:
    """Read a meta box: ``keys`` names (mdta) and ``ilst`` items, either handler."""
    first = region.read(min(region.left, 8))
    # ISO meta is a FullBox (4 bytes of version and flags before its children); QuickTime's
    # is not. A child box type right after the first 4 bytes means no FullBox header.
    pending = first if first[4:8] in (b"hdlr", b"keys", b"ilst") else first[4:]
    keys: list[str] = []
    items: list[tuple[bytes, str, bool]] = []
    while region.left + len(pending) >= 8 and units[0] > 0:
        units[0] -= 1
        head = pending + region.read(8 - len(pending))
        pending = b""
        if len(head) < 8:
            break
        size, kind = struct.unpack(">I4s", head)
        if size < 8 or size - 8 > region.left:
            break  # what was read so far is still kept below
        child = Region(region.src, size - 8)
        region.left -= size - 8
        if kind == b"keys":
            keys = _keys(child.read(min(size - 8, 1 << 16)))
        elif kind == b"ilst":
            items = _ilst(child, found.limits.max_text, units)
        if not child.finish():
            break
    for name, text, cut in items:
        if len(name) == 4 and name in _ITEM_NAMES:
            found.add_text(_ITEM_NAMES[name], text, cut)
        elif 1 <= (index := int.from_bytes(name, "big")) <= len(keys):
            key = keys[index - 1]
            found.add_text(key.removeprefix(_QT_PREFIX), text, cut)


def _keys(data: bytes) -> list[str]:
    names: list[str] = []
    at = 8  # version/flags, entry count
    while at + 8 <= len(data) and len(names) < 256:
        size = struct.unpack(">I", data[at : at + 4])[0]
        if size < 8:
            break
        names.append(decode_text(data[at + 8 : at + size]))
        at += size
    return names


def _ilst(region: Region, cap: int, units: list[int]) -> list[tuple[bytes, str, bool]]:
    """Return (item name, text, truncated) for each ilst item holding a UTF-8 data box."""
    items: list[tuple[bytes, str, bool]] = []
    while region.left >= 8 and units[0] > 0 and len(items) < 256:
        units[0] -= 1
        size, name = struct.unpack(">I4s", region.read(8))
        if size < 8 or size - 8 > region.left:
            break
        item = Region(region.src, size - 8)
        region.left -= size - 8
        head = item.read(min(item.left, 16))  # data box: size, "data", type, locale
        if len(head) == 16 and head[4:8] == b"data" and head[8:12] in (b"\0\0\0\1", b"\0\0\0\0"):
            value_size = struct.unpack(">I", head[:4])[0] - 16
            data = item.read(min(max(value_size, 0), cap))
            items.append((name, decode_text(data), value_size > len(data)))
        if not item.finish():
            break
    return items


def strip_bmff(src: BinaryIO, dst: BinaryIO, limit: int) -> None:
    """Copy an MP4/MOV with its metadata boxes overwritten in place by ``free`` boxes.

    Blanked: ``udta`` and ``meta`` under ``moov`` and its tracks, and top-level ``uuid``
    boxes holding C2PA or XMP. Each keeps its size and offset, so the sample offsets in
    ``stco``/``co64`` stay valid; its payload becomes zeros. Raises StripError when a box
    header runs past the end of the file.
    """
    end = src.seek(0, 2)
    blanks: list[tuple[int, int, int]] = []  # offset, header size, payload size
    _plan(src, 0, end, 0, blanks, [limit])
    src.seek(0)
    at = 0
    for offset, header, size in blanks:
        copy_exact(src, dst, offset - at)
        src.seek(offset + header + size)
        if header == 8:
            dst.write(struct.pack(">I4s", header + size, b"free"))
        else:
            dst.write(struct.pack(">I4sQ", 1, b"free", header + size))
        write_zeros(dst, size)
        at = offset + header + size
    copy_exact(src, dst, end - at)


def _plan(
    src: BinaryIO, at: int, end: int, depth: int, out: list[tuple[int, int, int]], units: list[int]
) -> None:
    while at + 8 <= end:
        units[0] -= 1
        if units[0] < 0:
            raise StripError("too many boxes")
        src.seek(at)
        size, kind = struct.unpack(">I4s", read_exact(src, 8))
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", read_exact(src, 8))[0], 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            raise StripError("a box runs past its parent")
        payload = size - header
        if depth > 0 and kind in (b"udta", b"meta"):
            out.append((at, header, payload))
        elif depth == 0 and kind == b"uuid" and payload >= 16:
            if read_exact(src, 16) in (C2PA_UUID, XMP_UUID):
                out.append((at, header, payload))
        elif kind in (b"moov", b"trak") and depth < _MAX_DEPTH:
            _plan(src, at + header, at + size, depth + 1, out, units)
        at += size
