"""Tests for dreamflare_store.media.sniff on real encoder output and hand-built video headers."""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, features

from dreamflare_store.media import SNIFF_BYTES, MediaInfo, sniff

W, H = 123, 45  # distinct, non-square: catches swapped or misread width/height fields


def encode(fmt: str, mode: str = "RGB", size: tuple[int, int] = (W, H), **params: Any) -> bytes:
    # Noise rather than a flat colour so encoders emit realistic, non-degenerate streams.
    noise = Image.effect_noise(size, 64)
    img = Image.merge("RGB", (noise, noise.rotate(90, expand=False), noise)).convert(mode)
    if mode == "RGBA":  # real transparency, or encoders drop the alpha channel as redundant
        img.putalpha(noise)
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def jpeg_sof_offset(data: bytes) -> int:
    """Offset of the image's own SOF0/SOF2: the first one carrying W x H, not a lookalike."""
    sof = re.compile(rb"\xff[\xc0\xc2]\x00\x11\x08" + re.escape(struct.pack(">HH", H, W)))
    match = sof.search(data)
    assert match is not None
    return match.start()


# A fake SOF (1x1) inside APP1 payloads: a parser that scans for FF C0 instead of skipping
# segments by length would report this instead of the real size.
FAKE_SOF = b"\xff\xc0\x00\x11\x08\x00\x01\x00\x01\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    return box(b"ftyp", major + b"\x00\x00\x02\x00" + b"".join(compatible))


def ispe(width: int, height: int) -> bytes:
    return box(b"ispe", b"\x00\x00\x00\x00" + struct.pack(">II", width, height))


def heif_file(*brands: bytes, sizes: tuple[tuple[int, int], ...] = ((W, H),)) -> bytes:
    ipco = box(b"ipco", b"".join(ispe(w, h) for w, h in sizes))
    meta = box(b"meta", b"\x00\x00\x00\x00" + box(b"iprp", ipco))
    return ftyp(*brands) + meta + box(b"mdat", b"\x00" * 64)


def ebml_element(element_id: int, payload: bytes) -> bytes:
    # IDs are written with their marker bits; sizes as 1-byte vints (payloads here are < 127).
    assert len(payload) < 127
    raw_id = element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")
    return raw_id + bytes([0x80 | len(payload)]) + payload


def ebml_file(doctype: bytes) -> bytes:
    header = b"".join(
        [
            ebml_element(0x4286, b"\x01"),  # EBMLVersion
            ebml_element(0x42F7, b"\x01"),  # EBMLReadVersion
            ebml_element(0x42F2, b"\x04"),  # EBMLMaxIDLength
            ebml_element(0x42F3, b"\x08"),  # EBMLMaxSizeLength
            ebml_element(0x4282, doctype),  # DocType
            ebml_element(0x4287, b"\x04"),  # DocTypeVersion
            ebml_element(0x4285, b"\x02"),  # DocTypeReadVersion
        ]
    )
    # Segment with "unknown" size, as live encoders write it.
    return ebml_element(0x1A45DFA3, header) + b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff"


def big_endian_tiff(width: int, height: int) -> bytes:
    entries = [(256, 3, 1, width << 16), (257, 4, 1, height), (258, 3, 1, 8 << 16)]
    ifd = struct.pack(">H", len(entries)) + b"".join(struct.pack(">HHII", *e) for e in entries)
    return b"MM\x00*" + struct.pack(">I", 8) + ifd + b"\x00\x00\x00\x00" + bytes(width * height)


def with_large_exif() -> bytes:
    plain = encode("JPEG")
    exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00" + FAKE_SOF + bytes(60_000)
    data = encode("JPEG", exif=exif)
    assert len(data) > len(plain) + 60_000 and jpeg_sof_offset(data) > 60_000
    return data


def with_large_icc(icc_size: int) -> bytes:
    # Pillow splits the profile over several APP2 segments, each at most 64 KiB.
    data = encode("JPEG", icc_profile=bytes(icc_size))
    assert jpeg_sof_offset(data) > icc_size
    return data


SAMPLES: dict[str, tuple[Callable[[], bytes], str]] = {
    "png": (lambda: encode("PNG"), "image/png"),
    "png-rgba": (lambda: encode("PNG", "RGBA"), "image/png"),
    "jpeg": (lambda: encode("JPEG"), "image/jpeg"),
    "jpeg-grey": (lambda: encode("JPEG", "L"), "image/jpeg"),
    "jpeg-progressive": (lambda: encode("JPEG", progressive=True), "image/jpeg"),
    "jpeg-large-exif": (with_large_exif, "image/jpeg"),
    "jpeg-large-icc": (lambda: with_large_icc(200_000), "image/jpeg"),
    "webp-lossy": (lambda: encode("WEBP", quality=80), "image/webp"),
    "webp-lossless": (lambda: encode("WEBP", lossless=True), "image/webp"),
    "webp-alpha": (lambda: encode("WEBP", "RGBA", quality=80), "image/webp"),
    "gif": (lambda: encode("GIF", "P"), "image/gif"),
    "bmp": (lambda: encode("BMP"), "image/bmp"),
    "tiff": (lambda: encode("TIFF"), "image/tiff"),
    "tiff-big-endian": (lambda: big_endian_tiff(W, H), "image/tiff"),
    "heic": (lambda: heif_file(b"heic", b"mif1", b"heic"), "image/heic"),
    "avif-handmade": (lambda: heif_file(b"avif", b"mif1", b"miaf"), "image/avif"),
}
if features.check("avif"):
    SAMPLES["avif"] = (lambda: encode("AVIF", quality=50), "image/avif")

