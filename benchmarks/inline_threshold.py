"""Small blobs as rows or as files: where the catalog's rows stop paying (``INLINE_MAX``).

For each size, ``Store.upload(bytes)`` one call at a time (each durable when it returns)
into a store that keeps every blob as a file, and into one that keeps them as rows,
taking turns upload by upload so both meet the same load. Prints uploads per second and
the ratio rows / files. Run: ``python -m benchmarks.inline_threshold [COUNT]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from dreamflare_store import Store

SIZES_KIB = (16, 64, 128, 256, 512, 1024)


def main(count: int = 60) -> None:
    """Measure and print one line per size."""
    with tempfile.TemporaryDirectory(dir=os.getcwd(), prefix=".inline-bench-") as work:
        for kib in SIZES_KIB:
            files = Store(Path(work) / f"files-{kib}")
            files.replica.blobs.inline_max = -1
            rows = Store(Path(work) / f"rows-{kib}")
            rows.replica.blobs.inline_max = 1 << 30
            spent = {"files": 0.0, "rows": 0.0}
            for i in range(count):
                for name, store in (("files", files), ("rows", rows))[:: 1 if i % 2 else -1]:
                    data = os.urandom(kib << 10)
                    start = time.perf_counter()
                    store.upload(file=data, user_id="bench")
                    spent[name] += time.perf_counter() - start
            files.close()
            rows.close()
            per = {name: count / seconds for name, seconds in spent.items()}
            print(
                f"{kib:5d} KiB  files {per['files']:7.1f}/s  rows {per['rows']:7.1f}/s"
                f"  rows/files {per['rows'] / per['files']:.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
