"""Group commit: threads' write transactions sharing a commit, each with its own outcome.

Real SQLite files throughout. A group forms when writers queue behind one that is still
writing: the first test holds the leader inside its function until the others queued.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dreamflare_store import Store
from dreamflare_store.catalog.db import Database
from dreamflare_store.catalog.group import GroupCommit
from dreamflare_store.errors import InvalidArgument, NotFound


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(tmp_path / "catalog.db")
    database.conn.execute("CREATE TABLE marks (name TEXT PRIMARY KEY, thread INTEGER)")
    return database


def _committed(db: Database) -> set[str]:
    """The marks another connection sees: only what was committed."""
    other = sqlite3.connect(db.path)
    try:
        return {name for (name,) in other.execute("SELECT name FROM marks")}
    finally:
        other.close()


def _mark(db: Database, name: str) -> Callable[[], str]:
    def body() -> str:
        db.conn.execute("INSERT INTO marks VALUES (?, ?)", (name, threading.get_ident()))
        return name

    return body


def _queued(group: GroupCommit, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(group._queue) < count:
        assert time.monotonic() < deadline, "the writers never queued"
        time.sleep(0.001)


def _leading(group: GroupCommit) -> None:
    deadline = time.monotonic() + 10
    while not group._leading:
        assert time.monotonic() < deadline, "no group started"
        time.sleep(0.001)


def _holding(db: Database, hold: threading.Event) -> Callable[[], str]:
    """A writer that marks "leader", then keeps its group open until ``hold`` is set, so
    that others queue behind it."""

    def body() -> str:
        _mark(db, "leader")()
        hold.wait(10)
        return "leader"

    return body


def test_queued_writers_share_the_leaders_transaction_and_keep_their_outcomes(
    db: Database,
) -> None:
    group = GroupCommit(db)
    hold = threading.Event()

    def refused() -> str:
        _mark(db, "refused")()
        raise InvalidArgument("not this one")

    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(group.run, _holding(db, hold))
        _leading(group)
        others = [
            pool.submit(group.run, _mark(db, "a")),
            pool.submit(group.run, refused),
            pool.submit(group.run, _mark(db, "b")),
        ]
        _queued(group, 3)
        assert _committed(db) == set()  # nothing is acknowledged before the commit
        hold.set()
        assert first.result(10) == "leader"
        assert others[0].result(10) == "a" and others[2].result(10) == "b"
        with pytest.raises(InvalidArgument, match="not this one"):
            others[1].result(10)
    # The refused writer's insert was undone; the others' were committed. The three that
    # queued while the leader wrote ran as the next group: on one thread, in one
    # transaction.
    assert _committed(db) == {"leader", "a", "b"}
    threads = {name: thread for name, thread in db.conn.execute("SELECT * FROM marks")}
    assert threads["a"] == threads["b"]
    assert not group._leading and group._queue == []


def test_a_transaction_lost_in_a_group_fails_every_writer_in_it(db: Database) -> None:
    """SQLite rolls a whole transaction back on a full disk: then no writer of the group
    may be told its write is done."""
    group = GroupCommit(db)
    hold = threading.Event()

    def loses_it() -> str:
        db.conn.execute("ROLLBACK")  # what SQLite does itself on SQLITE_FULL
        raise OSError("no room")

    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(group.run, _holding(db, hold))
        _leading(group)
        # These three queue behind the leader's group, and form the next one.
        before = pool.submit(group.run, _mark(db, "before"))
        _queued(group, 1)
        lost = pool.submit(group.run, loses_it)
        _queued(group, 2)
        after = pool.submit(group.run, _mark(db, "after"))
        _queued(group, 3)
        hold.set()
        assert first.result(10) == "leader"
        for future in (before, lost, after):
            with pytest.raises(OSError, match="no room"):
                future.result(10)
    assert _committed(db) == {"leader"}
    # The next writer starts a group of its own, as usual.
    assert group.run(_mark(db, "next")) == "next"
    assert _committed(db) == {"leader", "next"}


def test_a_write_inside_a_transaction_of_the_same_thread_joins_it(db: Database) -> None:
    group = GroupCommit(db)
    with pytest.raises(RuntimeError), db.atomic():
        assert group.run(_mark(db, "inner")) == "inner"
        raise RuntimeError("undo the outer transaction")
    assert _committed(db) == set()
    with db.atomic():
        group.run(_mark(db, "inner"))
    assert _committed(db) == {"inner"}


def test_an_error_alone_rolls_back_and_reaches_its_caller(db: Database) -> None:
    group = GroupCommit(db)

    def fails() -> Any:
        _mark(db, "x")()
        raise NotFound("gone")

    with pytest.raises(NotFound):
        group.run(fails)
    assert _committed(db) == set()
    assert not db.conn.in_transaction


def test_threads_uploading_at_once_are_all_durable_and_bad_ones_change_nothing(
    tmp_path: Path,
) -> None:
    """Eight threads upload at once (their commits grouped); every third one tries to add
    a version to another user's content and is refused without a trace."""
    with Store(tmp_path / "store") as store:
        theirs = store.upload(b"someone else's", "owner")

        def work(i: int) -> str | None:
            if i % 3 == 0:
                with pytest.raises(NotFound):  # a stranger is not told it exists
                    store.upload(
                        f"intruder {i}".encode(), f"t{i % 4}", content_id=theirs.content_id
                    )
                return None
            return store.upload(f"upload {i}".encode() * 50, f"t{i % 4}").content_id

        with ThreadPoolExecutor(8) as pool:
            made = [content_id for content_id in pool.map(work, range(120)) if content_id]
        assert len(set(made)) == 80
        assert store.get_content_versions(theirs.content_id, "owner")[-1].version == 1
        assert sum(store.list_content(f"t{i}").total for i in range(4)) == 80
        assert store.verify() == []
    with Store(tmp_path / "store") as store:  # reopened: everything acknowledged is there
        for content_id in made:
            user = store.replica.catalog.reads.content_row(content_id)["owner"]
            assert store.read_content(content_id, user).startswith(b"upload ")


