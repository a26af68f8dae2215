"""Reports: storage used, API usage per user, and analytics per content or owner.

The counts are buffered in memory (``counters``), so each report writes them first.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .records.accounts import Analytics, ApiUsage, StorageUsage
from .replica import Replica

TOP_CONTENT = 10


class Reports:
    """API usage and analytics of one replica (every replica's counts, summed)."""

    def __init__(self, replica: Replica) -> None:
        self._replica = replica
        self._catalog = replica.catalog

    def storage_usage(self, user_id: str) -> StorageUsage:
        """The user's contents, versions, current bytes and bytes of all versions."""
        with self._catalog.snapshot():
            row = self._catalog.reads.storage_row(user_id)
            quota = self._replica.quota_of(user_id)
        if row is None:
            return StorageUsage(user_id, 0, 0, 0, 0, quota)
        return StorageUsage(
            user_id, row["contents"], row["versions"], row["bytes"], row["history_bytes"], quota
        )

    def api_usage(self, user_id: str) -> ApiUsage:
        """API calls the user made: totals, per operation, and per day (oldest first)."""
        self._replica.counters.flush()
        by_operation: dict[str, dict[str, int]] = {}
        daily: dict[str, dict[str, Any]] = {}
        totals = [0, 0, 0, 0]
        for row in self._catalog.tallies.usage_rows(user_id):
            cell = (row["calls"], row["errors"], row["bytes_in"], row["bytes_out"])
            op = by_operation.setdefault(
                row["operation"], {"calls": 0, "errors": 0, "bytesIn": 0, "bytesOut": 0}
            )
            day = daily.setdefault(
                row["day"],
                {"date": row["day"], "calls": 0, "errors": 0, "bytesIn": 0, "bytesOut": 0},
            )
            for target in (op, day):
                target["calls"] += cell[0]
                target["errors"] += cell[1]
                target["bytesIn"] += cell[2]
                target["bytesOut"] += cell[3]
            totals = [a + b for a, b in zip(totals, cell, strict=True)]
        return ApiUsage(
            user_id=user_id,
            total_calls=totals[0],
            errors=totals[1],
            bytes_in=totals[2],
            bytes_out=totals[3],
            by_operation=dict(sorted(by_operation.items())),
            daily=tuple(daily[day] for day in sorted(daily)),
        )

    def analytics(self, user_id: str, content_id: str | None) -> Analytics:
        """Views, downloads, bytes served and viewers: of one content (already checked as
        the user's own), or of all the user's contents with the most viewed ones."""
        self._replica.counters.flush()
        with self._catalog.snapshot():
            found = self._catalog.tallies.stats_rows(user_id, content_id)
            unique = self._catalog.tallies.unique_viewers(user_id, content_id)
        daily: dict[str, dict[str, Any]] = {}
        per_content: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
        views = downloads = served = 0
        for row in found:
            day = daily.setdefault(
                row["day"], {"date": row["day"], "views": 0, "downloads": 0, "bytesServed": 0}
            )
            day["views"] += row["views"]
            day["downloads"] += row["downloads"]
            day["bytesServed"] += row["bytes_served"]
            per_content[row["content_id"]][0] += row["views"]
            per_content[row["content_id"]][1] += row["downloads"]
            views += row["views"]
            downloads += row["downloads"]
            served += row["bytes_served"]
        top = None
        if content_id is None:
            ranked = sorted(
                per_content.items(), key=lambda item: (-item[1][0], -item[1][1], item[0])
            )
            top = tuple(
                {"contentId": cid, "views": counts[0], "downloads": counts[1]}
                for cid, counts in ranked[:TOP_CONTENT]
            )
        return Analytics(
            user_id=user_id,
            content_id=content_id,
            views=views,
            downloads=downloads,
            bytes_served=served,
            unique_viewers=unique,
            daily=tuple(daily[day] for day in sorted(daily)),
            top_content=top,
        )
