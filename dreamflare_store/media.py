"""Content sniffing for uploaded media: MIME type and pixel dimensions from leading bytes.

The engine buffers the first ``SNIFF_BYTES`` of every upload while streaming the rest to disk,
then calls :func:`sniff` on that buffer. The type is decided from the bytes first; only when
they say nothing (``application/octet-stream``) does :func:`declared_mime` take the client's
Content-Type, then the filename's extension, and then only a media type from a fixed list
(never HTML, SVG or script, which a browser would run when the bytes are served).

Only container headers are parsed; no pixels are decoded, so this module needs nothing beyond
the standard library. Input is untrusted: every read is bounds-checked, every loop advances by
at least one byte, and no buffer is ever sized from a length field in the data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias

__all__ = ["SNIFF_BYTES", "MediaInfo", "declared_mime", "sniff"]

# JPEG writers put EXIF (up to 64 KiB), XMP, ICC profiles (split over several 64 KiB APP2
# segments) and Photoshop blocks *before* the SOF marker that holds the size. 256 KiB covers
# camera and editor output in practice while staying cheap to hold per in-flight upload.
SNIFF_BYTES: int = 256 * 1024

OCTET_STREAM = "application/octet-stream"
_MAX_DIM = 1_000_000


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What :func:`sniff` could tell: ``width``/``height`` are None when unknown."""

    mime: str
    width: int | None = None
    height: int | None = None


class _Truncated(Exception):
    """A read ran past the buffer: the header we need is not (all) in ``head``."""


def _uint(b: bytes, off: int, size: int, order: Literal["big", "little"] = "big") -> int:
    # int.from_bytes on a short slice silently returns a wrong number, so check explicitly.
    if off < 0 or off + size > len(b):
        raise _Truncated
    return int.from_bytes(b[off : off + size], order)


Dims: TypeAlias = tuple[int, int] | None


def _sane(dims: Dims) -> bool:
    return dims is not None and all(1 <= d <= _MAX_DIM for d in dims)


# --- dimension readers: take the whole head, return (width, height) or raise _Truncated ---


def _png_dims(b: bytes) -> Dims:
    # IHDR must be the first chunk: length(4) "IHDR" width(4) height(4).
    if b[12:16] != b"IHDR":
        return None
    return _uint(b, 16, 4), _uint(b, 20, 4)


def _gif_dims(b: bytes) -> Dims:
    return _uint(b, 6, 2, "little"), _uint(b, 8, 2, "little")


def _bmp_dims(b: bytes) -> Dims:
    if _uint(b, 14, 4, "little") == 12:  # OS/2 BITMAPCOREHEADER: unsigned 16-bit fields
        return _uint(b, 18, 2, "little"), _uint(b, 20, 2, "little")
    width, height = _uint(b, 18, 4, "little"), _uint(b, 22, 4, "little")
    if height >= 1 << 31:  # signed: negative height means rows are stored top-down
        height = (1 << 32) - height
    return width, height  # a negative width reads as > 2**31 and is rejected as nonsense


