"""Errors over HTTP: the one table from error class to status, and the JSON error body.

Both faces of the network use it: the server answers an error with the status of its
class, and the client turns the body's ``code`` back into the same class. This module
imports no web framework, so the client works without the server's dependencies.
"""

from __future__ import annotations

from typing import Any

from ..errors import (
    BlobUnavailable,
    Conflict,
    CorruptStore,
    DreamflareError,
    IntegrityError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    RemoteError,
    StorageFull,
    Unauthenticated,
)

# The one table. A subclass not listed gets the status of its nearest listed ancestor.
STATUS: dict[type[DreamflareError], int] = {
    InvalidArgument: 400,
    Unauthenticated: 401,
    PermissionDenied: 403,
    NotFound: 404,
    Conflict: 409,
    QuotaExceeded: 413,
    IntegrityError: 500,
    CorruptStore: 500,
    StorageFull: 507,
    RemoteError: 502,
    BlobUnavailable: 503,
    DreamflareError: 500,
}

# code -> class, for the client.
CLASSES: dict[str, type[DreamflareError]] = {cls.code: cls for cls in STATUS}


def status_of(exc: DreamflareError) -> int:
    """The HTTP status of an error: that of its class, or of its nearest listed ancestor."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500  # unreachable: DreamflareError is in the table


class HttpError(Exception):
    """A refusal that belongs to HTTP itself, not to the store (wrong method, media type,
    an over-long body, an unsatisfiable range), answered in the same JSON shape."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def error_from_response(status: int, body: Any) -> DreamflareError:
    """Rebuild the error a server answered with, as the class the store raised.

    A body that is not our error shape (a proxy's page, say) becomes a ``RemoteError`` for
    5xx statuses and a plain ``DreamflareError`` otherwise, with the status in the message.
    """
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        cls = CLASSES.get(str(error.get("code")), DreamflareError)
        return cls(error["message"], http_status=status)
    if status >= 500:
        return RemoteError(f"the server answered {status} without an error body")
    return DreamflareError(f"the server answered {status} without an error body")
