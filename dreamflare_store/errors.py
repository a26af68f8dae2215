"""The one error hierarchy of dreamflare_store.

Every error the engine raises on purpose is a ``DreamflareError``. Each class carries a
stable ``code`` (used in HTTP bodies and ``--json`` output) and the HTTP ``status`` the
adapter answers with::

    DreamflareError
    ├── InvalidArgument     400  invalid_argument    (also a ValueError)
    ├── Unauthenticated     401  unauthenticated
    ├── PermissionDenied    403  permission_denied   (also a PermissionError)
    ├── NotFound            404  not_found           (also a LookupError)
    ├── Conflict            409  conflict
    ├── QuotaExceeded       413  quota_exceeded
    ├── IntegrityError      500  integrity_error     (bytes on disk do not match their hash)
    ├── CorruptStore        500  corrupt_store       (the catalog is damaged or gone)
    ├── StorageFull         507  storage_full        (the store's disk or quota is full)
    └── RemoteError         502  remote_error        (a sync remote failed or is unusable)
        └── BlobUnavailable 503  blob_unavailable    (bytes are remote-only and no remote answers)

Foreign exceptions (sqlite3, OSError, fsspec) are translated at one boundary each, with
``raise ... from exc`` so the cause stays visible.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DreamflareError(Exception):
    """Root of every error raised by dreamflare_store on purpose."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 500

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context
        for name, value in context.items():
            setattr(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body shape shared by HTTP and the CLI's ``--json``."""
        return {"error": {"code": self.code, "message": self.message}}


class InvalidArgument(DreamflareError, ValueError):
    """An argument has the wrong type, format or size."""

    code = "invalid_argument"
    status = 400


class Unauthenticated(DreamflareError):
    """An API key is missing, malformed, unknown or revoked."""

    code = "unauthenticated"
    status = 401


class PermissionDenied(DreamflareError, PermissionError):
    """The user may see the thing but may not do this to it."""

    code = "permission_denied"
    status = 403


class NotFound(DreamflareError, LookupError):
    """No such thing, or the user may not see it (the two are not told apart)."""

    code = "not_found"
    status = 404


class Conflict(DreamflareError):
    """The request contradicts the current state (a duplicate collaboration, ...)."""

    code = "conflict"
    status = 409


class QuotaExceeded(DreamflareError):
    """The upload would take the user past their storage quota."""

    code = "quota_exceeded"
    status = 413


class IntegrityError(DreamflareError):
    """Stored bytes do not hash to their name, or the catalog contradicts itself."""

    code = "integrity_error"
    status = 500


class RemoteError(DreamflareError):
    """A sync remote is unreachable, misconfigured, or holds corrupt data."""

    code = "remote_error"
    status = 502


class BlobUnavailable(RemoteError):
    """The bytes were pulled lazily and are only on a remote that cannot be reached now."""

    code = "blob_unavailable"
    status = 503


class CorruptStore(DreamflareError):
    """The store's catalog is damaged, truncated or missing: no input caused it.

    The message names the file and says how to recover (a pull from a remote into a fresh
    store, or a backup).
    """

    code = "corrupt_store"
    status = 500


class StorageFull(DreamflareError):
    """The disk (or the file system quota) that holds the store has no room left.

    The message names the store's folder, never the file being uploaded: the input is not
    at fault. Deleting contents and ``gc`` still work on a full disk (see ``Store.gc``).
    """

    code = "storage_full"
    status = 507
