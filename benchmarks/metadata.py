"""Metadata at scale: the read and write operations with 1,000,000 contents in the store.

The store is built by a bulk path, not a million uploads: four real files are uploaded
through ``Store.upload`` (their blobs are then shared by every content), and the other
contents are created by ``content.create`` ops, made as ``Store.upload`` makes them and
folded in by ``Catalog.apply`` (the one code path local writes and sync pulls take) in
large transactions. Their times are spread over the past year (as if uploaded one every
half minute), so no two contents share a second. The result is a store ``verify()``
accepts; every content belongs to one user, so list pages reach offset 999,900.

Each operation is called many times per round, on contents picked at random, and its
p50 and p99 latency are set against a raw ``sqlite3`` primary-key lookup on the same
catalog file (``SELECT * FROM contents WHERE content_id = ?``, its own connection): the
cheapest query the file can answer. A list page is set against a raw read of the same
100 rows, by the arrival numbers the page starts at (looked up once, beforehand): what
the page costs beyond reading its rows is finding where it starts and building records.
``update_metadata`` is a durable write, so its baseline is a raw durable write: the same
kind of row ``UPDATE`` by primary key, one transaction per call, WAL with
``synchronous=FULL`` as the store uses.

Target (DESIGN.md): every read under 1 ms at p99, at any page depth. ``Catalog.list_page``
at the deepest offset is measured alone too: the rows of the page without the 100
``Content`` records built from them, to tell the lookup's cost from Python's.
"""

from __future__ import annotations

import random
import sqlite3
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks import harness
from benchmarks.harness import Config, Result
from dreamflare_store import Content, Store, ids, oplog
from dreamflare_store.clock import Timestamp
from dreamflare_store.oplog import Op

USER = "bench"
SEEDS = 4
BATCH = 20_000  # ops per transaction while building
YEAR_MS = 365 * 24 * 3600 * 1000
READ_TARGET = 1e-3
BASELINES = {
    "read": "raw sqlite3 primary-key SELECT",
    "page": "raw sqlite3 SELECT * of the same 100 rows by arrival number",
    "write": "raw sqlite3 UPDATE by primary key, durable commit",
}


def png(width: int, height: int, salt: int) -> bytes:
    """A small PNG-looking file (signature, IHDR, some bytes): a thumbnail's metadata."""
    body = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    ihdr = struct.pack(">I", 13) + body + struct.pack(">I", zlib.crc32(body))
    return b"\x89PNG\r\n\x1a\n" + ihdr + random.Random(salt).randbytes(2000)


@dataclass
class Fixture:
    """A built store and contents to call operations on."""

    path: Path
    count: int
    sample: list[str]  # content ids spread over the whole store
    build_seconds: float


