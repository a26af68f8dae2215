"""The content-addressed blob store on local disk.

Layout, owned by this module alone::

    objects/<2>/<2>/<64 hex>    immutable bytes named by their BLAKE3 hash
    tmp/<random>.part           uploads in flight (removed on error, or by gc when stale)

Write ordering (DESIGN.md): bytes go to a temp file in the store, hashed in the same pass,
fsynced, renamed to their name, and the directory is fsynced, all *before* the catalog
commits a reference to them. A crash can leave a temp file or an unreferenced blob behind,
never a reference to missing bytes.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

import blake3

from .errors import IntegrityError, InvalidArgument, NotFound

CHUNK = 1 << 20
# Above this size hashing uses BLAKE3's threads; below, thread start-up costs more than it saves.
THREADED_HASH_MIN = 1 << 21
_DIGEST = re.compile(r"\A[0-9a-f]{64}\Z")

# Called with (digest, size) once both are known and before the blob is published; it may
# raise (a quota check) and then nothing is stored.
Admit = Callable[[str, int], None]


def _admit_all(digest: str, size: int) -> None:
    return None


def _hasher(size_hint: int) -> blake3.blake3:
    if size_hint >= THREADED_HASH_MIN:
        return blake3.blake3(max_threads=blake3.blake3.AUTO)
    return blake3.blake3()


def hash_bytes(data: bytes | memoryview) -> str:
    """The BLAKE3 hex digest of ``data``."""
    return _hasher(len(data)).update(data).hexdigest()


def hash_file(path: str | os.PathLike[str]) -> str:
    """The BLAKE3 hex digest of a file's bytes (memory-mapped, threaded when large)."""
    size = os.stat(path).st_size
    if size == 0:
        return hash_bytes(b"")
    return _hasher(size).update_mmap(os.fspath(path)).hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a rename or creation inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """The outcome of writing bytes: their name, size, first bytes, and whether they were new."""

    digest: str
    size: int
    head: bytes
    created: bool


