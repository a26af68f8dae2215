"""The core beneath the ``Store`` facade: one replica's catalog, blobs, clocks and counters.

A ``Replica`` makes ops and folds them in (``record``, ``record_new_contents``: the one
builder of ops), stores bytes durably before anything refers to them (``store_bytes``,
``store_many``), enforces quotas, and checks and cleans itself (``verify``, ``gc``,
``state_digest``). It knows no users' rights (``access``) and no API (``store``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import io
import json
import os
import stat
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TypeVar, cast

import blake3

from . import ids, media
from .blobs import SMALL_FILE, BlobStore, StoredBlob, hash_file, read_small, stage_many
from .blobs.derived import DerivedBlobs
from .blobs.inline import INLINE_MAX, Prefixed, read_prefix
from .blobs.room import full_disk
from .catalog import Catalog, Row
from .catalog.db import Database, corrupt_message
from .clock import HybridClock, WallClock
from .counters import CounterBuffer
from .errors import (
    Conflict,
    CorruptStore,
    DreamflareError,
    IntegrityError,
    InvalidArgument,
    NotFound,
    QuotaExceeded,
    StorageFull,
)

if TYPE_CHECKING:
    from . import genmeta
    from .oplog import Op
    from .records.outcomes import GcReport, Problem, VerifyReport

FileLike = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]
# What ``store_many`` hands back: each file's blob as written (or why not), and what waits
# until every blob is durable and gives their final outcomes.
Settle = Callable[[], list[StoredBlob | DreamflareError]]


CATALOG_FILE = "catalog.db"
# Written beside the catalog when the store is made: a store that has it and no catalog
# (or an empty one) was damaged, and is refused rather than opened as a new, empty store.
MARKER_FILE = "store.json"
STORE_FORMAT = 1
_T = TypeVar("_T")


class Replica:
    """One store folder: its catalog, its blobs, its clocks and its buffered counters."""

    @staticmethod
    def exists(path: Path) -> bool:
        """Whether a store lives in ``path``: its catalog file or its marker is there (a
        marker alone is a damaged store, which opening reports)."""
        return (path / CATALOG_FILE).is_file() or (path / MARKER_FILE).is_file()

    def __init__(
        self,
        path: Path,
        wall: WallClock,
        randbits: Callable[[int], int],
        default_quota: int | None = None,
        rehash_on_dedup: bool = False,
    ) -> None:
        if path.exists() and not path.is_dir():
            raise InvalidArgument(f"store path {path} exists and is not a folder")
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.wall = wall
        self.default_quota = default_quota
        self._randbits = randbits
        self.rehash_on_dedup = rehash_on_dedup
        catalog_path = path / CATALOG_FILE
        _check_catalog(catalog_path, path / MARKER_FILE)
        with full_disk(path):
            self.blobs = BlobStore(path)
            self.derived = DerivedBlobs(path)  # thumbnails: local caches, never synced
        # Opening makes the catalog's log files: on a full disk, the reserve makes room, so
        # a store can still be opened to delete contents and gc.
        self.catalog = self.freeing(functools.partial(Catalog, catalog_path), take=False)
        self.blobs.looks_intact = self._looks_intact
        # Small blobs are rows of the catalog: an upload is then one commit (blobs.inline).
        self.blobs.use_rows(self.catalog.inline, INLINE_MAX)
        self.replica_id = self._replica_id()
        self._write_marker()
        with contextlib.suppress(OSError):  # best effort: a read-only disk has no need of it
            self.blobs.reserve.take()
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
                replica = os.urandom(8).hex()
                self.catalog.db.set_meta("replica_id", replica)
        return replica

    def _write_marker(self) -> None:
        """Write the marker that says a store was made here (``MARKER_FILE``), once: at
        creation, or at the first open of a store made before markers."""
        marker = self.path / MARKER_FILE
        if marker.exists():
            return
        body = {"format": STORE_FORMAT, "replicaId": self.replica_id, "catalog": CATALOG_FILE}
        temp = self.path / f".{MARKER_FILE}.part"
        with full_disk(self.path):
            with open(temp, "w", encoding="utf-8") as file:
                json.dump(body, file)
                file.write("\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, marker)
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

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
        from .oplog import Op  # with its codec, imported by the first write, not on open

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
        from .oplog import CONTENT_CREATE

        ops = self._new_ops([(CONTENT_CREATE, entity, data) for entity, data in entries])
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

        # Small bytes are only hashed here: the transaction that references them stores
        # them (``keep_blob``), one commit for both.
        rows = self.blobs
        if isinstance(file, bytes | bytearray | memoryview):
            if rows.as_row(len(file)):
                return rows.prepare(bytes(file), head, admit)
            return self.blobs.write_bytes(bytes(file), head, admit)
        if isinstance(file, str | os.PathLike):
            path = Path(file)
            try:
                info = os.stat(path)  # once: whether it is a file, and its size
            except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
                if isinstance(exc, OSError) and exc.errno not in _ABSENT:
                    raise as_error(exc, path) from exc  # unreadable: say why
                raise NotFound(f"{path}: no such file or folder", path=str(path)) from exc
            if not stat.S_ISREG(info.st_mode):
                raise InvalidArgument(f"{path}: not a regular file", path=str(path))
            size = info.st_size
            if rows.as_row(size):
                try:
                    data = read_small(os.fspath(path), size)  # as the batch path reads
                except OSError as exc:
                    raise as_error(exc, path) from exc
                if rows.as_row(len(data)):
                    return rows.prepare(data, head, admit)
                return self.blobs.write_bytes(data, head, admit)  # it grew meanwhile
            return self.blobs.write_file(path, head, admit, self.catalog.reads.size_referenced)
        if hasattr(file, "read"):
            if isinstance(file, io.TextIOBase):
                raise InvalidArgument("file must be a binary file object (opened with 'rb')")
            prefix = read_prefix(file, rows.inline_max + 1)
            if rows.as_row(len(prefix)):
                return rows.prepare(prefix, head, admit)
            source = cast(IO[bytes], Prefixed(prefix, file))
            return self.blobs.write_stream(source, head, admit, _remaining(file) + len(prefix))
        raise InvalidArgument(
            f"file must be a path, bytes or a binary file object, not {type(file).__name__}"
        )

    def store_many(
        self,
        files: Sequence[FileLike],
        owner: str,
        jobs: int,
        on_bytes: Callable[[int, bytes], None] | None = None,
    ) -> tuple[list[StoredBlob | DreamflareError], Settle]:
        """Write the bytes of many files, small ones by groups that share their flushes.

        Returns each file's blob as written, or the error that kept it out, while the last
        group's flushes may still run; and ``settle``, which waits until every blob and
        its name are durable and returns the final outcomes. Call ``settle`` whatever
        happens: it also ends the batch's threads. ``on_bytes(index, data)`` sees the
        bytes of each small file while they are in memory (on the writing threads).
        """
        out: list[StoredBlob | DreamflareError | None] = [None] * len(files)
        loaders: list[Callable[[], bytes]] = []
        small: list[int] = []
        rows: dict[int, Callable[[], bytes]] = {}  # kept as rows: only hashed here
        for index, file in enumerate(files):
            sized = sized_loader(file)
            if sized is None:
                continue
            load = sized[0] if on_bytes is None else _seeing(sized[0], index, on_bytes)
            if self.blobs.as_row(sized[1]):
                rows[index] = load
            else:
                small.append(index)
                loaders.append(load)
        self._prepare_rows(files, rows, out)
        pending = stage_many(self.blobs, loaders, media.SNIFF_BYTES, jobs)

        def outcomes(blobs: Sequence[StoredBlob | Exception]) -> list[StoredBlob | DreamflareError]:
            done = list(out)
            for index, blob in zip(small, blobs, strict=True):
                done[index] = blob if isinstance(blob, StoredBlob) else as_error(blob, files[index])
            return [blob for blob in done if blob is not None]

        from concurrent.futures import ThreadPoolExecutor  # only uploads need threads

        try:
            chosen = {*small, *rows}  # the rest: large files, file objects, bad paths
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

    def _prepare_rows(
        self,
        files: Sequence[FileLike],
        rows: dict[int, Callable[[], bytes]],
        out: list[StoredBlob | DreamflareError | None],
    ) -> None:
        """Read and hash the files kept as rows, into ``out``: their bytes are stored by
        the transaction that references them, so nothing is written or flushed here. New
        bytes the disk has no room for are refused.

        One file after another in this thread: reading a small file from the page cache,
        hashing it and reading its metadata is mostly Python holding the GIL, and threads
        made it slower (5,000 files of 34 KiB on 2 cores: 0.42 s alone, 0.58 s with 8
        threads, 0.56 s with 2).
        """
        head = media.SNIFF_BYTES

        def prepare(load: Callable[[], bytes]) -> StoredBlob:
            return self.blobs.prepare(load(), head, created=True)

        prepared = [_attempt(prepare, load) for load in rows.values()]
        new = 0
        for index, blob in zip(rows, prepared, strict=True):
            if isinstance(blob, StoredBlob):
                blob = dataclasses.replace(blob, created=not self.blobs.present(blob.digest))
                new += blob.size if blob.created else 0
            out[index] = blob if isinstance(blob, StoredBlob) else as_error(blob, files[index])
        try:
            self.blobs.check_room(new)
        except StorageFull as exc:
            for index in rows:
                done = out[index]
                if isinstance(done, StoredBlob) and done.created:
                    out[index] = exc

    def _looks_intact(self, digest: str, size: int, stat: os.stat_result) -> bool:
        """Whether a blob file found on the dedup path may be kept: it has the size of the
        bytes being stored and looks as when it was last known good (size, inode, mtime;
        a file with no record passes on its size). With ``rehash_on_dedup`` it is hashed
        instead: sure, and as slow as writing it again."""
        if stat.st_size != size:
            return False
        if self.rehash_on_dedup:
            return hash_file(Path(self.blobs.name(digest))) == digest
        known = self.catalog.local.blob_file(digest)
        return known is None or known == (stat.st_size, stat.st_ino, stat.st_mtime_ns)

    def note_blobs(self, digests: Sequence[str]) -> None:
        """Inside the transaction that references them: record what the blob files look
        like now, written or found intact, for the next dedup's check (``_looks_intact``)."""
        files = []
        for digest in digests:
            try:
                stat = os.stat(self.blobs.name(digest))
            except FileNotFoundError:
                continue
            files.append((digest, stat.st_size, stat.st_ino, stat.st_mtime_ns))
        self.catalog.local.set_blob_files(files)

    def keep_blob(self, blob: StoredBlob) -> None:
        """Inside the transaction that will reference ``blob``: its bytes are there. Small
        bytes are written now, as a row (``BlobStore.keep``): this one commit makes both
        them and the reference durable.

        gc removes blobs under the write lock, so none can go between this check and the
        commit; before it, a gc may have taken a file (an old unreferenced blob between
        gc's age check and the upload's touch of it, or a new one under ``gc(min_age=0)``).
        """
        (removed,) = self.keep_blobs([blob])
        if removed is not None:
            raise removed

    def keep_blobs(self, blobs: Sequence[StoredBlob]) -> list[Conflict | None]:
        """``keep_blob`` of each blob of a batch (small ones written by one statement):
        None for each blob that is there, the Conflict of each that gc took."""
        gone = "were removed by gc during this upload; upload again"
        kept = zip(blobs, self.blobs.keep_many(blobs), strict=True)
        return [None if k else Conflict(f"the stored bytes {b.digest} {gone}") for b, k in kept]

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

    # -- generation metadata ----------------------------------------------------------------

    @staticmethod
    def generation_in(data: bytes) -> dict[str, Any] | None:
        """The normalised generation record of bytes in memory, or None (as
        ``extract_generation``)."""
        from . import genmeta  # imported by the operations that read metadata, not on open

        found = genmeta.extract(data)
        return None if found is None else informative(found.record)

    def generation_of(self, blob: StoredBlob) -> dict[str, Any] | None:
        """The normalised generation record of bytes just stored (or about to be, for a
        row), or None (as ``extract_generation``)."""
        if blob.data is not None:
            return self.generation_in(blob.data)
        return self.extract_generation(blob.digest)

    def extract_generation(self, digest: str) -> dict[str, Any] | None:
        """The normalised generation record of a local blob's bytes, or None when they
        carry none (or are not here). Never raises for what the bytes hold: genmeta's
        parsers are bounded and only ever find less."""
        found = self.read_metadata(digest)
        return None if found is None else informative(found.record)

    def read_metadata(self, digest: str) -> genmeta.Extracted | None:
        """What genmeta reads from a local blob's bytes (record and raw texts), or None."""
        from . import genmeta

        data = self.blobs.inline.get(digest)
        if data is not None:
            return genmeta.extract(data)
        try:
            with open(self.blobs.name(digest), "rb") as source:
                return genmeta.extract(source)
        except OSError:
            return None

    def stripped_blob(self, digest: str) -> str:
        """The blob of ``digest``'s bytes without their embedded metadata, made once and
        kept (a derived blob: gc drops it with its source). Bytes of a format genmeta
        does not rewrite are their own stripped copy. IntegrityError when the file is too
        damaged to rewrite, so no metadata is served by mistake."""
        from . import genmeta

        known = self.catalog.local.stripped_of(digest)
        if known is not None and self.blobs.exists(known):
            return known
        temp = self.blobs.download_path()
        try:
            with self.blobs.open(digest) as source, open(temp, "wb") as target:
                changed = genmeta.strip(cast_binary(source), target)
            if not changed:
                stripped = digest
            else:
                stripped = hash_file(temp)
                self.blobs.adopt(temp, stripped)
        except genmeta.StripError as exc:
            raise IntegrityError(
                f"the metadata of blob {digest} cannot be stripped: the file is damaged",
                digest=digest,
            ) from exc
        finally:
            temp.unlink(missing_ok=True)
        with self.catalog.atomic():
            self.catalog.local.set_stripped(digest, stripped)
        return stripped

    # -- maintenance ----------------------------------------------------------------------

    def verify(self, full: bool = False) -> list[Problem]:
        """Check the catalog file (SQLite's quick check; its full one with ``full``),
        re-hash every live blob and check every invariant; an empty list means healthy."""
        return list(self.verify_report(full).problems)

    def verify_report(self, full: bool = False) -> VerifyReport:
        """``verify``'s problems, with what was checked: blobs hashed and their bytes, rows
        and ops read, and the blobs that are only on a remote (not hashed here).

        A blob found corrupt is moved to the quarantine; blobs found right have their
        file's identity recorded for the dedup path's check.
        """
        from .records.outcomes import Problem, VerifyReport  # not needed to open a store

        problems = self._check_catalog_file(full)
        if problems:  # reading a damaged catalog further would fail or mislead
            return VerifyReport(tuple(problems), 0, 0, 0, 0, 0, 0)
        self.counters.flush()
        reads = self.catalog.reads
        with self.catalog.snapshot():
            live = reads.live_blobs()
            remote_only = self.catalog.local.remote_blob_digests()
            stored = reads.stored_storage()
            recount = reads.recount_storage()
            gaps = reads.version_numbers_ok()
            index = reads.search_index_problems()
            contents, versions, ops = reads.row_counts()
        good: list[str] = []
        checked_bytes = remote = 0
        for digest in sorted(live):
            problem = self._check_blob(digest)
            if problem is None:
                good.append(digest)
                checked_bytes += live[digest]
            elif problem.kind == "missing_blob" and digest in remote_only:
                remote += 1  # a lazily pulled blob is not here yet: fine
            else:
                problems.append(problem)
        with contextlib.suppress(StorageFull), self.catalog.atomic():
            self.note_blobs(good)  # the records only spare work: not vital on a full disk
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
        problems.extend(Problem("search_index", "catalog", text) for text in index)
        for content_id in gaps:
            problems.append(
                Problem("version_gap", content_id, f"versions of {content_id} are not 1..n")
            )
        checked = len(live) - remote
        return VerifyReport(
            tuple(problems), checked, checked_bytes, remote, contents, versions, ops
        )

    def _check_catalog_file(self, full: bool) -> list[Problem]:
        """SQLite's own check of the catalog, as problems (one per finding, at most 20)."""
        from .records.outcomes import Problem

        path = str(self.catalog.db.path)
        try:
            found = self.catalog.db.check_integrity(full)
        except CorruptStore as exc:
            found = [exc.message]
        return [Problem("corrupt_catalog", path, f"{path}: {line}") for line in found[:20]]

    def _check_blob(self, digest: str) -> Problem | None:
        """Hash one live blob; return None when it is right, else what is wrong."""
        from .records.outcomes import Problem

        for _ in range(2):  # a file replaced while hashed (a heal) is hashed again
            if self.blobs.inspect(digest):
                return None
            if not self.blobs.exists(digest):
                break
        if self.blobs.quarantined(digest):
            return Problem(
                "corrupt_blob",
                digest,
                f"blob {digest} does not match its hash (moved to {self.blobs.bad})",
            )
        return Problem("missing_blob", digest, f"blob {digest} is missing")

    def freeing(self, action: Callable[[], _T], take: bool = True) -> _T:
        """Run ``action``, which frees room (a delete, a gc); should the disk be too full
        for it to commit, give the reserve back to the disk and run it once more. Take the
        reserve again afterwards (with ``take``) if there is room for it."""
        try:
            result = action()
        except StorageFull:
            if not self.blobs.reserve.release():
                raise
            result = action()
        if take:
            self.blobs.reserve.take()
        return result

    def gc(self, min_age: float, dry_run: bool = False, compact: bool = False) -> GcReport:
        """Remove blobs no version references and temp files left by crashes, of those
        untouched for ``min_age`` seconds (see ``Store.gc``), and every derived file
        (thumbnail) whose source blob is no longer referenced; on a full disk too. With
        ``dry_run``, count what would go and change nothing. With ``compact``, then give
        the catalog's free pages back to the disk (``compact``)."""
        if compact and not dry_run:
            report = self.gc(min_age)
            before, after = self.compact()
            return dataclasses.replace(report, catalog_bytes_returned=max(0, before - after))
        if dry_run:
            try:
                with self.catalog.atomic():
                    report = self._gc(min_age, True)
                    raise _DryRun  # what the sweep changed in the catalog is rolled back
            except _DryRun:
                return report
        return self.freeing(functools.partial(self._gc, min_age, False))

    def _gc(self, min_age: float, dry_run: bool) -> GcReport:
        from .records.outcomes import GcReport

        now = time.time()
        cutoff = now - min_age
        removed = freed = temps = young = derived = 0
        gone: list[str] = []
        with self.catalog.atomic():  # the write lock: no upload commits a reference meanwhile
            live = self.catalog.reads.live_blobs()
            # Stripped copies live as long as their source does.
            live.update(dict.fromkeys(self.catalog.local.keep_stripped(live), 0))
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
                gone.append(digest)
            self.catalog.local.forget_blob_files(gone)
            # Rows go in this transaction (a dry run's is rolled back): their pages are
            # free for later writes, not given back to the disk (``compact``).
            rows = []
            for digest, size, created_ms in self.blobs.inline.listing():
                if digest in live:
                    continue
                if created_ms / 1000 > cutoff:
                    young += 1
                    continue
                rows.append(digest)
                freed += size
            self.blobs.inline.delete(rows)
            removed += len(rows)
            # A thumbnail made while this runs is of a live blob (it was read under the
            # access rules), so the live set taken under the lock covers it.
            if not dry_run:
                derived, _ = self.derived.remove_orphans(live)
        for temp in [*self.blobs.stale_temps(min_age), *self.derived.stale_temps(min_age, now)]:
            if not dry_run:
                temp.unlink(missing_ok=True)
            temps += 1
        return GcReport(removed, freed, temps, derived, young, dry_run)

    def compact(self) -> tuple[int, int]:
        """Give the catalog's free pages back to the disk (SQLite's VACUUM: the file is
        rewritten, so it needs room for a copy of it); its size (with its log) before and
        after.

        gc frees the pages of small blobs' rows for later writes to reuse, but the file
        does not shrink: this is how the space goes back to the disk.
        """

        def size() -> int:  # the file and its log: what the catalog takes on the disk
            log = path.with_name(path.name + "-wal")
            return path.stat().st_size + (log.stat().st_size if log.exists() else 0)

        path = self.catalog.db.path
        self.counters.flush()
        before = size()
        self.catalog.db.vacuum()
        return before, size()

    def state_digest(self) -> str:
        """A hash of the materialised state: equal on replicas that have fully synced."""
        import msgpack

        self.counters.flush()
        hasher = blake3.blake3()
        for row in self.catalog.reads.digest_rows():
            hasher.update(msgpack.packb(row, use_bin_type=True))
        return hasher.hexdigest()


