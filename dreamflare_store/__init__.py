"""dreamflare_store: a local-first, embedded storage engine for AI-generated images and videos.

Bytes are deduplicated by BLAKE3 hash in a content-addressed folder; metadata, versions,
collaborations, API keys, usage and analytics live in SQLite beside it. Everything works
offline, and stores sync later through any fsspec backend.

>>> from dreamflare_store import Store                  # doctest: +SKIP
>>> with Store("./dreamflare-data") as store:
...     content = store.upload(file="cat.png", user_id="alice", tags="cat,cute")
"""

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
from .version import __version__ as __version__

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
