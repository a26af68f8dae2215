"""BLAKE3 hashing of bytes and files: a blob's name is the hex digest of its bytes."""

from __future__ import annotations

import mmap
import os

import blake3

# Files and streams are read, and readers serve, this much at a time.
CHUNK = 1 << 20
# Above this size hashing uses BLAKE3's threads; below, thread start-up costs more than it saves.
THREADED_HASH_MIN = 1 << 21
# Hashing a file maps this much of it at a time: big inputs for BLAKE3's threads, and never
# more than this much of the file resident in the process (memory stays bounded).
MAP_WINDOW = 32 << 20


def new_hasher(size_hint: int) -> blake3.blake3:
    """Return an empty BLAKE3 hasher suited to about ``size_hint`` bytes.

    Large inputs get BLAKE3's threads; small ones a single thread, which starts faster.
    """
    if size_hint >= THREADED_HASH_MIN:
        return blake3.blake3(max_threads=blake3.blake3.AUTO)
    return blake3.blake3()


def hash_bytes(data: bytes | memoryview) -> str:
    """Return the BLAKE3 hex digest of ``data``: the name a blob of these bytes gets."""
    return new_hasher(len(data)).update(data).hexdigest()


def hash_file(path: str | os.PathLike[str]) -> str:
    """Return the BLAKE3 hex digest of a file's bytes, memory-mapped (threaded when large),
    so a file is named without being read into memory."""
    with open(path, "rb", buffering=0) as source:
        return hash_fd(source.fileno(), os.fstat(source.fileno()).st_size)


def hash_fd(fd: int, size: int) -> str:
    """Return the digest of the first ``size`` bytes of an open file, mapped a window at a
    time, so memory stays bounded whatever the file's size."""
    hasher = new_hasher(size)
    offset = 0
    while offset < size:
        length = min(MAP_WINDOW, size - offset)
        with mmap.mmap(fd, length, offset=offset, access=mmap.ACCESS_READ) as window:
            hasher.update(window)
        offset += length
    return hasher.hexdigest()