def informative(record: dict[str, Any]) -> dict[str, Any] | None:
    """The record, if it says anything about how the bytes were made (beyond the image's
    size, which every header gives); else None."""
    for key, value in record.items():
        if key not in ("width", "height") and value not in (None, [], ""):
            return record
    return None


def cast_binary(reader: Any) -> BinaryIO:
    """A blob reader as the binary stream genmeta takes."""
    stream: BinaryIO = reader
    return stream


def _check_catalog(catalog: Path, marker: Path) -> None:
    """Refuse a damaged catalog before opening it (CorruptStore, naming the file): one
    missing or empty where the marker says a store was made (SQLite would make a new,
    empty one), one whose header is not SQLite's, or one shorter than its header says."""
    if marker.is_file():
        try:
            size: int | None = catalog.stat().st_size
        except FileNotFoundError:
            size = None
        if not size:
            state = "missing" if size is None else "empty"
            why = f"it is {state}, but {marker.name} says a store was made here"
            raise CorruptStore(corrupt_message(catalog, why), path=str(catalog))
    Database.check_file(catalog)


def small_loader(file: object) -> Callable[[], bytes] | None:
    """For bytes, or a regular file small enough to read whole, what reads them; None for
    the rest (large files, file objects, paths that are not files), which take the path
    of ``store_bytes``, errors included."""
    sized = sized_loader(file)
    return None if sized is None else sized[0]


