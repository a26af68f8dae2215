"""Downloads: the bytes of a content as an HTTP response, with ranges and conditional GETs.

The ``ETag`` is the content hash in quotes, so it changes exactly when the bytes do.
Small answers are read whole before the status line is sent, so corrupt bytes are an
honest 500; larger ones are streamed from a worker thread a chunk at a time, and if their
bytes turn out corrupt at the end the connection is cut rather than finished cleanly.
Reads run in the adapter's worker pool (``workers``).
"""

from __future__ import annotations

import functools
import io
import logging
import re
from collections.abc import AsyncIterator
from typing import Any, BinaryIO
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..errors import DreamflareError
from . import workers
from .errors import HttpError

CHUNK = 1 << 20
INLINE_MAX = 1 << 20  # answers up to this size are read (and verified) before they are sent
_RANGE = re.compile(r"\A\s*bytes\s*=\s*([0-9]{0,40})\s*-\s*([0-9]{0,40})\s*\Z", re.IGNORECASE)
_INLINE_TYPES = ("image/", "video/", "audio/")

log = logging.getLogger(__name__)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range a ``Range`` header asks for, as (first, last), inclusive.

    None means "send everything": no header, a malformed one, or several ranges (which a
    server may answer in full). A range that starts past the end is a 416.
    """
    if header is None or "," in header:
        return None
    match = _RANGE.match(header)
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - count), size - 1
    start = int(first)
    if last != "" and int(last) < start:
        return None  # not a valid range: ignored, as RFC 9110 says
    if start >= size:
        raise _unsatisfiable(size)
    return start, size - 1 if last == "" else min(int(last), size - 1)


def _unsatisfiable(size: int) -> HttpError:
    return HttpError(
        416,
        "range_not_satisfiable",
        f"the requested range is outside the content's {size} bytes",
        {"Content-Range": f"bytes */{size}"},
    )


def etag_matches(header: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names this ETag (weakly compared) or is ``*``."""
    if header is None:
        return False
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def content_disposition(filename: str, mime: str) -> str:
    """Inline for media a browser shows safely, attachment otherwise; the name in both forms."""
    inline = mime.startswith(_INLINE_TYPES) and mime != "image/svg+xml"
    fallback = filename.encode("ascii", "replace").decode("ascii")
    fallback = fallback.replace("\\", "_").replace('"', "_")
    return (
        f'{"inline" if inline else "attachment"}; filename="{fallback}";'
        f" filename*=UTF-8''{quote(filename, safe='')}"
    )


async def respond(request: Request, reader: BinaryIO) -> Response:
    """The response for a download of ``reader`` (from ``Store.open_content``); owns it."""
    try:
        return await _respond(request, reader)
    except BaseException:
        reader.close()
        raise


async def _respond(request: Request, reader: BinaryIO) -> Response:
    meta: Any = reader  # open_content's reader also has size, digest, filename, mime_type
    size: int = meta.size
    etag = f'"{meta.digest}"'
    mime: str = meta.mime_type or "application/octet-stream"
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    if etag_matches(request.headers.get("if-none-match"), etag):
        reader.close()
        return Response(status_code=304, headers=headers)
    span = None
    if_range = request.headers.get("if-range")
    if if_range is None or if_range.strip() == etag:
        span = parse_range(request.headers.get("range"), size)
    headers["Content-Type"] = mime
    headers["Content-Disposition"] = content_disposition(meta.filename or "download", mime)
    status, start, length = 200, 0, size
    if span is not None:
        start, end = span
        status, length = 206, end - start + 1
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        await workers.POOL.run_to_end(functools.partial(_position, reader, start, size))
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        reader.close()
        return Response(status_code=status, headers=headers)
    if length <= INLINE_MAX:
        data = await workers.POOL.run_to_end(functools.partial(_read_all, reader, length))
        return Response(data, status_code=status, headers=headers)
    return StreamingResponse(_chunks(reader, length), status_code=status, headers=headers)


def _position(reader: BinaryIO, start: int, size: int) -> None:
    # Seeking away from the current position makes the reader verify the whole blob
    # first, so a part is never served from corrupt bytes, even a part at the start.
    reader.seek(0, io.SEEK_END if size else io.SEEK_SET)
    reader.seek(start)


def _read_all(reader: BinaryIO, length: int) -> bytes:
    # The reader checks the hash when it reaches the end, so a full read raises here,
    # before the status line, if the bytes are corrupt.
    parts, have = [], 0
    with reader:
        while have < length and (chunk := reader.read(min(CHUNK, length - have))):
            parts.append(chunk)
            have += len(chunk)
    return b"".join(parts)


async def _chunks(reader: BinaryIO, length: int) -> AsyncIterator[bytes]:
    try:
        remaining = length
        while remaining > 0:
            read = functools.partial(reader.read, min(CHUNK, remaining))
            # Awaited to its end, so the reader is never closed under a read.
            chunk = await workers.POOL.run_to_end(read)
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    except DreamflareError as exc:
        log.error("download cut short: %s", exc.message)
        raise
    finally:
        reader.close()
