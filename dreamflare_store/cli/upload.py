"""The batch behind ``dreamflare upload``: walk folders, upload the files, count.

``collect`` lists the files (folders walked recursively), each with the path it gets in the
store (the folder's own name, then the path inside it, as ``cp -r`` lays a folder out), and
what cannot be read; ``upload_files`` hands the files to ``Store.upload_batch``, which
uploads them in parallel and says of each whether it made a new content, a new version of
the content at its path, or nothing (unchanged); ``summarize`` adds up the outcomes for the
summary line and ``--json``. A new version of one content goes through
``Store.upload`` instead (``upload_version``).
"""

from __future__ import annotations

import operator
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from stat import S_ISREG
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import DreamflareError, InvalidArgument, NotFound
from ..records import Content
from .format import human_size

if TYPE_CHECKING:
    from ..progress import Progress
    from ..store import Store

DEFAULT_JOBS = 8  # files uploaded at once


class Item(NamedTuple):
    """One file to upload (as listed: its ``os.DirEntry`` from a folder, else the path
    given), its size when listed, and its path in the store. (A tuple: a folder of
    thousands makes one each, and a frozen dataclass costs several times more.)"""

    path: str | os.DirEntry[str]
    size: int
    store_path: str | None = None


class Outcome(NamedTuple):
    """What became of one file: its content, or the error that stopped it. An unchanged
    file may come without its content (``upload_files`` with ``records=False``); its
    ``size`` is then the size listed."""

    path: str
    content: Content | None = None
    deduplicated: bool = False
    error: DreamflareError | None = None
    status: str = "created"  # or "versioned", "unchanged" (see UploadResult)
    size: int = 0


@dataclass(slots=True)
class Summary:
    """Counts over a whole batch."""

    uploaded: int = 0
    new: int = 0
    versioned: int = 0
    unchanged: int = 0
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
            "versioned": self.versioned,
            "unchanged": self.unchanged,
            "deduplicated": self.deduplicated,
            "bytesStored": self.bytes_stored,
            "failed": self.failed,
        }

    def text(self) -> str:
        """One line for people: ``Uploaded 12 files: 9 new, 1 new version, 2 unchanged
        (1 deduplicated): ...``. A deduplicated file is new here but its bytes were not."""
        noun = "file" if self.uploaded == 1 else "files"
        versions = "version" if self.versioned == 1 else "versions"
        line = (
            f"Uploaded {self.uploaded:,} {noun}: {self.new:,} new, {self.versioned:,} new"
            f" {versions}, {self.unchanged:,} unchanged ({self.deduplicated:,} deduplicated):"
            f" {human_size(self.bytes_stored)} stored of {human_size(self.bytes_total)},"
            f" in {self.seconds:.1f} s."
        )
        if self.failed:
            line += f" {self.failed:,} failed (see above)."
        return line


def summarize(outcomes: Sequence[Outcome], seconds: float) -> Summary:
    """Add up a batch's outcomes (in the order the files were listed)."""
    summary = Summary(seconds=seconds)
    for outcome in outcomes:
        if outcome.status == "unchanged":
            summary.uploaded += 1
            summary.unchanged += 1
            if outcome.content is not None:
                summary.items.append(outcome.content)
            summary.bytes_total += outcome.size
            continue
        if outcome.content is None:
            summary.failed += 1
            summary.errors.append(outcome)
            continue
        summary.uploaded += 1
        summary.items.append(outcome.content)
        summary.bytes_total += outcome.content.size
        if outcome.status == "versioned":
            summary.versioned += 1
        else:
            summary.new += 1
        if outcome.deduplicated:
            summary.deduplicated += 1
        else:
            summary.bytes_stored += outcome.content.size
    return summary


# -- listing ---------------------------------------------------------------------------


def _read_error(path: str, exc: OSError) -> DreamflareError:
    if isinstance(exc, FileNotFoundError):
        return NotFound(f"{path}: no such file or folder", path=str(path))
    return InvalidArgument(f"{path}: cannot read: {exc.strerror or exc}", path=str(path))


def collect(
    paths: Sequence[str | os.PathLike[str]],
    include_hidden: bool = False,
    prefix: str | None = None,
) -> tuple[list[Item], list[Outcome]]:
    """The files named, folders walked recursively (sorted, hidden names skipped unless
    ``include_hidden``), each file once; and an Outcome for each path that cannot be read.

    Each file's ``store_path`` is laid out as ``cp -r ARG dest/`` would: a folder's own
    name, then the path inside it; a file's name. ``prefix`` replaces that first part
    (``""``: none). A re-run over thousands of unchanged files costs little more than this
    listing, so a file found in a folder is its ``os.DirEntry``, which keeps the one stat
    made here for the store's stat cache to compare (no second stat, no ``Path`` per
    file, no ``resolve``: a file is known by its device and inode).
    """
    items: list[Item] = []
    failures: list[Outcome] = []
    seen: set[tuple[int, int]] = set()
    for arg in paths:
        path = os.fspath(arg)
        if not os.path.isdir(path):
            _add(items, failures, seen, path, prefix.strip("/") if prefix else "", None)
            continue
        top = os.path.basename(os.path.normpath(os.path.abspath(path)))
        first = top if prefix is None else prefix.strip("/")
        for files, inside in _walk(path, "", include_hidden, failures):
            base = f"{first}/{inside}" if first else inside
            for entry in files:
                try:
                    info = entry.stat()
                except OSError:
                    _add(items, failures, seen, entry, base, entry.name)  # says why
                    continue
                key = (info.st_dev, info.st_ino)
                if key in seen or not S_ISREG(info.st_mode):
                    _add(items, failures, seen, entry, base, entry.name)  # says why
                    continue
                # The common case, inline: a folder of thousands makes this loop the cost.
                seen.add(key)
                items.append(Item(entry, info.st_size, base + entry.name))
    return items, failures


