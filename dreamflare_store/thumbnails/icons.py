"""The generic icon of each broad type, shipped as small lossless WebP files in ``static/``.

The icons are plain files read from beside this module, so they need no imaging
library: without Pillow the thumbnailer still answers every request with a valid image.
Each icon is shipped at several sizes; the one given is the largest that fits ``size``.

WebP rather than SVG, though an ``<img>`` shows either: an icon then has the content type
of every rendered thumbnail (``image/webp``), so a thumbnail route and its cache never
tell the two apart; it has a size in pixels that honours "longest side at most ``size``";
and an SVG is a document that can hold script when opened on its own, which a
Content-Security-Policy would have to account for.
"""

from __future__ import annotations

import functools
from pathlib import Path

from .base import MIME_TYPE, Thumbnail

KINDS = ("image", "video", "audio", "document", "other")
ICON_SIZES = (32, 64, 128, 256, 512)

# Types that read as a page of text or a printed document, beside every text/* type.
_DOCUMENT_TYPES = frozenset(
    {
        "application/pdf",
        "application/json",
        "application/xml",
        "application/rtf",
        "application/epub+zip",
        "application/msword",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.presentation",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
    }
)


def kind_of(mime: str) -> str:
    """The broad type of ``mime``: one of ``KINDS`` ("other" for anything unknown)."""
    base = mime.split(";", 1)[0].strip().lower()
    top = base.split("/", 1)[0]
    if top in ("image", "video", "audio"):
        return top
    if (
        top == "text"
        or base in _DOCUMENT_TYPES
        or base.startswith("application/vnd.openxmlformats-officedocument.")
    ):
        return "document"
    return "other"


def icon_name(kind: str, size: int) -> str:
    """The file name of the icon of ``kind`` at ``size`` pixels."""
    return f"{kind}-{size}.webp"


@functools.lru_cache(maxsize=len(KINDS) * len(ICON_SIZES))
def _icon_bytes(kind: str, size: int) -> bytes:
    # A plain read: the package is always installed as files (importlib.resources would
    # cost every command that opens a store several milliseconds to import).
    return (Path(__file__).parent / "static" / icon_name(kind, size)).read_bytes()


def icon(mime: str, size: int, reason: str) -> Thumbnail:
    """The icon of ``mime``'s broad type, the largest shipped that fits ``size`` (checked)."""
    fits = max((side for side in ICON_SIZES if side <= size), default=ICON_SIZES[0])
    return Thumbnail(_icon_bytes(kind_of(mime), fits), MIME_TYPE, fits, fits, True, reason)
