"""PNG: a chunk walker that reads text, eXIf and caBX chunks, and a stripper.

The walker goes on to IEND, seeking past IDAT, because text chunks may follow the pixel data
(Pillow's ``.info`` misses those). Compressed texts are inflated with a cap, so a zTXt bomb
costs at most ``Limits.max_text`` bytes.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from typing import BinaryIO

from dreamflare_store.genmeta.source import (
    Found,
    Limits,
    Region,
    Source,
    StripError,
    copy_exact,
    decode_text,
    inflate,
    read_exact,
    skip_exact,
)
from dreamflare_store.genmeta.tiff import orientation_tiff, read_exif

__all__ = ["SIGNATURE", "read_png", "read_png_bytes", "strip_png"]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT = (b"tEXt", b"zTXt", b"iTXt")
_HEADER_MAX = 4096  # keyword, flags and language tags of an iTXt chunk
# Ancillary chunks that change how the pixels look (colour, transparency, gamma, HDR,
# animation) or their physical size: strip keeps these and drops every other ancillary one.
_KEEP = frozenset(
    {b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"cICP", b"mDCV", b"cLLI", b"mDCv"}
    | {b"cLLi", b"sBIT", b"bKGD", b"hIST", b"pHYs", b"sPLT", b"acTL", b"fcTL", b"fdAT"}
)


_NO_TEXTS = Limits(max_texts=0)
_HEAD = struct.Struct(">I4s")
_SIZE = struct.Struct(">II")
# Chunks the in-memory walker leaves to the streaming one (compressed or structured).
_STREAMED = frozenset({b"zTXt", b"iTXt", b"eXIf", b"caBX"})
_SHORT_TEXT = 64 * 1024


def read_png_bytes(data: bytes, found: Found) -> bool:
    """Read a PNG held in memory exactly as ``read_png`` would, when its metadata is only
    short tEXt chunks and it is whole (the common case: a render's parameters); return
    False, ``found`` untouched, for any other file, which ``read_png`` then walks.

    It exists because uploads hold small files in memory: chunk headers are unpacked in
    place, with no stream, no region objects and no copies of the pixel data.
    """
    if not data.startswith(SIGNATURE):
        return False
    limits = found.limits
    at, end = 8, len(data)
    sizes: list[tuple[int, int]] = []
    texts: list[tuple[int, int]] = []
    total = 0
    for _ in range(limits.max_units):
        if at + 8 > end:
            return False  # no IEND: the streaming walker decides what a cut file yields
        length, ctype = _HEAD.unpack_from(data, at)
        body = at + 8
        at = body + length + 4
        if length > 0x7FFFFFFF or at > end or ctype in _STREAMED:
            return False
        if ctype == b"IHDR" and length >= 8:
            sizes.append(_SIZE.unpack_from(data, body))
            total += 8
        elif ctype == b"tEXt":
            total += length
            if length > _SHORT_TEXT or total > limits.max_read:
                return False
            texts.append((body, length))
        elif ctype == b"IEND":
            break
    else:
        return False
    for width, height in sizes:
        found.set_size(width, height)
    for body, length in texts:
        if found.want_text():
            _text_at(data, body, length, found)
    return True


def _text_at(data: bytes, body: int, length: int, found: Found) -> None:
    """``_read_text`` of a tEXt chunk whose ``length`` bytes start at ``body``."""
    cap = found.room()
    head = min(length, 80)
    nul = data.find(b"\x00", body, body + head) - body
    if nul < 1 or nul > 79:
        return  # keywords are 1-79 bytes (a missing NUL gives -1 - body, below 1)
    key = data[body : body + nul].decode("latin-1")
    start = body + nul + 1
    more = cap + 1 - (head - nul - 1)
    stop = body + head + min(more, length - head) if more > 0 else body + head
    text = data[start:stop]
    # The whole chunk is here, so only the cap cuts a text (one byte past it is read).
    cut = len(text) > cap
    found.add_text(key, decode_text(text[:cap], latin1=True), cut)


def read_png(src: Source, found: Found) -> None:
    """Walk every chunk from IHDR to IEND and collect metadata into ``found``."""
    if src.read_header(8) != SIGNATURE:
        return
    for _ in range(src.limits.max_units):
        head = src.read_header(8)
        if len(head) < 8:
            return
        length, ctype = struct.unpack(">I4s", head)
        if length > 0x7FFFFFFF:
            return  # the spec caps lengths at 2**31-1: the rest is not a PNG any more
        region = Region(src, length)
        if ctype == b"IHDR" and length >= 8:
            size = region.read(8)
            if len(size) == 8:
                found.set_size(*struct.unpack(">II", size))
        elif ctype in _TEXT and found.want_text():
            _read_text(ctype, region, found)
        elif ctype == b"eXIf" and length <= src.limits.max_text:
            read_exif(region.read(length), found)
        elif ctype == b"caBX":
            store = region.read(min(length, src.limits.max_c2pa))
            if store:
                found.c2pa.append(store)
        if not region.finish() or not src.skip(4) or ctype == b"IEND":
            return


def _read_text(ctype: bytes, region: Region, found: Found) -> None:
    cap = found.room()
    head = region.read(min(region.left, 80 if ctype == b"tEXt" else _HEADER_MAX))
    nul = head.find(b"\x00")
    if nul < 1 or nul > 79:
        return  # keywords are 1-79 bytes
    key, rest = head[:nul].decode("latin-1"), head[nul + 1 :]
    if ctype == b"tEXt":
        data = rest + region.read(cap + 1 - len(rest))
        # Bytes left unread mean the cap, the budget or the end of the file cut the text.
        cut = len(data) > cap or region.left > 0
        found.add_text(key, decode_text(data[:cap], latin1=True), cut)
        return
    if ctype == b"zTXt":
        compressed, body = True, rest[1:]
    else:
        fields = rest[2:].split(b"\x00", 2)  # language tag, translated keyword, text
        if len(rest) < 2 or len(fields) < 3:
            return
        compressed, body = rest[0] == 1, fields[2]
    if compressed:
        data, cut = inflate(itertools.chain([body], region.pieces(found.limits.max_read)), cap)
    else:
        data = body + region.read(cap + 1 - len(body))
        cut, data = len(data) > cap or region.left > 0, data[:cap]
    value = decode_text(data, latin1=ctype == b"zTXt")
    if key == "XML:com.adobe.xmp":
        found.add_xmp(value, cut)
    else:
        found.add_text(key, value, cut)


def _chunk(ctype: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(ctype + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", crc)


def strip_png(src: BinaryIO, dst: BinaryIO, limit: int) -> None:
    """Copy a PNG without its metadata chunks; the pixel chunks pass byte for byte.

    Critical chunks and the ancillary chunks in ``_KEEP`` are copied unchanged. eXIf is
    rewritten to hold the orientation only, since viewers apply it. Raises StripError when
    the file ends inside a chunk or has no IEND.
    """
    if src.read(8) != SIGNATURE:
        raise StripError("not a PNG signature")
    dst.write(SIGNATURE)
    for _ in range(limit):
        head = src.read(8)
        if len(head) < 8:
            raise StripError("PNG ends before IEND")
        length, ctype = struct.unpack(">I4s", head)
        if length > 0x7FFFFFFF:
            raise StripError("PNG chunk length out of range")
        critical = ctype[0] & 0x20 == 0
        if ctype == b"eXIf" and length <= 1024 * 1024:
            block = read_exact(src, length + 4)
            orientation = read_exif(block[:-4], Found(_NO_TEXTS))
            if orientation not in (None, 1):
                dst.write(_chunk(b"eXIf", orientation_tiff(orientation, exif_prefix=False)))
        elif critical or ctype in _KEEP:
            dst.write(head)
            copy_exact(src, dst, length + 4)
        else:
            skip_exact(src, length + 4)
        if ctype == b"IEND":
            return
    raise StripError("too many PNG chunks")
