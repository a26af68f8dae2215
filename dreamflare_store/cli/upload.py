"""The batch behind ``dreamflare upload``: walk folders, upload the files, count.

``collect`` lists the files (folders walked recursively) and what cannot be read;
``upload_files`` hands the files to ``Store.upload_batch``, which uploads them in parallel
and says of each whether its bytes were new to the store; ``summarize`` adds up the
outcomes for the summary line and ``--json``. A new version of one content goes through
``Store.upload`` instead (``upload_version``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DreamflareError, InvalidArgument, NotFound
from ..records import Content
from .format import human_size

if TYPE_CHECKING:
    from ..progress import Progress
    from ..store import Store

DEFAULT_JOBS = 8  # files uploaded at once


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


def upload_files(
    store: Store,
    items: Sequence[Item],
    user_id: str,
    description: str | None,
    tags: str | None,
    jobs: int,
    progress: Progress,
) -> list[Outcome]:
    """Upload each item as a new content; returns the outcomes in the order of ``items``.

    ``Store.upload_batch`` does the work and tells new bytes from stored ones. Two copies
    of new bytes in one batch count once as new: the first listed is new, the other
    deduplicated (the store may have written either, as its threads raced).
    """
    progress.start("Uploading", len(items), sum(item.size for item in items))
    try:
        results = store.upload_batch(
            [item.path for item in items], user_id, description, tags,
            jobs=jobs, progress=progress,
        )  # fmt: skip
    finally:
        progress.finish()
    new = {result.content.hash for result in results if result.content and result.new_bytes}
    seen: set[str] = set()
    outcomes = []
    for item, result in zip(items, results, strict=True):
        if result.content is None:
            outcomes.append(Outcome(item.path, error=result.error))
            continue
        digest = result.content.hash
        stored = digest not in new or digest in seen
        outcomes.append(Outcome(item.path, result.content, deduplicated=stored))
        seen.add(digest)
    return outcomes


def upload_version(
    store: Store,
    item: Item,
    user_id: str,
    description: str | None,
    tags: str | None,
    content_id: str,
) -> Outcome:
    """Upload one file as a new version of ``content_id``; returns its outcome, whose
    ``deduplicated`` stays False (``Store.upload`` does not say whether the bytes were
    new). Raises the error that stopped it, as a single file's error is the command's."""
    try:
        content = store.upload(
            file=item.path, user_id=user_id, description=description, tags=tags,
            content_id=content_id,
        )  # fmt: skip
    except OSError as exc:
        raise _read_error(item.path, exc) from exc
    return Outcome(item.path, content)
