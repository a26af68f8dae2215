"""The op log as a table: the newest timestamp, each replica's positions, ops by range.

Ops are written only by the fold (``fold.Fold.apply``); these are the reads that making
new ops and syncing need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .db import Part

if TYPE_CHECKING:
    from ..oplog import Op


class OpLog(Part):
    """Reads of the ``ops`` table."""

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
        from ..oplog import decode_op  # the op codec (msgpack): not needed to open a store

        return [decode_op(row[0]) for row in rows]

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
        from ..oplog import decode_op

        return [decode_op(row[0]) for row in self.conn.execute("SELECT body FROM ops")]
