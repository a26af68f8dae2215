"""The records the API returns: frozen dataclasses with one JSON shape each.

``to_dict()`` gives the camelCase JSON that the HTTP adapter and the CLI's ``--json`` both
print, so the three faces of the engine cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _json(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items()}
    return value


class Record:
    """Base of every record: camelCase JSON of every field, leaving out ``_OPTIONAL`` Nones."""

    __slots__ = ()
    _OPTIONAL: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if value is None and field.name in self._OPTIONAL:
                continue
            out[_camel(field.name)] = _json(value)
        return out


@dataclass(frozen=True, slots=True)
class Content(Record):
    """One content item as it is now (the snapshot at its last version)."""

    content_id: str
    user_id: str
    filename: str
    mime_type: str
    size: int
    hash: str
    description: str | None
    tags: tuple[str, ...]
    version: int
    created_at: str
    updated_at: str
    width: int | None = None
    height: int | None = None

    _OPTIONAL = ("width", "height")


@dataclass(frozen=True, slots=True)
class Version(Record):
    """One immutable version: the snapshot after it and the fields it changed."""

    version_id: str
    content_id: str
    version: int
    user_id: str
    created_at: str
    hash: str
    size: int
    filename: str
    mime_type: str
    description: str | None
    tags: tuple[str, ...]
    changes: tuple[str, ...]
    width: int | None = None
    height: int | None = None

    _OPTIONAL = ("width", "height")


T = TypeVar("T", bound=Record)


@dataclass(frozen=True, slots=True)
class Page(Record, Generic[T]):
    """One page of a list: ``items``, the ``total`` number of live items, and the window."""

    items: tuple[T, ...]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True, slots=True)
class StorageUsage(Record):
    """Storage a user's live contents take: current versions, and every version kept."""

    user_id: str
    content_count: int
    version_count: int
    bytes: int
    history_bytes: int
    quota_bytes: int | None


@dataclass(frozen=True, slots=True)
class Collaboration(Record):
    """A content shared by its owner with a collaborator, to ``read`` or ``write``."""

    collaboration_id: str
    content_id: str
    user_id: str
    collaborator_id: str
    permissions: str
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class ApiKey(Record):
    """An API key as listed: never its secret."""

    key_id: str
    user_id: str
    description: str | None
    created_at: str
    revoked_at: str | None
    last_used_at: str | None


@dataclass(frozen=True, slots=True)
class NewApiKey(Record):
    """A key just generated; ``api_key`` is the secret, shown this once and never again."""

    key_id: str
    user_id: str
    description: str | None
    created_at: str
    revoked_at: str | None
    last_used_at: str | None
    api_key: str


@dataclass(frozen=True, slots=True)
class ApiUsage(Record):
    """API calls a user made: totals, per operation, and per day (oldest first)."""

    user_id: str
    total_calls: int
    errors: int
    bytes_in: int
    bytes_out: int
    by_operation: dict[str, dict[str, int]]
    daily: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Analytics(Record):
    """Views, downloads and viewers of one content, or of all a user's contents."""

    user_id: str
    content_id: str | None
    views: int
    downloads: int
    bytes_served: int
    unique_viewers: int
    daily: tuple[dict[str, Any], ...]
    top_content: tuple[dict[str, Any], ...] | None = None

    _OPTIONAL = ("top_content",)


@dataclass(frozen=True, slots=True)
class SyncReport(Record):
    """What one push, pull or sync moved."""

    ops_sent: int = 0
    ops_received: int = 0
    blobs_sent: int = 0
    blobs_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0


@dataclass(frozen=True, slots=True)
class Problem(Record):
    """One problem ``verify()`` found: what kind, about what, and in words."""

    kind: str
    subject: str
    message: str


@dataclass(frozen=True, slots=True)
class GcReport(Record):
    """What ``gc()`` removed."""

    blobs_removed: int
    bytes_freed: int
    temp_files_removed: int
