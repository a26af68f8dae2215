"""The batch path: many small blobs written durably at once, sharing the disk's flushes.

The write order is the one ``BlobStore.write_bytes`` keeps, a group of files at a time:
every new temp file is written, then all are made durable, renamed, and the renames made
durable. Where the kernel has a ``syncfs`` that reports write errors (Linux 5.8 and later),
each of those two flushes is one ``syncfs`` of the store's file system for the whole group,
as ``cp -r`` followed by ``sync`` does it, and a group is flushed while the next one is
written. Elsewhere every file and folder is fsynced (at once, so the file system can merge
the flushes).

This module works over a ``BlobStore`` through the few methods it keeps for it (``name``,
``new_temp``, ``kept``, ``check_room``, ``place``, ``sync_name``, ``knows_folder``,
``note_folders``): the layout and
the durability of names stay with the store.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

from .files import discard, make_folder, write_all
from .hashing import CHUNK, hash_bytes
from .local import BlobStore, StoredBlob
from .room import full_disk, translated

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

# Files a group writes at once on the fsync path: a group's temp files stay open until
# their fsync, so this bounds open files and memory as well.
_GROUP = 256
# With syncfs a group's files are closed once written; one group is flushed while the
# next is written, so groups must be several to overlap, and large enough that the two
# flushes each costs stay small next to its writes.
_SYNCFS_GROUP = 1024
_T = TypeVar("_T")
_R = TypeVar("_R")

Outcome = StoredBlob | Exception


def stage_many(
    blobs: BlobStore, loaders: Sequence[Callable[[], bytes]], head_size: int, jobs: int = 8
) -> PendingBlobs:
    """Store many byte strings (small files) in ``blobs`` durably; return them as written,
    with the last group's flushes perhaps still running.

    Each loader runs in one of ``jobs`` threads and returns the bytes to store; what it
    raises is returned in its place, and the others go on. Returning before the last
    flush lets a caller prepare (not commit) what refers to the blobs meanwhile; it must
    call ``finish()`` before that commit, and whatever happens.
    """
    with full_disk(blobs.root):
        return _stage_many(blobs, loaders, head_size, jobs)


def _stage_many(
    blobs: BlobStore, loaders: Sequence[Callable[[], bytes]], head_size: int, jobs: int
) -> PendingBlobs:
    # Imported here, not with the store: logging and the thread pools cost a command that
    # writes nothing several milliseconds.
    from concurrent.futures import ThreadPoolExecutor

    syncfs = _syncfs()
    jobs = max(1, jobs)
    pool = ThreadPoolExecutor(jobs, thread_name_prefix="dreamflare-blobs")
    batch = _Batch(blobs, pool, jobs, head_size)
    if syncfs is None:
        try:
            results: list[Outcome] = []
            for start in range(0, len(loaders), _GROUP):
                results.extend(batch.write_group(loaders[start : start + _GROUP]))
        finally:
            pool.shutdown()
        return PendingBlobs(blobs.root, results, results, None, pool, None)
    flusher = ThreadPoolExecutor(1, thread_name_prefix="dreamflare-flush")
    try:
        staged, done, last = batch.stage_groups(flusher, loaders, syncfs)
    except BaseException:
        flusher.shutdown()
        pool.shutdown()
        raise
    return PendingBlobs(blobs.root, staged, done, last, pool, flusher)


class PendingBlobs:
    """A batch of blobs written, its last flushes perhaps still running (``stage_many``).

    ``written`` has each blob as written, in order: its name, size and first bytes, and
    ``created`` if this batch wrote its bytes (the final word on that comes from
    ``finish()``: a concurrent writer may have renamed the same bytes in first), or the
    error that kept it out.
    """

    def __init__(
        self,
        root: Path,
        written: list[Outcome],
        settled: list[Outcome],
        last: Future[list[Outcome]] | None,
        pool: ThreadPoolExecutor,
        flusher: ThreadPoolExecutor | None,
    ) -> None:
        self.root = root
        self.written = self._ours(written)
        self._settled = settled
        self._final: list[Outcome] | None = None
        self._last = last
        self._pool = pool
        self._flusher = flusher
        self._failure: BaseException | None = None

    def finish(self) -> list[Outcome]:
        """Wait until every blob is durable; return each blob's final outcome, in order.

        Raises if a group could not be made durable (then none of its blobs is named).
        Call it once done with ``written``, whatever happens: it also ends the batch's
        threads. Later calls return (or raise) the same again.
        """
        if self._final is None and self._failure is None:
            try:
                last = self._last.result() if self._last is not None else []
                self._final = self._ours(self._settled + last)
            except BaseException as exc:
                self._failure = translated(exc, self.root)
            finally:
                if self._flusher is not None:
                    self._flusher.shutdown()
                self._pool.shutdown()
        if self._failure is not None:
            raise self._failure
        assert self._final is not None
        return self._final

    def _ours(self, outcomes: list[Outcome]) -> list[Outcome]:
        """Return the outcomes with each full-disk error as StorageFull."""
        return [
            cast(Exception, translated(item, self.root)) if isinstance(item, Exception) else item
            for item in outcomes
        ]


def read_small(path: str, size: int) -> bytes:
    """Return a small file's bytes, read whole in one call when it still has ``size``
    bytes: three system calls in all, as the batch path reads thousands of these."""
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


@dataclass(slots=True)
class _Staged:
    """A blob of a batch between its write and its publication.

    ``temp`` is None for a blob found already stored (nothing to rename); ``fd`` is open
    only on the fsync path, until that file's fsync.
    """

    blob: StoredBlob
    temp: str | None = None
    fd: int | None = None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Batch:
    """One ``stage_many`` call: the store, its threads and the head size every blob keeps."""

    def __init__(
        self, blobs: BlobStore, pool: ThreadPoolExecutor, jobs: int, head_size: int
    ) -> None:
        self.blobs = blobs
        self.pool = pool
        self.jobs = jobs
        self.head_size = head_size

    def stage_groups(
        self,
        flusher: ThreadPoolExecutor,
        loaders: Sequence[Callable[[], bytes]],
        syncfs: Callable[[int], None],
    ) -> tuple[list[Outcome], list[Outcome], Future[list[Outcome]] | None]:
        """Write the groups unsynced, each then flushed, renamed and flushed again by the
        ``flusher`` thread while the next group is read, hashed and written, so the disk
        and the processors work at once (as for ``cp -r``).

        Returns every blob as written (a new one marked created), the outcomes of the
        groups settled, and the last group's settling still in flight.
        """
        written: list[Outcome] = []
        settled: list[Outcome] = []
        pending: Future[list[Outcome]] | None = None
        for start in range(0, len(loaders), _SYNCFS_GROUP):
            group = loaders[start : start + _SYNCFS_GROUP]
            # Opened before the group's first write: syncfs on it reports every write
            # error of the file system since then.
            root = os.open(self.blobs.objects, os.O_RDONLY)
            staged: list[_Staged | Exception] = []
            try:
                staged = _each(self.pool, self.jobs, self.stage, group)
                if pending is not None:
                    settled.extend(pending.result())
            except BaseException:
                os.close(root)
                _discard_staged(staged)
                raise
            pending = flusher.submit(self.settle_group, root, staged, syncfs)
            for item in staged:
                if isinstance(item, _Staged):
                    blob = item.blob
                    written.append(
                        StoredBlob(blob.digest, blob.size, blob.head, item.temp is not None)
                    )
                else:
                    written.append(item)
        return written, settled, pending

    def stage(self, load: Callable[[], bytes], keep_open: bool = False) -> _Staged:
        """Load and hash one blob and, if it is new, write it to a temp file, unsynced;
        return it staged (its temp file open if ``keep_open``).

        A new blob's folder is made now (not at its rename), so the flush of the bytes
        makes the folder durable too and the rename is then a single call.
        """
        data = load()
        digest = hash_bytes(data)
        staged = _Staged(StoredBlob(digest, len(data), bytes(data[: self.head_size]), False))
        name = self.blobs.name(digest)
        if not self.blobs.kept(name, digest, len(data)):  # else stored already: write nothing
            self.blobs.check_room(len(data))
            leaf = os.path.dirname(name)
            if not self.blobs.knows_folder(leaf):
                make_folder(leaf)
            staged.temp, staged.fd = self.blobs.new_temp()
            try:
                write_all(staged.fd, data)
            except BaseException:
                staged.close()
                discard(staged.temp)
                raise
            if not keep_open:
                staged.close()
        return staged

    def rename(self, staged: _Staged) -> StoredBlob:
        """Give a durable staged temp file its name, in one call; return the blob, created
        if it was renamed (a blob found at staging keeps its file and is not new).

        Should another writer have put the same name there meanwhile, its file holds the
        same bytes (the name is their hash), so replacing it loses nothing and leaves a
        file just made (gc keeps it).
        """
        blob = staged.blob
        if staged.temp is None:
            return blob
        target = self.blobs.name(blob.digest)
        try:
            os.replace(staged.temp, target)
        except FileNotFoundError:  # its folder went meanwhile (or never came)
            make_folder(os.path.dirname(target))
            os.replace(staged.temp, target)
        return StoredBlob(blob.digest, blob.size, blob.head, created=True)

    def settle_group(
        self, root: int, staged: Sequence[_Staged | Exception], syncfs: Callable[[int], None]
    ) -> list[Outcome]:
        """Make a staged group durable with one syncfs, the renames and one more syncfs;
        return each blob's final outcome, in order.

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
                    discard(item.temp)
                    item.temp = None
            published = iter(_each(self.pool, self.jobs, self.rename, ready))
            out: list[Outcome] = []
            leaves: set[str] = set()
            for outcome in staged:
                if isinstance(outcome, _Staged):
                    done = next(published)
                    if isinstance(done, Exception):
                        raise done  # a rename that fails (a full disk): the group fails
                    leaves.add(os.path.dirname(self.blobs.name(done.digest)))
                    out.append(done)
                else:
                    out.append(outcome)
            # Every new name durable, and the names of blobs found: another writer may
            # have renamed one into place a moment ago and not synced its folder yet.
            syncfs(root)
        finally:
            os.close(root)
        self.blobs.note_folders(leaves)
        return out

    def write_group(self, loaders: Sequence[Callable[[], bytes]]) -> list[Outcome]:
        """Write one group with an fsync per file and per folder, for where syncfs is not
        to be had; return each blob's final outcome, in order."""

        def make_durable(staged: _Staged) -> None:
            try:
                if staged.fd is not None:
                    os.fsync(staged.fd)
            finally:
                staged.close()

        staged = _each(self.pool, self.jobs, lambda load: self.stage(load, True), loaders)
        ready = [item for item in staged if isinstance(item, _Staged)]
        failed = _each(self.pool, self.jobs, make_durable, ready)
        leaves: set[str] = set()
        out: list[Outcome] = []
        outcome = iter(failed)
        for item in staged:
            if not isinstance(item, _Staged):
                out.append(item)
                continue
            problem = next(outcome)
            if isinstance(problem, Exception):
                if item.temp is not None:
                    discard(item.temp)
                out.append(problem)
                continue
            blob, leaf = self.publish(item)
            leaves.add(leaf)
            out.append(blob)
        for problem in _each(self.pool, self.jobs, self.blobs.sync_name, sorted(leaves)):
            if isinstance(problem, Exception):
                raise problem  # a folder that cannot be made durable fails the whole group
        return out

    def publish(self, staged: _Staged) -> tuple[StoredBlob, str]:
        """Rename a durable staged temp file to its name, leaving the name to be made
        durable; return the blob as it ends and its folder, which the caller syncs once
        for every blob in it."""
        blob = staged.blob
        leaf = os.path.dirname(self.blobs.name(blob.digest))
        if staged.temp is not None:
            created, leaf = self.blobs.place(staged.temp, blob.digest, blob.size)
            blob = StoredBlob(blob.digest, blob.size, blob.head, created)
        return blob, leaf


def _each(
    pool: ThreadPoolExecutor, jobs: int, action: Callable[[_T], _R], items: Sequence[_T]
) -> list[_R | Exception]:
    """Run ``action`` over ``items`` in ``pool``; return the outcomes in order, each
    exception in its item's place, so one failed file never stops the others.

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
    """Remove the temp files of a group that will not be renamed."""
    for item in staged:
        if isinstance(item, _Staged) and item.temp is not None:
            discard(item.temp)


def _syncfs() -> Callable[[int], None] | None:
    """Return the C library's ``syncfs(fd)``, raising OSError on failure, or None where it
    is not to be trusted (outside Linux, or before 5.8, whose syncfs did not report write
    errors) or is turned off by DREAMFLARE_NO_SYNCFS=1: then a batch fsyncs every file."""
    if os.environ.get("DREAMFLARE_NO_SYNCFS"):
        return None
    return _libc_syncfs()


@functools.cache
def _libc_syncfs() -> Callable[[int], None] | None:
    """Return ``syncfs`` of this kernel's C library when it reports write errors, else None
    (looked up once per process)."""
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