def _webp_dims(b: bytes) -> Dims:
    chunk = b[12:16]
    if chunk == b"VP8 ":  # lossy: 3-byte frame tag, start code, then 14-bit sizes
        if b[23:26] != b"\x9d\x01\x2a":
            return None
        return _uint(b, 26, 2, "little") & 0x3FFF, _uint(b, 28, 2, "little") & 0x3FFF
    if chunk == b"VP8L":  # lossless: signature byte, then two 14-bit (size - 1) fields
        if _uint(b, 20, 1) != 0x2F:
            return None
        bits = _uint(b, 21, 4, "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: flags(4), then 24-bit canvas (size - 1) fields
        return _uint(b, 24, 3, "little") + 1, _uint(b, 27, 3, "little") + 1
    return None


def _tiff_dims(b: bytes) -> Dims:
    order: Literal["big", "little"] = "little" if b[:2] == b"II" else "big"
    ifd = _uint(b, 4, 4, order)
    count = _uint(b, ifd, 2, order)
    found: dict[int, int] = {}
    # Only the entries actually present in the buffer are visited, whatever `count` claims.
    for k in range(min(count, max(0, (len(b) - ifd - 2) // 12))):
        entry = ifd + 2 + 12 * k
        tag, kind = _uint(b, entry, 2, order), _uint(b, entry + 2, 2, order)
        if tag in (256, 257) and kind in (3, 4):  # ImageWidth/ImageLength as SHORT or LONG
            found[tag] = _uint(b, entry + 8, 2 if kind == 3 else 4, order)
    return (found[256], found[257]) if 256 in found and 257 in found else None


# SOF0..SOF15 minus DHT (C4), JPG (C8) and DAC (CC), which share the range but carry no size.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers with no length field: TEM, RST0-7, SOI.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})


def _jpeg_dims(b: bytes) -> Dims:
    i = 2  # past SOI
    while True:
        if _uint(b, i, 1) != 0xFF:
            return None  # not at a marker: corrupt, and guessing could report a thumbnail
        while _uint(b, i, 1) == 0xFF:  # any number of 0xFF fill bytes may precede a marker
            i += 1
        marker = _uint(b, i, 1)
        i += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD9, 0xDA, 0x00):  # EOI, or scan data before any SOF: give up
            return None
        if marker in _JPEG_SOF:  # length(2) precision(1) height(2) width(2)
            return _uint(b, i + 5, 2), _uint(b, i + 3, 2)
        # Skip the segment by its length, so SOFs of EXIF thumbnails inside APP1 are never
        # mistaken for the image's own. The length includes itself, so it is at least 2.
        i += max(2, _uint(b, i, 2))


def _ispe_dims(b: bytes) -> Dims:
    # Walking meta/iprp/ipco properly needs a box parser; scanning for the 20-byte `ispe`
    # property is far cheaper. HEIC grids and thumbnails add smaller ispe boxes (tiles,
    # previews), so the largest sane one is the primary image's canvas.
    best: tuple[int, int] = (0, 0)
    at = b.find(b"ispe", 4)
    while at != -1 and at + 16 <= len(b):
        dims = _uint(b, at + 8, 4), _uint(b, at + 12, 4)
        if _uint(b, at - 4, 4) == 20 and _sane(dims) and dims[0] * dims[1] > best[0] * best[1]:
            best = dims
        at = b.find(b"ispe", at + 4)
    return best if best != (0, 0) else None


# --- container detection ---

_AVIF = frozenset({b"avif", b"avis"})
_HEIC = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"})
_HEIF = frozenset({b"mif1", b"msf1"})  # generic HEIF; may hold AVIF, HEVC or JPEG items
_M4A = frozenset({b"M4A ", b"M4B ", b"M4P "})
_MP4 = frozenset(
    {b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso8", b"iso9", b"mp41", b"mp42"}
    | {b"mp71", b"avc1", b"dash", b"M4V ", b"M4VH", b"M4VP", b"f4v ", b"mmp4", b"MSNV"}
)
# Pre-ftyp QuickTime files start straight with one of these atoms.
_QT_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"pnot"})


def _bmff_mime(b: bytes) -> str:
    size = _uint(b, 0, 4)
    end = min(size if size >= 16 else 16, len(b), 16 + 4 * 64)  # cap: no real file has 64
    brands = [b[8:12]] + [b[k : k + 4] for k in range(16, end - 3, 4)]
    # Generic brands (isom, mif1) appear in many files; the most specific one wins.
    if any(x in _AVIF for x in brands):
        return "image/avif"
    if any(x in _HEIC for x in brands):
        return "image/heic"
    if any(x in _HEIF for x in brands):
        return "image/heif"
    if brands[0] == b"qt  ":
        return "video/quicktime"
    if brands[0] in _M4A:
        return "audio/mp4"
    return "video/mp4" if any(x in _MP4 for x in brands) else OCTET_STREAM


def _ebml_vint(b: bytes, i: int, keep_marker: bool = False) -> tuple[int, int]:
    """Decode an EBML variable-length integer at ``i``; return (value, next offset)."""
    first = _uint(b, i, 1)
    length = 9 - first.bit_length()  # leading zero bits + 1; 9 means first == 0: invalid
    if length > 8:
        raise _Truncated
    value = _uint(b, i, length)
    if not keep_marker:
        value &= (1 << (7 * length)) - 1
    return value, i + length


def _ebml_mime(b: bytes) -> str:
    size, i = _ebml_vint(b, 4)
    end = min(len(b), i + size)  # "unknown size" (all ones) just means "to the buffer's end"
    while i < end:
        element, i = _ebml_vint(b, i, keep_marker=True)
        length, i = _ebml_vint(b, i)
        if element == 0x4282:  # DocType
            doctype = b[i : i + min(length, 32)].rstrip(b"\0")
            if doctype == b"webm":
                return "video/webm"
            return "video/x-matroska" if doctype == b"matroska" else OCTET_STREAM
        i += length  # each step consumes >= 2 bytes, so this terminates
    return "video/x-matroska"  # Matroska's spec makes "matroska" the DocType default


def _mime(b: bytes) -> str:
    # SVG is deliberately not recognised: it is XML that can carry script, so serving it as
    # an image is an XSS vector; callers get application/octet-stream instead.
    if b.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if b.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if b.startswith(b"RIFF") and b[8:12] == b"WEBP":
        return "image/webp"
    if b.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    # "BM" alone is too weak a signature; also require a known DIB header size.
    if b.startswith(b"BM") and _uint(b, 14, 4, "little") in (12, 16, 40, 52, 56, 64, 108, 124):
        return "image/bmp"
    if b.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):  # classic and BigTIFF
        return "image/tiff"
    if b[4:8] == b"ftyp":
        return _bmff_mime(b)
    if b.startswith(b"\x1a\x45\xdf\xa3"):
        try:
            return _ebml_mime(b)
        except _Truncated:  # EBML magic but header cut short: Matroska is the likely family
            return "video/x-matroska"
    if b[4:8] in _QT_ATOMS:
        return "video/quicktime"
    return OCTET_STREAM


_DIMENSIONS: dict[str, Callable[[bytes], Dims]] = {
    "image/png": _png_dims,
    "image/jpeg": _jpeg_dims,
    "image/webp": _webp_dims,
    "image/gif": _gif_dims,
    "image/bmp": _bmp_dims,
    "image/tiff": _tiff_dims,
    "image/avif": _ispe_dims,
    "image/heic": _ispe_dims,
    "image/heif": _ispe_dims,
}


def sniff(head: bytes | bytearray | memoryview) -> MediaInfo:
    """Identify media from its first bytes (pass at least ``SNIFF_BYTES`` when available).

    Never raises. Unknown or unreadable data is ``application/octet-stream``; width and height
    are both None unless both were read and lie in 1..1,000,000.
    """
    b = bytes(head)  # no copy when already bytes; bytes gives us startswith/find
    # Readers signal "ran off the end" by raising _Truncated (IndexError can't occur: every
    # read goes through _uint). That is the normal outcome for a short head, not an error.
    try:
        mime = _mime(b)
    except _Truncated:
        # Only reachable for a "BM" prefix too short to confirm as a bitmap.
        mime = OCTET_STREAM
    reader = _DIMENSIONS.get(mime)
    try:
        dims = reader(b) if reader is not None else None
    except _Truncated:
        dims = None
    if dims is None or not _sane(dims):
        return MediaInfo(mime)
    return MediaInfo(mime, dims[0], dims[1])


# The types a client may declare for bytes the sniffer does not recognise: media a browser
# shows but never runs. Extensions map onto the same list.
_DECLARABLE = frozenset(
    {
        "image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp", "image/tiff",
        "image/avif", "image/heic", "image/heif", "video/mp4", "video/webm",
        "video/x-matroska", "video/quicktime", "video/mpeg", "video/ogg", "video/x-msvideo",
        "audio/mpeg", "audio/ogg", "audio/wav", "audio/flac", "audio/mp4",
    }
)  # fmt: skip
_EXTENSIONS = {
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
    "gif": "image/gif", "bmp": "image/bmp", "tif": "image/tiff", "tiff": "image/tiff",
    "avif": "image/avif", "heic": "image/heic", "heif": "image/heif", "mp4": "video/mp4",
    "m4v": "video/mp4", "webm": "video/webm", "mkv": "video/x-matroska",
    "mov": "video/quicktime", "mpg": "video/mpeg", "mpeg": "video/mpeg", "ogv": "video/ogg",
    "avi": "video/x-msvideo", "mp3": "audio/mpeg", "ogg": "audio/ogg", "wav": "audio/wav",
    "flac": "audio/flac", "m4a": "audio/mp4",
}  # fmt: skip


def declared_mime(sniffed: str, declared: str | None, filename: str | None) -> str:
    """The type to keep: ``sniffed`` when the bytes told; else the declared Content-Type,
    then the filename's extension, when either names a known media type.

    A part sent as ``Content-Type: video/mp4`` whose header the sniffer cannot read (a
    fragment, an unusual brand) is still a video to its owner; an unknown or unsafe
    declaration (``text/html``) leaves ``application/octet-stream``.
    """
    if sniffed != OCTET_STREAM:
        return sniffed
    if declared:
        mime = declared.split(";", 1)[0].strip().lower()
        if mime in _DECLARABLE:
            return mime
    if filename and "." in filename:
        mime = _EXTENSIONS.get(filename.rsplit(".", 1)[1].lower(), "")
        if mime:
            return mime
    return sniffed
