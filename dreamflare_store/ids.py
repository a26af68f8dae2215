"""Typed, time-ordered, URL-safe identifiers.

An id is ``<prefix>_<26 chars>``: the 26 characters are a ULID in Crockford base32 (48 bits
of milliseconds, then 80 random bits), so ids sort by creation time, need no coordination
between replicas, and are safe in URLs and file names. Ids that arrive from outside are
checked against the exact format before any lookup, so a malformed id never reaches SQL
or the filesystem.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable

from .errors import InvalidArgument

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

PREFIXES = {
    "content": "cnt",
    "version": "ver",
    "collaboration": "col",
    "key": "key",
    "op": "op",
}

_PATTERNS = {
    kind: re.compile(rf"\A{prefix}_[0-9A-HJKMNP-TV-Z]{{26}}\Z") for kind, prefix in PREFIXES.items()
}


# Every pair of base32 digits, indexed by the 10 bits they spell: an id is 13 lookups.
_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]


def _encode(value: int, length: int) -> str:
    """``value`` as ``length`` (even) Crockford base32 digits, most significant first."""
    return "".join(_PAIRS[(value >> shift) & 1023] for shift in range(5 * length - 10, -1, -10))


class RandomBits:
    """``secrets.randbits`` with the operating system's randomness fetched 4 KiB at a time:
    one system call per few hundred ids instead of one per id (a batch upload makes three
    ids per file). Thread-safe; a forked child starts with a fresh buffer, so parent and
    child never hand out the same bits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._at = 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._buffer, self._at = b"", 0

    def __call__(self, bits: int) -> int:
        size = (bits + 7) // 8
        with self._lock:
            if self._at + size > len(self._buffer):
                self._buffer, self._at = os.urandom(max(4096, size)), 0
            chunk = self._buffer[self._at : self._at + size]
            self._at += size
        return int.from_bytes(chunk, "big") >> (size * 8 - bits)


randbits = RandomBits()


def new_id(kind: str, time_ms: int, randbits: Callable[[int], int] = randbits) -> str:
    """A fresh id of ``kind`` for the given wall time (randomness injectable for tests)."""
    value = ((time_ms & ((1 << 48) - 1)) << 80) | randbits(80)
    return f"{PREFIXES[kind]}_{_encode(value, 26)}"


def check_id(kind: str, value: object, name: str | None = None) -> str:
    """Return ``value`` if it is a well-formed id of ``kind``, else raise InvalidArgument.

    The message names the parameter as the HTTP API does (``contentId``, ``keyId``...),
    the one name a user of any face of the store has seen.
    """
    label = name or f"{kind}Id"
    if not isinstance(value, str):
        raise InvalidArgument(f"{label} must be a string, not {type(value).__name__}")
    if not _PATTERNS[kind].match(value):
        shown = value if len(value) <= 64 else value[:61] + "..."
        raise InvalidArgument(
            f"{label} {shown!r} is not a valid {kind} id ({PREFIXES[kind]}_ + 26 characters)"
        )
    return value
