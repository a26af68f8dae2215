"""Streaming uploads: from the request body, through the multipart parser, into ``Store.upload``.

The store call blocks (it hashes, writes and fsyncs), so it runs in a thread of the
adapter's worker pool (``workers``) and reads the file from an ``UploadPipe``: a binary
file object whose ``read`` takes the bytes the event loop has parsed out of the body so
far. The loop parses the body as it arrives
and feeds the pipe, which holds a few MiB at most (the loop waits when it is full), so
memory stays bounded whatever the size, and the bytes touch the disk once, in the blob
store's own temp file.

The pipe ends only when the whole body has been parsed and found well-formed. Anything
that goes wrong first (a client that disconnects, a field after the file part, a
truncated body) fails the pipe instead, so the store call fails and stores nothing.

Parts may come in any order. When the fields before the file part do not yet say whose
upload it is (``curl -F file=@x -F userId=alice`` sends the file first), the file is
spooled, bounded in memory, into an anonymous temp file in the store's folder (it
vanishes when closed, even after a crash), and the store call runs once the body is
complete and every field is known; a refused request stores nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import os
import tempfile
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

import anyio
from starlette.requests import ClientDisconnect

from ..errors import InvalidArgument
from . import workers
from .multipart import Field, FileData, FileStart, MultipartStream
from .operations import BY_NAME
from .params import Item, bind, check_user

if TYPE_CHECKING:
    from ..records import Content
    from ..store import Store

PIPE_BYTES = 4 * 1024 * 1024  # bytes in flight between the socket and the store, at most
READ_DEFAULT = 1024 * 1024  # what read() with no size returns at most
DRAIN_LIMIT = 16 * 1024 * 1024  # after a refusal, read on this far so the client sees the answer


class ClientGone(InvalidArgument):
    """The client went away before its upload was complete."""


class UploadPipe(io.RawIOBase):
    """A binary file, read in a worker thread, whose bytes the event loop puts in.

    The reader takes bytes straight from a queue under a lock: no trip through the event
    loop per read, so the loop spends its time on the socket and the parser. Only when the
    queue is full does the loop wait, and the reader wakes it once it has made room.
    """

    def __init__(
        self, name: str | None, limit: int = PIPE_BYTES, content_type: str | None = None
    ) -> None:
        super().__init__()
        self.name = name  # the store's default filename comes from here
        self.content_type = content_type  # the type the part declared (used if sniffing fails)
        self._limit = limit
        self._ready = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._queued = 0
        self._ended = False
        self._stopped = False
        self._failure: BaseException | None = None
        self._room: anyio.Event | None = None  # set when the loop waits for room
        self._wake = _waker()

    # -- the event loop's side --------------------------------------------------------

    async def put(self, data: bytes) -> bool:
        """Queue bytes for the reader (waiting while the pipe is full); False if the
        reader has stopped reading."""
        while True:
            with self._ready:
                if self._stopped:
                    return False
                if self._queued < self._limit:
                    self._chunks.append(data)
                    self._queued += len(data)
                    self._ready.notify()
                    return True
                room = self._room = anyio.Event()
            await room.wait()

    def end(self) -> None:
        """No more bytes: the reader sees the end of the file. Idempotent."""
        with self._ready:
            self._ended = True
            self._ready.notify_all()

    def fail(self, exc: BaseException) -> None:
        """The reader's next read raises ``exc`` (already queued bytes are dropped)."""
        with self._ready:
            self._failure = exc
            self._chunks.clear()
            self._queued = 0
            self._ready.notify_all()

    def stop_reading(self) -> None:
        """The reader is done (finished or failed): further puts return False."""
        with self._ready:
            self._stopped = True
            room, self._room = self._room, None
        if room is not None:
            room.set()  # called on the event loop, after the store call

    # -- the worker thread's side -------------------------------------------------------

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes: waits for the first, then takes what is queued."""
        if size is None or size < 0:
            size = READ_DEFAULT
        if size == 0:
            return b""
        with self._ready:
            while not self._chunks and not self._ended and self._failure is None:
                self._ready.wait()
            if self._failure is not None:
                raise self._failure
            parts: list[bytes] = []
            have = 0
            while self._chunks and have < size:
                chunk = self._chunks.popleft()
                if have + len(chunk) > size:
                    chunk, rest = chunk[: size - have], chunk[size - have :]
                    self._chunks.appendleft(rest)
                parts.append(chunk)
                have += len(chunk)
            self._queued -= have
            room = None
            if self._room is not None and self._queued < self._limit:
                room, self._room = self._room, None
        if room is not None:
            self._wake(room.set)
        return parts[0] if len(parts) == 1 else b"".join(parts)


def _waker() -> Callable[[Callable[[], object]], None]:
    """A function that runs a callback on the current (asyncio) event loop from another
    thread, without waiting for it."""
    loop = asyncio.get_running_loop()

    def wake(callback: Callable[[], object]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(callback)

    return wake


async def stream_upload(
    store: Store, key_user: str, items: list[Item], boundary: bytes, body: AsyncIterator[bytes]
) -> Content:
    """Upload the file part of a multipart body in one ``Store.upload`` call.

    ``items`` are the query parameters; the body's text fields join them. When they bind
    before the file part (the user is known), the file streams straight into the store;
    otherwise it is spooled and stored once the whole body has arrived.
    """
    op = BY_NAME["upload"]
    parser = MultipartStream(boundary)
    fields = list(items)
    pipe: UploadPipe | None = None
    spool: _Spool | None = None
    outcome: dict[str, Any] = {}

    async def run(kwargs: dict[str, Any], source: UploadPipe) -> None:
        try:
            # Awaited to its end even if cancelled: the store call has failed (on the
            # failed pipe) and cleaned up before the request is over.
            outcome["content"] = await workers.POOL.run_to_end(
                functools.partial(store.upload, cast(BinaryIO, source), **kwargs)
            )
        except Exception as exc:  # raised to the caller below, outside the task group
            outcome["error"] = exc
        finally:
            source.stop_reading()

    refused: Exception | None = None  # refused before the store call began
    # Nothing may escape the task group's body but cancellation: anyio would wrap it in an
    # ExceptionGroup. Errors are kept and raised once the store call has finished.
    try:
        async with anyio.create_task_group() as group:
            try:
                async for chunk in body:
                    for event in parser.feed(chunk):
                        if isinstance(event, Field):
                            if pipe is not None:
                                raise InvalidArgument(
                                    f"field {event.name!r} comes after the file part, which"
                                    " was already being stored with the fields before it:"
                                    " send every field before the file, or the file first"
                                )
                            fields.append((event.name, event.value))
                        elif isinstance(event, FileStart):
                            if pipe is not None or spool is not None:
                                raise InvalidArgument("a body may carry only one file part")
                            kwargs = _bound(op, fields, key_user)
                            if kwargs is None:  # who is uploading is not known yet
                                spool = await _Spool.open(store.path, event)
                                continue
                            pipe = UploadPipe(event.filename, content_type=event.content_type)
                            group.start_soon(run, kwargs, pipe)
                        elif isinstance(event, FileData):
                            if spool is not None:
                                await spool.put(event.data)
                                continue
                            assert pipe is not None
                            if not await pipe.put(event.data):
                                raise _StoreStopped
                parser.finish()
                if pipe is None and spool is None:
                    raise InvalidArgument("the multipart body has no file part")
                if pipe is not None:
                    pipe.end()
            except _StoreStopped:
                pass  # the store refused early; its error is in `outcome`
            except Exception as exc:
                if isinstance(exc, ClientDisconnect):
                    exc = ClientGone("the client disconnected before the upload was complete")
                if pipe is None:
                    refused = exc
                else:
                    pipe.fail(exc)  # the store call fails, keeping nothing; its error is the answer
            except BaseException:  # cancelled: stop the store call before leaving
                if pipe is not None:
                    pipe.fail(ClientGone("the upload was cancelled"))
                raise
        if pipe is not None:
            pipe.end()
        if spool is not None and refused is None:
            try:
                kwargs = bind(op, fields)
                check_user(kwargs, key_user)
                source = await spool.finish()
                outcome["content"] = await workers.POOL.run_to_end(
                    functools.partial(store.upload, cast(BinaryIO, source), **kwargs)
                )
            except Exception as exc:  # the answer: the store kept nothing
                outcome["error"] = exc
    finally:
        if spool is not None:
            spool.close()
    if refused is not None or "error" in outcome:
        await _drain(body)
        raise refused or outcome["error"]
    return outcome["content"]  # type: ignore[no-any-return]


def _bound(op: Any, fields: list[Item], key_user: str) -> dict[str, Any] | None:
    """The store call's keywords from the fields so far, or None while ``userId`` is still
    to come (a file part sent first); a field that is wrong already refuses the request."""
    if not any(name == "userId" for name, _ in fields):
        return None
    kwargs = bind(op, fields)
    check_user(kwargs, key_user)
    return kwargs


SPOOL_CHUNK = 1024 * 1024  # bytes gathered in memory before one write to the spool file


class _Spool:
    """A file part that came before the fields: kept in an anonymous temp file in the
    store's folder (gone when closed), written a MiB at a time off the event loop."""

    def __init__(self, file: IO[bytes], event: FileStart) -> None:
        self._file = file
        self._event = event
        self._pending = bytearray()

    @classmethod
    async def open(cls, folder: os.PathLike[str], event: FileStart) -> _Spool:
        # Closed by close(), which stream_upload calls whatever happens.
        file = await anyio.to_thread.run_sync(lambda: tempfile.TemporaryFile(dir=folder))  # noqa: SIM115
        return cls(file, event)

    async def put(self, data: bytes) -> None:
        self._pending += data
        if len(self._pending) >= SPOOL_CHUNK:
            await self._flush()

    async def _flush(self) -> None:
        if self._pending:
            data, self._pending = bytes(self._pending), bytearray()
            await anyio.to_thread.run_sync(self._file.write, data)

    async def finish(self) -> _SpooledPart:
        """The spooled bytes as a binary file from their start, named as the part was."""
        await self._flush()
        await anyio.to_thread.run_sync(self._file.flush)
        self._file.seek(0)
        return _SpooledPart(self._file, self._event.filename, self._event.content_type)

    def close(self) -> None:
        self._file.close()


class _SpooledPart(io.RawIOBase):
    """A spooled file part, read by the store: the part's filename and declared type
    beside the bytes, as ``UploadPipe`` has them."""

    def __init__(self, file: IO[bytes], name: str | None, content_type: str | None) -> None:
        super().__init__()
        self._file = file
        self.name = name
        self.content_type = content_type

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        return self._file.readinto(buffer)  # type: ignore[attr-defined, no-any-return]


class _StoreStopped(Exception):
    """The store stopped reading the pipe before the end (it refused the upload)."""


async def _drain(body: AsyncIterator[bytes]) -> None:
    """Read a refused body on a little, so a client still sending gets to read the answer."""
    seen = 0
    try:
        async for chunk in body:
            seen += len(chunk)
            if seen > DRAIN_LIMIT:
                return
    except Exception:  # noqa: BLE001 (a client that left needs no answer)
        return
