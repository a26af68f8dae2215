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

import contextlib
import errno
import functools
import io
import mmap
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, TypeVar

import blake3

from .errors import IntegrityError, InvalidArgument, NotFound

CHUNK = 1 << 20
# Above this size hashing uses BLAKE3's threads; below, thread start-up costs more than it saves.
THREADED_HASH_MIN = 1 << 21
# Files up to this size are read whole: one read and one hash (the bytes hashed are the bytes
# written, whatever happens to the file meanwhile), no second pass.
SMALL_FILE = 4 << 20
# Larger files are copied in pieces of this size; after each one the kernel is asked to
# start writing it out, so the disk works while the next piece is read and hashed and the
# final fsync has little left to wait for (a plain write-then-fsync idles the disk first).
COPY_PIECE = 8 << 20
# Hashing a file maps this much of it at a time: big inputs for BLAKE3's threads, and never
# more than this much of the file resident in the process (memory stays bounded).
MAP_WINDOW = 32 << 20
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
    with open(path, "rb", buffering=0) as source:
        return _hash_fd(source.fileno(), os.fstat(source.fileno()).st_size)


def _hash_fd(fd: int, size: int) -> str:
    """The digest of the first ``size`` bytes of an open file, mapped a window at a time."""
    hasher = _hasher(size)
    offset = 0
    while offset < size:
        length = min(MAP_WINDOW, size - offset)
        with mmap.mmap(fd, length, offset=offset, access=mmap.ACCESS_READ) as window:
            hasher.update(window)
        offset += length
    return hasher.hexdigest()


def read_small(path: str, size: int) -> bytes:
    """A small file's bytes, read whole in one call when it still has ``size`` bytes (three
    system calls in all: the batch path reads thousands of these)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        data = os.read(fd, size + 1)
        if len(data) <= size:  # a regular file reads short only at its end
            return data
        pieces = [data]  # it grew meanwhile: read on to its end
        while piece := os.read(fd, CHUNK):
            pieces.append(piece)
        return b"".join(pieces)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view) :]


# copy_file_range errors that mean "not here" (old kernels, file systems, devices).
_NO_KERNEL_COPY = {
    getattr(errno, name)
    for name in ("EXDEV", "ENOSYS", "EINVAL", "EOPNOTSUPP", "ENOTSUP", "EBADF", "EPERM")
    if hasattr(errno, name)
}


def _copy_piece(source: int, target: int, offset: int) -> int:
    """Copy up to COPY_PIECE bytes at ``offset`` from one file to the other in the kernel;
    the count (short only at the end of the source, so pieces stay map-aligned)."""
    done = 0
    while done < COPY_PIECE:
        at = offset + done
        count = os.copy_file_range(source, target, COPY_PIECE - done, offset_src=at, offset_dst=at)
        if not count:
            break
        done += count
    return done


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Have the kernel start writing a range of a file out now, without waiting for it.

    On Linux, POSIX_FADV_DONTNEED starts writeback of the range's dirty pages (and drops
    the clean ones: nobody reads a temp file back). Elsewhere the final fsync does it all.
    """
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


