"""Reads: ``Store.read_content`` of a small blob against a raw key lookup and a verified file read.

``read_content(content_id, user)`` checks its arguments and the access rules, finds the
bytes' digest in the catalog, opens the blob, reads it, checks its BLAKE3 hash and counts
the read (API usage, analytics). The baseline does the least any verified read does on
the same machine, from the same files: a primary-key lookup of the digest in the same
catalog through ``sqlite3`` (``SELECT blob FROM contents WHERE content_id = ?``), then
open, read and close of a file holding the same bytes and the BLAKE3 of them, compared
with the digest. Those files are laid out as a store lays out its blob files
(``<2>/<2>/<digest>``), beside the store: the store itself keeps blobs this small as rows
of its catalog, so its read is a second key lookup where the baseline opens a file.

Each blob is read once in the whole run (a process remembers blobs it has verified and
unchanged since, and skips their hash: a first read is the full cost), so every round
reads blobs of its own. Engine and baseline take turns blob by blob. Defaults as users
get them (a store opened with ``Store(path)``).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import blake3

from benchmarks import harness
from benchmarks.harness import Config, Result
from dreamflare_store import Store

USER = "bench"
BLOB_SIZE = 32 << 10
Step = Callable[[int], object]


def verified_file_read(db: sqlite3.Connection, objects: Path, content_id: str) -> bytes:
    """The baseline: the digest by primary key, then the file's bytes, checked."""
    (digest,) = db.execute(
        "SELECT blob FROM contents WHERE content_id = ?", (content_id,)
    ).fetchone()
    with open(f"{objects}/{digest[:2]}/{digest[2:4]}/{digest}", "rb") as file:
        data = file.read()
    if blake3.blake3(data).hexdigest() != digest:
        raise RuntimeError(f"blob {digest} is corrupt")
    return data


def read_content(config: Config) -> Result:
    count = config.size(1000, 300, 20)
    path = config.fresh("store")
    files = config.fresh("files")
    datas = [os.urandom(BLOB_SIZE) for _ in range(count * config.rounds)]
    for data in datas:
        digest = blake3.blake3(data).hexdigest()
        folder = files / digest[:2] / digest[2:4]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / digest).write_bytes(data)
    with Store(path) as store:
        made = store.upload_many(datas, USER)
    ids = [content.content_id for content in made if not isinstance(content, Exception)]
    if len(ids) != count * config.rounds:
        raise RuntimeError("the blobs to read could not all be stored")

    @contextmanager
    def sides(number: int) -> Iterator[tuple[Step, Step]]:
        mine = ids[number * count : (number + 1) * count]
        db = sqlite3.connect(path / "catalog.db")
        try:
            with Store(path) as store:
                yield (
                    lambda index: store.read_content(mine[index], USER),
                    lambda index: verified_file_read(db, files, mine[index]),
                )
        finally:
            db.close()

    engine_times, baseline_times = harness.paired(config, count, sides)
    return Result(
        "reads",
        f"read_content of a {BLOB_SIZE >> 10} KiB blob, {count} blobs a round (each read"
        " once: hashed)",
        "throughput",
        engine_times,
        baseline_times,
        "sqlite3 primary-key lookup of the digest + open/read/close + BLAKE3 of a file of"
        " the same bytes",
        work_bytes=count * BLOB_SIZE,
        work_items=count,
        target=0.8,
        note="defaults: Store(path); access checked, read counted in usage and analytics",
    )


def run(config: Config) -> list[Result]:
    """Every read benchmark, at the sizes of ``config.mode``."""
    return [read_content(config)]


if __name__ == "__main__":
    raise SystemExit(harness.main({"reads": run}, description=__doc__.splitlines()[0]))
