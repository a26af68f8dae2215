"""Tests for dreamflare_store.thumbnails: real encoder output in, WebP (or the icon) out."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, features

from dreamflare_store import thumbnails
from dreamflare_store.errors import InvalidArgument
from dreamflare_store.thumbnails import Thumbnail, icons

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "dreamflare_store" / "thumbnails" / "static"
RED, GREEN, BLUE = (220, 30, 30), (30, 200, 30), (30, 30, 220)


def halves(size: tuple[int, int], left: tuple[int, ...], right: tuple[int, ...], mode: str) -> Any:
    """A picture whose left half is ``left`` and right half ``right``."""
    picture = Image.new(mode, size, left)
    picture.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return picture


def save(picture: Image.Image, path: Path, fmt: str, **params: Any) -> Path:
    picture.save(path, fmt, **params)
    return path


def mode_of(path: Path) -> str:
    with Image.open(path) as picture:
        return picture.mode


def decoded(thumb: thumbnails.Thumbnail) -> Image.Image:
    """The thumbnail decoded, after checking it is the WebP it says it is."""
    assert thumb.mime_type == "image/webp"
    picture = Image.open(io.BytesIO(thumb.data))
    assert picture.format == "WEBP"
    assert picture.size == (thumb.width, thumb.height)
    picture.load()
    return picture


def near(pixel: Any, colour: tuple[int, ...], slack: int = 24) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(pixel, colour, strict=False))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def write_zero_png(path: Path, width: int, height: int) -> None:
    """An RGBA PNG of ``width`` x ``height`` transparent pixels, compressed row by row.

    Written by hand so a 100-megapixel file (400 MB once decoded) costs about 400 KB and a
    fraction of a second to make, without ever holding the picture.
    """
    compressor = zlib.compressobj(9)
    row = bytes(1 + 4 * width)  # filter byte 0, then the row's pixels
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)))
        for _ in range(height):
            piece = compressor.compress(row)
            if piece:
                out.write(png_chunk(b"IDAT", piece))
        out.write(png_chunk(b"IDAT", compressor.flush()))
        out.write(png_chunk(b"IEND", b""))


# -- every supported picture -----------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime", "params"),
    [
        ("PNG", "image/png", {}),
        ("JPEG", "image/jpeg", {"quality": 95}),
        ("WEBP", "image/webp", {"quality": 95}),
        ("BMP", "image/bmp", {}),
        ("TIFF", "image/tiff", {"compression": "tiff_lzw"}),
    ],
)
def test_a_picture_becomes_a_smaller_webp_of_the_same_picture(
    tmp_path: Path, fmt: str, mime: str, params: dict[str, Any]
) -> None:
    path = save(halves((600, 300), RED, BLUE, "RGB"), tmp_path / "in", fmt, **params)
    thumb = thumbnails.render(path, mime, 128)
    assert not thumb.is_icon and thumb.reason == ""
    assert (thumb.width, thumb.height) == (128, 64)
    picture = decoded(thumb)
    assert near(picture.getpixel((10, 32)), RED) and near(picture.getpixel((118, 32)), BLUE)


def test_the_longest_side_fits_at_every_size_and_small_pictures_are_not_enlarged(
    tmp_path: Path,
) -> None:
    tall = save(Image.new("RGB", (300, 1100), GREEN), tmp_path / "tall.png", "PNG")
    for size in (32, 33, 100, 255, 256, 1000, 1024):
        thumb = thumbnails.render(tall, "image/png", size)
        assert thumb.height == min(size, 1100) and thumb.width <= thumb.height
        assert decoded(thumb).size == (thumb.width, thumb.height)
    for fmt, mime in (("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")):
        for shape in ((20, 10), (256, 192)):
            small = save(Image.new("RGB", shape, GREEN), tmp_path / f"small.{fmt}", fmt)
            thumb = thumbnails.render(small, mime, 256)
            assert not thumb.is_icon, thumb.reason
            assert (thumb.width, thumb.height) == shape
            assert near(decoded(thumb).getpixel((5, 5)), GREEN)


MODES_BY_FORMAT = {
    "PNG": ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"),
    "JPEG": ("L", "RGB", "CMYK"),
    "WEBP": ("RGB", "RGBA"),
    "GIF": ("L", "P"),
    "BMP": ("1", "L", "P", "RGB"),
    "TIFF": ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"),
    **({"AVIF": ("RGB", "RGBA")} if features.check("avif") else {}),
}


@pytest.mark.parametrize(
    ("fmt", "mode"), [(fmt, mode) for fmt, modes in MODES_BY_FORMAT.items() for mode in modes]
)
def test_every_mode_of_every_format_gets_a_thumbnail(tmp_path: Path, fmt: str, mode: str) -> None:
    mime = "image/" + fmt.lower()
    for shape, fitted in (((300, 200), (64, 43)), ((20, 10), (20, 10))):
        deep = mode in ("I;16", "I", "F")  # 16-bit samples, widened to 32 in I and F
        picture = halves(shape, RED, BLUE, "RGB").convert("L" if deep else mode)
        if deep:
            picture = picture.convert("I").point(lambda value: value * 257).convert(mode)
        path = save(picture, tmp_path / f"p.{fmt}", fmt)
        thumb = thumbnails.render(path, mime, 64)
        assert not thumb.is_icon, thumb.reason
        assert (thumb.width, thumb.height) == fitted
        assert decoded(thumb).mode in ("RGB", "RGBA")


def test_a_file_object_is_read_from_its_start_and_left_open(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    halves((400, 200), RED, BLUE, "RGB").save(buffer, "PNG")
    buffer.seek(123)
    thumb = thumbnails.render(buffer, "image/png", 64)
    assert not thumb.is_icon and (thumb.width, thumb.height) == (64, 32)
    assert not buffer.closed


@pytest.mark.parametrize(
    ("fmt", "mime"), [("GIF", "image/gif"), ("WEBP", "image/webp"), ("PNG", "image/apng")]
)
def test_an_animation_shows_its_first_frame(tmp_path: Path, fmt: str, mime: str) -> None:
    frames = [Image.new("RGB", (120, 80), colour) for colour in (RED, BLUE, GREEN)]
    path = tmp_path / "anim"
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(path) as animation:
        assert animation.n_frames == 3
    thumb = thumbnails.render(path, mime, 64)
    assert not thumb.is_icon and (thumb.width, thumb.height) == (64, 43)
    assert near(decoded(thumb).getpixel((32, 20)), RED)


def test_transparency_is_kept(tmp_path: Path) -> None:
    picture = halves((200, 100), (0, 0, 0, 0), (*BLUE, 255), "RGBA")
    thumb = thumbnails.render(save(picture, tmp_path / "a.png", "PNG"), "image/png", 64)
    out = decoded(thumb)
    assert out.mode == "RGBA"
    assert out.getpixel((4, 16))[3] == 0 and near(out.getpixel((60, 16)), (*BLUE, 255))


def test_a_16_bit_png_keeps_its_tones(tmp_path: Path) -> None:
    # A grey ramp of 16-bit samples: clipping to 8 bits would show it almost all white.
    ramp = Image.new("I;16", (256, 64))
    ramp.putdata([x * 256 for _ in range(64) for x in range(256)])
    path = save(ramp, tmp_path / "deep.png", "PNG")
    assert mode_of(path) == "I;16"
    out = decoded(thumbnails.render(path, "image/png", 128))
    assert out.mode == "RGB"
    for x in (8, 64, 120):
        expected = 2 * x * 256 // 257
        assert all(abs(channel - expected) <= 6 for channel in out.getpixel((x, 16)))


@pytest.mark.parametrize("transparent", [False, True])
def test_palette_pictures_keep_their_colours_and_transparency(
    tmp_path: Path, transparent: bool
) -> None:
    picture = halves((200, 100), RED, BLUE, "RGB").quantize(4)
    params = {"transparency": picture.getpixel((150, 50))} if transparent else {}
    path = save(picture, tmp_path / "pal.png", "PNG", **params)
    assert mode_of(path) == "P"
    out = decoded(thumbnails.render(path, "image/png", 64))
    assert near(out.getpixel((4, 16)), RED)
    if transparent:
        assert out.mode == "RGBA" and out.getpixel((60, 16))[3] == 0
    else:
        assert out.mode == "RGB" and near(out.getpixel((60, 16)), BLUE)


def test_a_cmyk_jpeg_shows_its_colours(tmp_path: Path) -> None:
    picture = halves((200, 100), RED, BLUE, "RGB").convert("CMYK")
    path = save(picture, tmp_path / "print.jpg", "JPEG", quality=95)
    assert mode_of(path) == "CMYK"
    out = decoded(thumbnails.render(path, "image/jpeg", 64))
    assert near(out.getpixel((4, 16)), RED, 40) and near(out.getpixel((60, 16)), BLUE, 40)


@pytest.mark.parametrize(
    ("orientation", "size", "top", "bottom"),
    [
        (1, (128, 64), RED, RED),  # upright: left red, right blue
        (3, (128, 64), BLUE, BLUE),  # upside down: the stored right half is shown left
        (6, (64, 128), RED, BLUE),  # turned a quarter clockwise: stored left is shown on top
        (8, (64, 128), BLUE, RED),  # a quarter counterclockwise: stored left at the bottom
    ],
)
def test_exif_orientation_is_applied(
    tmp_path: Path,
    orientation: int,
    size: tuple[int, int],
    top: tuple[int, ...],
    bottom: tuple[int, ...],
) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    picture = halves((400, 200), RED, BLUE, "RGB")
    path = save(picture, tmp_path / "photo.jpg", "JPEG", quality=95, exif=exif.tobytes())
    out = decoded(thumbnails.render(path, "image/jpeg", 128))
    assert out.size == size
    assert near(out.getpixel((4, 4)), top) and near(out.getpixel((4, out.height - 5)), bottom)


def test_a_large_jpeg_is_decoded_at_reduced_scale(tmp_path: Path) -> None:
    # 24 megapixels, so a full decode (96 MB) would show plainly in the peak memory.
    path = save(halves((6000, 4000), RED, BLUE, "RGB"), tmp_path / "big.jpg", "JPEG")
    growth, thumb = render_in_child(path, "image/jpeg")
    assert not thumb["is_icon"] and (thumb["width"], thumb["height"]) == (256, 171)
    assert growth < 24 << 20, f"peak memory grew by {growth >> 20} MiB"


# -- videos ----------------------------------------------------------------------------


def write_video(path: Path, size: tuple[int, int], rotation: int = 0) -> None:
    """A short MPEG-4 clip whose first frame is red on the left, blue on the right."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for colours in ((RED, BLUE), (GREEN, GREEN), (BLUE, RED)):
            frame = av.VideoFrame.from_image(halves(size, *colours, "RGB"))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_a_video_shows_its_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    write_video(path, (320, 240))
    thumb = thumbnails.render(path, "video/mp4", 64)
    assert not thumb.is_icon, thumb.reason
    out = decoded(thumb)
    assert out.size == (64, 48)
    assert near(out.getpixel((6, 24)), RED, 40) and near(out.getpixel((58, 24)), BLUE, 40)


