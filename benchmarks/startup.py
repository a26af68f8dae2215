"""Start-up: ``dreamflare ls`` on a small store against Python starting with what it needs.

A quick command is mostly start-up: the interpreter, the modules it imports, opening the
store. The floor of any click command over SQLite is ``python -c "import click, sqlite3,
blake3"`` (the interpreter and the three libraries ``dreamflare`` cannot do without); the
engine is the whole ``dreamflare ls --user U`` on a store of a few contents, as a person
types it (the installed executable, its output to /dev/null). The two alternate, one
invocation each in turn, ``count`` invocations a round; both run with bytecode cached, as
an installed package has it (one untimed run of each first writes the caches).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from benchmarks import harness
from benchmarks.harness import Config, Result
from dreamflare_store import Store

USER = "bench"
Step = Callable[[int], object]
FLOOR = [sys.executable, "-c", "import click, sqlite3, blake3"]


def small_store(config: Config, contents: int) -> str:
    """A store of ``contents`` small contents (a few KiB each); its folder."""
    path = config.fresh("store")
    with Store(path) as store:
        store.upload_many([os.urandom(2048 + index) for index in range(contents)], USER)
    return str(path)


def run(config: Config) -> list[Result]:
    """``dreamflare ls`` against the floor, at the sizes of ``config.mode``."""
    count = config.size(20, 10, 2)
    store = small_store(config, 20)
    env = harness.child_env()
    ls = [*harness.dreamflare_command(), "--store", store, "ls", "--user", USER]

    def call(argv: list[str]) -> None:
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)

    call(ls)  # bytecode written, store files in the page cache
    call(FLOOR)

    @contextmanager
    def sides(number: int) -> Iterator[tuple[Step, Step]]:
        yield (lambda index: call(ls), lambda index: call(FLOOR))

    engine_times, baseline_times = harness.paired(config, count, sides)
    return [
        Result(
            "startup",
            f"dreamflare ls on a store of 20 contents (seconds for {count} invocations)",
            "throughput",
            engine_times,
            baseline_times,
            'python -c "import click, sqlite3, blake3"',
            target=1 / 1.5,
            note="ratio = floor time / ls time: ls takes 1/ratio times the floor"
            " (target: within 1.5x)",
        )
    ]


if __name__ == "__main__":
    raise SystemExit(harness.main({"startup": run}, description=__doc__.splitlines()[0]))
