"""The batch behind ``dreamflare upload``: walk folders, upload files in parallel, count.

Small files that become new contents go through ``Store.upload_many`` a chunk at a time
(its threads read and hash, a chunk's bytes are made durable together and its contents
created in one transaction). Large files and new versions go through ``Store.upload``,
on a pool of threads: the store is thread-safe, and hashing, reading and fsync release
the GIL, so workers overlap one file's fsync with the next one's hashing.

The summary tells new bytes from deduplicated ones, which ``Content`` does not say. So a
file is hashed here first (cheap next to the durable write) and looked up in the blob
store; the same hash lets a large new file be streamed through a counting reader in one
pass (live progress, and no second hashing pass inside the store).
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from . import validate
from .blobs import hash_bytes, hash_file
from .cli_format import NullProgress, human_size
from .errors import DreamflareError, InvalidArgument, NotFound
from .records import Content

if TYPE_CHECKING:
    from .store import Store

# Files up to this size are read into memory whole: one read, and the store hashes and
# writes the bytes without opening the file again. Bounded memory: jobs x this.
SMALL_FILE = 1 << 20
DEFAULT_JOBS = 8
# Small files per upload_many call: a transaction and two flushes each; the bar moves
# once per chunk.
CHUNK_FILES = 500


@dataclass(frozen=True, slots=True)
class Item:
    """One file to upload and its size when listed."""

    path: Path
    size: int


@dataclass(slots=True)
class Outcome:
    """What became of one file: its content, or the error that stopped it."""

    path: Path
    content: Content | None = None
    deduplicated: bool = False
    error: DreamflareError | None = None


@dataclass(slots=True)
class Summary:
    """Counts over a whole batch."""

    uploaded: int = 0
    new: int = 0
    deduplicated: int = 0
    bytes_stored: int = 0
    bytes_total: int = 0
    failed: int = 0
    seconds: float = 0.0
    items: list[Content] = field(default_factory=list)
    errors: list[Outcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` shape of a batch upload."""
        return {
            "items": [content.to_dict() for content in self.items],
            "errors": [
                {"path": str(outcome.path), **outcome.error.to_dict()}
                for outcome in self.errors
                if outcome.error is not None
            ],
            "uploaded": self.uploaded,
            "new": self.new,
            "deduplicated": self.deduplicated,
            "bytesStored": self.bytes_stored,
            "failed": self.failed,
        }

    def text(self) -> str:
        """One line for people: ``Uploaded 12 files (10 new, 2 deduplicated), ...``."""
        noun = "file" if self.uploaded == 1 else "files"
        line = (
            f"Uploaded {self.uploaded:,} {noun} ({self.new:,} new, {self.deduplicated:,}"
            f" deduplicated): {human_size(self.bytes_stored)} stored"
            f" of {human_size(self.bytes_total)}, in {self.seconds:.1f} s."
        )
        if self.failed:
            line += f" {self.failed:,} failed (see above)."
        return line


def summarize(outcomes: Sequence[Outcome], seconds: float) -> Summary:
    """Add up a batch's outcomes (in the order the files were listed)."""
    summary = Summary(seconds=seconds)
    for outcome in outcomes:
        if outcome.content is None:
            summary.failed += 1
            summary.errors.append(outcome)
            continue
        summary.uploaded += 1
        summary.items.append(outcome.content)
        summary.bytes_total += outcome.content.size
        if outcome.deduplicated:
            summary.deduplicated += 1
        else:
            summary.new += 1
            summary.bytes_stored += outcome.content.size
    return summary


# -- listing ---------------------------------------------------------------------------


def _read_error(path: Path, exc: OSError) -> DreamflareError:
    if isinstance(exc, FileNotFoundError):
        return NotFound(f"{path}: no such file or folder", path=str(path))
    return InvalidArgument(f"{path}: cannot read: {exc.strerror or exc}", path=str(path))


def collect(
    paths: Sequence[str | os.PathLike[str]], include_hidden: bool = False
) -> tuple[list[Item], list[Outcome]]:
    """The files named, folders walked recursively (sorted, hidden names skipped unless
    ``include_hidden``), each file once; and an Outcome for each path that cannot be read."""
    items: list[Item] = []
    failures: list[Outcome] = []
    seen: set[Path] = set()
    for arg in paths:
        path = Path(arg)
        found = _walk(path, include_hidden, failures) if path.is_dir() else iter([path])
        for file in found:
            try:
                info = file.stat()
            except OSError as exc:
                failures.append(Outcome(file, error=_read_error(file, exc)))
                continue
            if not stat.S_ISREG(info.st_mode):
                error = InvalidArgument(f"{file}: not a regular file", path=str(file))
                failures.append(Outcome(file, error=error))
                continue
            key = file.resolve()
            if key not in seen:  # a file named twice (or inside a named folder) goes in once
                seen.add(key)
                items.append(Item(file, info.st_size))
    return items, failures


def _walk(root: Path, include_hidden: bool, failures: list[Outcome]) -> Iterator[Path]:
    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else root
        failures.append(Outcome(where, error=_read_error(where, exc)))

    for folder, dirs, files in os.walk(root, onerror=unreadable):
        if not include_hidden:
            dirs[:] = [name for name in dirs if not name.startswith(".")]
            files = [name for name in files if not name.startswith(".")]
        dirs.sort()
        for name in sorted(files):
            yield Path(folder, name)


# -- uploading -------------------------------------------------------------------------