def test_a_rotated_video_is_shown_upright(tmp_path: Path) -> None:
    path = tmp_path / "phone.mp4"
    write_video(path, (320, 240), rotation=90)  # counterclockwise: stored left at the bottom
    out = decoded(thumbnails.render(path, "video/mp4", 64))
    assert out.size == (48, 64)
    assert near(out.getpixel((24, 4)), BLUE, 40) and near(out.getpixel((24, 59)), RED, 40)


def test_a_video_over_the_pixel_cap_gets_the_video_icon(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    write_video(path, (320, 240))
    thumb = thumbnails.render(path, "video/mp4", 64, max_pixels=320 * 240 - 1)
    assert thumb.is_icon and thumb.data == thumbnails.icon_for("video/mp4", 64).data
    assert "cap" in thumb.reason


# -- what gets the icon ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("mime", "kind"),
    [
        ("audio/mpeg", "audio"),
        ("audio/flac", "audio"),
        ("application/pdf", "document"),
        ("text/plain; charset=utf-8", "document"),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "document"),
        ("application/zip", "other"),
        ("application/octet-stream", "other"),
        ("", "other"),
        ("IMAGE/HEIC", "image"),  # no HEIF reader installed: the image icon
        ("image/x-unknown", "image"),
        ("video/x-unknown", "video"),
    ],
)
def test_other_types_get_the_icon_of_their_kind(tmp_path: Path, mime: str, kind: str) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"%PDF-1.7 or anything at all " * 10)
    assert thumbnails.kind_of(mime) == kind
    thumb = thumbnails.render(path, mime, 256)
    assert thumb.is_icon and thumb.reason
    assert thumb.data == (STATIC / f"{kind}-256.webp").read_bytes()
    assert thumb == Thumbnail(thumb.data, "image/webp", 256, 256, True, thumb.reason)
    assert thumbnails.icon_for(mime, 256).data == thumb.data


