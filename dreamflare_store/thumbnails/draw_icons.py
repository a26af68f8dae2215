"""Draw the generic icons shipped in ``static/`` (run it after changing a shape or colour).

    python -m dreamflare_store.thumbnails.draw_icons

The icons are drawn here rather than kept only as binary files, so that a change to one is
a reviewable diff. Each is drawn four times larger than its largest size and scaled down,
which gives smooth edges without an anti-aliasing renderer. Needs Pillow; nothing at run
time imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

from .icons import ICON_SIZES, KINDS, icon_name

# One canvas unit is 1/64 of the icon: shapes below are in these units.
_UNIT_PX = max(ICON_SIZES) * 4 // 64
_WHITE = (255, 255, 255, 255)
_SHADE = (255, 255, 255, 150)
_TILE = {
    "image": (46, 125, 196, 255),
    "video": (200, 64, 60, 255),
    "audio": (128, 78, 170, 255),
    "document": (70, 96, 120, 255),
    "other": (110, 118, 125, 255),
}


def _u(*values: float) -> list[float]:
    return [value * _UNIT_PX for value in values]


def _image(draw: ImageDraw.ImageDraw) -> None:
    draw.ellipse(_u(38, 16, 48, 26), fill=_SHADE)
    draw.polygon(_u(12, 48, 26, 26, 36, 40, 42, 32, 52, 48), fill=_WHITE)


def _video(draw: ImageDraw.ImageDraw) -> None:
    draw.polygon(_u(24, 18, 24, 46, 46, 32), fill=_WHITE)


def _audio(draw: ImageDraw.ImageDraw) -> None:
    draw.ellipse(_u(16, 38, 28, 48), fill=_WHITE)
    draw.ellipse(_u(36, 34, 48, 44), fill=_WHITE)
    draw.rectangle(_u(24, 18, 28, 43), fill=_WHITE)
    draw.rectangle(_u(44, 14, 48, 39), fill=_WHITE)
    draw.polygon(_u(24, 18, 48, 14, 48, 21, 24, 25), fill=_WHITE)


def _page(draw: ImageDraw.ImageDraw) -> None:
    draw.polygon(_u(18, 12, 38, 12, 46, 20, 46, 52, 18, 52), fill=_WHITE)
    draw.polygon(_u(38, 12, 38, 20, 46, 20), fill=_SHADE)


def _document(draw: ImageDraw.ImageDraw) -> None:
    _page(draw)
    for top in (26, 32, 38, 44):
        draw.rectangle(_u(23, top, 41, top + 2), fill=_TILE["document"])


def _other(draw: ImageDraw.ImageDraw) -> None:
    _page(draw)


_GLYPHS: dict[str, Callable[[ImageDraw.ImageDraw], None]] = {
    "image": _image,
    "video": _video,
    "audio": _audio,
    "document": _document,
    "other": _other,
}


def draw(kind: str) -> Image.Image:
    """The icon of ``kind`` at four times its largest size: a rounded tile and a glyph."""
    canvas = Image.new("RGBA", (64 * _UNIT_PX, 64 * _UNIT_PX), (0, 0, 0, 0))
    pen = ImageDraw.Draw(canvas)
    pen.rounded_rectangle(_u(2, 2, 62, 62), radius=10 * _UNIT_PX, fill=_TILE[kind])
    _GLYPHS[kind](pen)
    return canvas


STATIC = Path(__file__).with_name("static")


def main(folder: Path = STATIC) -> None:
    """Write every icon at every size as lossless WebP into ``folder``."""
    folder.mkdir(exist_ok=True)
    for kind in KINDS:
        big = draw(kind)
        for size in ICON_SIZES:
            small = big.resize((size, size), Image.Resampling.LANCZOS)
            small.save(folder / icon_name(kind, size), "WEBP", lossless=True, quality=100, method=6)


if __name__ == "__main__":
    main()
