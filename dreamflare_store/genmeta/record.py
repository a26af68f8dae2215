"""The normalised record: one JSON object with fixed keys, coerced types and capped sizes.

The record travels in the op log, so its size is bounded whatever the file holds: prompts
are cut at ``PROMPT_BYTES`` of UTF-8, other strings at ``SHORT_BYTES``, LoRAs at
``MAX_LORAS``; control characters (but tab and newline) and lone surrogates are removed, so
the record is always valid UTF-8 and at most ``RECORD_JSON_BYTES`` as ASCII JSON. A value
of the wrong type or out of range becomes None rather than an error.
"""

from __future__ import annotations

import math
import re
from typing import Any

from dreamflare_store.genmeta.provenance import Provenance
from dreamflare_store.genmeta.source import Found

__all__ = [
    "MAX_LORAS",
    "PROMPT_BYTES",
    "RECORD_JSON_BYTES",
    "RECORD_KEYS",
    "SHORT_BYTES",
    "normalise",
]

RECORD_KEYS = (
    "generator",
    "prompt",
    "negativePrompt",
    "seed",
    "steps",
    "cfgScale",
    "sampler",
    "scheduler",
    "model",
    "modelHash",
    "loras",
    "width",
    "height",
    "aiGenerated",
    "claimGenerator",
)
PROMPT_BYTES = 8 * 1024
SHORT_BYTES = 256
SEED_BYTES = 40
MAX_LORAS = 32
# json.dumps (ASCII) of a record: each UTF-8 byte kept costs at most 3 bytes escaped (a
# 2-byte character becomes a 6-byte \uXXXX, a 4-byte one two of them), plus the keys.
RECORD_JSON_BYTES = 3 * (2 * PROMPT_BYTES + 7 * SHORT_BYTES + MAX_LORAS * SHORT_BYTES) + 4096
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def normalise(fields: dict[str, Any], found: Found, prov: Provenance) -> dict[str, Any]:
    """Return the record for what a generator reader found, the container and provenance.

    ``width``/``height`` come from the metadata, else from the container header (no pixels
    are decoded). ``aiGenerated`` is True when generator metadata or a provenance claim says
    so, False when only a provenance claim of a capture or human work says so, else None.
    """
    generator = _short(fields.get("generator"))
    width, height = _dimension(fields.get("width")), _dimension(fields.get("height"))
    if width is None or height is None:
        width, height = found.width, found.height
    ai = True if generator is not None else prov.ai
    return {
        "generator": generator,
        "prompt": _long(fields.get("prompt")),
        "negativePrompt": _long(fields.get("negativePrompt")),
        "seed": _seed(fields.get("seed")),
        "steps": _integer(fields.get("steps"), 0, 100_000),
        "cfgScale": _number(fields.get("cfgScale")),
        "sampler": _short(fields.get("sampler")),
        "scheduler": _short(fields.get("scheduler")),
        "model": _short(fields.get("model")),
        "modelHash": _short(fields.get("modelHash")),
        "loras": _loras(fields.get("loras")),
        "width": width,
        "height": height,
        "aiGenerated": ai,
        "claimGenerator": _short(prov.claim_generator),
    }


def _clip(value: Any, limit: int) -> str | None:
    """A string, number or None as text of at most ``limit`` UTF-8 bytes, or None if empty."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        # str() refuses integers over 4300 digits; none that long is a real value anyway.
        value = str(value) if value.bit_length() < 1024 else None
    elif isinstance(value, float) and math.isfinite(value):
        value = repr(value)
    if not isinstance(value, str):
        return None
    if len(value) <= limit and value.isascii() and value.isprintable():
        # Nothing to remove or cut (no control character, one byte per character).
        return value.strip() or None
    # A character is at least one byte, so cutting characters first loses nothing the byte
    # cut keeps; it only spares cleaning a megabyte to keep eight kilobytes.
    text = _CONTROL.sub("", value[:limit].replace("\r\n", "\n")).strip()
    # "replace" turns a lone surrogate (JSON allows "\ud800") into "?": valid UTF-8 only.
    data = text.encode("utf-8", "replace")[:limit]
    # "ignore" drops a multi-byte character split by the cut.
    return data.decode("utf-8", "ignore").strip() or None


def _long(value: Any) -> str | None:
    return _clip(value, PROMPT_BYTES)


def _short(value: Any) -> str | None:
    return _clip(value, SHORT_BYTES)


def _seed(value: Any) -> str | None:
    """Seeds are strings: ComfyUI's reach 2**64-1, past what JSON numbers keep exactly."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return _clip(value, SEED_BYTES)


def _integer(value: Any, low: int, high: int) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not (value.isascii() and value.isdigit()) or len(value) > 12:
            return None
        value = int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and low <= value <= high else None


def _dimension(value: Any) -> int | None:
    return _integer(value, 1, 1_000_000)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and len(value) <= 32:
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int) and abs(value) > 10**6:
        return None  # float() of a huge integer would raise OverflowError
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) and abs(number) <= 1e6 else None
    return None


def _loras(value: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in value if isinstance(value, list) else []:
        name = _short(item.get("name")) if isinstance(item, dict) else None
        if name is None or name in seen:
            continue
        seen.add(name)
        out.append({"name": name, "weight": _number(item.get("weight"))})
        if len(out) >= MAX_LORAS:
            break
    return out
