"""Ingest: ``Store.upload`` of new and known bytes, and folder upload, against the disk.

Every engine figure is set against what the same machine does with the same files on the
same disk in the same run (sources, stores and copies all live in one work folder):

- **small files** (4-64 KiB, each starting with a PNG header, like thumbnails): one
  ``Store.upload(path)`` per file into a fresh store, against a durable copy loop. Each
  upload returns only when its bytes and metadata survive a crash, so the baseline makes
  each copy durable on its own too: ``shutil.copyfile`` into one folder, then ``fsync``
  of the copy and ``fsync`` of the folder (without the folder's fsync a new file's name
  may be lost in a crash: POSIX makes a new entry durable only by syncing its folder).
- **large files** (>= 64 MiB in full and quick runs): the same, with the same baseline
  (``shutil.copyfile`` uses the kernel's copy; then the two fsyncs).
- **re-upload**: uploading files whose bytes the store holds already, against BLAKE3
  hashing of the same files (``blake3(max_threads=AUTO).update_mmap(path)``: the
  library's fastest file hash, as ``b3sum`` does it; no write). The large-file figure has
  the target; the small-file figure is printed for information: each upload still
  commits one durable metadata transaction (a WAL fsync), which hashing 30 KiB never pays.
- **folder**: every file of a folder through the batch path, ``Store.upload_many`` (bytes
  written by 8 threads, small files by groups of 256 whose fsyncs run at once, then one
  metadata transaction), for the small files and for the large files, against
  ``cp -r SRC DST`` followed by ``sync`` (two processes, as a person would type them).
- **command**: the whole ``dreamflare upload DIR --user U`` into a store made with
  ``dreamflare init`` (untimed), as a person types it: a process that starts, walks the
  folder, uploads every file and ends, against the same ``cp -r`` + ``sync``; folders of
  1,500 and 5,000 small files.

Every case runs with the defaults users get: generation-metadata extraction on (each
small file's embedded metadata is read as it is stored), thumbnail warming off.

In the one-file-per-call benchmarks the engine and the baseline take turns file by file
(who goes first alternating), so both meet the same load from the rest of the machine.
Sources are written once and stay in the page cache, so engine and baseline read the
same cached bytes and the disk sees only their writes. Before every round (and every
folder measurement), ``sync`` empties the dirty pages the previous one left.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import blake3

from benchmarks import harness
from benchmarks.harness import Config, MiB, Result
from dreamflare_store import Store

USER = "bench"
Step = Callable[[int], object]
DEFAULTS = "defaults: generation-metadata extraction on, thumbnail warming off"


# -- sources -----------------------------------------------------------------------------


def png_header(rng: random.Random) -> bytes:
    """A PNG signature and IHDR chunk (so the store sniffs a thumbnail's type and size)."""
    body = b"IHDR" + struct.pack(
        ">IIBBBBB", rng.randint(64, 512), rng.randint(64, 512), 8, 6, 0, 0, 0
    )
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + body + struct.pack(">I", zlib.crc32(body))


def make_small_files(folder: Path, count: int, seed: int = 1) -> int:
    """``count`` files of 4-64 KiB of random bytes behind a PNG header; their total size."""
    rng = random.Random(seed)
    total = 0
    for index in range(count):
        size = rng.randint(4 << 10, 64 << 10)
        head = png_header(rng)
        (folder / f"thumb-{index:05d}.png").write_bytes(head + rng.randbytes(size - len(head)))
        total += size
    return total


def make_large_files(
    folder: Path, count: int, size: int, seed: int = 2, exact: bool = False
) -> int:
    """``count`` files of ``size`` random bytes, or a little more (up to 1 MiB, as videos
    differ in size) unless ``exact``; written in pieces (bounded memory); their total."""
    rng = random.Random(seed)
    total = 0
    for index in range(count):
        left = size if exact else size + rng.randrange(MiB)
        total += left
        with open(folder / f"video-{index:02d}.mp4", "wb") as out:
            while left:
                step = min(16 * MiB, left)
                out.write(rng.randbytes(step))
                left -= step
    return total


def files_of(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_file())


# -- engine and baselines --------------------------------------------------------------


def durable_copy(files: list[Path], target: Path) -> None:
    """The baseline: copy each file, then make that copy durable (file, then folder)."""
    for path in files:
        copy = target / path.name
        shutil.copyfile(path, copy)
        fd = os.open(copy, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        harness.fsync_dir(target)


def blake3_each(files: list[Path]) -> None:
    for path in files:
        blake3.blake3(max_threads=blake3.blake3.AUTO).update_mmap(path).hexdigest()


def cp_r_sync(source: Path, target: Path) -> None:
    subprocess.run(["cp", "-r", str(source), str(target)], check=True)
    subprocess.run(["sync"], check=True)


def batch_upload(store: Store, folder: Path) -> None:
    """A folder through the batch path: every file under it, in one ``upload_many``."""
    _upload_all(
        store, sorted(Path(top, name) for top, _, names in os.walk(folder) for name in names)
    )


def _upload_all(store: Store, files: list[Path]) -> None:
    errors = [out for out in store.upload_many(files, USER) if isinstance(out, Exception)]
    if errors:
        raise RuntimeError(f"batch upload failed: {errors[0]}")


# -- the benchmarks --------------------------------------------------------------------


def ingest(
    config: Config, label: str, files: list[Path], work_bytes: int, target: float | None
) -> tuple[Result, Path]:
    """New files through ``Store.upload`` against the durable copy, file by file in turns;
    also returns the last engine store (it holds every file's bytes)."""
    stores: list[Path] = []
    few = len(files) <= 10

    @contextmanager
    def sides(number: int) -> Iterator[tuple[Step, Step]]:
        stores.append(config.fresh(f"{label}-store-{number}"))
        copies = config.fresh(f"{label}-copy-{number}")
        with Store(stores[-1]) as store:
            yield (
                lambda index: store.upload(files[index], USER),
                lambda index: durable_copy([files[index]], copies),
            )
        if few:  # keep the last store: the re-upload benchmark uses it
            config.discard(copies, *stores[:-1])

    engine_times, baseline_times = harness.paired(config, len(files), sides)
    result = _against_copy(
        label, "one upload per file", files, work_bytes, engine_times, baseline_times, target
    )
    return result, stores[-1]


def reupload(
    config: Config,
    label: str,
    store_path: Path,
    files: list[Path],
    work_bytes: int,
    target: float | None,
    note: str = "",
) -> Result:
    """Known bytes through ``Store.upload`` against hashing them, file by file in turns."""

    @contextmanager
    def sides(number: int) -> Iterator[tuple[Step, Step]]:
        with Store(store_path) as store:
            yield (
                lambda index: store.upload(files[index], USER),
                lambda index: blake3_each([files[index]]),
            )

    engine_times, baseline_times = harness.paired(config, len(files), sides)
    return Result(
        "ingest",
        f"re-upload {label} files: {len(files)} x {_human(work_bytes / len(files))} (bytes"
        " already stored)",
        "throughput",
        engine_times,
        baseline_times,
        "BLAKE3 of each file (update_mmap, threads), no write",
        work_bytes=work_bytes,
        work_items=len(files),
        target=target,
        note=note,
    )


def batch(config: Config, label: str, files: list[Path], work_bytes: int) -> Result:
    """The same files through ``Store.upload_many`` against the durable copy of each."""

    def engine(number: int) -> float:
        target = config.fresh(f"{label}-many-store-{number}")
        with Store(target) as store:
            seconds = harness.timed(lambda: _upload_all(store, files))
        return seconds

    def baseline(number: int) -> float:
        target = config.fresh(f"{label}-many-copy-{number}")
        return harness.timed(lambda: durable_copy(files, target))

    engine_times, baseline_times = harness.rounds(config, engine, baseline)
    return _against_copy(
        label, "one upload_many", files, work_bytes, engine_times, baseline_times, 0.5
    )


def _against_copy(
    label: str,
    how: str,
    files: list[Path],
    work_bytes: int,
    engine_times: list[float],
    baseline_times: list[float],
    target: float | None,
) -> Result:
    """An ingest of new bytes measured against the durable copy of each file."""
    return Result(
        "ingest",
        f"{label} files: {len(files)} x {_human(work_bytes / len(files))} (new bytes, {how})",
        "throughput",
        engine_times,
        baseline_times,
        "copyfile + fsync(file) + fsync(folder), per file",
        work_bytes=work_bytes,
        work_items=len(files),
        target=target,
    )


def folder(config: Config, label: str, source: Path, work_bytes: int, count: int) -> Result:
    """A whole folder through the batch path against ``cp -r`` + ``sync``."""

    few = count <= 10

    def engine(number: int) -> float:
        folder = config.fresh(f"{label}-batch-store-{number}")
        with Store(folder) as store:
            seconds = harness.timed(lambda: batch_upload(store, source))
        if few:
            config.discard(folder)
        return seconds

    def baseline(number: int) -> float:
        target = config.fresh(f"{label}-cp-{number}") / source.name
        seconds = harness.timed(lambda: cp_r_sync(source, target))
        if few:
            config.discard(target.parent)
        return seconds

    engine_times, baseline_times = harness.rounds(config, engine, baseline)
    return Result(
        "ingest",
        f"folder of {label} files: {count} x {_human(work_bytes / count)} (upload_many)",
        "throughput",
        engine_times,
        baseline_times,
        "cp -r + sync",
        work_bytes=work_bytes,
        work_items=count,
        target=0.5,
    )


def command(config: Config, label: str, source: Path, work_bytes: int, count: int) -> Result:
    """``dreamflare upload DIR`` as a whole command against ``cp -r`` + ``sync``."""
    env = harness.child_env()
    dreamflare = harness.dreamflare_command()

    def engine(number: int) -> float:
        store = config.fresh(f"{label}-cli-store-{number}")
        subprocess.run([*dreamflare, "--store", str(store), "init"], env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        argv = [*dreamflare, "--store", str(store), "upload", str(source), "--user", USER]
        return harness.timed(
            lambda: subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        )

    def baseline(number: int) -> float:
        target = config.fresh(f"{label}-cli-cp-{number}") / source.name
        return harness.timed(lambda: cp_r_sync(source, target))

    engine_times, baseline_times = harness.rounds(config, engine, baseline)
    return Result(
        "ingest",
        f"dreamflare upload DIR, {count} x {_human(work_bytes / count)} (the whole command)",
        "throughput",
        engine_times,
        baseline_times,
        "cp -r + sync",
        work_bytes=work_bytes,
        work_items=count,
        target=0.5,
    )


def run(config: Config) -> list[Result]:
    """Every ingest benchmark, at the sizes of ``config.mode``."""
    small_src = config.fresh("src-small")
    small_bytes = make_small_files(small_src, config.size(5000, 300, 20))
    large_src = config.fresh("src-large")
    large_count = config.size(3, 2, 1)
    large_bytes = make_large_files(
        large_src, large_count, config.size(256 * MiB, 64 * MiB, 2 * MiB)
    )
    small, large = files_of(small_src), files_of(large_src)

    results = [batch(config, "small", small, small_bytes)]
    small_result, small_store = ingest(config, "small", small, small_bytes, 0.5)
    small_result.note = (
        "one acknowledged upload per file: a small file's bytes and its version are one"
        " catalog commit (one flush of its log) where the copy flushes its file and its folder"
    )
    results.append(small_result)
    large_result, large_store = ingest(config, "large", large, large_bytes, 0.8)
    results.append(large_result)
    results.append(reupload(config, "large", large_store, large, large_bytes, 0.8))
    results.append(
        reupload(
            config,
            "small",
            small_store,
            small,
            small_bytes,
            None,
            note="each upload still commits its metadata durably (one WAL fsync per file)",
        )
    )
    results.append(folder(config, "small", small_src, small_bytes, len(small)))
    results.append(folder(config, "large", large_src, large_bytes, len(large)))
    # The command at two sizes: 1,500 files (a day of renders) and the 5,000 above.
    fewer_src = config.fresh("src-small-fewer")
    fewer = config.size(1500, 100, 10)
    fewer_bytes = make_small_files(fewer_src, fewer, seed=3)
    results.append(command(config, "fewer", fewer_src, fewer_bytes, fewer))
    results.append(command(config, "small", small_src, small_bytes, len(small)))
    for result in results:
        result.note = "; ".join(filter(None, [result.note, DEFAULTS]))
    return results


def _human(size: float) -> str:
    return f"{size / MiB:.0f} MiB" if size >= MiB else f"{size / 1024:.0f} KiB"


if __name__ == "__main__":
    raise SystemExit(harness.main({"ingest": run}, description=__doc__.splitlines()[0]))
