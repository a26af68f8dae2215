"""genmeta.strip: metadata removed, image data byte-identical, files still valid.

Pillow decodes every stripped image to the same pixels; ICC profiles and the EXIF
orientation survive; MP4 boxes keep their offsets so sample tables stay correct.
"""

from __future__ import annotations

import io
import json
import struct

import pytest
from PIL import Image, ImageCms

from dreamflare_store import genmeta
from tests import genmeta_fixtures as f

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
TEXT = "a cat\nNegative prompt: dog\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42"
EXIF_ROTATED = f.tiff(
    {0x0112: f.short(6), 0x0131: f.ascii_tag("Tool")},
    f.user_comment(b"UNICODE\x00" + TEXT.encode("utf-16-be")),
)


def stripped(data: bytes) -> bytes:
    out = io.BytesIO()
    assert genmeta.strip(io.BytesIO(data), out) is True
    result = out.getvalue()
    again = io.BytesIO()
    genmeta.strip(io.BytesIO(result), again)
    assert again.getvalue() == result  # stripping is idempotent
    return result


def same_pixels(a: bytes, b: bytes) -> None:
    with Image.open(io.BytesIO(a)) as one, Image.open(io.BytesIO(b)) as two:
        assert (one.format, one.mode, one.size) == (two.format, two.mode, two.size)
        assert one.tobytes() == two.tobytes()


def orientation(data: bytes) -> int | None:
    with Image.open(io.BytesIO(data)) as image:
        value = image.getexif().get(0x0112)
        return int(value) if value is not None else None


def icc(data: bytes) -> bytes | None:
    with Image.open(io.BytesIO(data)) as image:
        profile = image.info.get("icc_profile")
        return bytes(profile) if profile else None


# --- PNG ---


def test_png_drops_text_chunks_keeps_icc_orientation_and_idat() -> None:
    base = f.pillow_bytes(f.pillow_image(), "PNG", icc_profile=ICC)
    data = f.insert_before_iend(
        base,
        f.text("parameters", TEXT),
        f.ztxt("prompt", json.dumps(f.COMFY_GRAPH)),
        f.itxt("workflow", "{}", compressed=True),
        f.chunk(b"eXIf", EXIF_ROTATED),
        f.chunk(b"caBX", f.c2pa_store()),
        f.chunk(b"tIME", b"\x07\xe8\x01\x01\x00\x00\x00"),
        f.chunk(b"prVt", b"private"),
    )
    out = stripped(data)
    same_pixels(data, out)
    kinds = [kind for kind, _ in f.png_chunks(out)]
    assert not {b"tEXt", b"zTXt", b"iTXt", b"caBX", b"tIME", b"prVt"} & set(kinds)
    assert [d for k, d in f.png_chunks(out) if k == b"IDAT"] == [
        d for k, d in f.png_chunks(data) if k == b"IDAT"
    ]
    assert icc(out) == ICC
    assert orientation(out) == 6
    assert genmeta.extract(out) is None  # what is left holds no metadata


def test_png_without_orientation_loses_exif_and_keeps_transparency() -> None:
    image = f.pillow_image(mode="P")
    base = f.pillow_bytes(image, "PNG", transparency=3)
    data = f.insert_before_iend(base, f.chunk(b"eXIf", f.tiff({0x0131: f.ascii_tag("x")})))
    data = data[:33] + f.text("parameters", TEXT) + data[33:]
    out = stripped(data)
    same_pixels(data, out)
    kinds = [kind for kind, _ in f.png_chunks(out)]
    assert b"eXIf" not in kinds and b"tRNS" in kinds and b"PLTE" in kinds


def test_apng_frames_survive() -> None:
    frames = [f.pillow_image(), f.pillow_image().rotate(90)]
    out_buffer = io.BytesIO()
    frames[0].save(out_buffer, "PNG", save_all=True, append_images=frames[1:], duration=100)
    data = f.insert_before_iend(out_buffer.getvalue(), f.text("parameters", TEXT))
    out = stripped(data)
    with Image.open(io.BytesIO(data)) as one, Image.open(io.BytesIO(out)) as two:
        assert one.n_frames == two.n_frames == 2
        for k in range(2):
            one.seek(k)
            two.seek(k)
            assert one.tobytes() == two.tobytes()


# --- JPEG ---


