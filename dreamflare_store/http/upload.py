"""Streaming uploads: from the request body, through the multipart parser, into ``Store.upload``.

The store call blocks (it hashes, writes and fsyncs), so it runs in a worker thread and
reads the file from an ``UploadPipe``: a binary file object whose ``read`` asks the event
loop for the next bytes of the file part. The loop parses the body as it arrives and
feeds the pipe, which holds a few chunks at most, so memory stays bounded whatever the
size, and the bytes touch the disk once, in the blob store's own temp file.

The pipe ends only when the whole body has been parsed and found well-formed. Anything
that goes wrong first (a client that disconnects, a field after the file part, a
truncated body) fails the pipe instead, so the store call fails and stores nothing.
"""

from __future__ import annotations

import functools
import io
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.requests import ClientDisconnect

from ..errors import InvalidArgument
from .multipart import Field, FileData, FileStart, MultipartStream
from .operations import BY_NAME
from .params import Item, bind, check_user

if TYPE_CHECKING:
    from ..records import Content
    from ..store import Store

PIPE_CHUNKS = 32  # chunks in flight between the socket and the store (~64 KiB each)
DRAIN_LIMIT = 16 * 1024 * 1024  # after a refusal, read on this far so the client sees the answer


class ClientGone(InvalidArgument):
    """The client went away before its upload was complete."""


class UploadPipe(io.RawIOBase):
    """A binary file, read in a worker thread, whose bytes the event loop puts in."""

    def __init__(self, name: str | None) -> None:
        super().__init__()
        self.name = name  # the store's default filename comes from here
        send, receive = anyio.create_memory_object_stream[bytes](PIPE_CHUNKS)
        self._send: MemoryObjectSendStream[bytes] = send
        self._receive: MemoryObjectReceiveStream[bytes] = receive
        self._rest = b""
        self._failure: BaseException | None = None

    # -- the event loop's side --------------------------------------------------------

    async def put(self, data: bytes) -> bool:
        """Queue bytes for the reader; False if the reader has stopped reading."""
        try:
            await self._send.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False
        return True

    def end(self) -> None:
        """No more bytes: the reader sees the end of the file. Idempotent."""
        self._send.close()

    def fail(self, exc: BaseException) -> None:
        """The reader's next read raises ``exc`` (already queued bytes are dropped)."""
        self._failure = exc
        self._send.close()

    def stop_reading(self) -> None:
        """The reader is done (finished or failed): further puts return False."""
        self._receive.close()

    # -- the worker thread's side -------------------------------------------------------

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 20
        return anyio.from_thread.run(self._take, size)

    async def _take(self, size: int) -> bytes:
        """Up to ``size`` bytes: waits for the first chunk, then takes what is queued."""
        parts = [self._rest] if self._rest else []
        have = len(self._rest)
        while have < size:
            if self._failure is not None:
                raise self._failure
            try:
                chunk = self._receive.receive_nowait() if parts else await self._receive.receive()
            except anyio.WouldBlock:
                break
            except anyio.EndOfStream:
                if self._failure is not None:
                    raise self._failure from None
                break
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        self._rest = data[size:]
        return data[:size]


async def stream_upload(
    store: Store, key_user: str, items: list[Item], boundary: bytes, body: AsyncIterator[bytes]
) -> Content:
    """Upload the file part of a multipart body, fields first, in one ``Store.upload`` call.

    ``items`` are the query parameters; the body's text fields join them, and must come
    before the file part, whose arrival starts the store call with everything known.
    """
    op = BY_NAME["upload"]
    parser = MultipartStream(boundary)
    fields = list(items)
    pipe: UploadPipe | None = None
    outcome: dict[str, Any] = {}

    async def run(kwargs: dict[str, Any], source: UploadPipe) -> None:
        try:
            outcome["content"] = await anyio.to_thread.run_sync(
                functools.partial(store.upload, cast(BinaryIO, source), **kwargs)
            )
        except Exception as exc:  # raised to the caller below, outside the task group
            outcome["error"] = exc
        finally:
            source.stop_reading()

    refused: Exception | None = None  # refused before the store call began
    # Nothing may escape the task group's body but cancellation: anyio would wrap it in an
    # ExceptionGroup. Errors are kept and raised once the store call has finished.
    async with anyio.create_task_group() as group:
        try:
            async for chunk in body:
                for event in parser.feed(chunk):
                    if isinstance(event, Field):
                        if pipe is not None:
                            raise InvalidArgument(
                                f"field {event.name!r} comes after the file part: send the"
                                " other fields first"
                            )
                        fields.append((event.name, event.value))
                    elif isinstance(event, FileStart):
                        if pipe is not None:
                            raise InvalidArgument("a body may carry only one file part")
                        try:
                            kwargs = bind(op, fields)
                        except InvalidArgument as exc:
                            raise InvalidArgument(
                                f"{exc.message} before the file part (send the other fields first)"
                            ) from None
                        check_user(kwargs, key_user)
                        pipe = UploadPipe(event.filename)
                        group.start_soon(run, kwargs, pipe)
                    elif isinstance(event, FileData):
                        assert pipe is not None
                        if not await pipe.put(event.data):
                            raise _StoreStopped
            parser.finish()
            if pipe is None:
                raise InvalidArgument("the multipart body has no file part")
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
    if refused is not None or "error" in outcome:
        await _drain(body)
        raise refused or outcome["error"]
    return outcome["content"]  # type: ignore[no-any-return]


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
