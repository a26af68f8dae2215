"""Counters that reads produce (API usage, analytics, distinct viewers, keys' last use).

Rows are per replica (grow-only counters, summed when read); another replica's snapshot
merges by keeping, per cell, the larger value.
"""

from __future__ import annotations

from typing import Any

from .db import Part, Row


class Tallies(Part):
    """The counter tables: buffered counts added, summed reads, sync snapshots."""

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
