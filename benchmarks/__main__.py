"""``python -m benchmarks``: every benchmark, one after the other (see benchmarks/harness.py).

    python -m benchmarks                      # full sizes (1 GiB, 1,000,000 contents, ...)
    python -m benchmarks --quick              # under two minutes: CI runs this
    python -m benchmarks --json results.json  # also write every figure as JSON
    python -m benchmarks metadata memory      # only some of them

A benchmark module whose part of the engine is not there (the HTTP extra not installed,
``benchmarks/sync.py`` not written) is reported as skipped, not failed.
"""

from __future__ import annotations

import importlib
import importlib.util

from benchmarks import harness

# Run in this order: the cheap-to-set-up ones first, so a broken one shows early.
ORDER = (
    "startup",
    "ingest",
    "threads",
    "reads",
    "rerun",
    "metadata",
    "memory",
    "search",
    "thumbnails",
    "http",
    "sync",
)
MODULES = {"http": "http_api"}  # not benchmarks/http.py: run as a script it would shadow http


def load() -> tuple[dict[str, harness.Runner | None], dict[str, str]]:
    """Each benchmark's ``run``, or None and why it cannot run here."""
    runners: dict[str, harness.Runner | None] = {}
    missing: dict[str, str] = {}
    for name in ORDER:
        module_name = f"benchmarks.{MODULES.get(name, name)}"
        if importlib.util.find_spec(module_name) is None:
            runners[name] = None
            missing[name] = f"{module_name} is not written yet"
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            runners[name] = None
            missing[name] = f"cannot import it: {exc}"
            continue
        runners[name] = module.run
    return runners, missing


def main() -> int:
    runners, missing = load()
    return harness.main(
        runners, description=__doc__.splitlines()[0], missing=missing, prog="python -m benchmarks"
    )


if __name__ == "__main__":
    raise SystemExit(main())
