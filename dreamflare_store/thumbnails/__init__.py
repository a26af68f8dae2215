"""Thumbnails: a small WebP picture of any content, or the generic icon of its type.

    >>> from dreamflare_store import thumbnails
    >>> thumb = thumbnails.render("cat.png", "image/png", 256)      # doctest: +SKIP
    >>> thumb.mime_type, thumb.width <= 256, thumb.is_icon         # doctest: +SKIP
    ('image/webp', True, False)

Images are read through Pillow, video poster frames through PyAV (both optional: the
``media`` extra). Anything else, anything too big, anything damaged, and everything when
Pillow is missing, gets the icon of its broad type (image, video, audio, document, other):
:func:`render` never raises for what the file holds, only for a bad ``size`` or
``max_pixels``. Every result is WebP, whose longest side is at most ``size``.

This package renders only; storing, caching and serving thumbnails belong to the store.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import IO

from .base import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_SIZE,
    MAX_SIZE,
    MIME_TYPE,
    MIN_SIZE,
    Thumbnail,
    check_max_pixels,
    check_size,
)
from .icons import KINDS, icon, kind_of

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_SIZE",
    "KINDS",
    "MAX_SIZE",
    "MIME_TYPE",
    "MIN_SIZE",
    "Thumbnail",
    "icon_for",
    "kind_of",
    "render",
]

Source = str | os.PathLike[str] | IO[bytes]


def render(
    source: Source, mime: str, size: int = DEFAULT_SIZE, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Thumbnail:
    """A WebP thumbnail of ``source`` whose longest side is at most ``size`` (32..1024).

    ``source`` is a path or a seekable binary file, read from its start and left open;
    ``mime`` is its type as the store sniffed it, which picks the decoder (bytes that are
    not of that type get the icon). Pictures over ``max_pixels`` pixels (by their header)
    are never decoded. Raises InvalidArgument for a bad ``size`` or ``max_pixels``; for
    anything about the file itself it returns the icon, with ``reason`` saying why.
    """
    check_size(size)
    check_max_pixels(max_pixels)
    kind = kind_of(mime)
    if kind not in ("image", "video"):
        return icon(mime, size, f"no thumbnail for {kind} content")
    try:
        with ExitStack() as stack:
            if isinstance(source, str | os.PathLike):
                filename = os.fspath(source)
                fp: IO[bytes] = stack.enter_context(open(filename, "rb"))
            else:
                filename, fp = "", source
            data, width, height = _render(fp, filename, mime, kind, size, max_pixels)
    except ImportError as exc:
        return icon(mime, size, f"{exc.name or 'a library'} is not installed")
    except Exception as exc:  # every decoder failure, of every library, becomes the icon
        return icon(mime, size, f"{type(exc).__name__}: {exc}")
    return Thumbnail(data, MIME_TYPE, width, height, False)


def icon_for(mime: str, size: int = DEFAULT_SIZE) -> Thumbnail:
    """The generic icon of ``mime``'s broad type, the largest shipped that fits ``size``.

    It needs no imaging library; InvalidArgument for a bad ``size``.
    """
    return icon(mime, check_size(size), "")


def _render(
    fp: IO[bytes], filename: str, mime: str, kind: str, size: int, max_pixels: int
) -> tuple[bytes, int, int]:
    """The WebP bytes, width and height of the thumbnail; raises when there is none."""
    if kind == "video":
        from .video import render_video

        return render_video(fp, size, max_pixels)
    from .images import FORMATS, Unreadable, render_image

    fmt = FORMATS.get(mime.split(";", 1)[0].strip().lower())
    if fmt is None:
        raise Unreadable(f"no decoder for {mime}")
    return render_image(fp, filename, fmt, size, max_pixels)
