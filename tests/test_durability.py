"""Crashes and concurrency: nothing acknowledged is lost, no lock error reaches a caller."""

from __future__ import annotations

import multiprocessing
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import blake3
import pytest
import workers
from helpers import stored_blobs

from dreamflare_store import Store

WORKERS = Path(__file__).with_name("workers.py")


@pytest.mark.parametrize(
    ("mode", "rounds", "window"),
    [("crash", 32, 0.4), ("batch", 12, 1.0), ("threads", 16, 0.6)],
    ids=["one upload at a time", "upload_many batches", "four threads sharing commits"],
)
def test_sigkill_at_random_moments_loses_nothing_acknowledged(
    tmp_path: Path, mode: str, rounds: int, window: float
) -> None:
    store_path = tmp_path / "store"
    acks = tmp_path / "acks.txt"
    rng = random.Random(2026)
    acknowledged: dict[tuple[int, int], tuple[str, int]] = {}
    kills = 0
    for round_ in range(3 * rounds):
        # At least ``rounds`` kills, and more (on a slow machine) until over 30 uploads
        # were acknowledged, so that the check below has something to check.
        if round_ >= rounds and len(acknowledged) > 30:
            break
        child = subprocess.Popen(
            [sys.executable, str(WORKERS), mode, str(store_path), str(acks), str(round_)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        # Wait until the worker has opened the store (start-up is slow on a loaded machine),
        # then kill it at a random moment of its work.
        deadline = time.monotonic() + 30
        while not acks.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, window))
        if child.poll() is not None:
            pytest.fail(f"worker died on its own: {child.stderr.read().decode()[-2000:]}")
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stderr.close()
        kills += 1
        for line in acks.read_text().splitlines():
            parts = line.split()
            if len(parts) == 4:  # a line cut by the kill was never acknowledged
                acknowledged[(int(parts[2]), int(parts[3]))] = (parts[0], int(parts[1]))
        with Store(store_path) as store:
            assert store.verify() == [], f"after kill {kills}"
            for (seed, n), (content_id, version) in acknowledged.items():
                user = f"u{seed % 3}"
                data = store.read_content(content_id, user, version=version)
                expected = workers.payload(seed, n)
                assert blake3.blake3(data).digest() == blake3.blake3(expected).digest(), (seed, n)
    assert kills >= rounds
    assert len(acknowledged) > 30


@pytest.mark.parametrize("mode", ["gc", "repair", "reserve"])
def test_sigkill_during_maintenance_loses_nothing_acknowledged(tmp_path: Path, mode: str) -> None:
    """Kills during gc, verify(repair=True) and the reserve's release and retaking: every
    acknowledged upload not deleted reads back, verify (repairing from the remote where a
    kill interrupted a repair) finds nothing wrong, and gc leaves no temp file."""
    store_path = tmp_path / "store"
    acks = tmp_path / "acks.txt"
    rng = random.Random(mode)
    rounds = 10
    for round_ in range(rounds):
        child = subprocess.Popen(
            [sys.executable, str(WORKERS), mode, str(store_path), str(acks), str(round_)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while not acks.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.1, 1.0))
        if child.poll() is not None:
            pytest.fail(f"worker died on its own: {child.stderr.read().decode()[-2000:]}")
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stderr.close()
        live: dict[str, tuple[int, int]] = {}
        for line in acks.read_text().splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[0] == "+":
                live[parts[1]] = (int(parts[2]), int(parts[3]))
            elif len(parts) == 2 and parts[0] == "-":
                live.pop(parts[1], None)
        with Store(store_path) as store:
            assert store.replica.blobs.reserve.held()
            assert store.verify(repair=mode == "repair") == [], f"after kill {round_ + 1}"
            for content_id, (seed, n) in live.items():
                assert store.read_content(content_id, "m") == workers.payload(seed, n)
            store.gc(min_age=0)
            assert list((store_path / "tmp").iterdir()) == []
    assert live


def _run_worker(args: tuple[str, str, int, str]) -> None:
    workers.upload_many(*args)


def test_four_processes_upload_to_one_store_at_once(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    Store(store_path).close()
    users = ["p0", "p1", "p2", "p3"]
    count = 40
    context = multiprocessing.get_context("spawn")
    jobs = [(str(store_path), user, count, str(tmp_path / f"{user}.ids")) for user in users]
    processes = [context.Process(target=_run_worker, args=(job,)) for job in jobs]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    with Store(store_path) as store:
        assert store.verify() == []
        for user in users:
            ids = (tmp_path / f"{user}.ids").read_text().split("\n")
            assert len(set(ids)) == count
            page = store.list_content(user, limit=1000)
            assert sorted(c.content_id for c in page.items) == sorted(ids)
            usage = store.get_storage_usage(user)
            assert (usage.content_count, usage.version_count) == (count, count)
            assert usage.bytes == sum(c.size for c in page.items)
            api = store.get_api_usage(user)
            assert api.by_operation["upload"]["calls"] == count
            assert api.by_operation["get_content"]["calls"] == count // 5
        assert (
            store.replica.catalog.reads.stored_storage()
            == store.replica.catalog.reads.recount_storage()
        )
        # 5 payloads are shared by all workers (stored once), the rest are their own.
        assert len(stored_blobs(store)) == 5 + 4 * count // 2


def test_threads_share_one_store(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with Store(tmp_path / "store") as store:

        def work(i: int) -> str:
            c = store.upload(file=f"thread-{i}".encode(), user_id=f"t{i % 4}")
            store.update_metadata(c.content_id, f"t{i % 4}", tags="x")
            return c.content_id

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(work, range(80)))
        assert len(set(ids)) == 80
        assert sum(store.list_content(f"t{i}").total for i in range(4)) == 80
        assert store.verify() == []
