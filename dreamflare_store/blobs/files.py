"""File operations the blob store's writers share: durable names, folders, whole writes,
and kernel copies in pieces (no policy, no layout: ``local`` and ``batch`` decide those)."""

from __future__ import annotations

import contextlib
import errno
import os

# Larger files are copied in pieces of this size; after each one the kernel is asked to
# start writing it out, so the disk works while the next piece is read and hashed and the
# final fsync has little left to wait for (a plain write-then-fsync idles the disk first).
COPY_PIECE = 8 << 20


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or creation inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_folder(path: str) -> None:
    """Make a folder (a blob's objects/ab/cd/) in one call when its parent exists, as in a
    store whose objects/ab/ were made with it; else with its parents, as ``os.makedirs``."""
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)


def discard(temp: str | os.PathLike[str]) -> None:
    """Remove a temp file that will not become a blob, if it is still there."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write all of ``data`` to ``fd``: ``os.write`` may write less than it was given."""
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view) :]


# copy_file_range errors that mean "not here" (old kernels, file systems, devices).
NO_KERNEL_COPY = {
    getattr(errno, name)
    for name in ("EXDEV", "ENOSYS", "EINVAL", "EOPNOTSUPP", "ENOTSUP", "EBADF", "EPERM")
    if hasattr(errno, name)
}


def copy_piece(source: int, target: int, offset: int) -> int:
    """Copy up to COPY_PIECE bytes at ``offset`` from one file to the other in the kernel;
    return the count, short only at the end of the source, so pieces stay map-aligned."""
    done = 0
    while done < COPY_PIECE:
        at = offset + done
        count = os.copy_file_range(source, target, COPY_PIECE - done, offset_src=at, offset_dst=at)
        if not count:
            break
        done += count
    return done


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Have the kernel start writing a range of a file out now, without waiting for it.

    On Linux, POSIX_FADV_DONTNEED starts writeback of the range's dirty pages (and drops
    the clean ones: nobody reads a temp file back). Elsewhere the final fsync does it all.
    """
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
