"""Time for the engine: an injectable wall clock and a hybrid logical clock (HLC).

An HLC timestamp is ``(wall_ms, counter, replica_id)``. It never goes backwards on one
replica, even if the wall clock does, and it orders events across replicas totally: the
replica id breaks ties. Timestamps are encoded as fixed-width strings, so SQLite and
Python compare them correctly as plain text.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

# Encoded timestamps compare as text only while their fields keep their widths: 13 digits
# of milliseconds last until the year 2286, and a counter that would pass 6 digits moves
# the clock to the next millisecond instead.
MAX_WALL_MS = 10**13 - 1
MAX_COUNTER = 999_999
_ENCODED = re.compile(r"\A\d{13}\.\d{6}\.[0-9a-z]{1,64}\Z")


def is_hlc(text: object) -> bool:
    """True if ``text`` is a well-formed encoded timestamp (checked on ops from remotes)."""
    return isinstance(text, str) and _ENCODED.match(text) is not None


class WallClock(Protocol):
    """Where the engine reads the time: injected, so tests can be deterministic."""

    def time_ms(self) -> int: ...


class SystemClock:
    """The real wall clock."""

    def time_ms(self) -> int:
        return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True, order=True)
class Timestamp:
    """One HLC reading."""

    wall_ms: int
    counter: int
    replica: str

    def encode(self) -> str:
        return f"{self.wall_ms:013d}.{self.counter:06d}.{self.replica}"

    @classmethod
    def decode(cls, text: str) -> Timestamp:
        wall, counter, replica = text.split(".", 2)
        return cls(int(wall), int(counter), replica)


def hlc_wall_ms(encoded: str) -> int:
    """The wall-clock part of an encoded timestamp, in milliseconds."""
    return int(encoded[:13])


class _Texts(dict[int, str]):
    """The text of each number (a minute of the day, a second, a millisecond), made when
    first asked for: a lookup costs what a tuple's does, and a process that formats a
    few times (a command) does not build all 2,500 of them first (about 2 ms)."""

    def __init__(self, render: Callable[[int], str]) -> None:
        super().__init__()
        self._render = render

    def __missing__(self, key: int) -> str:
        text = self[key] = self._render(key)
        return text


# A page of 100 contents formats up to 200 times, so formatting costs a few dict lookups
# rather than a strftime: the date of each day is cached (a plain dict, emptied when it
# grows large), the time of day comes from tables of its parts' text.
_DATES: dict[int, str] = {}  # day since the epoch -> "YYYY-MM-DD"
_DATES_MAX = 4096
_CLOCK = _Texts(lambda minute: f"T{minute // 60:02d}:{minute % 60:02d}:")
_SECONDS = _Texts("{:02d}.".format)
_MILLIS = _Texts("{:03d}Z".format)
_DAY_MS = 86_400_000  # UTC has no leap seconds in POSIX time


def day_of(wall_ms: int) -> str:
    """The UTC day (YYYY-MM-DD) a wall time falls in: the bucket of daily counters."""
    day = wall_ms // _DAY_MS
    try:
        return _DATES[day]
    except KeyError:
        if len(_DATES) >= _DATES_MAX:
            _DATES.clear()
        date = _DATES[day] = time.strftime("%Y-%m-%d", time.gmtime(day * 86400))
        return date


def iso_ms(wall_ms: int) -> str:
    """ISO 8601 UTC with milliseconds (``2026-11-28T09:15:02.125Z``): every record's time
    format, and the one formatter of times in the engine."""
    ms = wall_ms % _DAY_MS
    minute = ms // 60_000
    ms -= minute * 60_000
    second = ms // 1000
    return f"{day_of(wall_ms)}{_CLOCK[minute]}{_SECONDS[second]}{_MILLIS[ms - second * 1000]}"


def iso_of_hlc(encoded: str) -> str:
    """The ISO 8601 time of an encoded timestamp's wall clock."""
    return iso_ms(int(encoded[:13]))


class HybridClock:
    """A thread-safe hybrid logical clock for one replica."""

    def __init__(self, replica: str, wall: WallClock, last: str | None = None) -> None:
        self.replica = replica
        self.wall = wall
        self._lock = threading.Lock()
        self._wall_ms = 0
        self._counter = 0
        if last is not None:
            self.observe(last)

    def now(self) -> str:
        """A timestamp greater than every one this clock has issued or observed."""
        with self._lock:
            physical = min(self.wall.time_ms(), MAX_WALL_MS)
            if physical > self._wall_ms:
                self._wall_ms, self._counter = physical, 0
            elif self._counter < MAX_COUNTER:
                self._counter += 1
            else:
                self._wall_ms, self._counter = self._wall_ms + 1, 0
            return Timestamp(self._wall_ms, self._counter, self.replica).encode()

    def observe(self, encoded: str) -> None:
        """Move past a timestamp seen from elsewhere (a pulled op, our own last op)."""
        seen = Timestamp.decode(encoded)
        with self._lock:
            if (seen.wall_ms, seen.counter) > (self._wall_ms, self._counter):
                self._wall_ms, self._counter = seen.wall_ms, seen.counter