def test_jpeg_keeps_icc_and_orientation_only_and_scan_data() -> None:
    data = f.jpeg(
        f.exif_segment(EXIF_ROTATED),
        f.xmp_segment("<x:xmpmeta>secret</x:xmpmeta>"),
        f.segment(0xFE, b"a comment"),
        f.segment(0xED, b"Photoshop 3.0\x00" + b"8BIM" + b"\x00" * 20),
        *f.app11_segments(f.c2pa_store(), 2),
        icc_profile=ICC,
    )
    out = stripped(data)
    same_pixels(data, out)
    assert icc(out) == ICC
    assert orientation(out) == 6
    markers = [marker for marker, _ in f.jpeg_segments(out)]
    assert not {0xFE, 0xED, 0xEB} & set(markers)
    app1 = [payload for marker, payload in f.jpeg_segments(out) if marker == 0xE1]
    assert len(app1) == 1 and b"UNICODE" not in app1[0] and b"Tool" not in app1[0]
    sos = data.index(b"\xff\xda")
    assert out.endswith(data[sos:])  # everything from the first scan on is byte-identical
    assert genmeta.extract(out) is None


def test_jpeg_without_orientation_has_no_exif_left() -> None:
    block = f.tiff({}, f.user_comment(b"UNICODE\x00" + TEXT.encode("utf-16-be")))
    data = f.jpeg(f.exif_segment(block))
    out = stripped(data)
    same_pixels(data, out)
    assert 0xE1 not in [marker for marker, _ in f.jpeg_segments(out)]
    assert [m for m, _ in f.jpeg_segments(out)][0] == 0xE0  # JFIF stays


def test_progressive_jpeg_loses_segments_between_scans_and_data_after_eoi() -> None:
    data = f.jpeg(f.exif_segment(EXIF_ROTATED), progressive=True)
    second_scan = data.index(b"\xff\xda", data.index(b"\xff\xda") + 2)
    comment = f.segment(0xFE, b"between scans")
    xmp = f.xmp_segment("<x:xmpmeta>late</x:xmpmeta>")
    hostile = data[:second_scan] + comment + xmp + data[second_scan:] + b"TRAILING SECRET"
    out = stripped(hostile)
    same_pixels(data, out)
    assert b"between scans" not in out and b"late" not in out and b"SECRET" not in out
    assert out.endswith(b"\xff\xd9")
    assert data[data.index(b"\xff\xda") : second_scan] in out  # the first scan, untouched


def test_jpeg_without_eoi_is_copied_to_its_end() -> None:
    data = f.jpeg(f.segment(0xFE, b"note"))[:-2]
    out = stripped(data)
    assert out.endswith(data[data.index(b"\xff\xda") :]) and b"note" not in out


# --- WebP ---


@pytest.mark.parametrize("lossless", [True, False])
def test_webp_drops_exif_xmp_c2pa_and_fixes_size_and_flags(lossless: bool) -> None:
    image = f.pillow_image(mode="RGBA")
    data = f.webp(
        f.riff_chunk(b"EXIF", EXIF_ROTATED),
        f.riff_chunk(b"XMP ", b"<x:xmpmeta>odd</x:xmpmeta>"),
        f.riff_chunk(b"C2PA", f.c2pa_store()),
        f.riff_chunk(b"ZZZZ", b"unknown"),
        image=image,
        flags=0x0C | 0x10,
        icc=ICC,
        lossless=lossless,
    )
    out = stripped(data)
    same_pixels(data, out)
    chunks = f.webp_chunks(out)
    assert [c for c, _ in chunks if c not in (b"VP8 ", b"VP8L", b"ALPH")] == [
        b"VP8X",
        b"ICCP",
        b"EXIF",
    ]
    assert struct.unpack("<I", out[4:8])[0] == len(out) - 8
    flags = chunks[0][1][0]
    assert flags & 0x08 and not flags & 0x04 and flags & 0x20 and flags & 0x10
    assert icc(out) == ICC
    assert orientation(out) == 6
    for fourcc, payload in f.webp_chunks(data):
        if fourcc in (b"VP8 ", b"VP8L", b"ALPH"):
            assert (fourcc, payload) in chunks  # image data byte-identical


def test_webp_without_orientation_clears_the_exif_flag() -> None:
    data = f.webp(f.riff_chunk(b"EXIF", f.a1111_exif(TEXT)), flags=0x08)
    out = stripped(data)
    same_pixels(data, out)
    chunks = f.webp_chunks(out)
    assert [c for c, _ in chunks][0] == b"VP8X" and b"EXIF" not in [c for c, _ in chunks]
    assert chunks[0][1][0] & 0x08 == 0


def test_simple_webp_passes_unchanged() -> None:
    data = f.pillow_bytes(f.pillow_image(), "WEBP", lossless=True)
    assert stripped(data) == data


# --- MP4 ---


def test_mp4_boxes_blanked_in_place() -> None:
    secret = json.dumps(f.COMFY_GRAPH)
    data = f.mp4(
        f.c2pa_uuid_box(f.c2pa_store()),
        moov_extra=f.itunes_udta(secret) + f.mdta_meta({"prompt": secret, "workflow": "{}"}),
        trak_extra=f.box(b"udta", f.box(b"\xa9nam", b"\x00\x05\x00\x00title")),
    )
    out = stripped(data)
    assert len(out) == len(data)
    assert f.stco_offset(out) == f.stco_offset(data)
    offset = f.stco_offset(data)
    assert out[offset:][:40] == data[offset:][:40]  # the samples are where stco says
    assert b"KSampler" not in out and b"title" not in out and b"c2pa" not in out
    assert genmeta.extract(out) is None
    # Boxes keep their places: only the types of the blanked ones changed, to free.
    changed = {k for k in range(len(data)) if data[k] != out[k]}
    assert min(changed) > data.index(b"moov")
    assert out.count(b"free") == 4  # moov/udta, moov/meta, trak/udta, the C2PA uuid


