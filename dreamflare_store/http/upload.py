"""Uploads: the multipart body spooled into a temp file in the store, then ``Store.upload``.

The parts of a multipart body may come in any order, and any field may come after the
file (``curl -F file=@x -F userId=alice`` sends the file first, and clients put fields on
both sides of it). So the file part is written, as it is parsed out of the body, to an
anonymous temp file in the store's folder (a MiB at a time: memory stays bounded; a file
under a MiB never leaves memory; the temp file vanishes when closed, even after a crash),
and the store call runs once the whole body has arrived and every field is known.
``Store.upload`` then reads the spooled bytes once, hashing them as it stores them. A
refused request (a field that is wrong, unknown or another user's, a body cut short, a
missing file, a quota or a full disk) stores nothing: each field is checked as it
arrives, so a large body is refused at the first wrong field.

The store call blocks (it hashes, writes and fsyncs), so it runs in a thread of the
adapter's worker pool (``workers``).
"""

from __future__ import annotations

import asyncio
import functools
import io
import tempfile
from collections.abc import AsyncIterator
from typing import IO, TYPE_CHECKING, BinaryIO, cast

import anyio
from starlette.requests import ClientDisconnect

from ..errors import InvalidArgument
from . import workers
from .multipart import Field, FileData, FileStart, MultipartStream
from .operations import BY_NAME
from .params import Item, bind, check_item, check_user

if TYPE_CHECKING:
    from ..records import Content
    from ..store import Store

DRAIN_LIMIT = 16 * 1024 * 1024  # after a refusal, read on this far so the client sees the answer


class ClientGone(InvalidArgument):
    """The client went away before its upload was complete."""


async def stream_upload(
    store: Store, key_user: str, items: list[Item], boundary: bytes, body: AsyncIterator[bytes]
) -> Content:
    """Upload the file part of a multipart body in one ``Store.upload`` call.

    ``items`` are the query parameters; the body's text fields join them, before or after
    the file part. Each is checked as it arrives; the file is spooled; the store call
    runs once the body has ended well-formed. A refused upload is counted in API usage as
    an error of the key's user, as a refusal by the store is.
    """
    op = BY_NAME["upload"]
    parser = MultipartStream(boundary)
    fields = list(items)
    spool: _Spool | None = None
    stored = False
    try:
        try:
            for name, value in fields:
                check_item(op, name, value, key_user)
            async for chunk in body:
                for event in parser.feed(chunk):
                    if isinstance(event, FileData):
                        assert spool is not None
                        await spool.put(event.data)
                    elif isinstance(event, Field):
                        check_item(op, event.name, event.value, key_user)
                        fields.append((event.name, event.value))
                    elif isinstance(event, FileStart):
                        if spool is not None:
                            raise InvalidArgument("a body may carry only one file part")
                        spool = await _Spool.open(store, event)
            parser.finish()
            if spool is None:
                raise InvalidArgument("the multipart body has no file part")
            kwargs = bind(op, fields)
            check_user(kwargs, key_user)
            source = await spool.finish()
        except ClientDisconnect:
            raise ClientGone("the client disconnected before the upload was complete") from None
        stored = True  # from here on, the store call meters itself
        return await workers.POOL.run_to_end(
            functools.partial(store.upload, cast(BinaryIO, source), **kwargs)
        )
    except Exception:
        if not stored:
            store.meter.charge("upload", key_user, True)
        await _drain(body)
        raise
    finally:
        if spool is not None:
            spool.close()


SPOOL_CHUNK = 1024 * 1024  # bytes gathered in memory before one write to the spool file


class _Spool:
    """The file part, kept in memory while under a MiB (a small upload makes no file), else
    in an anonymous temp file in the store's folder (gone when closed), written a MiB at a
    time by a worker thread while the event loop parses the next MiB (one write in flight
    at most: memory stays bounded)."""

    def __init__(self, store: Store, event: FileStart) -> None:
        self._store = store
        self._event = event
        self._file: IO[bytes] | None = None  # made by the first write
        self._pending: list[bytes] = []
        self._size = 0
        self._writing: asyncio.Future[None] | None = None

    @classmethod
    async def open(cls, store: Store, event: FileStart) -> _Spool:
        """A spool for the file part ``event`` starts; ``close()`` it whatever happens."""
        return cls(store, event)

    async def put(self, data: bytes) -> None:
        self._pending.append(data)
        self._size += len(data)
        if self._size >= SPOOL_CHUNK:
            await self._flush()

    async def _flush(self) -> None:
        if self._writing is not None:
            await self._writing  # the write before this one: its error is raised here
            self._writing = None
        if self._pending:
            data = b"".join(self._pending)
            self._pending, self._size = [], 0
            loop = asyncio.get_running_loop()
            self._writing = loop.run_in_executor(None, self._write, data)

    def _write(self, data: bytes) -> None:
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(dir=self._store.path)  # noqa: SIM115
            self._file.write(data)
        except OSError:
            # A full disk is the store's to say (507, naming the store, not this file).
            self._store.check_room(len(data))
            raise

    async def finish(self) -> _SpooledPart:
        """The spooled bytes as a binary file from their start, named as the part was."""
        if self._file is None and self._writing is None:  # small: never left memory
            file: IO[bytes] = io.BytesIO(b"".join(self._pending))
        else:
            await self._flush()
            await self._flush()  # the last write, waited for
            assert self._file is not None
            file = self._file
            await anyio.to_thread.run_sync(file.flush)
            file.seek(0)
        return _SpooledPart(file, self._event.filename, self._event.content_type)

    def close(self) -> None:
        """Close (and so remove) the file, once no write is in flight."""
        if self._writing is None:
            if self._file is not None:
                self._file.close()
        elif self._writing.done():
            self._closed(self._writing)
        else:
            self._writing.add_done_callback(self._closed)

    def _closed(self, write: asyncio.Future[None]) -> None:
        if not write.cancelled():
            write.exception()  # seen: a refused upload's failed write is no news
        if self._file is not None:
            self._file.close()


class _SpooledPart(io.RawIOBase):
    """A spooled file part, read by the store: the part's filename and declared type
    beside the bytes, where the store looks for them."""

    def __init__(self, file: IO[bytes], name: str | None, content_type: str | None) -> None:
        super().__init__()
        self._file = file
        self.name = name
        self.content_type = content_type

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        return self._file.readinto(buffer)  # type: ignore[attr-defined, no-any-return]


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
