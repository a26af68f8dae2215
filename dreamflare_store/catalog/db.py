"""The catalog's SQLite database: connections, transactions, retries and migrations.

One database file in WAL mode, one connection per thread. Every write goes through
``atomic()`` (``BEGIN IMMEDIATE`` behind the process's own write lock, a savepoint when
nested); reads that must agree with each other go through ``snapshot()``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import CorruptStore, DreamflareError, IntegrityError, StorageFull

Row = sqlite3.Row
BUSY_TIMEOUT_MS = 60_000
MMAP_BYTES = 1 << 30  # address space, not memory: pages come and go with the OS cache
# SQLite's result codes for a full disk, and for a file that is not (or no longer) a sound
# database: the ones translated into this package's errors.
_SQLITE_FULL = 13
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB


def translate(exc: sqlite3.Error, path: Path) -> DreamflareError | None:
    """Return the error of this package that a SQLite error means, or None for the rest.

    The one boundary where sqlite3's exceptions become ours: a full disk is StorageFull
    (naming the store's folder), a damaged file CorruptStore (naming the file).
    """
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    message = str(exc)
    full = primary == _SQLITE_FULL or "database or disk is full" in message
    # Making the log and shared-memory files on a full disk is a "disk I/O error".
    if full or (primary == _SQLITE_IOERR and _no_room(path.parent)):
        return StorageFull(
            f"the disk of the store at {path.parent} is full: delete contents and run gc,"
            " or make room on the disk",
            path=str(path.parent),
        )
    if primary in _SQLITE_CORRUPT or "malformed" in message or "not a database" in message:
        return CorruptStore(corrupt_message(path, message), path=str(path))
    return None


def _no_room(folder: Path) -> bool:
    try:
        info = os.statvfs(folder)
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < 64 * 1024


def corrupt_message(path: Path, why: str) -> str:
    """Say that catalog ``path`` is damaged, why, and how to get the store back."""
    return (
        f"the catalog {path} is damaged ({why}): restore it from a backup"
        " (`dreamflare restore BACKUP NEW_FOLDER`), or pull from a remote into a fresh store"
        " (`dreamflare --store NEW_FOLDER init`, then"
        " `dreamflare --store NEW_FOLDER pull REMOTE_URL --blobs eager`)"
    )


@contextmanager
def translated(path: Path) -> Iterator[None]:
    """Raise this package's error for a full disk or a damaged catalog, from the cause."""
    try:
        yield
    except sqlite3.Error as exc:
        error = translate(exc, path)
        if error is None:
            raise
        raise error from exc


def _raise_ours(exc: sqlite3.Error, path: Path) -> None:
    """Raise this package's error for ``exc`` (from it), if it has one; else return, for
    the caller to re-raise ``exc`` itself."""
    error = translate(exc, path)
    if error is not None:
        raise error from exc


class _Cursor(sqlite3.Cursor):
    """A cursor whose errors (when executing, and when stepping through rows) are ours.

    A ``try`` in each method rather than ``with translated(...)``: every statement comes
    through here, and a generator context manager would cost each a few microseconds.
    """

    connection: _Connection

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as exc:
            _raise_ours(exc, self.connection.db_path)
            raise

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> _Cursor:
        try:
            return super().executemany(sql, seq_of_parameters)
        except sqlite3.Error as exc:
            _raise_ours(exc, self.connection.db_path)
            raise

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            _raise_ours(exc, self.connection.db_path)
            raise

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        try:
            return super().fetchmany(size)
        except sqlite3.Error as exc:
            _raise_ours(exc, self.connection.db_path)
            raise

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as exc:
            _raise_ours(exc, self.connection.db_path)
            raise

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as exc:
            _raise_ours(exc, self.connection.db_path)
            raise


class _Connection(sqlite3.Connection):
    """A connection that hands out ``_Cursor``s, so every SQLite error of the catalog goes
    through ``translate`` (the statements run here and in the parts alike)."""

    db_path: Path

    def cursor(self, factory: Any = None) -> _Cursor:  # type: ignore[override]
        return super().cursor(factory or _Cursor)

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> _Cursor:
        return self.cursor().executemany(sql, seq_of_parameters)


def _migrations() -> list[str]:
    # Beside this module in every install (a wheel or a source tree; never a zip), so a
    # plain read: importlib.resources would cost each command several milliseconds.
    text = Path(__file__).with_name("schema.sql").read_text(encoding="utf-8")
    parts = text.split("-- migration ")
    return [part.split("\n", 1)[1] for part in parts[1:]]


def tags_to_sql(tags: Iterable[str]) -> str:
    """Tags as a column stores them: a JSON list."""
    return json.dumps(list(tags), ensure_ascii=False)


def tags_from_sql(text: str | None) -> tuple[str, ...]:
    return tuple(json.loads(text)) if text else ()


class Database:
    """One SQLite database in WAL mode, one connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._shared: sqlite3.Connection | None = None
        self._shared_lock = threading.Lock()
        # The write lock of this process's threads, taken before SQLite's own. Without
        # it, a thread that finds SQLite's lock taken sleeps in SQLite's busy handler
        # (1, 2, 5 ... 100 ms between tries), and under several writing threads some
        # waited close to a second while others went round again. Threads now queue on
        # this lock and are woken when it is let go; other processes still meet
        # SQLite's lock and its busy handler.
        self._write_lock = threading.Lock()
        self._write_lock_pid = os.getpid()
        self._migrate()

    def _connect(self) -> sqlite3.Connection:
        with translated(self.path):
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_MS / 1000,
                factory=_Connection,
            )
        conn.db_path = self.path
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # WAL lets readers run beside one writer; FULL makes every commit durable before
        # the call that made it returns (NORMAL could lose the last commits on power loss).
        self.retry(lambda: conn.execute("PRAGMA journal_mode = WAL"))
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        # Some builds overwrite every freed page with zeros (secure_delete = ON): gc of small
        # blobs' rows would then write their bytes again, and need that room on a full
        # disk. FAST zeroes only what costs no extra write, as unlinking a blob file does
        # nothing to its old blocks; VACUUM (``compact``) rewrites the file without them.
        conn.execute("PRAGMA secure_delete = FAST")
        conn.execute("PRAGMA cache_size = -65536")
        # Reads of the database file through a memory map: a small blob's row (its
        # overflow pages) is then copied from the page cache instead of read page by page,
        # half the cost of a 32 KiB read (benchmarks/reads.py). SQLite writes through
        # its log and never through the map, so a full disk is reported as before.
        conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise RuntimeError("the store is closed")
            conn = self._connect()
            self._local.conn = conn
            self._local.depth = 0
            with self._lock:
                self._connections.append(conn)
        return conn

    def lookup(self, sql: str, parameters: tuple[Any, ...]) -> Row | None:
        """Run a one-row read on a connection shared under a lock: for threads that come
        and go (a batch's), which would each open, and keep, a connection of their own."""
        with self._shared_lock:
            if self._shared is None:
                if self._closed:
                    raise RuntimeError("the store is closed")
                self._shared = self._connect()
                with self._lock:
                    self._connections.append(self._shared)
            row: Row | None = self._shared.execute(sql, parameters).fetchone()
            return row

    def check_integrity(self, full: bool) -> list[str]:
        """Run SQLite's own check of the file (``quick_check``, or the slower and more
        thorough ``integrity_check`` when ``full``); return what it found wrong."""
        pragma = "integrity_check" if full else "quick_check"
        rows = self.conn.execute(f"PRAGMA {pragma}").fetchall()
        found = [str(row[0]) for row in rows]
        return [] if found == ["ok"] else found

    def backup_to(self, target: Path) -> None:
        """Copy the database, as one consistent snapshot, to a new file ``target``
        (SQLite's online backup: writers go on meanwhile)."""
        with translated(self.path):
            dest = sqlite3.connect(target)
            try:
                self.conn.backup(dest)
                dest.execute("PRAGMA journal_mode = WAL")
            finally:
                dest.close()

    def vacuum(self) -> None:
        """Rewrite the file without its free pages, giving them back to the disk (VACUUM;
        it runs outside any transaction, and waits for other writers as they do)."""
        conn = self.conn
        if self._local.depth:
            raise RuntimeError("VACUUM cannot run inside a transaction")
        with self._writing():
            self.retry(lambda: conn.execute("VACUUM"))
            # In WAL mode the rewritten pages go to the log first: move them into the file
            # and empty the log, or the disk gets nothing back until a later checkpoint.
            self.retry(lambda: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)"))

    @staticmethod
    def retry(action: Callable[[], Any]) -> Any:
        """Run ``action``, waiting out "database is locked" beyond SQLite's busy handler.

        The busy handler covers most waits; a few paths (WAL recovery, journal-mode
        changes) report SQLITE_BUSY at once, so contention never reaches a caller.
        """
        delay = 0.001
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                message = str(exc)
                if "locked" not in message and "busy" not in message:
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    @contextmanager
    def atomic(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), or a savepoint when nested."""
        conn = self.conn
        depth = self._local.depth
        # The process's write lock goes around the outermost transaction only.
        with self._writing() if depth == 0 else contextlib.nullcontext():
            if depth == 0:
                self.retry(lambda: conn.execute("BEGIN IMMEDIATE"))
            else:
                conn.execute(f"SAVEPOINT sp{depth}")
            self._local.depth = depth + 1
            try:
                yield conn
            except BaseException:
                self._local.depth = depth
                # A full disk may have rolled the whole transaction back already (SQLite
                # does on SQLITE_FULL): rolling back again would hide the error that did it.
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error, DreamflareError):
                        if depth == 0:
                            conn.execute("ROLLBACK")
                        else:
                            conn.execute(f"ROLLBACK TO sp{depth}")
                            conn.execute(f"RELEASE sp{depth}")
                raise
            self._local.depth = depth
            if depth == 0:
                try:
                    self.retry(lambda: conn.execute("COMMIT"))
                except BaseException:
                    if conn.in_transaction:  # a failed COMMIT (a full disk) leaves it open
                        with contextlib.suppress(sqlite3.Error, DreamflareError):
                            conn.execute("ROLLBACK")
                    raise
            else:
                conn.execute(f"RELEASE sp{depth}")

    def depth(self) -> int:
        """How deep this thread is in transactions (0: in none; ``atomic`` and ``snapshot``
        each add one)."""
        self.conn  # noqa: B018 (opening this thread's connection sets its depth)
        depth: int = self._local.depth
        return depth

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold this process's write lock (see ``__init__``), waiting for it as long as
        SQLite would wait for its own."""
        if self._write_lock_pid != os.getpid():
            # A forked child: the thread that held the parent's lock is not here.
            self._write_lock, self._write_lock_pid = threading.Lock(), os.getpid()
        lock = self._write_lock
        if not lock.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
            raise sqlite3.OperationalError("database is locked")
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: several SELECTs that see one consistent state."""
        conn = self.conn
        if self._local.depth:
            yield conn
            return
        conn.execute("BEGIN")
        self._local.depth = 1
        try:
            yield conn
        finally:
            self._local.depth = 0
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection; later use raises. Idempotent."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
            self._shared = None
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):  # closing is best effort
                conn.close()
        self._local = threading.local()

    @staticmethod
    def check_file(path: Path) -> None:
        """Raise CorruptStore if the file at ``path`` is not a SQLite database, or is shorter
        than its header says (a truncated copy); a missing or empty file passes (new)."""
        try:
            size = path.stat().st_size
            with open(path, "rb") as file:
                header = file.read(100)
        except FileNotFoundError:
            return
        if size == 0:
            return
        if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
            raise CorruptStore(corrupt_message(path, "its header is not SQLite's"), path=str(path))
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = int.from_bytes(header[28:32], "big")
        # The page count is valid when the change counter matches its copy (SQLite 3.7+);
        # with a write-ahead log not yet checkpointed, the file may lag behind it.
        valid = header[24:28] == header[92:96]
        wal = path.with_name(path.name + "-wal")
        log_empty = not wal.exists() or wal.stat().st_size == 0
        if valid and log_empty and size < pages * page_size:
            raise CorruptStore(
                corrupt_message(path, f"truncated: {size} bytes of {pages * page_size}"),
                path=str(path),
            )

    def _migrate(self) -> None:
        conn = self.conn
        migrations = _migrations()
        with self.atomic():
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            if current > len(migrations):
                raise IntegrityError(
                    f"this store was written by a newer dreamflare-store (schema {current})"
                )
            for number, script in enumerate(migrations[current:], start=current + 1):
                # Not executescript(): it would COMMIT first and break the transaction.
                for statement in script.split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    # -- settings of this store (not replicated) --------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


class Part:
    """A concern of the catalog (the fold, the reads, ...) over its one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn
