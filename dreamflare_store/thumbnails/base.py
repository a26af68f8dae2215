"""What every part of the thumbnailer shares: the result record, the limits, size checks."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidArgument

# Every result, rendered or icon, is WebP: one content type whatever the route answers, and
# WebP holds alpha (transparent renders stay transparent) at about two thirds of JPEG's size.
MIME_TYPE = "image/webp"
MIN_SIZE = 32
MAX_SIZE = 1024
DEFAULT_SIZE = 256

# Above this many pixels in the header, an image or video gets its icon without being decoded.
# 40 MP holds 8K video frames (33 MP) and 4x upscales of most renders (17 MP). The peak
# memory of one render is about 4 bytes a pixel for RGB (160 MB at the cap: Pillow stores
# RGB as RGBX), 8 for RGBA (resizing works on a premultiplied copy), 6 for 16-bit grey
# and 9 for a palette with transparency (converted to RGBA first): at most about 360 MB.
# A JPEG decodes at 1/2 to 1/8 scale (draft mode) and needs far less (9 MB for 24 MP).
DEFAULT_MAX_PIXELS = 40_000_000


@dataclass(frozen=True, slots=True)
class Thumbnail:
    """A thumbnail's encoded bytes and what they are.

    ``is_icon`` is true when the bytes are the generic icon of the type rather than the
    content's own picture; ``reason`` then says why (an unsupported type, too many pixels,
    an undecodable file, a missing library), so a caller can log it and choose whether to
    keep the icon or try again later.
    """

    data: bytes
    mime_type: str
    width: int
    height: int
    is_icon: bool
    reason: str = ""


def check_size(size: object) -> int:
    """``size`` as an int when it is one in ``MIN_SIZE..MAX_SIZE``; InvalidArgument if not."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise InvalidArgument(f"size must be an integer, not {type(size).__name__}", size=size)
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise InvalidArgument(f"size must be between {MIN_SIZE} and {MAX_SIZE}", size=size)
    return size


def check_max_pixels(max_pixels: object) -> int:
    """``max_pixels`` as an int when it is a positive one; InvalidArgument if not."""
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise InvalidArgument("max_pixels must be a positive integer", max_pixels=max_pixels)
    return max_pixels
