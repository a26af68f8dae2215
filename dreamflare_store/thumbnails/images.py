"""Still images through Pillow: header check, reduced decode, resize, orientation, WebP.

Pillow is optional. This module imports it on first use, and :func:`render_image` raises
ImportError when it is missing, so the caller answers with the icon instead.

Memory is bounded by the header: the pixel count is read from the file's header, which
opening an image parses without decoding anything, and a picture above the cap is never
decoded. Pillow's own ``Image.open`` would also check ``Image.MAX_IMAGE_PIXELS``, a
process-wide setting that warns (an exception under ``-W error``) from 89 megapixels and
refuses from 179; changing it would change every other user of Pillow in the process. So
the file is opened through the format's own reader, which ``Image.open`` calls after
identifying the format; here the format is already known from the type.
"""

from __future__ import annotations

import io
from typing import IO, TYPE_CHECKING, cast

if TYPE_CHECKING:
    from PIL import Image as PILImage

# The Pillow format that reads each type (a type not here is not decoded: it gets an icon).
FORMATS = {
    "image/png": "PNG",
    "image/apng": "PNG",
    "image/jpeg": "JPEG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
    "image/avif": "AVIF",
    # Readable when a plugin (pillow-heif) has registered a HEIF reader.
    "image/heic": "HEIF",
    "image/heif": "HEIF",
}

# WebP at quality 80 (Pillow's default) and method 4 (libwebp's default speed/size balance).
WEBP_OPTIONS: dict[str, object] = {"quality": 80, "method": 4}

_ORIENTATION_TAG = 0x0112  # EXIF Orientation: how a viewer must turn the stored picture


class Unreadable(Exception):
    """The bytes cannot be made into a thumbnail (the message says why)."""


def render_image(
    fp: IO[bytes], filename: str, fmt: str, size: int, max_pixels: int
) -> tuple[bytes, int, int]:
    """The WebP bytes, width and height of a thumbnail of the picture in ``fp``.

    ``fp`` is a seekable binary file read from its start; ``fmt`` is the Pillow format
    that reads it. Raises Unreadable (too many pixels, unknown format) or whatever the
    decoder raises on damaged data; ImportError without Pillow.
    """
    from PIL import Image

    with _open(fp, filename, fmt) as opened:
        width, height = opened.size
        if width * height > max_pixels:
            raise Unreadable(f"{width}x{height} is over the cap of {max_pixels} pixels")
        picture = _resizable(opened)
        # Image.thumbnail decodes JPEG at a reduced scale (draft mode) and other formats
        # reduce by whole factors before the final bicubic pass: the fastest Pillow has.
        picture.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)
        picture.load()  # a picture that already fits is not decoded yet; the file closes next
        picture = _upright(_displayable(picture), _orientation(opened))
    out = io.BytesIO()
    picture.save(out, "WEBP", **WEBP_OPTIONS)
    return out.getvalue(), picture.width, picture.height


def _open(fp: IO[bytes], filename: str, fmt: str) -> PILImage.Image:
    """The picture in ``fp`` opened by ``fmt``'s reader: its header parsed, nothing decoded."""
    from PIL import Image

    if fmt not in Image.OPEN:
        Image.init()  # loads every installed plugin, including third-party ones
    if fmt not in Image.OPEN:
        raise Unreadable(f"no {fmt} reader is installed")
    factory, accept = Image.OPEN[fmt]
    fp.seek(0)
    prefix = fp.read(16)
    # As Image.open reads it: true for the format, a string for a variant it cannot read.
    known = True if accept is None else accept(prefix)
    if isinstance(known, str) or not known:
        raise Unreadable(f"the bytes are not {fmt}" + (f" ({known})" if known else ""))
    fp.seek(0)
    return factory(fp, filename)


def _resizable(picture: PILImage.Image) -> PILImage.Image:
    """``picture`` in a mode that resizes smoothly (decoding it if it must be converted).

    Pillow resizes palette and bilevel images by picking pixels (jagged, and it drops
    colours), and cannot resize 16-bit integer images at all: those are converted first.
    Every other mode is left as it is, so a JPEG can still be decoded at a reduced scale.
    """
    mode = picture.mode
    if mode in ("P", "PA"):
        return picture.convert("RGBA" if picture.has_transparency_data else "RGB")
    if mode == "1":
        return picture.convert("L")
    if mode.startswith("I;16"):
        return picture.convert("I")
    return picture


def _displayable(picture: PILImage.Image) -> PILImage.Image:
    """The (small) ``picture`` as RGB or RGBA, the two modes a WebP holds."""
    mode = picture.mode
    if mode in ("RGB", "RGBA"):
        return picture
    if mode == "I":
        # 16-bit samples (PNG, TIFF) were widened to 32 bits: scale them back to 8.
        picture = picture.point(lambda value: value * (1 / 257)).convert("L")
    elif mode == "F":
        low, high = cast(tuple[float, float], picture.getextrema())  # one band: a pair
        span = high - low or 1.0
        picture = picture.point(lambda value: (value - low) * (255 / span)).convert("L")
    keep_alpha = mode in ("LA", "La", "RGBa") or picture.has_transparency_data
    return picture.convert("RGBA" if keep_alpha else "RGB")


def _orientation(picture: PILImage.Image) -> int:
    """The EXIF orientation of the opened ``picture`` (1, upright, when absent or damaged)."""
    try:
        value = picture.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block must not cost the thumbnail
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright(picture: PILImage.Image, orientation: int) -> PILImage.Image:
    """``picture`` turned as its EXIF orientation says a viewer must show it."""
    from PIL import Image

    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation)
    return picture if method is None else picture.transpose(method)