def build(path: Path, count: int, sample_size: int = 1000, seed: int = 7) -> Fixture:
    """A store with ``count`` contents of one user, made by the bulk path (see above)."""
    started = time.perf_counter()
    rng = random.Random(seed)
    with Store(path) as store:
        seeds: list[Content] = [
            store.upload(png(64 + i, 48 + i, i), USER, tags="seed", filename=f"seed-{i}.png")
            for i in range(SEEDS)
        ]
        catalog, replica = store.replica.catalog, store.replica_id
        rseq = catalog.log.max_rseq(replica)
        first = store.replica.wall.time_ms() - YEAR_MS
        step = YEAR_MS // count
        picked = set(rng.sample(range(SEEDS, count), min(sample_size, count - SEEDS)))
        sample: list[str] = []
        made = len(seeds)
        while made < count:
            with catalog.atomic():
                for _ in range(min(BATCH, count - made)):
                    like = seeds[made % SEEDS]
                    now = first + made * step + rng.randrange(step)
                    rseq += 1
                    content_id = ids.new_id("content", now)
                    op = Op(
                        op_id=ids.new_id("op", now),
                        hlc=Timestamp(now, 0, replica).encode(),
                        replica=replica,
                        rseq=rseq,
                        kind=oplog.CONTENT_CREATE,
                        entity=content_id,
                        data={
                            "owner": USER,
                            "author": USER,
                            "fields": {
                                "mime": like.mime_type,
                                "size": like.size,
                                "blob": like.hash,
                                "width": like.width,
                                "height": like.height,
                                "filename": f"image-{made:07d}.png",
                                "description": f"generated image {made}",
                                "tags": ["bench", f"t{made % 100}"],
                            },
                            "version_id": ids.new_id("version", now),
                            "changes": ["file", "filename", "description", "tags"],
                        },
                    )
                    catalog.fold.apply(op)
                    if made in picked:
                        sample.append(content_id)
                    made += 1
        # A few versions on the sampled contents, through the API, for the versions call.
        for content_id in sample[:: max(1, len(sample) // 50)]:
            for n in range(2):
                store.update_metadata(content_id, USER, description=f"edit {n}")
    rng.shuffle(sample)
    return Fixture(path, count, sample, time.perf_counter() - started)


def run(config: Config) -> list[Result]:
    """Every metadata benchmark, at the size of ``config.mode``."""
    count = config.size(1_000_000, 30_000, 500)
    calls = config.size(2_000, 500, 20)
    fixture = build(config.fresh("store"), count)
    print(
        f"metadata: built {count:,} contents in {fixture.build_seconds:.1f} s"
        f" ({count / fixture.build_seconds:,.0f} contents/s)",
        flush=True,
    )
    raw = sqlite3.connect(fixture.path / "catalog.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode = WAL")
    raw.execute("PRAGMA synchronous = FULL")
    sample = fixture.sample

    def pick(index: int) -> str:
        return sample[index % len(sample)]

    def raw_get(index: int) -> None:
        raw.execute("SELECT * FROM contents WHERE content_id = ?", (pick(index),)).fetchone()

    def raw_page(offset: int) -> Callable[[int], None]:
        """The same 100 rows as the list page at ``offset``, read straight from the file
        by their arrival numbers (found here once): the floor for a page's rows."""
        row = raw.execute(
            "SELECT n FROM contents WHERE owner = ? AND deleted = 0 ORDER BY n DESC"
            " LIMIT 1 OFFSET ?",
            (USER, offset),
        ).fetchone()
        top = row[0]

        def read(index: int) -> None:
            raw.execute(
                "SELECT * FROM contents WHERE n <= ? ORDER BY n DESC LIMIT 100", (top,)
            ).fetchall()

        return read

    def raw_update(index: int) -> None:
        raw.execute("BEGIN IMMEDIATE")
        raw.execute(
            "UPDATE contents SET description = ? WHERE content_id = ?",
            (f"raw {index}", pick(index)),
        )
        raw.execute("COMMIT")

    results = []
    with Store(fixture.path) as store:
        deepest = count - 100
        middle = count // 2
        cases: list[tuple[str, Callable[[int], object], Callable[[int], None], str]] = [
            ("get_content", lambda i: store.get_content(pick(i), USER), raw_get, "read"),
            (
                "list_content, 100 at offset 0",
                lambda i: store.list_content(USER, limit=100, offset=0),
                raw_page(0),
                "page",
            ),
            (
                f"list_content, 100 at offset {middle:,}",
                lambda i: store.list_content(USER, limit=100, offset=middle),
                raw_page(middle),
                "page",
            ),
            (
                f"list_content, 100 at offset {deepest:,}",
                lambda i: store.list_content(USER, limit=100, offset=deepest),
                raw_page(deepest),
                "page",
            ),
            (
                f"Catalog.list_page alone (the rows, no records), 100 at offset {deepest:,}",
                lambda i: store.replica.catalog.reads.list_page(USER, 100, deepest),
                raw_page(deepest),
                "page",
            ),
            ("get_storage_usage", lambda i: store.get_storage_usage(USER), raw_get, "read"),
            (
                "get_content_versions",
                lambda i: store.get_content_versions(pick(i), USER),
                raw_get,
                "read",
            ),
            (
                "update_metadata",
                lambda i: store.update_metadata(pick(i), USER, description=f"bench {i}"),
                raw_update,
                "write",
            ),
        ]
        for name, engine, baseline, kind in cases:
            engine_samples: list[float] = []
            baseline_samples: list[float] = []
            for number in range(config.rounds):
                pair = [(engine, engine_samples), (baseline, baseline_samples)]
                for action, into in pair if number % 2 else reversed(pair):
                    into.extend(harness.latencies(action, calls))
            results.append(
                Result(
                    "metadata",
                    f"{name} ({count:,} contents)",
                    "latency",
                    engine_samples,
                    baseline_samples,
                    BASELINES[kind],
                    work_items=count,
                    target=None if kind == "write" else READ_TARGET,
                )
            )
    raw.close()
    return results


if __name__ == "__main__":
    raise SystemExit(harness.main({"metadata": run}, description=__doc__.splitlines()[0]))
