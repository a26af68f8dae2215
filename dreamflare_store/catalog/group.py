"""Group commit: the write transactions of several threads sharing one commit.

A thread that writes while another is writing queues its work (a function to run inside
a write transaction) instead of waiting for the write lock and then committing alone.
The thread that finds no group at work leads one: it runs every queued function in one
transaction, each in a savepoint of its own (one that fails undoes only its own writes
and gets its own error), commits once, and wakes each thread with its result or error.
While it commits, the next threads queue; the first of them leads the next group.
Before it starts, a group waits up to ``LINGER`` for threads that said they are preparing
a write (``coming``): with two threads taking turns, groups would otherwise never form.

A thread returns only once the commit that holds its writes has succeeded, so an
acknowledged write is on disk exactly as with a transaction of its own; the group saves
the commits (each a flush of the log, and the CPU of writing its pages) of all but one.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from .db import Database

T = TypeVar("T")

# The most functions one transaction runs: a group's first writer waits for the others.
MAX_GROUP = 32
# How long a group waits for threads still preparing an upload: a small file's reading
# and hashing take well under this; a large file's go on, and the group commits without it.
LINGER = 0.002


class _Pending:
    """One thread's queued function, and what became of it."""

    __slots__ = ("body", "woken", "finished", "lead", "result", "error")

    def __init__(self, body: Callable[[], Any]) -> None:
        self.body = body
        self.woken = threading.Event()
        self.finished = False
        self.lead = False  # woken to lead the next group, not because it is done
        self.result: Any = None
        self.error: BaseException | None = None

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class _Lost(Exception):
    """The transaction itself is gone (SQLite rolls it back on a full disk)."""


class GroupCommit:
    """Runs functions inside write transactions of ``db``, several threads' to a commit."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._mutex = threading.Lock()
        self._arrived = threading.Condition(self._mutex)
        self._preparing = 0
        self._local = threading.local()  # whether this thread said it is coming
        self._queue: list[_Pending] = []
        self._leading = False
        self._pid = os.getpid()

    def run(self, body: Callable[[], T]) -> T:
        """Run ``body()`` inside a write transaction and return what it returned, once
        that transaction is committed; raise what it raised (its writes undone)."""
        db = self._db
        if db.depth():  # inside this thread's own transaction: run it there, as a savepoint
            with db.atomic():
                return body()
        item = _Pending(body)
        with self._mutex:
            self._after_fork()
            if getattr(self._local, "coming", False):  # it said so: now it is here
                self._local.coming = False
                self._preparing -= 1
            self._queue.append(item)
            lead = not self._leading
            self._leading = True
            self._arrived.notify_all()
        if not lead:
            try:
                item.woken.wait()
            except BaseException:  # an interrupt (KeyboardInterrupt) while it waited
                self._abandon(item)
                raise
        if not item.finished:
            try:
                self._lead()
            except BaseException:  # interrupted before it took its group
                self._abandon(item)
                raise
        result: T = item.outcome()
        return result

    @contextmanager
    def coming(self) -> Iterator[None]:
        """Say that this thread is preparing a write it will ``run`` next (reading and
        hashing an upload's bytes): a group about to commit waits a little for it. The
        ``run`` goes inside this block; it counts as arrived when it queues."""
        with self._mutex:
            self._after_fork()
            self._preparing += 1
            self._local.coming = True
        try:
            yield
        finally:
            with self._mutex:
                if self._local.coming:  # it gave up before ``run``: stop waiting for it
                    self._local.coming = False
                    self._preparing -= 1
                    self._arrived.notify_all()

    def _after_fork(self) -> None:
        """With the mutex held: in a forked child, forget the parent's threads."""
        if self._pid != os.getpid():
            self._queue, self._leading, self._preparing = [], False, 0
            self._pid = os.getpid()

    def _abandon(self, item: _Pending) -> None:
        """Take an interrupted thread's function out of the queue; if it was to lead the
        next group, hand that to the thread behind it, so no thread waits forever."""
        with self._mutex:
            if item.finished or item not in self._queue:
                return  # its group ran (or is running): what it wrote stays
            self._queue.remove(item)
            following = self._designate() if item.lead else None
        if following is not None:
            following.woken.set()

    def _designate(self) -> _Pending | None:
        """With the mutex held: mark the queue's first thread to lead the next group (or
        note that no group is at work); the caller wakes it."""
        following = self._queue[0] if self._queue else None
        if following is None:
            self._leading = False
        else:
            following.lead = True
        return following

    def _lead(self) -> None:
        """Run a group (the queue's first ``MAX_GROUP``, this thread's among them), then
        wake its threads, and the thread that leads the next group if any are queued."""
        group: list[_Pending] = []
        try:
            with self._mutex:
                # Threads still preparing an upload will queue within a moment: waiting
                # for them (a little) lets them share this commit instead of the next.
                deadline = time.monotonic() + LINGER
                while self._preparing > 0 and len(self._queue) < MAX_GROUP:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._arrived.wait(left)
                group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
            self._commit(group)
        finally:
            with self._mutex:
                for item in group:
                    item.finished = True
                following = self._designate()
            for item in group:
                item.woken.set()
            if following is not None:
                following.woken.set()

    def _commit(self, group: list[_Pending]) -> None:
        db = self._db
        try:
            with db.atomic():
                if len(group) == 1:
                    # Alone: its error rolls the whole transaction back, no savepoint needed.
                    group[0].result = group[0].body()
                    return
                for item in group:
                    try:
                        with db.atomic():
                            item.result = item.body()
                    except Exception as exc:  # noqa: BLE001 (it is that thread's to raise)
                        item.error = exc
                        if not db.conn.in_transaction:
                            raise _Lost from exc
        except _Lost as lost:
            cause = lost.__cause__
            assert cause is not None
            for item in group:
                if item.error is None:
                    item.error, item.result = cause, None
        except BaseException as exc:  # noqa: BLE001 (BEGIN or COMMIT failed: no writes stayed)
            for item in group:
                if item.error is None:
                    item.error, item.result = exc, None
