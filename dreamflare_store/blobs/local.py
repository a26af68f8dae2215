"""The content-addressed blob store on local disk, one blob at a time.

Layout, owned by this module alone::

    objects/<2>/<2>/<64 hex>    immutable bytes named by their BLAKE3 hash
    tmp/<random>.part           uploads in flight (removed on error, or by gc when stale)
    bad/<64 hex>                blobs found corrupt, moved aside (as git-annex's .git/annex/bad/)
    reserve                     room given back to a full disk (``room.Reserve``)

Small blobs (``inline.INLINE_MAX``) are rows of the catalog instead, kept by an ``InlineRows``
the owner hands in: every reader here (``exists``, ``open``, ``check``, ``inspect``...) looks
for a file and then a row, so a store holds both kinds, and stores made before rows
existed keep working as they are.

Write ordering (DESIGN.md): bytes go to a temp file in the store, hashed in the same pass,
fsynced, renamed to their name, and the directory is fsynced, all *before* the catalog
commits a reference to them. A crash can leave a temp file or an unreferenced blob behind,
never a reference to missing bytes. The batch path (``batch.py``) keeps the same order
for many blobs at once. A small blob's row is written in the very transaction that
commits the reference (``prepare``, then ``keep``): one commit makes both durable.
"""

from __future__ import annotations

import contextlib
import functools
import io
import mmap
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import IntegrityError, InvalidArgument, NotFound
from . import room
from .files import (
    COPY_PIECE,
    NO_KERNEL_COPY,
    copy_piece,
    discard,
    fsync_dir,
    make_folder,
    start_writeback,
    write_all,
)
from .hashing import CHUNK, hash_bytes, hash_fd, hash_file, new_hasher
from .inline import INLINE_MAX, InlineRows, NoRows, read_piece
from .reader import VerifiedReader, corrupt, verified_bytes
from .room import guarded

# Files up to this size are read whole: one read and one hash (the bytes hashed are the bytes
# written, whatever happens to the file meanwhile), no second pass.
SMALL_FILE = 4 << 20
_DIGEST = re.compile(r"\A[0-9a-f]{64}\Z")

# Called with (digest, size) once both are known and before the blob is published; it may
# raise (a quota check) and then nothing is stored.
Admit = Callable[[str, int], None]


def _admit_all(digest: str, size: int) -> None:
    return None


# Called with (digest, size, stat) for a blob file found on the dedup path: whether it may
# be kept as it is. False has the bytes being uploaded replace it.
LooksIntact = Callable[[str, int, os.stat_result], bool]


def _size_matches(digest: str, size: int, stat: os.stat_result) -> bool:
    return stat.st_size == size


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """The outcome of writing bytes: their name, size, first bytes, and whether they were new.

    ``data`` holds the bytes of a small blob not stored yet: the transaction that
    references it stores them (``BlobStore.keep``), so one commit makes both durable.
    """

    digest: str
    size: int
    head: bytes
    created: bool
    data: bytes | None = None


