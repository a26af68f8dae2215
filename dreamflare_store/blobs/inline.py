"""Small blobs kept as rows of the catalog rather than as files: the size limit, and the
few operations the blob store needs of whoever keeps those rows.

Why rows: an upload of a small file is then one SQLite transaction that holds both the
bytes and the version that references them, so one flush of the catalog's log makes both
durable, and the order "bytes before reference" holds by construction. A file costs a
temp file, its fsync, a rename and its folder's fsync before the catalog's own commit.
Measured on the 2-core VM, per-call durable writes of 32 KiB on average: bytes and row in
the catalog's own file, one commit, ran at 1.1-2.5x the speed of a file; a second
database for the bytes (two commits, in order) only at 0.7-1.1x. So the catalog's own
file it is. The blob store (``local``) reads and checks rows as it does files: hashed
on every read, quarantined when found corrupt.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO, Any, Protocol

from ..errors import InvalidArgument

# Blobs of at most this many bytes are kept as rows. Measured on the 2-core VM, per-call
# durable uploads of random bytes, rows against files in the same run (``python -m
# benchmarks.inline_threshold``, two runs): 1.5-1.7x at 16 KiB, 1.3-1.4x at 64 KiB,
# 1.1-1.25x at 128 KiB, 1.0x at 256 KiB, 0.8x at 512 KiB, 0.6x at 1 MiB (a third run,
# with the machine busy and fsyncs slow: 2.4x at 16 KiB, 1.3x at 128 KiB, 1.0x from 512
# KiB). Past 128 KiB the row's bytes, written twice (to the log, then to the database at
# a checkpoint), cost about what a file's fsyncs save.
INLINE_MAX = 128 << 10


class InlineRows(Protocol):
    """What the blob store needs of the keeper of small blobs' rows (the catalog's
    ``InlineBlobs``); ``put`` and ``delete`` write inside the caller's transaction."""

    def get(self, digest: str) -> bytes | None: ...

    def size(self, digest: str) -> int | None: ...

    def has(self, digest: str) -> bool: ...

    def put(self, rows: Iterable[tuple[str, bytes]]) -> None: ...

    def listing(self) -> Iterator[tuple[str, int, int]]: ...

    def delete(self, digests: Iterable[str]) -> None: ...

    def delete_if(self, digest: str, data: bytes) -> bool: ...


class NoRows:
    """No rows: a blob store on its own (no catalog) keeps every blob as a file."""

    def get(self, digest: str) -> bytes | None:
        return None

    def size(self, digest: str) -> int | None:
        return None

    def has(self, digest: str) -> bool:
        return False

    def put(self, rows: Iterable[tuple[str, bytes]]) -> None:
        raise RuntimeError("this blob store keeps no rows")

    def listing(self) -> Iterator[tuple[str, int, int]]:
        return iter(())

    def delete(self, digests: Iterable[str]) -> None:
        return None

    def delete_if(self, digest: str, data: bytes) -> bool:
        return False


def read_prefix(source: IO[bytes], count: int) -> bytes:
    """Return the first ``count`` bytes of ``source`` (fewer at its end): enough to tell
    whether what it holds is small enough to keep as a row."""
    pieces: list[bytes] = []
    got = 0
    while got < count:
        piece = read_piece(source, count - got)
        if not piece:
            break
        pieces.append(bytes(piece))
        got += len(piece)
    return b"".join(pieces)


class Prefixed:
    """A binary source that yields ``prefix`` (read from ``source`` already), then the
    rest of ``source``: the file path for a stream found too large to keep as a row."""

    def __init__(self, prefix: bytes, source: IO[bytes]) -> None:
        self._prefix = prefix
        self._source = source

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            piece, self._prefix = self._prefix, b""
            return piece
        return self._source.read(size)


def read_piece(source: Any, size: int) -> bytes | bytearray | memoryview:
    """Up to ``size`` bytes from a caller's file object (empty at its end), its failures
    and text files told as InvalidArgument: the one place that reads a caller's stream."""
    try:
        piece = source.read(size)
    except Exception as exc:
        raise InvalidArgument(f"reading the file failed: {exc}") from exc
    if piece and not isinstance(piece, bytes | bytearray | memoryview):
        raise InvalidArgument("file must be a binary file object (opened with 'rb')")
    return piece or b""
