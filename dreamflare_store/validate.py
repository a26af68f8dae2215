"""Checks for every value that arrives from a caller.

Each function returns the value in its canonical form or raises InvalidArgument with a
message that names the parameter as the HTTP API does (``userId``, ``contentId``), before
anything is read from or written to the store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .errors import InvalidArgument

MAX_USER_ID = 128
MAX_TAGS = 32
MAX_TAG = 64
MAX_DESCRIPTION = 4096
MAX_FILENAME = 255
MAX_PATH = 1024
MAX_LIMIT = 1000
MAX_OFFSET = 2**62
PERMISSIONS = ("read", "write")
MAX_LIFETIME = 24 * 3600  # a signed URL lives a day at most
DEFAULT_LIFETIME = 3600
_DECIMAL = re.compile(r"-?[0-9]{1,100}")


def _printable(text: str) -> bool:
    return text.isprintable()


def user_id(value: Any, name: str = "userId") -> str:
    """1..128 printable characters."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidArgument(f"{name} must not be empty")
    if len(value) > MAX_USER_ID:
        raise InvalidArgument(f"{name} is longer than {MAX_USER_ID} characters")
    if not value.isprintable():
        raise InvalidArgument(f"{name} must contain only printable characters")
    return value


def description(value: Any) -> str | None:
    """None, or at most 4,096 characters without control characters (newlines and tabs allowed)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"description must be a string, not {type(value).__name__}")
    if len(value) > MAX_DESCRIPTION:
        raise InvalidArgument(f"description is longer than {MAX_DESCRIPTION} characters")
    if not value.replace("\n", "").replace("\t", "").replace("\r", "").isprintable():
        raise InvalidArgument("description must not contain control characters")
    return value


def tags(value: Any) -> tuple[str, ...] | None:
    """None, a comma-separated string, or an iterable of strings -> a tuple of unique tags."""
    if value is None:
        return None
    if isinstance(value, str):
        items: Iterable[Any] = value.split(",")
        from_string = True
    elif isinstance(value, bytes | bytearray) or not isinstance(value, Iterable):
        raise InvalidArgument("tags must be a comma-separated string or a list of strings")
    else:
        items = value
        from_string = False
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidArgument(f"each tag must be a string, not {type(item).__name__}")
        tag = item.strip()
        if not tag:
            if from_string:
                continue  # "a,,b" and "" are forgiven in the comma form
            raise InvalidArgument("tags must not be empty")
        if len(tag) > MAX_TAG:
            raise InvalidArgument(f"tag {tag[:20]!r}... is longer than {MAX_TAG} characters")
        if "," in tag or not _printable(tag):
            raise InvalidArgument(f"tag {tag!r} must not contain commas or control characters")
        if tag not in out:
            out.append(tag)
        if len(out) > MAX_TAGS:
            raise InvalidArgument(f"at most {MAX_TAGS} tags per content")
    return tuple(out)


def filename(value: Any) -> str:
    """A display name, not a path: 1..255 printable characters, no slashes."""
    if not isinstance(value, str):
        raise InvalidArgument(f"filename must be a string, not {type(value).__name__}")
    if not value or len(value) > MAX_FILENAME:
        raise InvalidArgument(f"filename must be 1..{MAX_FILENAME} characters")
    if "/" in value or "\\" in value or value in (".", "..") or not _printable(value):
        raise InvalidArgument(
            f"filename {value!r} must be a plain name (no slashes or control characters)"
        )
    return value


def path(value: Any) -> str:
    """Where a content sat in an uploaded folder: relative, ``/``-separated, 1..1,024
    printable characters, each part a valid filename (so no ``..``, ``.`` or empty part).

    A path is joined to a folder on download: nothing here can climb out of it. (String
    tests, not a split: a folder upload checks thousands.)
    """
    if not isinstance(value, str):
        raise InvalidArgument(f"path must be a string, not {type(value).__name__}")
    if not value or len(value) > MAX_PATH:
        raise InvalidArgument(f"path must be 1..{MAX_PATH} characters")
    shown = value[:80]
    if value[0] == "/" or "\\" in value or not _printable(value) or value[1:3] == ":/":
        raise InvalidArgument(
            f"path {shown!r} must be relative and /-separated, without control characters"
        )
    wrapped = f"/{value}/"
    if "//" in wrapped or "/./" in wrapped or "/../" in wrapped or value[1:] == ":":
        raise InvalidArgument(f"path {shown!r} must not have empty, '.' or '..' parts")
    if len(value) > MAX_FILENAME and any(len(part) > MAX_FILENAME for part in value.split("/")):
        raise InvalidArgument(f"each part of path {shown!r} must be at most {MAX_FILENAME} long")
    return value


def integer(value: Any, name: str, low: int, high: int) -> int:
    """An int (not a bool) in low..high."""
    if isinstance(value, bool) or not isinstance(value, int):
        # ASCII digits only, and few enough for int(): str.isdigit() also accepts "²",
        # which int() rejects, and int() refuses strings of more than 4,300 digits.
        if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
            value = int(value)
        else:
            shown = repr(value[:24]) if isinstance(value, str) else type(value).__name__
            raise InvalidArgument(f"{name} must be an integer, not {shown}")
    if not low <= value <= high:
        raise InvalidArgument(f"{name} must be between {low} and {high}")
    return int(value)


def permissions(value: Any) -> str:
    if not isinstance(value, str) or value not in PERMISSIONS:
        raise InvalidArgument(f"permissions must be 'read' or 'write', not {value!r}")
    return value


def quota(value: Any) -> int | None:
    if value is None:
        return None
    return integer(value, "quotaBytes", 0, 2**62)


MAX_QUERY = 4096
MAX_FILTER = 256


def query(value: Any) -> str | None:
    """A search query: None, or text of at most MAX_QUERY characters (any text: what is
    not a word, a quoted phrase or a prefix is searched for literally)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"query must be a string, not {type(value).__name__}")
    if len(value) > MAX_QUERY:
        raise InvalidArgument(f"query is longer than {MAX_QUERY} characters")
    return value if value.strip() else None


def filter_text(value: Any, name: str) -> str | None:
    """A filter's value: None, or 1..MAX_FILTER printable characters (numbers, as seeds
    are, become their text)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string, not {type(value).__name__}")
    text = str(value).strip()
    if not text or len(text) > MAX_FILTER or not _printable(text):
        raise InvalidArgument(f"{name} must be 1 to {MAX_FILTER} printable characters")
    return text


def flag(value: Any, name: str) -> bool | None:
    """None, or a boolean (also "true"/"false", as a query string gives it)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise InvalidArgument(f"{name} must be true or false")


def instant_ms(value: Any, name: str) -> int | None:
    """None, or a moment as milliseconds since the epoch: a datetime (naive means UTC) or
    an ISO 8601 date or date and time."""
    import datetime as dt

    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidArgument(f"{name} must be an ISO 8601 date or time") from None
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        raise InvalidArgument(f"{name} must be an ISO 8601 date or time")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    # Clamped to what a timestamp holds (13 digits of ms): as a filter, any moment works.
    return min(max(int(value.timestamp() * 1000), 0), 10**13 - 1)
