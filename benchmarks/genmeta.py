"""Generation-metadata extraction: what ``genmeta.extract`` adds per uploaded thumbnail.

Each file is a 256x256 PNG thumbnail carrying A1111 ``parameters`` (a prompt, a negative
prompt and a parameter line with LoRA hashes, about 1 KiB), the common case at upload. A
second set adds a ComfyUI ``prompt`` graph and a 200 KiB ``workflow`` after IDAT, which the
walker must reach by seeking past the pixels.

Baselines: ``media.sniff`` on the same bytes (the header parse every upload already pays),
and Pillow's ``Image.open(...).info`` (reads the chunks before IDAT without decoding the
pixels) when Pillow is installed. Target: p99 under 2 ms per thumbnail.
"""

from __future__ import annotations

import io
import json
import random
import struct
import zlib
from collections.abc import Callable

from benchmarks import harness
from benchmarks.harness import Config, Result
from dreamflare_store import genmeta, media

TARGET = 2e-3
PARAMETERS = (
    "masterpiece, a lighthouse on a cliff at dusk, <lora:add_detail:0.6> volumetric light, "
    "dramatic clouds, highly detailed\nNegative prompt: blurry, lowres, watermark, text\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567890, "
    "Size: 832x1216, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, "
    'Lora hashes: "add_detail: 7c6bad76eb54", Version: v1.10.1'
)
GRAPH = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 156680208700286,
            "steps": 20,
            "cfg": 8,
            "sampler_name": "euler",
            "scheduler": "normal",
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a glass bottle", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "watermark", "clip": ["4", 1]}},
}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def thumbnail(salt: int, comfy: bool) -> bytes:
    """A 256x256 RGB PNG with noisy pixels and generation metadata."""
    rows = random.Random(salt).randbytes(256 * 3 * 256)
    raw = b"".join(b"\x00" + rows[y * 768 : (y + 1) * 768] for y in range(256))
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", 256, 256, 8, 2, 0, 0, 0))
    text = _chunk(b"tEXt", b"parameters\x00" + PARAMETERS.replace("1234567890", str(salt)).encode())
    after = b""
    if comfy:
        workflow = json.dumps(
            {"nodes": [{"id": k, "widgets_values": ["x" * 80]} for k in range(2000)]}
        )
        after = _chunk(b"tEXt", b"prompt\x00" + json.dumps(GRAPH).encode())
        after += _chunk(b"tEXt", b"workflow\x00" + workflow.encode())
    return (
        b"\x89PNG\r\n\x1a\n"
        + ihdr
        + text
        + _chunk(b"IDAT", zlib.compress(raw, 1))
        + after
        + _chunk(b"IEND", b"")
    )


def _pillow_info() -> Callable[[bytes], object] | None:
    try:
        from PIL import Image
    except ImportError:
        return None

    def info(data: bytes) -> object:
        with Image.open(io.BytesIO(data)) as image:
            return image.info

    return info


def _measure(
    config: Config, files: list[bytes], baseline: Callable[[bytes], object], count: int
) -> tuple[list[float], list[float]]:
    """Latencies of ``count`` calls each per round, engine and baseline alternating first."""
    engine_samples: list[float] = []
    baseline_samples: list[float] = []
    pair = [
        (lambda i: genmeta.extract(files[i % len(files)]), engine_samples),
        (lambda i: baseline(files[i % len(files)]), baseline_samples),
    ]
    for number in range(config.rounds):
        for action, into in pair if number % 2 else reversed(pair):
            into.extend(harness.latencies(action, count))
    return engine_samples, baseline_samples


def run(config: Config) -> list[Result]:
    count = config.size(2000, 300, 40)
    results = []
    pillow = _pillow_info()
    for comfy in (False, True):
        files = [thumbnail(k, comfy) for k in range(min(count, 50))]
        assert genmeta.extract(files[0]) is not None
        label = "A1111 + ComfyUI graph and 200 KiB workflow after IDAT" if comfy else "A1111"
        baselines: list[tuple[str, Callable[[bytes], object]]] = [
            ("media.sniff of the first 256 KiB", lambda d: media.sniff(d[: media.SNIFF_BYTES]))
        ]
        if pillow is not None:
            baselines.append(("Pillow Image.open().info, no pixel decode", pillow))
        for baseline_name, baseline in baselines:
            engine_samples, baseline_samples = _measure(config, files, baseline, count)
            results.append(
                Result(
                    "genmeta",
                    f"extract per 256x256 PNG thumbnail, {label} (vs {baseline_name.split()[0]})",
                    "latency",
                    engine_samples,
                    baseline_samples,
                    baseline_name,
                    work_items=count,
                    target=TARGET,
                )
            )
    return results


if __name__ == "__main__":
    raise SystemExit(harness.main({"genmeta": run}, description=__doc__.splitlines()[0]))
