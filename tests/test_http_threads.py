"""The adapter's two bridges between the event loop and worker threads, on their own.

The worker pool: results and errors come back to the awaiting request, the threads are
bounded, and a cancelled request's call still runs to its end. The upload pipe: the
event loop puts bytes in, a worker thread reads them out, whole and in order; the loop
waits while the pipe is full (memory stays bounded however slow the reader), and the
ways an upload ends (done, failed, refused by the store) each reach the other side.
"""

from __future__ import annotations

import os
import threading
import time

import anyio
import anyio.to_thread
import pytest

from dreamflare_store.http.upload import UploadPipe
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


# -- the upload pipe ---------------------------------------------------------------------


async def test_bytes_flow_in_order_and_a_full_pipe_holds_the_loop_back() -> None:
    limit, chunk = 256 * KIB, 64 * KIB
    data = os.urandom(64 * chunk)
    pipe = UploadPipe("f.bin", limit=limit)
    got = bytearray()
    read_so_far = [0]

    def reader() -> None:
        while piece := pipe.read(100_000):  # not a multiple of the chunks: reads split them
            assert len(piece) <= 100_000
            got.extend(piece)
            read_so_far[0] = len(got)
            time.sleep(0.002)  # slower than the loop: the pipe fills up

    most_queued = 0
    async with anyio.create_task_group() as group:
        group.start_soon(anyio.to_thread.run_sync, reader)
        for at in range(0, len(data), chunk):
            assert await pipe.put(data[at : at + chunk])
            # Whatever has been put and not yet read is what the pipe holds.
            most_queued = max(most_queued, at + chunk - read_so_far[0])
        pipe.end()
    assert bytes(got) == data
    # A put is taken while less than the limit is queued; the reader may have taken one
    # more read's worth than it has counted yet.
    assert most_queued <= limit + chunk + 100_000
    assert most_queued < len(data) // 4  # and it did hold the loop back


async def test_a_failed_pipe_drops_what_it_holds_and_the_reader_gets_the_error() -> None:
    pipe = UploadPipe(None)
    assert await pipe.put(b"queued, never read")
    pipe.fail(ValueError("the body was truncated"))
    pipe.end()  # as stream_upload does on its way out: the failure stands
    with pytest.raises(ValueError, match="truncated"):
        await anyio.to_thread.run_sync(pipe.read, 10)


async def test_a_reader_waiting_for_bytes_wakes_on_failure() -> None:
    pipe = UploadPipe(None)
    outcome: list[BaseException] = []

    def reader() -> None:
        try:
            pipe.read(10)
        except ValueError as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(anyio.to_thread.run_sync, reader)
        await anyio.sleep(0.05)  # the reader is waiting
        pipe.fail(ValueError("the client went away"))
    assert [str(exc) for exc in outcome] == ["the client went away"]


async def test_the_reader_sees_the_rest_then_the_end() -> None:
    pipe = UploadPipe(None)
    for piece in (b"abc", b"defgh", b"ij"):
        assert await pipe.put(piece)
    pipe.end()

    def read_all() -> list[bytes]:
        return [pipe.read(4), pipe.read(4), pipe.read(4), pipe.read(4), pipe.read(0)]

    assert await anyio.to_thread.run_sync(read_all) == [b"abcd", b"efgh", b"ij", b"", b""]


async def test_a_loop_waiting_on_a_full_pipe_learns_that_the_store_stopped() -> None:
    pipe = UploadPipe(None, limit=10)
    assert await pipe.put(b"x" * 10)  # full now
    results: list[bool] = []

    async def producer() -> None:
        results.append(await pipe.put(b"more"))

    async with anyio.create_task_group() as group:
        group.start_soon(producer)
        await anyio.sleep(0.05)
        assert results == []  # waiting for room
        pipe.stop_reading()  # the store refused the upload
    assert results == [False]
    assert await pipe.put(b"again") is False


async def test_reads_from_another_thread_wake_the_loop_once_there_is_room() -> None:
    pipe = UploadPipe(None, limit=4)
    assert await pipe.put(b"1234")
    started = threading.Event()

    def reader() -> bytes:
        started.wait()
        time.sleep(0.05)
        return pipe.read(4)

    async with anyio.create_task_group() as group:
        group.start_soon(anyio.to_thread.run_sync, reader)
        started.set()
        assert await pipe.put(b"5678")  # waits until the reader has taken the first four
    assert await anyio.to_thread.run_sync(pipe.read, 8) == b"5678"
