"""Several threads uploading small files at once: their commits shared (group commit).

A pipeline with worker threads, or the HTTP adapter's thread pool, calls ``Store.upload``
from several threads at once. Each upload is acknowledged alone, durable when it returns,
and uploads that queue behind one that is writing share its successor's commit.

- throughput: 4 threads, each uploading its share of 2,000 small files (4-64 KiB; 200 in
  --quick) one ``upload`` at a time, against 4 threads each copying its share with
  copy + fsync(file) + fsync(folder) per file, rounds alternating;
- latency: each upload's time under those 4 threads, against each upload's time when one
  thread uploads the same files alone (p50, p99 and the slowest: a queue that is fair
  keeps the slowest within a few uploads' time).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import harness
from benchmarks.harness import Config, Result
from benchmarks.ingest import durable_copy, files_of, make_small_files
from dreamflare_store import Store

USER = "bench"
THREADS = 4


def _in_threads(files: list[Path], work: Callable[[list[Path]], None]) -> None:
    """Run ``work`` on ``THREADS`` threads, each with every ``THREADS``-th file."""
    threads = [threading.Thread(target=work, args=(files[k::THREADS],)) for k in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run(config: Config) -> list[Result]:
    source = config.fresh("src")
    work_bytes = make_small_files(source, config.size(2000, 200, 12))
    files = files_of(source)
    shared: list[float] = []  # each upload's seconds, 4 threads at once
    alone: list[float] = []  # the same, one thread

    def uploads(into: list[float], threads: bool, number: int, name: str) -> float:
        folder = config.fresh(f"{name}-{number}")
        errors: list[BaseException] = []
        with Store(folder) as store:

            def work(mine: list[Path]) -> None:
                try:
                    for path in mine:
                        start = time.perf_counter()
                        store.upload(path, USER)
                        into.append(time.perf_counter() - start)
                except BaseException as exc:  # noqa: BLE001 (reported below, in this thread)
                    errors.append(exc)

            seconds = harness.timed(lambda: _in_threads(files, work) if threads else work(files))
        if errors:
            raise errors[0]
        return seconds

    def copies(number: int) -> float:
        target = config.fresh(f"copy-{number}")
        return harness.timed(lambda: _in_threads(files, lambda mine: durable_copy(mine, target)))

    engine, baseline = harness.rounds(
        config,
        lambda number: uploads(shared, True, number, "threads"),
        copies,
    )
    for number in range(config.rounds):
        uploads(alone, False, number, "alone")
    slowest = f"slowest {max(shared) * 1e3:.1f} ms under {THREADS} threads"
    slowest += f", {max(alone) * 1e3:.1f} ms alone"
    return [
        Result(
            "threads",
            f"{THREADS} threads uploading {len(files):,} small files, one upload per file",
            "throughput",
            engine,
            baseline,
            f"{THREADS} threads of copyfile + fsync(file) + fsync(folder), per file",
            work_bytes=work_bytes,
            work_items=len(files),
        ),
        Result(
            "threads",
            f"each upload's time under {THREADS} threads",
            "latency",
            shared,
            alone,
            "each upload's time, one thread alone",
            work_items=len(shared),
            note=slowest,
        ),
    ]


if __name__ == "__main__":
    raise SystemExit(harness.main({"threads": run}, description=__doc__.splitlines()[0]))
