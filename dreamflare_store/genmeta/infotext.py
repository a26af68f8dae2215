"""AUTOMATIC1111-style "infotext" (A1111, Forge, SD.Next, Fooocus' a1111 scheme, Civitai).

The layout follows A1111's ``parse_generation_parameters``: prompt lines, then lines from
"Negative prompt:" on, then one line of ``key: value`` pairs, which counts as parameters
only with at least three pairs (so a prompt whose last line reads "a: b, c: d, e: f" is
taken as parameters, exactly as A1111 does). Unlike A1111's regular expression, the pair
scanner here balances brackets, so the unquoted JSON Civitai writes
(``Civitai resources: [{...}, {...}]``) stays whole; quoted values are JSON strings.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["parse_infotext", "parse_pairs"]

# Bounded repeats: a lazy key followed by an unbounded space run would backtrack over
# long runs of spaces once per key length.
_KEY = re.compile(r"\s*(\w[\w \-/]{0,80}?)\s{0,8}:\s*")
# A key and a plain value (one that opens no string or bracket) in one match, the common
# case; the key part is atomic, so it matches exactly what ``_KEY`` matches, and a value
# the scanner must read leaves the pair to the slow path.
_PLAIN_PAIR = re.compile(r"(?>\s*(\w[\w \-/]{0,80}?)\s{0,8}:\s*)(?![\"\[{])([^,]*),?")
_SIZE = re.compile(r"^(\d+)\s*x\s*(\d+)$")
_LORA_TAG = re.compile(r"<(?:lora|lyco):([^:<>]{1,200})(?::([^:<>]{1,30}))?[^<>]{0,200}>")
_HEX_VERSION = re.compile(r"^[0-9a-f]{7,40}$")
_FORGE_VERSION = re.compile(r"^f\d")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_MAX_PAIRS = 200


def parse_pairs(line: str) -> dict[str, str]:
    """Split a parameter line into its ``key: value`` pairs, in order (a later key wins)."""
    pairs: dict[str, str] = {}
    at, end = 0, len(line)
    scan = [True]  # False once a bracket scan ran to the end: later ones would too, mostly
    while at < end and len(pairs) < _MAX_PAIRS:
        plain = _PLAIN_PAIR.match(line, at)
        if plain is not None:
            pairs[plain.group(1)] = plain.group(2).strip()
            at = plain.end()
            continue
        key = _KEY.match(line, at)
        if key is None:
            # A bare flag (A1111 writes "k" alone when key and value are equal). Keys hold no
            # comma, so a match never spans one.
            comma = line.find(",", at)
            if comma < 0:
                break
            at = comma + 1
            continue
        value, at = _value(line, key.end(), scan)
        pairs[key.group(1)] = value
    return pairs


def _value(line: str, at: int, scan: list[bool]) -> tuple[str, int]:
    """Return one value starting at ``at`` and the index after its comma.

    ``scan`` turns bracket matching off for the rest of the line once one scan found no
    end: it keeps a hostile line of many open brackets linear in time.
    """
    end = len(line)
    if at < end and line[at] in '"[{' and scan[0]:
        close = _balanced(line, at)
        scan[0] = close > 0
        if close > 0:
            after = line.find(",", close)
            after = end if after < 0 else after
            if not line[close:after].strip():
                raw = line[at:close]
                if raw[0] == '"':
                    try:
                        decoded = json.loads(raw)
                        raw = decoded if isinstance(decoded, str) else raw
                    except ValueError:
                        pass
                return raw, after + 1
    comma = line.find(",", at)
    comma = end if comma < 0 else comma
    return line[at:comma].strip(), comma + 1


def _balanced(line: str, at: int) -> int:
    """Return the index after the string or bracketed JSON starting at ``at``, or -1."""
    if line[at] == '"':
        # A string alone ends at its first unescaped quote, as the scan below finds it.
        string = _JSON_STRING.match(line, at)
        return -1 if string is None else string.end()
    depth, in_string, escaped = 0, False, False
    for k in range(at, len(line)):
        char = line[k]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
                if depth == 0:
                    return k + 1
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                return k + 1
            if depth < 0:
                return -1
    return -1


def parse_infotext(text: str) -> dict[str, Any]:
    """Return record fields read from an infotext, plus ``pairs`` (how many parameters).

    The generator is told apart by the ``Version`` value (``v1.x`` A1111, ``f...`` Forge,
    a git hash or a ``Pipeline`` key SD.Next, ``Fooocus``, ``ComfyUI``) and by Civitai's keys.
    """
    *lines, last = text.strip().split("\n")
    pairs = parse_pairs(last.strip())
    if len(pairs) < 3:
        lines.append(last)
        pairs = {}
    # A1111 appends each line with a "\n" only once the text is not empty, which drops
    # leading blank lines and keeps interior ones: the same as below, done with lists.
    parts: tuple[list[str], list[str]] = ([], [])
    in_negative = False
    for raw_line in lines:
        line = raw_line.strip()
        if line.startswith("Negative prompt:"):
            in_negative, line = True, line[16:].strip()
        side = parts[in_negative]
        if line or side:
            side.append(line)
    prompt, negative = "\n".join(parts[0]), "\n".join(parts[1])
    out: dict[str, Any] = {
        "generator": _generator(pairs),
        "prompt": prompt or None,
        "negativePrompt": negative or None,
        "seed": pairs.get("Seed"),
        "steps": pairs.get("Steps"),
        "cfgScale": pairs.get("CFG scale"),
        "sampler": pairs.get("Sampler"),
        "scheduler": pairs.get("Schedule type"),
        "model": pairs.get("Model"),
        "modelHash": pairs.get("Model hash") or _hashes(pairs).get("model"),
        "loras": _loras(prompt, pairs),
        "pairs": len(pairs),
    }
    size = _SIZE.match(pairs.get("Size", ""))
    if size:
        out["width"], out["height"] = int(size.group(1)), int(size.group(2))
    return out


def _generator(pairs: dict[str, str]) -> str:
    version = pairs.get("Version", "")
    if "Civitai resources" in pairs or "Civitai metadata" in pairs:
        return "Civitai"
    if "Fooocus" in version:
        return "Fooocus"
    if "ComfyUI" in version:
        return "ComfyUI"
    if _FORGE_VERSION.match(version):
        return "Forge"
    if "Pipeline" in pairs or _HEX_VERSION.match(version):
        return "SD.Next"
    return "A1111"


def _hashes(pairs: dict[str, str]) -> dict[str, Any]:
    if "Hashes" not in pairs:
        return {}
    try:
        value = json.loads(pairs["Hashes"])
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _loras(prompt: str, pairs: dict[str, str]) -> list[dict[str, Any]]:
    """LoRAs named by ``<lora:name:weight>`` tags, then by ``Lora hashes`` and ``Hashes``."""
    loras: dict[str, float | None] = {}
    for match in _LORA_TAG.finditer(prompt):
        loras.setdefault(match.group(1).strip(), _float(match.group(2)))
    for item in pairs.get("Lora hashes", "").split(","):
        name = item.rpartition(":")[0].strip()
        if name:
            loras.setdefault(name, None)
    for key in _hashes(pairs):
        if isinstance(key, str) and key.startswith("lora:") and key[5:].strip():
            loras.setdefault(key[5:].strip(), None)
    return [{"name": name, "weight": weight} for name, weight in loras.items()]


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None
