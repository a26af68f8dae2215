"""The ``Store`` facade: every operation, as validate, authorise, meter, delegate.

Each method checks its arguments (``validate``, ``ids``), is metered in API usage
(``metering``), and hands the work to the part that owns it: ``contents`` for content
writes, ``keys``, ``sharing`` and ``reports`` for the account operations, ``sync`` for
remotes, and the core (``replica.Replica``) for bytes, ops, verify and gc. The access
rules live in ``access``; the records are built from rows in ``rows``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from itertools import starmap
from pathlib import Path
from typing import Any, BinaryIO, cast

from . import ids, rows, validate
from .access import OWNER, READ, Access
from .blobs import VerifiedReader
from .catalog import Row
from .catalog.search import Filters, Scope, parse
from .clock import SystemClock, WallClock, day_of
from .contents import Contents
from .counters import CounterBuffer
from .errors import BlobUnavailable, DreamflareError, InvalidArgument, NotFound
from .finding import Finding
from .keys import Keys
from .metering import Meter, metered
from .progress import Progress, Silent
from .records import (
    Analytics,
    ApiKey,
    ApiUsage,
    Collaboration,
    Content,
    Facets,
    GcReport,
    Generation,
    NewApiKey,
    Page,
    Problem,
    StorageUsage,
    SyncReport,
    UploadResult,
    Version,
)
from .replica import FileLike, Replica
from .reports import Reports
from .sharing import Sharing

Tags = str | list[str] | tuple[str, ...] | None


class Store:
    """A dreamflare store: a folder with a SQLite catalog and content-addressed blobs.

    Safe to share between threads, and to open from many processes at once.

    >>> with Store("./dreamflare-data") as store:          # doctest: +SKIP
    ...     c = store.upload(file=b"...", user_id="alice", tags="cat,cute")
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "./dreamflare-data",
        *,
        quota_bytes: int | None = None,
        clock: WallClock | None = None,
        randbits: Callable[[int], int] | None = None,
        extract_metadata: bool = True,
    ) -> None:
        self.path = Path(path)
        quota = validate.quota(quota_bytes)  # checked before anything is made
        self.replica = Replica(self.path, clock or SystemClock(), randbits or ids.randbits, quota)
        self.meter = Meter(self.replica.counters, self.replica.wall)
        self._access = Access(self.replica.catalog)
        self._contents = Contents(self.replica, self._access, self.meter, extract_metadata)
        self._keys = Keys(self.replica, self._access)
        self._sharing = Sharing(self.replica, self._access)
        self._reports = Reports(self.replica)
        self._finding = Finding(self.replica, self._access)
        self._reindex_after_upgrade()

    @property
    def replica_id(self) -> str:
        """This store's replica id: random, made when the store was created."""
        return self.replica.replica_id

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def close(self) -> None:
        """Flush buffered counters and close the catalog. Idempotent."""
        self.meter.stopped = True
        self.replica.close()

    def flush(self) -> None:
        """Write buffered usage and analytics counters now."""
        self.replica.counters.flush()

    # -- 1. upload ------------------------------------------------------------------------

    @metered("upload")
    def upload(
        self,
        file: FileLike,
        user_id: str,
        description: str | None = None,
        tags: Tags = None,
        content_id: str | None = None,
        filename: str | None = None,
    ) -> Content:
        """Store a file's bytes and metadata; with ``content_id``, add a new version of it.

        ``file`` is a path, ``bytes``, or a binary file object. The bytes are stored once
        however many contents or users upload them. The MIME type and, for images, the
        width and height are read from the bytes.
        """
        user_id = validate.user_id(user_id)
        description = validate.description(description)
        tag_list = validate.tags(tags)
        name = validate.filename(filename) if filename is not None else None
        if content_id is not None:
            ids.check_id("content", content_id)
        content, _ = self._contents.upload(file, user_id, description, tag_list, content_id, name)
        return content

    def upload_many(
        self,
        files: Sequence[FileLike],
        user_id: str,
        description: str | None = None,
        tags: Tags = None,
        *,
        jobs: int = 8,
    ) -> list[Content | DreamflareError]:
        """Upload many files as new contents, faster than one ``upload`` each.

        The bytes are stored as ``upload`` stores them (durably, before any row refers to
        them), by ``jobs`` threads, small files a group at a time so their flushes are
        shared; then every content is created in one transaction. Each file counts as one
        upload in API usage. The result has, in the order of ``files``, each one's
        ``Content``, or the error that kept it out (the others still go in).
        """
        user_id = validate.user_id(user_id)
        description = validate.description(description)
        tag_list = validate.tags(tags)
        done = self._contents.upload_many(files, user_id, description, tag_list, jobs)
        return [outcome for outcome, _ in done]

    def upload_batch(
        self,
        files: Sequence[FileLike],
        user_id: str,
        description: str | None = None,
        tags: Tags = None,
        *,
        jobs: int = 8,
        progress: Progress | None = None,
    ) -> list[UploadResult]:
        """Upload many files as new contents and say, per file, what became of it.

        Small files take the batch path of ``upload_many`` a chunk at a time; large files
        are uploaded one by one on ``jobs`` threads (hashing, reading and fsync release
        the GIL, so one file's flush overlaps the next one's hashing). Each result, in the
        order of ``files``, has the content or the error, and whether the bytes were new
        to the store. ``progress`` hears of each file (and its bytes) as it is done.
        """
        user_id = validate.user_id(user_id)
        description = validate.description(description)
        tag_list = validate.tags(tags)
        return self._contents.upload_batch(
            files, user_id, description, tag_list, jobs, progress or Silent()
        )

    # -- 2-5, 15. content -----------------------------------------------------------------

    @metered("get_content")
    def get_content(self, content_id: str, user_id: str) -> Content:
        """One content item, as it is now. Counts as a view in analytics."""
        ids.check_id("content", content_id)
        user_id = validate.user_id(user_id)
        row = self._access.content(content_id, user_id, READ)
        self.replica.counters.count_read(content_id, user_id, self._today(), True, 0)
        return rows.content(row, self._access.strips(row, user_id))

    @metered("delete_content")
    def delete_content(self, content_id: str, user_id: str) -> None:
        """Delete a content and all its versions (owner only). Final, even across replicas."""
        ids.check_id("content", content_id)
        user_id = validate.user_id(user_id)
        self._contents.delete(content_id, user_id)

    @metered("list_content")
    def list_content(
        self, user_id: str, limit: int = 50, offset: int = 0, tags: Tags = None
    ) -> Page[Content]:
        """A page of the user's own contents, newest first (with ``tags``: those carrying
        every one of them)."""
        user_id = validate.user_id(user_id)
        limit = validate.integer(limit, "limit", 1, validate.MAX_LIMIT)
        offset = validate.integer(offset, "offset", 0, validate.MAX_OFFSET)
        tag_list = validate.tags(tags)
        if tag_list:
            return self._finding.search(
                user_id, parse(None), Filters(tags=tag_list), limit, offset, Scope(user_id)
            )
        reads = self.replica.catalog.reads
        with self.replica.catalog.snapshot():
            total = reads.count_live(user_id)
            page = reads.list_page(user_id, limit, offset) if offset < total else []
        return Page(tuple(starmap(rows.content_of, page)), total, limit, offset)

    @metered("update_metadata")
    def update_metadata(
        self,
        content_id: str,
        user_id: str,
        description: str | None = None,
        tags: Tags = None,
    ) -> Content:
        """Set the description and/or tags (``None`` keeps a field); appends a version."""
        ids.check_id("content", content_id)
        user_id = validate.user_id(user_id)
        description = validate.description(description)
        tag_list = validate.tags(tags)
        if description is None and tag_list is None:
            raise InvalidArgument("give a description or tags to update")
        return self._contents.update(content_id, user_id, description, tag_list)

    @metered("get_content_versions")
    def get_content_versions(self, content_id: str, user_id: str) -> list[Version]:
        """Every version of a content, oldest first: each one's snapshot and its changes."""
        ids.check_id("content", content_id)
        user_id = validate.user_id(user_id)
        with self.replica.catalog.snapshot():
            content = self._access.content(content_id, user_id, READ)
            strip = self._access.strips(content, user_id)
            found = self.replica.catalog.reads.versions_of(content_id)
        return [rows.version(row, strip) for row in found]

    # -- 6. storage -----------------------------------------------------------------------

    @metered("get_storage_usage")
    def get_storage_usage(self, user_id: str) -> StorageUsage:
        """The user's storage: contents, versions, current bytes and bytes of all versions."""
        user_id = validate.user_id(user_id)
        with self.replica.catalog.snapshot():
            row = self.replica.catalog.reads.storage_row(user_id)
            quota = self.replica.quota_of(user_id)
        if row is None:
            return StorageUsage(user_id, 0, 0, 0, 0, quota)
        return StorageUsage(
            user_id, row["contents"], row["versions"], row["bytes"], row["history_bytes"], quota
        )

    def set_quota(self, user_id: str, quota_bytes: int | None) -> None:
        """Limit the bytes a user's contents keep over all versions (None: the default)."""
        user_id = validate.user_id(user_id)
        quota = validate.quota(quota_bytes)
        with self.replica.catalog.atomic():
            self.replica.catalog.local.set_quota(user_id, quota)

    # -- 7, 10. usage and analytics -------------------------------------------------------

    @metered("get_api_usage")
    def get_api_usage(self, user_id: str) -> ApiUsage:
        """API calls the user made: totals, per operation, and per day (oldest first)."""
        return self._reports.api_usage(validate.user_id(user_id))

    @metered("get_analytics")
    def get_analytics(self, user_id: str, content_id: str | None = None) -> Analytics:
        """Views, downloads, bytes served and viewers: of one content (owner only), or of
        all the user's contents with the most viewed ones."""
        user_id = validate.user_id(user_id)
        if content_id is not None:
            ids.check_id("content", content_id)
            self._access.content(content_id, user_id, OWNER)
        return self._reports.analytics(user_id, content_id)

    # -- 8, 9. API keys -------------------------------------------------------------------

    @metered("generate_api_key")
    def generate_api_key(self, user_id: str, description: str | None = None) -> NewApiKey:
        """A new API key for the user. Its secret is in the result and nowhere else, ever."""
        return self._keys.generate(validate.user_id(user_id), validate.description(description))

    @metered("revoke_api_key")
    def revoke_api_key(self, key_id: str, user_id: str) -> None:
        """Revoke one of the user's keys. Another user's key, or a revoked one, is not found."""
        ids.check_id("key", key_id)
        self._keys.revoke(key_id, validate.user_id(user_id))

    def list_api_keys(self, user_id: str) -> list[ApiKey]:
        """The user's keys, revoked ones included, never their secrets."""
        return self._keys.list(validate.user_id(user_id))

    def authenticate(self, api_key: str) -> str:
        """The user who owns a valid, unrevoked key; Unauthenticated otherwise."""
        return self._keys.authenticate(api_key)

    # -- 11-14. collaborations ------------------------------------------------------------

    @metered("create_collaboration")
    def create_collaboration(
        self,
        user_id: str,
        content_id: str,
        collaborator_id: str,
        permissions: str = "read",
        strip_metadata: bool = False,
    ) -> Collaboration:
        """Share a content the user owns with a collaborator, to ``read`` or ``write``;
        with ``strip_metadata``, without how it was made (no generation record, no prompt
        search, stripped bytes)."""
        user_id = validate.user_id(user_id)
        ids.check_id("content", content_id)
        collaborator_id = validate.user_id(collaborator_id, "collaborator_id")
        permissions = validate.permissions(permissions)
        strip = bool(validate.flag(strip_metadata, "strip_metadata"))
        return self._sharing.create(user_id, content_id, collaborator_id, permissions, strip)

    @metered("list_collaborations")
    def list_collaborations(self, user_id: str) -> list[Collaboration]:
        """Collaborations on contents the user owns, and those shared with the user."""
        return self._sharing.list(validate.user_id(user_id))

    @metered("update_collaboration")
    def update_collaboration(
        self,
        collaboration_id: str,
        user_id: str,
        permissions: str | None = None,
        strip_metadata: bool | None = None,
    ) -> Collaboration:
        """Change a collaborator's permissions and/or whether their view of the content is
        stripped of its metadata (the content's owner only; None keeps a setting)."""
        ids.check_id("collaboration", collaboration_id)
        user_id = validate.user_id(user_id)
        checked = None if permissions is None else validate.permissions(permissions)
        strip = validate.flag(strip_metadata, "strip_metadata")
        if checked is None and strip is None:
            raise InvalidArgument("give permissions or strip_metadata to update")
        return self._sharing.update(collaboration_id, user_id, checked, strip)

    @metered("delete_collaboration")
    def delete_collaboration(self, collaboration_id: str, user_id: str) -> None:
        """End a collaboration: its owner may, and so may the collaborator (leaving)."""
        ids.check_id("collaboration", collaboration_id)
        self._sharing.delete(collaboration_id, validate.user_id(user_id))

    # -- reading bytes --------------------------------------------------------------------

    @metered("open_content")
    def open_content(
        self,
        content_id: str,
        user_id: str,
        version: int | None = None,
        strip_metadata: bool = False,
    ) -> BinaryIO:
        """A binary file object over the bytes of the content (or of one of its versions).

        The bytes are checked against their hash as they are read: corrupt bytes raise
        IntegrityError instead of being returned. Counts as a download. Besides ``size``
        and ``digest``, it tells the ``filename`` and ``mime_type`` of the bytes, so a
        server can answer a download with one call. With ``strip_metadata`` (always, for
        a collaborator without metadata) the bytes come without their embedded metadata,
        the image data unchanged; ``digest`` is then the stripped bytes' own hash.
        """
        reader, source = self._open(content_id, user_id, version, strip_metadata)
        day = self._today()
        user_id = validate.user_id(user_id)
        self.replica.counters.count_read(content_id, user_id, day, False, 0)
        counting = _CountingReader(reader, self.replica.counters, content_id, user_id, day)
        counting.filename, counting.mime_type = source["filename"], source["mime"]
        return cast(BinaryIO, counting)  # a RawIOBase: every BinaryIO method a reader needs

    @metered("read_content")
    def read_content(
        self,
        content_id: str,
        user_id: str,
        version: int | None = None,
        strip_metadata: bool = False,
    ) -> bytes:
        """All the bytes of the content (or of one of its versions), verified (stripped
        of their metadata as ``open_content`` says)."""
        reader, _ = self._open(content_id, user_id, version, strip_metadata)
        with reader:
            data = reader.read()
        self.replica.counters.count_read(content_id, user_id, self._today(), False, len(data))
        self.meter.note(bytes_out=len(data))
        return data

    def _open(
        self, content_id: str, user_id: str, version: int | None, strip: Any = False
    ) -> tuple[VerifiedReader, Row]:
        """A verified reader over the bytes (stripped of their metadata when asked, or
        when the user may not see it), and the content or version row they belong to."""
        ids.check_id("content", content_id)
        user_id = validate.user_id(user_id)
        strip = bool(validate.flag(strip, "strip_metadata"))
        catalog = self.replica.catalog
        with catalog.snapshot():
            source = self._access.content(content_id, user_id, READ)
            strip = strip or self._access.strips(source, user_id)
            if version is None:
                digest = source["blob"]
            else:
                number = validate.integer(version, "version", 1, 2**62)
                version_row = catalog.reads.version_row(content_id, number)
                if version_row is None:
                    raise NotFound(
                        f"content {content_id} has no version {number}", content_id=content_id
                    )
                digest, source = version_row["blob"], version_row
        if not self.replica.blobs.exists(digest):
            self._fetch_remote_blob(digest)
        if strip:
            digest = self.replica.stripped_blob(digest)
        return self.replica.blobs.open(digest), source

    def _fetch_remote_blob(self, digest: str) -> None:
        """Bring a lazily pulled blob home from its remote (verified), or say it is remote-only."""
        remote = self.replica.catalog.local.remote_of_blob(digest)
        if remote is None:
            return  # blobs.open reports the missing blob as an integrity error
        from . import sync

        try:
            sync.fetch_blob(self.replica, remote, digest)
        except BlobUnavailable:
            raise
        except DreamflareError as exc:
            raise BlobUnavailable(
                f"the bytes of blob {digest} are only on remote {remote!r}, which cannot be"
                f" reached: {exc.message}",
                digest=digest,
                remote=remote,
            ) from exc

    def _today(self) -> str:
        return day_of(self.replica.now_ms())

    # -- finding renders: search, facets, favorites, generation metadata -----------------

    @metered("search_content")
    def search_content(
        self,
        user_id: str,
        query: str | None = None,
        *,
        tags: Tags = None,
        model: str | None = None,
        lora: str | None = None,
        sampler: str | None = None,
        seed: str | int | None = None,
        generator: str | None = None,
        mime_type: str | None = None,
        favorite: bool | None = None,
        created_after: Any = None,
        created_before: Any = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Content]:
        """Find contents the user can see (their own and those shared with them) by the
        words of their prompt, description, tags, filename and model, and by filters.

        ``query``: plain words (all must match), ``"quoted phrases"`` and ``prefix*``;
        anything else is searched for as text, so a pasted prompt never raises. Several
        ``tags`` must all match. Best match first, then newest; newest first with no
        query. ``total`` counts the matches the user can see, no others.
        """
        user_id = validate.user_id(user_id)
        parsed = parse(validate.query(query))
        filters = _filters(
            tags, model, lora, sampler, seed, generator, mime_type, favorite,
            created_after, created_before,
        )  # fmt: skip
        limit = validate.integer(limit, "limit", 1, validate.MAX_LIMIT)
        offset = validate.integer(offset, "offset", 0, validate.MAX_OFFSET)
        return self._finding.search(user_id, parsed, filters, limit, offset)

    @metered("facets")
    def facets(
        self, user_id: str, query: str | None = None, *, tags: Tags = None, limit: int = 50
    ) -> Facets:
        """The models, LoRAs, samplers, generators and tags of the contents the user can
        see (those matching ``query`` and ``tags`` when given), each with its count, most
        used first, at most ``limit`` of each."""
        user_id = validate.user_id(user_id)
        parsed = parse(validate.query(query))
        filters = Filters(tags=validate.tags(tags) or ())
        limit = validate.integer(limit, "limit", 1, validate.MAX_LIMIT)
        return self._finding.facets(user_id, parsed, filters, limit)

    @metered("set_favorite")
    def set_favorite(self, content_id: str, user_id: str, favorite: bool = True) -> None:
        """Mark a content the user can see as one of their favorites (or unmark it): the
        user's own mark, which syncs; search with ``favorite=True`` finds them."""
        ids.check_id("content", content_id)
        user_id = validate.user_id(user_id)
        mark = validate.flag(favorite, "favorite")
        if mark is None:
            raise InvalidArgument("favorite must be true or false")
        self._finding.set_favorite(content_id, user_id, mark)

    @metered("get_generation")
    def get_generation(
        self, content_id: str, user_id: str, version: int | None = None
    ) -> Generation:
        """How the content (or one of its versions) was made: its normalised generation
        record, and the raw texts it was read from, read from the bytes now.
        PermissionDenied for a collaborator the content is shared with without metadata."""
        ids.check_id("content", content_id)
        user_id = validate.user_id(user_id)
        number = None if version is None else validate.integer(version, "version", 1, 2**62)
        return self._finding.generation(content_id, user_id, number, self._fetch_remote_blob)

    def reindex(self, progress: Callable[[int], None] | None = None) -> int:
        """Read the generation metadata of the versions that have none yet (contents
        uploaded before this release, or with extraction off), where their bytes are
        here; each record found is recorded by an op that makes no new version, and syncs.
        Returns how many were recorded. ``progress`` hears how many versions were read."""
        return self._finding.reindex(progress)

    def _reindex_after_upgrade(self) -> None:
        """Index once the contents a store held when it was upgraded to this release."""
        catalog = self.replica.catalog
        if catalog.db.meta("reindex_pending") is None:
            return
        self._finding.reindex()
        with catalog.atomic():
            catalog.db.conn.execute("DELETE FROM meta WHERE key = 'reindex_pending'")

    # -- sync (the sync package owns the remote side; fsspec is imported only when used) --

    def add_remote(self, name: str, url: str, **storage_options: Any) -> None:
        """Save a remote: an fsspec URL plus the options to open it (credentials from the
        environment are better left out: fsspec finds them itself)."""
        from . import sync

        sync.add_remote(self.replica, name, url, storage_options)

    def push(self, remote: str, progress: Progress | None = None) -> SyncReport:
        """Send this replica's new ops (after the blobs they reference) and its counters.

        ``progress`` (see ``progress.Progress``) hears of each file and change sent.
        """
        from . import sync

        return sync.push(self.replica, remote, progress)

    def pull(
        self, remote: str, blobs: str = "lazy", progress: Progress | None = None
    ) -> SyncReport:
        """Apply other replicas' ops from a remote; fetch blobs "eager", "lazy" or "none"."""
        from . import sync

        return sync.pull(self.replica, remote, blobs, progress)

    def sync(
        self, remote: str, blobs: str = "lazy", progress: Progress | None = None
    ) -> SyncReport:
        """Pull (fetching blobs as ``blobs`` says), then push."""
        from . import sync

        return sync.sync(self.replica, remote, blobs, progress)

    # -- maintenance ----------------------------------------------------------------------

    def verify(self) -> list[Problem]:
        """Re-hash every live blob and check every invariant; an empty list means healthy."""
        return self.replica.verify()

    def gc(self, min_age: float = 3600.0) -> GcReport:
        """Remove blobs no version references and temp files left by crashes.

        Only files untouched for ``min_age`` seconds are removed: an upload in flight
        touches the blob it is about to reference, so gc leaves it alone. Should gc take
        it all the same (``min_age=0``, or in the instant between its age check and the
        touch), the upload sees the bytes gone inside its own transaction and refuses
        with Conflict: a reference to missing bytes is never committed.
        """
        return self.replica.gc(min_age)

    def state_digest(self) -> str:
        """A hash of the materialised state: equal on replicas that have fully synced."""
        return self.replica.state_digest()

    # -- asked before opening -----------------------------------------------------------

    @staticmethod
    def exists(path: str | os.PathLike[str]) -> bool:
        """Whether a store lives at ``path``.

        Opening a ``Store`` creates one, so a face that must not (the CLI, where a
        mistyped ``--store`` is an error and not a new store) asks this first.
        """
        return Replica.exists(Path(path))


def _filters(
    tags: Tags,
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
    """The checked filters of a search."""
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


class _CountingReader(io.RawIOBase):
    """Passes reads through to a verified reader, counting the bytes served."""

    def __init__(
        self,
        reader: VerifiedReader,
        counters: CounterBuffer,
        content_id: str,
        user_id: str,
        day: str,
    ) -> None:
        super().__init__()
        self._reader = reader
        self._counters = counters
        self._content_id = content_id
        self._user_id = user_id
        self._day = day
        self.size = reader.size
        self.digest = reader.digest
        self.filename: str | None = None
        self.mime_type: str | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = self._reader.readinto(buffer)
        if count:
            self._counters.add_served(self._content_id, self._day, count)
            self._counters.add_bytes_out(self._user_id, "open_content", self._day, count)
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._reader.seek(offset, whence)

    def tell(self) -> int:
        return self._reader.tell()

    def close(self) -> None:
        self._reader.close()
        super().close()
