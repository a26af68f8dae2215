"""Group commit: the write transactions of several threads sharing one commit.

A thread that writes while another is writing queues its work (a function to run inside
a write transaction) instead of waiting for the write lock and then committing alone.
The thread that finds no group at work leads one: it runs every queued function in one
transaction, each in a savepoint of its own (one that fails undoes only its own writes
and gets its own error), commits once, and wakes each thread with its result or error.
While it commits, the next threads queue; the first of them leads the next group.

A thread returns only once the commit that holds its writes has succeeded, so an
acknowledged write is on disk exactly as with a transaction of its own; the group saves
the commits (each a flush of the log, and the CPU of writing its pages) of all but one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .db import Database

T = TypeVar("T")

# The most functions one transaction runs: a group's first writer waits for the others.
MAX_GROUP = 32


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
            if self._pid != os.getpid():
                # A forked child: the parent's group and its threads are not here.
                self._queue, self._leading, self._pid = [], False, os.getpid()
            self._queue.append(item)
            lead = not self._leading
            self._leading = True
        if not lead:
            try:
                item.woken.wait()
            except BaseException:  # an interrupt (KeyboardInterrupt) while it waited
                self._abandon(item)
                raise
        if not item.finished:
            self._lead()
        result: T = item.outcome()
        return result

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
        with self._mutex:
            group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
        try:
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