class _CountingReader:
    """A binary file whose reads advance the progress bar (for large files)."""

    def __init__(self, raw: BinaryIO, progress: NullProgress) -> None:
        self._raw = raw
        self._progress = progress
        self.counted = 0
        self.name = raw.name

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size)
        self.counted += len(chunk)
        self._progress.advance(nbytes=len(chunk))
        return chunk


class BatchUploader:
    """Uploads files for one user with shared description and tags, counting as it goes.

    With ``content_id``, each file becomes a new version of that content instead (the CLI
    allows one file then). ``on_done`` is called (from worker threads) with each file's
    outcome as it finishes.
    """

    def __init__(
        self,
        store: Store,
        user_id: str,
        description: str | None = None,
        tags: str | None = None,
        content_id: str | None = None,
        progress: NullProgress | None = None,
        on_done: Callable[[Outcome], None] | None = None,
        jobs: int = DEFAULT_JOBS,
    ) -> None:
        self.store = store
        self.user_id = user_id
        self.description = description
        self.tags = tags
        self.content_id = content_id
        self.progress = progress or NullProgress()
        self.on_done = on_done
        self.jobs = max(1, jobs)
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def run(self, items: Sequence[Item]) -> list[Outcome]:
        """Upload every item; outcomes come back in the order of ``items``.

        New contents from small files go through ``Store.upload_many`` a chunk at a time
        (their flushes shared, one transaction per chunk, the bar moving per chunk);
        large files and new versions go one by one, large ones streamed with live progress.
        """
        outcomes: list[Outcome | None] = [None] * len(items)
        if self.content_id is None and len(items) > 1:
            small = [i for i, item in enumerate(items) if item.size <= SMALL_FILE]
            for start in range(0, len(small), CHUNK_FILES):
                chunk = small[start : start + CHUNK_FILES]
                for index, outcome in zip(
                    chunk, self._many([items[i] for i in chunk]), strict=True
                ):
                    outcomes[index] = outcome
        rest = [i for i, outcome in enumerate(outcomes) if outcome is None]
        if self.jobs == 1 or len(rest) <= 1:
            for index in rest:
                outcomes[index] = self.upload(items[index])
            return [outcome for outcome in outcomes if outcome is not None]
        pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="dreamflare-upload")
        try:
            futures = {index: pool.submit(self.upload, items[index]) for index in rest}
            for index, future in futures.items():
                outcomes[index] = future.result()
        except BaseException:
            # Ctrl-C: files in flight finish (each upload is atomic), the rest never start.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
        return [outcome for outcome in outcomes if outcome is not None]

    def _many(self, items: Sequence[Item]) -> list[Outcome]:
        """One chunk of small new files through the batch path. A file it refuses goes
        through ``upload`` once more, for the error this command words its own way."""
        done = self.store._upload_many(
            [item.path for item in items], self.user_id, self.description, self.tags, self.jobs
        )
        outcomes = []
        made = stored = 0
        for item, (result, new) in zip(items, done, strict=True):
            if not isinstance(result, Content):
                outcomes.append(self.upload(item))
                continue
            outcome = Outcome(item.path, result)
            with self._lock:
                outcome.deduplicated = not new or result.hash in self._seen
                self._seen.add(result.hash)
            outcomes.append(outcome)
            made += 1
            stored += item.size
            if self.on_done is not None:
                self.on_done(outcome)
        self.progress.advance(files=made, nbytes=stored)
        return outcomes

    def upload(self, item: Item) -> Outcome:
        """Upload one file; errors are returned in the outcome, never raised."""
        outcome = Outcome(item.path)
        counted = 0
        try:
            # A new version keeps the content's filename, as Store.upload does by default.
            name = _filename(item.path) if self.content_id is None else None
            if item.size <= SMALL_FILE:
                data = item.path.read_bytes()
                outcome.deduplicated = self._claim(hash_bytes(data))
                outcome.content = self._store(data, name)
            elif self._claim(hash_file(item.path)):
                outcome.deduplicated = True  # the store hashes it again, and writes nothing
                outcome.content = self._store(item.path, name)
            else:
                # New large bytes: one streaming pass that moves the bar as it goes.
                with open(item.path, "rb") as raw:
                    reader = _CountingReader(raw, self.progress)
                    try:
                        outcome.content = self._store(reader, name)
                    finally:
                        counted = reader.counted
        except DreamflareError as exc:
            outcome.error = exc
        except OSError as exc:
            outcome.error = _read_error(item.path, exc)
        self.progress.advance(files=1, nbytes=max(item.size - counted, 0))
        if self.on_done is not None:
            self.on_done(outcome)
        return outcome

    def _store(self, source: Any, name: str | None) -> Content:
        return self.store.upload(
            file=source,
            user_id=self.user_id,
            description=self.description,
            tags=self.tags,
            content_id=self.content_id,
            filename=name,
        )

    def _claim(self, digest: str) -> bool:
        """True if these bytes are already stored, or earlier in this batch."""
        with self._lock:
            known = digest in self._seen or self.store.blobs.exists(digest)
            self._seen.add(digest)
        return known


def _filename(path: Path) -> str | None:
    """The file's name if the store accepts it as a filename, else None (the store's default)."""
    try:
        return validate.filename(path.name)
    except InvalidArgument:
        return None


def upload_batch(uploader: BatchUploader, items: Sequence[Item]) -> tuple[list[Outcome], float]:
    """Run a batch and time it."""
    start = time.perf_counter()
    outcomes = uploader.run(items)
    return outcomes, time.perf_counter() - start
