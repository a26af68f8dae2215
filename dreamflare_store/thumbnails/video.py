"""Video poster frames through PyAV (its wheels carry FFmpeg's decoders).

PyAV and Pillow are optional. This module imports them on first use, and
:func:`render_video` raises ImportError when either is missing, so the caller answers with
the icon instead.

The poster is the first frame: generated clips open on their subject (they rarely fade in
from black), and the first frame needs no seek, which a damaged index could send astray.

The pixel cap is checked on the size the stream declares, before any frame is decoded
here; opening the file lets FFmpeg probe it first, which reads the container's headers
(and for a stream whose headers lack the size, may decode a frame under FFmpeg's limits).
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import IO, TYPE_CHECKING

from .images import WEBP_OPTIONS, Unreadable

# A video whose first packets hold no picture is damaged (or an audio file in a video
# container): give up after this many rather than read the whole file.
MAX_PACKETS = 256

if TYPE_CHECKING:
    import av


def render_video(fp: IO[bytes], size: int, max_pixels: int) -> tuple[bytes, int, int]:
    """The WebP bytes, width and height of a thumbnail of the first frame of ``fp``.

    ``fp`` is a seekable binary file read from its start. Raises Unreadable (no video
    stream, no frame, too many pixels) or whatever FFmpeg raises on damaged data;
    ImportError without PyAV or Pillow.
    """
    import av
    from PIL import Image

    fp.seek(0)
    with av.open(fp, "r") as container:
        if not container.streams.video:
            raise Unreadable("the file holds no video stream")
        stream = container.streams.video[0]
        context = stream.codec_context
        _check_pixels(context.width, context.height, max_pixels)
        # One thread: a single frame gains nothing from more, and each would hold frames.
        context.thread_count = 1
        frame = _first_frame(container, stream)
    _check_pixels(frame.width, frame.height, max_pixels)
    display_width = round(frame.width * _pixel_aspect(stream.sample_aspect_ratio))
    width, height = _fit(display_width, frame.height, size)
    # FFmpeg scales while converting to RGB, so the full-size RGB picture is never made.
    picture: Image.Image = frame.to_image(  # type: ignore[no-untyped-call]
        width=width, height=height, interpolation="AREA"
    )
    # The display matrix turns the stored picture counterclockwise by ``rotation`` degrees
    # (-180..180), as Pillow's ROTATE_ transposes do; phones record portrait video so.
    turn = {
        90: Image.Transpose.ROTATE_90,
        180: Image.Transpose.ROTATE_180,
        270: Image.Transpose.ROTATE_270,
    }.get(frame.rotation % 360)
    if turn is not None:
        picture = picture.transpose(turn)
    out = io.BytesIO()
    picture.save(out, "WEBP", **WEBP_OPTIONS)
    return out.getvalue(), picture.width, picture.height


def _first_frame(container: av.container.InputContainer, stream: av.VideoStream) -> av.VideoFrame:
    """The first decodable frame of ``stream``, or Unreadable after MAX_PACKETS packets."""
    for count, packet in enumerate(container.demux(stream)):
        for frame in packet.decode():
            return frame
        if count >= MAX_PACKETS:
            break
    raise Unreadable("no frame could be decoded")


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise Unreadable(f"{width}x{height} is over the cap of {max_pixels} pixels")


def _pixel_aspect(ratio: Fraction | None) -> Fraction:
    """How wide a stored pixel is shown (anamorphic video stores narrow pixels)."""
    if ratio is None or ratio <= 0 or not Fraction(1, 16) <= ratio <= 16:
        return Fraction(1)
    return ratio


def _fit(width: int, height: int, size: int) -> tuple[int, int]:
    """``width`` x ``height`` scaled down (never up) so the longest side is at most ``size``."""
    if width < 1 or height < 1:
        raise Unreadable(f"a frame of {width}x{height} has no picture")
    scale = min(1.0, size / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))
