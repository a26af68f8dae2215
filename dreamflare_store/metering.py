"""API usage metering: every documented operation counts, failed calls as errors.

A ``Meter`` is handed to whatever it meters (the ``Store`` facade holds one as ``meter``);
the ``metered`` decorator finds it there and knows nothing else of the object.
"""

from __future__ import annotations

import functools
import inspect
import io
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

from . import validate
from .blobs import VerifiedReader
from .clock import WallClock, day_of
from .counters import CounterBuffer
from .errors import InvalidArgument

P = ParamSpec("P")
R = TypeVar("R")


class Call:
    """Bytes a call moved, noted by the operation for API usage."""

    __slots__ = ("bytes_in", "bytes_out")

    def __init__(self) -> None:
        self.bytes_in = 0
        self.bytes_out = 0


class Meter:
    """Counts each call of a documented operation in API usage, per user, day and operation."""

    def __init__(self, counters: CounterBuffer, wall: WallClock) -> None:
        self._counters = counters
        self._wall = wall
        self._current = threading.local()
        self.stopped = False

    def begin(self) -> Call:
        """Start counting a call in this thread; ``note`` adds to it until the next one."""
        call = Call()
        self._current.call = call
        return call

    def note(self, bytes_in: int = 0, bytes_out: int = 0) -> None:
        """Add bytes to the call this thread is making (if any)."""
        call: Call | None = getattr(self._current, "call", None)
        if call is not None:
            call.bytes_in += bytes_in
            call.bytes_out += bytes_out

    def count(self, operation: str, user_id: object, call: Call, error: bool) -> None:
        """Count one call of ``operation`` by ``user_id`` (nothing if the user is invalid:
        such a call changed nothing and there is no one to charge it to)."""
        try:
            user = validate.user_id(user_id)
        except InvalidArgument:
            return
        self.charge(operation, user, error, call.bytes_in, call.bytes_out)

    def charge(
        self,
        operation: str,
        user: str,
        error: bool,
        bytes_in: int = 0,
        bytes_out: int = 0,
        calls: int = 1,
    ) -> None:
        """Count ``calls`` calls of ``operation`` by a valid ``user`` (each file of a batch
        upload is one)."""
        if self.stopped:
            return
        self._counters.count_call(
            user, operation, day_of(self._wall.time_ms()), error, bytes_in, bytes_out, calls
        )


class Metered(Protocol):
    """What ``metered`` methods belong to: an object holding its meter."""

    meter: Meter


def metered(operation: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Count every call of a documented operation in API usage, failed ones as errors."""

    def decorate(method: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(method)
        names = list(signature.parameters)
        position = names.index("user_id")  # every documented operation names its user
        default = signature.parameters["user_id"].default

        @functools.wraps(method)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            meter: Meter = _meter_of(args[0])
            call = meter.begin()
            try:
                result = method(*args, **kwargs)
            except BaseException:
                try:
                    user = signature.bind(*args, **kwargs).arguments.get("user_id")
                except TypeError:
                    pass  # arguments that do not even bind charge nobody
                else:
                    meter.count(operation, user, call, error=True)
                raise
            # The call bound, so the user is where the signature puts it (a few hundred
            # nanoseconds instead of a full bind on every read).
            if "user_id" in kwargs:
                user = kwargs["user_id"]
            else:
                user = args[position] if len(args) > position else default
            meter.count(operation, user, call, error=False)
            return result

        return wrapper

    return decorate


def _meter_of(owner: Any) -> Meter:
    metered_owner: Metered = owner
    return metered_owner.meter


class CountingReader(io.RawIOBase):
    """Passes reads through to a verified reader, counting the bytes served (in analytics
    and in the reader's API usage): what ``Store.open_content`` hands out."""

    def __init__(
        self,
        reader: VerifiedReader,
        counters: CounterBuffer,
        content_id: str,
        user_id: str,
        day: str,
    ) -> None:
        super().__init__()
        self._reader = reader
        self._counters = counters
        self._content_id = content_id
        self._user_id = user_id
        self._day = day
        self.size = reader.size
        self.digest = reader.digest
        self.filename: str | None = None
        self.mime_type: str | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = self._reader.readinto(buffer)
        if count:
            self._counters.add_served(self._content_id, self._day, count)
            self._counters.add_bytes_out(self._user_id, "open_content", self._day, count)
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._reader.seek(offset, whence)

    def tell(self) -> int:
        return self._reader.tell()

    def close(self) -> None:
        self._reader.close()
        super().close()