class BlobStore:
    """Immutable blobs under ``root``, named by BLAKE3 hash."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self.tmp = root / "tmp"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._known_dirs: set[Path] = set()
        self._dirs_lock = threading.Lock()

    # -- names ------------------------------------------------------------------------

    def path(self, digest: str) -> Path:
        """``digest -> path``; the exact inverse of ``digest_of``. Rejects non-digests."""
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise InvalidArgument(f"not a blob digest: {digest!r}")
        return self.objects / digest[:2] / digest[2:4] / digest

    def digest_of(self, path: Path) -> str | None:
        """``path -> digest`` for a file in the layout, None for anything foreign."""
        try:
            rel = path.relative_to(self.objects).parts
        except ValueError:
            return None
        if len(rel) != 3 or not _DIGEST.match(rel[2]):
            return None
        if rel[0] != rel[2][:2] or rel[1] != rel[2][2:4]:
            return None
        return rel[2]

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def touch(self, digest: str) -> bool:
        """Mark a blob as just used, so a concurrent gc keeps it; False if it is missing."""
        try:
            os.utime(self.path(digest))
        except FileNotFoundError:
            return False
        return True

    def iter_digests(self) -> Iterator[tuple[str, Path]]:
        """Every blob on disk (foreign files are skipped)."""
        for path in self.objects.glob("*/*/*"):
            digest = self.digest_of(path)
            if digest is not None:
                yield digest, path

    # -- writing ----------------------------------------------------------------------

    def _temp(self) -> tuple[Path, BinaryIO]:
        path = self.tmp / f"{secrets.token_hex(8)}.part"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        return path, os.fdopen(fd, "wb", buffering=0)

    def _ensure_dir(self, directory: Path) -> None:
        if directory in self._known_dirs:
            return
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            fsync_dir(directory.parent)
            fsync_dir(directory.parent.parent)
        with self._dirs_lock:
            self._known_dirs.add(directory)

    def _publish(self, temp: Path, digest: str) -> bool:
        """Rename a durable temp file to its name; False if the blob was already there."""
        target = self.path(digest)
        if target.is_file():
            temp.unlink(missing_ok=True)
            return False
        self._ensure_dir(target.parent)
        os.replace(temp, target)
        fsync_dir(target.parent)
        return True

    def write_bytes(self, data: bytes, head_size: int, admit: Admit = _admit_all) -> StoredBlob:
        """Store ``data`` (hashing first: bytes already stored are never written again)."""
        digest = hash_bytes(data)
        head = bytes(data[:head_size])
        admit(digest, len(data))
        if self.touch(digest):
            return StoredBlob(digest, len(data), head, created=False)
        temp, out = self._temp()
        try:
            with out:
                out.write(data)
                os.fsync(out.fileno())
            return StoredBlob(digest, len(data), head, created=self._publish(temp, digest))
        finally:
            temp.unlink(missing_ok=True)

    def write_file(self, path: Path, head_size: int, admit: Admit = _admit_all) -> StoredBlob:
        """Store a file's bytes. Hashes first, so re-uploading stored bytes writes nothing."""
        try:
            known = hash_file(path)
        except FileNotFoundError as exc:
            raise NotFound(f"no such file: {path}", path=str(path)) from exc
        except IsADirectoryError as exc:
            raise InvalidArgument(f"is a directory, not a file: {path}") from exc
        except PermissionError as exc:
            raise InvalidArgument(f"cannot read {path}: permission denied") from exc
        if self.exists(known):
            size = self.path(known).stat().st_size
            admit(known, size)
            if self.touch(known):
                with open(path, "rb") as source:
                    head = source.read(head_size)
                return StoredBlob(known, size, head, created=False)
        # The name stored is the hash of the bytes actually copied (the file may change
        # between the two passes); the first pass only avoids writing known bytes.
        with open(path, "rb") as source:
            size_hint = os.fstat(source.fileno()).st_size
            return self.write_stream(source, head_size, admit, size_hint)

    def write_stream(
        self, source: IO[bytes], head_size: int, admit: Admit = _admit_all, size_hint: int = 0
    ) -> StoredBlob:
        """Store what ``source.read`` yields, hashing while writing, in bounded memory."""
        hasher = _hasher(size_hint)
        head = bytearray()
        size = 0
        temp, out = self._temp()
        try:
            with out:
                while True:
                    try:
                        chunk = source.read(CHUNK)
                    except Exception as exc:
                        raise InvalidArgument(f"reading the file failed: {exc}") from exc
                    if not chunk:
                        break
                    if not isinstance(chunk, bytes | bytearray | memoryview):
                        raise InvalidArgument(
                            "file must be a binary file object (opened with 'rb')"
                        )
                    if len(head) < head_size:
                        head += chunk[: head_size - len(head)]
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                os.fsync(out.fileno())
            digest = hasher.hexdigest()
            admit(digest, size)
            created = self._publish(temp, digest)
            if not created:
                self.touch(digest)
            return StoredBlob(digest, size, bytes(head), created)
        finally:
            temp.unlink(missing_ok=True)

    def download_path(self) -> Path:
        """A fresh name in tmp/ for bytes another writer fills (a sync download).

        Hand the file to ``adopt`` once written; a crash leaves it for gc's stale-temp sweep.
        """
        return self.tmp / f"{secrets.token_hex(8)}.part"

    def adopt(self, temp: Path, digest: str) -> bool:
        """Publish a file written in tmp/ as blob ``digest``, only if its bytes hash to it.

        The temp file is consumed either way. Raises IntegrityError (and stores nothing)
        when the bytes are not the blob's; returns whether the blob is new here.
        """
        self.path(digest)  # rejects a malformed digest before anything else
        try:
            if hash_file(temp) != digest:
                raise IntegrityError(f"received bytes do not match blob {digest}", digest=digest)
            fd = os.open(temp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            created = self._publish(temp, digest)
            if not created:
                self.touch(digest)  # as write_bytes does: a concurrent gc keeps it
            return created
        finally:
            temp.unlink(missing_ok=True)

    # -- reading ----------------------------------------------------------------------

    def open(self, digest: str) -> VerifiedReader:
        """A reader over a blob that raises IntegrityError if its bytes do not match."""
        try:
            raw = open(self.path(digest), "rb")  # noqa: SIM115 (the reader owns it)
        except FileNotFoundError as exc:
            raise IntegrityError(f"blob {digest} is missing", digest=digest) from exc
        return VerifiedReader(raw, digest)

    def read(self, digest: str) -> bytes:
        """All of a blob's bytes, verified."""
        with self.open(digest) as reader:
            return reader.read()

    def check(self, digest: str) -> bool:
        """True if the blob exists and hashes to its name."""
        try:
            return hash_file(self.path(digest)) == digest
        except FileNotFoundError:
            return False

    def remove(self, digest: str) -> int:
        """Delete a blob (gc only); returns the bytes freed."""
        path = self.path(digest)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def stale_temps(self, older_than: float) -> Iterator[Path]:
        """Temp files not touched for ``older_than`` seconds (left by crashes)."""
        cutoff = time.time() - older_than
        for path in self.tmp.iterdir():
            try:
                if path.stat().st_mtime <= cutoff:
                    yield path
            except FileNotFoundError:
                continue


class VerifiedReader(io.RawIOBase):
    """A read-only file over a blob that checks the BLAKE3 hash of what it serves.

    Reading from the start to the end hashes on the way and raises IntegrityError at the
    end if the bytes were not the blob's. A seek first verifies the whole blob once (it
    is cheap next to serving it), so ranged reads never return unverified bytes.
    """

    def __init__(self, raw: BinaryIO, digest: str) -> None:
        super().__init__()
        self._raw = raw
        self.digest = digest
        self.size = os.fstat(raw.fileno()).st_size
        self._hasher: blake3.blake3 | None = _hasher(self.size)
        self._verified = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _fail(self) -> IntegrityError:
        return IntegrityError(
            f"blob {self.digest} is corrupt: its bytes do not match its hash", digest=self.digest
        )

    def _verify_all(self) -> None:
        if self._verified:
            return
        position = self._raw.tell()
        self._raw.seek(0)
        hasher = _hasher(self.size)
        while chunk := self._raw.read(CHUNK):
            hasher.update(chunk)
        self._raw.seek(position)
        if hasher.hexdigest() != self.digest:
            raise self._fail()
        self._verified = True
        self._hasher = None

    def _finish(self) -> None:
        assert self._hasher is not None
        if self._hasher.hexdigest() != self.digest:
            raise self._fail()
        self._verified, self._hasher = True, None

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = self._raw.readinto(buffer) or 0
        if self._hasher is not None:
            self._hasher.update(memoryview(buffer)[:count])
            at_end = count == 0 and len(buffer) > 0
            if at_end or self._raw.tell() >= self.size:
                self._finish()
        return count

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        buffer = bytearray(size)
        count = self.readinto(buffer)
        return bytes(buffer[:count])

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)

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