def test_a_writer_interrupted_while_it_waits_leaves_the_queue_moving(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread told to lead the next group but interrupted first (KeyboardInterrupt in
    the main thread) hands the lead on: the writer behind it still gets its commit."""
    from dreamflare_store.catalog import group as group_module

    class Interrupted(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            super().wait(timeout)
            raise KeyboardInterrupt

    class Pending(group_module._Pending):
        def __init__(self, body: Callable[[], Any]) -> None:
            super().__init__(body)
            if getattr(body, "interrupt", False):
                self.woken = Interrupted()

    monkeypatch.setattr(group_module, "_Pending", Pending)
    group = GroupCommit(db)
    hold = threading.Event()

    interrupted = _mark(db, "interrupted")
    interrupted.interrupt = True  # type: ignore[attr-defined]
    # Daemon threads: were the queue to stall, the test fails instead of hanging.
    first = _in_thread(group, _holding(db, hold))
    _leading(group)
    stopped = _in_thread(group, interrupted)
    _queued(group, 1)
    behind = _in_thread(group, _mark(db, "behind"))
    _queued(group, 2)
    hold.set()
    assert first.result(10) == "leader"
    with pytest.raises(KeyboardInterrupt):
        stopped.result(10)
    assert behind.result(10) == "behind"
    assert _committed(db) == {"leader", "behind"}
    assert not group._leading and group._queue == []


def _in_thread(group: GroupCommit, body: Callable[[], Any]) -> Future[Any]:
    """``group.run(body)`` on a daemon thread; its outcome as a future."""
    future: Future[Any] = Future()

    def run() -> None:
        try:
            future.set_result(group.run(body))
        except BaseException as exc:  # noqa: BLE001 (handed to the test through the future)
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return future


def test_a_group_waits_for_a_writer_still_preparing(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With two threads taking turns, a group forms only if the leader waits for the one
    still reading its bytes: that one's write then shares the leader's commit. A writer
    that gives up while preparing releases the wait at once."""
    from dreamflare_store.catalog import group as group_module

    monkeypatch.setattr(group_module, "LINGER", 30.0)  # long: the test decides when
    group = GroupCommit(db)
    ready, go = threading.Event(), threading.Event()

    def prepares_then_writes() -> str:
        with group.coming():
            ready.set()
            go.wait(10)
            return str(group.run(_mark(db, "second")))

    second = Future[Any]()
    threading.Thread(target=lambda: second.set_result(prepares_then_writes()), daemon=True).start()
    ready.wait(10)
    first = _in_thread(group, _mark(db, "first"))
    _leading(group)
    time.sleep(0.05)
    assert not first.done()  # the leader waits for the writer still preparing
    go.set()
    assert first.result(10) == "first" and second.result(10) == "second"
    threads = {name: thread for name, thread in db.conn.execute("SELECT * FROM marks")}
    assert threads["first"] == threads["second"]  # one group: run by the leader's thread

    ready.clear()

    def gives_up() -> None:
        with group.coming():
            ready.set()
            time.sleep(0.1)
            raise InvalidArgument("bad file")

    threading.Thread(target=lambda: pytest.raises(InvalidArgument, gives_up), daemon=True).start()
    ready.wait(10)
    started = time.monotonic()
    assert group.run(_mark(db, "third")) == "third"
    assert time.monotonic() - started < 5  # not the 30 s the wait could last
