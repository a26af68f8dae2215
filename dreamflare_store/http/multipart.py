"""Incremental multipart/form-data parsing: feed the body chunk by chunk, get events back.

Text fields come out whole (they are small and bounded); the one file part comes out as a
``FileStart``, its bytes as they arrive (``FileData``), and a ``FileEnd``, so an upload
is never held in memory whole: the adapter spools it to a temp file in the store as it
arrives. Built on python-multipart's streaming ``MultipartParser``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from ..errors import InvalidArgument

MAX_FIELD_BYTES = 64 * 1024
MAX_HEADER_BYTES = 16 * 1024
MAX_PARTS = 100


@dataclass(frozen=True, slots=True)
class Field:
    """A whole text field."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class FileStart:
    """The file part begins; ``filename`` is what the client called it, and
    ``content_type`` the type it declared for it, if anything."""

    filename: str | None
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class FileData:
    """Some bytes of the file part, in arrival order."""

    data: bytes


@dataclass(frozen=True, slots=True)
class FileEnd:
    """The file part is complete."""


Event = Field | FileStart | FileData | FileEnd


class MultipartStream:
    """A multipart/form-data body parsed as it arrives.

    ``feed(chunk)`` returns the events the chunk completes; ``finish()`` raises
    ``InvalidArgument`` unless the closing boundary was seen. A part named ``file_field``
    is the file; every other part is a text field of at most 64 KiB of UTF-8.
    """

    def __init__(self, boundary: bytes, file_field: str | None = "file") -> None:
        self.file_field = file_field
        self.complete = False
        self._events: list[Event] = []
        self._parts = 0
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._name: str | None = None
        self._is_file = False
        self._buffer = bytearray()
        try:
            self._parser = MultipartParser(
                boundary,
                callbacks={
                    "on_part_begin": self._part_begin,
                    "on_header_field": self._header_field,
                    "on_header_value": self._header_value_data,
                    "on_header_end": self._header_end,
                    "on_headers_finished": self._headers_finished,
                    "on_part_data": self._part_data,
                    "on_part_end": self._part_end,
                    "on_end": self._end,
                },
            )
        except (ValueError, TypeError) as exc:
            raise InvalidArgument(f"bad multipart boundary: {exc}") from None

    def feed(self, chunk: bytes) -> list[Event]:
        """Parse one more chunk of the body; the events it completes, in order."""
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise InvalidArgument(f"malformed multipart body: {exc}") from None
        events, self._events = self._events, []
        return events

    def finish(self) -> None:
        """Check the body ended with its closing boundary."""
        if not self.complete:
            raise InvalidArgument("the multipart body ended before its closing boundary")

    # -- parser callbacks -----------------------------------------------------------------

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise InvalidArgument(f"a multipart body may have at most {MAX_PARTS} parts")
        self._headers = {}
        self._header_bytes = 0
        self._name = None
        self._is_file = False
        self._buffer = bytearray()

    def _count_header(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            raise InvalidArgument(f"a part's headers exceed {MAX_HEADER_BYTES} bytes")

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        name = self._header_name.decode("latin-1").strip().lower()
        self._headers[name] = self._header_value.decode("latin-1").strip()
        self._header_name = bytearray()
        self._header_value = bytearray()

    def _headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get("content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise InvalidArgument(
                "each multipart part needs Content-Disposition: form-data; name=..."
            )
        # Header bytes arrive as they were sent; clients send names in UTF-8.
        self._name = options[b"name"].decode("utf-8", "replace")
        self._is_file = self._name == self.file_field
        if self._is_file:
            raw = options.get(b"filename")
            filename = raw.decode("utf-8", "replace") if raw is not None else None
            self._events.append(FileStart(filename, self._headers.get("content-type")))

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self._events.append(FileData(data[start:end]))
            return
        if len(self._buffer) + end - start > MAX_FIELD_BYTES:
            raise InvalidArgument(f"field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes")
        self._buffer += data[start:end]

    def _part_end(self) -> None:
        if self._is_file:
            self._events.append(FileEnd())
            return
        assert self._name is not None
        try:
            value = self._buffer.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument(f"field {self._name!r} is not valid UTF-8") from None
        self._events.append(Field(self._name, value))

    def _end(self) -> None:
        self.complete = True


def parse_fields(boundary: bytes, body: bytes) -> Iterator[tuple[str, str]]:
    """The text fields of a whole (small) multipart body; every part counts as a field."""
    stream = MultipartStream(boundary, file_field=None)
    events = stream.feed(body)
    stream.finish()
    for event in events:
        assert isinstance(event, Field)
        yield event.name, event.value
