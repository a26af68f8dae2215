"""Counters that reads produce: API usage, analytics, keys' last use.

Reads must not take the write lock per call, so counts are added up in memory and written
in one transaction per batch: by a thread of their own when the buffer is large or old
enough, on ``flush()``, on close, and at interpreter exit. Rows are per replica (grow-only
counters, summed when read), so replicas merge by taking, for each other replica, the
larger of two snapshots.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .catalog import Catalog

FLUSH_EVENTS = 2_000
FLUSH_SECONDS = 1.0

UsageKey = tuple[str, str, str]  # user, operation, day
StatKey = tuple[str, str]  # content id, day


class CounterBuffer:
    """Thread-safe accumulation of counts, flushed to the catalog in batches."""

    def __init__(self, catalog: Catalog, replica: str, monotonic: Callable[[], float]) -> None:
        self.catalog = catalog
        self.replica = replica
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._flush_lock = threading.RLock()
        self._reset()
        self._last_flush = monotonic()
        self._stopped = False
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None
        self._writer_pid = 0

    def _reset(self) -> None:
        self.usage: defaultdict[UsageKey, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self.stats: defaultdict[StatKey, list[int]] = defaultdict(lambda: [0, 0, 0])
        self.viewers: set[tuple[str, str, str]] = set()
        self.last_used: dict[str, int] = {}
        self.events = 0

    def count_call(
        self,
        user: str,
        operation: str,
        day: str,
        error: bool,
        bytes_in: int,
        bytes_out: int,
        calls: int = 1,
    ) -> None:
        with self._lock:
            cell = self.usage[(user, operation, day)]
            cell[0] += calls
            cell[1] += calls if error else 0
            cell[2] += bytes_in
            cell[3] += bytes_out
            self.events += calls
        self.maybe_flush()

    def count_read(self, content_id: str, user: str, day: str, view: bool, served: int) -> None:
        with self._lock:
            cell = self.stats[(content_id, day)]
            if view:
                cell[0] += 1
            else:
                cell[1] += 1
                cell[2] += served
            self.viewers.add((content_id, day, user))
            self.events += 1
        self.maybe_flush()

    def add_served(self, content_id: str, day: str, served: int) -> None:
        """More bytes of a download already counted (a streamed read going on)."""
        with self._lock:
            self.stats[(content_id, day)][2] += served

    def add_bytes_out(self, user: str, operation: str, day: str, count: int) -> None:
        """Bytes a call already counted goes on serving (a file object being read)."""
        with self._lock:
            self.usage[(user, operation, day)][3] += count

    def key_used(self, key_id: str, when_ms: int) -> None:
        with self._lock:
            self.last_used[key_id] = when_ms
            self.events += 1
        self.maybe_flush()

    def pending(self) -> bool:
        with self._lock:
            return bool(self.usage or self.stats or self.viewers or self.last_used)

    def maybe_flush(self) -> None:
        """Have a batch written if the buffer is large or old enough, never by this caller.

        A thread of the buffer's own writes it, so a read never waits for the write lock
        (the HTTP adapter serves point reads on its event loop). A batch that cannot be
        written now (the lock held past the busy timeout, a full disk) stays buffered for
        the next try, or for ``flush()`` and close, which do raise.
        """
        if self.events < FLUSH_EVENTS and self._monotonic() - self._last_flush < FLUSH_SECONDS:
            return
        with self._lock:
            if self._stopped:
                return
            if self._writer_pid != os.getpid():  # none yet, or it stayed in the parent
                self._wake = threading.Event()
                self._writer_pid = os.getpid()
                thread = threading.Thread(
                    target=self._write_when_woken,
                    args=(self._wake,),
                    name="dreamflare-counters",
                    daemon=True,  # at exit the store's finalizer writes what is left
                )
                thread.start()
                self._writer = thread
            self._wake.set()

    def _write_when_woken(self, wake: threading.Event) -> None:
        while True:
            wake.wait()
            wake.clear()
            if self._stopped:
                return
            try:
                self.flush()
            except Exception:  # noqa: BLE001 (flush() put the counts back for the next try)
                time.sleep(0.05)  # a locked or full disk: do not spin

    def stop(self) -> None:
        """End the writing thread (its batch in flight finishes first); then ``flush()``
        writes what is left. The buffer's end, at close."""
        with self._lock:
            self._stopped = True
            writer, self._writer = self._writer, None
            self._wake.set()
        if writer is not None and writer is not threading.current_thread():
            writer.join()

    def flush(self) -> None:
        """Write every buffered count in one transaction (a no-op when there are none)."""
        with self._flush_lock:
            with self._lock:
                usage, stats, viewers, last_used = (
                    self.usage,
                    self.stats,
                    self.viewers,
                    self.last_used,
                )
                self._reset()
                self._last_flush = self._monotonic()
            if not (usage or stats or viewers or last_used):
                return
            try:
                with self.catalog.atomic():
                    self.catalog.tallies.add_counters(
                        self.replica, usage, stats, viewers, last_used
                    )
            except BaseException:
                # Put the counts back so a failed flush loses nothing.
                with self._lock:
                    for key, cell in usage.items():
                        target = self.usage[key]
                        for index, value in enumerate(cell):
                            target[index] += value
                    for skey, scell in stats.items():
                        starget = self.stats[skey]
                        for index, value in enumerate(scell):
                            starget[index] += value
                    self.viewers |= viewers
                    for key_id, when in last_used.items():
                        self.last_used[key_id] = max(when, self.last_used.get(key_id, 0))
                raise


def monotonic() -> float:
    return time.monotonic()
