"""Generation metadata of AI images and videos: extract it at upload, strip it on demand.

Standalone: the standard library only, nothing from the rest of the engine. No pixel is
decoded: PNG, JPEG, WebP, GIF, MP4/MOV and WebM/Matroska containers are walked by small
bounded parsers (PNG chunks to IEND, JPEG segments, RIFF chunks, GIF blocks, ISO-BMFF
boxes, EBML elements), picked by the file's magic bytes, never by a name or a declared type.

API
---
``extract(source, *, limits=None) -> Extracted | None``
    ``source`` is bytes or a binary stream, read from its current position (which is left
    anywhere); it need not be seekable, but seeking is what skips pixel data cheaply.
    Returns None when the container is not one of the six (HEIF/AVIF and TIFF are not
    read) or carries no metadata at all; a file with only, say, an editor's ``Software``
    tag gives an ``Extracted`` whose ``generator`` is None. Never raises for any content:
    malformed, truncated, huge or hostile metadata only yields less.
    ``Extracted.record`` is the normalised record (keys in ``RECORD_KEYS``):

    ====================  ==============================================================
    generator             "A1111", "Forge", "SD.Next", "Civitai", "ComfyUI", "InvokeAI",
                          "NovelAI", "Fooocus", "SwarmUI", "EasyDiffusion", "Midjourney",
                          "DrawThings", or None when no generator is recognised
    prompt                str | None, at most 8 KiB of UTF-8 (``PROMPT_BYTES``)
    negativePrompt        str | None, likewise
    seed                  str | None (ComfyUI seeds reach 2**64-1), at most 40 bytes
    steps                 int | None
    cfgScale              float | None
    sampler, scheduler    str | None, at most 256 bytes of UTF-8 each
    model, modelHash      str | None, likewise
    loras                 [{"name": str, "weight": float | None}], at most 32, names
                          at most 256 bytes, first occurrence of a name kept
    width, height         int | None: from the metadata, else the container header
    aiGenerated           True (generator metadata, or a C2PA/IPTC AI claim), False (a
                          provenance claim of capture or human work only), None (unknown)
    claimGenerator        str | None: the C2PA claim generator (the signature is *not*
                          verified: it is what the file claims)
    ====================  ==============================================================

    Strings lose control characters (but tab and newline) and lone surrogates, so the
    record is valid UTF-8; its ``json.dumps`` is at most ``RECORD_JSON_BYTES`` (81 KiB),
    a few hundred bytes in practice.

    ``Extracted.raw`` maps raw texts by key, each at most ``Limits.max_text`` characters:
    PNG text keywords as written (``parameters``, ``prompt``, ``workflow``, ``Comment``...;
    a repeated key becomes ``key#2``); EXIF tags by name (``UserComment``,
    ``ImageDescription``, ``Software``, ``MakerNote``, ``XPComment``, while ComfyUI's
    ``prompt:{...}`` in Make/Model/ImageDescription becomes ``prompt``, ``workflow``...);
    ``XMP``; ``JPEG comment``; the GIF ``comment``; MP4 item and WebM tag names
    (``comment``, ``prompt``, ``workflow``..., upper-case tag names lowered); ``c2pa`` (a
    JSON summary of the active manifest). ``Extracted.truncated`` names the raw texts cut
    short (by a cap, or by the end of the file): they are kept but never interpreted.
    ``Extracted.to_dict()`` gives ``{"record", "raw", "truncated"}`` as strict JSON.

``container(head) -> str | None``
    The container a file's first 16 bytes announce: what both functions dispatch on.

``strip(src, dst) -> bool``
    Copies ``src`` (from its current position) to ``dst`` without its metadata, the image
    data byte for byte. Returns
    False, writing nothing, when the format is not one of the six (the caller decides
    whether to copy it as is). Raises :class:`StripError` (a ValueError) for a file of a
    known format too damaged to rewrite; ``dst`` then holds partial output to discard.
    Kept: what changes how pixels look (ICC profiles, colour and transparency chunks, and
    the EXIF orientation, rewritten as an EXIF block holding only that tag). MP4/MOV
    metadata boxes are overwritten in place by ``free`` boxes of the same size, and WebM
    ``Tags`` by ``Void`` elements, so no offset moves. Memory is bounded: data is copied
    in pieces, and a source that cannot seek is first spooled to a temporary file.

Bounds (``Limits``): 16 MiB of metadata read in total, 1 MiB per raw text and 8 MiB for
all of them (inflated sizes), 64 raw texts, 100,000 chunks/segments/boxes walked, 4 MiB of
C2PA store, 20,000 ComfyUI graph node visits; only untruncated texts are interpreted, so
JSON is parsed only below 1 MiB. Pixel data is skipped with seeks, not read.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import struct
import tempfile
from dataclasses import dataclass
from typing import Any, BinaryIO

from dreamflare_store.genmeta.bmff import read_bmff, strip_bmff
from dreamflare_store.genmeta.ebml import MAGIC as EBML_MAGIC
from dreamflare_store.genmeta.ebml import read_ebml, strip_ebml
from dreamflare_store.genmeta.generators import recognise
from dreamflare_store.genmeta.gif import read_gif, strip_gif
from dreamflare_store.genmeta.jpeg import read_jpeg, strip_jpeg
from dreamflare_store.genmeta.png import SIGNATURE, read_png, read_png_bytes, strip_png
from dreamflare_store.genmeta.provenance import read_provenance
from dreamflare_store.genmeta.record import (
    PROMPT_BYTES,
    RECORD_JSON_BYTES,
    RECORD_KEYS,
    normalise,
)
from dreamflare_store.genmeta.source import Found, Limits, Source, StripError
from dreamflare_store.genmeta.webp import read_webp, strip_webp

__all__ = [
    "PROMPT_BYTES",
    "RECORD_JSON_BYTES",
    "RECORD_KEYS",
    "Extracted",
    "Limits",
    "StripError",
    "container",
    "extract",
    "strip",
]

# Brands of HEIF/AVIF images: BMFF too, but their top-level meta box holds the image.
_HEIF_BRANDS = frozenset(
    {b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
)
_QT_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
_STRIP_UNITS = 1_000_000
_DEFAULT_LIMITS = Limits()
_SHAPE_ERRORS = (
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    OverflowError,
    RecursionError,
)


@dataclass(frozen=True, slots=True)
class Extracted:
    """What :func:`extract` found: the bounded ``record``, and the raw texts it came from."""

    record: dict[str, Any]
    raw: dict[str, str]
    truncated: frozenset[str]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape: ``{"record": ..., "raw": ..., "truncated": [...]}``."""
        return {"record": self.record, "raw": self.raw, "truncated": sorted(self.truncated)}


