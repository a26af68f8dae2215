"""The floor the catalog's statements set: the engine's own SQL replayed with nothing around it.

For the two ways small files come in (one ``upload`` per file, each durable when it
returns; and a folder through one ``upload_many``), this records every statement the
engine runs and its parameters, then replays them through a bare ``sqlite3`` connection
with the same pragmas on a copy of the same starting store, reading and hashing each file
as the engine must. Rounds alternate engine, replay and the physical baseline of
``benchmarks/ingest.py`` (copy + fsync of file and folder per file; ``cp -r`` + ``sync``
for the folder). The replay is what no Python around the statements can beat: when it
misses a target, only fewer or cheaper statements (a schema with fewer tables and indexes
per upload) can reach it.

Run: ``python -m benchmarks.sql_floor [COUNT]`` (default 500 per call, 2,000 in the folder).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import blake3

from benchmarks.ingest import cp_r_sync, durable_copy, files_of, make_small_files
from dreamflare_store import Store
from dreamflare_store.catalog import db

Statement = tuple[bool, str, Any]  # (run by executemany, SQL, parameters)


@contextmanager
def recording() -> Iterator[list[Statement]]:
    """Every statement the catalog's cursors run in this thread while inside, once it
    succeeded (a ``BEGIN`` retried while another connection held the lock is recorded
    once). Other threads' statements (the buffered usage counts written in the
    background) are left out: replayed on one connection they would nest transactions."""
    log: list[Statement] = []
    thread = threading.get_ident()
    execute, executemany = db._Cursor.execute, db._Cursor.executemany

    def record_one(self: db._Cursor, sql: str, parameters: Any = (), /) -> db._Cursor:
        cursor = execute(self, sql, parameters)
        if threading.get_ident() == thread:
            log.append((False, sql, parameters))
        return cursor

    def record_many(self: db._Cursor, sql: str, seq_of_parameters: Any, /) -> db._Cursor:
        rows = list(seq_of_parameters)
        cursor = executemany(self, sql, rows)
        if threading.get_ident() == thread:
            log.append((True, sql, rows))
        return cursor

    db._Cursor.execute = record_one  # type: ignore[method-assign]
    db._Cursor.executemany = record_many  # type: ignore[method-assign]
    try:
        yield log
    finally:
        db._Cursor.execute = execute  # type: ignore[method-assign]
        db._Cursor.executemany = executemany  # type: ignore[method-assign]


def replay(store: Path, pragmas: list[Statement], work: list[Statement], files: list[Path]) -> None:
    """Read and hash ``files``, then run ``work`` on the store's catalog: a bare connection
    with the engine's pragmas, each statement prepared once and reused as the engine's are."""
    conn = sqlite3.connect(store / "catalog.db", isolation_level=None, cached_statements=256)
    try:
        for _, sql, parameters in pragmas:
            conn.execute(sql, parameters)
        for path in files:
            blake3.blake3(path.read_bytes()).hexdigest()
        for many, sql, parameters in work:
            if many:
                conn.executemany(sql, parameters)
            else:
                conn.execute(sql, parameters).fetchall()
    finally:
        conn.close()


def per_call_work(store: Store, files: list[Path]) -> None:
    for path in files:
        store.upload(path, "bench")


def folder_work(store: Store, files: list[Path]) -> None:
    store.upload_many(files, "bench")


def record(
    work: Callable[[Store, list[Path]], None], store: Path, files: list[Path]
) -> tuple[list[Statement], list[Statement]]:
    """Run ``work`` on the store at ``store``: the pragmas its catalog was opened with, and
    the statements the work ran."""
    with recording() as log:
        opened = Store(store)
        before = len(log)
        work(opened, files)
        after = len(log)
        opened.close()
    pragmas = [statement for statement in log[:before] if statement[1].startswith("PRAGMA")]
    return pragmas, log[before:after]


def measure(
    label: str,
    work: Callable[[Store, list[Path]], None],
    baseline: Callable[[Path], None],
    files: list[Path],
    root: Path,
    rounds: int,
) -> None:
    """Record ``work`` once, then time engine, replay and baseline in alternating rounds."""
    start = root / f"{label}-start"
    with Store(start) as store:
        store.upload(b"a first content, so the user and the catalog exist", "bench")
    recorded = root / f"{label}-recorded"
    shutil.copytree(start, recorded)
    pragmas, statements = record(work, recorded, files)

    def engine(target: Path) -> float:
        with Store(target) as store:  # opened and closed outside the time taken
            began = time.perf_counter()
            work(store, files)
            return time.perf_counter() - began

    def bare(target: Path) -> float:
        began = time.perf_counter()
        replay(target, pragmas, statements, files)
        return time.perf_counter() - began

    def physical(target: Path) -> float:
        began = time.perf_counter()
        baseline(target)
        return time.perf_counter() - began

    sides: dict[str, tuple[Callable[[Path], float], bool]] = {
        "engine": (engine, True),
        "replay": (bare, True),
        "baseline": (physical, False),
    }
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for number in range(rounds):
        order = list(sides.items())  # who goes first changes every round
        for name, (run, from_start) in order[number % 3 :] + order[: number % 3]:
            target = root / f"{label}-{name}-{number}"
            if from_start:
                shutil.copytree(start, target)
            seconds[name].append(run(target))
            shutil.rmtree(target)
    rate = {name: len(files) / statistics.median(times) for name, times in seconds.items()}
    print(
        f"{label}: {len(statements)} statements for {len(files)} files;"
        f" engine {rate['engine']:,.0f} files/s, replay {rate['replay']:,.0f} files/s,"
        f" baseline {rate['baseline']:,.0f} files/s; ratio engine"
        f" {rate['engine'] / rate['baseline']:.2f}, replay {rate['replay'] / rate['baseline']:.2f}"
        f" (medians of {rounds} rounds)",
        flush=True,
    )


def main(count: int = 500, rounds: int = 5) -> None:
    with tempfile.TemporaryDirectory(dir=os.getcwd(), prefix=".floor-bench-") as work:
        root = Path(work)
        calls = root / "calls-source"
        calls.mkdir()
        make_small_files(calls, count, seed=1)
        call_files = files_of(calls)

        def copy_each(target: Path) -> None:
            target.mkdir()
            durable_copy(call_files, target)

        measure("one upload per file", per_call_work, copy_each, call_files, root, rounds)
        folder = root / "folder-source"
        folder.mkdir()
        make_small_files(folder, count * 4, seed=2)

        def copy_tree(target: Path) -> None:
            cp_r_sync(folder, target)

        measure("a folder by upload_many", folder_work, copy_tree, files_of(folder), root, rounds)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
