"""Room on the store's disk: full-disk errors, the check before a write, and the reserve.

A full disk is met in three ways. Every ``OSError`` that says so (ENOSPC, EDQUOT) becomes
``StorageFull`` here, naming the store's folder and never the file being uploaded.
Bytes of a known size are refused before they are written when the disk has not room for
them and a margin (``check``). And the store keeps a small preallocated file, the
reserve, which it gives back to the disk when the disk is full, so that a delete and a gc
(which need a little room to commit) can still run and free space; it is taken again once
there is room (``Reserve``).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ..errors import StorageFull

# ENOSPC: the disk is full; EDQUOT: the user's file system quota is.
FULL_ERRNOS = frozenset(
    code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None
)
# Room kept free beyond an upload's own bytes: the catalog's pages and log for it.
MARGIN = 1 << 20
# The reserve's size: room for the catalog to commit a delete and a gc.
RESERVE_SIZE = 1 << 20
RESERVE_FILE = "reserve"

_F = TypeVar("_F", bound=Callable[..., Any])


def full_error(root: Path) -> StorageFull:
    """Return the StorageFull error of the store at ``root``."""
    return StorageFull(
        f"the disk of the store at {root} is full: delete contents and run gc, or make"
        " room on the disk",
        path=str(root),
    )


def is_full(exc: BaseException) -> bool:
    """Return whether ``exc`` is an OSError that says the disk or the quota is full."""
    return isinstance(exc, OSError) and exc.errno in FULL_ERRNOS


def translated(exc: BaseException, root: Path) -> BaseException:
    """Return StorageFull (caused by ``exc``) for a full-disk OSError, else ``exc``."""
    if not is_full(exc):
        return exc
    error = full_error(root)
    error.__cause__ = exc
    return error


@contextmanager
def full_disk(root: Path) -> Iterator[None]:
    """Raise StorageFull for a full-disk OSError: the blobs' one boundary for OSError."""
    try:
        yield
    except OSError as exc:
        if is_full(exc):
            raise full_error(root) from exc
        raise


def guarded(method: _F) -> _F:
    """Decorate a method of an object with a ``root`` so its full-disk errors are ours."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with full_disk(self.root):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def free_bytes(path: Path) -> int:
    """Return the bytes an unprivileged writer may still use on the disk of ``path``.

    A module function so tests can make any disk look full (the same seam everywhere).
    """
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


class Reserve:
    """A preallocated file the store gives back to a full disk, and takes again later.

    Its size is ``RESERVE_SIZE``; a crash while taking or giving it back leaves a file
    that ``take`` completes or ``release`` removes (both are idempotent).
    """

    def __init__(self, root: Path, size: int = RESERVE_SIZE) -> None:
        self.root = root
        self.path = root / RESERVE_FILE
        self.size = size

    def held(self) -> bool:
        """Return whether the reserve is in place, whole."""
        try:
            return self.path.stat().st_size >= self.size
        except FileNotFoundError:
            return False

    def take(self) -> bool:
        """Take the reserve if it is not held and the disk has room for it and a margin;
        return whether it is held now. Never raises for a full disk."""
        if self.held():
            return True
        try:
            if free_bytes(self.root) < self.size + MARGIN:
                return False
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                _allocate(fd, self.size)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            if not is_full(exc):
                raise
            self.release()
            return False
        return True

    def release(self) -> bool:
        """Give the reserve back to the disk; return whether there was one to give."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        with contextlib.suppress(OSError):  # the unlink stands; its durability can wait
            fd = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return True


def _allocate(fd: int, size: int) -> None:
    """Give a file ``size`` bytes of real disk space (not a sparse hole)."""
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                raise
    os.lseek(fd, 0, os.SEEK_SET)
    block = b"\0" * 65536
    for _ in range(0, size, len(block)):
        os.write(fd, block)


def check(root: Path, size: int, reserve_held: bool) -> None:
    """Refuse (StorageFull) to write ``size`` bytes the disk has no room for, keeping a
    margin, and the reserve's room when it was given back, so it can be taken again."""
    need = size + MARGIN + (0 if reserve_held else RESERVE_SIZE)
    if free_bytes(root) < need:
        raise full_error(root)
