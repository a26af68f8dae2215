"""Derived blobs: data made from a blob (its thumbnails), kept beside the blobs, never synced.

Layout, owned by this module alone::

    derived/<kind>/<2>/<64 hex>.<variant>   made from blob <64 hex>, e.g. thumbs/ab/ab...cd.256
    derived/tmp/<random>.part               being written
    derived/locks/<2>                       held while a file is made (shared by 1/256 of them)

A derived file is named by its source blob's hash and its variant (a thumbnail's size and
renderer version), so it is content-addressed through its source: the same blob gives
the same file on every replica, and each replica makes its own. Nothing in the catalog
refers to these files, so they count in no user's storage or quota, no op names them and
sync never sends them; gc removes those whose source is no longer live.

They are caches: a file lost in a crash is made again, so a write is a temp file renamed
into place (never half a file under its name) without the fsyncs that blobs need.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

from ..errors import InvalidArgument

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: the thread locks still hold
    fcntl = None  # type: ignore[assignment]

_DIGEST = re.compile(r"\A[0-9a-f]{64}\Z")
_KIND = re.compile(r"\A[a-z]{1,16}\Z")
_VARIANT = re.compile(r"\A[0-9a-z_-]{1,32}\Z")


class DerivedBlobs:
    """Files made from blobs under ``root/derived``, each named by (kind, source, variant)."""

    def __init__(self, root: Path) -> None:
        self.root = root / "derived"
        self.tmp = self.root / "tmp"
        self._locks: dict[tuple[str, str, str], tuple[threading.Lock, int]] = {}
        self._guard = threading.Lock()

    def path(self, kind: str, digest: str, variant: str) -> Path:
        """Return the file of ``kind`` made from blob ``digest`` as ``variant``; raise
        InvalidArgument for names outside the layout."""
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise InvalidArgument(f"not a blob digest: {digest!r}")
        if not _KIND.match(kind) or not _VARIANT.match(variant):
            raise InvalidArgument(f"not a derived blob name: {kind!r}, {variant!r}")
        return self.root / kind / digest[:2] / f"{digest}.{variant}"

    def read(self, kind: str, digest: str, variant: str) -> bytes | None:
        """Return the bytes of a derived file, or None when it is not made (or empty)."""
        try:
            with open(self.path(kind, digest, variant), "rb") as file:
                data = file.read()
        except FileNotFoundError:
            return None
        return data or None  # an empty file is what a crash can leave: made again

    def write(self, kind: str, digest: str, variant: str, data: bytes) -> None:
        """Put ``data`` under its name, whole or not at all (a temp file renamed)."""
        target = self.path(kind, digest, variant)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        temp = self.tmp / f"{os.urandom(8).hex()}.part"
        try:
            with open(temp, "wb") as file:
                file.write(data)
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def making(self, kind: str, digest: str, variant: str) -> Iterator[None]:
        """Hold the lock of one derived file while it is made, so that concurrent first
        requests for it make it once: the others wait, then find it made.

        Threads of this process wait on a lock of their own per file; other processes
        (a server and ``dreamflare thumbnails``, say) on a file lock shared by the files
        whose source hashes start alike, held only while one is drawn.
        """
        key = (kind, digest, variant)
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock, self._file_lock(digest):
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    @contextlib.contextmanager
    def _file_lock(self, digest: str) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        folder = self.root / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / digest[:2], "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def sources(self) -> Iterator[tuple[str, Path]]:
        """Yield the source digest and file of every derived file, for gc."""
        if not self.root.is_dir():
            return
        for path in self.root.glob("*/*/*"):
            if path.parent.parent.name in ("tmp", "locks"):
                continue
            digest, _, variant = path.name.partition(".")
            if _DIGEST.match(digest) and variant and path.parent.name == digest[:2]:
                yield digest, path

    def remove_orphans(self, live: set[str] | dict[str, int]) -> tuple[int, int]:
        """Remove derived files whose source blob is not in ``live``, and temp files left
        by crashes; return how many derived files went and their bytes."""
        removed = freed = 0
        for digest, path in list(self.sources()):
            if digest in live:
                continue
            with contextlib.suppress(FileNotFoundError):
                size = path.stat().st_size
                path.unlink()
                removed += 1
                freed += size
        return removed, freed

    def stale_temps(self, older_than: float, now: float) -> Iterator[Path]:
        """Yield temp files untouched for ``older_than`` seconds (crashes leave them)."""
        if not self.tmp.is_dir():
            return
        for path in self.tmp.glob("*.part"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime <= now - older_than:
                    yield path