IMAGES: dict[str, bytes] = {name: make() for name, (make, _) in SAMPLES.items()}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_real_images(name: str) -> None:
    assert sniff(IMAGES[name]) == MediaInfo(SAMPLES[name][1], W, H)


def test_samples_exercise_the_variants_they_claim() -> None:
    assert b"\xff\xc2" in IMAGES["jpeg-progressive"][:2000]
    # Lossy WebP with alpha must be the extended (VP8X) variant, the others plain.
    assert IMAGES["webp-alpha"][12:16] == b"VP8X"
    assert IMAGES["webp-lossy"][12:16] == b"VP8 "
    assert IMAGES["webp-lossless"][12:16] == b"VP8L"


def test_webp_vp8x_from_metadata() -> None:
    data = encode("WEBP", quality=80, exif=b"Exif\x00\x00II*\x00\x08\x00\x00\x00")
    assert data[12:16] == b"VP8X"
    assert sniff(data) == MediaInfo("image/webp", W, H)


def test_jpeg_icc_spanning_the_whole_sniff_window() -> None:
    # SOF lies beyond what the engine buffers: the type is still known, the size is not.
    data = with_large_icc(SNIFF_BYTES + 10_000)
    assert sniff(data[:SNIFF_BYTES]) == MediaInfo("image/jpeg")
    assert sniff(data) == MediaInfo("image/jpeg", W, H)


def test_jpeg_fill_bytes_restart_markers_and_thumbnail_segments() -> None:
    data = encode("JPEG")
    app1 = b"Exif\x00\x00" + FAKE_SOF
    extra = b"\xff\xe1" + struct.pack(">H", 2 + len(app1)) + app1  # thumbnail-like SOF inside
    extra += b"\xff\xd0"  # stray restart marker: standalone, no length
    extra += b"\xff\xff\xff"  # fill bytes before the next marker
    patched = data[:2] + extra + data[2:]
    assert sniff(patched) == MediaInfo("image/jpeg", W, H)


def test_bmp_top_down() -> None:
    data = bytearray(IMAGES["bmp"])
    data[22:26] = struct.pack("<i", -H)
    assert sniff(bytes(data)) == MediaInfo("image/bmp", W, H)


def test_heic_grid_reports_the_largest_ispe() -> None:
    # iPhone HEICs are grids of 512x512 tiles plus a thumbnail; the canvas is the largest.
    # A bogus oversized entry must not hide the real canvas.
    sizes = ((512, 512), (4032, 3024), (320, 240), (2_000_000, 5))
    data = heif_file(b"heic", b"mif1", b"heic", sizes=sizes)
    assert sniff(data) == MediaInfo("image/heic", 4032, 3024)


def test_ebml_cut_before_doctype_is_matroska() -> None:
    data = ebml_file(b"webm")
    assert sniff(data[: data.index(b"\x42\x82")]) == MediaInfo("video/x-matroska")
    assert sniff(data[:4]) == MediaInfo("video/x-matroska")


@pytest.mark.parametrize(
    ("header", "mime"),
    [
        (ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "video/mp4"),
        (ftyp(b"mp42", b"mp42", b"isom"), "video/mp4"),
        (ftyp(b"dash", b"iso6", b"mp41"), "video/mp4"),
        (ftyp(b"M4V ", b"M4V ", b"M4A ", b"mp42", b"isom"), "video/mp4"),
        (ftyp(b"3gp5", b"isom", b"3gp5"), "video/mp4"),
        (ftyp(b"qt  ", b"qt  "), "video/quicktime"),
        (ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"), "audio/mp4"),
        (ftyp(b"avis", b"avis", b"msf1", b"iso8", b"mif1"), "image/avif"),
        (ftyp(b"mif1", b"mif1", b"avif"), "image/avif"),
        (ftyp(b"mif1", b"mif1", b"heic"), "image/heic"),
        (ftyp(b"mif1", b"mif1"), "image/heif"),
        (ftyp(b"crx ", b"crx "), "application/octet-stream"),
        (box(b"wide", b"") + box(b"mdat", b"\x00" * 16), "video/quicktime"),
        (ebml_file(b"webm"), "video/webm"),
        (ebml_file(b"matroska"), "video/x-matroska"),
        (ebml_file(b"something"), "application/octet-stream"),
    ],
)
def test_video_headers(header: bytes, mime: str) -> None:
    assert sniff(header + bytes(1000)) == MediaInfo(mime)


def test_video_moov_first() -> None:
    data = ftyp(b"isom", b"isom") + box(b"moov", box(b"mvhd", bytes(100)))
    assert sniff(data) == MediaInfo("video/mp4")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"hello world",
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        b"BM" + bytes(100),  # "BM" without a plausible DIB header
        b"PK\x03\x04" + bytes(100),
        b"%PDF-1.7\n",
    ],
)
def test_unknown(data: bytes) -> None:
    assert sniff(data) == MediaInfo("application/octet-stream")


