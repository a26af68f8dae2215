"""The records the API returns: frozen dataclasses with one JSON shape each.

``to_dict()`` gives the camelCase JSON that the HTTP adapter and the CLI's ``--json`` both
print, so the three faces of the engine cannot drift apart.

The records every read needs are here; the others are in ``accounts``, ``outcomes`` and
``search`` (each made on import, which costs about a millisecond a record: a quick
command imports only those it uses). They may also be imported from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from .accounts import (
        Analytics,
        ApiKey,
        ApiUsage,
        Collaboration,
        ContentUrls,
        Identity,
        NewApiKey,
        StorageUsage,
    )
    from .outcomes import BackupReport, GcReport, Problem, SyncReport, UploadResult, VerifyReport
    from .search import FacetCount, Facets, Generation

__all__ = [
    "Analytics",
    "ApiKey",
    "ApiUsage",
    "BackupReport",
    "Collaboration",
    "Content",
    "ContentUrls",
    "FacetCount",
    "Facets",
    "GcReport",
    "Generation",
    "Identity",
    "NewApiKey",
    "Page",
    "Problem",
    "Record",
    "StorageUsage",
    "SyncReport",
    "UploadResult",
    "VerifyReport",
    "Version",
    "new_content",
]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _json(value: Any) -> Any:
    if type(value) in _PLAIN:  # most fields: skip the isinstance checks below
        return value
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items()}
    return value


# Per record class: (field name, JSON key, left out when None), so that to_dict() neither
# lists the dataclass fields nor camel-cases their names for every record of a page.
_PLANS: dict[type, tuple[tuple[str, str, bool], ...]] = {}


def _plan(cls: type) -> tuple[tuple[str, str, bool], ...]:
    optional = cls._OPTIONAL  # type: ignore[attr-defined]
    plan = tuple((f.name, _camel(f.name), f.name in optional) for f in fields(cls))
    _PLANS[cls] = plan
    return plan


class Record:
    """Base of every record: camelCase JSON of every field, leaving out ``_OPTIONAL`` Nones."""

    __slots__ = ()
    _OPTIONAL: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        cls = type(self)
        plan = _PLANS.get(cls) or _plan(cls)
        out: dict[str, Any] = {}
        for name, key, optional in plan:
            value = getattr(self, name)
            if value is None and optional:
                continue
            out[key] = _json(value)
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
    # The normalised generation record of the current version (GENMETA.md), or None: none
    # was found, or the reader may not see it (a collaborator without metadata).
    # Left out of the hash (a dict has none), so records stay usable in sets and as keys.
    generation: dict[str, Any] | None = field(default=None, hash=False)
    path: str | None = None  # where it sat in the folder it was uploaded from

    _OPTIONAL = ("width", "height", "path")


class _ContentLayout(Record):
    """Content's memory layout (the same slots, in the same order) without its frozen
    ``__setattr__``: ``new_content`` fills one and then makes it a Content."""

    __slots__ = tuple(field.name for field in fields(Content))


def new_content(
    content_id: str,
    user_id: str,
    filename: str,
    mime_type: str,
    size: int,
    hash: str,
    description: str | None,
    tags: tuple[str, ...],
    version: int,
    created_at: str,
    updated_at: str,
    width: int | None,
    height: int | None,
    generation: dict[str, Any] | None = None,
    path: str | None = None,
) -> Content:
    """``Content(...)`` with every field given, for the list pages that build 100 at once.

    The frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, a
    call per field: most of the cost of a record. Here each field is a plain slot store on
    an object of the same layout, and one ``__class__`` assignment (which Python allows
    between classes of one layout) makes it the Content that ``Content(...)`` would give.
    """
    record: Any = _new_object(_ContentLayout)
    record.content_id = content_id
    record.user_id = user_id
    record.filename = filename
    record.mime_type = mime_type
    record.size = size
    record.hash = hash
    record.description = description
    record.tags = tags
    record.version = version
    record.created_at = created_at
    record.updated_at = updated_at
    record.width = width
    record.height = height
    record.generation = generation
    record.path = path
    record.__class__ = Content
    content: Content = record
    return content


_new_object = object.__new__
# A field added to Content but not to new_content fails here, at import, not in a response.
_probe: Any = tuple(range(len(_ContentLayout.__slots__)))
if new_content(*_probe) != Content(*_probe):
    raise TypeError("new_content must take and set every field of Content, in order")


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
    generation: dict[str, Any] | None = field(default=None, hash=False)
    path: str | None = None

    _OPTIONAL = ("width", "height", "path")


T = TypeVar("T", bound=Record)


@dataclass(frozen=True, slots=True)
class Page(Record, Generic[T]):
    """One page of a list: ``items``, the ``total`` number of live items, and the window."""

    items: tuple[T, ...]
    total: int
    limit: int
    offset: int


# The records of the submodules, importable from here too (PEP 562), each submodule on
# first use.
_SUBMODULES = {
    "StorageUsage": "accounts",
    "Collaboration": "accounts",
    "ApiKey": "accounts",
    "NewApiKey": "accounts",
    "Identity": "accounts",
    "ApiUsage": "accounts",
    "Analytics": "accounts",
    "ContentUrls": "accounts",
    "SyncReport": "outcomes",
    "UploadResult": "outcomes",
    "Problem": "outcomes",
    "GcReport": "outcomes",
    "BackupReport": "outcomes",
    "VerifyReport": "outcomes",
    "FacetCount": "search",
    "Facets": "search",
    "Generation": "search",
}


def __getattr__(name: str) -> Any:
    if name not in _SUBMODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{_SUBMODULES[name]}", __name__), name)
