"""The content-addressed blob store on local disk.

``local`` owns the layout and writes one blob at a time, ``batch`` writes many small ones
sharing the disk's flushes, ``reader`` serves blobs back verified, and ``hashing`` names
bytes by their BLAKE3 hash.
"""

from __future__ import annotations

from .batch import PendingBlobs, read_small, stage_many
from .hashing import hash_bytes, hash_file
from .local import SMALL_FILE, Admit, BlobStore, StoredBlob
from .reader import VerifiedReader

__all__ = [
    "SMALL_FILE",
    "Admit",
    "BlobStore",
    "PendingBlobs",
    "StoredBlob",
    "VerifiedReader",
    "hash_bytes",
    "hash_file",
    "read_small",
    "stage_many",
]
