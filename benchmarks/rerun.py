"""Re-run: ``dreamflare upload DIR`` over a folder that has not changed since its upload.

A folder of small files (4-64 KiB, in sub-folders of 500) is uploaded once; then each
round uploads it again, as the command line does (``cli.upload.collect``, then
``Store.upload_batch`` with each file's path), and finds every file unchanged. The stat
cache (size, mtime in nanoseconds, inode) answers for each file, so none is read or
hashed. The baseline is the floor of any Python tool that looks at every file: an
``os.walk`` of the same tree that calls ``os.stat`` on every file, in the same run.
Target: the re-run within 3x of the walk (a ratio of at least 0.33).

The files are dated a minute back, as renders made before their upload are: a file
changed within the file system's clock tick of its upload is hashed again, by design.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from benchmarks import harness
from benchmarks.harness import Config, Result
from benchmarks.ingest import png_header
from dreamflare_store import Store
from dreamflare_store.cli import upload as cli_upload
from dreamflare_store.progress import Silent

USER = "bench"
PER_FOLDER = 500


def make_tree(root: Path, count: int, seed: int = 3) -> int:
    """``count`` files of 4-64 KiB under ``root``, 500 to a sub-folder, dated a minute back;
    their total size."""
    rng = random.Random(seed)
    total = 0
    past = time.time_ns() - 60 * 10**9
    for index in range(count):
        folder = root / f"batch{index // PER_FOLDER}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.randint(4 << 10, 64 << 10)
        head = png_header(rng)
        path = folder / f"img_{index:05d}.png"
        path.write_bytes(head + rng.randbytes(size - len(head)))
        os.utime(path, ns=(past, past))
        total += size
    return total


def upload_again(store: Store, root: Path) -> int:
    """What ``dreamflare upload ROOT`` does (without ``--json``, so without the records of
    unchanged files), up to its summary; how many files it found unchanged."""
    began = time.perf_counter()
    items, failures = cli_upload.collect([root])
    if failures:
        raise RuntimeError(f"cannot list {failures[0].path}")
    outcomes = cli_upload.upload_files(
        store, items, USER, None, None, cli_upload.DEFAULT_JOBS, Silent(), records=False
    )
    summary = cli_upload.summarize(outcomes, time.perf_counter() - began)
    summary.text()
    return summary.unchanged


def walk_and_stat(root: Path) -> int:
    """The baseline: every file of the tree found and stat'ed."""
    count = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            os.stat(os.path.join(folder, name))
            count += 1
    return count


def run(config: Config) -> list[Result]:
    """The no-op re-run of a folder against a walk that stats every file."""
    count = config.size(5000, 1000, 50)
    root = config.fresh("rerun-src") / "renders"
    work_bytes = make_tree(root, count)
    store_path = config.fresh("rerun-store")
    with Store(store_path) as store:
        first = cli_upload.upload_files(
            store, cli_upload.collect([root])[0], USER, None, None, 8, Silent()
        )
        if sum(outcome.status == "created" for outcome in first) != count:
            raise RuntimeError("the first upload did not create every file")

        def engine(_number: int) -> float:
            found: list[int] = []
            seconds = harness.timed(lambda: found.append(upload_again(store, root)))
            if found != [count]:
                raise RuntimeError(f"a re-run found {found} of {count} files unchanged")
            return seconds

        def baseline(_number: int) -> float:
            return harness.timed(lambda: walk_and_stat(root))

        engine_times, baseline_times = harness.rounds(config, engine, baseline)
    return [
        Result(
            "rerun",
            f"upload a folder again, unchanged: {count} files of 4-64 KiB (stat cache)",
            "throughput",
            engine_times,
            baseline_times,
            "os.walk + os.stat of every file",
            work_bytes=work_bytes,
            work_items=count,
            target=1 / 3,
        )
    ]


if __name__ == "__main__":
    raise SystemExit(harness.main({"rerun": run}, description=__doc__.splitlines()[0]))