# Files a batch writes at once (write_many): one group's temp files stay open until their
# fsync, so this bounds open files and memory as well.
_GROUP = 256
# With syncfs a group's files are closed once written; one group is flushed while the
# next is written, so groups must be several to overlap, and large enough that the two
# flushes each costs stay small next to its writes.
_SYNCFS_GROUP = 1024
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(slots=True)
class _Staged:
    """A blob of a batch between its write and its publication."""

    blob: StoredBlob
    temp: str | None = None
    fd: int | None = None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _each(
    pool: ThreadPoolExecutor, jobs: int, action: Callable[[_T], _R], items: Sequence[_T]
) -> list[_R | Exception]:
    """``action`` over ``items`` in ``pool``, in order, each exception returned in its place.

    Each of ``jobs`` threads takes one contiguous share of the items: a task per thread,
    not per item (thousands of small files would spend more on futures than on work).
    """

    def attempt_all(share: Sequence[_T]) -> list[_R | Exception]:
        out: list[_R | Exception] = []
        for item in share:
            try:
                out.append(action(item))
            except Exception as exc:  # noqa: BLE001 (handed back to the caller, per item)
                out.append(exc)
        return out

    step = max(1, -(-len(items) // max(1, jobs)))
    shares = [items[start : start + step] for start in range(0, len(items), step)]
    return [outcome for done in pool.map(attempt_all, shares) for outcome in done]


def _discard_staged(staged: Iterable[_Staged | Exception]) -> None:
    for item in staged:
        if isinstance(item, _Staged) and item.temp is not None:
            _discard(item.temp)


def _discard(temp: str | os.PathLike[str]) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp)


def _make_folder(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)`` in one call when the parent exists (a blob's
    folder objects/ab/cd/ in a store whose objects/ab/ were made with it)."""
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)


def _syncfs() -> Callable[[int], None] | None:
    """``syncfs(fd)`` of the C library, raising OSError on failure; None where it is not to
    be trusted (outside Linux, or before 5.8, whose syncfs did not report write errors) or
    is turned off by DREAMFLARE_NO_SYNCFS=1 (then a batch fsyncs every file)."""
    if os.environ.get("DREAMFLARE_NO_SYNCFS"):
        return None
    return _libc_syncfs()


@functools.cache
def _libc_syncfs() -> Callable[[int], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        release = tuple(int(part) for part in os.uname().release.split(".")[:2])
    except ValueError:
        return None
    if release < (5, 8):
        return None
    import ctypes  # only the batch path needs it

    try:
        call = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None

    def syncfs(fd: int) -> None:
        if call(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"syncfs: {os.strerror(code)}")

    return syncfs


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or creation inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PendingBlobs:
    """A batch of blobs written, its last flushes perhaps still running (``stage_many``).

    ``written`` has each blob as written, in order: its name, size and first bytes, and
    ``created`` if this batch wrote its bytes (the final word on that comes from
    ``finish()``: a concurrent writer may have renamed the same bytes in first), or the
    error that kept it out. ``finish()`` waits until every blob is durable and returns the
    final outcomes; it raises if a group could not be made durable. Call it once done
    with ``written``, whatever happens: it also ends the batch's threads.
    """

    def __init__(
        self,
        written: list[StoredBlob | Exception],
        settled: list[StoredBlob | Exception],
        last: Future[list[StoredBlob | Exception]] | None,
        pool: ThreadPoolExecutor,
        flusher: ThreadPoolExecutor | None,
    ) -> None:
        self.written = written
        self._settled = settled
        self._final: list[StoredBlob | Exception] | None = None
        self._last = last
        self._pool = pool
        self._flusher = flusher
        self._failure: BaseException | None = None

    def finish(self) -> list[StoredBlob | Exception]:
        if self._final is None and self._failure is None:
            try:
                last = self._last.result() if self._last is not None else []
                self._final = self._settled + last
            except BaseException as exc:
                self._failure = exc
            finally:
                if self._flusher is not None:
                    self._flusher.shutdown()
                self._pool.shutdown()
        if self._failure is not None:
            raise self._failure
        assert self._final is not None
        return self._final


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
        # Plain strings on the write path: pathlib costs more than the syscalls it wraps.
        self._objects = os.fspath(self.objects)
        self._tmp = os.fspath(self.tmp)
        # Folders under objects/ whose own entries this process has made durable.
        self._known_dirs: set[str] = set()
        self._dirs_lock = threading.Lock()
        self._make_top_dirs()

    def _make_top_dirs(self) -> None:
        """Give a new store objects/00..ff at once: one fsync for all 256, instead of one
        per first blob in each (the folders in them still come one by one, as needed)."""
        with os.scandir(self._objects) as entries:
            if any(entries):
                return
        tops = [f"{self._objects}/{n:02x}" for n in range(256)]
        for top in tops:
            os.makedirs(top, exist_ok=True)
        fsync_dir(self._objects)
        fsync_dir(self.root)  # objects/ and tmp/ themselves
        with self._dirs_lock:
            self._known_dirs.update(tops)

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

    def present(self, digest: str) -> bool:
        """``exists`` for digests this module computed itself (no check)."""
        return os.path.isfile(self._name(digest))

    def touch(self, digest: str) -> bool:
        """Mark a blob as just used, so a concurrent gc keeps it; False if it is missing."""
        try:
            os.utime(self.path(digest))
        except FileNotFoundError:
            return False
        return True

    def _name(self, digest: str) -> str:
        """``path`` for digests this module computed itself (no check, no pathlib)."""
        return f"{self._objects}/{digest[:2]}/{digest[2:4]}/{digest}"

    def iter_digests(self) -> Iterator[tuple[str, Path]]:
        """Every blob on disk (foreign files are skipped)."""
        for path in self.objects.glob("*/*/*"):
            digest = self.digest_of(path)
            if digest is not None:
                yield digest, path

    # -- writing ----------------------------------------------------------------------

    def _temp(self) -> tuple[str, int]:
        path = f"{self._tmp}/{secrets.token_hex(8)}.part"
        return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)

    def _sync_name(self, leaf: str) -> None:
        """Make a blob's name in folder ``leaf`` durable, and the folders above it once.

        Called for new blobs and for found ones alike: a blob found may have been renamed
        into place a moment ago by another writer that has not synced its folder yet, and
        a reference must never become durable before the name it points to.
        """
        fsync_dir(leaf)
        if leaf in self._known_dirs:
            return
        top = os.path.dirname(leaf)
        # After the leaf's fsync these are nearly free on journalling file systems, and
        # they are needed on the rest: POSIX makes a new folder's entry durable only so.
        fsync_dir(top)
        if top not in self._known_dirs:
            fsync_dir(self._objects)
        with self._dirs_lock:
            self._known_dirs.update((leaf, top))

    def _found(self, digest: str) -> bool:
        """True (and the blob marked as used, its name durable) if ``digest`` is stored."""
        target = self._name(digest)
        try:
            os.utime(target)
        except FileNotFoundError:
            return False
        self._sync_name(os.path.dirname(target))
        return True

    def _publish(self, temp: str | os.PathLike[str], digest: str) -> bool:
        """Rename a durable temp file to its name; False if the blob was already there.

        The temp file is consumed either way.
        """
        created, leaf = self._place(temp, digest)
        self._sync_name(leaf)
        return created

    def _place(self, temp: str | os.PathLike[str], digest: str) -> tuple[bool, str]:
        """``_publish`` but for the fsync of the folder: whether the blob is new, its folder."""
        target = self._name(digest)
        leaf = os.path.dirname(target)
        try:
            os.utime(target)  # there already (same bytes): mark it used, keep it
        except FileNotFoundError:
            pass
        else:
            _discard(temp)
            return False, leaf
        try:
            os.replace(temp, target)
        except FileNotFoundError:  # the folder is not there yet: one failed call, not a
            _make_folder(leaf)  # check before every rename; made durable by _sync_name,
            os.replace(temp, target)  # after the rename
        return True, leaf

    def write_bytes(self, data: bytes, head_size: int, admit: Admit = _admit_all) -> StoredBlob:
        """Store ``data`` (hashing first: bytes already stored are never written again)."""
        digest = hash_bytes(data)
        head = bytes(data[:head_size])
        admit(digest, len(data))
        if self._found(digest):
            return StoredBlob(digest, len(data), head, created=False)
        view = memoryview(data)
        pieces = (view[at : at + COPY_PIECE] for at in range(0, len(view), COPY_PIECE))
        temp = self._write_temp(pieces)
        try:
            created = self._publish(temp, digest)
        except BaseException:
            _discard(temp)
            raise
        return StoredBlob(digest, len(data), head, created)

    def write_file(
        self,
        path: Path,
        head_size: int,
        admit: Admit = _admit_all,
        maybe_stored: Callable[[int], bool] | None = None,
    ) -> StoredBlob:
        """Store a file's bytes. Hashes first, so re-uploading stored bytes writes nothing.

        ``maybe_stored(size)`` may say that no stored bytes have the file's size: then a
        large file skips that first hashing pass and is copied (and hashed) at once.
        """
        try:
            source = open(path, "rb", buffering=0)  # noqa: SIM115 (closed below)
        except FileNotFoundError as exc:
            raise NotFound(f"no such file: {path}", path=str(path)) from exc
        except IsADirectoryError as exc:
            raise InvalidArgument(f"is a directory, not a file: {path}") from exc
        except PermissionError as exc:
            raise InvalidArgument(f"cannot read {path}: permission denied") from exc
        with source:
            fd = source.fileno()
            size = os.fstat(fd).st_size
            if size <= SMALL_FILE:
                return self.write_bytes(source.readall(), head_size, admit)
            if maybe_stored is None or maybe_stored(size):
                known = _hash_fd(fd, size)
                if os.path.isfile(self._name(known)):
                    admit(known, size)
                    if self._found(known):
                        return StoredBlob(known, size, os.pread(fd, head_size, 0), False)
                source.seek(0)
            # The name stored is the hash of the bytes actually copied (the file may change
            # between the two passes); the first pass only avoids writing known bytes.
            copied = self._copy_in(fd, size, head_size, admit)
            if copied is not None:
                return copied
            buffer = bytearray(COPY_PIECE)
            view = memoryview(buffer)

            def pieces() -> Iterator[memoryview]:
                while count := source.readinto(buffer):
                    yield view[:count]

            return self._write_new(pieces(), head_size, admit, size)

    def _copy_in(
        self, source: int, size_hint: int, head_size: int, admit: Admit
    ) -> StoredBlob | None:
        """Store a file's bytes by the kernel's own copy (as ``cp`` does: no trip through
        this process, and a shared-extent clone where the file system can), hashing the
        copy itself a piece at a time through a memory map; None where the kernel cannot."""
        if not hasattr(os, "copy_file_range"):
            return None
        temp = f"{self._tmp}/{secrets.token_hex(8)}.part"
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        hasher = _hasher(size_hint)
        offset = 0
        try:
            try:
                while True:
                    try:
                        count = _copy_piece(source, fd, offset)
                    except OSError as exc:
                        if offset == 0 and exc.errno in _NO_KERNEL_COPY:
                            _discard(temp)
                            return None
                        raise
                    if not count:
                        break
                    with mmap.mmap(fd, count, offset=offset, access=mmap.ACCESS_READ) as piece:
                        hasher.update(piece)
                    _start_writeback(fd, offset, count)
                    offset += count
                head = os.pread(fd, head_size, 0)
                os.fsync(fd)
            finally:
                os.close(fd)
            digest = hasher.hexdigest()
            admit(digest, offset)
            created = self._publish(temp, digest)
        except BaseException:
            _discard(temp)
            raise
        return StoredBlob(digest, offset, head, created)

    def write_stream(
        self, source: IO[bytes], head_size: int, admit: Admit = _admit_all, size_hint: int = 0
    ) -> StoredBlob:
        """Store what ``source.read`` yields, hashing while writing, in bounded memory."""

        def pieces() -> Iterator[bytes]:
            while True:
                try:
                    chunk = source.read(CHUNK)
                except Exception as exc:
                    raise InvalidArgument(f"reading the file failed: {exc}") from exc
                if not chunk:
                    return
                if not isinstance(chunk, bytes | bytearray | memoryview):
                    raise InvalidArgument("file must be a binary file object (opened with 'rb')")
                yield chunk

        return self._write_new(pieces(), head_size, admit, size_hint)

    def _write_new(
        self, pieces: Iterable[bytes | memoryview], head_size: int, admit: Admit, size_hint: int
    ) -> StoredBlob:
        """Hash ``pieces`` while writing them to a durable temp file, then publish it."""
        hasher = _hasher(size_hint)
        head = bytearray()
        size = 0

        def hashed() -> Iterator[bytes | memoryview]:
            nonlocal size
            for piece in pieces:
                if len(head) < head_size:
                    head.extend(piece[: head_size - len(head)])
                hasher.update(piece)
                size += len(piece)
                yield piece

        temp = self._write_temp(hashed())
        try:
            digest = hasher.hexdigest()
            admit(digest, size)
            created = self._publish(temp, digest)
        except BaseException:
            _discard(temp)
            raise
        return StoredBlob(digest, size, bytes(head), created)

    def _write_temp(self, pieces: Iterable[bytes | memoryview]) -> str:
        """Write ``pieces`` to a new temp file and fsync it; its path."""
        temp, fd = self._temp()
        try:
            try:
                written = started = 0
                for piece in pieces:
                    _write_all(fd, piece)
                    written += len(piece)
                    if written - started >= COPY_PIECE:
                        _start_writeback(fd, started, written - started)
                        started = written
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            _discard(temp)
            raise
        return temp

    def write_many(
        self, loaders: Sequence[Callable[[], bytes]], head_size: int, jobs: int = 8
    ) -> list[StoredBlob | Exception]:
        """Store many byte strings (small files) durably, sharing the disk's flushes.

        Each loader runs in one of ``jobs`` threads and returns the bytes to store; what it
        raises is returned in its place, and the others go on. The write order is the one
        ``write_bytes`` keeps, a group at a time: every new temp file is written, then all
        are made durable, renamed, and the renames made durable. Where the kernel has a
        ``syncfs`` that reports write errors (Linux 5.8 and later), each of those two
        steps is one ``syncfs`` of the store's file system for the whole group, as
        ``cp -r`` followed by ``sync`` does it; elsewhere every file and folder is fsynced
        (at once, so the file system can merge the flushes).
        """
        return self.stage_many(loaders, head_size, jobs).finish()

    def stage_many(
        self, loaders: Sequence[Callable[[], bytes]], head_size: int, jobs: int = 8
    ) -> PendingBlobs:
        """``write_many``, returning as soon as every blob is written, with the last
        group's flushes still running: a caller may prepare (not commit) what refers to
        the blobs meanwhile, and must call ``finish()`` before that commit."""
        syncfs = _syncfs()
        jobs = max(1, jobs)
        pool = ThreadPoolExecutor(jobs, thread_name_prefix="dreamflare-blobs")
        if syncfs is None:
            try:
                results: list[StoredBlob | Exception] = []
                for start in range(0, len(loaders), _GROUP):
                    group = loaders[start : start + _GROUP]
                    results.extend(self._write_group(pool, jobs, group, head_size))
            finally:
                pool.shutdown()
            return PendingBlobs(results, results, None, pool, None)
        flusher = ThreadPoolExecutor(1, thread_name_prefix="dreamflare-flush")
        try:
            staged, done, last = self._stage_groups_syncfs(
                pool, flusher, jobs, loaders, head_size, syncfs
            )
        except BaseException:
            flusher.shutdown()
            pool.shutdown()
            raise
        return PendingBlobs(staged, done, last, pool, flusher)

    def _stage_groups_syncfs(
        self,
        pool: ThreadPoolExecutor,
        flusher: ThreadPoolExecutor,
        jobs: int,
        loaders: Sequence[Callable[[], bytes]],
        head_size: int,
        syncfs: Callable[[int], None],
    ) -> tuple[
        list[StoredBlob | Exception],
        list[StoredBlob | Exception],
        Future[list[StoredBlob | Exception]] | None,
    ]:
        """Groups written unsynced, each then flushed, renamed and flushed again by the
        ``flusher`` thread while the next group is read, hashed and written (the disk and
        the processors work at once, as for ``cp -r``). Returns every blob as written (a
        new one marked created), the outcomes of the groups settled, and the last group's
        settling still in flight."""
        written: list[StoredBlob | Exception] = []
        settled: list[StoredBlob | Exception] = []
        pending: Future[list[StoredBlob | Exception]] | None = None
        for start in range(0, len(loaders), _SYNCFS_GROUP):
            group = loaders[start : start + _SYNCFS_GROUP]
            # Opened before the group's first write: syncfs on it reports every write
            # error of the file system since then.
            root = os.open(self._objects, os.O_RDONLY)
            staged: list[_Staged | Exception] = []
            try:
                staged = _each(pool, jobs, lambda load: self._stage(load, head_size), group)
                if pending is not None:
                    settled.extend(pending.result())
            except BaseException:
                os.close(root)
                _discard_staged(staged)
                raise
            pending = flusher.submit(self._settle_group, pool, jobs, root, staged, syncfs)
            for item in staged:
                if isinstance(item, _Staged):
                    blob = item.blob
                    written.append(
                        StoredBlob(blob.digest, blob.size, blob.head, item.temp is not None)
                    )
                else:
                    written.append(item)
        return written, settled, pending

    def _stage(self, load: Callable[[], bytes], head_size: int, keep_open: bool = False) -> _Staged:
        """Load, hash and (if new) write one blob of a batch to a temp file, unsynced.

        A new blob's folder is made now (not at its rename), so the flush of the bytes
        makes the folder durable too and the rename is then a single call.
        """
        data = load()
        digest = hash_bytes(data)
        staged = _Staged(StoredBlob(digest, len(data), bytes(data[:head_size]), False))
        name = self._name(digest)
        try:
            os.utime(name)  # stored already: mark as used, write nothing
        except FileNotFoundError:
            leaf = os.path.dirname(name)
            if leaf not in self._known_dirs:
                _make_folder(leaf)
            staged.temp, staged.fd = self._temp()
            try:
                _write_all(staged.fd, data)
            except BaseException:
                staged.close()
                _discard(staged.temp)
                raise
            if not keep_open:
                staged.close()
        return staged

    def _rename_staged(self, staged: _Staged) -> StoredBlob:
        """Give a durable staged temp file its name, in one call: should another writer
        have put the same name there meanwhile, its file holds the same bytes (the name
        is their hash), so replacing it loses nothing and leaves a file just made (gc
        keeps it). A blob found at staging keeps its file and says it was not new."""
        blob = staged.blob
        if staged.temp is None:
            return blob
        target = self._name(blob.digest)
        try:
            os.replace(staged.temp, target)
        except FileNotFoundError:  # its folder went meanwhile (or never came)
            _make_folder(os.path.dirname(target))
            os.replace(staged.temp, target)
        return StoredBlob(blob.digest, blob.size, blob.head, created=True)

    def _publish_staged(self, staged: _Staged) -> tuple[StoredBlob, str]:
        """Rename a durable staged temp file to its name: the blob as it ends, its folder."""
        blob, leaf = staged.blob, os.path.dirname(self._name(staged.blob.digest))
        if staged.temp is not None:
            created, leaf = self._place(staged.temp, blob.digest)
            blob = StoredBlob(blob.digest, blob.size, blob.head, created)
        return blob, leaf

    def _settle_group(
        self,
        pool: ThreadPoolExecutor,
        jobs: int,
        root: int,
        staged: Sequence[_Staged | Exception],
        syncfs: Callable[[int], None],
    ) -> list[StoredBlob | Exception]:
        """Make a staged group durable: one syncfs, the renames, one more syncfs.

        ``root`` was opened before the group's first write, so an error syncfs does not
        report did not happen. It cannot say which file failed, so an error fails the
        whole group (nothing of it renamed). Closes ``root``.
        """
        try:
            ready = [item for item in staged if isinstance(item, _Staged)]
            try:
                syncfs(root)  # every temp file's bytes durable
            except BaseException:
                _discard_staged(ready)
                raise
            # The same bytes twice in the group: the first copy is renamed, the rest dropped.
            first: dict[str, _Staged] = {}
            for item in ready:
                if item.temp is not None and first.setdefault(item.blob.digest, item) is not item:
                    _discard(item.temp)
                    item.temp = None
            published = iter(_each(pool, jobs, self._rename_staged, ready))
            out: list[StoredBlob | Exception] = []
            leaves: set[str] = set()
            for outcome in staged:
                if isinstance(outcome, _Staged):
                    done = next(published)
                    if isinstance(done, Exception):
                        raise done  # a rename that fails (a full disk): the group fails
                    leaves.add(os.path.dirname(self._name(done.digest)))
                    out.append(done)
                else:
                    out.append(outcome)
            # Every new name durable, and the names of blobs found: another writer may
            # have renamed one into place a moment ago and not synced its folder yet.
            syncfs(root)
        finally:
            os.close(root)
        with self._dirs_lock:
            self._known_dirs.update(leaves)
            self._known_dirs.update(os.path.dirname(leaf) for leaf in leaves)
        return out

    def _write_group(
        self,
        pool: ThreadPoolExecutor,
        jobs: int,
        loaders: Sequence[Callable[[], bytes]],
        head_size: int,
    ) -> list[StoredBlob | Exception]:
        """A group with an fsync per file and per folder (where syncfs is not to be had)."""

        def make_durable(staged: _Staged) -> None:
            try:
                if staged.fd is not None:
                    os.fsync(staged.fd)
            finally:
                staged.close()

        staged = _each(pool, jobs, lambda load: self._stage(load, head_size, True), loaders)
        ready = [item for item in staged if isinstance(item, _Staged)]
        failed = _each(pool, jobs, make_durable, ready)
        leaves: set[str] = set()
        out: list[StoredBlob | Exception] = []
        outcome = iter(failed)
        for item in staged:
            if not isinstance(item, _Staged):
                out.append(item)
                continue
            problem = next(outcome)
            if isinstance(problem, Exception):
                if item.temp is not None:
                    _discard(item.temp)
                out.append(problem)
                continue
            blob, leaf = self._publish_staged(item)
            leaves.add(leaf)
            out.append(blob)
        for problem in _each(pool, jobs, self._sync_name, sorted(leaves)):
            if isinstance(problem, Exception):
                raise problem  # a folder that cannot be made durable fails the whole group
        return out

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


class _VerifiedFiles:
    """Blob files this process has hashed whole and found right, by identity and change time.

    A file written since (its bytes flipped, replaced, touched) has a new ctime and is
    hashed again; a video served in many ranged requests is hashed once, not per request.
    ``verify()`` never consults this: it always re-hashes.
    """

    LIMIT = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, int, int, int, int, int], None] = {}

    @staticmethod
    def key(digest: str, stat: os.stat_result) -> tuple[str, int, int, int, int, int]:
        return (digest, stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)

    def __contains__(self, key: tuple[str, int, int, int, int, int]) -> bool:
        with self._lock:
            return key in self._seen

    def add(self, key: tuple[str, int, int, int, int, int]) -> None:
        with self._lock:
            self._seen[key] = None
            if len(self._seen) > self.LIMIT:
                del self._seen[next(iter(self._seen))]


VERIFIED = _VerifiedFiles()


class VerifiedReader(io.RawIOBase):
    """A read-only file over a blob that checks the BLAKE3 hash of what it serves.

    Reading from the start to the end hashes on the way and raises IntegrityError at the
    end if the bytes were not the blob's. A seek first verifies the whole blob once (it
    is cheap next to serving it), so ranged reads never return unverified bytes. A read
    that stops before the end without seeking has not been checked: a caller that needs
    a prefix verified seeks first. Blobs already verified by this process (and unchanged
    since) are not hashed again.
    """

    def __init__(self, raw: BinaryIO, digest: str) -> None:
        super().__init__()
        self._raw = raw
        self.digest = digest
        stat = os.fstat(raw.fileno())
        self.size = stat.st_size
        self._key = VERIFIED.key(digest, stat)
        self._verified = self._key in VERIFIED
        self._hasher: blake3.blake3 | None = None if self._verified else _hasher(self.size)

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
        VERIFIED.add(self._key)

    def _finish(self) -> None:
        assert self._hasher is not None
        if self._hasher.hexdigest() != self.digest:
            raise self._fail()
        self._verified, self._hasher = True, None
        VERIFIED.add(self._key)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = self._raw.readinto(buffer) or 0  # type: ignore[attr-defined]
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
