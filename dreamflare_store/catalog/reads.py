"""Reads of the materialised tables that return rows: contents, versions, list pages,
storage counters, collaborations and keys, and the rows of the state digest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from .db import Part, Row

BLOCK_BITS = 10  # list_blocks group 1024 arrival numbers
SUPER_BITS = 5  # list_supers group 32 blocks (schema.sql's migration 4 fills them so)
# A content row as ``list_page`` gives it: the fields of a Content record, in their order
# (tags as stored, times as HLCs).
CONTENT_COLUMNS = (
    "content_id", "owner", "filename", "mime", "size", "blob", "description", "tags",
    "version", "created_hlc", "updated_hlc", "width", "height", "generation", "path",
)  # fmt: skip
_CONTENT_SELECT = ", ".join(CONTENT_COLUMNS)
_CONTENT_PREFIXED = ", ".join(f"c.{column}" for column in CONTENT_COLUMNS)

# The materialised state first (contents, versions, collaborations, favorites, keys),
# then the counters.
DIGEST_QUERIES = (
    "SELECT content_id, owner, deleted, filename, mime, size, blob, description, tags,"
    " width, height, version, created_hlc, updated_hlc, generation, path FROM contents"
    " ORDER BY content_id",
    "SELECT version_id, content_id, number, hlc, author, filename, mime, size, blob,"
    " description, tags, width, height, changes, generation, path FROM versions"
    " ORDER BY version_id",
    "SELECT collaboration_id, content_id, owner, collaborator, permissions, deleted,"
    " created_hlc, updated_hlc, strip_metadata FROM collaborations ORDER BY collaboration_id",
    "SELECT content_id, user, favorite, hlc FROM favorites ORDER BY content_id, user",
    "SELECT key_id, user, description, secret_hash, created_hlc, revoked_hlc"
    " FROM api_keys ORDER BY key_id",
    "SELECT replica, user, operation, day, calls, errors, bytes_in, bytes_out"
    " FROM api_usage ORDER BY replica, user, operation, day",
    "SELECT replica, content_id, day, views, downloads, bytes_served"
    " FROM content_stats ORDER BY replica, content_id, day",
    "SELECT content_id, day, user FROM viewers ORDER BY content_id, day, user",
)


_READ_ROW = (
    "SELECT content_id, owner, deleted, blob, filename, mime FROM contents WHERE content_id = ?"
)
_READ_ROW_DATA = (
    "SELECT c.content_id, c.owner, c.deleted, c.blob, c.filename, c.mime, d.data"
    " FROM contents c LEFT JOIN blob_data d ON d.hash = c.blob WHERE c.content_id = ?"
)


class Reads(Part):
    """Row-returning reads of contents, versions, storage, collaborations and keys."""

    def content_row(self, content_id: str) -> Row | None:
        row: Row | None = self.conn.execute(
            "SELECT * FROM contents WHERE content_id = ?", (content_id,)
        ).fetchone()
        return row

    def read_row(self, content_id: str, with_data: bool = False) -> Row | None:
        """What reading a content's bytes needs of its row (who owns it, whether it is
        deleted, its blob, filename and type): the lookup is most of a small read, and
        the other columns (the generation record above all) would double it.

        ``with_data`` adds ``data``: the blob's bytes when they are kept as a row (else
        None), so a small read is one query, not one for the row and one for the bytes.
        """
        sql = _READ_ROW_DATA if with_data else _READ_ROW
        row: Row | None = self.conn.execute(sql, (content_id,)).fetchone()
        return row

    def live_by_paths(self, owner: str, paths: Iterable[str]) -> dict[str, tuple[Any, ...]]:
        """For each path wanted, the newest live content of ``owner`` at that path, if any:
        its ``CONTENT_COLUMNS``, by path. One query for a whole folder."""
        cursor = self.conn.cursor()
        cursor.row_factory = None
        found = cursor.execute(
            f"SELECT {_CONTENT_PREFIXED} FROM json_each(?) w"  # CROSS JOIN: paths, then index
            " CROSS JOIN contents c ON c.owner = ? AND c.path = w.value AND c.deleted = 0"
            " ORDER BY c.n",
            (json.dumps(list(paths)), owner),
        ).fetchall()
        width = len(CONTENT_COLUMNS)
        return {row[width - 1]: row for row in found}  # the newest (highest n) of a path wins

    def content_tuples(self, content_ids: Iterable[str]) -> dict[str, tuple[Any, ...]]:
        """The ``CONTENT_COLUMNS`` of each content wanted that has a row, by id."""
        cursor = self.conn.cursor()
        cursor.row_factory = None
        found = cursor.execute(
            f"SELECT {_CONTENT_PREFIXED} FROM json_each(?) w"
            " CROSS JOIN contents c ON c.content_id = w.value",
            (json.dumps(list(content_ids)),),
        ).fetchall()
        return {row[0]: row for row in found}

    def content_rows_between(self, first: int, last: int) -> list[Row]:
        """Content rows by arrival number, ``first`` to ``last`` included, in that order."""
        return self.conn.execute(
            "SELECT * FROM contents WHERE n BETWEEN ? AND ? ORDER BY n", (first, last)
        ).fetchall()

    def versions_of(self, content_id: str) -> list[Row]:
        return self.conn.execute(
            "SELECT * FROM versions WHERE content_id = ? ORDER BY number", (content_id,)
        ).fetchall()

    def version_row(self, content_id: str, number: int) -> Row | None:
        row: Row | None = self.conn.execute(
            "SELECT * FROM versions WHERE content_id = ? AND number = ?", (content_id, number)
        ).fetchone()
        return row

    def count_live(self, owner: str) -> int:
        row = self.conn.execute(
            "SELECT contents FROM storage_usage WHERE user = ?", (owner,)
        ).fetchone()
        return int(row[0]) if row else 0

    def list_page(self, owner: str, limit: int, offset: int) -> list[tuple[Any, ...]]:
        """Live contents of ``owner``, newest first, skipping ``offset`` of them: each a
        plain tuple of the ``CONTENT_COLUMNS`` (a page builds its records from these
        without a name lookup per field).

        The group of 32 blocks whose running count passes ``offset`` is found from
        list_supers, then the block within it from list_blocks, so a deep page costs the
        counts of (contents / 32768) groups and of 32 blocks, then at most half a block
        (512 index entries) of stepping: never ``offset`` rows.
        """
        cursor = self.conn.cursor()
        cursor.row_factory = None
        found = _passing(
            cursor.execute(
                "SELECT super, live FROM list_supers WHERE owner = ? AND live > 0"
                " ORDER BY super DESC",
                (owner,),
            ),
            offset,
        )
        if found is None:
            return []
        group, skipped, _ = found
        found = _passing(
            cursor.execute(
                "SELECT block, live FROM list_blocks WHERE owner = ? AND block BETWEEN ? AND ?"
                " AND live > 0 ORDER BY block DESC",
                (owner, group << SUPER_BITS, ((group + 1) << SUPER_BITS) - 1),
            ),
            offset - skipped,
        )
        if found is None:
            return []
        block, skipped_in_group, live = found
        above = offset - skipped - skipped_in_group  # the block's live rows before the page
        # Skipped rows cost an index step each (the table row is only read for a row
        # the page returns): EXPLAIN shows a DeferredSeek before the OFFSET test.
        if above <= live // 2:
            return cursor.execute(
                f"SELECT {_CONTENT_SELECT} FROM contents"
                " WHERE owner = ? AND deleted = 0 AND n <= ? ORDER BY n DESC LIMIT ? OFFSET ?",
                (owner, ((block + 1) << BLOCK_BITS) - 1, limit, above),
            ).fetchall()
        # The page starts in the lower half of its block: find its first row by stepping
        # up from the block's bottom (on the index alone), then read down from there.
        return cursor.execute(
            f"SELECT {_CONTENT_SELECT} FROM contents WHERE owner = ? AND deleted = 0 AND n <= ("
            "SELECT n FROM contents WHERE owner = ? AND deleted = 0 AND n >= ?"
            " ORDER BY n LIMIT 1 OFFSET ?) ORDER BY n DESC LIMIT ?",
            (owner, owner, block << BLOCK_BITS, live - 1 - above, limit),
        ).fetchall()

    def storage_row(self, user: str) -> Row | None:
        row: Row | None = self.conn.execute(
            "SELECT * FROM storage_usage WHERE user = ?", (user,)
        ).fetchone()
        return row

    def recount_storage(self) -> dict[str, tuple[int, int, int, int]]:
        """Storage counters recomputed from scratch, for verify and the tests."""
        rows = self.conn.execute(
            "SELECT c.owner AS user, count(DISTINCT c.content_id) AS contents,"
            " count(v.version_id) AS versions FROM contents c JOIN versions v USING (content_id)"
            " WHERE c.deleted = 0 GROUP BY c.owner"
        ).fetchall()
        current = dict(
            self.conn.execute(
                "SELECT owner, sum(size) FROM contents WHERE deleted = 0 GROUP BY owner"
            ).fetchall()
        )
        history = dict(
            self.conn.execute(
                "SELECT user, sum(size) FROM (SELECT DISTINCT c.owner AS user, v.blob, v.size"
                " FROM contents c JOIN versions v USING (content_id) WHERE c.deleted = 0)"
                " GROUP BY user"
            ).fetchall()
        )
        return {
            row["user"]: (
                row["contents"],
                row["versions"],
                current[row["user"]],
                history[row["user"]],
            )
            for row in rows
        }

    def stored_storage(self) -> dict[str, tuple[int, int, int, int]]:
        rows = self.conn.execute(
            "SELECT user, contents, versions, bytes, history_bytes FROM storage_usage"
            " WHERE contents != 0 OR versions != 0 OR bytes != 0 OR history_bytes != 0"
        ).fetchall()
        return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}

    def search_index_problems(self) -> list[str]:
        """How the search index the fold keeps differs from a recount (empty: it agrees):
        one indexed row per live content, terms of live contents only, facet counts equal
        to a count of the terms."""
        problems: list[str] = []
        (live,) = self.conn.execute("SELECT count(*) FROM contents WHERE deleted = 0").fetchone()
        (indexed,) = self.conn.execute("SELECT count(*) FROM search_words").fetchone()
        if live != indexed:
            problems.append(f"{indexed} contents are in the word index, {live} are live")
        (owned,) = self.conn.execute(
            "SELECT count(*) FROM search_owner o JOIN contents c USING (n)"
            " WHERE c.deleted = 0 AND c.owner = o.owner"
        ).fetchone()
        if owned != live:
            problems.append(f"{owned} of {live} live contents have their owner in the index")
        (again,) = self.conn.execute(
            "SELECT count(*) FROM search_again"
            " WHERE rowid NOT IN (SELECT n FROM contents WHERE deleted = 0)"
        ).fetchone()
        if again:
            problems.append(f"{again} contents with repeated words indexed are not live")
        (stray,) = self.conn.execute(
            "SELECT count(*) FROM content_terms t LEFT JOIN contents c USING (n)"
            " WHERE c.n IS NULL OR c.deleted = 1"
        ).fetchone()
        if stray:
            problems.append(f"{stray} facet terms belong to no live content")
        kept = self.conn.execute(
            "SELECT owner, kind, value, count FROM facet_counts ORDER BY owner, kind, value"
        ).fetchall()
        recount = self.conn.execute(
            "SELECT c.owner, t.kind, t.value, count(*) FROM content_terms t JOIN contents c"
            " USING (n) WHERE t.kind != 'seed' GROUP BY c.owner, t.kind, t.value"
            " ORDER BY c.owner, t.kind, t.value"
        ).fetchall()
        # Values match in any case (the columns compare NOCASE): compare them folded.
        if [_folded(row) for row in kept] != [_folded(row) for row in recount]:
            problems.append("facet counts differ from a recount of the facet terms")
        return problems

    def live_blobs(self) -> dict[str, int]:
        """Every blob a version of a live content references, with its size."""
        rows = self.conn.execute(
            "SELECT DISTINCT v.blob, v.size FROM versions v"
            " JOIN contents c USING (content_id) WHERE c.deleted = 0"
        )
        return {str(row[0]): int(row[1]) for row in rows}

    def live_blob_types(self) -> list[tuple[str, str]]:
        """Every blob a version of a live content references, with its MIME type (the
        thumbnails to warm), in hash order."""
        rows = self.conn.execute(
            "SELECT v.blob, min(v.mime) FROM versions v JOIN contents c USING (content_id)"
            " WHERE c.deleted = 0 AND v.blob IS NOT NULL GROUP BY v.blob ORDER BY v.blob"
        )
        return [(str(row[0]), str(row[1] or "application/octet-stream")) for row in rows]

    def size_referenced(self, size: int) -> bool:
        """Whether some version references bytes of exactly ``size`` bytes (if none does,
        bytes of that size are new here, but for unreferenced blobs gc has not taken)."""
        row = self.conn.execute("SELECT 1 FROM versions WHERE size = ? LIMIT 1", (size,))
        return row.fetchone() is not None

    def user_history_bytes(self, user: str) -> int:
        row = self.storage_row(user)
        return int(row["history_bytes"]) if row else 0

    def user_has_blob(self, user: str, blob: str) -> bool:
        return (
            self.conn.execute(
                "SELECT 1 FROM user_blobs WHERE user = ? AND blob = ?", (user, blob)
            ).fetchone()
            is not None
        )

    def row_counts(self) -> tuple[int, int, int]:
        """How many content rows (tombstones included), versions and ops there are."""
        row = self.conn.execute(
            "SELECT (SELECT count(*) FROM contents), (SELECT count(*) FROM versions),"
            " (SELECT count(*) FROM ops)"
        ).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def version_numbers_ok(self) -> list[str]:
        """Contents whose version numbers are not exactly 1..version."""
        rows = self.conn.execute(
            "SELECT c.content_id FROM contents c LEFT JOIN versions v USING (content_id)"
            " WHERE c.deleted = 0 GROUP BY c.content_id"
            " HAVING count(v.number) != c.version OR min(v.number) != 1"
            " OR max(v.number) != c.version"
        )
        return [str(row[0]) for row in rows]

    def permission_of(self, content_id: str, user: str) -> str | None:
        """The strongest live permission ``user`` holds on ``content_id``, if any."""
        row = self.conn.execute(
            "SELECT max(permissions) FROM collaborations"
            " WHERE content_id = ? AND collaborator = ? AND deleted = 0",
            (content_id, user),
        ).fetchone()  # 'write' > 'read' as text, so max() is the strongest
        return None if row is None or row[0] is None else str(row[0])

    def strips_for(self, content_id: str, user: str) -> bool:
        """Whether every live collaboration giving ``user`` the content withholds its
        metadata (False when one of them does not, or there is none)."""
        row = self.conn.execute(
            "SELECT min(strip_metadata) FROM collaborations"
            " WHERE content_id = ? AND collaborator = ? AND deleted = 0",
            (content_id, user),
        ).fetchone()
        return bool(row is not None and row[0])

    def shared_with(self, user: str) -> list[tuple[str, bool]]:
        """The live contents shared with ``user``: each id, and whether every collaboration
        giving it withholds its metadata."""
        rows = self.conn.execute(
            "SELECT k.content_id, min(k.strip_metadata) FROM collaborations k"
            " JOIN contents c USING (content_id)"
            " WHERE k.collaborator = ? AND k.deleted = 0 AND c.deleted = 0"
            " GROUP BY k.content_id ORDER BY k.content_id",
            (user,),
        )
        return [(str(row[0]), bool(row[1])) for row in rows]

    def versions_missing_generation(self, after: tuple[str, str], limit: int) -> list[Row]:
        """Up to ``limit`` (content, blob) pairs of live contents, after the pair
        ``after``, with a version that has no generation record."""
        return self.conn.execute(
            "SELECT DISTINCT v.content_id, v.blob FROM versions v"
            " JOIN contents c USING (content_id)"
            " WHERE c.deleted = 0 AND v.generation IS NULL AND (v.content_id, v.blob) > (?, ?)"
            " ORDER BY v.content_id, v.blob LIMIT ?",
            (*after, limit),
        ).fetchall()

    def collaboration_row(self, collaboration_id: str) -> Row | None:
        row: Row | None = self.conn.execute(
            "SELECT * FROM collaborations WHERE collaboration_id = ?", (collaboration_id,)
        ).fetchone()
        return row

    def collaborations_of(self, user: str) -> list[Row]:
        """Live collaborations on live contents that ``user`` owns or is given."""
        return self.conn.execute(
            "SELECT k.* FROM collaborations k JOIN contents c USING (content_id)"
            " WHERE k.deleted = 0 AND c.deleted = 0 AND (k.owner = ? OR k.collaborator = ?)"
            " ORDER BY k.created_hlc, k.collaboration_id",
            (user, user),
        ).fetchall()

    def key_row(self, key_id: str) -> Row | None:
        row: Row | None = self.conn.execute(
            "SELECT * FROM api_keys WHERE key_id = ?", (key_id,)
        ).fetchone()
        return row

    def keys_of(self, user: str) -> list[Row]:
        return self.conn.execute(
            "SELECT k.*, u.last_used_ms FROM api_keys k"
            " LEFT JOIN key_last_used u USING (key_id) WHERE k.user = ?"
            " ORDER BY k.created_hlc, k.key_id",
            (user,),
        ).fetchall()

    def key_by_hash(self, secret_hash: str) -> Row | None:
        row: Row | None = self.conn.execute(
            "SELECT * FROM api_keys WHERE secret_hash = ?", (secret_hash,)
        ).fetchone()
        return row

    def digest_rows(self) -> Iterator[tuple[Any, ...]]:
        with self.db.snapshot() as conn:
            for number, query in enumerate(DIGEST_QUERIES):
                for row in conn.execute(query):
                    yield (number, *tuple(row))


def _folded(row: Any) -> tuple[Any, ...]:
    owner, kind, value, count = row
    return (owner, kind, str(value).lower(), count)


def _passing(rows: Iterable[tuple[int, int]], offset: int) -> tuple[int, int, int] | None:
    """The first ``(key, live)`` row, in the order given, where the running count of live
    rows passes ``offset``: its key, the count before it and its own (None if none does)."""
    total = 0
    for key, live in rows:
        if total + live > offset:
            return int(key), total, live
        total += live
    return None
