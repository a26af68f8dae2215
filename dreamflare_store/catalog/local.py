"""What this replica keeps for itself and never replicates: quotas, the remotes it syncs
with, how far it got with each, which blobs are only on a remote, what each blob file
looked like when last known good, and the stat cache of uploaded files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .db import Part


def file_stat(size: int, mtime_ns: int, inode: int) -> str:
    """How the stat cache keeps a file's size, mtime and inode: one string."""
    return f"{size} {mtime_ns} {inode}"


class LocalState(Part):
    """Quotas, remotes, sync progress and remote-only blobs of this store."""

    def quota(self, user: str) -> int | None:
        row = self.conn.execute("SELECT quota_bytes FROM quotas WHERE user = ?", (user,)).fetchone()
        return None if row is None else int(row[0])

    def set_quota(self, user: str, quota_bytes: int | None) -> None:
        if quota_bytes is None:
            self.conn.execute("DELETE FROM quotas WHERE user = ?", (user,))
        else:
            self.conn.execute(
                "INSERT INTO quotas (user, quota_bytes) VALUES (?, ?)"
                " ON CONFLICT (user) DO UPDATE SET quota_bytes = excluded.quota_bytes",
                (user, quota_bytes),
            )

    def remotes(self) -> dict[str, tuple[str, dict[str, Any]]]:
        rows = self.conn.execute("SELECT name, url, options FROM remotes ORDER BY name")
        return {str(row[0]): (str(row[1]), json.loads(row[2])) for row in rows}

    def set_remote(self, name: str, url: str, options: dict[str, Any]) -> None:
        self.conn.execute(
            "INSERT INTO remotes (name, url, options) VALUES (?, ?, ?) ON CONFLICT (name)"
            " DO UPDATE SET url = excluded.url, options = excluded.options",
            (name, url, json.dumps(options, sort_keys=True)),
        )

    def remote_progress(self, remote: str) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT replica, rseq FROM remote_progress WHERE remote = ?", (remote,)
        )
        return {str(row[0]): int(row[1]) for row in rows}

    def set_remote_progress(self, remote: str, replica: str, rseq: int) -> None:
        self.conn.execute(
            "INSERT INTO remote_progress (remote, replica, rseq) VALUES (?, ?, ?)"
            " ON CONFLICT DO UPDATE SET rseq = max(rseq, excluded.rseq)",
            (remote, replica, rseq),
        )

    def remote_of_blob(self, blob: str) -> str | None:
        row = self.conn.execute(
            "SELECT remote FROM remote_blobs WHERE blob = ?", (blob,)
        ).fetchone()
        return None if row is None else str(row[0])

    def remote_blob_digests(self) -> set[str]:
        return {str(row[0]) for row in self.conn.execute("SELECT blob FROM remote_blobs")}

    def remote_blob_sources(self) -> dict[str, str]:
        """Every blob recorded as remote-only, with the remote it can be fetched from."""
        rows = self.conn.execute("SELECT blob, remote FROM remote_blobs")
        return {str(row[0]): str(row[1]) for row in rows}

    def set_remote_blob(self, blob: str, remote: str, size: int) -> None:
        self.conn.execute(
            "INSERT INTO remote_blobs (blob, remote, size) VALUES (?, ?, ?)"
            " ON CONFLICT DO UPDATE SET remote = excluded.remote",
            (blob, remote, size),
        )

    def forget_remote_blob(self, blob: str) -> None:
        self.conn.execute("DELETE FROM remote_blobs WHERE blob = ?", (blob,))

    def forget_remote(self, name: str) -> bool:
        """Remove a remote and its sync progress; whether there was one."""
        self.conn.execute("DELETE FROM remote_progress WHERE remote = ?", (name,))
        return self.conn.execute("DELETE FROM remotes WHERE name = ?", (name,)).rowcount > 0

    def quotas(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT user, quota_bytes FROM quotas ORDER BY user")
        return {str(row[0]): int(row[1]) for row in rows}

    # -- the stat cache of uploaded files -------------------------------------------------

    def cache_files(self, user: str, entries: Sequence[tuple[str, str, str, str, str]]) -> None:
        """Remember files as uploaded: ``(source, path, stat, content_id, blob)`` each, with
        ``stat`` as ``file_stat`` makes it.

        A file goes in only if its content is still ``user``'s newest live content at
        ``path``, with ``blob``: it may have changed since the upload that read the file,
        and the triggers that keep the cache true only see later changes.
        """
        self.conn.executemany(
            "INSERT OR REPLACE INTO file_cache (user, source, path, stat, content_id)"
            " SELECT c.owner, ?2, c.path, ?4, c.content_id FROM contents c"
            " WHERE c.content_id = ?5 AND c.owner = ?1 AND c.deleted = 0 AND c.path = ?3"
            " AND c.blob = ?6 AND NOT EXISTS (SELECT 1 FROM contents d WHERE d.owner = ?1"
            " AND d.path = ?3 AND d.deleted = 0 AND d.n > c.n)",
            [(user, *entry) for entry in entries],
        )

    def cached_files(self, user: str, first: str, last: str) -> dict[str, str]:
        """The stat cache of ``user``'s files whose sources sort from ``first`` to ``last``:
        ``f"{source}\\t{path}\\t{stat}"`` -> the id of the content the file is. (A path
        has no control characters and a stat only digits and spaces: two files never share
        a key.)

        One query for a whole folder, one string per file: a re-run over thousands of
        files must cost little more than listing them. Every row is true (see schema.sql,
        migration 9), so a file whose key is here is unchanged.
        """
        cursor = self.conn.cursor()
        cursor.row_factory = None
        rows = cursor.execute(
            "SELECT source || '\t' || path || '\t' || stat, content_id FROM file_cache"
            " WHERE user = ? AND source BETWEEN ? AND ?",
            (user, first, last),
        ).fetchall()
        return dict(rows)

    # -- stripped copies of blobs (derived, made once) ---------------------------------

    def stripped_of(self, source: str) -> str | None:
        """The blob holding ``source``'s bytes without their metadata, if made already."""
        row = self.conn.execute(
            "SELECT stripped FROM stripped_blobs WHERE source = ?", (source,)
        ).fetchone()
        return None if row is None else str(row[0])

    def set_stripped(self, source: str, stripped: str) -> None:
        self.conn.execute(
            "INSERT INTO stripped_blobs (source, stripped) VALUES (?, ?)"
            " ON CONFLICT (source) DO UPDATE SET stripped = excluded.stripped",
            (source, stripped),
        )

    def keep_stripped(self, live: dict[str, int]) -> list[str]:
        """Forget the stripped copies of blobs no longer ``live`` (inside gc's transaction);
        the stripped blobs of live ones, which gc keeps."""
        keep: list[str] = []
        gone: list[str] = []
        for source, stripped in self.conn.execute("SELECT source, stripped FROM stripped_blobs"):
            (keep if source in live else gone).append(stripped if source in live else source)
        self.conn.executemany("DELETE FROM stripped_blobs WHERE source = ?", [(s,) for s in gone])
        return keep

    # -- blob files as last known good -------------------------------------------------

    def blob_file(self, blob: str) -> tuple[int, int, int] | None:
        """The (size, inode, mtime_ns) blob's file had when last known good, if recorded."""
        row = self.db.lookup("SELECT size, inode, mtime_ns FROM blob_files WHERE blob = ?", (blob,))
        return None if row is None else (int(row[0]), int(row[1]), int(row[2]))

    def set_blob_files(self, files: list[tuple[str, int, int, int]]) -> None:
        """Record (blob, size, inode, mtime_ns) of blob files known good now."""
        self.conn.executemany(
            "INSERT INTO blob_files (blob, size, inode, mtime_ns) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (blob) DO UPDATE SET size = excluded.size, inode = excluded.inode,"
            " mtime_ns = excluded.mtime_ns",
            files,
        )

    def forget_blob_files(self, blobs: list[str]) -> None:
        self.conn.executemany("DELETE FROM blob_files WHERE blob = ?", [(b,) for b in blobs])
