"""The SQLite catalog: every SQL statement of the engine, by concern.

- ``db``: connections, transactions, retries, migrations (``schema.sql``), settings;
- ``group``: group commit, several threads' write transactions sharing one commit;
- ``fold``: the one fold of ops into the materialised tables;
- ``reads``: reads that return rows (contents, versions, list pages, storage, keys...);
- ``log``: the op log's reads (timestamps, positions, ranges);
- ``tallies``: the counters that reads produce (usage, analytics);
- ``local``: what this store keeps for itself (quotas, remotes, sync progress);
- ``inline``: the bytes of small blobs, kept in the catalog's own file;
- ``search_index``: the search index the fold keeps; ``search``: its queries.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from sqlite3 import Connection
from typing import TYPE_CHECKING, TypeVar

from .db import Database, Row, tags_from_sql, tags_to_sql
from .group import GroupCommit
from .inline import InlineBlobs
from .local import LocalState, file_stat
from .log import OpLog
from .reads import CONTENT_COLUMNS, Reads
from .search_index import generation_of
from .tallies import Tallies

if TYPE_CHECKING:
    from .fold import Fold
    from .search import Search

__all__ = [
    "CONTENT_COLUMNS", "Catalog", "Row", "file_stat", "generation_of",
    "tags_from_sql", "tags_to_sql",
]  # fmt: skip

T = TypeVar("T")


class Catalog:
    """One catalog file, its concerns as parts sharing one database connection per thread."""

    def __init__(self, path: Path) -> None:
        self.db = Database(path)
        self.reads = Reads(self.db)
        self.log = OpLog(self.db)
        self.tallies = Tallies(self.db)
        self.local = LocalState(self.db)
        self.inline = InlineBlobs(self.db)
        self._group = GroupCommit(self.db)

    @functools.cached_property
    def fold(self) -> Fold:
        """The fold of ops into the tables: imported on first use, with the op codec
        (a store opened to list and read folds nothing)."""
        from .fold import Fold

        return Fold(self.db, self.reads)

    @functools.cached_property
    def search(self) -> Search:
        """The search and facet queries: imported on first use (a store that only lists
        and reads never needs the query language)."""
        from .search import Search

        return Search(self.db)

    def atomic(self) -> AbstractContextManager[Connection]:
        """A write transaction (a savepoint when nested): see ``Database.atomic``."""
        return self.db.atomic()

    def coming(self) -> AbstractContextManager[None]:
        """Around preparing a write that then goes through ``grouped``: see
        ``GroupCommit.coming``."""
        return self._group.coming()

    def grouped(self, body: Callable[[], T]) -> T:
        """``body()`` inside a write transaction that other threads' may share, returned
        once committed: see ``GroupCommit``."""
        return self._group.run(body)

    def snapshot(self) -> AbstractContextManager[Connection]:
        """A read transaction: see ``Database.snapshot``."""
        return self.db.snapshot()

    def close(self) -> None:
        self.db.close()