def test_mp4_mdat_first_and_64_bit_box() -> None:
    data = f.mp4(moov_extra=f.mdta_meta({"prompt": "secret prompt"}), mdat_first=True)
    at = data.index(b"mdat") - 4
    size = struct.unpack(">I", data[at : at + 4])[0]
    data = data[:at] + struct.pack(">I4sQ", 1, b"mdat", size + 8) + data[at + 8 :]
    stco_at = data.index(b"stco")
    data = data[: stco_at + 12] + struct.pack(">I", at + 16) + data[stco_at + 16 :]
    out = stripped(data)
    assert len(out) == len(data) and b"secret prompt" not in out
    assert out[: data.index(b"moov")] == data[: data.index(b"moov")]


# --- refusals ---


def test_unknown_format_returns_false_and_writes_nothing() -> None:
    out = io.BytesIO()
    assert genmeta.strip(io.BytesIO(b"BM" + b"\x00" * 60), out) is False
    assert out.getvalue() == b""


def test_non_seekable_source_and_offset_source() -> None:
    data = f.png(f.text("parameters", TEXT))

    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.rest = data

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            n = min(len(buffer), 5, len(self.rest))
            buffer[:n], self.rest = self.rest[:n], self.rest[n:]
            return n

    out = io.BytesIO()
    assert genmeta.strip(Pipe(), out) is True  # type: ignore[arg-type]
    assert out.getvalue() == f.png()
    offset = io.BytesIO(b"xx" + data)
    offset.seek(2)
    out = io.BytesIO()
    assert genmeta.strip(offset, out) is True
    assert out.getvalue() == f.png()


@pytest.mark.parametrize(
    "data",
    [
        f.png(f.text("parameters", TEXT))[:-20],
        f.png()[:-12],
        f.jpeg()[:200],
        f.webp()[:-10],
        f.mp4()[:-30],
    ],
    ids=["png-cut", "png-no-iend", "jpeg-cut", "webp-cut", "mp4-cut"],
)
def test_damaged_files_raise_strip_error(data: bytes) -> None:
    with pytest.raises(genmeta.StripError):
        genmeta.strip(io.BytesIO(data), io.BytesIO())


@pytest.mark.parametrize("unknown_sizes", [False, True])
def test_webm_tags_become_void_in_place(unknown_sizes: bool) -> None:
    data = f.webm({"COMMENT": json.dumps({"prompt": f.COMFY_GRAPH})}, unknown_sizes)
    out = stripped(data)
    assert len(out) == len(data) and b"KSampler" not in out and b"COMMENT" not in out
    tags_at = data.index(bytes.fromhex("1254c367"))
    assert out[:tags_at] == data[:tags_at]  # the cluster and everything before it unmoved
    assert out[tags_at] == 0xEC  # a Void element of the same size
    assert genmeta.extract(out) is None


def test_damaged_webm_raises_strip_error() -> None:
    with pytest.raises(genmeta.StripError):
        genmeta.strip(io.BytesIO(f.webm({"A": "b"})[:-5]), io.BytesIO())


def test_gif_loses_comments_and_xmp_keeps_frames_and_looping() -> None:
    frames = [f.pillow_image().convert("P"), f.pillow_image().rotate(90).convert("P")]
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        "GIF",
        save_all=True,
        append_images=frames[1:],
        loop=0,
        comment=f.A1111_TEXT.encode(),
        duration=50,
    )
    data = buffer.getvalue()
    xmp = b"\x21\xff\x0bXMP DataXMP" + b"<x:xmpmeta>gif secret</x:xmpmeta>"
    xmp += b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
    data = data[:-1] + xmp + data[-1:] + b"after the trailer"
    found = genmeta.extract(data)
    assert found is not None and "gif secret" in found.raw["XMP"]
    out = stripped(data)
    assert b"gif secret" not in out and b"Negative" not in out and b"after" not in out
    assert b"NETSCAPE2.0" in out
    with Image.open(io.BytesIO(data)) as one, Image.open(io.BytesIO(out)) as two:
        assert one.n_frames == two.n_frames == 2 and two.info.get("loop") == 0
        for k in range(2):
            one.seek(k)
            two.seek(k)
            assert one.convert("RGB").tobytes() == two.convert("RGB").tobytes()
    assert genmeta.extract(out) is None
