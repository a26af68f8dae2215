"""Small blobs' bytes kept in the catalog (the ``blob_data`` table): its SQL, and nothing
of hashing or policy, which stay with ``blobs`` (``blobs.inline``) and the replica."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from .db import Part

_GET = "SELECT data FROM blob_data WHERE hash = ?"
_SIZE = "SELECT size FROM blob_data WHERE hash = ?"
# Storing bytes that are there already writes them again (SQLite skips the pages that do
# not change): a copy found corrupt is so replaced by the good bytes, and its age is reset
# so that gc's min_age spares it until the reference to it commits.
_PUT = (
    "INSERT INTO blob_data (hash, size, created_ms, data) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (hash) DO UPDATE SET size = excluded.size,"
    " created_ms = excluded.created_ms, data = excluded.data"
)
_LISTING = "SELECT hash, size, created_ms FROM blob_data"
_DELETE = "DELETE FROM blob_data WHERE hash = ?"
_DELETE_IF = "DELETE FROM blob_data WHERE hash = ? AND data = ?"


class InlineBlobs(Part):
    """The bytes of small blobs, by hash, in the catalog's own file.

    Reads run on the calling thread's connection, so inside a transaction they see what
    it wrote. ``put`` and ``delete`` write inside the caller's transaction (or their own,
    committed before they return, when there is none).
    """

    def get(self, digest: str) -> bytes | None:
        """Return the bytes kept for ``digest``, or None."""
        row = self.conn.execute(_GET, (digest,)).fetchone()
        return None if row is None else bytes(row[0])

    def size(self, digest: str) -> int | None:
        """Return the size of the bytes kept for ``digest``, or None."""
        row = self.conn.execute(_SIZE, (digest,)).fetchone()
        return None if row is None else int(row[0])

    def has(self, digest: str) -> bool:
        """Return whether bytes are kept for ``digest``."""
        return self.size(digest) is not None

    def put(self, rows: Iterable[tuple[str, bytes]]) -> None:
        """Keep each ``(digest, bytes)``; the caller has checked that the bytes hash to it."""
        now = time.time_ns() // 1_000_000  # gc compares it with the wall time, as mtimes
        with self.db.atomic() as conn:
            conn.executemany(_PUT, [(d, len(data), now, data) for d, data in rows])

    def listing(self) -> Iterator[tuple[str, int, int]]:
        """Yield ``(digest, size, created_ms)`` of every blob kept, for gc."""
        for row in self.conn.execute(_LISTING).fetchall():
            yield str(row[0]), int(row[1]), int(row[2])

    def delete(self, digests: Iterable[str]) -> None:
        """Drop the bytes of ``digests`` (gc)."""
        with self.db.atomic() as conn:
            conn.executemany(_DELETE, [(d,) for d in digests])

    def delete_if(self, digest: str, data: bytes) -> bool:
        """Drop the bytes of ``digest`` only if they are still ``data`` (found corrupt),
        never good bytes put in their place meanwhile; return whether they were."""
        with self.db.atomic() as conn:
            return conn.execute(_DELETE_IF, (digest, data)).rowcount > 0
