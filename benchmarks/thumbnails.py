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

Two more measure what the gallery sees:

- **served**: ``GET /content/{contentId}/thumbnail`` of a thumbnail already made (the key
  checked, the access rules, the kept file read, an ETag) against a bare static-file route
  of the same app (Starlette's ``StaticFiles`` serving the same WebP bytes: no key, no
  store). A server process and a load generator process, as in ``benchmarks/http_api.py``,
  the two routes taking turns. Target: 0.5x the bare route's rate.
- **gallery page**: the gallery's first page of 50 renders in headless Chromium (Debian's
  ``chromium`` and ``chromium-driver``, through selenium): from the page's request until
  every tile's ``<img>`` has loaded (``naturalWidth > 0``), signed in with a key. First
  with no thumbnail made yet (each made on its first request), then with every thumbnail
  kept, each in a fresh browser profile (no browser cache). No target: the times are
  reported. Skipped when Chromium or selenium is not installed.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter

from benchmarks import harness
from benchmarks.harness import Config, Result
from dreamflare_store import Store, thumbnails

SIZE = 256
USER = "bench"
STATIC = "/bench-static"  # the bare static-file route, in the benchmark's server only
GALLERY_PAGE = 50
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


# -- served: a kept thumbnail against a static file ------------------------------------------


def serve(store_path: str) -> None:
    """Child process: serve a store with one render and its thumbnail made, and a bare
    static-file route of the same bytes; print what the benchmark needs; stop at EOF."""
    from starlette.staticfiles import StaticFiles

    from dreamflare_store.http import create_app
    from dreamflare_store.http.testing import LiveServer

    with Store(store_path) as store:
        key = store.generate_api_key(USER, description="benchmarks").api_key
        out = io.BytesIO()
        render_like(1024, 1024, seed=7).save(out, "PNG")
        content = store.upload(out.getvalue(), USER, filename="render.png")
        data = store.thumbnail(content.content_id, USER, SIZE)
        static = Path(store_path).parent / "static"
        static.mkdir(exist_ok=True)
        (static / "thumb.webp").write_bytes(data)
        app = create_app(store)
        app.mount(STATIC, StaticFiles(directory=static))
        with LiveServer(store, app=app) as server:
            info = {"url": server.url, "key": key, "content_id": content.content_id}
            print(json.dumps(info), flush=True)
            sys.stdin.read()


def served(config: Config) -> Result:
    """A kept thumbnail over HTTP against the same bytes from a bare static-file route."""
    from benchmarks.http_api import CONCURRENCY, LoadGenerator, turns

    folder = config.fresh("served")
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.thumbnails", "--serve", str(folder / "store")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the benchmark server did not start")
        info = json.loads(line)
        slices, per_slice = config.size(8, 4, 2), config.size(500, 200, 20)
        requests = slices * per_slice
        thumb = f"/content/{info['content_id']}/thumbnail?userId={USER}&size={SIZE}"
        static = f"{STATIC}/thumb.webp"
        generator = LoadGenerator(info["url"], info["key"])
        try:
            for path in (thumb, static):  # warm up: threads, caches
                generator.run("GET", path, min(requests, 200), 200)

            def side(path: str) -> Callable[[int, int], float]:
                return lambda number, part: float(
                    generator.run("GET", path, per_slice, 200)["seconds"]
                )

            engine, baseline = turns(config, slices, side(thumb), side(static))
        finally:
            generator.close()
    finally:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=60)
    rate = requests / statistics.median(engine)
    bare = requests / statistics.median(baseline)
    return Result(
        "thumbnails",
        f"GET /content/{{contentId}}/thumbnail (kept, {SIZE} px): {requests:,} requests,"
        f" {CONCURRENCY} connections",
        "throughput",
        engine,
        baseline,
        "a bare StaticFiles route of the same app serving the same WebP",
        work_items=requests,
        target=0.5,
        note=f"engine {rate:,.0f} req/s, static file {bare:,.0f} req/s",
    )


# -- the gallery's first page in a browser ------------------------------------------------------


def _browser(profile: str) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium") or ""
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


_LOADED = (
    "var imgs = document.querySelectorAll('#grid [data-content-id] img');"
    "return imgs.length >= arguments[0] && Array.prototype.every.call(imgs,"
    " function (i) { return i.complete && i.naturalWidth > 0; });"
)


def _page_load_seconds(url: str, key: str) -> float:
    """Seconds from asking for the gallery (signed in) until every thumbnail of its first
    page has loaded, in a fresh browser profile."""
    profile = tempfile.mkdtemp(prefix="dreamflare-bench-")
    driver = _browser(profile)
    try:
        driver.get(url + "/")  # the origin, to put the key in its sessionStorage
        driver.execute_script("sessionStorage.setItem('dreamflare.apiKey', arguments[0])", key)
        start = time.perf_counter()
        driver.get(url + "/")
        deadline = start + 120
        while not driver.execute_script(_LOADED, GALLERY_PAGE):
            if time.perf_counter() > deadline:
                raise RuntimeError("the gallery's first page did not load in 2 minutes")
            time.sleep(0.01)
        return time.perf_counter() - start
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def gallery_page(config: Config) -> Result | None:
    """The first page of 50 renders in headless Chromium: thumbnails made on first
    request (engine) against thumbnails already kept (baseline)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        return None
    from dreamflare_store.http.testing import LiveServer

    shape = (1024, 1024) if config.mode != "tiny" else (384, 384)
    pictures = []
    for seed in range(8):  # eight distinct renders, each saved with a distinct seed byte
        out = io.BytesIO()
        render_like(*shape, seed=seed).save(out, "JPEG", quality=90)
        pictures.append(out.getvalue())
    cold: list[float] = []
    warm: list[float] = []
    for number in range(config.rounds):
        with Store(config.fresh("gallery") / "store") as store, LiveServer(store) as server:
            key = store.generate_api_key(USER).api_key
            for index in range(GALLERY_PAGE):  # 50 different blobs: no thumbnail is shared
                data = pictures[index % len(pictures)] + f"{number}-{index}".encode()
                store.upload(data, USER, filename=f"render-{index}.jpg")
            harness.settle()
            cold.append(_page_load_seconds(server.url, key))
            warm.append(_page_load_seconds(server.url, key))
    return Result(
        "thumbnails",
        f"gallery first page in headless Chromium: {GALLERY_PAGE} renders of"
        f" {shape[0]}x{shape[1]}, signed in until every thumbnail loaded",
        "latency",
        cold,
        warm,
        "the same page once every thumbnail is kept (fresh browser profile)",
        work_items=GALLERY_PAGE,
        note=f"first view {statistics.median(cold):.2f} s (thumbnails made on request),"
        f" later views {statistics.median(warm):.2f} s",
    )


def run(config: Config) -> list[Result]:
    """The thumbnail benchmarks, at the sizes of ``config.mode``."""
    files = make_sources(config.fresh("renders"), SHAPES[config.mode])
    results = [generation(config, fmt, paths) for fmt, paths in files.items()]
    results.append(served(config))
    page = gallery_page(config)
    if page is not None:
        results.append(page)
    return results


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(sys.argv[2])
        raise SystemExit(0)
    raise SystemExit(harness.main({"thumbnails": run}, description=__doc__.splitlines()[0]))
