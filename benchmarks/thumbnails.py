"""Thumbnails: first-time generation by ``thumbnails.render`` against Pillow's own thumbnail.

The same files go through both, taking turns file by file (who goes first alternating), so
both meet the same load from the rest of the machine:

- **engine**: ``dreamflare_store.thumbnails.render(path, mime, 256)``, the whole of it: the
  header's pixel count checked, the decode, the resize, EXIF orientation, mode conversion,
  and the WebP encoding.
- **baseline**: plain Pillow, ``Image.open(path)``, ``img.thumbnail((256, 256))``,
  ``img.save(buffer, "WEBP")``: the fastest way Pillow documents (``thumbnail`` decodes
  JPEG at a reduced scale and reduces other formats by whole factors first), with the same
  WebP settings (quality 80, method 4).

Sources are renders as a generator writes them: PNG (zlib level 6, as Pillow and most
generators save) and JPEG (quality 90) of 1 to 4 megapixels in the shapes generators use,
their pictures smooth gradients, shapes and fine noise so that they compress like real
renders (about half their raw size as PNG). Both sides read the same cached files. The
target is 0.8: the engine makes thumbnails at no less than 80% of Pillow's speed per
megapixel. The same files and the same work on both sides, so the ratio of times is the
ratio of megapixels per second.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from benchmarks import harness
from benchmarks.harness import Config, Result
from dreamflare_store import thumbnails

SIZE = 256
TARGET = 0.8
Step = Callable[[int], object]

# Shapes of generated pictures: SD 1.5, SDXL portrait, SDXL landscape, 1.5x and 2x upscales.
SHAPES = {
    "full": [(1024, 1024), (832, 1216), (1344, 768), (1536, 1536), (2048, 2048)],
    "quick": [(1024, 1024), (2048, 2048)],
    "tiny": [(256, 192)],
}


def render_like(width: int, height: int, seed: int) -> Image.Image:
    """A picture that compresses like a generated render: gradients, shapes, fine noise."""
    rng = random.Random(seed)
    bands = [
        Image.linear_gradient("L").rotate(rng.randrange(360)).resize((width, height)),
        Image.radial_gradient("L").resize((width, height)),
        Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize((width, height)),
    ]
    picture = Image.merge("RGB", bands)
    pen = ImageDraw.Draw(picture)
    for _ in range(24):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(width // 20, width // 4)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        pen.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    picture = picture.filter(ImageFilter.GaussianBlur(width / 200))
    # Independent grain in each channel, as diffusion models leave it.
    grain = Image.merge("RGB", [Image.effect_noise((width, height), 24) for _ in range(3)])
    return Image.blend(picture, grain, 0.15)


def make_sources(folder: Path, shapes: list[tuple[int, int]]) -> dict[str, list[Path]]:
    """Each shape saved once as PNG and once as JPEG; the files by format."""
    files: dict[str, list[Path]] = {"PNG": [], "JPEG": []}
    for index, (width, height) in enumerate(shapes):
        picture = render_like(width, height, seed=index)
        png = folder / f"render-{index}-{width}x{height}.png"
        picture.save(png, "PNG")  # zlib level 6, Pillow's default, as generators save
        jpeg = png.with_suffix(".jpg")
        picture.save(jpeg, "JPEG", quality=90)
        files["PNG"].append(png)
        files["JPEG"].append(jpeg)
    return files


def engine_thumbnail(path: Path, mime: str) -> bytes:
    thumb = thumbnails.render(path, mime, SIZE)
    if thumb.is_icon:
        raise RuntimeError(f"{path.name} gave the icon: {thumb.reason}")
    return thumb.data


def pillow_thumbnail(path: Path) -> bytes:
    """The baseline: what a program using Pillow directly would write."""
    with Image.open(path) as picture:
        picture.thumbnail((SIZE, SIZE))
        out = io.BytesIO()
        picture.save(out, "WEBP")
    return out.getvalue()


def generation(config: Config, fmt: str, files: list[Path]) -> Result:
    """First-time thumbnails of ``files`` by the engine and by Pillow, file by file in turns."""
    mime = {"PNG": "image/png", "JPEG": "image/jpeg"}[fmt]
    repeats = config.size(3, 2, 1)  # more work per round: steadier medians on a busy machine
    items = files * repeats

    @contextmanager
    def sides(number: int) -> Iterator[tuple[Step, Step]]:
        yield (
            lambda index: engine_thumbnail(items[index], mime),
            lambda index: pillow_thumbnail(items[index]),
        )

    engine_times, baseline_times = harness.paired(config, len(items), sides)
    megapixels = repeats * sum(_pixels(path) for path in files) / 1e6
    result = Result(
        "thumbnails",
        f"{fmt} renders to {SIZE} px: {len(files)} files of"
        f" {min(map(_pixels, files)) / 1e6:.1f}-{max(map(_pixels, files)) / 1e6:.1f} MP,"
        f" x{repeats}",
        "throughput",
        engine_times,
        baseline_times,
        f"Pillow: Image.open, thumbnail(({SIZE}, {SIZE})), save WEBP",
        work_bytes=repeats * sum(path.stat().st_size for path in files),
        work_items=len(items),
        target=TARGET,
        extra={"megapixels": megapixels},
    )
    summary = result.summary()
    result.note = (
        f"{megapixels / summary['engine_median_s']:.1f} MP/s against"
        f" {megapixels / summary['baseline_median_s']:.1f} MP/s"
    )
    return result


def _pixels(path: Path) -> int:
    with Image.open(path) as picture:
        return picture.width * picture.height


def run(config: Config) -> list[Result]:
    """The thumbnail benchmarks, at the sizes of ``config.mode``."""
    files = make_sources(config.fresh("renders"), SHAPES[config.mode])
    return [generation(config, fmt, paths) for fmt, paths in files.items()]


if __name__ == "__main__":
    raise SystemExit(harness.main({"thumbnails": run}, description=__doc__.splitlines()[0]))