def damaged_files() -> dict[str, tuple[str, bytes]]:
    buffer = io.BytesIO()
    halves((300, 200), RED, BLUE, "RGB").save(buffer, "PNG")
    png = buffer.getvalue()
    buffer = io.BytesIO()
    halves((300, 200), RED, BLUE, "RGB").save(buffer, "JPEG")
    jpeg = buffer.getvalue()
    return {
        "truncated png": ("image/png", png[: len(png) // 2]),
        "png with a bad checksum": ("image/png", png[:40] + bytes([png[40] ^ 0xFF]) + png[41:]),
        "jpeg header only": ("image/jpeg", jpeg[:300]),
        "jpeg labelled png": ("image/png", jpeg),
        "random bytes": ("image/webp", bytes(range(256)) * 40),
        "empty file": ("image/gif", b""),
        "png header of a giant": ("image/png", png[:8] + png_chunk(b"IHDR", b"\xff" * 13)),
        "broken video": ("video/mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(500)),
        "empty video": ("video/webm", b""),
    }


@pytest.mark.parametrize("name", sorted(damaged_files()))
def test_a_damaged_file_gets_the_icon_not_an_exception(tmp_path: Path, name: str) -> None:
    mime, data = damaged_files()[name]
    path = tmp_path / "damaged"
    path.write_bytes(data)
    thumb = thumbnails.render(path, mime, 100)
    assert thumb.is_icon and thumb.reason
    assert thumb == Thumbnail(
        thumbnails.icon_for(mime, 64).data, "image/webp", 64, 64, True, thumb.reason
    )
    assert decoded(thumb).size == (64, 64)


def test_a_missing_file_gets_the_icon(tmp_path: Path) -> None:
    thumb = thumbnails.render(tmp_path / "gone.png", "image/png", 64)
    assert thumb.is_icon and "FileNotFoundError" in thumb.reason


def test_the_pixel_cap_is_inclusive(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (100, 100), RED), tmp_path / "p.png", "PNG")
    assert not thumbnails.render(path, "image/png", 64, max_pixels=10_000).is_icon
    capped = thumbnails.render(path, "image/png", 64, max_pixels=9_999)
    assert capped.is_icon and "100x100" in capped.reason


def test_a_100_megapixel_png_gets_the_icon_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    write_zero_png(path, 10_000, 10_000)
    assert path.stat().st_size < 1 << 20
    before = Image.MAX_IMAGE_PIXELS
    growth, thumb = render_in_child(path, "image/png")
    assert thumb["is_icon"] and "over the cap" in thumb["reason"]
    assert growth < 16 << 20, f"peak memory grew by {growth >> 20} MiB"
    assert before == Image.MAX_IMAGE_PIXELS
    # In this process too: the cap, not Pillow's warning above 89 MP (an error in the tests).
    assert "over the cap" in thumbnails.render(path, "image/png", 64).reason


def render_in_child(path: Path, mime: str) -> tuple[int, dict[str, Any]]:
    """Peak resident memory growth of one ``render`` in a fresh process, and its result.

    A fresh process, because a peak never goes down: measured here it would hide under
    whatever the tests before reached. The peak is the kernel's high-water mark of the new
    program (``VmHWM``, reset by exec), not ``ru_maxrss``, which Linux carries over from
    the parent through fork and exec. Pillow's buffers are C memory, which tracemalloc
    does not see.
    """
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc/self/status (Linux) to read the peak memory")
    script = textwrap.dedent(
        """
        import io, json, sys
        from PIL import Image, features
        from dreamflare_store import thumbnails

        def peak():
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024

        warm = io.BytesIO()
        Image.new("RGB", (64, 64)).save(warm, "PNG")
        thumbnails.render(warm, "image/png", 32)  # load the decoders and encoder first
        before = peak()
        thumb = thumbnails.render(sys.argv[1], sys.argv[2], 256)
        print(json.dumps({"growth": peak() - before, "is_icon": thumb.is_icon,
                          "reason": thumb.reason, "width": thumb.width, "height": thumb.height}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path), mime],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result.pop("growth"), result


# -- arguments and icons ---------------------------------------------------------------


@pytest.mark.parametrize("size", [31, 1025, 0, -256, "256", 256.0, True, None])
def test_a_bad_size_is_an_invalid_argument(tmp_path: Path, size: Any) -> None:
    path = save(Image.new("RGB", (10, 10)), tmp_path / "p.png", "PNG")
    with pytest.raises(InvalidArgument):
        thumbnails.render(path, "image/png", size)
    with pytest.raises(InvalidArgument):
        thumbnails.icon_for("image/png", size)


@pytest.mark.parametrize("max_pixels", [0, -1, 1.5, "many", True])
def test_a_bad_pixel_cap_is_an_invalid_argument(tmp_path: Path, max_pixels: Any) -> None:
    with pytest.raises(InvalidArgument):
        thumbnails.render(tmp_path / "p.png", "image/png", 64, max_pixels=max_pixels)


def test_every_icon_is_shipped_and_fits_every_size() -> None:
    for kind in icons.KINDS:
        mime = {"document": "application/pdf", "other": "application/zip"}.get(kind, f"{kind}/x")
        for size in (32, 63, 64, 200, 256, 511, 512, 1024):
            thumb = thumbnails.icon_for(mime, size)
            assert thumb.is_icon and thumb.reason == ""
            assert thumb.width == thumb.height <= size and thumb.width >= size // 2
            assert decoded(thumb).mode == "RGBA"


def test_without_pillow_the_package_imports_and_answers_with_icons(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (100, 100), RED), tmp_path / "p.png", "PNG")
    script = textwrap.dedent(
        """
        import sys
        sys.modules["PIL"] = None  # as if Pillow were not installed: importing it fails
        sys.modules["av"] = None
        from dreamflare_store import thumbnails
        thumb = thumbnails.render(sys.argv[1], "image/png", 64)
        assert thumb.is_icon and "PIL" in thumb.reason, thumb
        assert thumb.data == thumbnails.icon_for("image/png", 64).data
        assert thumbnails.render(sys.argv[1], "video/mp4", 64).is_icon
        assert "PIL" not in sys.modules or sys.modules["PIL"] is None
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
