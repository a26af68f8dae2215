"""dreamflare_store: a local-first, embedded storage engine for AI-generated images and videos.

Bytes are deduplicated by BLAKE3 hash in a content-addressed folder; metadata, versions,
collaborations, API keys, usage and analytics live in SQLite beside it. Everything works
offline, and stores sync later through any fsspec backend.

>>> from dreamflare_store import Store                  # doctest: +SKIP
>>> with Store("./dreamflare-data") as store:
...     content = store.upload(file="cat.png", user_id="alice", tags="cat,cute")
"""

from typing import TYPE_CHECKING, Any

from .errors import (
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
from .version import __version__ as __version__

if TYPE_CHECKING:
    from .records import (
        Analytics,
        ApiKey,
        ApiUsage,
        BackupReport,
        Collaboration,
        Content,
        ContentUrls,
        GcReport,
        Identity,
        NewApiKey,
        Page,
        Problem,
        StorageUsage,
        SyncReport,
        UploadResult,
        VerifyReport,
        Version,
    )
    from .store import Store

__all__ = [
    "Analytics",
    "ApiKey",
    "ApiUsage",
    "BackupReport",
    "BlobUnavailable",
    "Collaboration",
    "Conflict",
    "Content",
    "ContentUrls",
    "CorruptStore",
    "DreamflareError",
    "GcReport",
    "Identity",
    "IntegrityError",
    "InvalidArgument",
    "NewApiKey",
    "NotFound",
    "Page",
    "PermissionDenied",
    "Problem",
    "QuotaExceeded",
    "RemoteError",
    "StorageFull",
    "StorageUsage",
    "Store",
    "SyncReport",
    "Unauthenticated",
    "UploadResult",
    "VerifyReport",
    "Version",
]

# The facade and the records are imported on first use (PEP 562), not with the package:
# every `dreamflare` command imports this package first, and most need few of them.
_LAZY = {
    name: ".store" if name == "Store" else ".records"
    for name in __all__
    if name not in globals()  # the errors, imported above
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(_LAZY[name], __name__), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
