"""The SQLite catalog: schema, migrations, transactions, and every SQL statement.

The materialised tables are a cache of the fold of the op log in HLC order. Every op,
local or pulled, goes through one ``apply``: if the op is the newest of its entity it is
folded in directly (the common case: local ops are always newest); otherwise the entity's
rows are rebuilt by folding all of its ops again in order. Both paths run the same
``_step`` code, so the tables depend only on the *set* of ops (invariant 1).

Storage counters are adjusted by the same steps, in the same transaction, so they equal a
full recount at every commit (invariant 5).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from . import oplog
from .errors import IntegrityError
from .oplog import Op

Row = sqlite3.Row
BUSY_TIMEOUT_MS = 60_000
BLOCK_BITS = 10  # list_blocks group 1024 arrival numbers
SUPER_BITS = 5  # list_supers group 32 blocks (schema.sql's migration 4 fills them so)
SNAPSHOT_COLUMNS = ("filename", "mime", "size", "blob", "description", "tags", "width", "height")
# A content row as ``list_page`` gives it: the fields of a Content record, in their order
# (tags as stored, times as HLCs).
CONTENT_COLUMNS = (
    "content_id", "owner", "filename", "mime", "size", "blob", "description", "tags",
    "version", "created_hlc", "updated_hlc", "width", "height",
)  # fmt: skip
_CONTENT_SELECT = ", ".join(CONTENT_COLUMNS)


def _migrations() -> list[str]:
    text = resources.files(__package__).joinpath("schema.sql").read_text(encoding="utf-8")
    parts = text.split("-- migration ")
    return [part.split("\n", 1)[1] for part in parts[1:]]


def tags_to_sql(tags: Iterable[str]) -> str:
    return json.dumps(list(tags), ensure_ascii=False)


def tags_from_sql(text: str | None) -> tuple[str, ...]:
    return tuple(json.loads(text)) if text else ()


class Catalog:
    """One SQLite database in WAL mode, one connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._migrate()

    # -- connections and transactions ----------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # WAL lets readers run beside one writer; FULL makes every commit durable before
        # the call that made it returns (NORMAL could lose the last commits on power loss).
        self._retry(lambda: conn.execute("PRAGMA journal_mode = WAL"))
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA cache_size = -65536")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise RuntimeError("the store is closed")
            conn = self._connect()
            self._local.conn = conn
            self._local.depth = 0
            self._local.on_commit = []
            with self._lock:
                self._connections.append(conn)
        return conn

    @staticmethod
    def _retry(action: Callable[[], Any]) -> Any:
        """Run ``action``, waiting out "database is locked" beyond SQLite's busy handler.

        The busy handler covers most waits; a few paths (WAL recovery, journal-mode
        changes) report SQLITE_BUSY at once, so contention never reaches a caller.
        """
        delay = 0.001
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                message = str(exc)
                if "locked" not in message and "busy" not in message:
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    @contextmanager
    def atomic(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), or a savepoint when nested.

        Callbacks registered with ``on_commit`` run after the outermost COMMIT, so files
        are only ever deleted once the rows that pointed at them are gone for good.
        """
        conn = self.conn
        depth = self._local.depth
        if depth == 0:
            self._retry(lambda: conn.execute("BEGIN IMMEDIATE"))
        else:
            conn.execute(f"SAVEPOINT sp{depth}")
        self._local.depth = depth + 1
        try:
            yield conn
        except BaseException:
            self._local.depth = depth
            if depth == 0:
                conn.execute("ROLLBACK")
                self._local.on_commit = []
            else:
                conn.execute(f"ROLLBACK TO sp{depth}")
                conn.execute(f"RELEASE sp{depth}")
            raise
        self._local.depth = depth
        if depth == 0:
            self._retry(lambda: conn.execute("COMMIT"))
            callbacks, self._local.on_commit = self._local.on_commit, []
            for callback in callbacks:
                callback()
        else:
            conn.execute(f"RELEASE sp{depth}")

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: several SELECTs that see one consistent state."""
        conn = self.conn
        if self._local.depth:
            yield conn
            return
        conn.execute("BEGIN")
        self._local.depth = 1
        try:
            yield conn
        finally:
            self._local.depth = 0
            conn.execute("COMMIT")

    def on_commit(self, callback: Callable[[], None]) -> None:
        self._local.on_commit.append(callback)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):  # closing is best effort
                conn.close()
        self._local = threading.local()

    def _migrate(self) -> None:
        conn = self.conn
        migrations = _migrations()
        with self.atomic():
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            if current > len(migrations):
                raise IntegrityError(
                    f"this store was written by a newer dreamflare-store (schema {current})"
                )
            for number, script in enumerate(migrations[current:], start=current + 1):
                # Not executescript(): it would COMMIT first and break the transaction.
                for statement in script.split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    # -- meta ---------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- the op log ---------------------------------------------------------------------

    def last_hlc(self) -> str | None:
        row = self.conn.execute("SELECT hlc FROM ops ORDER BY hlc DESC LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    def next_rseq(self, replica: str) -> int:
        row = self.conn.execute(
            "SELECT max(rseq) FROM ops WHERE replica = ?", (replica,)
        ).fetchone()
        return int(row[0] or 0) + 1

    def has_op(self, op_id: str) -> bool:
        return (
            self.conn.execute("SELECT 1 FROM ops WHERE op_id = ?", (op_id,)).fetchone() is not None
        )

    def ops_of(self, replica: str, after_rseq: int, limit: int = 10_000) -> list[Op]:
        rows = self.conn.execute(
            "SELECT body FROM ops WHERE replica = ? AND rseq > ? ORDER BY rseq LIMIT ?",
            (replica, after_rseq, limit),
        ).fetchall()
        return [oplog.decode_op(row[0]) for row in rows]

    def max_rseq(self, replica: str) -> int:
        row = self.conn.execute(
            "SELECT max(rseq) FROM ops WHERE replica = ?", (replica,)
        ).fetchone()
        return int(row[0] or 0)

    def replicas(self) -> dict[str, int]:
        """Every replica whose ops are here, with the highest rseq of each."""
        rows = self.conn.execute("SELECT replica, max(rseq) FROM ops GROUP BY replica")
        return {str(row[0]): int(row[1]) for row in rows}

    def all_ops(self) -> list[Op]:
        return [oplog.decode_op(row[0]) for row in self.conn.execute("SELECT body FROM ops")]

    def apply(self, op: Op) -> bool:
        """Fold one op into the tables (inside the caller's transaction). Idempotent."""
        conn = self.conn
        if self.has_op(op.op_id):
            return False
        newest = conn.execute(
            "SELECT hlc, op_id FROM ops WHERE entity = ? ORDER BY hlc DESC, op_id DESC LIMIT 1",
            (op.entity,),
        ).fetchone()
        try:
            conn.execute(
                "INSERT INTO ops (op_id, hlc, replica, rseq, entity, kind, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (op.op_id, op.hlc, op.replica, op.rseq, op.entity, op.kind, op.encode()),
            )
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
        conn.executemany(
            "INSERT INTO ops (op_id, hlc, replica, rseq, entity, kind, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(o.op_id, o.hlc, o.replica, o.rseq, o.entity, o.kind, o.encode()) for o in ops],
        )
        contents, versions = [], []
        blocks: dict[tuple[str, int], int] = {}
        usage: dict[str, list[int]] = {}
        blob_refs: dict[tuple[str, str], list[int]] = {}  # (owner, blob) -> [size, refs]
        for n, op in enumerate(ops, start=first):
            data, fields = op.data, op.data["fields"]
            owner, tags = data["owner"], tags_to_sql(fields.get("tags") or ())
            contents.append(
                (n, op.entity, owner, fields["filename"], fields["mime"], fields["size"],
                 fields["blob"], fields.get("description"), tags, fields.get("width"),
                 fields.get("height"), op.hlc, op.hlc)
            )  # fmt: skip
            versions.append(
                (data["version_id"], op.entity, op.hlc, data["author"], fields["filename"],
                 fields["mime"], fields["size"], fields["blob"], fields.get("description"),
                 tags, fields.get("width"), fields.get("height"), ",".join(data["changes"]))
            )  # fmt: skip
            blocks[owner, n >> BLOCK_BITS] = blocks.get((owner, n >> BLOCK_BITS), 0) + 1
            totals = usage.setdefault(owner, [0, 0])
            totals[0] += 1
            totals[1] += fields["size"]
            blob_refs.setdefault((owner, fields["blob"]), [fields["size"], 0])[1] += 1
        conn.executemany(
            "INSERT INTO contents (n, content_id, owner, filename, mime, size, blob, description,"
            " tags, width, height, version, created_hlc, updated_hlc)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
            contents,
        )
        conn.executemany(
            "INSERT INTO versions (version_id, content_id, number, hlc, author, filename, mime,"
            " size, blob, description, tags, width, height, changes)"
            " VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            versions,
        )
        for (owner, block), live in blocks.items():
            self._adjust_list_block(owner, block << BLOCK_BITS, live)
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

    def content_rows_between(self, first: int, last: int) -> list[Row]:
        """Content rows by arrival number, ``first`` to ``last`` included, in that order."""
        return self.conn.execute(
            "SELECT * FROM contents WHERE n BETWEEN ? AND ? ORDER BY n", (first, last)
        ).fetchall()

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
            row = self.content_row(entity)
            if row is not None:
                keep_n = row["n"]
                if not row["deleted"]:
                    self._drop_content_versions(row)
                    self._adjust_list_block(row["owner"], row["n"], -1)
                conn.execute("DELETE FROM contents WHERE content_id = ?", (entity,))
        elif kind.startswith("collab."):
            conn.execute("DELETE FROM collaborations WHERE collaboration_id = ?", (entity,))
        else:
            conn.execute("DELETE FROM api_keys WHERE key_id = ?", (entity,))
        bodies = conn.execute(
            "SELECT body FROM ops WHERE entity = ? ORDER BY hlc, op_id", (entity,)
        ).fetchall()
        self._local.keep_n = keep_n
        try:
            for (body,) in bodies:
                self._step(oplog.decode_op(body))
        finally:
            self._local.keep_n = None

    def _step(self, op: Op) -> None:
        handler = _STEPS[op.kind]
        handler(self, op)

    # -- content steps ------------------------------------------------------------------

    def content_row(self, content_id: str) -> Row | None:
        row: Row | None = self.conn.execute(
            "SELECT * FROM contents WHERE content_id = ?", (content_id,)
        ).fetchone()
        return row

    def _step_content_create(self, op: Op) -> None:
        if self.content_row(op.entity) is not None:
            return
        data = op.data
        fields = data["fields"]
        conn = self.conn
        keep_n = getattr(self._local, "keep_n", None)
        cursor = conn.execute(
            "INSERT INTO contents (n, content_id, owner, filename, mime, size, blob, description,"
            " tags, width, height, version, created_hlc, updated_hlc)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
            (
                keep_n,
                op.entity,
                data["owner"],
                fields["filename"],
                fields["mime"],
                fields["size"],
                fields["blob"],
                fields.get("description"),
                tags_to_sql(fields.get("tags") or ()),
                fields.get("width"),
                fields.get("height"),
                op.hlc,
                op.hlc,
            ),
        )
        n = keep_n if keep_n is not None else cursor.lastrowid
        self._adjust_list_block(data["owner"], int(n or 0), +1)
        history = self._insert_version(op, 1, data["owner"], fields, data["changes"])
        self._add_usage(data["owner"], 1, 1, fields["size"], history)

    def _step_content_change(self, op: Op) -> None:
        row = self.content_row(op.entity)
        if row is None or row["deleted"]:
            return  # not created yet (a later rebuild folds this in) or deleted for good
        changes = op.data["fields"]
        snapshot = {column: row[column] for column in SNAPSHOT_COLUMNS}
        snapshot["tags"] = tags_from_sql(row["tags"])
        snapshot.update(changes)
        number = row["version"] + 1
        self.conn.execute(
            "UPDATE contents SET filename = ?, mime = ?, size = ?, blob = ?, description = ?,"
            " tags = ?, width = ?, height = ?, version = ?, updated_hlc = ? WHERE content_id = ?",
            (
                snapshot["filename"],
                snapshot["mime"],
                snapshot["size"],
                snapshot["blob"],
                snapshot["description"],
                tags_to_sql(snapshot["tags"]),
                snapshot["width"],
                snapshot["height"],
                number,
                op.hlc,
                op.entity,
            ),
        )
        history = self._insert_version(op, number, row["owner"], snapshot, op.data["changes"])
        self._add_usage(row["owner"], 0, 1, snapshot["size"] - row["size"], history)

    def _step_content_delete(self, op: Op) -> None:
        row = self.content_row(op.entity)
        if row is None or row["deleted"]:
            return
        self._drop_content_versions(row)
        self._adjust_list_block(row["owner"], row["n"], -1)
        self.conn.execute(
            "UPDATE contents SET deleted = 1, filename = NULL, mime = NULL, size = NULL,"
            " blob = NULL, description = NULL, tags = NULL, width = NULL, height = NULL,"
            " updated_hlc = ? WHERE content_id = ?",
            (op.hlc, op.entity),
        )

    def _insert_version(
        self, op: Op, number: int, owner: str, snapshot: dict[str, Any], changes: list[str]
    ) -> int:
        """Add a version row; the change it makes to the owner's history bytes."""
        self.conn.execute(
            "INSERT INTO versions (version_id, content_id, number, hlc, author, filename, mime,"
            " size, blob, description, tags, width, height, changes)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                op.data["version_id"],
                op.entity,
                number,
                op.hlc,
                op.data["author"],
                snapshot["filename"],
                snapshot["mime"],
                snapshot["size"],
                snapshot["blob"],
                snapshot.get("description"),
                tags_to_sql(snapshot.get("tags") or ()),
                snapshot.get("width"),
                snapshot.get("height"),
                ",".join(changes),
            ),
        )
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
        block = n >> BLOCK_BITS
        self.conn.execute(
            "INSERT INTO list_blocks (owner, block, live) VALUES (?, ?, ?)"
            " ON CONFLICT (owner, block) DO UPDATE SET live = live + excluded.live",
            (owner, block, delta),
        )
        self.conn.execute(
            "INSERT INTO list_supers (owner, super, live) VALUES (?, ?, ?)"
            " ON CONFLICT (owner, super) DO UPDATE SET live = live + excluded.live",
            (owner, block >> SUPER_BITS, delta),
        )

    # -- collaboration and key steps -----------------------------------------------------

    def collaboration_row(self, collaboration_id: str) -> Row | None:
        row: Row | None = self.conn.execute(
            "SELECT * FROM collaborations WHERE collaboration_id = ?", (collaboration_id,)
        ).fetchone()
        return row

    def _step_collab_create(self, op: Op) -> None:
        data = op.data
        self.conn.execute(
            "INSERT OR IGNORE INTO collaborations (collaboration_id, content_id, owner,"
            " collaborator, permissions, created_hlc, updated_hlc) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                op.entity,
                data["content_id"],
                data["owner"],
                data["collaborator"],
                data["permissions"],
                op.hlc,
                op.hlc,
            ),
        )

    def _step_collab_update(self, op: Op) -> None:
        self.conn.execute(
            "UPDATE collaborations SET permissions = ?, updated_hlc = ?"
            " WHERE collaboration_id = ? AND deleted = 0",
            (op.data["permissions"], op.hlc, op.entity),
        )

    def _step_collab_delete(self, op: Op) -> None:
        self.conn.execute(
            "UPDATE collaborations SET deleted = 1, updated_hlc = ? WHERE collaboration_id = ?",
            (op.hlc, op.entity),
        )

    def key_row(self, key_id: str) -> Row | None:
        row: Row | None = self.conn.execute(
            "SELECT * FROM api_keys WHERE key_id = ?", (key_id,)
        ).fetchone()
        return row

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

    # -- content queries ----------------------------------------------------------------

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

    def live_blobs(self) -> dict[str, int]:
        """Every blob a version of a live content references, with its size."""
        rows = self.conn.execute(
            "SELECT DISTINCT v.blob, v.size FROM versions v"
            " JOIN contents c USING (content_id) WHERE c.deleted = 0"
        )
        return {str(row[0]): int(row[1]) for row in rows}

    def size_referenced(self, size: int) -> bool:
        """Whether some version references bytes of exactly ``size`` bytes (if none does,
        bytes of that size are new here, but for unreferenced blobs gc has not taken)."""
        row = self.conn.execute("SELECT 1 FROM versions WHERE size = ? LIMIT 1", (size,))
        return row.fetchone() is not None

    def blob_referenced(self, blob: str) -> bool:
        return (
            self.conn.execute("SELECT 1 FROM versions WHERE blob = ? LIMIT 1", (blob,)).fetchone()
            is not None
        )

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

    def version_numbers_ok(self) -> list[str]:
        """Contents whose version numbers are not exactly 1..version."""
        rows = self.conn.execute(
            "SELECT c.content_id FROM contents c LEFT JOIN versions v USING (content_id)"
            " WHERE c.deleted = 0 GROUP BY c.content_id"
            " HAVING count(v.number) != c.version OR min(v.number) != 1"
            " OR max(v.number) != c.version"
        )
        return [str(row[0]) for row in rows]

    # -- quotas -------------------------------------------------------------------------

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

    # -- collaborations and keys ---------------------------------------------------------

    def permission_of(self, content_id: str, user: str) -> str | None:
        """The strongest live permission ``user`` holds on ``content_id``, if any."""
        row = self.conn.execute(
            "SELECT max(permissions) FROM collaborations"
            " WHERE content_id = ? AND collaborator = ? AND deleted = 0",
            (content_id, user),
        ).fetchone()  # 'write' > 'read' as text, so max() is the strongest
        return None if row is None or row[0] is None else str(row[0])

    def collaborations_of(self, user: str) -> list[Row]:
        """Live collaborations on live contents that ``user`` owns or is given."""
        return self.conn.execute(
            "SELECT k.* FROM collaborations k JOIN contents c USING (content_id)"
            " WHERE k.deleted = 0 AND c.deleted = 0 AND (k.owner = ? OR k.collaborator = ?)"
            " ORDER BY k.created_hlc, k.collaboration_id",
            (user, user),
        ).fetchall()

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

    def key_last_used(self, key_id: str) -> int | None:
        row = self.conn.execute(
            "SELECT last_used_ms FROM key_last_used WHERE key_id = ?", (key_id,)
        ).fetchone()
        return None if row is None else int(row[0])

    # -- counters -----------------------------------------------------------------------

    def add_counters(
        self,
        replica: str,
        usage: dict[tuple[str, str, str], list[int]],
        stats: dict[tuple[str, str], list[int]],
        viewers: set[tuple[str, str, str]],
        last_used: dict[str, int],
    ) -> None:
        """Add buffered counts to this replica's rows (inside the caller's transaction)."""
        conn = self.conn
        conn.executemany(
            "INSERT INTO api_usage (replica, user, operation, day, calls, errors, bytes_in,"
            " bytes_out) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
            " calls = calls + excluded.calls, errors = errors + excluded.errors,"
            " bytes_in = bytes_in + excluded.bytes_in, bytes_out = bytes_out + excluded.bytes_out",
            [(replica, *key, *cell) for key, cell in usage.items()],
        )
        conn.executemany(
            "INSERT INTO content_stats (replica, content_id, day, views, downloads, bytes_served)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
            " views = views + excluded.views, downloads = downloads + excluded.downloads,"
            " bytes_served = bytes_served + excluded.bytes_served",
            [(replica, *key, *cell) for key, cell in stats.items()],
        )
        conn.executemany("INSERT OR IGNORE INTO viewers VALUES (?, ?, ?)", sorted(viewers))
        conn.executemany(
            "INSERT INTO key_last_used (key_id, last_used_ms) VALUES (?, ?) ON CONFLICT DO UPDATE"
            " SET last_used_ms = max(last_used_ms, excluded.last_used_ms)",
            list(last_used.items()),
        )

    def usage_rows(self, user: str) -> list[Row]:
        """API usage of ``user`` summed over replicas, per operation and day."""
        return self.conn.execute(
            "SELECT operation, day, sum(calls) AS calls, sum(errors) AS errors,"
            " sum(bytes_in) AS bytes_in, sum(bytes_out) AS bytes_out FROM api_usage"
            " WHERE user = ? GROUP BY operation, day ORDER BY day, operation",
            (user,),
        ).fetchall()

    def stats_rows(self, owner: str, content_id: str | None) -> list[Row]:
        """Analytics summed over replicas per content and day, for one content or an owner's."""
        if content_id is not None:
            where, args = "s.content_id = ?", (content_id,)
        else:
            where, args = "c.owner = ? AND c.deleted = 0", (owner,)
        return self.conn.execute(
            "SELECT s.content_id, s.day, sum(s.views) AS views, sum(s.downloads) AS downloads,"
            " sum(s.bytes_served) AS bytes_served FROM content_stats s"
            f" JOIN contents c USING (content_id) WHERE {where}"
            " GROUP BY s.content_id, s.day ORDER BY s.day",
            args,
        ).fetchall()

    def unique_viewers(self, owner: str, content_id: str | None) -> int:
        if content_id is not None:
            row = self.conn.execute(
                "SELECT count(DISTINCT user) FROM viewers WHERE content_id = ?", (content_id,)
            ).fetchone()
        else:
            row = self.conn.execute(
                "SELECT count(DISTINCT v.user) FROM viewers v JOIN contents c USING (content_id)"
                " WHERE c.owner = ? AND c.deleted = 0",
                (owner,),
            ).fetchone()
        return int(row[0])

    def counter_snapshot(self, replica: str) -> dict[str, list[list[Any]]]:
        """This replica's counter rows and the viewer set, for a remote snapshot."""
        conn = self.conn
        return {
            "api_usage": [
                list(row)
                for row in conn.execute(
                    "SELECT user, operation, day, calls, errors, bytes_in, bytes_out"
                    " FROM api_usage WHERE replica = ?",
                    (replica,),
                )
            ],
            "content_stats": [
                list(row)
                for row in conn.execute(
                    "SELECT content_id, day, views, downloads, bytes_served"
                    " FROM content_stats WHERE replica = ?",
                    (replica,),
                )
            ],
            "viewers": [list(row) for row in conn.execute("SELECT * FROM viewers")],
        }

    def merge_counter_snapshot(self, replica: str, snapshot: dict[str, list[list[Any]]]) -> None:
        """Merge another replica's counters: per cell the larger value wins (grow-only)."""
        conn = self.conn
        conn.executemany(
            "INSERT INTO api_usage (replica, user, operation, day, calls, errors, bytes_in,"
            " bytes_out) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
            " calls = max(calls, excluded.calls), errors = max(errors, excluded.errors),"
            " bytes_in = max(bytes_in, excluded.bytes_in),"
            " bytes_out = max(bytes_out, excluded.bytes_out)",
            [(replica, *row) for row in snapshot.get("api_usage", [])],
        )
        conn.executemany(
            "INSERT INTO content_stats (replica, content_id, day, views, downloads, bytes_served)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
            " views = max(views, excluded.views), downloads = max(downloads, excluded.downloads),"
            " bytes_served = max(bytes_served, excluded.bytes_served)",
            [(replica, *row) for row in snapshot.get("content_stats", [])],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO viewers (content_id, day, user) VALUES (?, ?, ?)",
            [tuple(row) for row in snapshot.get("viewers", [])],
        )

    # -- remotes ------------------------------------------------------------------------

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

    # -- digest -------------------------------------------------------------------------

    DIGEST_QUERIES = (
        "SELECT content_id, owner, deleted, filename, mime, size, blob, description, tags,"
        " width, height, version, created_hlc, updated_hlc FROM contents ORDER BY content_id",
        "SELECT version_id, content_id, number, hlc, author, filename, mime, size, blob,"
        " description, tags, width, height, changes FROM versions ORDER BY version_id",
        "SELECT collaboration_id, content_id, owner, collaborator, permissions, deleted,"
        " created_hlc, updated_hlc FROM collaborations ORDER BY collaboration_id",
        "SELECT key_id, user, description, secret_hash, created_hlc, revoked_hlc"
        " FROM api_keys ORDER BY key_id",
        "SELECT replica, user, operation, day, calls, errors, bytes_in, bytes_out"
        " FROM api_usage ORDER BY replica, user, operation, day",
        "SELECT replica, content_id, day, views, downloads, bytes_served"
        " FROM content_stats ORDER BY replica, content_id, day",
        "SELECT content_id, day, user FROM viewers ORDER BY content_id, day, user",
    )

    def digest_rows(self) -> Iterator[tuple[Any, ...]]:
        with self.snapshot() as conn:
            for number, query in enumerate(self.DIGEST_QUERIES):
                for row in conn.execute(query):
                    yield (number, *tuple(row))


def _passing(rows: Iterable[tuple[int, int]], offset: int) -> tuple[int, int, int] | None:
    """The first ``(key, live)`` row, in the order given, where the running count of live
    rows passes ``offset``: its key, the count before it and its own (None if none does)."""
    total = 0
    for key, live in rows:
        if total + live > offset:
            return int(key), total, live
        total += live
    return None


_STEPS: dict[str, Callable[[Catalog, Op], None]] = {
    oplog.CONTENT_CREATE: Catalog._step_content_create,
    oplog.CONTENT_CHANGE: Catalog._step_content_change,
    oplog.CONTENT_DELETE: Catalog._step_content_delete,
    oplog.COLLAB_CREATE: Catalog._step_collab_create,
    oplog.COLLAB_UPDATE: Catalog._step_collab_update,
    oplog.COLLAB_DELETE: Catalog._step_collab_delete,
    oplog.KEY_CREATE: Catalog._step_key_create,
    oplog.KEY_REVOKE: Catalog._step_key_revoke,
}