@pytest.mark.parametrize(("width", "height"), [(0, H), (W, 0), (2_000_000, H), (W, 1_000_001)])
def test_nonsense_dimensions_are_none(width: int, height: int) -> None:
    data = bytearray(IMAGES["png"])
    data[16:24] = struct.pack(">II", width, height)
    assert sniff(bytes(data)) == MediaInfo("image/png")


def test_dimension_limit_is_inclusive() -> None:
    data = bytearray(IMAGES["png"])
    data[16:24] = struct.pack(">II", 1_000_000, 1)
    assert sniff(bytes(data)) == MediaInfo("image/png", 1_000_000, 1)


def test_accepts_bytearray_and_memoryview() -> None:
    data = IMAGES["png"]
    assert sniff(bytearray(data)) == sniff(memoryview(data)) == MediaInfo("image/png", W, H)


def test_media_info_is_frozen() -> None:
    info = sniff(IMAGES["gif"])
    with pytest.raises(AttributeError):
        info.width = 1  # type: ignore[misc]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "data",
    [
        # Thousands of empty comment segments: linear walk, not a hang.
        b"\xff\xd8" + b"\xff\xfe\x00\x02" * 60_000,
        # A JPEG segment that claims to be the maximum length, ending the buffer early.
        b"\xff\xd8\xff\xe1\xff\xff" + bytes(100),
        # Only fill bytes after SOI.
        b"\xff\xd8" + b"\xff" * 200_000,
        # TIFF whose IFD claims 65535 entries and one whose IFD lies past the end.
        b"II*\x00\x08\x00\x00\x00\xff\xff" + bytes(100),
        b"MM\x00*\xff\xff\xff\xf0",
        # EBML header with an 8-byte maximal size and an element with a huge size.
        b"\x1a\x45\xdf\xa3\x01\xff\xff\xff\xff\xff\xff\xff\x42\x86\x01\xff\xff\xff\xff\xff\xff\xff",
        # EBML with a zero byte where a vint should be.
        b"\x1a\x45\xdf\xa3\x00\x00\x00",
        # ftyp box claiming 4 GiB, and many ispe lookalikes.
        b"\xff\xff\xff\xffftypheic" + b"\x00\x00\x00\x14ispe" * 20_000,
    ],
)
def test_adversarial_inputs_terminate(data: bytes) -> None:
    info = sniff(data)
    assert isinstance(info, MediaInfo) and isinstance(info.mime, str)


def check_invariants(info: object) -> None:
    assert isinstance(info, MediaInfo)
    assert isinstance(info.mime, str) and info.mime
    assert (info.width is None) == (info.height is None)
    if info.width is not None and info.height is not None:
        assert 1 <= info.width <= 1_000_000 and 1 <= info.height <= 1_000_000


SMALL = [name for name, data in IMAGES.items() if len(data) < 40_000]


@pytest.mark.parametrize("name", SMALL)
def test_every_truncation_of_small_images(name: str) -> None:
    data = IMAGES[name]
    for cut in range(len(data) + 1):
        check_invariants(sniff(data[:cut]))


@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    check_invariants(sniff(data))


MAGICS = [
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"RIFF\x00\x00\x00\x00WEBPVP8L",
    b"RIFF\x00\x00\x00\x00WEBPVP8X",
    b"GIF89a",
    b"BM\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x28\x00\x00\x00",
    b"II*\x00",
    b"MM\x00*",
    b"\x00\x00\x00\x18ftypheic",
    b"\x00\x00\x00\x18ftypavif",
    b"\x1a\x45\xdf\xa3",
]


@given(st.sampled_from(MAGICS), st.binary(max_size=512))
def test_magic_then_garbage_never_raises(magic: bytes, tail: bytes) -> None:
    check_invariants(sniff(magic + tail))


@settings(max_examples=300)
@given(st.sampled_from(sorted(IMAGES)), st.data())
def test_truncated_valid_images_never_raise(name: str, data: st.DataObject) -> None:
    image = IMAGES[name]
    cut = data.draw(st.integers(min_value=0, max_value=len(image)))
    info = sniff(image[:cut])
    check_invariants(info)
    # Once the type's magic is in, truncation may lose the size but never changes the type.
    if info.mime != "application/octet-stream":
        assert info.mime == SAMPLES[name][1]


@settings(max_examples=300)
@given(st.sampled_from(sorted(IMAGES)), st.data())
def test_corrupted_valid_images_never_raise(name: str, data: st.DataObject) -> None:
    image = bytearray(IMAGES[name][:SNIFF_BYTES])
    # Overwrite a few bytes near the start, where the headers the sniffer reads live.
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, min(len(image), 4096) - 1))
        image[pos] = data.draw(st.integers(0, 255))
    check_invariants(sniff(bytes(image)))
