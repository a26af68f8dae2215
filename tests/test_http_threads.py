"""The adapter's bridge between the event loop and worker threads, on its own.

The worker pool: results and errors come back to the awaiting request, the threads are
bounded, and a cancelled request's call still runs to its end.
"""

from __future__ import annotations

import threading
import time

import anyio
import anyio.to_thread
import pytest

from dreamflare_store.http.workers import WorkerPool

pytestmark = pytest.mark.anyio

KIB = 1024


@pytest.fixture
def anyio_backend() -> str:
    """asyncio only: uvicorn serves the adapter on asyncio, and the worker pool hands
    results back through its loop (trio, installed with selenium, is not a target)."""
    return "asyncio"


# -- the worker pool ---------------------------------------------------------------------


async def test_the_pool_returns_results_and_raises_errors_in_the_caller() -> None:
    pool = WorkerPool(2, "test-pool")
    main = threading.get_ident()
    assert await pool.run(threading.get_ident) != main
    assert await pool.run(lambda: 42) == 42

    class Refused(Exception):
        pass

    def refuse() -> None:
        raise Refused("no")

    with pytest.raises(Refused, match="no"):
        await pool.run(refuse)

    def stop() -> None:
        raise StopIteration

    with pytest.raises(RuntimeError, match="StopIteration"):
        await pool.run(stop)


async def test_the_pool_runs_calls_at_once_up_to_its_bound() -> None:
    pool = WorkerPool(3, "test-pool")
    lock = threading.Lock()
    running, most = [0], [0]

    def call() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(pool.run, call)
    assert most[0] == 3
    names = {thread.name for thread in threading.enumerate()}
    assert "test-pool" in names


async def test_short_calls_share_a_thread_and_a_blocked_one_holds_nobody_up() -> None:
    pool = WorkerPool(4, "test-pool", spawn_delay=0.05)
    threads: set[int] = set()

    def quick() -> None:
        threads.add(threading.get_ident())

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(pool.run, quick)
    assert len(threads) == 1  # no call waited long enough to start another thread

    release = threading.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(pool.run, lambda: release.wait(10))
        await anyio.sleep(0.01)  # the one thread is blocked now
        with anyio.fail_after(5):
            await pool.run(quick)  # served by a thread started for it
        release.set()
    assert len(threads) == 2


async def test_a_cancelled_call_still_runs_to_its_end() -> None:
    pool = WorkerPool(1, "test-pool")
    finished = threading.Event()

    def slow() -> str:
        time.sleep(0.1)
        finished.set()
        return "dropped"

    with anyio.move_on_after(0.02):
        await pool.run(slow)
    assert not finished.is_set()
    assert finished.wait(5)
    assert await pool.run(lambda: "next") == "next"  # the thread serves on
