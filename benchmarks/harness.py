"""What every benchmark shares: sizes per mode, rounds, timing, results, printing, JSON.

A benchmark module defines ``run(config: Config) -> list[Result]`` and ends with
``raise SystemExit(harness.main({"name": run}))`` so it also runs alone. Each result holds
the engine's measurements and its baseline's, taken in the same run in several rounds,
and prints medians and the ratio between them. Either whole rounds alternate (``rounds``:
who goes first changes every round, so slow drift of the machine favours neither), or,
for work made of many items, the two take turns item by item (``paired``: both meet the
same load from the rest of the machine, however it varies).

Three kinds of result:

- ``throughput``: seconds per round for the same work. ``ratio`` is the engine's speed as a
  fraction of the baseline's (baseline median time / engine median time), so 0.8 means
  the engine moves 80% of what the baseline moves per second; targets are minimum ratios.
- ``latency``: seconds per call, pooled over rounds, with the garbage collector on (as in
  any program). Printed as p50 and p99; ``ratio`` is engine p50 / baseline p50 (how many
  baseline calls one engine call costs); targets are a maximum p99.
- ``memory``: bytes of peak resident memory growth per round. ``ratio`` is engine /
  baseline (medians, the baseline floored at 1 MiB); the target is a maximum growth that
  every round must stay under.

Timings are never asserted: ``--strict`` only turns a missed target into exit status 1.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MODES = ("full", "quick", "tiny")
DEFAULT_ROUNDS = {"full": 5, "quick": 3, "tiny": 2}
MiB = 1 << 20


@dataclass
class Config:
    """How big and how often: ``mode`` picks sizes, ``workdir`` holds every file made."""

    mode: str
    rounds: int
    workdir: Path

    def size(self, full: int, quick: int, tiny: int) -> int:
        """The size that fits the mode."""
        return {"full": full, "quick": quick, "tiny": tiny}[self.mode]

    def fresh(self, name: str) -> Path:
        """A new, empty folder under the work folder (never reused within a run).

        Deleting thousands of files slows file creation on some disks for minutes after,
        so rounds never delete: every round writes to its own folder, and the whole work
        folder goes at the end of the run.
        """
        for attempt in range(10_000):
            path = self.workdir / (name if attempt == 0 else f"{name}-{attempt}")
            try:
                path.mkdir(parents=True)
            except FileExistsError:
                continue
            return path
        raise RuntimeError(f"no free folder name for {name}")

    def discard(self, *paths: Path) -> None:
        """Delete folders of a few large files now (cheap, unlike thousands of small ones),
        so that a full run needs the disk space of one round, not of all of them."""
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)


@dataclass
class Result:
    """One benchmark's measurements of the engine and of its baseline."""

    benchmark: str
    name: str
    kind: str  # "throughput", "latency" or "memory"
    engine: list[float]
    baseline: list[float]
    baseline_name: str
    work_bytes: int = 0
    work_items: int = 0
    target: float | None = None  # min ratio (throughput) or max p99 seconds (latency)
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        if self.kind == "throughput":
            return statistics.median(self.baseline) / statistics.median(self.engine)
        if self.kind == "memory":
            return statistics.median(self.engine) / max(statistics.median(self.baseline), MiB)
        return percentile(self.engine, 50) / percentile(self.baseline, 50)

    @property
    def round_ratios(self) -> list[float]:
        """The ratio of each round on its own (throughput): how much the machine wavered."""
        return [base / engine for engine, base in zip(self.engine, self.baseline, strict=False)]

    @property
    def met(self) -> bool | None:
        """Whether the target was reached (None when there is none)."""
        if self.target is None:
            return None
        if self.kind == "throughput":
            return self.ratio >= self.target
        if self.kind == "memory":
            return max(self.engine) <= self.target
        return percentile(self.engine, 99) <= self.target

    def summary(self) -> dict[str, Any]:
        """The figures people read (and the JSON carries beside the raw samples)."""
        out: dict[str, Any] = {"ratio": round(self.ratio, 3), "target_met": self.met}
        if self.kind == "throughput":
            engine, base = statistics.median(self.engine), statistics.median(self.baseline)
            out |= {"engine_median_s": engine, "baseline_median_s": base}
            if self.work_bytes:
                out |= {
                    "engine_mb_s": self.work_bytes / engine / 1e6,
                    "baseline_mb_s": self.work_bytes / base / 1e6,
                }
            if self.work_items:
                out |= {
                    "engine_items_s": self.work_items / engine,
                    "baseline_items_s": self.work_items / base,
                }
            out["round_ratios"] = [round(value, 3) for value in self.round_ratios]
        elif self.kind == "memory":
            out |= {
                "engine_median_mib": statistics.median(self.engine) / MiB,
                "engine_max_mib": max(self.engine) / MiB,
                "baseline_median_mib": statistics.median(self.baseline) / MiB,
            }
        else:
            for label, samples in (("engine", self.engine), ("baseline", self.baseline)):
                out[f"{label}_p50_ms"] = percentile(samples, 50) * 1e3
                out[f"{label}_p99_ms"] = percentile(samples, 99) * 1e3
        return out

    def line(self) -> str:
        """One line for people."""
        s = self.summary()
        if self.kind == "throughput":
            engine = _speed(s["engine_median_s"], self.work_bytes, self.work_items)
            base = _speed(s["baseline_median_s"], self.work_bytes, self.work_items)
            target = f"target >= {self.target:.2f}" if self.target is not None else "no target"
            spread = self.round_ratios
            target += f"; rounds {min(spread):.2f}-{max(spread):.2f}"
        elif self.kind == "memory":
            engine = f"+{s['engine_median_mib']:.1f} MiB median, +{s['engine_max_mib']:.1f} MiB max"
            base = f"+{s['baseline_median_mib']:.1f} MiB median"
            target = (
                f"target growth <= {self.target / MiB:g} MiB"
                if self.target is not None
                else "no target"
            )
        else:
            engine = f"p50 {s['engine_p50_ms']:.3f} ms, p99 {s['engine_p99_ms']:.3f} ms"
            base = f"p50 {s['baseline_p50_ms']:.3f} ms, p99 {s['baseline_p99_ms']:.3f} ms"
            target = (
                f"target p99 <= {self.target * 1e3:g} ms"
                if self.target is not None
                else "no target"
            )
        verdict = {True: "ok", False: "MISSED", None: ""}[self.met]
        return (
            f"{self.benchmark}: {self.name}\n"
            f"    engine   {engine}\n"
            f"    baseline {base}  [{self.baseline_name}]\n"
            f"    ratio {self.ratio:.2f}  ({target}) {verdict}"
            + (f"\n    note: {self.note}" if self.note else "")
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | self.summary()


def _speed(seconds: float, work_bytes: int, work_items: int) -> str:
    parts = [f"{seconds:.3f} s"]
    if work_bytes:
        parts.append(f"{work_bytes / seconds / 1e6:.1f} MB/s")
    if work_items:
        rate = work_items / seconds
        parts.append(f"{rate:,.0f} files/s" if rate >= 10 else f"{rate:.2f} files/s")
    return ", ".join(parts)


def percentile(samples: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[rank]


# -- measuring ---------------------------------------------------------------------------


def settle() -> None:
    """Start each timed part on an even footing: dirty pages written, garbage collected."""
    os.sync()
    gc.collect()


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` takes (after ``settle``), with the cyclic GC paused meanwhile."""
    settle()
    gc.disable()
    try:
        start = time.perf_counter()
        action()
        return time.perf_counter() - start
    finally:
        gc.enable()


def rounds(
    config: Config, engine: Callable[[int], float], baseline: Callable[[int], float]
) -> tuple[list[float], list[float]]:
    """Run ``engine(round)`` and ``baseline(round)`` ``config.rounds`` times each, their
    order alternating, and return the times each reports."""
    engine_times: list[float] = []
    baseline_times: list[float] = []
    for number in range(config.rounds):
        if number % 2 == 0:
            baseline_times.append(baseline(number))
            engine_times.append(engine(number))
        else:
            engine_times.append(engine(number))
            baseline_times.append(baseline(number))
    return engine_times, baseline_times


def paired(
    config: Config,
    count: int,
    sides: Callable[[int], AbstractContextManager[tuple[Callable[[int], object], ...]]],
) -> tuple[list[float], list[float]]:
    """Rounds in which the engine and the baseline take turns item by item.

    ``sides(round)`` sets a round up and yields ``(engine, baseline)``, each doing item
    ``i`` when called with ``i``. Taking turns per item (who goes first alternating) puts
    both under the same load from the rest of the machine, however it varies: on a busy
    machine, whole-round alternation leaves ratios at the mercy of what ran meanwhile.
    """
    engine_times: list[float] = []
    baseline_times: list[float] = []
    clock = time.perf_counter
    for number in range(config.rounds):
        spent = [0.0, 0.0]
        with sides(number) as steps:
            settle()
            gc.disable()
            try:
                for index in range(count):
                    first = (index + number) % 2
                    for side in (first, 1 - first):
                        start = clock()
                        steps[side](index)
                        spent[side] += clock() - start
            finally:
                gc.enable()
        engine_times.append(spent[0])
        baseline_times.append(spent[1])
    return engine_times, baseline_times


def latencies(action: Callable[[int], object], count: int) -> list[float]:
    """Seconds of each of ``count`` calls ``action(i)``.

    The cyclic garbage collector stays on, as in any program using the store: the
    collections that a call's allocations bring about are part of what it costs (and of
    its p99). Each series starts from a collected heap.
    """
    samples = []
    clock = time.perf_counter
    gc.collect()
    for index in range(count):
        start = clock()
        action(index)
        samples.append(clock() - start)
    return samples


def dreamflare_command() -> list[str]:
    """How a person runs ``dreamflare``: the executable installed beside this Python (or,
    in a tree without it, the same entry point through ``python -c``)."""
    script = Path(sys.executable).parent / "dreamflare"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from dreamflare_store.cli import main; main()"]


def child_env() -> dict[str, str]:
    """The environment of commands run as a person runs them: this package first on the
    path (the one being measured), and bytecode cached as an installed package has it."""
    import dreamflare_store

    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    root = str(Path(dreamflare_store.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def fsync_dir(path: Path) -> None:
    """Make entries created in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the machine -----------------------------------------------------------------------


def machine(workdir: Path) -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gib"] = round(int(line.split()[1]) / (1 << 20), 1)
                break
        info["filesystem"] = _filesystem(workdir)
    except OSError:
        pass
    return info


def _filesystem(path: Path) -> str:
    best, kind = "", "unknown"
    target = str(path.resolve())
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        mount = parts[1]
        if (target == mount or target.startswith(mount.rstrip("/") + "/")) and len(mount) > len(
            best
        ):
            best, kind = mount, f"{parts[2]} ({parts[0]} on {mount})"
    return kind


# -- the command line ------------------------------------------------------------------

Runner = Callable[[Config], list[Result]]


def parser(description: str, prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="small sizes, for CI: checks that they run"
    )
    size.add_argument(
        "--tiny", action="store_true", help="tiny sizes: only checks that everything runs"
    )
    p.add_argument("--rounds", type=int, help="rounds per measurement (default 5, quick 3)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    p.add_argument(
        "--dir",
        type=Path,
        help="work folder for sources, stores and copies (one disk; default: the temp folder)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    return p


@contextmanager
def workspace(parent: Path | None, keep: bool) -> Iterator[Path]:
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="dreamflare-bench-", dir=parent))
    try:
        yield path
    finally:
        if keep:
            print(f"work folder kept: {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(
    benchmarks: dict[str, Runner | None],
    argv: list[str] | None = None,
    description: str = "dreamflare-store benchmarks",
    missing: dict[str, str] | None = None,
    prog: str | None = None,
) -> int:
    """Parse the options, run ``benchmarks`` (a name -> None entry is skipped with the
    reason in ``missing``), print each result, write JSON; the exit status."""
    if prog is None and len(benchmarks) == 1:
        prog = f"python -m benchmarks.{next(iter(benchmarks))}"
    p = parser(description, prog)
    if len(benchmarks) > 1:
        p.add_argument("only", nargs="*", help=f"run only these: {', '.join(benchmarks)}")
    args = p.parse_args(argv)
    mode = "quick" if args.quick else "tiny" if args.tiny else "full"
    chosen = list(getattr(args, "only", None) or benchmarks)
    unknown = [name for name in chosen if name not in benchmarks]
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)}")
    results: list[Result] = []
    skipped: dict[str, str] = {}
    started = time.perf_counter()
    with workspace(args.dir, args.keep) as workdir:
        info = machine(workdir)
        print(
            f"# {mode} run on {info.get('cpu')} x{info.get('cpus')},"
            f" {info.get('filesystem', '?')}, Python {info['python']}",
            flush=True,
        )
        for name in chosen:
            run = benchmarks[name]
            if run is None:
                skipped[name] = (missing or {}).get(name, "not available")
                print(f"{name}: skipped ({skipped[name]})", flush=True)
                continue
            config = Config(mode, args.rounds or DEFAULT_ROUNDS[mode], workdir / name)
            config.workdir.mkdir()
            begun = time.perf_counter()
            for result in run(config):
                results.append(result)
                print(result.line(), flush=True)
            print(f"# {name} took {time.perf_counter() - begun:.1f} s", flush=True)
    elapsed = time.perf_counter() - started
    print(f"# all done in {elapsed:.1f} s", flush=True)
    if args.json:
        document = {
            "mode": mode,
            "command": " ".join([p.prog, *(sys.argv[1:] if argv is None else argv)]),
            "machine": info,
            "seconds": elapsed,
            "skipped": skipped,
            "results": [result.to_dict() for result in results],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    missed = [result for result in results if result.met is False]
    return 1 if args.strict and missed else 0
