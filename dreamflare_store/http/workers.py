"""Worker threads for store calls: the cheapest trip from the event loop and back.

A store call blocks (on SQLite and the disk), so the adapter makes it in a worker thread,
and for the small calls most requests make, the trip costs more than the call. Measured
on a 2-CPU machine, a trip that does nothing costs the process about 170 us of CPU through
``anyio.to_thread.run_sync`` (a capacity limiter, a cancel scope, a context copy), 80 us
through ``loop.run_in_executor`` (two futures chained across threads), and 30 us here: one
queue, one asyncio future, one wake-up of the loop per result.

Every trip the adapter makes goes through this pool: store calls, an upload's store call
reading from its pipe, a download's reads. So one bound holds for all of them, and the
threads that serve small calls are the ones already warm.

The pool is shared by every app of the process and adds threads only as calls wait for
one, up to a bound (see ``WorkerPool``). Its threads are daemons, so they never hold up
the end of the process: a store call cut short by the end of the process is no different
from a crash, which the store is built to survive. A call whose request is cancelled
still runs to its end (each store call is atomic); its result is dropped.

The pool serves asyncio event loops (uvicorn runs one); another loop gets a clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


class _Job:
    __slots__ = ("loop", "future", "call", "taken")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], call: Callable[[], Any]
    ) -> None:
        self.loop = loop
        self.future = future
        self.call = call
        self.taken = False


class WorkerPool:
    """Up to ``max_threads`` threads running calls handed over by event loops.

    Threads are added only when calls wait: a call that finds every thread busy starts
    another one if it is still waiting ``spawn_delay`` seconds later. Short calls thus
    share few threads, mostly one: each extra thread contending for the GIL slows them
    all down (GET /content/{contentId} serves about 15% more requests than with a thread
    per concurrent request), while a call that blocks (on the catalog's write lock, say)
    holds the others up for that long at most.
    """

    def __init__(self, max_threads: int, name: str, spawn_delay: float = 0.02) -> None:
        self.max_threads = max_threads
        self.name = name
        self.spawn_delay = spawn_delay
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0  # threads waiting for a job
        self._pending = 0  # jobs queued and not yet taken

    async def run(self, call: Callable[[], T]) -> T:
        """``call()``, run in one of the pool's threads; if the awaiting task is cancelled
        meanwhile, the call still runs to its end and its result is dropped."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # another event loop (trio, say)
            raise RuntimeError("the HTTP adapter's worker pool runs on asyncio") from None
        future: asyncio.Future[T] = loop.create_future()
        job = _Job(loop, future, call)
        with self._lock:
            self._pending += 1
            first = self._threads == 0
            if first:
                self._threads += 1
            busy = self._pending > self._idle
        self._jobs.put(job)
        if first:
            self._start()
        elif busy:
            loop.call_later(self.spawn_delay, self._still_waiting, job)
        return await future

    async def run_to_end(self, call: Callable[[], T]) -> T:
        """``call()``, run in one of the pool's threads, awaited to its end even if the
        awaiting task is cancelled meanwhile (then the cancellation follows).

        For calls whose end the caller must see before going on: an upload's store call
        (its temp file removed), a download's read (before the reader is closed).
        """
        with anyio.CancelScope(shield=True):
            result = await self.run(call)
        return result

    def _still_waiting(self, job: _Job) -> None:
        if job.taken:
            return
        with self._lock:
            if self._threads >= self.max_threads:
                return
            self._threads += 1
        self._start()

    def _start(self) -> None:
        threading.Thread(target=self._work, name=self.name, daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            job = self._jobs.get()
            job.taken = True
            with self._lock:
                self._idle -= 1
                self._pending -= 1
            try:
                result, error = job.call(), None
            except BaseException as exc:  # handed to the awaiting request, whatever it is
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                job.loop.call_soon_threadsafe(_settle, job.future, result, error)
            del job, result, error  # hold nothing while idle


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    elif isinstance(error, StopIteration):  # a future refuses to carry StopIteration
        future.set_exception(RuntimeError(f"the call raised {error!r}"))
    else:
        future.set_exception(error)


# An upload's store call holds its thread while the body arrives, however slowly the client
# sends it: the bound leaves room for many such beside the short calls of other requests.
POOL = WorkerPool(64, "dreamflare-http-worker")
"""The pool every app of the process shares (as anyio's default is shared)."""
