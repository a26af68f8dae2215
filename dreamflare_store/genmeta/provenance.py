"""Provenance claims: a C2PA manifest store (JUMBF boxes, CBOR claims) and IPTC in XMP.

Nothing is verified: a manifest's signature is not checked, so the result only says what
the file *claims* (AI-generated or not, and by which claim generator). XMP is never given to
an XML parser (no entity or DTD can be resolved): two regular expressions read the
DigitalSourceType and CreatorTool, in element or attribute form.
"""

from __future__ import annotations

import html
import re
import struct
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Provenance", "read_provenance"]

IPTC_BASE = "http://cv.iptc.org/newscodes/digitalsourcetype/"
# DigitalSourceType codes that mean "made by generative AI".
_AI = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"})
# Codes that say "captured or made by people"; anything else says nothing either way.
_NOT_AI = frozenset(
    {"digitalCapture", "computationalCapture", "negativeFilm", "positiveFilm", "print"}
    | {"minorHumanEdits", "humanEdits", "digitalCreation", "screenCapture"}
    | {"compositeCapture", "digitalArt"}
)
_MAX_BOXES = 2000
_MAX_DEPTH = 12


@dataclass(slots=True)
class Provenance:
    """What provenance metadata claims: ``ai`` is None when nothing says either way."""

    ai: bool | None = None
    claim_generator: str | None = None
    creator_tool: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    def claim(self, source_type: str | None) -> None:
        """Fold one DigitalSourceType URL into ``ai``: an AI claim wins over a non-AI one."""
        code = (source_type or "").rstrip("/").rsplit("/", 1)[-1]
        if code in _AI:
            self.ai = True
        elif code in _NOT_AI and self.ai is None:
            self.ai = False


def read_provenance(stores: list[bytes], xmp: list[str]) -> Provenance:
    """Read the C2PA stores and XMP packets a file carries; never raises."""
    prov = Provenance()
    for store in stores[:4]:
        _read_store(store, prov)
    for packet in xmp[:4]:
        for match in _DST.finditer(packet):
            prov.claim(html.unescape(next(g for g in match.groups() if g is not None)))
        tool = _TOOL.search(packet)
        if tool and prov.creator_tool is None:
            prov.creator_tool = html.unescape(next(g for g in tool.groups() if g is not None))
    return prov


_DST = re.compile(
    r"DigitalSourceType(?:\s*=\s*[\"']([^\"'<>]{0,300})"
    r"|[^>]{0,200}?rdf:resource\s*=\s*[\"']([^\"'<>]{0,300})"
    r"|\s*>\s*([^<\s]{1,300}))"
)
_TOOL = re.compile(r"CreatorTool(?:\s*=\s*[\"']([^\"'<>]{0,200})|\s*>\s*([^<]{1,200})<)")


# --- JUMBF ---


@dataclass(slots=True)
class _Super:
    """A JUMBF superbox: its description's type (first 4 bytes of the UUID) and label."""

    kind: bytes = b""
    label: str = ""
    children: list[_Super] = field(default_factory=list)
    content: list[tuple[bytes, bytes]] = field(default_factory=list)  # (box type, payload)


