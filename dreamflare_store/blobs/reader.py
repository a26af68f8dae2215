"""Reading blobs back: a file object that checks each blob's hash as it serves it."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from typing import BinaryIO

import blake3

from ..errors import IntegrityError
from .hashing import CHUNK, new_hasher

# A blob file as it was when hashed: its digest, device, inode, size, mtime and ctime.
_FileKey = tuple[str, int, int, int, int, int]


class _VerifiedFiles:
    """Blob files this process has hashed whole and found right, by identity and change time.

    A file written since (its bytes flipped, replaced, touched) has a new ctime and is
    hashed again; a video served in many ranged requests is hashed once, not per request.
    ``verify()`` never consults this: it always re-hashes.
    """

    # Past this many files the oldest is forgotten (and hashed again when next read).
    LIMIT = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[_FileKey, None] = {}

    @staticmethod
    def key(digest: str, stat: os.stat_result) -> _FileKey:
        """Return what identifies a blob file as hashed: any write to it changes the key."""
        return (digest, stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)

    def __contains__(self, key: _FileKey) -> bool:
        return key in self._seen  # one dict lookup: atomic, no lock needed (unlike add)

    def add(self, key: _FileKey) -> None:
        """Remember a file found right, forgetting the oldest beyond LIMIT."""
        with self._lock:
            self._seen[key] = None
            if len(self._seen) > self.LIMIT:
                del self._seen[next(iter(self._seen))]


# One per process: every reader of every store shares it (keys hold device and inode).
VERIFIED = _VerifiedFiles()


def corrupt(digest: str) -> IntegrityError:
    """The error of a blob whose bytes do not hash to its name."""
    return IntegrityError(
        f"blob {digest} is corrupt: its bytes do not match its hash", digest=digest
    )


def verified_bytes(
    data: bytes, digest: str, stat: os.stat_result | None, on_bad: Callable[[], None]
) -> bytes:
    """``data``, all the bytes of blob ``digest`` read from the file ``stat`` describes,
    once they are known to hash to ``digest`` (hashed now, unless this process found that
    very file right before); else ``on_bad()`` runs and IntegrityError is raised.

    What ``VerifiedReader`` checks, for a caller that reads a blob whole in one call: no
    reader object, one hash of the bytes in memory. Bytes kept as a row (``stat`` None)
    are hashed on every read: there is no file whose identity could vouch for them."""
    key = None if stat is None else VERIFIED.key(digest, stat)
    if key is None or key not in VERIFIED:
        if new_hasher(len(data)).update(data).hexdigest() != digest:
            on_bad()
            raise corrupt(digest)
        if key is not None:
            VERIFIED.add(key)
    return data


class VerifiedReader(io.RawIOBase):
    """A read-only file over a blob that checks the BLAKE3 hash of what it serves.

    Reading from the start to the end hashes on the way and raises IntegrityError at the
    end if the bytes were not the blob's. A seek first verifies the whole blob once (it
    is cheap next to serving it), so ranged reads never return unverified bytes. A read
    that stops before the end without seeking has not been checked: a caller that needs
    a prefix verified seeks first. Blobs already verified by this process (and unchanged
    since) are not hashed again. ``on_bad`` runs once when the bytes are found wrong (the
    store moves the file to its quarantine).

    ``size`` is given for bytes in memory (a small blob's row, ``io.BytesIO``): they have
    no file identity, and are hashed on every read (cheap, at their size).
    """

    def __init__(
        self,
        raw: BinaryIO,
        digest: str,
        on_bad: Callable[[], None] | None = None,
        size: int | None = None,
        stat: os.stat_result | None = None,
    ) -> None:
        super().__init__()
        self._raw = raw
        self.digest = digest
        self._on_bad = on_bad
        self._key: _FileKey | None = None
        if size is None:  # a file (a row's reader is given its size: no file to stat)
            stat = stat or os.fstat(raw.fileno())  # the opener's, if it has one: one call less
            size = stat.st_size
            self._key = VERIFIED.key(digest, stat)
        self.size = size
        self._verified = self._key is not None and self._key in VERIFIED
        self._hasher: blake3.blake3 | None = None if self._verified else new_hasher(self.size)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _fail(self) -> IntegrityError:
        on_bad, self._on_bad = self._on_bad, None
        if on_bad is not None:
            on_bad()
        return corrupt(self.digest)

    def _verify_all(self) -> None:
        if self._verified:
            return
        position = self._raw.tell()
        self._raw.seek(0)
        hasher = new_hasher(self.size)
        while chunk := self._raw.read(CHUNK):
            hasher.update(chunk)
        self._raw.seek(position)
        if hasher.hexdigest() != self.digest:
            raise self._fail()
        self._verified = True
        self._hasher = None
        if self._key is not None:
            VERIFIED.add(self._key)

    def _finish(self) -> None:
        assert self._hasher is not None
        if self._hasher.hexdigest() != self.digest:
            raise self._fail()
        self._verified, self._hasher = True, None
        if self._key is not None:
            VERIFIED.add(self._key)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = self._raw.readinto(buffer) or 0  # type: ignore[attr-defined]
        if self._hasher is not None:
            self._hasher.update(memoryview(buffer)[:count])
            self._check_end(count == 0 and len(buffer) > 0)
        return count

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        data = self._raw.read(size)
        if self._hasher is not None:
            self._hasher.update(data)
            self._check_end(not data and size > 0)
        return data

    def readall(self) -> bytes:
        # One read of what is left (the file's own read sizes its buffer from its length),
        # not chunks through a buffer each: a small blob is read, hashed and returned with
        # one copy.
        data = self._raw.read()
        if self._hasher is not None:
            self._hasher.update(data)
            self._finish()
        return data

    def _check_end(self, at_end: bool) -> None:
        """Check the hash once the whole blob has been read: at its end, every byte served
        has gone through the hasher."""
        if at_end or self._raw.tell() >= self.size:
            self._finish()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        current = self._raw.tell()
        target = self._raw.seek(offset, whence)
        if target != current and not self._verified:
            self._verify_all()
        return target

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()
