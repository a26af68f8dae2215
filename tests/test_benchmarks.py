"""The benchmarks keep running: each module at tiny sizes, and the bulk loader's store is sound.

Timings are never asserted here (a shared CI machine measures nothing reliable); what is
asserted is that every benchmark runs, measures both sides, and reports a ratio.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the benchmarks live beside the package, not in it

from benchmarks import __main__ as runner  # noqa: E402
from benchmarks import harness, metadata  # noqa: E402


@pytest.mark.parametrize("name", [name for name in runner.ORDER if runner.load()[0][name]])
def test_benchmark_runs_at_tiny_size(name: str, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            name,
            "--tiny",
            "--json",
            str(out),
            "--dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ratio" in done.stdout
    document = json.loads(out.read_text())
    assert document["mode"] == "tiny" and document["machine"]["cpus"]
    results = document["results"]
    assert results and all(r["benchmark"] == name for r in results)
    for result in results:
        assert len(result["engine"]) >= 1 and len(result["baseline"]) >= 1
        assert all(value > 0 for value in result["engine"] + result["baseline"])
        assert result["ratio"] > 0
    # The work folder is gone: rounds never delete, the run deletes everything at the end.
    assert [path.name for path in tmp_path.iterdir()] == ["results.json"]


def test_runner_reports_a_missing_benchmark_as_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "ORDER", ("nonexistent",))
    runners, missing = runner.load()
    assert runners == {"nonexistent": None} and "not written" in missing["nonexistent"]


def test_bulk_loader_builds_a_store_that_verifies(tmp_path: Path) -> None:
    from dreamflare_store import Store

    fixture = metadata.build(tmp_path / "store", 300, sample_size=20)
    with Store(fixture.path) as store:
        assert store.verify() == []
        page = store.list_content(metadata.USER, limit=100, offset=250)
        assert page.total == 300 and len(page.items) == 50
        usage = store.get_storage_usage(metadata.USER)
        assert usage.content_count == 300
        assert len(fixture.sample) == 20
        assert all(store.get_content(cid, metadata.USER) for cid in fixture.sample)


def test_percentile_and_ratios() -> None:
    samples = [float(n) for n in range(1, 101)]
    assert harness.percentile(samples, 50) == 50 and harness.percentile(samples, 99) == 99
    fast = harness.Result("b", "n", "throughput", [1.0, 2.0, 3.0], [1.0, 1.0, 1.0], "base")
    assert fast.ratio == 0.5 and fast.met is None
    fast.target = 0.8
    assert fast.met is False
    slow = harness.Result("b", "n", "latency", [0.002] * 10, [0.001] * 10, "base", target=1e-3)
    assert slow.ratio == 2 and slow.met is False


def _catalog_rows(store: Path) -> dict[str, list[tuple[object, ...]]]:
    import sqlite3

    conn = sqlite3.connect(store / "catalog.db")
    try:
        return {
            table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in ("contents", "versions", "ops", "blob_data", "storage_usage")
        }
    finally:
        conn.close()


@pytest.mark.parametrize("way", ["per_call_work", "folder_work"])
def test_sql_floor_replay_leaves_the_catalog_the_engine_left(way: str, tmp_path: Path) -> None:
    """The floor is only a floor if the bare replay does the engine's writes, all of them."""
    from benchmarks import ingest, sql_floor
    from dreamflare_store import Store

    source = tmp_path / "source"
    source.mkdir()
    ingest.make_small_files(source, 6, seed=4)
    files = ingest.files_of(source)
    start = tmp_path / "start"
    with Store(start) as store:
        store.upload(b"first", "bench")
    recorded, replayed = tmp_path / "recorded", tmp_path / "replayed"
    shutil.copytree(start, recorded)
    shutil.copytree(start, replayed)
    pragmas, statements = sql_floor.record(getattr(sql_floor, way), recorded, files)
    assert any(sql.startswith("INSERT INTO contents") for _, sql, _ in statements)
    assert any(sql.startswith("PRAGMA synchronous") for _, sql, _ in pragmas)
    sql_floor.replay(replayed, pragmas, statements, files)
    expected, got = _catalog_rows(recorded), _catalog_rows(replayed)
    assert len(got["contents"]) == 7 and len(got["versions"]) == 7
    assert got == expected


def test_sql_floor_prints_its_ratios(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks import sql_floor

    monkeypatch.chdir(tmp_path)
    sql_floor.main(count=3, rounds=1)
    out = capsys.readouterr().out
    assert out.count("ratio engine") == 2 and "replay" in out
    assert list(tmp_path.iterdir()) == []  # its work folder is gone


def test_extraction_floor_indexes_the_records_it_times(tmp_path: Path) -> None:
    """The floor under extraction's cost counts real work: the records it reads are the
    uploads' records, and the index it times finds the renders by their prompt words."""
    from benchmarks import search
    from benchmarks.genmeta import thumbnail
    from dreamflare_store import Store
    from dreamflare_store.replica import Replica

    files = [thumbnail(k, False) for k in range(3)]
    records = [Replica.generation_in(data) for data in files]
    assert all(record and record["prompt"] for record in records)
    assert search._parse_time(files) > 0
    config = harness.Config("tiny", 1, tmp_path)
    assert search._index_time(config, files, 0) >= 0
    with Store(tmp_path / "check") as store:
        items = [(n, "bench", f"t{n}.png", None, (), r) for n, r in enumerate(records, 1)]
        search._index(store, items)
        word = records[0]["prompt"].split()[1].strip(",")
        (found,) = store.replica.catalog.db.conn.execute(
            "SELECT count(*) FROM search_words WHERE search_words MATCH ?", (f'"{word}"',)
        ).fetchone()
    assert found >= 1
