"""Finding renders: search, facets, favorites, generation records and reindexing.

Arguments arrive validated (the ``Store`` facade checks them); who may see what comes
from ``access`` (its ``Scope`` and ``strips`` rules), never from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import oplog, rows, validate
from .access import READ, Access
from .catalog.search import Filters, Query, Scope, parse
from .errors import NotFound
from .records import Content, Page
from .records.search import FacetCount, Facets, Generation
from .replica import Replica

REINDEX_BATCH = 256  # (content, blob) pairs read per transaction of reindex


class Finding:
    """Search, facets, favorites and generation records of one replica."""

    def __init__(self, replica: Replica, access: Access) -> None:
        self._replica = replica
        self._access = access
        self._catalog = replica.catalog

    def search(
        self,
        user_id: str,
        query: Query,
        filters: Filters,
        limit: int,
        offset: int,
        scope: Scope | None = None,
    ) -> Page[Content]:
        """A page of the contents ``user_id`` may see that match, best match first then
        newest (newest first without a query); ``scope`` narrows what they may see (to
        their own contents, for a list)."""
        with self._catalog.snapshot():
            scope = scope or self._access.scope(user_id)
            found, stripped, total = self._catalog.search.page(query, scope, filters, limit, offset)
        items = tuple(
            rows.withheld(rows.content_of(*row), strip)
            for row, strip in zip(found, stripped, strict=True)
        )
        return Page(items, total, limit, offset)

    def tagged(self, user_id: str, tags: tuple[str, ...], limit: int, offset: int) -> Page[Content]:
        """A page of the user's own contents that carry every one of ``tags``, newest
        first (a list filtered by tags)."""
        return self.search(user_id, parse(None), Filters(tags=tags), limit, offset, Scope(user_id))

    def facets(self, user_id: str, query: Query, filters: Filters, limit: int) -> Facets:
        """The facet values of the contents ``user_id`` may see that match, with counts."""
        with self._catalog.snapshot():
            scope = self._access.scope(user_id)
            found = self._catalog.search.facets(query, scope, filters, limit)

        def of(kind: str) -> tuple[FacetCount, ...]:
            return tuple(FacetCount(value, count) for value, count in found[kind])

        return Facets(of("model"), of("lora"), of("sampler"), of("generator"), of("tag"))

    def set_favorite(self, content_id: str, user_id: str, favorite: bool) -> None:
        """Mark (or unmark) a content the user can read as one of their favorites."""
        with self._catalog.atomic():
            self._access.content(content_id, user_id, READ)
            self._replica.record(
                oplog.CONTENT_FAVORITE, content_id, {"user": user_id, "favorite": favorite}
            )

    def generation(
        self, content_id: str, user_id: str, version: int | None, fetch: Callable[[str], None]
    ) -> Generation:
        """The generation record of the content's (or a version's) bytes, and the raw
        texts read from them now; ``fetch`` brings remote-only bytes home."""
        with self._catalog.snapshot():
            row = self._access.generation(content_id, user_id)
            number = row["version"] if version is None else version
            source = self._catalog.reads.version_row(content_id, number)
            if source is None:
                raise NotFound(
                    f"content {content_id} has no version {number}", content_id=content_id
                )
        digest = source["blob"]
        if not self._replica.blobs.exists(digest):
            fetch(digest)
        found = self._replica.read_metadata(digest)
        record = rows.version(source).generation
        raw: dict[str, str] = {} if found is None else dict(found.raw)
        truncated = () if found is None else tuple(sorted(found.truncated))
        return Generation(content_id, number, record, raw, truncated)

    def reindex(self, progress: Callable[[int], None] | None = None) -> int:
        """Read the generation metadata of every version that has none yet, where its bytes
        are here, and record each record found with a content.generation op (no new
        version). Returns how many records were recorded."""
        recorded = 0
        after = ("", "")
        while True:
            with self._catalog.snapshot():
                pending = self._catalog.reads.versions_missing_generation(after, REINDEX_BATCH)
            if not pending:
                return recorded
            found: list[tuple[str, dict[str, Any]]] = []
            for row in pending:
                if not self._replica.blobs.present(row["blob"]):
                    continue  # only on a remote: indexed once fetched and reindexed
                record = self._replica.extract_generation(row["blob"])
                if record is not None:
                    found.append((row["content_id"], {"blob": row["blob"], "generation": record}))
            if found:
                with self._catalog.atomic():
                    for content_id, data in found:
                        current = self._catalog.reads.content_row(content_id)
                        if current is None or current["deleted"]:
                            continue
                        self._replica.record(oplog.CONTENT_GENERATION, content_id, data)
                        recorded += 1
            if progress is not None:
                progress(len(pending))
            after = (pending[-1]["content_id"], pending[-1]["blob"])


def filters_of(
    tags: Any,
    model: Any,
    lora: Any,
    sampler: Any,
    seed: Any,
    generator: Any,
    mime_type: Any,
    favorite: Any,
    created_after: Any,
    created_before: Any,
) -> Filters:
    """The filters of a search, each checked (InvalidArgument names the bad one)."""
    after = validate.instant_ms(created_after, "created_after")
    before = validate.instant_ms(created_before, "created_before")
    return Filters(
        tags=validate.tags(tags) or (),
        model=validate.filter_text(model, "model"),
        lora=validate.filter_text(lora, "lora"),
        sampler=validate.filter_text(sampler, "sampler"),
        seed=validate.filter_text(seed, "seed"),
        generator=validate.filter_text(generator, "generator"),
        mime=validate.filter_text(mime_type, "mime_type"),
        favorite=validate.flag(favorite, "favorite"),
        after_hlc=None if after is None else f"{after:013d}",
        before_hlc=None if before is None else f"{before:013d}",
    )
