"""A consistent copy of a live store in a new folder: ``Store.backup`` and ``Store.restore``.

The catalog is copied by SQLite's online backup (one consistent snapshot while writers go
on), then every blob the copy references is copied and checked against its hash, and the
copy is verified. The copy is itself a store, with the same replica id: restoring is
copying a backup back into a new folder the same way. Run one of the two, not both, as
the same replica against a remote.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from .blobs.room import full_disk
from .errors import Conflict, IntegrityError, InvalidArgument
from .records.outcomes import BackupReport, Problem
from .replica import CATALOG_FILE, Replica


def backup(source: Replica, dest: Path, randbits: Callable[[int], int]) -> BackupReport:
    """Copy the store ``source`` into the new (or empty) folder ``dest``; return what was
    copied and every problem found (a blob missing or corrupt in ``source`` is reported,
    not copied). Refuses (Conflict) a folder that holds anything."""
    dest = dest.expanduser().absolute()
    if dest == source.path.absolute() or source.path.absolute() in dest.parents:
        raise InvalidArgument(f"the backup folder {dest} cannot be inside the store")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise Conflict(f"{dest} is not an empty folder: back up into a new one", path=str(dest))
    dest.mkdir(parents=True, exist_ok=True)
    source.counters.flush()
    source.catalog.db.backup_to(dest / CATALOG_FILE)
    copy = Replica(dest, source.wall, randbits)
    try:
        problems: list[Problem] = []
        with copy.catalog.snapshot():
            live = sorted(copy.catalog.reads.live_blobs())
            remote_only = copy.catalog.local.remote_blob_digests()
        count = size = 0
        for digest in live:
            copied = _copy_blob(source, copy, digest)
            if isinstance(copied, int):
                count, size = count + 1, size + copied
            elif digest not in remote_only:  # (a lazily pulled blob is fetched there too)
                problems.append(copied)
        problems.extend(copy.verify())
        with copy.catalog.atomic():
            copy.note_blobs(live)
    finally:
        copy.close()
    return BackupReport(str(dest), count, size, tuple(problems))


def _copy_blob(source: Replica, copy: Replica, digest: str) -> int | Problem:
    """Copy one blob, checked against its hash; return its size, or the problem. A blob
    kept as a row came with the catalog (and ``verify`` checks it there)."""
    size = copy.blobs.inline.size(digest)
    if size is not None:
        return size
    temp = copy.blobs.download_path()
    try:
        try:
            with full_disk(copy.path):
                shutil.copyfile(source.blobs.path(digest), temp)
        except FileNotFoundError:
            return Problem("missing_blob", digest, f"blob {digest} is missing: not copied")
        size = temp.stat().st_size
        copy.blobs.adopt(temp, digest)
    except IntegrityError:
        return Problem("corrupt_blob", digest, f"blob {digest} is corrupt: not copied")
    finally:
        temp.unlink(missing_ok=True)
    return size
