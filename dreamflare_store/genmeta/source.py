"""Bounded reading shared by the container walkers: limits, a metered source, inflate, text.

Every walker reads through one :class:`Source`, which counts the metadata bytes it hands out
against :attr:`Limits.max_read` and skips everything else (pixel data, unknown chunks) with a
seek when the stream allows one. A walker therefore never holds more than one capped piece,
and a hostile length field can make it skip far but never read far.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

__all__ = [
    "Found",
    "Limits",
    "Region",
    "Source",
    "StripError",
    "copy_exact",
    "decode_text",
    "inflate",
    "read_exact",
    "skip_exact",
    "write_zeros",
]

_PIECE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """How much :func:`~dreamflare_store.genmeta.extract` may read and keep.

    ``max_read`` bounds the metadata bytes read in total (pixel data is skipped, not read).
    ``max_text`` caps each raw text; a longer one is kept truncated and never interpreted.
    ``max_raw`` caps the characters of all raw texts together (inflated texts included).
    ``max_texts`` caps how many raw texts are kept, ``max_units`` how many
    chunks, segments or boxes are walked, ``max_c2pa`` the bytes of a C2PA store, and
    ``max_nodes`` the ComfyUI graph nodes visited.
    """

    max_read: int = 16 * 1024 * 1024
    max_text: int = 1024 * 1024
    max_raw: int = 8 * 1024 * 1024
    max_texts: int = 64
    max_units: int = 100_000
    max_c2pa: int = 4 * 1024 * 1024
    max_nodes: int = 20_000


class Source:
    """A stream read in order, with a budget of metadata bytes and cheap skips."""

    def __init__(self, stream: BinaryIO, limits: Limits) -> None:
        self._stream = stream
        self.limits = limits
        self.budget = limits.max_read
        try:
            self._seekable = stream.seekable()
            self.pos = stream.tell() if self._seekable else 0
        except (OSError, ValueError):
            self._seekable, self.pos = False, 0

    def read(self, n: int) -> bytes:
        """Return up to ``n`` bytes, fewer at the end of the stream or of the budget."""
        data = self._full(min(n, self.budget))
        self.budget -= len(data)
        return data

    def read_header(self, n: int) -> bytes:
        """Return exactly ``n`` structural bytes (chunk headers), or fewer only at the end.

        Headers are not charged to the budget: the unit count bounds them, and a spent
        budget must not stop the walk from finding the image size or the next chunk.
        """
        return self._full(n)

    def _full(self, n: int) -> bytes:
        # Streams may return short reads before their end (pipes, sockets): loop until
        # ``n`` bytes or the end, so a short read is never taken for the end of the file.
        if n <= 0:
            return b""
        data = self._stream.read(n) or b""
        if 0 < len(data) < n:
            buffer = bytearray(data)  # appending to bytes would copy it again each time
            while len(buffer) < n:
                more = self._stream.read(n - len(buffer))
                if not more:
                    break
                buffer += more
            data = bytes(buffer)
        self.pos += len(data)
        return data

    def skip(self, n: int) -> bool:
        """Move ``n`` bytes forward; return False when the stream ended first."""
        if n <= 0:
            return True
        if self._seekable:
            try:
                end = self._stream.seek(0, 2)
                target = min(self.pos + n, end)
                self._stream.seek(target)
            except (OSError, ValueError):
                return False
            moved, self.pos = target - self.pos, target
            return moved == n
        left = n
        while left > 0:
            data = self._stream.read(min(left, _PIECE)) or b""
            if not data:
                break
            left -= len(data)
        self.pos += n - left
        return left == 0


class Region:
    """The next ``length`` bytes of a source: read from the front, skip the rest at the end."""

    def __init__(self, src: Source, length: int) -> None:
        self.src = src
        self.left = length

    def read(self, n: int) -> bytes:
        """Return up to ``n`` bytes of the region (charged to the source's budget)."""
        data = self.src.read(min(n, self.left))
        self.left -= len(data)
        return data

    def pieces(self, total: int) -> Iterator[bytes]:
        """Yield the region's bytes in pieces, at most ``total`` of them in all."""
        while total > 0:
            data = self.read(min(_PIECE, total))
            if not data:
                return
            total -= len(data)
            yield data

    def finish(self) -> bool:
        """Skip what was not read; return False when the stream ended inside the region."""
        ok = self.src.skip(self.left)
        self.left = 0
        return ok


def inflate(pieces: Iterable[bytes], cap: int) -> tuple[bytes, bool]:
    """Inflate a zlib stream to at most ``cap`` bytes; return (data, cut short).

    ``max_length`` keeps each step's output bounded, so a decompression bomb costs at most
    ``cap`` bytes of memory. A corrupt stream also counts as cut short, so its partial text is
    kept but never parsed as JSON.
    """
    inflater = zlib.decompressobj()
    out = bytearray()
    try:
        for piece in pieces:
            data = piece
            while data:
                out += inflater.decompress(data, cap + 1 - len(out))
                if len(out) > cap:
                    return bytes(out[:cap]), True
                if inflater.eof:
                    return bytes(out), False
                data = inflater.unconsumed_tail
    except zlib.error:
        return bytes(out), True
    return bytes(out), not inflater.eof


def decode_text(data: bytes, *, latin1: bool = False) -> str:
    """Decode text that should be UTF-8, or Latin-1 when ``latin1`` (PNG tEXt).

    Latin-1 text is still tried as UTF-8 first: several writers put UTF-8 into tEXt, and
    valid non-ASCII UTF-8 is very unlikely to be Latin-1 prose by accident.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1") if latin1 else data.decode("utf-8", "replace")


@dataclass(slots=True)
class Found:
    """What the container walkers collected, before any generator is recognised.

    ``texts`` holds raw texts in order of appearance; a repeated key is kept as ``key#2``,
    ``key#3``. ``c2pa`` holds manifest stores (JUMBF bytes), ``xmp`` the XMP packets.
    """

    limits: Limits
    texts: dict[str, str] = field(default_factory=dict)
    truncated: set[str] = field(default_factory=set)
    xmp: list[str] = field(default_factory=list)
    c2pa: list[bytes] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    kept: int = 0

    def room(self) -> int:
        """How many characters the next raw text may have: the per-text and total caps."""
        return max(0, min(self.limits.max_text, self.limits.max_raw - self.kept))

    def add_text(self, key: str, text: str, truncated: bool = False) -> None:
        """Keep one raw text under ``key`` (or ``key#n`` when the key is taken), capped."""
        key = key[:80] or "?"
        if not self.want_text():
            return
        name, n = key, 1
        while name in self.texts:
            n += 1
            name = f"{key}#{n}"
        if len(text) > self.room():
            text, truncated = text[: self.room()], True
        self.texts[name] = text.replace("\x00", "") if "\x00" in text else text
        self.kept += len(text)
        if truncated:
            self.truncated.add(name)

    def add_xmp(self, packet: str, truncated: bool = False) -> None:
        """Keep an XMP packet: for provenance, and as the raw text ``XMP``."""
        if len(self.xmp) < 4:
            self.xmp.append(packet[: self.limits.max_text])
        self.add_text("XMP", packet, truncated)

    def set_size(self, width: int, height: int) -> None:
        """Record the size from the container header, if sane and not yet known."""
        if self.width is None and 1 <= width <= 1_000_000 and 1 <= height <= 1_000_000:
            self.width, self.height = width, height

    def want_text(self) -> bool:
        """Whether another raw text would still be kept (saves reading ones that would not)."""
        return len(self.texts) < self.limits.max_texts and self.room() > 0


class StripError(ValueError):
    """Input that :func:`~dreamflare_store.genmeta.strip` refuses: too damaged to rewrite.

    What was written to the destination before the error is incomplete: discard it.
    """


def read_exact(src: BinaryIO, n: int) -> bytes:
    """Return exactly ``n`` bytes of a file being stripped, or raise StripError."""
    data = src.read(n)
    if len(data) != n:
        raise StripError("the file ends inside a chunk")
    return data


def copy_exact(src: BinaryIO, dst: BinaryIO, n: int) -> None:
    """Copy exactly ``n`` bytes in pieces of at most 1 MiB, or raise StripError."""
    while n > 0:
        data = src.read(min(n, 1 << 20))
        if not data:
            raise StripError("the file ends inside a chunk")
        dst.write(data)
        n -= len(data)


def skip_exact(src: BinaryIO, n: int) -> None:
    """Seek ``n`` bytes forward in a seekable file, or raise StripError past its end."""
    here = src.tell()
    if here + n > src.seek(0, 2):
        raise StripError("the file ends inside a chunk")
    src.seek(here + n)


def write_zeros(dst: BinaryIO, n: int) -> None:
    """Write ``n`` zero bytes in pieces of at most 1 MiB (blanked metadata payloads)."""
    block = bytes(min(n, 1 << 20))
    while n > 0:
        dst.write(block[: min(n, len(block))])
        n -= min(n, len(block))
