"""A minimal TIFF/EXIF reader (IFD0 and the Exif IFD) and the EXIF UserComment decoder.

Only the tags generators write are read. Every offset is bounds-checked, each IFD is visited
once (a loop of pointers ends), entry counts are capped, and a value running past the buffer
is kept as far as it goes and marked truncated rather than dropped.
"""

from __future__ import annotations

import re
import struct
from typing import Literal

from dreamflare_store.genmeta.source import Found, decode_text

__all__ = ["decode_user_comment", "orientation_tiff", "read_exif"]

_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}
_MAX_ENTRIES = 512
_EXIF_IFD = 0x8769
ORIENTATION = 0x0112
# The text tags generators write, by the raw-text key they are kept under.
_TEXT_TAGS = {
    0x010E: "ImageDescription",
    0x010F: "Make",
    0x0110: "Model",
    0x0131: "Software",
    0x9286: "UserComment",
    0x927C: "MakerNote",
    0x9C9C: "XPComment",
}
# ComfyUI's SaveAnimatedWEBP writes "prompt:{...}" and "workflow:{...}" into Make/Model.
_KEYED_JSON = re.compile(r"^([A-Za-z_][\w\-]{0,40}):\s*(?=[{\[\"])")
_CAMERA_TAGS = frozenset({"Make", "Model"})


def read_exif(tiff: bytes, found: Found) -> int | None:
    """Collect the text tags of a TIFF block into ``found``; return its orientation (1..8).

    A value that runs past the block (cut short by a read cap, or lying) is kept as far as
    it goes and marked truncated. Camera Make/Model strings are not kept: only ComfyUI's
    "key:{json}" in those tags is.
    """
    if tiff.startswith(b"Exif\x00\x00"):
        tiff = tiff[6:]
    if tiff[:4] == b"II*\x00":
        order: Literal["<", ">"] = "<"
    elif tiff[:4] == b"MM\x00*":
        order = ">"
    else:
        return None
    if len(tiff) < 8:
        return None
    orientation: int | None = None
    seen: set[int] = set()
    queue = [struct.unpack(order + "I", tiff[4:8])[0]]
    while queue:
        ifd = queue.pop(0)
        if ifd in seen or ifd < 8 or ifd + 2 > len(tiff) or len(seen) >= 4:
            continue
        seen.add(ifd)
        (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
        for k in range(min(count, _MAX_ENTRIES, (len(tiff) - ifd - 2) // 12)):
            at = ifd + 2 + 12 * k
            tag, kind, n, inline = struct.unpack(order + "HHII", tiff[at : at + 12])
            if tag == _EXIF_IFD and kind in (4, 13):
                queue.append(inline)
            elif tag == ORIENTATION and kind == 3 and n >= 1:
                value = struct.unpack(order + "H", tiff[at + 8 : at + 10])[0]
                orientation = value if 1 <= value <= 8 else None
            elif tag in _TEXT_TAGS:
                size = _SIZES.get(kind, 1) * n
                start = at + 8 if size <= 4 else inline
                if start >= len(tiff):
                    continue
                data = tiff[start : start + min(size, found.limits.max_text + 16)]
                _keep(found, _TEXT_TAGS[tag], data, order, len(data) < size)
    return orientation


def _keep(found: Found, name: str, data: bytes, order: str, truncated: bool) -> None:
    if name == "UserComment":
        text = decode_user_comment(data, big_endian=order == ">")
    elif name == "XPComment":
        text = data.decode("utf-16-le", "replace")
    else:
        text = decode_text(data.split(b"\x00", 1)[0], latin1=True)
    text = text.rstrip("\x00").strip()
    if not text:
        return
    keyed = _KEYED_JSON.match(text)
    if keyed and name in ("Make", "Model", "ImageDescription"):
        found.add_text(keyed.group(1), text[keyed.end() :], truncated)
    elif name not in _CAMERA_TAGS and not (name == "MakerNote" and len(text) > 64):
        # MakerNote is binary vendor data; only a short text (Fooocus' scheme) is kept.
        found.add_text(name, text, truncated)


_PREFIXES = {
    b"UNICODE\x00": "unicode",
    b"ASCII\x00\x00\x00": "ascii",
    b"JIS\x00\x00\x00\x00\x00": "jis",
    b"\x00" * 8: "undefined",
}


def decode_user_comment(data: bytes, *, big_endian: bool = True) -> str:
    """Decode an EXIF UserComment whatever its writer did with the charset prefix.

    The order is: the 8-byte charset id if present; then a BOM; then UTF-16 byte order by
    where the zero bytes sit (ASCII text in UTF-16 has a zero in every other byte; the wrong
    order would give CJK noise); then UTF-8; then Latin-1. Writers disagree on the byte
    order (piexif writes big-endian whatever the TIFF order; others little-endian), some
    put UTF-8 after "UNICODE\\0", and Fooocus writes no prefix at all.
    """
    kind = _PREFIXES.get(data[:8])
    body = data[8:] if kind else data
    if kind == "jis":
        return body.decode("shift_jis", "replace")
    if kind in ("ascii", None, "undefined") and body.count(0) * 4 < len(body):
        return decode_text(body, latin1=True)
    return _decode_unicode(body, big_endian)


def _decode_unicode(body: bytes, big_endian: bool) -> str:
    if body[:2] == b"\xfe\xff":
        return body[2:].decode("utf-16-be", "replace")
    if body[:2] == b"\xff\xfe":
        return body[2:].decode("utf-16-le", "replace")
    zero_even = sum(1 for b in body[0:4096:2] if b == 0)
    zero_odd = sum(1 for b in body[1:4096:2] if b == 0)
    if zero_even == zero_odd == 0:
        # No zero bytes: UTF-8 (the "UNICODE\0 + UTF-8" writers), or UTF-16 of non-Latin
        # text only, which UTF-8 rejects almost always.
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            pass
    elif zero_even != zero_odd:
        big_endian = zero_even > zero_odd
    if len(body) % 2:
        body = body[:-1]
    return body.decode("utf-16-be" if big_endian else "utf-16-le", "replace")


def orientation_tiff(orientation: int, *, exif_prefix: bool) -> bytes:
    """Return a minimal big-endian TIFF block holding only the orientation tag.

    It is what :func:`~dreamflare_store.genmeta.strip` keeps of EXIF: the one tag that
    changes how the pixels are shown. ``exif_prefix`` adds JPEG's "Exif\\0\\0" header.
    """
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", ORIENTATION, 3, 1, orientation, 0)
    tiff = b"MM\x00*" + struct.pack(">I", 8) + ifd + struct.pack(">I", 0)
    return (b"Exif\x00\x00" if exif_prefix else b"") + tiff
