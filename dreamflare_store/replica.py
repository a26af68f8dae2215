"""The core beneath the ``Store`` facade: one replica's catalog, blobs, clocks and counters.

A ``Replica`` makes ops and folds them in (``record``, ``record_new_contents``: the one
builder of ops), stores bytes durably before anything refers to them (``store_bytes``,
``store_many``), enforces quotas, and checks and cleans itself (``verify``, ``gc``,
``state_digest``). It knows no users' rights (``access``) and no API (``store``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import secrets
import stat
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import blake3
import msgpack

from . import ids, media, oplog
from .blobs import SMALL_FILE, BlobStore, StoredBlob, read_small, stage_many
from .catalog import Catalog, Row
from .clock import HybridClock, WallClock
from .counters import CounterBuffer
from .errors import Conflict, DreamflareError, InvalidArgument, NotFound, QuotaExceeded
from .oplog import Op
from .records import GcReport, Problem, VerifyReport

FileLike = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]
# What ``store_many`` hands back: each file's blob as written (or why not), and what waits
# until every blob is durable and gives their final outcomes.
Settle = Callable[[], list[StoredBlob | DreamflareError]]


CATALOG_FILE = "catalog.db"


class Replica:
    """One store folder: its catalog, its blobs, its clocks and its buffered counters."""

    @staticmethod
    def exists(path: Path) -> bool:
        """Whether a store lives in ``path``: its catalog file is there."""
        return (path / CATALOG_FILE).is_file()

    def __init__(
        self,
        path: Path,
        wall: WallClock,
        randbits: Callable[[int], int],
        default_quota: int | None = None,
    ) -> None:
        if path.exists() and not path.is_dir():
            raise InvalidArgument(f"store path {path} exists and is not a folder")
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.wall = wall
        self.default_quota = default_quota
        self._randbits = randbits
        self.blobs = BlobStore(path)
        self.catalog = Catalog(path / CATALOG_FILE)
        self.replica_id = self._replica_id()
        self.clock = HybridClock(self.replica_id, wall, self.catalog.log.last_hlc())
        self.counters = CounterBuffer(self.catalog, self.replica_id, time.monotonic)
        self.closed = False
        # A store dropped without close(), or still open when the interpreter exits, still
        # writes its buffered counters: a process that ends normally loses no count.
        self._finalizer = weakref.finalize(
            self, _flush_and_close, self.counters, self.catalog, os.getpid()
        )

    def _replica_id(self) -> str:
        with self.catalog.atomic():
            replica = self.catalog.db.meta("replica_id")
            if replica is None:
                replica = secrets.token_hex(8)
                self.catalog.db.set_meta("replica_id", replica)
        return replica

    def close(self) -> None:
        """Write the buffered counters and close the catalog. Idempotent."""
        if self.closed:
            return
        self._finalizer.detach()
        try:
            self.counters.stop()
            self.counters.flush()
        finally:
            self.closed = True
            self.catalog.close()

    # -- ids and ops ----------------------------------------------------------------------

    def now_ms(self) -> int:
        return self.wall.time_ms()

    def new_id(self, kind: str) -> str:
        """A new time-ordered id of ``kind`` ("content", "version", ...)."""
        return ids.new_id(kind, self.wall.time_ms(), self._randbits)

    def _new_ops(self, entries: Sequence[tuple[str, str, dict[str, Any]]]) -> list[Op]:
        """Ops of this replica for ``(kind, entity, data)`` entries, in order: the one
        place ops are made (inside the caller's transaction, which holds the write lock)."""
        last = self.catalog.log.last_hlc()
        if last is not None:
            self.clock.observe(last)  # other processes writing to this store share the log
        rseq = self.catalog.log.next_rseq(self.replica_id)
        return [
            Op(self.new_id("op"), self.clock.now(), self.replica_id, rseq + i, kind, entity, data)
            for i, (kind, entity, data) in enumerate(entries)
        ]

    def record(self, kind: str, entity: str, data: dict[str, Any]) -> Op:
        """Make a local op and fold it in (inside the caller's transaction)."""
        (op,) = self._new_ops([(kind, entity, data)])
        self.catalog.fold.apply(op)
        return op

    def record_new_contents(self, entries: Sequence[tuple[str, dict[str, Any]]]) -> list[Row]:
        """Make the content.create ops of brand-new contents ``(content id, data)`` and
        fold them in as one batch (inside the caller's transaction); their rows, in order."""
        ops = self._new_ops([(oplog.CONTENT_CREATE, entity, data) for entity, data in entries])
        first = self.catalog.fold.apply_new_contents(ops)
        return self.catalog.reads.content_rows_between(first, first + len(ops) - 1)

    # -- bytes ----------------------------------------------------------------------------

    def store_bytes(self, file: FileLike, owner: str) -> StoredBlob:
        """Write the bytes durably (before any row references them) and return their name.

        The quota of ``owner`` is checked once the size and hash are known, before the
        bytes are published.
        """
        head = media.SNIFF_BYTES

        def admit(digest: str, size: int) -> None:
            self.quota_gate(owner)(digest, size)

        if isinstance(file, bytes | bytearray | memoryview):
            return self.blobs.write_bytes(bytes(file), head, admit)
        if isinstance(file, str | os.PathLike):
            path = Path(file)
            if not path.is_file():
                if path.exists():
                    raise InvalidArgument(f"not a regular file: {path}")
                raise NotFound(f"no such file: {path}", path=str(path))
            return self.blobs.write_file(path, head, admit, self.catalog.reads.size_referenced)
        if hasattr(file, "read"):
            if isinstance(file, io.TextIOBase):
                raise InvalidArgument("file must be a binary file object (opened with 'rb')")
            return self.blobs.write_stream(file, head, admit)
        raise InvalidArgument(
            f"file must be a path, bytes or a binary file object, not {type(file).__name__}"
        )

    def store_many(
        self, files: Sequence[FileLike], owner: str, jobs: int
    ) -> tuple[list[StoredBlob | DreamflareError], Settle]:
        """Write the bytes of many files, small ones by groups that share their flushes.

        Returns each file's blob as written, or the error that kept it out, while the last
        group's flushes may still run; and ``settle``, which waits until every blob and
        its name are durable and returns the final outcomes. Call ``settle`` whatever
        happens: it also ends the batch's threads.
        """
        out: list[StoredBlob | DreamflareError | None] = [None] * len(files)
        loaders: list[Callable[[], bytes]] = []
        small: list[int] = []
        for index, file in enumerate(files):
            load = small_loader(file)
            if load is not None:
                small.append(index)
                loaders.append(load)
        pending = stage_many(self.blobs, loaders, media.SNIFF_BYTES, jobs)

        def outcomes(blobs: Sequence[StoredBlob | Exception]) -> list[StoredBlob | DreamflareError]:
            done = list(out)
            for index, blob in zip(small, blobs, strict=True):
                done[index] = blob if isinstance(blob, StoredBlob) else as_error(blob, files[index])
            return [blob for blob in done if blob is not None]

        try:
            chosen = set(small)
            rest = [i for i in range(len(files)) if i not in chosen]
            with ThreadPoolExecutor(max(1, jobs), thread_name_prefix="dreamflare-upload") as pool:
                done = pool.map(lambda i: _attempt(self.store_bytes, files[i], owner), rest)
                for index, blob in zip(rest, done, strict=True):
                    out[index] = (
                        blob if isinstance(blob, StoredBlob) else as_error(blob, files[index])
                    )
            written = outcomes(pending.written)
        except BaseException:
            with contextlib.suppress(Exception):
                pending.finish()
            raise
        return written, lambda: outcomes(pending.finish())

    def check_still_stored(self, blob: StoredBlob) -> None:
        """Inside the transaction that will reference ``blob``: its bytes are still there.

        gc removes blobs under the write lock, so none can go between this check and the
        commit; before it, a gc may have taken them (an old unreferenced blob between gc's
        age check and the upload's touch of it, or a new one under ``gc(min_age=0)``).
        """
        if not self.blobs.present(blob.digest):
            raise Conflict(
                f"the stored bytes {blob.digest} were removed by gc during this upload;"
                " upload again"
            )

    def quota_gate(self, owner: str) -> Callable[[str, int], None]:
        """The quota check for new blobs of ``owner``, one after another (a batch, inside
        its transaction): each one admitted counts against the quota for the next.
        Bytes the owner already holds cost nothing."""
        quota = self.quota_of(owner)
        used = 0 if quota is None else self.catalog.reads.user_history_bytes(owner)
        counted: set[str] = set()

        def admit(digest: str, size: int) -> None:
            nonlocal used
            if (
                quota is None
                or digest in counted
                or self.catalog.reads.user_has_blob(owner, digest)
            ):
                return
            if used + size > quota:
                raise QuotaExceeded(
                    f"storing {size} bytes would take {owner!r} past their quota of {quota}"
                    f" bytes ({used} used)",
                    user_id=owner,
                    quota_bytes=quota,
                )
            counted.add(digest)
            used += size

        return admit

    def quota_of(self, user: str) -> int | None:
        """The user's own quota, else the store's default (None: no limit)."""
        quota = self.catalog.local.quota(user)
        return self.default_quota if quota is None else quota

    # -- maintenance ----------------------------------------------------------------------

    def verify(self) -> list[Problem]:
        """Re-hash every live blob and check every invariant; an empty list means healthy."""
        return list(self.verify_report().problems)

    def verify_report(self) -> VerifyReport:
        """``verify``'s problems, with what was checked: blobs hashed and their bytes, rows
        and ops read, and the blobs that are only on a remote (not hashed here)."""
        self.counters.flush()
        problems: list[Problem] = []
        reads = self.catalog.reads
        with self.catalog.snapshot():
            live = reads.live_blobs()
            remote_only = self.catalog.local.remote_blob_digests()
            stored = reads.stored_storage()
            recount = reads.recount_storage()
            gaps = reads.version_numbers_ok()
            contents, versions, ops = reads.row_counts()
        checked = checked_bytes = remote = 0
        for digest in sorted(live):
            if self.blobs.exists(digest):
                checked += 1
                checked_bytes += live[digest]
                if not self.blobs.check(digest):
                    problems.append(
                        Problem("corrupt_blob", digest, f"blob {digest} does not match its hash")
                    )
            elif digest not in remote_only:
                problems.append(Problem("missing_blob", digest, f"blob {digest} is missing"))
            else:
                remote += 1
        for user in sorted(set(stored) | set(recount)):
            if stored.get(user, (0, 0, 0, 0)) != recount.get(user, (0, 0, 0, 0)):
                problems.append(
                    Problem(
                        "counter_mismatch",
                        user,
                        f"storage counters of {user!r} are {stored.get(user)}, a recount gives"
                        f" {recount.get(user)}",
                    )
                )
        for content_id in gaps:
            problems.append(
                Problem("version_gap", content_id, f"versions of {content_id} are not 1..n")
            )
        return VerifyReport(
            tuple(problems), checked, checked_bytes, remote, contents, versions, ops
        )

    def gc(self, min_age: float, dry_run: bool = False) -> GcReport:
        """Remove blobs no version references and temp files left by crashes, of those
        untouched for ``min_age`` seconds (see ``Store.gc``); ``dry_run`` only counts."""
        cutoff = time.time() - min_age
        removed = freed = temps = young = 0
        with self.catalog.atomic():  # the write lock: no upload commits a reference meanwhile
            live = self.catalog.reads.live_blobs()
            for digest, path in list(self.blobs.iter_digests()):
                if digest in live:
                    continue
                try:
                    info = path.stat()
                except FileNotFoundError:
                    continue
                if info.st_mtime > cutoff:
                    young += 1
                    continue
                freed += info.st_size if dry_run else self.blobs.remove(digest)
                removed += 1
        for temp in list(self.blobs.stale_temps(min_age)):
            if not dry_run:
                temp.unlink(missing_ok=True)
            temps += 1
        return GcReport(removed, freed, temps, young, dry_run)

    def state_digest(self) -> str:
        """A hash of the materialised state: equal on replicas that have fully synced."""
        self.counters.flush()
        hasher = blake3.blake3()
        for row in self.catalog.reads.digest_rows():
            hasher.update(msgpack.packb(row, use_bin_type=True))
        return hasher.hexdigest()


def small_loader(file: object) -> Callable[[], bytes] | None:
    """For bytes, or a regular file small enough to read whole, what reads them; None for
    the rest (large files, file objects, paths that are not files), which take the path
    of ``store_bytes``, errors included."""
    if isinstance(file, bytes | bytearray | memoryview):
        return functools.partial(bytes, file)
    if not isinstance(file, str | os.PathLike):
        return None
    try:
        info = os.stat(file)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size > SMALL_FILE:
        return None
    return functools.partial(read_small, os.fsdecode(file), info.st_size)


def _attempt(action: Callable[..., StoredBlob], *args: Any) -> StoredBlob | Exception:
    try:
        return action(*args)
    except Exception as exc:  # noqa: BLE001 (returned: one file's failure is its own)
        return exc


def as_error(exc: Exception, file: object) -> DreamflareError:
    """A file's failure as the error ``upload`` would have raised for it."""
    if isinstance(exc, DreamflareError):
        return exc
    where = os.fsdecode(file) if isinstance(file, str | os.PathLike) else "file"
    if isinstance(exc, FileNotFoundError):
        return NotFound(f"no such file: {where}", path=where)
    if isinstance(exc, OSError):
        return InvalidArgument(f"cannot read {where}: {exc.strerror or exc}")
    raise exc


def _flush_and_close(counters: CounterBuffer, catalog: Catalog, pid: int) -> None:
    """Write a forgotten store's buffered counters (at garbage collection or at exit)."""
    if os.getpid() != pid:
        return  # a forked child's copy: these counts are its parent's to write
    with contextlib.suppress(Exception):  # at exit or in gc there is no one left to tell
        counters.stop()
        counters.flush()
    catalog.close()
