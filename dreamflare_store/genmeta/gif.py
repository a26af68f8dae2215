"""GIF: a block walker that reads comment and XMP extensions, and a stripper.

AUTOMATIC1111 saves a GIF's generation text as a comment extension. Image data is a chain
of sub-blocks, skipped (or copied) one length byte at a time without decoding.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from dreamflare_store.genmeta.source import Found, Source, StripError, decode_text, read_exact

__all__ = ["read_gif", "strip_gif"]

_EXTENSION, _IMAGE, _TRAILER = 0x21, 0x2C, 0x3B
_COMMENT, _APPLICATION = 0xFE, 0xFF
# Application extensions that change how the image plays or looks: looping and ICC.
_KEEP_APPS = (b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012")
_XMP_APP = b"XMP DataXMP"


def _table(packed: int) -> int:
    """The size of the colour table a descriptor's flags announce (0 if none)."""
    return 3 << ((packed & 7) + 1) if packed & 0x80 else 0


def _screen(head: bytes) -> int:
    """The size of the header, screen descriptor and global colour table."""
    return 13 + _table(head[10])


def read_gif(src: Source, found: Found) -> None:
    """Walk the blocks to the trailer and collect comments and XMP into ``found``."""
    head = src.read_header(13)
    if len(head) < 13 or not head.startswith((b"GIF87a", b"GIF89a")):
        return
    found.set_size(*struct.unpack("<HH", head[6:10]))
    src.skip(_screen(head) - 13)
    for _ in range(src.limits.max_units):
        kind = src.read_header(1)
        if not kind or kind[0] not in (_EXTENSION, _IMAGE):
            return
        if kind[0] == _IMAGE:
            descriptor = src.read_header(9)  # position, size, flags
            if len(descriptor) < 9:
                return
            # The local colour table, then the LZW code size byte, then the data blocks.
            if not src.skip(_table(descriptor[8]) + 1) or not _skip_blocks(src):
                return
            continue
        label = src.read_header(1)
        if label == bytes([_COMMENT]):
            data, complete = _read_blocks(src, found.limits.max_text)
            found.add_text("comment", decode_text(data, latin1=True), not complete)
        elif label == bytes([_APPLICATION]):
            data, complete = _read_blocks(src, found.limits.max_text + 300, raw=True)
            if data[1:12] == _XMP_APP:
                # XMP is written raw, so its bytes read as sub-block lengths: keep the bytes
                # as they are and cut the 258-byte "magic trailer" that ends them.
                found.add_xmp(decode_text(data[12:].split(b"\x01\xff\xfe", 1)[0]), not complete)
        elif not label or not _skip_blocks(src):
            return


def _read_blocks(src: Source, cap: int, raw: bool = False) -> tuple[bytes, bool]:
    """Join sub-blocks up to ``cap`` bytes (with their length bytes when ``raw``); return
    them and whether the chain ended before the cap."""
    out = bytearray()
    while len(out) <= cap:
        size = src.read_header(1)
        if not size:
            return bytes(out), False
        if size[0] == 0:
            return bytes(out), True
        data = src.read(size[0])
        out += size + data if raw else data
        if len(data) < size[0]:
            return bytes(out), False
    _skip_blocks(src)
    return bytes(out[:cap]), False


def _skip_blocks(src: Source) -> bool:
    """Skip a sub-block chain; return False when the stream ends inside it."""
    while True:
        size = src.read_header(1)
        if not size:
            return False
        if size[0] == 0:
            return True
        if not src.skip(size[0]):
            return False


def strip_gif(src: BinaryIO, dst: BinaryIO, limit: int) -> None:
    """Copy a GIF without comment and application extensions (but looping and ICC).

    Image data, colour tables, graphic control and plain-text extensions pass byte for
    byte; anything after the trailer is dropped. Raises StripError on a truncated file.
    """
    head = read_exact(src, 13)
    if not head.startswith((b"GIF87a", b"GIF89a")):
        raise StripError("not a GIF")
    dst.write(head + read_exact(src, _screen(head) - 13))
    for _ in range(limit):
        kind = read_exact(src, 1)
        if kind[0] == _TRAILER:
            dst.write(kind)
            return
        if kind[0] == _IMAGE:
            descriptor = read_exact(src, 9)
            dst.write(kind + descriptor + read_exact(src, _table(descriptor[8]) + 1))
            _copy_blocks(src, dst)
            continue
        if kind[0] != _EXTENSION:
            raise StripError("unknown GIF block")
        label = read_exact(src, 1)
        keep = label[0] not in (_COMMENT, _APPLICATION)
        if label[0] == _APPLICATION:
            here = src.tell()
            keep = read_exact(src, 12)[1:] in _KEEP_APPS
            src.seek(here)
        if keep:
            dst.write(kind + label)
            _copy_blocks(src, dst)
        else:
            _copy_blocks(src, None)
    raise StripError("too many GIF blocks")


def _copy_blocks(src: BinaryIO, dst: BinaryIO | None) -> None:
    while True:
        size = read_exact(src, 1)
        data = read_exact(src, size[0])
        if dst is not None:
            dst.write(size + data)
        if size[0] == 0:
            return
