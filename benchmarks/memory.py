"""Memory: peak resident memory while moving 1 GiB through ``Store``, against a plain copy.

Each case runs in a fresh process (so one case's peak cannot hide another's), which opens
the store, notes its resident memory, resets the kernel's peak counter
(``/proc/self/clear_refs``), moves the bytes, and reports how far the peak rose above the
start. Cases:

- ``upload(path)`` of a new 1 GiB file, and again of the same file (bytes already stored);
- ``upload(file object)`` of a new 1 GiB file (the path HTTP and ``stdin`` take);
- ``open_content`` read to the end in 1 MiB reads (a verified download).

The baseline is the same process doing ``shutil.copyfileobj`` of the file to a new file
with 1 MiB reads and an fsync: what streaming costs with no engine at all. The target
(DESIGN.md: memory stays bounded whatever the file size) is under 100 MiB of growth.
Memory-mapped file pages that the process touches count as resident too, so this also
bounds how much of a file hashing maps at once.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks import harness
from benchmarks.harness import Config, MiB, Result
from benchmarks.ingest import make_large_files

USER = "bench"
TARGET = 100 * MiB


def _status(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _peak_reset() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak() -> int:
    peak = _status("VmHWM")
    if peak is not None:
        return peak
    # ru_maxrss is KiB on Linux, bytes on macOS; it never resets (then growth is an upper bound).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _rss() -> int:
    rss = _status("VmRSS")
    return rss if rss is not None else _peak()


def child(case: str, store_path: str, source: str, scratch: str) -> dict[str, int]:
    """Run one case in this process; how much the peak resident memory grew."""
    from dreamflare_store import Store

    with Store(store_path) as store:
        content_id = None
        if case in ("download", "reupload"):
            content_id = store.upload(source, USER).content_id  # before the measurement
        start = _rss()
        _peak_reset()
        if case in ("upload_path", "reupload"):
            store.upload(source, USER)
        elif case == "upload_stream":
            with open(source, "rb") as stream:
                store.upload(stream, USER, filename="video.mp4")
        elif case == "download":
            assert content_id is not None
            with store.open_content(content_id, USER) as reader:
                while reader.read(MiB):
                    pass
        elif case == "baseline":
            with open(source, "rb") as src, open(scratch, "wb") as dst:
                shutil.copyfileobj(src, dst, MiB)
                dst.flush()
                os.fsync(dst.fileno())
        else:
            raise ValueError(case)
        peak = _peak()
    return {"growth": max(0, peak - start), "start": start, "peak": peak}


def measure(config: Config, case: str, source: Path) -> int:
    folder = config.fresh(f"{case}")
    command = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        "--child",
        case,
        str(folder / "store"),
        str(source),
        str(folder / "copy"),
    ]
    harness.settle()
    try:
        done = subprocess.run(command, check=True, capture_output=True, text=True)
    finally:
        config.discard(folder)
    return int(json.loads(done.stdout.strip().splitlines()[-1])["growth"])


def run(config: Config) -> list[Result]:
    """Every memory benchmark, at the size of ``config.mode``."""
    size = config.size(1024 * MiB, 128 * MiB, 8 * MiB)
    source_dir = config.fresh("src")
    make_large_files(source_dir, 1, size, seed=3, exact=True)
    source = next(source_dir.iterdir())
    cases = [
        ("upload_path", f"upload(path) of a new {size // MiB} MiB file"),
        ("reupload", f"upload(path) of {size // MiB} MiB already stored"),
        ("upload_stream", f"upload(file object) of a new {size // MiB} MiB file"),
        ("download", f"open_content read of {size // MiB} MiB (verified)"),
    ]
    baseline = [measure(config, "baseline", source) for _ in range(config.rounds)]
    results = []
    for case, label in cases:
        engine = [measure(config, case, source) for _ in range(config.rounds)]
        results.append(
            Result(
                "memory",
                f"peak RSS growth, {label}",
                "memory",
                [float(value) for value in engine],
                [float(value) for value in baseline],
                "shutil.copyfileobj, 1 MiB reads, + fsync",
                work_bytes=size,
                target=TARGET,
            )
        )
    return results


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(*sys.argv[2:6])))
        raise SystemExit(0)
    raise SystemExit(harness.main({"memory": run}, description=__doc__.splitlines()[0]))
