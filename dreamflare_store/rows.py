"""Records built from catalog rows: every ``Content``, ``Version``, ``Collaboration`` and
``ApiKey`` the API returns is made here, so a record reads the same on every path.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from .catalog import CONTENT_COLUMNS, Row, generation_of, tags_from_sql
from .clock import iso_ms, iso_of_hlc
from .records import Content, Version, new_content

if TYPE_CHECKING:
    from .records.accounts import ApiKey, Collaboration

# A page of 100 contents parses 100 tag lists, so a parse costs a dict lookup instead: a
# plain dict (a hit is cheaper than an lru_cache call), emptied when it grows large.
_TAGS: dict[str | None, tuple[str, ...]] = {}
_TAGS_MAX = 4096


def tags(text: str | None) -> tuple[str, ...]:
    """The tags of a row's ``tags`` column."""
    try:
        return _TAGS[text]
    except KeyError:
        if len(_TAGS) >= _TAGS_MAX:
            _TAGS.clear()
        parsed = _TAGS[text] = tags_from_sql(text)
        return parsed


def content_of(
    content_id: str,
    owner: str,
    filename: str,
    mime: str,
    size: int,
    blob: str,
    description: str | None,
    tags_text: str | None,
    version: int,
    created_hlc: str,
    updated_hlc: str,
    width: int | None,
    height: int | None,
    generation_text: str | None = None,
    path: str | None = None,
) -> Content:
    """The record of a content row's ``CONTENT_COLUMNS`` (list pages give plain tuples)."""
    created_at = iso_of_hlc(created_hlc)
    updated_at = created_at if updated_hlc == created_hlc else iso_of_hlc(updated_hlc)
    return new_content(
        content_id, owner, filename, mime, size, blob, description, tags(tags_text), version,
        created_at, updated_at, width, height,
        generation_of(generation_text), path,
    )  # fmt: skip


def withheld(record: Content, strip: bool) -> Content:
    """The record as a reader sees it: with ``strip``, without its generation record
    (the reader may not see how it was made)."""
    if not strip or record.generation is None:
        return record
    return dataclasses.replace(record, generation=None)


def content(row: Row, strip: bool = False) -> Content:
    """The record of a whole content row (``strip``: without its generation record)."""
    return withheld(content_of(*[row[column] for column in CONTENT_COLUMNS]), strip)


def version(row: Row, strip: bool = False) -> Version:
    """The record of a version row: its snapshot and which fields it changed."""
    return Version(
        version_id=row["version_id"],
        content_id=row["content_id"],
        version=row["number"],
        user_id=row["author"],
        created_at=iso_of_hlc(row["hlc"]),
        hash=row["blob"],
        size=row["size"],
        filename=row["filename"],
        mime_type=row["mime"],
        description=row["description"],
        tags=tags(row["tags"]),
        changes=tuple(row["changes"].split(",")) if row["changes"] else (),
        width=row["width"],
        height=row["height"],
        generation=None if strip else generation_of(row["generation"]),
        path=row["path"],
    )


def collaboration(row: Row) -> Collaboration:
    # The accounts' records are imported when first made: reads of contents need none.
    from .records.accounts import Collaboration

    return Collaboration(
        collaboration_id=row["collaboration_id"],
        content_id=row["content_id"],
        user_id=row["owner"],
        collaborator_id=row["collaborator"],
        permissions=row["permissions"],
        created_at=iso_of_hlc(row["created_hlc"]),
        updated_at=iso_of_hlc(row["updated_hlc"]),
        strip_metadata=bool(row["strip_metadata"]),
    )


def api_key(row: Row, last_used_ms: int | None) -> ApiKey:
    from .records.accounts import ApiKey

    revoked: Any = row["revoked_hlc"]
    return ApiKey(
        key_id=row["key_id"],
        user_id=row["user"],
        description=row["description"],
        created_at=iso_of_hlc(row["created_hlc"]),
        revoked_at=None if revoked is None else iso_of_hlc(revoked),
        last_used_at=None if last_used_ms is None else iso_ms(last_used_ms),
    )