class BlobStore:
    """Immutable blobs under ``root``, named by BLAKE3 hash."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self.tmp = root / "tmp"
        self.bad = root / "bad"
        self.reserve = room.Reserve(root)
        # Where small blobs are kept as rows, and up to what size (-1: none, all files):
        # set by the owner of the catalog (the replica).
        self.inline: InlineRows = NoRows()
        self.inline_max = -1
        # Set by the owner of the records of what each blob file looked like (the replica).
        self.looks_intact: LooksIntact = _size_matches
        # What each blob file looked like after this process last marked it used: the touch
        # changes its mtime before the catalog records it, and must not make it look changed.
        self._touched: dict[str, tuple[int, int, int]] = {}
        self._touch_lock = threading.Lock()
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
        """Return the file of blob ``digest`` (``digest -> path``, the exact inverse of
        ``digest_of``); raise InvalidArgument for anything not a digest, so input from
        outside never names a file beyond the layout."""
        return Path(self._checked_name(digest))

    def _checked_name(self, digest: str) -> str:
        """``name``, for a digest from outside: checked first (reads go through this)."""
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise InvalidArgument(f"not a blob digest: {digest!r}")
        return self.name(digest)

    def digest_of(self, path: Path) -> str | None:
        """Return the digest a file in the layout is named by (``path -> digest``), or None
        for anything foreign, so a stray file is never taken for a blob."""
        try:
            rel = path.relative_to(self.objects).parts
        except ValueError:
            return None
        if len(rel) != 3 or not _DIGEST.match(rel[2]):
            return None
        if rel[0] != rel[2][:2] or rel[1] != rel[2][2:4]:
            return None
        return rel[2]

    def use_rows(self, rows: InlineRows, limit: int = INLINE_MAX) -> None:
        """Keep blobs of up to ``limit`` bytes as ``rows`` from now on (``inline``)."""
        self.inline = rows
        self.inline_max = limit

    def exists(self, digest: str) -> bool:
        """Return whether blob ``digest`` is stored here, as a file or a row
        (InvalidArgument for a non-digest)."""
        return self.path(digest).is_file() or self.inline.has(digest)

    def present(self, digest: str) -> bool:
        """Return whether blob ``digest`` is stored here, without checking the digest: for
        digests this package computed itself, on the upload path."""
        return os.path.isfile(self.name(digest)) or self.inline.has(digest)

    def size(self, digest: str) -> int | None:
        """Return the size of blob ``digest`` here, None when it is not here."""
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            return self.inline.size(digest)

    def name(self, digest: str) -> str:
        """Return the file of blob ``digest`` as ``path`` does, as a plain string and
        unchecked: for digests this package computed itself, where the write path spends
        less on this than on pathlib and the check (a batch calls it per file)."""
        return f"{self._objects}/{digest[:2]}/{digest[2:4]}/{digest}"

    def iter_digests(self) -> Iterator[tuple[str, Path]]:
        """Yield the digest and file of every blob on disk, skipping foreign files, for
        gc and verify."""
        for path in self.objects.glob("*/*/*"):
            digest = self.digest_of(path)
            if digest is not None:
                yield digest, path

    # -- writing ----------------------------------------------------------------------

    def new_temp(self) -> tuple[str, int]:
        """Return the path of a new, empty temp file in tmp/ and a descriptor open to write
        it: bytes are written there before they get their name."""
        path = self._temp_name()
        return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)

    def _temp_name(self) -> str:
        """Return a new random name in tmp/: gc sweeps what a crash leaves there."""
        return f"{self._tmp}/{os.urandom(8).hex()}.part"

    def sync_name(self, leaf: str) -> None:
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

    def knows_folder(self, leaf: str) -> bool:
        """Return whether this process has made folder ``leaf``'s entry durable, so a
        writer can skip making it (the batch path asks per new blob)."""
        return leaf in self._known_dirs

    def note_folders(self, leaves: Iterable[str]) -> None:
        """Record folders whose entries, and their parents', the caller made durable (a
        batch's syncfs does), so later names in them need no fsync of the folders above."""
        leaves = list(leaves)
        with self._dirs_lock:
            self._known_dirs.update(leaves)
            self._known_dirs.update(os.path.dirname(leaf) for leaf in leaves)

    def _found(self, digest: str, size: int) -> bool:
        """Return whether blob ``digest`` is stored and looks intact; if so, mark it used
        (so a concurrent gc keeps it) and make its name durable, so the caller can
        reference it at once. A file that changed since it was written or last verified
        is not found: the caller writes the good bytes over it."""
        target = self.name(digest)
        if not self.kept(target, digest, size):
            return False
        self.sync_name(os.path.dirname(target))
        return True

    def kept(self, target: str, digest: str, size: int) -> bool:
        """Return whether the file ``target`` of blob ``digest`` (``size`` bytes) is there
        and looks intact, marking it used if so: the dedup path's one check."""
        with self._touch_lock:
            try:
                stat = os.stat(target)
                if stat.st_size != size:
                    return False
                if self._touched.get(digest) != _identity(stat) and not self.looks_intact(
                    digest, size, stat
                ):
                    return False
                os.utime(target)
                self._touched[digest] = _identity(os.stat(target))
            except FileNotFoundError:
                return False
            if len(self._touched) > _TOUCHED_LIMIT:
                del self._touched[next(iter(self._touched))]
        return True

    def check_room(self, size: int) -> None:
        """Refuse (StorageFull) ``size`` new bytes the disk has no room for (``room.check``)."""
        # A reserve given back to a full disk is taken again as soon as there is room.
        room.check(self.root, size, self.reserve.held() or self.reserve.take())

    def _publish(self, temp: str | os.PathLike[str], digest: str, size: int) -> bool:
        """Rename a durable temp file to blob ``digest``'s name and make the name durable;
        return whether the blob is new (False when it was there already).

        The temp file is consumed either way.
        """
        created, leaf = self.place(temp, digest, size)
        self.sync_name(leaf)
        return created

    def place(self, temp: str | os.PathLike[str], digest: str, size: int) -> tuple[bool, str]:
        """Rename a durable temp file to blob ``digest``'s name, leaving the name to be made
        durable by ``sync_name``; return whether the blob is new and its folder.

        Apart from ``_publish`` so that a batch syncs each folder once for all its blobs.
        The temp file is consumed either way.
        """
        target = self.name(digest)
        leaf = os.path.dirname(target)
        if self.kept(target, digest, size):  # there already (same bytes): keep it
            discard(temp)
            return False, leaf
        # Absent, or changed since it was written (then replaced whole, at once: a reader
        # sees the old file or the new one).
        try:
            os.replace(temp, target)
        except FileNotFoundError:  # the folder is not there yet: one failed call, not a
            make_folder(leaf)  # check before every rename; made durable by sync_name,
            os.replace(temp, target)  # after the rename
        return True, leaf

    # -- small blobs, kept as rows ----------------------------------------------------

    def as_row(self, size: int) -> bool:
        """Return whether a blob of ``size`` bytes is kept as a row."""
        return size <= self.inline_max

    def prepare(
        self, data: bytes, head_size: int, admit: Admit = _admit_all, created: bool | None = None
    ) -> StoredBlob:
        """Hash small ``data`` and admit it; return it as a blob whose bytes the transaction
        that references it stores (``keep``). Nothing is written here. ``created`` (when
        the caller knows better, or cannot ask from its thread) says whether it is new."""
        digest = hash_bytes(data)
        admit(digest, len(data))
        if created is None:
            created = not self.present(digest)
            if created:
                self.check_room(len(data))
        return StoredBlob(digest, len(data), bytes(data[:head_size]), created, data)

    @guarded
    def keep(self, blob: StoredBlob) -> bool:
        """Inside the transaction that will reference ``blob``: store its bytes if they
        are only in memory (``prepare``), as a row written by that transaction; return
        whether the blob is stored (False: a file blob removed meanwhile, by gc)."""
        return self.keep_many([blob])[0]

    @guarded
    def keep_many(self, blobs: Sequence[StoredBlob]) -> list[bool]:
        """``keep`` of each blob, the new rows written by one statement (a batch's)."""
        kept: list[bool] = []
        rows: list[tuple[str, bytes]] = []
        for blob in blobs:
            if blob.data is None:
                kept.append(self.present(blob.digest))
                continue
            try:
                info = os.stat(self.name(blob.digest))
            except FileNotFoundError:
                info = None
            kept.append(True)
            if info is not None:
                if self._found(blob.digest, blob.size):
                    continue  # a file blob with these bytes: it serves
                self.quarantine(blob.digest, info.st_ino)  # changed since known good: aside
            rows.append((blob.digest, blob.data))
        if rows:
            self.inline.put(rows)
        return kept

    @guarded
    def write_bytes(self, data: bytes, head_size: int, admit: Admit = _admit_all) -> StoredBlob:
        """Store ``data`` durably; return its name, size, first ``head_size`` bytes and
        whether it is new. Hashes first, so bytes already stored are never written again."""
        digest = hash_bytes(data)
        head = bytes(data[:head_size])
        admit(digest, len(data))
        if self._found(digest, len(data)):
            return StoredBlob(digest, len(data), head, created=False)
        self.check_room(len(data))
        view = memoryview(data)
        pieces = (view[at : at + COPY_PIECE] for at in range(0, len(view), COPY_PIECE))
        temp = self._write_temp(pieces)
        try:
            created = self._publish(temp, digest, len(data))
        except BaseException:
            discard(temp)
            raise
        return StoredBlob(digest, len(data), head, created)

    @guarded
    def write_file(
        self,
        path: Path,
        head_size: int,
        admit: Admit = _admit_all,
        maybe_stored: Callable[[int], bool] | None = None,
    ) -> StoredBlob:
        """Store a file's bytes durably; return them as ``write_bytes`` does. Hashes first,
        so re-uploading stored bytes writes nothing.

        ``maybe_stored(size)`` may say that no stored bytes have the file's size: then a
        large file skips that first hashing pass and is copied (and hashed) at once.
        """
        try:
            source = open(path, "rb", buffering=0)  # noqa: SIM115 (closed below)
        except FileNotFoundError as exc:
            raise NotFound(f"{path}: no such file or folder", path=str(path)) from exc
        except IsADirectoryError as exc:
            raise InvalidArgument(f"{path}: is a folder, not a file", path=str(path)) from exc
        except PermissionError as exc:
            message = f"{path}: cannot read: permission denied"
            raise InvalidArgument(message, path=str(path)) from exc
        with source:
            fd = source.fileno()
            size = os.fstat(fd).st_size
            if size <= SMALL_FILE:
                return self.write_bytes(source.readall(), head_size, admit)
            if maybe_stored is None or maybe_stored(size):
                known = hash_fd(fd, size)
                if os.path.isfile(self.name(known)):
                    admit(known, size)
                    if self._found(known, size):
                        return StoredBlob(known, size, os.pread(fd, head_size, 0), False)
                source.seek(0)
            self.check_room(size)
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
        """Store a file's bytes by the kernel's own copy, hashing the copy itself a piece at
        a time through a memory map; return the blob, or None where the kernel cannot copy.

        As ``cp`` does: the bytes make no trip through this process, and the file system
        may share extents instead of copying.
        """
        if not hasattr(os, "copy_file_range"):
            return None
        temp = self._temp_name()
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        hasher = new_hasher(size_hint)
        offset = 0
        try:
            try:
                while True:
                    try:
                        count = copy_piece(source, fd, offset)
                    except OSError as exc:
                        if offset == 0 and exc.errno in NO_KERNEL_COPY:
                            discard(temp)
                            return None
                        raise
                    if not count:
                        break
                    with mmap.mmap(fd, count, offset=offset, access=mmap.ACCESS_READ) as piece:
                        hasher.update(piece)
                    start_writeback(fd, offset, count)
                    offset += count
                head = os.pread(fd, head_size, 0)
                os.fsync(fd)
            finally:
                os.close(fd)
            digest = hasher.hexdigest()
            admit(digest, offset)
            created = self._publish(temp, digest, offset)
        except BaseException:
            discard(temp)
            raise
        return StoredBlob(digest, offset, head, created)

    @guarded
    def write_stream(
        self, source: IO[bytes], head_size: int, admit: Admit = _admit_all, size_hint: int = 0
    ) -> StoredBlob:
        """Store what ``source.read`` yields durably; return it as ``write_bytes`` does.

        Hashes while writing, in bounded memory, for bodies too large to hold whole.
        """

        def pieces() -> Iterator[bytes]:
            while chunk := read_piece(source, CHUNK):
                yield bytes(chunk) if isinstance(chunk, bytearray | memoryview) else chunk

        if size_hint:
            self.check_room(size_hint)
        return self._write_new(pieces(), head_size, admit, size_hint)

    def _write_new(
        self, pieces: Iterable[bytes | memoryview], head_size: int, admit: Admit, size_hint: int
    ) -> StoredBlob:
        """Hash ``pieces`` while writing them to a durable temp file, then publish it;
        return the blob. The hash is of the bytes written, whatever the source does."""
        hasher = new_hasher(size_hint)
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
            created = self._publish(temp, digest, size)
        except BaseException:
            discard(temp)
            raise
        return StoredBlob(digest, size, bytes(head), created)

    def _write_temp(self, pieces: Iterable[bytes | memoryview]) -> str:
        """Write ``pieces`` to a new temp file and fsync it; return the file's path, ready
        for ``_publish``."""
        temp, fd = self.new_temp()
        try:
            try:
                written = started = 0
                for piece in pieces:
                    write_all(fd, piece)
                    written += len(piece)
                    if written - started >= COPY_PIECE:
                        start_writeback(fd, started, written - started)
                        started = written
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            discard(temp)
            raise
        return temp

    def download_path(self) -> Path:
        """Return a fresh name in tmp/ for bytes another writer fills (a sync download).

        Hand the file to ``adopt`` once written; a crash leaves it for gc's stale-temp sweep.
        """
        return Path(self._temp_name())

    @guarded
    def adopt(self, temp: Path, digest: str) -> bool:
        """Publish a file written in tmp/ as blob ``digest``, only if its bytes hash to it
        (a small one as a row, committed before this returns).

        The temp file is consumed either way. Raises IntegrityError (and stores nothing)
        when the bytes are not the blob's; returns whether the blob is new here.
        """
        self.path(digest)  # rejects a malformed digest before anything else
        try:
            if self.as_row(os.stat(temp).st_size):
                new = not self.present(digest)
                if not self.adopt_rows([(temp, digest)])[digest]:
                    raise IntegrityError(
                        f"received bytes do not match blob {digest}", digest=digest
                    )
                return new
            if hash_file(temp) != digest:
                raise IntegrityError(f"received bytes do not match blob {digest}", digest=digest)
            fd = os.open(temp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            # A blob there already is marked used by _publish, so a concurrent gc keeps it.
            return self._publish(temp, digest, os.stat(temp).st_size)
        finally:
            temp.unlink(missing_ok=True)

    def adopt_rows(self, items: Iterable[tuple[Path, str]]) -> dict[str, bool]:
        """Keep small files written in tmp/ as rows, each only if its bytes hash to its
        digest, all in one transaction (one flush); return for each digest whether it
        is now kept (new or not), False for bytes that do not match. Temp files are
        consumed either way."""
        good: list[tuple[str, bytes]] = []
        outcome: dict[str, bool] = {}
        for temp, digest in items:
            try:
                with open(temp, "rb") as file:
                    data = file.read()
            finally:
                os.unlink(temp)
            outcome[digest] = hash_bytes(data) == digest
            if outcome[digest]:
                good.append((digest, data))
        if good:
            self.check_room(sum(len(data) for _, data in good))
            self.inline.put(good)
        return outcome

    @contextmanager
    def as_files(self, digests: Iterable[str]) -> Iterator[dict[str, Path]]:
        """The file of each blob, for what needs a file (an upload to a remote): a row is
        copied to a temp file in tmp/, removed on exit (or by gc after a crash)."""
        files: dict[str, Path] = {}
        temps: list[Path] = []
        try:
            with room.full_disk(self.root):
                for digest in digests:
                    path = self.path(digest)
                    data = None if path.is_file() else self.inline.get(digest)
                    if data is not None:
                        path = Path(self._temp_name())
                        temps.append(path)
                        path.write_bytes(data)
                    files[digest] = path
            yield files
        finally:
            for temp in temps:
                temp.unlink(missing_ok=True)

    # -- reading ----------------------------------------------------------------------

    def open(self, digest: str) -> VerifiedReader:
        """Return a reader over blob ``digest`` that raises IntegrityError if its bytes do
        not match their name (or the blob is missing), so corrupt bytes are never served.
        A blob found corrupt is moved to the quarantine (``bad/``)."""
        try:
            raw = open(self._checked_name(digest), "rb")  # noqa: SIM115 (the reader owns it)
        except FileNotFoundError as exc:
            data = self.inline.get(digest)
            if data is not None:
                return VerifiedReader(
                    io.BytesIO(data),
                    digest,
                    functools.partial(self.quarantine_row, digest, data),
                    len(data),
                )
            raise self._missing(digest) from exc
        stat = os.fstat(raw.fileno())
        return VerifiedReader(raw, digest, lambda: self.quarantine(digest, stat.st_ino), stat=stat)

    def read(self, digest: str) -> bytes:
        """All the bytes of blob ``digest``, file or row, checked as ``open`` checks them
        (the same errors, the same quarantine): one call, for a blob read whole."""
        try:
            with open(self._checked_name(digest), "rb") as file:
                stat = os.fstat(file.fileno())
                data = file.read()
        except FileNotFoundError as exc:
            row = self.inline.get(digest)
            if row is not None:
                on_bad = functools.partial(self.quarantine_row, digest, row)
                return verified_bytes(row, digest, None, on_bad)
            raise self._missing(digest) from exc
        return verified_bytes(data, digest, stat, lambda: self.quarantine(digest, stat.st_ino))

    def checked_row(self, digest: str, data: bytes) -> bytes:
        """``data``, the bytes of blob ``digest`` a caller read from its row (joined to
        the row that references it), once they hash to it; else the row goes to the
        quarantine and IntegrityError is raised, as ``read`` does."""
        if hash_bytes(data) == digest:
            return data
        self.quarantine_row(digest, data)
        raise corrupt(digest)

    def _missing(self, digest: str) -> IntegrityError:
        """The error of a blob that is neither file nor row: found corrupt before, or absent."""
        if self.quarantined(digest):
            return IntegrityError(
                f"blob {digest} was found corrupt and moved to {self.bad}: upload the"
                " same bytes again, or run `dreamflare verify --repair`",
                digest=digest,
            )
        return IntegrityError(f"blob {digest} is missing", digest=digest)

    def check(self, digest: str) -> bool:
        """Return whether blob ``digest`` exists and hashes to its name, hashing it afresh
        every time (verify and push rely on that)."""
        try:
            return hash_file(self.path(digest)) == digest
        except FileNotFoundError:
            data = self.inline.get(digest)
            return data is not None and hash_bytes(data) == digest

    def inspect(self, digest: str) -> bool:
        """Hash blob ``digest`` afresh; return whether its bytes are right (and a file did
        not change while hashed); False when it is missing or corrupt, and then move it
        to the quarantine. Verify's check."""
        path = self.path(digest)
        try:
            before = path.stat()
            good = hash_file(path) == digest
            after = path.stat()
        except FileNotFoundError:
            data = self.inline.get(digest)
            if data is None:
                return False
            if hash_bytes(data) == digest:
                return True
            self.quarantine_row(digest, data)
            return False
        if good and _same_file(before, after):
            return True
        if not good:
            self.quarantine(digest, before.st_ino)
        return False

    def quarantine(self, digest: str, inode: int) -> None:
        """Move blob ``digest``'s file, found corrupt, to ``bad/`` (kept for a post-mortem,
        out of the way of a good copy); only if it is still the file found bad (inode
        ``inode``), never a good copy put in its place meanwhile."""
        path = self.path(digest)
        with room.full_disk(self.root):
            try:
                if path.stat().st_ino != inode:
                    return
                self.bad.mkdir(exist_ok=True)
                os.replace(path, self.bad / digest)
            except FileNotFoundError:
                return
            fsync_dir(path.parent)

    def quarantine_row(self, digest: str, data: bytes) -> None:
        """Drop the row of blob ``digest``, found corrupt (``data``), keeping a copy of its
        bytes in ``bad/`` as for a file; only if it still holds those bytes, never good
        ones put in their place meanwhile. On a full disk the copy is skipped."""
        with contextlib.suppress(OSError):
            self.bad.mkdir(exist_ok=True)
            temp = self.bad / f".{digest}.part"
            temp.write_bytes(data)
            os.replace(temp, self.bad / digest)
        self.inline.delete_if(digest, data)

    def quarantined(self, digest: str) -> bool:
        """Return whether a corrupt copy of blob ``digest`` waits in ``bad/``."""
        return (self.bad / digest).is_file()

    def remove(self, digest: str) -> int:
        """Delete a blob (gc only); return the bytes freed, 0 if it was already gone."""
        path = self.path(digest)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def stale_temps(self, older_than: float) -> Iterator[Path]:
        """Yield the temp files not touched for ``older_than`` seconds: a crash left them,
        and gc removes them (younger ones may be uploads in flight)."""
        cutoff = time.time() - older_than
        for path in self.tmp.iterdir():
            try:
                if path.stat().st_mtime <= cutoff:
                    yield path
            except FileNotFoundError:
                continue


# Blob files whose identity after a touch this process remembers (the oldest forgotten).
_TOUCHED_LIMIT = 65536


def _identity(stat: os.stat_result) -> tuple[int, int, int]:
    return (stat.st_size, stat.st_ino, stat.st_mtime_ns)


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_ino, a.st_size, a.st_mtime_ns) == (b.st_ino, b.st_size, b.st_mtime_ns)
