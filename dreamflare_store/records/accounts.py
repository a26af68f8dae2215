"""The records of accounts: storage, collaborations, API keys, usage, analytics, URLs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import Record


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
    strip_metadata: bool = False


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
class Identity(Record):
    """Who an API key acts for (``GET /whoami``): its user and the key's own id."""

    user_id: str
    key_id: str


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
class ContentUrls(Record):
    """Signed URLs of one content's thumbnail and bytes, for a browser's ``<img>`` and
    ``<video>``: relative to the server, good until ``expires_at`` while the key that
    made them is unrevoked. Add ``&size=`` or ``&version=`` to them as needed."""

    content_id: str
    thumbnail_url: str
    data_url: str
    expires_at: str