def sized_loader(file: object) -> tuple[Callable[[], bytes], int] | None:
    """``small_loader``'s reader, with the size the bytes have now."""
    if isinstance(file, bytes | bytearray | memoryview):
        return functools.partial(bytes, file), len(file)
    if not isinstance(file, str | os.PathLike):
        return None
    try:
        info = os.stat(file)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size > SMALL_FILE:
        return None
    return functools.partial(read_small, os.fsdecode(file), info.st_size), info.st_size


def _seeing(
    load: Callable[[], bytes], index: int, on_bytes: Callable[[int, bytes], None]
) -> Callable[[], bytes]:
    def loaded() -> bytes:
        data = load()
        on_bytes(index, data)
        return data

    return loaded


def _remaining(file: IO[bytes]) -> int:
    """Return the bytes left to read from a regular file's object, 0 when unknown: so a
    full disk refuses a file object too before its bytes are written."""
    try:
        info = os.fstat(file.fileno())
        return max(0, info.st_size - file.tell()) if stat.S_ISREG(info.st_mode) else 0
    except (OSError, ValueError, AttributeError):
        return 0


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
        return NotFound(f"{where}: no such file or folder", path=where)
    if isinstance(exc, OSError):
        return InvalidArgument(f"{where}: cannot read: {exc.strerror or exc}", path=where)
    raise exc


_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)  # a path that names no file


class _DryRun(Exception):
    """Raised to roll back a dry run of gc."""


def _flush_and_close(counters: CounterBuffer, catalog: Catalog, pid: int) -> None:
    """Write a forgotten store's buffered counters (at garbage collection or at exit)."""
    if os.getpid() != pid:
        return  # a forked child's copy: these counts are its parent's to write
    with contextlib.suppress(Exception):  # at exit or in gc there is no one left to tell
        counters.stop()
        counters.flush()
    catalog.close()
