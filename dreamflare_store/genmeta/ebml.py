"""WebM/Matroska (EBML): a walker that reads ``Tags`` (and the video size), and a stripper.

ComfyUI's VideoHelperSuite writes its JSON as the ``COMMENT`` tag: Segment > Tags > Tag >
SimpleTag (TagName, TagString). Clusters are skipped by their size; a cluster of unknown
size (live recording) is walked through, its blocks taken as siblings, until the next
top-level element. Stripping overwrites each ``Tags`` element in place with a ``Void``
element of the same size, so no cluster, cue or seek position moves.
"""

from __future__ import annotations

from typing import BinaryIO

from dreamflare_store.genmeta.source import (
    Found,
    Region,
    Source,
    StripError,
    copy_exact,
    write_zeros,
)

__all__ = ["MAGIC", "read_ebml", "strip_ebml"]

MAGIC = b"\x1a\x45\xdf\xa3"
_SEGMENT, _TAGS, _TAG, _SIMPLE_TAG = 0x18538067, 0x1254C367, 0x7373, 0x67C8
_TAG_NAME, _TAG_STRING = 0x45A3, 0x4487
_TRACKS, _TRACK_ENTRY, _VIDEO, _WIDTH, _HEIGHT = 0x1654AE6B, 0xAE, 0xE0, 0xB0, 0xBA
_UNKNOWN = -1
_VOID = 0xEC


def _vint(data: bytes, at: int, keep_marker: bool) -> tuple[int, int] | None:
    """Decode a variable-length integer; return (value or _UNKNOWN, length), or None."""
    if at >= len(data) or data[at] == 0:
        return None
    length = 9 - data[at].bit_length()
    if at + length > len(data):
        return None
    value = int.from_bytes(data[at : at + length], "big")
    if keep_marker:
        return value, length
    value &= (1 << (7 * length)) - 1
    return (_UNKNOWN if value == (1 << (7 * length)) - 1 else value), length


def _header(read: bytes) -> tuple[int, int, int] | None:
    """Parse an element header from up to 12 bytes: (id, size, header length)."""
    ident = _vint(read, 0, keep_marker=True)
    if ident is None or ident[1] > 4:
        return None
    size = _vint(read, ident[1], keep_marker=False)
    if size is None:
        return None
    return ident[0], size[0], ident[1] + size[1]


def _children(data: bytes) -> list[tuple[int, bytes]]:
    """(id, payload) of the elements in a buffer already read (Tags are small)."""
    out: list[tuple[int, bytes]] = []
    at = 0
    while at < len(data) and len(out) < 4096:
        head = _header(data[at : at + 12])
        if head is None or head[1] == _UNKNOWN:
            break
        ident, size, length = head
        out.append((ident, data[at + length : at + length + size]))
        at += length + size
    return out


def _next(src: Source) -> tuple[int, int, int] | None:
    """Read one element header exactly (a stream cannot step back): id, size, length."""
    head = src.read_header(1)
    if not head or head[0] == 0 or 9 - head[0].bit_length() > 4:
        return None
    head += src.read_header(8 - head[0].bit_length())
    first = src.read_header(1)
    if not first or first[0] == 0:
        return None
    head += first + src.read_header(8 - first[0].bit_length())
    return _header(head)


def read_ebml(src: Source, found: Found) -> None:
    """Walk the EBML header and the Segment's top level; read Tags and the video size."""
    first = _next(src)
    if first is None or first[0] != int.from_bytes(MAGIC, "big") or first[1] == _UNKNOWN:
        return
    src.skip(first[1])
    for _ in range(src.limits.max_units):
        at = src.pos
        element = _next(src)
        if element is None:
            return
        ident, size, length = element
        if ident == _SEGMENT or size == _UNKNOWN:
            continue  # descend: children follow as if they were siblings
        region = Region(src, size)
        if ident == _TAGS:
            _read_tags(region.read(min(size, src.limits.max_c2pa)), found)
        elif ident == _TRACKS:
            _read_tracks(region.read(min(size, 1 << 16)), found)
        if not region.finish() or src.pos <= at:
            return


def _read_tags(data: bytes, found: Found) -> None:
    for ident, tag in _children(data):
        if ident != _TAG:
            continue
        stack = [payload for kind, payload in _children(tag) if kind == _SIMPLE_TAG]
        while stack and found.want_text():
            fields = _children(stack.pop(0))
            name = next((p for k, p in fields if k == _TAG_NAME), b"")
            value = next((p for k, p in fields if k == _TAG_STRING), None)
            if name and value is not None:
                key = name.decode("utf-8", "replace")
                found.add_text(
                    key.lower() if key.isupper() else key, value.decode("utf-8", "replace")
                )
            stack.extend(p for k, p in fields if k == _SIMPLE_TAG)


def _read_tracks(data: bytes, found: Found) -> None:
    for ident, entry in _children(data):
        for kind, video in _children(entry) if ident == _TRACK_ENTRY else []:
            if kind == _VIDEO:
                sizes = {k: int.from_bytes(p[:8], "big") for k, p in _children(video)}
                if _WIDTH in sizes and _HEIGHT in sizes:
                    found.set_size(sizes[_WIDTH], sizes[_HEIGHT])
                    return


def strip_ebml(src: BinaryIO, dst: BinaryIO, limit: int) -> None:
    """Copy a WebM/Matroska file with every top-level Tags element overwritten by a Void.

    Raises StripError when an element runs past the end of the file.
    """
    end = src.seek(0, 2)
    src.seek(0)
    first = _header(src.read(12))
    if first is None or first[1] == _UNKNOWN:
        raise StripError("bad EBML header")
    at = first[2] + first[1]
    blanks: list[tuple[int, int]] = []
    while at < end:
        limit -= 1
        if limit < 0:
            raise StripError("too many elements")
        src.seek(at)
        element = _header(src.read(12))
        if element is None:
            raise StripError("bad EBML element")
        ident, size, length = element
        if ident == _SEGMENT or size == _UNKNOWN:
            at += length
            continue
        if at + length + size > end:
            raise StripError("an element runs past the end of the file")
        if ident == _TAGS and length + size >= 9:
            blanks.append((at, length + size))
        at += length + size
    src.seek(0)
    done = 0
    for offset, total in blanks:
        copy_exact(src, dst, offset - done)
        src.seek(offset + total)
        # A Void element with an 8-byte size field fills exactly ``total`` bytes.
        size = (total - 9) | (1 << 56)
        dst.write(bytes([_VOID]) + size.to_bytes(8, "big"))
        write_zeros(dst, total - 9)
        done = offset + total
    copy_exact(src, dst, end - done)