def container(head: bytes) -> str | None:
    """Return "png", "jpeg", "webp", "gif", "bmff" (MP4/MOV) or "ebml" (WebM/Matroska)
    for a file's first 16 bytes, else None (HEIF/AVIF are BMFF but not handled)."""
    if head.startswith(SIGNATURE):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[4:8] == b"ftyp":
        return None if head[8:12] in _HEIF_BRANDS else "bmff"
    if head[4:8] in _QT_ATOMS:
        return "bmff"
    if head.startswith(EBML_MAGIC):
        return "ebml"
    return None


_READERS = {
    "png": read_png,
    "jpeg": read_jpeg,
    "webp": read_webp,
    "bmff": read_bmff,
    "ebml": read_ebml,
    "gif": read_gif,
}
_STRIPPERS = {
    "png": strip_png,
    "jpeg": strip_jpeg,
    "webp": strip_webp,
    "bmff": strip_bmff,
    "ebml": strip_ebml,
    "gif": strip_gif,
}


def extract(source: BinaryIO | bytes, *, limits: Limits | None = None) -> Extracted | None:
    """Return the generation metadata of an image or video, or None if it carries none.

    It exists so uploads can be searched by prompt, model or seed without decoding pixels.
    Never raises for any content of ``source`` (only for a closed or unreadable stream).
    """
    limits = limits or _DEFAULT_LIMITS
    if isinstance(source, bytes | bytearray) and source.startswith(SIGNATURE):
        # A PNG in memory whose only metadata is short tEXt chunks is read in place.
        found = Found(limits)
        if read_png_bytes(source, found):
            return _result(found)
    stream: BinaryIO = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    start = _tell(stream)
    head = _head(stream)
    kind = container(head)
    if kind is None:
        return None
    if start is None:
        stream = _Prepend(head, stream)  # type: ignore[assignment]
    else:
        stream.seek(start)
    found = Found(limits)
    # A walker stops where the data stops making sense; what it found before is kept.
    with contextlib.suppress(ValueError, OverflowError, IndexError, EOFError, struct.error):
        _READERS[kind](Source(stream, limits), found)
    return _result(found)


def _result(found: Found) -> Extracted | None:
    if not (found.texts or found.c2pa or found.xmp):
        return None  # no text, no claim: nothing could name a generator (most files)
    prov = read_provenance(found.c2pa, found.xmp)
    if prov.summary:
        found.add_text("c2pa", json.dumps(prov.summary, ensure_ascii=False, default=str))
    try:
        record = normalise(recognise(found), found, prov)
    except _SHAPE_ERRORS:
        # A reader tripped on a JSON shape it did not expect: the file then simply yields
        # no generator fields, as the contract promises, rather than failing an upload.
        record = normalise({"generator": None}, found, prov)
    if not found.texts and record["aiGenerated"] is None:
        return None
    return Extracted(record, dict(found.texts), frozenset(found.truncated))


def strip(src: BinaryIO, dst: BinaryIO) -> bool:
    """Copy ``src`` to ``dst`` without metadata; return False (nothing written) if the
    format is not PNG, JPEG, WebP, GIF, MP4/MOV or WebM/Matroska.

    It exists so users can share a file without its prompt, workflow or provenance while
    its pixels stay byte-identical. Raises StripError for a damaged file of a known format.
    """
    if _tell(src) != 0:
        # The strippers seek by absolute offsets: a stream that cannot seek, or does not
        # start at 0, is copied to a spool first (in memory up to 8 MiB, then on disk).
        with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
            shutil.copyfileobj(src, spool, 1 << 20)
            spool.seek(0)
            return strip(spool, dst)  # type: ignore[arg-type]
    kind = container(src.read(16))
    src.seek(0)
    if kind is None:
        return False
    _STRIPPERS[kind](src, dst, _STRIP_UNITS)
    return True


def _head(stream: BinaryIO) -> bytes:
    # A pipe may return fewer bytes than asked before its end: read until 16 or the end.
    head = b""
    while len(head) < 16:
        more = stream.read(16 - len(head))
        if not more:
            break
        head += more
    return head


def _tell(stream: BinaryIO) -> int | None:
    try:
        return stream.tell() if stream.seekable() else None
    except (OSError, ValueError):
        return None


class _Prepend(io.RawIOBase):
    """A non-seekable stream with the bytes already sniffed put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        """Always True: this is a read-only stream."""
        return True

    def read(self, n: int = -1) -> bytes:
        """Return up to ``n`` bytes: the put-back ones first, then the stream's."""
        if not self._head:
            return self._rest.read(n) or b""
        if n < 0:
            data, self._head = self._head + (self._rest.read() or b""), b""
            return data
        data, self._head = self._head[:n], self._head[n:]
        return data
