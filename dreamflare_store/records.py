"""The records the API returns: frozen dataclasses with one JSON shape each.

``to_dict()`` gives the camelCase JSON that the HTTP adapter and the CLI's ``--json`` both
print, so the three faces of the engine cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar


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
class UploadResult(Record):
    """What one file of ``Store.upload_batch`` became.

    ``status`` is ``"created"`` (a new content), ``"versioned"`` (a new version of the
    content already at its path), ``"unchanged"`` (the content at its path already has
    these bytes: nothing was written) or ``"failed"`` (``error`` says why); ``new_bytes``
    says whether its bytes were new to the store (else deduplicated).
    """

    source: str
    status: str
    content: Content | None = None
    new_bytes: bool = False
    error: Any = None  # a DreamflareError when status is "failed"

    _OPTIONAL = ("content", "error")

    def to_dict(self) -> dict[str, Any]:
        out = {"source": self.source, "status": self.status, "newBytes": self.new_bytes}
        if self.content is not None:
            out["content"] = self.content.to_dict()
        if self.error is not None:
            out["error"] = self.error.to_dict()["error"]
        return out


class _UploadResultLayout(Record):
    """UploadResult's memory layout without its frozen ``__setattr__`` (see
    ``_ContentLayout``)."""

    __slots__ = tuple(field.name for field in fields(UploadResult))


def unchanged_result(source: str, content: Content | None) -> UploadResult:
    """``UploadResult(source, "unchanged", content)``, made as ``new_content`` makes a
    Content: a folder uploaded again makes one for each of thousands of files."""
    record: Any = _new_object(_UploadResultLayout)
    record.source = source
    record.status = "unchanged"
    record.content = content
    record.new_bytes = False
    record.error = None
    record.__class__ = UploadResult
    result: UploadResult = record
    return result


if unchanged_result("a", None) != UploadResult("a", "unchanged"):
    raise TypeError("unchanged_result must set every field of UploadResult")


@dataclass(frozen=True, slots=True)
class Problem(Record):
    """One problem ``verify()`` found: what kind, about what, and in words."""

    kind: str
    subject: str
    message: str


@dataclass(frozen=True, slots=True)
class GcReport(Record):
    """What ``gc()`` removed (or, with ``dry_run``, would remove), and the unreferenced
    blobs it kept because they were younger than ``min_age``."""

    blobs_removed: int
    bytes_freed: int
    temp_files_removed: int
    thumbnails_removed: int = 0
    blobs_kept_young: int = 0
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class Identity(Record):
    """Who an API key acts for (``GET /whoami``): its user and the key's own id."""

    user_id: str
    key_id: str


@dataclass(frozen=True, slots=True)
class ContentUrls(Record):
    """Signed URLs of one content's thumbnail and bytes, for a browser's ``<img>`` and
    ``<video>``: relative to the server, good until ``expires_at`` while the key that
    made them is unrevoked. Add ``&size=`` or ``&version=`` to them as needed."""

    content_id: str
    thumbnail_url: str
    data_url: str
    expires_at: str


@dataclass(frozen=True, slots=True)
class FacetCount(Record):
    """One facet value and how many of the contents in view carry it."""

    value: str
    count: int


@dataclass(frozen=True, slots=True)
class Facets(Record):
    """The models, LoRAs, samplers, generators and tags of the contents in view, each
    with its count, most used first."""

    models: tuple[FacetCount, ...]
    loras: tuple[FacetCount, ...]
    samplers: tuple[FacetCount, ...]
    generators: tuple[FacetCount, ...]
    tags: tuple[FacetCount, ...]


@dataclass(frozen=True, slots=True)
class Generation(Record):
    """How a version was made: the normalised record and the raw texts it was read from
    (read from the bytes when asked for; never stored in ops)."""

    content_id: str
    version: int
    record: dict[str, Any] | None
    raw: dict[str, str]
    truncated: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BackupReport(Record):
    """What ``backup()`` copied: where to, how many blobs and bytes, and any problem (a
    blob missing or corrupt here, so not copied; the copy's own verify findings)."""

    path: str
    blobs: int
    bytes: int
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class VerifyReport(Record):
    """What ``verify_report()`` checked, beside the problems it found (none: healthy).

    ``blobs_checked`` were re-hashed (``bytes_checked`` bytes); ``remote_only`` blobs are
    referenced but kept only on a remote (pulled lazily), so they could not be hashed here.
    """

    problems: tuple[Problem, ...]
    blobs_checked: int
    bytes_checked: int
    remote_only: int
    contents: int
    versions: int
    ops: int

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """``{"ok", "items": [problems], "blobsChecked", ...}``: the problems under
        ``items``, as every list the API prints."""
        out = Record.to_dict(self)
        return {"ok": self.ok, "items": out.pop("problems"), **out}
