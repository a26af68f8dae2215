"""The records that say what an operation did: uploads of a batch, sync, gc, backup, verify."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from . import Content, Record


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


# Made as ``records.new_content`` makes a Content: object.__new__ and plain slot writes,
# without the frozen dataclass's __init__ (see ``records._ContentLayout``).
_new_object = object.__new__


class _UploadResultLayout(Record):
    """UploadResult's memory layout without its frozen ``__setattr__``."""

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
    catalog_bytes_returned: int = 0  # given back to the disk by compacting the catalog


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
