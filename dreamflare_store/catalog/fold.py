"""The one fold of ops into the materialised tables.

The tables are a cache of the fold of the op log in HLC order. Every op, local or pulled,
goes through ``apply``: if the op is the newest of its entity it is folded in directly (the
common case: local ops are always newest); otherwise the entity's rows are rebuilt by
folding all of its ops again in order. Both paths run the same steps, so the tables depend
only on the *set* of ops (invariant 1). A batch of brand-new contents (``apply_new``) goes
through the same row builders, a statement per table instead of a dozen per content.

Storage counters are adjusted by the same steps, in the same transaction, so they equal a
full recount at every commit (invariant 5).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from .. import oplog
from ..errors import IntegrityError
from ..oplog import Op
from . import reads as list_index  # its block sizes, read at call time
from .db import Database, Part, Row, tags_from_sql, tags_to_sql
from .reads import Reads
from .search_index import SearchIndex, generation_of, generation_to_sql

SNAPSHOT_COLUMNS = (
    "filename", "mime", "size", "blob", "description", "tags", "width", "height", "path",
    "generation",
)  # fmt: skip

# The statements that add rows, shared by the fold of one op and of a batch, so the two
# paths cannot write a row two ways.
_INSERT_OP = (
    "INSERT INTO ops (op_id, hlc, replica, rseq, entity, kind, body) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_CONTENT = (
    "INSERT INTO contents (n, content_id, owner, filename, mime, size, blob, description,"
    " tags, width, height, version, created_hlc, updated_hlc, path, generation)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)"
)
_INSERT_VERSION = (
    "INSERT INTO versions (version_id, content_id, number, hlc, author, filename, mime,"
    " size, blob, description, tags, width, height, changes, path, generation)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _op_values(op: Op) -> tuple[Any, ...]:
    return (op.op_id, op.hlc, op.replica, op.rseq, op.entity, op.kind, op.encode())


def _content_values(n: int | None, op: Op) -> tuple[Any, ...]:
    """The first row of a content that ``op`` (a content.create) makes, arrival ``n``
    (None: the next one)."""
    fields = op.data["fields"]
    return (
        n, op.entity, op.data["owner"], fields["filename"], fields["mime"], fields["size"],
        fields["blob"], fields.get("description"), tags_to_sql(fields.get("tags") or ()),
        fields.get("width"), fields.get("height"), op.hlc, op.hlc, fields.get("path"),
        generation_to_sql(fields.get("generation")),
    )  # fmt: skip


def _version_values(
    op: Op, number: int, snapshot: dict[str, Any], generation: bool = True
) -> tuple[Any, ...]:
    """The row of version ``number`` that ``op`` makes, with the snapshot after it (without
    its last value, the generation record, unless ``generation``)."""
    values = (
        op.data["version_id"], op.entity, number, op.hlc, op.data["author"],
        snapshot["filename"], snapshot["mime"], snapshot["size"], snapshot["blob"],
        snapshot.get("description"), tags_to_sql(snapshot.get("tags") or ()),
        snapshot.get("width"), snapshot.get("height"), ",".join(op.data["changes"]),
        snapshot.get("path"),
    )  # fmt: skip
    if not generation:
        return values
    return (*values, generation_to_sql(snapshot.get("generation")))


class Fold(Part):
    """Folds ops into the tables, inside the caller's transaction."""

    def __init__(self, db: Database, reads: Reads) -> None:
        super().__init__(db)
        self.reads = reads
        self.index = SearchIndex(db)

    def apply(self, op: Op) -> bool:
        """Fold one op into the tables (inside the caller's transaction). Idempotent."""
        conn = self.conn
        if conn.execute("SELECT 1 FROM ops WHERE op_id = ?", (op.op_id,)).fetchone():
            return False
        newest = conn.execute(
            "SELECT hlc, op_id FROM ops WHERE entity = ? ORDER BY hlc DESC, op_id DESC LIMIT 1",
            (op.entity,),
        ).fetchone()
        try:
            conn.execute(_INSERT_OP, _op_values(op))
            if newest is None or op.sort_key > (newest[0], newest[1]):
                self._step(op)
            else:
                self._rebuild(op.entity, op.kind)
        except sqlite3.IntegrityError as exc:
            # Only a malformed op pulled from elsewhere gets here (another op already holds
            # its replica and rseq, or a field is missing); the caller's transaction rolls back.
            raise IntegrityError(
                f"op {op.op_id} contradicts the log: {exc}", op_id=op.op_id
            ) from exc
        return True

    def apply_new_contents(self, ops: Sequence[Op]) -> int:
        """Fold in the content.create ops of a batch of brand-new contents, in one go.

        The tables end exactly as ``apply`` of each op in turn leaves them, given what the
        caller (``Store.upload_many``, inside this transaction) guarantees: every op and
        every content is new, so ``apply`` would take ``_step_content_create`` for each,
        in this order (the order of arrival numbers). Here each table gets one
        ``executemany`` and the counters one update per row they touch, instead of a dozen
        statements per content. Returns the arrival number of the first (the others follow).
        """
        first = self._next_content_n()
        if not ops:
            return first
        conn = self.conn
        conn.executemany(_INSERT_OP, [_op_values(op) for op in ops])
        contents = [_content_values(n, op) for n, op in enumerate(ops, start=first)]
        conn.executemany(_INSERT_CONTENT, contents)
        # The first version holds the content's record as is: its JSON is made once.
        conn.executemany(
            _INSERT_VERSION,
            [
                (*_version_values(op, 1, op.data["fields"], False), row[-1])
                for op, row in zip(ops, contents, strict=True)
            ],
        )
        blocks: dict[tuple[str, int], int] = {}
        usage: dict[str, list[int]] = {}
        blob_refs: dict[tuple[str, str], list[int]] = {}  # (owner, blob) -> [size, refs]
        for n, op in enumerate(ops, start=first):
            owner, fields = op.data["owner"], op.data["fields"]
            blocks[owner, n >> list_index.BLOCK_BITS] = (
                blocks.get((owner, n >> list_index.BLOCK_BITS), 0) + 1
            )
            totals = usage.setdefault(owner, [0, 0])
            totals[0] += 1
            totals[1] += fields["size"]
            blob_refs.setdefault((owner, fields["blob"]), [fields["size"], 0])[1] += 1
        for (owner, block), live in blocks.items():
            self._adjust_list_block(owner, block << list_index.BLOCK_BITS, live)
        self.index.add(
            (
                n,
                op.data["owner"],
                op.data["fields"]["filename"],
                op.data["fields"].get("description"),
                op.data["fields"].get("tags") or (),
                op.data["fields"].get("generation"),
            )  # fmt: skip
            for n, op in enumerate(ops, start=first)
        )
        # As _ref_blob: a blob adds to its owner's history bytes when its row is new.
        held = {
            (owner, blob)
            for owner in usage
            for (blob,) in conn.execute(
                "SELECT blob FROM user_blobs WHERE user = ?"
                " AND blob IN (SELECT value FROM json_each(?))",
                (owner, json.dumps([blob for who, blob in blob_refs if who == owner])),
            )
        }
        conn.executemany(
            "INSERT INTO user_blobs (user, blob, size, refs) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (user, blob) DO UPDATE SET refs = refs + excluded.refs",
            [(owner, blob, size, refs) for (owner, blob), (size, refs) in blob_refs.items()],
        )
        history = dict.fromkeys(usage, 0)
        for (owner, blob), (size, _) in blob_refs.items():
            if (owner, blob) not in held:
                history[owner] += size
        for owner, (count, size) in usage.items():
            self._add_usage(owner, count, count, size, history[owner])
        return first

    def _next_content_n(self) -> int:
        """The arrival number AUTOINCREMENT would give the next content row."""
        row = self.conn.execute(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'contents'), 0),"
            " coalesce((SELECT max(n) FROM contents), 0))"
        ).fetchone()
        return int(row[0]) + 1

    def _rebuild(self, entity: str, kind: str) -> None:
        """Drop an entity's materialised rows and fold all of its ops again, in order."""
        conn = self.conn
        keep_n = None
        if kind.startswith("content."):
            row = self.reads.content_row(entity)
            if row is not None:
                keep_n = row["n"]
                if not row["deleted"]:
                    self._drop_content_versions(row)
                    self._adjust_list_block(row["owner"], row["n"], -1)
                    self.index.remove(row["n"], row["owner"])
                conn.execute("DELETE FROM contents WHERE content_id = ?", (entity,))
            conn.execute("DELETE FROM favorites WHERE content_id = ?", (entity,))
        elif kind.startswith("collab."):
            conn.execute("DELETE FROM collaborations WHERE collaboration_id = ?", (entity,))
        else:
            conn.execute("DELETE FROM api_keys WHERE key_id = ?", (entity,))
        bodies = conn.execute(
            "SELECT body FROM ops WHERE entity = ? ORDER BY hlc, op_id", (entity,)
        ).fetchall()
        for (body,) in bodies:
            op = oplog.decode_op(body)
            if op.kind == oplog.CONTENT_CREATE:
                self._step_content_create(op, keep_n)  # the content keeps its place in lists
            else:
                self._step(op)

    def _step(self, op: Op) -> None:
        handler = _STEPS[op.kind]
        handler(self, op)

    def _step_content_create(self, op: Op, keep_n: int | None = None) -> None:
        """Make a content's row and first version; ``keep_n`` is its arrival number when
        a rebuild remakes it (None: the next one)."""
        if self.reads.content_row(op.entity) is not None:
            return
        owner, fields = op.data["owner"], op.data["fields"]
        cursor = self.conn.execute(_INSERT_CONTENT, _content_values(keep_n, op))
        n = keep_n if keep_n is not None else cursor.lastrowid
        self._adjust_list_block(owner, int(n or 0), +1)
        self.index.add(
            [
                (
                    int(n or 0),
                    owner,
                    fields["filename"],
                    fields.get("description"),
                    fields.get("tags") or (),
                    fields.get("generation"),
                )  # fmt: skip
            ]
        )
        history = self._insert_version(op, 1, owner, fields)
        self._add_usage(owner, 1, 1, fields["size"], history)

    def _step_content_change(self, op: Op) -> None:
        row = self.reads.content_row(op.entity)
        if row is None or row["deleted"]:
            return  # not created yet (a later rebuild folds this in) or deleted for good
        changes = op.data["fields"]
        snapshot = {column: row[column] for column in SNAPSHOT_COLUMNS}
        snapshot["tags"] = tags_from_sql(row["tags"])
        snapshot["generation"] = generation_of(row["generation"])
        if "blob" in changes:
            snapshot["generation"] = None  # new bytes: their record comes with them, or none
        snapshot.update(changes)
        number = row["version"] + 1
        self.conn.execute(
            "UPDATE contents SET filename = ?, mime = ?, size = ?, blob = ?, description = ?,"
            " tags = ?, width = ?, height = ?, path = ?, version = ?, updated_hlc = ?,"
            " generation = ?"
            " WHERE content_id = ?",
            (
                snapshot["filename"],
                snapshot["mime"],
                snapshot["size"],
                snapshot["blob"],
                snapshot["description"],
                tags_to_sql(snapshot["tags"]),
                snapshot["width"],
                snapshot["height"],
                snapshot["path"],
                number,
                op.hlc,
                generation_to_sql(snapshot["generation"]),
                op.entity,
            ),
        )
        self._reindex(row["n"], row["owner"], snapshot)
        history = self._insert_version(op, number, row["owner"], snapshot)
        self._add_usage(row["owner"], 0, 1, snapshot["size"] - row["size"], history)

    def _step_content_delete(self, op: Op) -> None:
        row = self.reads.content_row(op.entity)
        if row is None or row["deleted"]:
            return
        self._drop_content_versions(row)
        self._adjust_list_block(row["owner"], row["n"], -1)
        self.index.remove(row["n"], row["owner"])
        self.conn.execute(
            "UPDATE contents SET deleted = 1, filename = NULL, mime = NULL, size = NULL,"
            " blob = NULL, description = NULL, tags = NULL, width = NULL, height = NULL,"
            " path = NULL, generation = NULL,"
            " updated_hlc = ? WHERE content_id = ?",
            (op.hlc, op.entity),
        )

    def _reindex(self, n: int, owner: str, snapshot: dict[str, Any]) -> None:
        """Index a live content again from its new snapshot."""
        self.index.remove(n, owner)
        self.index.add(
            [
                (
                    n,
                    owner,
                    snapshot["filename"],
                    snapshot.get("description"),
                    snapshot.get("tags") or (),
                    snapshot.get("generation"),
                )  # fmt: skip
            ]
        )

    def _step_content_generation(self, op: Op) -> None:
        """Set the generation record read from a blob's bytes on the versions of the
        content holding that blob (no new version): the same bytes give every replica the
        same record, so replicas that read them both still agree."""
        row = self.reads.content_row(op.entity)
        if row is None or row["deleted"]:
            return
        blob, record = op.data["blob"], op.data.get("generation")
        text = generation_to_sql(record)
        self.conn.execute(
            "UPDATE versions SET generation = ? WHERE content_id = ? AND blob = ?",
            (text, op.entity, blob),
        )
        if row["blob"] != blob:
            return
        self.conn.execute(
            "UPDATE contents SET generation = ? WHERE content_id = ?", (text, op.entity)
        )
        snapshot = {column: row[column] for column in SNAPSHOT_COLUMNS}
        snapshot["tags"] = tags_from_sql(row["tags"])
        snapshot["generation"] = generation_of(text)
        self._reindex(row["n"], row["owner"], snapshot)

    def _step_content_favorite(self, op: Op) -> None:
        """A user's favorite mark on a content: the newest op wins."""
        self.conn.execute(
            "INSERT INTO favorites (content_id, user, favorite, hlc) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (content_id, user) DO UPDATE SET favorite = excluded.favorite,"
            " hlc = excluded.hlc WHERE excluded.hlc > favorites.hlc",
            (op.entity, op.data["user"], 1 if op.data["favorite"] else 0, op.hlc),
        )

    def _insert_version(self, op: Op, number: int, owner: str, snapshot: dict[str, Any]) -> int:
        """Add a version row; the change it makes to the owner's history bytes."""
        self.conn.execute(_INSERT_VERSION, _version_values(op, number, snapshot))
        return self._ref_blob(owner, snapshot["blob"], snapshot["size"], +1)

    def _drop_content_versions(self, row: Row) -> None:
        """Take a live content's versions, and their counters, out of the tables."""
        owner = row["owner"]
        versions = self.conn.execute(
            "SELECT blob, size FROM versions WHERE content_id = ?", (row["content_id"],)
        ).fetchall()
        history = 0
        for version in versions:
            history += self._ref_blob(owner, version["blob"], version["size"], -1)
        self.conn.execute("DELETE FROM versions WHERE content_id = ?", (row["content_id"],))
        self._add_usage(owner, -1, -len(versions), -row["size"], history)

    def _add_usage(self, user: str, contents: int, versions: int, size: int, history: int) -> None:
        """Adjust a user's storage counters (one statement: this runs on every write)."""
        self.conn.execute(
            "INSERT INTO storage_usage (user, contents, versions, bytes, history_bytes)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user) DO UPDATE SET"
            " contents = contents + excluded.contents, versions = versions + excluded.versions,"
            " bytes = bytes + excluded.bytes,"
            " history_bytes = history_bytes + excluded.history_bytes",
            (user, contents, versions, size, history),
        )

    def _ref_blob(self, user: str, blob: str, size: int, delta: int) -> int:
        """Count one more (or one fewer) version of ``user`` referencing ``blob``; the
        change to the user's history bytes (each distinct blob counts once per user)."""
        conn = self.conn
        (refs,) = conn.execute(
            "INSERT INTO user_blobs (user, blob, size, refs) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (user, blob) DO UPDATE SET refs = refs + excluded.refs RETURNING refs",
            (user, blob, size, delta),
        ).fetchall()[0]
        if refs <= 0:
            conn.execute("DELETE FROM user_blobs WHERE user = ? AND blob = ?", (user, blob))
            return -size
        return size if refs == delta else 0  # refs == delta: the row was just made

    def _adjust_list_block(self, owner: str, n: int, delta: int) -> None:
        block = n >> list_index.BLOCK_BITS
        self.conn.execute(
            "INSERT INTO list_blocks (owner, block, live) VALUES (?, ?, ?)"
            " ON CONFLICT (owner, block) DO UPDATE SET live = live + excluded.live",
            (owner, block, delta),
        )
        self.conn.execute(
            "INSERT INTO list_supers (owner, super, live) VALUES (?, ?, ?)"
            " ON CONFLICT (owner, super) DO UPDATE SET live = live + excluded.live",
            (owner, block >> list_index.SUPER_BITS, delta),
        )

    def _step_collab_create(self, op: Op) -> None:
        data = op.data
        self.conn.execute(
            "INSERT OR IGNORE INTO collaborations (collaboration_id, content_id, owner,"
            " collaborator, permissions, created_hlc, updated_hlc, strip_metadata)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                op.entity,
                data["content_id"],
                data["owner"],
                data["collaborator"],
                data["permissions"],
                op.hlc,
                op.hlc,
                1 if data.get("strip_metadata") else 0,
            ),
        )

    def _step_collab_update(self, op: Op) -> None:
        # Format 1 ops always carry permissions; later ones carry what they change.
        strip = op.data.get("strip_metadata")
        self.conn.execute(
            "UPDATE collaborations SET permissions = coalesce(?, permissions),"
            " strip_metadata = coalesce(?, strip_metadata), updated_hlc = ?"
            " WHERE collaboration_id = ? AND deleted = 0",
            (
                op.data.get("permissions"),
                None if strip is None else int(bool(strip)),
                op.hlc,
                op.entity,
            ),
        )

    def _step_collab_delete(self, op: Op) -> None:
        self.conn.execute(
            "UPDATE collaborations SET deleted = 1, updated_hlc = ? WHERE collaboration_id = ?",
            (op.hlc, op.entity),
        )

    def _step_key_create(self, op: Op) -> None:
        data = op.data
        self.conn.execute(
            "INSERT OR IGNORE INTO api_keys (key_id, user, description, secret_hash, created_hlc)"
            " VALUES (?, ?, ?, ?, ?)",
            (op.entity, data["user"], data.get("description"), data["secret_hash"], op.hlc),
        )

    def _step_key_revoke(self, op: Op) -> None:
        self.conn.execute(
            "UPDATE api_keys SET revoked_hlc = ? WHERE key_id = ? AND revoked_hlc IS NULL",
            (op.hlc, op.entity),
        )


_STEPS: dict[str, Callable[[Fold, Op], None]] = {
    oplog.CONTENT_CREATE: Fold._step_content_create,
    oplog.CONTENT_CHANGE: Fold._step_content_change,
    oplog.CONTENT_DELETE: Fold._step_content_delete,
    oplog.CONTENT_GENERATION: Fold._step_content_generation,
    oplog.CONTENT_FAVORITE: Fold._step_content_favorite,
    oplog.COLLAB_CREATE: Fold._step_collab_create,
    oplog.COLLAB_UPDATE: Fold._step_collab_update,
    oplog.COLLAB_DELETE: Fold._step_collab_delete,
    oplog.KEY_CREATE: Fold._step_key_create,
    oplog.KEY_REVOKE: Fold._step_key_revoke,
}