def _add(
    items: list[Item],
    failures: list[Outcome],
    seen: set[tuple[int, int]],
    file: str | os.DirEntry[str],
    base: str,
    name: str | None,
) -> None:
    """Add a file found to ``items`` at ``base + name`` in the store (a file named alone:
    its base name, under ``base/``), unless it is there already; or say why it cannot be."""
    try:
        info = file.stat() if isinstance(file, os.DirEntry) else os.stat(file)
    except OSError as exc:
        shown = os.fspath(file)
        failures.append(Outcome(shown, error=_read_error(shown, exc)))
        return
    if not stat.S_ISREG(info.st_mode):
        shown = os.fspath(file)
        failures.append(
            Outcome(shown, error=InvalidArgument(f"{shown}: not a regular file", path=shown))
        )
        return
    key = (info.st_dev, info.st_ino)
    if key in seen:  # a file named twice (or inside a named folder) goes in once
        return
    seen.add(key)
    if name is None:
        name = os.path.basename(os.fspath(file))
        base = f"{base}/" if base else ""
    items.append(Item(file, info.st_size, base + name))


def _walk(
    folder: str, inside: str, include_hidden: bool, failures: list[Outcome]
) -> Iterator[tuple[list[os.DirEntry[str]], str]]:
    """The files of each folder under ``folder`` (sorted, a folder's files before its
    sub-folders, as ``os.walk``), with the folder's path inside the top folder (``""`` or
    ending in ``/``). Links to folders are not followed."""
    try:
        with os.scandir(folder) as listing:
            entries = [e for e in listing if include_hidden or not e.name.startswith(".")]
    except OSError as exc:
        where = os.fsdecode(exc.filename) if exc.filename else folder
        failures.append(Outcome(where, error=_read_error(where, exc)))
        return
    folders: list[os.DirEntry[str]] = []
    files: list[os.DirEntry[str]] = []
    for entry in entries:
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        (folders if is_dir else files).append(entry)
    files.sort(key=_by_name)
    yield files, inside
    for entry in sorted(folders, key=_by_name):
        if not entry.is_symlink():
            yield from _walk(entry.path, f"{inside}{entry.name}/", include_hidden, failures)


_by_name = operator.attrgetter("name")


# -- uploading -------------------------------------------------------------------------


def upload_files(
    store: Store,
    items: Sequence[Item],
    user_id: str,
    description: str | None,
    tags: str | None,
    jobs: int,
    progress: Progress,
    new: bool = False,
    records: bool = True,
) -> list[Outcome]:
    """Upload each item at its path (see ``Store.upload_batch``); returns the outcomes in
    the order of ``items``. With ``new``, every item becomes a new content; without
    ``records``, an unchanged item's outcome has no content (only the summary's counts
    need it, and a re-run over thousands of files then builds nothing for them).

    ``Store.upload_batch`` does the work and tells new bytes from stored ones. Two copies
    of new bytes in one batch count once as new: the first listed is new, the other
    deduplicated (the store may have written either, as its threads raced).
    """
    files, sizes, paths = zip(*items, strict=True) if items else ((), (), ())
    progress.start("Uploading", len(items), sum(sizes))
    try:
        results = store.upload_batch(
            files, user_id, description, tags,
            jobs=jobs, progress=progress, paths=paths, new=new, records=records,
        )  # fmt: skip
    finally:
        progress.finish()
    fresh = {result.content.hash for result in results if result.content and result.new_bytes}
    seen: set[str] = set()
    outcomes = []
    make = tuple.__new__  # an Outcome without its keyword-taking __new__: one per file
    for item, result in zip(items, results, strict=True):
        if result.status == "unchanged":
            unchanged = (result.source, result.content, False, None, "unchanged", item.size)
            outcomes.append(make(Outcome, unchanged))
            continue
        if result.content is None:
            outcomes.append(Outcome(os.fspath(item.path), error=result.error))
            continue
        digest = result.content.hash
        stored = digest not in fresh or digest in seen
        outcomes.append(Outcome(os.fspath(item.path), result.content, stored, status=result.status))
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
        raise _read_error(os.fspath(item.path), exc) from exc
    return Outcome(os.fspath(item.path), content)
