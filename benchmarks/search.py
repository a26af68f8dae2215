"""Search at scale: find a render by its prompt words, facets, and extraction at upload.

The store holds 1,000,000 contents of one user (30,000 in --quick), built as
``benchmarks/metadata.py`` builds its store: ``content.create`` ops made as an upload
makes them, folded in by the fold's batch path (the one that keeps the search index),
in large transactions. Each carries a generation record whose prompt is 30 words drawn
from a vocabulary of 4,000 with Zipf-like frequencies (s = 1), a model (of 20), up to two
LoRAs (of 60), a sampler (of 8), and two tags (of 200).

- search_content with two words of the vocabulary's middle ranks (each in 0.1-5% of the
  contents), limit 50: p50 under 5 ms, p99 under 20 ms.
- search_content with two words, the commonest included, against the raw FTS5 query
  ``SELECT rowid FROM search_words WHERE search_words MATCH ? ORDER BY rank LIMIT 50`` on
  the same index (its own connection): at least 0.5x its speed (ratio, engine time over
  raw time, at most 2); the same with a tag filter and at offset 5,000.
- facets without a query (from the counts the fold keeps): p99 under 50 ms; with a
  query, against a raw ``GROUP BY`` of the matches' facet terms: ratio at most 2.
- extraction's cost: ``upload_many`` of 5,000 PNG thumbnails carrying A1111 parameters
  (500 in --quick), extraction on against off, fresh stores, rounds alternating: at most
  10% slower (throughput ratio at least 0.91).
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import harness
from benchmarks.genmeta import thumbnail
from benchmarks.harness import Config, Result
from dreamflare_store import Store, ids, oplog
from dreamflare_store.clock import Timestamp
from dreamflare_store.oplog import Op

USER = "bench"
VOCABULARY = 4000
PROMPT_WORDS = 30
BATCH = 20_000
YEAR_MS = 365 * 24 * 3600 * 1000
MODELS = [f"model-{k}-xl" for k in range(20)]
LORAS = [f"lora_style_{k}" for k in range(60)]
SAMPLERS = ["Euler a", "Euler", "DPM++ 2M", "DPM++ SDE", "DDIM", "UniPC", "LMS", "Heun"]
TAGS = [f"tag{k}" for k in range(200)]
SEARCH_P50, SEARCH_P99, FACETS_P99 = 5e-3, 20e-3, 50e-3


def words() -> list[str]:
    """The vocabulary, commonest first: made-up pronounceable words, all distinct."""
    rng = random.Random(1)
    syllables = ["ka", "lo", "mi", "ren", "sa", "tu", "vo", "ne", "ri", "da", "shi", "po"]
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < VOCABULARY:
        word = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            out.append(word)
    return out


def weights() -> list[float]:
    return [1 / (rank + 1) for rank in range(VOCABULARY)]


def build(path: Path, count: int, vocabulary: list[str]) -> float:
    """A store of ``count`` contents with generation records; seconds it took."""
    started = time.perf_counter()
    rng = random.Random(7)
    cumulative = list(_accumulate(weights()))
    with Store(path) as store:
        seed = store.upload(thumbnail(0, False), USER, filename="seed.png")
        catalog, replica = store.replica.catalog, store.replica_id
        rseq = catalog.log.max_rseq(replica)
        first = store.replica.wall.time_ms() - YEAR_MS
        step = max(1, YEAR_MS // count)
        made = 1
        while made < count:
            ops: list[Op] = []
            for _ in range(min(BATCH, count - made)):
                now = first + made * step
                rseq += 1
                prompt = " ".join(rng.choices(vocabulary, cum_weights=cumulative, k=PROMPT_WORDS))
                generation = {
                    "generator": "A1111",
                    "prompt": prompt,
                    "negativePrompt": "blurry, lowres",
                    "seed": str(rng.randrange(2**32)),
                    "steps": 30,
                    "cfgScale": 7.0,
                    "sampler": rng.choice(SAMPLERS),
                    "scheduler": None,
                    "model": rng.choice(MODELS),
                    "modelHash": None,
                    "loras": [
                        {"name": name, "weight": 0.8}
                        for name in rng.sample(LORAS, rng.randint(0, 2))
                    ],
                    "width": 256,
                    "height": 256,
                    "aiGenerated": True,
                    "claimGenerator": None,
                }
                content_id = ids.new_id("content", now)
                ops.append(
                    Op(
                        ids.new_id("op", now),
                        Timestamp(now, 0, replica).encode(),
                        replica,
                        rseq,
                        oplog.CONTENT_CREATE,
                        content_id,
                        {
                            "owner": USER,
                            "author": USER,
                            "fields": {
                                "mime": seed.mime_type,
                                "size": seed.size,
                                "blob": seed.hash,
                                "width": 256,
                                "height": 256,
                                "filename": f"render-{made:07d}.png",
                                "description": None,
                                "tags": rng.sample(TAGS, 2),
                                "generation": generation,
                            },
                            "version_id": ids.new_id("version", now),
                            "changes": ["file", "filename", "tags"],
                        },
                    )
                )
                made += 1
            with catalog.atomic():
                catalog.fold.apply_new_contents(ops)
    return time.perf_counter() - started


def _accumulate(values: list[float]) -> list[float]:
    total, out = 0.0, []
    for value in values:
        total += value
        out.append(total)
    return out


def _middle_words(raw: sqlite3.Connection, vocabulary: list[str], count: int) -> list[str]:
    """Words in 0.1% to 5% of the contents (their document frequency, counted)."""
    found = []
    for word in vocabulary[20:400]:
        (n,) = raw.execute(
            "SELECT count(*) FROM search_words WHERE search_words MATCH ?", (f'prompt : "{word}"',)
        ).fetchone()
        if 0.001 * count <= n <= 0.05 * count:
            found.append(word)
        if len(found) >= 40:
            break
    return found or vocabulary[100:140]


def run(config: Config) -> list[Result]:
    count = config.size(1_000_000, 30_000, 1_000)
    calls = config.size(300, 200, 10)
    # A query with the commonest word matches most of the store: fewer calls of those.
    heavy = config.size(20, 100, 10)
    vocabulary = words()
    path = config.fresh("search-store")
    seconds = build(path, count, vocabulary)
    print(f"search: built {count:,} contents in {seconds:.1f} s", flush=True)
    raw = sqlite3.connect(path / "catalog.db", isolation_level=None)
    middle = _middle_words(raw, vocabulary, count)
    rng = random.Random(3)
    pairs = [" ".join(rng.sample(middle, 2)) for _ in range(calls)]
    common = [f"{vocabulary[0]} {rng.choice(vocabulary[1:200])}" for _ in range(calls)]
    results: list[Result] = []

    def raw_match(
        queries: list[str], offset: int = 0, tag: str | None = None
    ) -> Callable[[int], object]:
        def do(i: int) -> object:
            expression = " ".join(f'"{w}"' for w in queries[i % len(queries)].split())
            if tag is None:
                return raw.execute(
                    "SELECT rowid FROM search_words WHERE search_words MATCH ?"
                    " ORDER BY rank LIMIT 50 OFFSET ?",
                    (expression, offset),
                ).fetchall()
            return raw.execute(
                "SELECT rowid FROM search_words WHERE search_words MATCH ? AND +rowid IN"
                " (SELECT n FROM content_terms WHERE kind = 'tag' AND value = ?)"
                " ORDER BY rank LIMIT 50 OFFSET ?",
                (expression, tag, offset),
            ).fetchall()

        return do

    def raw_group(queries: list[str]) -> Callable[[int], object]:
        def do(i: int) -> object:
            expression = " ".join(f'"{w}"' for w in queries[i % len(queries)].split())
            return raw.execute(
                "SELECT t.kind, t.value, count(*) FROM search_words m"
                " JOIN content_terms t ON t.n = m.rowid WHERE search_words MATCH ?"
                " GROUP BY t.kind, t.value",
                (expression,),
            ).fetchall()

        return do

    with Store(path) as store:
        cases: list[
            tuple[str, Callable[[int], object], Callable[[int], object], float | None, int]
        ] = [
            (
                "search_content, two middle-rank words, limit 50",
                lambda i: store.search_content(USER, pairs[i % len(pairs)]),
                raw_match(pairs),
                SEARCH_P99,
                calls,
            ),
            (
                "search_content, two words with the commonest, limit 50",
                lambda i: store.search_content(USER, common[i % len(common)]),
                raw_match(common),
                None,
                heavy,
            ),
            (
                "search_content, two words with the commonest, tag filter",
                lambda i: store.search_content(USER, common[i % len(common)], tags="tag7"),
                raw_match(common, tag="tag7"),
                None,
                heavy,
            ),
            (
                "search_content, two words with the commonest, offset 5,000",
                lambda i: store.search_content(USER, common[i % len(common)], offset=5000),
                raw_match(common, offset=5000),
                None,
                heavy,
            ),
            (
                "facets, no query (maintained counts)",
                lambda i: store.facets(USER),
                raw_match(pairs),
                FACETS_P99,
                calls,
            ),
            (
                "facets, two middle-rank words",
                lambda i: store.facets(USER, pairs[i % len(pairs)]),
                raw_group(pairs),
                None,
                calls,
            ),
        ]
        for name, engine, baseline, target, count_calls in cases:
            engine_samples: list[float] = []
            baseline_samples: list[float] = []
            for number in range(config.rounds):
                pair = [(engine, engine_samples), (baseline, baseline_samples)]
                for action, into in pair if number % 2 else reversed(pair):
                    into.extend(harness.latencies(action, count_calls))
            results.append(
                Result(
                    "search",
                    f"{name}, {count:,} contents",
                    "latency",
                    engine_samples,
                    baseline_samples,
                    "raw FTS5 MATCH ORDER BY rank LIMIT 50"
                    if "GROUP" not in name and not name.startswith("facets, two")
                    else "raw GROUP BY of the matches' facet terms",
                    work_items=count_calls,
                    target=target,
                    note="ratio is engine time over raw time: at most 2 is the goal",
                )
            )
    raw.close()
    results.append(_extraction(config))
    return results


def _extraction(config: Config) -> Result:
    """upload_many of PNG thumbnails with A1111 parameters, extraction on against off."""
    files = [thumbnail(k, False) for k in range(config.size(5000, 500, 40))]

    def upload(extract: bool) -> Callable[[int], float]:
        def one(number: int) -> float:
            folder = config.fresh(f"extract-{'on' if extract else 'off'}-{number}")
            with Store(folder, extract_metadata=extract) as store:
                # Distinct bytes per round: the store must not find them already there.
                batch = [data + number.to_bytes(4, "big") for data in files]
                return harness.timed(lambda: store.upload_many(batch, USER))

        return one

    engine, baseline = harness.rounds(config, upload(True), upload(False))
    total = sum(len(data) for data in files)
    return Result(
        "search",
        f"upload_many of {len(files):,} PNG thumbnails with A1111 parameters, extraction on",
        "throughput",
        engine,
        baseline,
        "the same upload_many with extraction off",
        work_bytes=total,
        work_items=len(files),
        target=1 / 1.1,
    )


if __name__ == "__main__":
    raise SystemExit(harness.main({"search": run}, description=__doc__.splitlines()[0]))