def _boxes(buf: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """Return (type, payload start, payload end) of the boxes in buf[start:end]."""
    out: list[tuple[bytes, int, int]] = []
    at = start
    while at + 8 <= end and len(out) < _MAX_BOXES:
        size, kind = struct.unpack(">I4s", buf[at : at + 8])
        header = 8
        if size == 1 and at + 16 <= end:
            size, header = struct.unpack(">Q", buf[at + 8 : at + 16])[0], 16
        elif size == 0:
            size = end - at
        if size < header:
            break
        out.append((kind, at + header, min(at + size, end)))  # a cut store keeps its front
        at += size
    return out


def _superbox(buf: bytes, start: int, end: int, depth: int, budget: list[int]) -> _Super:
    node = _Super()
    for kind, lo, hi in _boxes(buf, start, end):
        budget[0] -= 1
        if budget[0] < 0:
            break
        if kind == b"jumd" and hi - lo >= 17:
            node.kind = buf[lo : lo + 4]
            toggles = buf[lo + 16]
            if toggles & 0x02:
                raw = buf[lo + 17 : hi].split(b"\x00", 1)[0]
                node.label = raw[:256].decode("utf-8", "replace")
        elif kind == b"jumb" and depth < _MAX_DEPTH:
            node.children.append(_superbox(buf, lo, hi, depth + 1, budget))
        else:
            node.content.append((kind, buf[lo:hi]))
    return node


def _read_store(store: bytes, prov: Provenance) -> None:
    boxes = _boxes(store, 0, len(store))
    if not boxes or boxes[0][0] != b"jumb":
        return
    root = _superbox(store, boxes[0][1], boxes[0][2], 0, [_MAX_BOXES])
    manifests = [c for c in root.children if c.kind in (b"c2ma", b"c2um")]
    if root.kind != b"c2pa" or not manifests:
        return
    active = manifests[-1]  # the last manifest in the store is the active one
    summary: dict[str, Any] = {"manifest": active.label}
    for part in active.children:
        if part.kind == b"c2cl":
            claim = _cbor_of(part)
            if isinstance(claim, dict):
                prov.claim_generator = _generator(claim) or prov.claim_generator
        elif part.kind == b"c2as":
            for assertion in part.children:
                if assertion.label.startswith("c2pa.actions"):
                    _actions(_cbor_of(assertion), prov, summary)
    if prov.ai is None and b"trainedAlgorithmicMedia" in store:
        # The code appears verbatim inside CBOR; a store cut short may still show it.
        prov.ai = True
    summary["claimGenerator"] = prov.claim_generator
    prov.summary = summary


def _cbor_of(node: _Super) -> Any:
    for kind, payload in node.content:
        if kind == b"cbor":
            try:
                return _Cbor(payload).value(0)
            except (_CborError, IndexError, struct.error, UnicodeDecodeError, RecursionError):
                return None
    return None


def _generator(claim: dict[Any, Any]) -> str | None:
    value = claim.get("claim_generator")
    if isinstance(value, str) and value:
        return value
    info = claim.get("claim_generator_info")
    if isinstance(info, list):
        info = info[0] if info else None
    if isinstance(info, dict) and isinstance(info.get("name"), str):
        version = info.get("version")
        return f"{info['name']}/{version}" if isinstance(version, str) else str(info["name"])
    return None


def _actions(value: Any, prov: Provenance, summary: dict[str, Any]) -> None:
    actions = value.get("actions") if isinstance(value, dict) else None
    if not isinstance(actions, list):
        return
    for action in actions[:32]:
        if not isinstance(action, dict):
            continue
        summary.setdefault("actions", []).append(str(action.get("action"))[:100])
        source_type = action.get("digitalSourceType")
        if isinstance(source_type, str):
            summary["digitalSourceType"] = source_type[:300]
            prov.claim(source_type)
        agent = action.get("softwareAgent")
        if isinstance(agent, dict):
            agent = agent.get("name")
        if isinstance(agent, str):
            summary.setdefault("softwareAgent", agent[:200])


# --- CBOR: the subset C2PA claims use (definite lengths), bounded in depth and size ---


class _CborError(Exception):
    """The CBOR is malformed or goes past a bound."""


class _Cbor:
    """A cursor over CBOR bytes; every read is bounds-checked or raises _CborError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0
        self.items = 0

    def _arg(self, info: int) -> int:
        if info < 24:
            return info
        if info > 27:
            raise _CborError("indefinite or reserved length")
        size = 1 << (info - 24)
        raw = self.data[self.at : self.at + size]
        if len(raw) != size:
            raise _CborError("truncated")
        self.at += size
        return int.from_bytes(raw, "big")

    def value(self, depth: int) -> Any:
        """Decode the item at the cursor (and its contents), moving the cursor past it."""
        if depth > 16 or self.items > 20_000:
            raise _CborError("too deep or too many items")
        self.items += 1
        first = self.data[self.at]
        self.at += 1
        major, info = first >> 5, first & 0x1F
        if major == 7:
            return self._simple(info)
        arg = self._arg(info)
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        if major in (2, 3):
            raw = self.data[self.at : self.at + arg]
            if len(raw) != arg:
                raise _CborError("truncated")
            self.at += arg
            return raw.decode("utf-8") if major == 3 else raw
        if major == 4:
            return [self.value(depth + 1) for _ in range(self._count(arg))]
        if major == 5:
            count = self._count(arg)
            pairs = ((self.value(depth + 1), self.value(depth + 1)) for _ in range(count))
            return {k if isinstance(k, str | int) else repr(k): v for k, v in pairs}
        return self.value(depth + 1)  # major 6: a tag; its content is what matters

    def _count(self, n: int) -> int:
        if n > len(self.data) - self.at:  # every item takes at least one byte
            raise _CborError("count beyond the data")
        return n

    def _simple(self, info: int) -> Any:
        if info in (20, 21):
            return info == 21
        if info in (22, 23):
            return None
        if info in (25, 26, 27):
            size = 1 << (info - 24)
            raw = self.data[self.at : self.at + size]
            self.at += size
            fmt = {2: ">e", 4: ">f", 8: ">d"}[size]
            return struct.unpack(fmt, raw)[0]
        if info == 24:
            self.at += 1
            return None
        if info < 20:
            return None
        raise _CborError("unsupported simple value")
