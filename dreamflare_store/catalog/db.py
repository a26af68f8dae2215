"""The catalog's SQLite database: connections, transactions, retries and migrations.

One database file in WAL mode, one connection per thread. Every write goes through
``atomic()`` (``BEGIN IMMEDIATE``, a savepoint when nested); reads that must agree with
each other go through ``snapshot()``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import IntegrityError

Row = sqlite3.Row
BUSY_TIMEOUT_MS = 60_000


def _migrations() -> list[str]:
    text = resources.files(__package__).joinpath("schema.sql").read_text(encoding="utf-8")
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
        self._migrate()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # WAL lets readers run beside one writer; FULL makes every commit durable before
        # the call that made it returns (NORMAL could lose the last commits on power loss).
        self.retry(lambda: conn.execute("PRAGMA journal_mode = WAL"))
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA cache_size = -65536")
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
        if depth == 0:
            self.retry(lambda: conn.execute("BEGIN IMMEDIATE"))
        else:
            conn.execute(f"SAVEPOINT sp{depth}")
        self._local.depth = depth + 1
        try:
            yield conn
        except BaseException:
            self._local.depth = depth
            if depth == 0:
                conn.execute("ROLLBACK")
            else:
                conn.execute(f"ROLLBACK TO sp{depth}")
                conn.execute(f"RELEASE sp{depth}")
            raise
        self._local.depth = depth
        if depth == 0:
            self.retry(lambda: conn.execute("COMMIT"))
        else:
            conn.execute(f"RELEASE sp{depth}")

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
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):  # closing is best effort
                conn.close()
        self._local = threading.local()

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
