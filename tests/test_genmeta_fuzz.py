"""genmeta under fuzzing: random bytes, truncations, bit flips and huge declared lengths.

extract never raises and returns a bounded, strict-JSON record; strip returns a bool or
raises StripError only. Hypothesis deadlines bound the time of each example.
"""

from __future__ import annotations

import io
import json
import tracemalloc
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dreamflare_store import genmeta
from dreamflare_store.genmeta.comfy import parse_graph
from dreamflare_store.genmeta.infotext import parse_infotext
from dreamflare_store.genmeta.provenance import read_provenance
from dreamflare_store.genmeta.record import MAX_LORAS, PROMPT_BYTES, RECORD_JSON_BYTES, SHORT_BYTES
from dreamflare_store.genmeta.tiff import decode_user_comment
from tests import genmeta_fixtures as f

TEXT = "a cat <lora:x:0.5>\nNegative prompt: dog\nSteps: 20, Sampler: Euler a, Seed: 42"
EXIF = f.tiff(
    {0x0112: f.short(6), 0x0110: f.ascii_tag('prompt:{"1": {}}')},
    f.user_comment(b"UNICODE\x00" + TEXT.encode("utf-16-be")),
)
SEEDS = [
    f.png(
        f.text("parameters", TEXT),
        f.itxt("prompt", json.dumps(f.COMFY_GRAPH), compressed=True),
        f.chunk(b"eXIf", EXIF),
        after=[f.chunk(b"caBX", f.c2pa_store()), f.ztxt("workflow", "{}")],
    ),
    f.jpeg(
        f.exif_segment(EXIF),
        f.xmp_segment('<a Iptc4xmpExt:DigitalSourceType="x/trainedAlgorithmicMedia"/>'),
        f.segment(0xFE, b"comment"),
        *f.app11_segments(f.c2pa_store(claim_v2=True), 2),
        image=f.pillow_image((8, 8)),
    ),
    f.webp(
        f.riff_chunk(b"EXIF", EXIF),
        f.riff_chunk(b"XMP ", b"<x/>"),
        f.riff_chunk(b"C2PA", f.c2pa_store()),
        image=f.pillow_image((8, 8)),
        flags=0x0C,
    ),
    f.mp4(
        f.c2pa_uuid_box(f.c2pa_store()),
        moov_extra=f.itunes_udta(json.dumps({"prompt": json.dumps(f.COMFY_GRAPH)}))
        + f.mdta_meta({"prompt": json.dumps(f.COMFY_GRAPH)}),
        frames=b"x" * 64,
    ),
    f.webm({"COMMENT": json.dumps({"prompt": f.COMFY_GRAPH}), "TITLE": "t"}, frames=b"y" * 40),
    f.webm({"COMMENT": "{}"}, unknown_sizes=True, frames=b"z" * 40),
    f.pillow_bytes(f.pillow_image((8, 8)).convert("P"), "GIF", comment=TEXT.encode()),
]
HUGE = [0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0, 1, 8, 0xFFFF, 0x0100_0000]
FUZZ = settings(max_examples=120, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed file truncated, bit-flipped, or with a 4-byte field set to a huge length."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "length", "cut", "splice"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "length":
            data[at : at + 4] = draw(st.sampled_from(HUGE)).to_bytes(4, "big")
        elif kind == "cut":
            del data[at:]
        else:
            data[at:at] = draw(st.binary(max_size=32))
    return bytes(data)


def check_extract(data: bytes) -> None:
    # With the safety net for unexpected JSON shapes off, so a reader's bug shows here.
    with mock.patch.object(genmeta, "_SHAPE_ERRORS", ()):
        found = genmeta.extract(data)
    if found is None:
        return
    rec = found.record
    assert tuple(rec) == genmeta.RECORD_KEYS
    json.dumps(found.to_dict(), allow_nan=False)
    assert len(json.dumps(rec)) <= RECORD_JSON_BYTES
    for key in ("prompt", "negativePrompt"):
        assert rec[key] is None or len(rec[key].encode("utf-8")) <= PROMPT_BYTES
    for key in ("generator", "sampler", "scheduler", "model", "modelHash", "claimGenerator"):
        assert rec[key] is None or len(rec[key].encode("utf-8")) <= SHORT_BYTES
    assert len(rec["loras"]) <= MAX_LORAS
    limits = genmeta.Limits()
    assert len(found.raw) <= limits.max_texts
    assert all(len(text) <= limits.max_text for text in found.raw.values())


def check_strip(data: bytes) -> None:
    out = io.BytesIO()
    try:
        result = genmeta.strip(io.BytesIO(data), out)
    except genmeta.StripError:
        return
    assert result is True or out.getvalue() == b""


@FUZZ
@given(mutated())
def test_extract_survives_mutations(data: bytes) -> None:
    check_extract(data)


@FUZZ
@given(mutated())
def test_strip_survives_mutations(data: bytes) -> None:
    check_strip(data)


@FUZZ
@given(
    st.sampled_from(
        [
            b"\x89PNG\r\n\x1a\n",
            b"\xff\xd8\xff",
            b"RIFF\x00\x00\x00\x00WEBP",
            b"\x1a\x45\xdf\xa3",
            b"GIF89a",
            b"",
        ]
    ),
    st.binary(max_size=512),
)
def test_random_bytes_behind_each_magic(magic: bytes, rest: bytes) -> None:
    data = magic + rest
    if not magic:  # a box-shaped random file
        data = rest[:4] + b"ftyp" + rest[4:]
    check_extract(data)
    check_strip(data)


@settings(max_examples=25, deadline=None)
@given(mutated())
def test_memory_stays_bounded(data: bytes) -> None:
    tracemalloc.start()
    try:
        genmeta.extract(data)
        genmeta.strip(io.BytesIO(data), io.BytesIO())
    except genmeta.StripError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 24 * 1024 * 1024


@FUZZ
@given(st.text(max_size=400))
def test_infotext_parser_takes_any_text(text: str) -> None:
    fields = parse_infotext(text)
    assert isinstance(fields["pairs"], int)


@FUZZ
@given(st.binary(max_size=256), st.booleans())
def test_user_comment_decoder_takes_any_bytes(data: bytes, big_endian: bool) -> None:
    assert isinstance(decode_user_comment(data, big_endian=big_endian), str)


@FUZZ
@given(st.binary(max_size=512))
def test_provenance_reader_takes_any_bytes(data: bytes) -> None:
    read_provenance([b"\x00\x00\x00\x20jumb" + data, data], [data.decode("latin-1")])


NODE_IDS = st.sampled_from(["1", "2", "3", "54:73", "x.0", "9"])
SCALARS = st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=8), st.booleans())
LINKS = st.tuples(NODE_IDS, st.integers(0, 2)).map(list)
INPUT_NAMES = st.sampled_from(
    [
        "seed",
        "noise_seed",
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "model",
        "positive",
        "negative",
        "latent_image",
        "text",
        "text_g",
        "conditioning",
        "conditioning_1",
        "guider",
        "sampler",
        "sigmas",
        "noise",
        "lora_name",
        "ckpt_name",
        "width",
        "height",
        "samples",
    ]
)
NODES = st.fixed_dictionaries(
    {
        "class_type": st.sampled_from(
            [
                "KSampler",
                "KSamplerAdvanced",
                "SamplerCustomAdvanced",
                "CLIPTextEncode",
                "LoraLoader",
                "CheckpointLoaderSimple",
                "ConditioningCombine",
                "Other",
            ]
        ),
        "inputs": st.dictionaries(INPUT_NAMES, st.one_of(SCALARS, LINKS), max_size=8),
    }
)


@FUZZ
@given(st.dictionaries(NODE_IDS, st.one_of(NODES, SCALARS), max_size=6))
def test_comfy_walker_takes_any_graph(graph: dict[str, Any]) -> None:
    fields = parse_graph(graph, 1000)
    assert fields["generator"] == "ComfyUI"
    data = f.png(f.text("prompt", json.dumps(graph)))
    check_extract(data)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "prompt",
                    "seed",
                    "steps",
                    "model",
                    "loras",
                    "image",
                    "name",
                    "weight",
                    "caption",
                    "v4_prompt",
                    "char_captions",
                    "base_caption",
                    "uc",
                    "sui_image_params",
                    "base_model",
                    "resolution",
                    "num_inference_steps",
                    "lora",
                    "hash",
                    "width",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    [
        "parameters",
        "invokeai_metadata",
        "sd-metadata",
        "Comment",
        "prompt",
        "comment",
        "UserComment",
        "Dream",
    ]
)


@FUZZ
@given(st.dictionaries(KEYS, JSON, min_size=1, max_size=3), st.booleans())
def test_generator_readers_take_any_json_shape(values: dict[str, Any], novelai: bool) -> None:
    chunks = [f.itxt(key, json.dumps(value)) for key, value in values.items()]
    if novelai:
        chunks.append(f.text("Software", "NovelAI"))
    check_extract(f.png(*chunks))


PNG_TEXTS = st.lists(
    st.tuples(
        st.binary(max_size=90),
        st.binary(max_size=300),
        st.sampled_from([b"tEXt", b"tEXt", b"zTXt", b"IHDR", b"iTXt"]),
    ),
    max_size=5,
)


@FUZZ
@given(PNG_TEXTS, st.booleans(), st.integers(0, 2000), st.integers(0, 200))
def test_a_png_in_memory_reads_as_the_same_png_streamed(
    chunks: list[tuple[bytes, bytes, bytes]], after: bool, cut: int, cap: int
) -> None:
    # Uploads hand small files over as bytes, read in place; a stream takes the general
    # walker: both must find the same texts, cuts and size.
    made = [f.chunk(kind, key + b"\x00" + value) for key, value, kind in chunks]
    data = f.png(*([] if after else made), after=made if after else [])
    for sample in (data, data[: len(data) - cut]):
        limits = genmeta.Limits(max_text=cap + 1, max_raw=2 * cap + 1, max_texts=3)
        found = genmeta.extract(sample, limits=limits)
        streamed = genmeta.extract(io.BytesIO(sample), limits=limits)
        assert (found and found.to_dict()) == (streamed and streamed.to_dict())
