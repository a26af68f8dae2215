"""``dreamflare demo``: sample renders with real generation metadata, to try the store on.

Each image is a small PNG made here with the standard library (zlib and struct): a
gradient, and the text chunks the tools write. AUTOMATIC1111's web UI keeps its settings
in a ``parameters`` chunk (prompt, ``Negative prompt:``, then ``Steps: ..., Seed: ...``);
ComfyUI keeps its graph as JSON in ``prompt`` (the nodes it ran) and ``workflow`` (the
editor's view). The files land in a folder (``./renders``), which is then uploaded as
``dreamflare upload`` would, so listing, search and the gallery have something to show.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

SIZE = 64  # pixels a side: small files, real images

# (path inside the folder, prompt, tags, generator, seed, colours from and to)
SAMPLES: tuple[tuple[str, str, str, str, int, tuple[int, int, int], tuple[int, int, int]], ...] = (
    ("a1111/sunset-0001.png", "a sunset over snowy mountains, golden hour, volumetric light",
     "sunset,landscape", "a1111", 1234, (250, 120, 40), (60, 20, 90)),
    ("a1111/sunset-0002.png", "a sunset over the sea, long exposure, pastel sky",
     "sunset,sea", "a1111", 1235, (255, 170, 90), (20, 60, 140)),
    ("a1111/cat-0001.png", "portrait of a ginger cat wearing a tiny wizard hat, studio light",
     "cat,portrait", "a1111", 98765, (230, 140, 50), (250, 240, 220)),
    ("comfyui/forest-0001.png", "an ancient forest in fog, moss, rays of light, 35mm film",
     "forest,landscape", "comfyui", 42, (20, 80, 40), (200, 220, 190)),
    ("comfyui/city-0001.png", "a neon city at night in the rain, cyberpunk, reflections",
     "city,night", "comfyui", 7, (10, 10, 40), (240, 40, 200)),
    ("comfyui/robot-0001.png", "a friendly robot gardener watering tulips, children's book",
     "robot,illustration", "comfyui", 2024, (120, 200, 250), (250, 220, 60)),
)  # fmt: skip
NEGATIVE = "blurry, lowres, watermark, text"
MODEL = ("sd_xl_base_1.0", "31e35c80fc")


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(start: tuple[int, int, int], end: tuple[int, int, int], text: dict[str, str]) -> bytes:
    """A SIZE x SIZE RGB PNG of a diagonal gradient with ``text`` as tEXt chunks."""
    rows = bytearray()
    for y in range(SIZE):
        rows.append(0)  # filter: none
        for x in range(SIZE):
            t = (x + y) / (2 * SIZE - 2)
            rows += bytes(round(a + (b - a) * t) for a, b in zip(start, end, strict=True))
    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 2, 0, 0, 0)
    chunks = [_chunk(b"IHDR", header)]
    for key, value in text.items():
        chunks.append(_chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1")))
    chunks.append(_chunk(b"IDAT", zlib.compress(bytes(rows), 9)))
    chunks.append(_chunk(b"IEND", b""))
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def a1111_parameters(prompt: str, seed: int) -> str:
    """The ``parameters`` text AUTOMATIC1111's web UI writes."""
    return (
        f"{prompt}\nNegative prompt: {NEGATIVE}\nSteps: 30, Sampler: DPM++ 2M Karras,"
        f" CFG scale: 7, Seed: {seed}, Size: {SIZE}x{SIZE}, Model hash: {MODEL[1]},"
        f" Model: {MODEL[0]}, Version: v1.7.0"
    )


def comfyui_graph(prompt: str, seed: int) -> tuple[str, str]:
    """The ``prompt`` (the API graph it ran) and ``workflow`` (the editor's graph) texts
    ComfyUI writes."""
    nodes: dict[str, Any] = {
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": 25, "cfg": 6.5, "sampler_name": "euler",
            "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
            "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple",
              "inputs": {"ckpt_name": f"{MODEL[0]}.safetensors"}},
        "5": {"class_type": "EmptyLatentImage",
              "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage",
              "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    }  # fmt: skip
    workflow = {
        "last_node_id": 9,
        "last_link_id": 9,
        "nodes": [
            {
                "id": int(key),
                "type": node["class_type"],
                "widgets_values": list(
                    value for value in node["inputs"].values() if not isinstance(value, list)
                ),
            }
            for key, node in nodes.items()
        ],
        "links": [],
        "version": 0.4,
    }
    return json.dumps(nodes), json.dumps(workflow)


def write_samples(folder: Path) -> list[tuple[Path, str]]:
    """Write the sample renders into ``folder`` (files already there are rewritten only if
    different); each file with its tags."""
    written = []
    for place, prompt, tags, generator, seed, start, end in SAMPLES:
        if generator == "a1111":
            text = {"parameters": a1111_parameters(prompt, seed)}
        else:
            graph, workflow = comfyui_graph(prompt, seed)
            text = {"prompt": graph, "workflow": workflow}
        data = png(start, end, text)
        target = folder / place
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_bytes() != data:
            target.write_bytes(data)
        written.append((target, tags))
    return written
