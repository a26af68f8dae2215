"""genmeta containers: where metadata sits, every UserComment flavour, C2PA carriers, caps,
and hostile files that must cost bounded time and memory and never raise."""

from __future__ import annotations

import io
import json
import struct
import time
import tracemalloc
import zlib
from typing import Any

import pytest

from dreamflare_store import genmeta
from dreamflare_store.genmeta.record import PROMPT_BYTES
from tests import genmeta_fixtures as f

TEXT = "a cat\nNegative prompt: dog\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42"


def extracted(data: bytes | io.BufferedIOBase, **kwargs: Any) -> genmeta.Extracted:
    found = genmeta.extract(data, **kwargs)  # type: ignore[arg-type]
    assert found is not None
    return found


# --- PNG placement ---


def test_text_after_idat_is_found_without_decoding() -> None:
    found = extracted(f.png(after=[f.text("parameters", TEXT)]))
    assert found.record["prompt"] == "a cat" and found.record["seed"] == "42"


def test_duplicate_keys_keep_both_and_the_first_drives_the_record() -> None:
    found = extracted(
        f.png(
            f.text("parameters", TEXT),
            after=[f.text("parameters", "other\nSteps: 1, Seed: 2, Sampler: x")],
        )
    )
    assert found.raw["parameters#2"].startswith("other")
    assert found.record["prompt"] == "a cat"


def test_header_size_is_the_fallback() -> None:
    found = extracted(f.png(f.text("Software", "some editor")))
    assert (found.record["width"], found.record["height"]) == (1, 1)
    assert found.record["generator"] is None and found.record["aiGenerated"] is None


def test_no_metadata_and_unknown_formats_give_none() -> None:
    assert genmeta.extract(f.png()) is None
    assert genmeta.extract(f.pillow_bytes(f.pillow_image(), "JPEG")) is None
    assert genmeta.extract(b"GIF89a" + b"\x00" * 40) is None
    assert genmeta.extract(b"") is None
    assert genmeta.extract(b"\x1a\x45\xdf\xa3 webm is not read") is None


class _Pipe(io.RawIOBase):
    """A stream that cannot seek and returns short reads, like a socket."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = len(self._data) if n < 0 else min(n, 7)
        out, self._data = self._data[:n], self._data[n:]
        return out


def test_non_seekable_short_reading_stream_and_offset_stream() -> None:
    data = f.png(f.text("parameters", TEXT), after=[f.ztxt("prompt", json.dumps(f.COMFY_GRAPH))])
    found = extracted(_Pipe(data))  # type: ignore[arg-type]
    assert found.record["seed"] == "42" and "prompt" in found.raw
    stream = io.BytesIO(b"JUNK" + data)
    stream.seek(4)
    assert extracted(stream).record["seed"] == "42"


# --- EXIF UserComment flavours (JPEG and WebP) ---

COMMENTS = {
    "unicode-be-in-mm": (b"UNICODE\x00" + TEXT.encode("utf-16-be"), ">"),
    "unicode-le-in-ii": (b"UNICODE\x00" + TEXT.encode("utf-16-le"), "<"),
    "unicode-be-in-ii": (b"UNICODE\x00" + TEXT.encode("utf-16-be"), "<"),
    "unicode-le-in-mm": (b"UNICODE\x00" + TEXT.encode("utf-16-le"), ">"),
    "unicode-bom": (b"UNICODE\x00" + TEXT.encode("utf-16"), "<"),
    "unicode-utf8": (b"UNICODE\x00" + TEXT.encode("utf-8"), ">"),
    "ascii": (b"ASCII\x00\x00\x00" + TEXT.encode("ascii"), ">"),
    "no-prefix": (TEXT.encode("ascii"), "<"),
    "undefined-prefix": (b"\x00" * 8 + TEXT.encode("utf-8"), ">"),
    "odd-length": (b"UNICODE\x00" + TEXT.encode("utf-16-be") + b"\x00", ">"),
}


@pytest.mark.parametrize("name", sorted(COMMENTS))
@pytest.mark.parametrize("carrier", ["jpeg", "webp", "webp-exif-prefix", "png-exif"])
def test_user_comment_flavours(name: str, carrier: str) -> None:
    raw, order = COMMENTS[name]
    block = f.tiff({}, f.user_comment(raw), order)
    if carrier == "jpeg":
        data = f.jpeg(f.exif_segment(block))
    elif carrier == "png-exif":
        data = f.png(f.chunk(b"eXIf", block))
    else:
        prefix = b"Exif\x00\x00" if carrier == "webp-exif-prefix" else b""
        data = f.webp(f.riff_chunk(b"EXIF", prefix + block), flags=0x08)
    rec = extracted(data).record
    assert (rec["prompt"], rec["negativePrompt"], rec["seed"]) == ("a cat", "dog", "42")


def test_non_ascii_utf16_in_either_order() -> None:
    text = "猫と犬\nSteps: 20, Sampler: Euler, Seed: 1"
    for codec, order in (("utf-16-be", ">"), ("utf-16-le", "<")):
        block = f.tiff({}, f.user_comment(b"UNICODE\x00" + text.encode(codec)), order)
        assert extracted(f.jpeg(f.exif_segment(block))).record["prompt"] == "猫と犬"


def test_piexif_app1_bytes_from_the_spec() -> None:
    app1 = bytes.fromhex(
        "ffe10046457869660000 4d4d002a00000008 000187690004000000010000001a00000000"
        " 000192860007000000120000002c00000000 554e49434f444500 0061002000630061 0074".replace(
            " ", ""
        )
    )
    assert app1[2:4] == struct.pack(">H", len(app1) - 2)
    assert extracted(f.jpeg(app1)).raw["UserComment"] == "a cat"


def test_truncated_user_comment_count_is_cut_not_fatal() -> None:
    block = bytearray(f.tiff({}, f.user_comment(b"UNICODE\x00" + TEXT.encode("utf-16-be"))))
    at = block.index(b"\x92\x86")
    block[at + 4 : at + 8] = struct.pack(">I", 10_000)  # the count runs past the block
    found = extracted(f.jpeg(f.exif_segment(bytes(block))))
    assert found.raw["UserComment"].startswith("a cat") and "UserComment" in found.truncated


def test_jpeg_comment_and_webp_xmp_odd_padding() -> None:
    found = extracted(f.jpeg(f.segment(0xFE, b"made by a tool")))
    assert found.raw["JPEG comment"] == "made by a tool"
    xmp = "<x:xmpmeta>odd</x:xmpmeta>"  # odd length: a padding byte follows
    data = f.webp(
        f.riff_chunk(b"XMP ", xmp.encode()), f.riff_chunk(b"EXIF", f.a1111_exif(TEXT)), flags=0x0C
    )
    found = extracted(data)
    assert found.raw["XMP"] == xmp and found.record["seed"] == "42"


# --- MP4 boxes ---


def test_mp4_quicktime_meta_without_fullbox_and_64_bit_sizes() -> None:
    meta = f.mdta_meta({"com.apple.quicktime.comment": "hello", "prompt": "plain"}, iso=False)
    found = extracted(f.mp4(moov_extra=meta))
    assert found.raw["comment"] == "hello" and found.raw["prompt"] == "plain"
    assert (found.record["width"], found.record["height"]) == (640, 360)
    data = f.mp4(moov_extra=f.mdta_meta({"prompt": json.dumps(f.COMFY_GRAPH)}))
    at = data.index(b"mdat") - 4
    size = struct.unpack(">I", data[at : at + 4])[0]
    large = data[:at] + struct.pack(">I4sQ", 1, b"mdat", size + 8) + data[at + 8 :]
    assert extracted(large).record["seed"] == "156680208700286"
    last_box_to_eof = data[:at] + struct.pack(">I4s", 0, b"mdat") + data[at + 8 :]
    assert extracted(last_box_to_eof).record["seed"] == "156680208700286"


# --- C2PA ---


def test_c2pa_in_png_before_idat_and_before_iend() -> None:
    store = f.c2pa_store()
    for data in (f.png(f.chunk(b"caBX", store)), f.png(after=[f.chunk(b"caBX", store)])):
        found = extracted(data)
        assert found.record["aiGenerated"] is True
        assert found.record["claimGenerator"] == "ChatGPT/1.0 c2pa-rs/0.31"
        summary = json.loads(found.raw["c2pa"])
        assert summary["digitalSourceType"].endswith("/trainedAlgorithmicMedia")
        assert summary["actions"] == ["c2pa.created"]


def test_c2pa_in_jpeg_app11_over_three_segments() -> None:
    store = f.c2pa_store(claim_v2=True)
    found = extracted(f.jpeg(*f.app11_segments(store, 3)))
    assert found.record["claimGenerator"] == "Adobe Firefly/2.0"
    assert found.record["aiGenerated"] is True


def test_c2pa_in_webp_and_mp4() -> None:
    store = f.c2pa_store()
    found = extracted(f.webp(f.riff_chunk(b"C2PA", store)))
    assert found.record["claimGenerator"] == "ChatGPT/1.0 c2pa-rs/0.31"
    found = extracted(f.mp4(f.c2pa_uuid_box(store)))
    assert found.record["claimGenerator"] == "ChatGPT/1.0 c2pa-rs/0.31"


def test_c2pa_capture_claim_is_not_ai() -> None:
    store = f.c2pa_store(
        source_type="http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
    )
    assert extracted(f.png(f.chunk(b"caBX", store))).record["aiGenerated"] is False


def test_corrupt_and_truncated_jumbf() -> None:
    store = f.c2pa_store()
    for broken in (
        store[: len(store) // 2],
        store[:40],
        b"\x00\x00\x00\x08jumb" + b"\xff" * 50,
        store.replace(b"cbor", b"cbxr"),
    ):
        found = genmeta.extract(f.png(f.chunk(b"caBX", broken)))
        assert found is None or found.record["claimGenerator"] in (None, "ChatGPT/1.0 c2pa-rs/0.31")


def test_xxe_and_billion_laughs_xmp_are_not_expanded() -> None:
    xmp = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        "<x>&b;&xxe;<Iptc4xmpExt:DigitalSourceType>&xxe;</Iptc4xmpExt:DigitalSourceType></x>"
    )
    found = extracted(f.jpeg(f.xmp_segment(xmp)))
    assert found.raw["XMP"] == xmp and found.record["aiGenerated"] is None


# --- caps and bounds ---


def test_record_caps_long_prompt_on_a_character_boundary() -> None:
    prompt = "猫" * 10_000
    found = extracted(f.png(f.itxt("parameters", prompt + "\nSteps: 1, Seed: 1, Sampler: x")))
    assert len(found.record["prompt"].encode("utf-8")) <= PROMPT_BYTES
    assert found.record["prompt"] == "猫" * (PROMPT_BYTES // 3)
    assert len(json.dumps(found.record)) < 40_000


def test_huge_workflow_text_and_compressed_itxt_are_capped() -> None:
    workflow = json.dumps(
        {"nodes": [{"id": k, "widgets_values": ["x" * 100]} for k in range(90_000)]}
    )
    assert len(workflow) > 8_000_000
    graph = f.text("prompt", json.dumps(f.COMFY_GRAPH))
    for chunk in (f.text("workflow", workflow), f.itxt("workflow", workflow, compressed=True)):
        start = time.monotonic()
        found = extracted(f.png(graph, chunk))
        assert time.monotonic() - start < 2
        assert len(found.raw["workflow"]) == genmeta.Limits().max_text
        assert "workflow" in found.truncated
        assert found.record["seed"] == "156680208700286"


def test_zip_bomb_hits_the_cap_in_bounded_memory() -> None:
    bomb = zlib.compress(b"\x00" * 50_000_000, 9)
    assert len(bomb) < 100_000
    tracemalloc.start()
    try:
        found = genmeta.extract(f.png(f.chunk(b"zTXt", b"prompt\x00\x00" + bomb)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024
    assert found is not None and "prompt" in found.truncated


def test_limits_are_configurable() -> None:
    limits = genmeta.Limits(max_text=10)
    found = extracted(f.png(f.text("parameters", TEXT)), limits=limits)
    assert found.raw["parameters"] == TEXT[:10] and found.truncated == {"parameters"}
    assert found.record["prompt"] is None  # a truncated text is never interpreted


# --- hostile files ---


def test_lying_chunk_length_bad_crc_and_truncation() -> None:
    good = f.text("parameters", TEXT)
    bad_crc = good[:-4] + b"\x00\x00\x00\x00"
    assert extracted(f.png(bad_crc)).record["seed"] == "42"  # the CRC is not needed to read
    huge = f.SIGNATURE + f.IHDR + struct.pack(">I4s", 0x7FFFFFFF, b"tEXt") + b"parameters\x00x"
    found = extracted(huge)  # the file ends inside the chunk: what is there is kept, marked
    assert found.raw == {"parameters": "x"} and found.truncated == {"parameters"}
    data = f.png(good)
    for cut in range(0, len(data), 7):
        genmeta.extract(data[:cut])


def test_exif_offsets_outside_and_ifd_loops() -> None:
    loop = bytearray(f.tiff({0x0131: f.ascii_tag("Tool")}, {}, ">"))
    next_ifd = 8 + 2 + 12 * 2
    loop[next_ifd : next_ifd + 4] = struct.pack(">I", 8)  # IFD0's next IFD is itself
    out_of_range = f.tiff({0x010E: (f.ASCII, b"x" * 40)}, order="<").replace(
        struct.pack("<I", 26), struct.pack("<I", 0xFFFFFF00), 1
    )
    for block in (bytes(loop), out_of_range, b"MM\x00*\xff\xff\xff\xff", b"II*\x00\x08"):
        genmeta.extract(f.jpeg(f.exif_segment(block)))
    assert extracted(f.jpeg(f.exif_segment(bytes(loop)))).raw["Software"] == "Tool"


def test_riff_size_larger_than_the_file() -> None:
    data = bytearray(f.webp(f.riff_chunk(b"EXIF", f.a1111_exif(TEXT)), flags=0x08))
    data[4:8] = struct.pack("<I", 0xFFFFFFF0)
    assert extracted(bytes(data)).record["seed"] == "42"


def test_hundred_thousand_tiny_text_chunks_are_fast() -> None:
    tiny = f.text("k", "v")
    start = time.monotonic()
    found = extracted(f.png(*([tiny] * 100_000)))
    assert time.monotonic() - start < 5
    assert len(found.raw) == genmeta.Limits().max_texts


def test_deep_json_and_huge_numbers_do_not_raise() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    found = extracted(
        f.png(f.text("prompt", deep), f.text("parameters", '{"seed": ' + "9" * 5000 + "}"))
    )
    assert found.record["generator"] is None and found.record["seed"] is None


def test_many_bombs_share_one_total_cap() -> None:
    bomb = f.chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b"a" * 3_000_000, 9))
    start = time.monotonic()
    found = extracted(f.png(*([bomb] * 30)))
    assert time.monotonic() - start < 5
    limits = genmeta.Limits()
    assert sum(len(text) for text in found.raw.values()) <= limits.max_raw
    assert len(found.raw) == limits.max_raw // limits.max_text  # then there is no room left


def test_the_package_imports_only_the_standard_library_and_itself() -> None:
    import ast
    import sys
    from pathlib import Path

    folder = Path(genmeta.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or name.startswith(
                    ("dreamflare_store.genmeta", "__future__")
                ), f"{path.name} imports {name}"


RUNS = [
    " " * 1_000_000,
    "9" * 1_000_000,
    "a:" * 400_000,
    "[{" * 400_000,
    "\n" * 1_000_000,
    '"' * 1_000_000,
    "<exif:UserComment>" * 50_000 + "Draw Things",
    "-s " * 300_000,
    "Job ID:" + " " * 900_000 + "x",
    "--v " + " " * 900_000,
    "<lora:" * 150_000,
]


@pytest.mark.parametrize("run", range(len(RUNS)))
def test_pathological_texts_take_linear_time(run: int) -> None:
    value = RUNS[run][: genmeta.Limits().max_text - 10]
    chunks = [
        f.text(key, value)
        for key in ("parameters", "Dream", "Source", "Description", "prompt", "workflow")
    ]
    chunks += [
        f.text("Software", "NovelAI"),
        f.text("Comment", '{"resolution": "' + value[:100]),
        f.itxt("XML:com.adobe.xmp", value),
    ]
    start = time.monotonic()
    for chunk in chunks:
        genmeta.extract(f.png(chunk, f.text("Software", "NovelAI")))
    genmeta.extract(f.png(f.text("parameters", "x\n" + value)))
    genmeta.extract(
        f.png(f.text("parameters", json.dumps({"resolution": value, "base_model": 1, "prompt": 1})))
    )
    assert time.monotonic() - start < 6


def test_record_json_size_is_bounded_even_for_hostile_values() -> None:
    from dreamflare_store.genmeta.provenance import Provenance
    from dreamflare_store.genmeta.record import RECORD_JSON_BYTES, normalise
    from dreamflare_store.genmeta.source import Found

    worst = "\U0001f431\x01\u00e9\ud800\r\n" * 20_000  # astral, control, 2-byte, surrogate
    fields = {key: worst for key in genmeta.RECORD_KEYS}
    fields["loras"] = [{"name": str(k) + worst, "weight": 1e300} for k in range(1000)]
    prov = Provenance(ai=True, claim_generator=worst)
    rec = normalise(fields, Found(genmeta.Limits()), prov)
    encoded = json.dumps(rec, allow_nan=False)
    assert len(encoded) <= RECORD_JSON_BYTES < 96 * 1024
    assert "\x01" not in rec["prompt"] and "\ud800" not in rec["prompt"]
    rec_json = json.dumps(rec, ensure_ascii=False).encode("utf-8")  # valid UTF-8 throughout
    assert len(rec_json) < RECORD_JSON_BYTES
    assert len(rec["loras"]) == 32 and rec["loras"][0]["weight"] is None


def test_lone_surrogate_in_json_prompt_is_made_valid() -> None:
    found = extracted(f.png(f.text("invokeai_metadata", '{"positive_prompt": "a\\ud800b"}')))
    assert found.record["prompt"] == "a?b"
    found.record["prompt"].encode("utf-8")
