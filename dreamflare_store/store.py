"""The ``Store`` facade: every operation, as validate, authorise, meter, delegate.

Each method checks its arguments (``validate``, ``ids``), is metered in API usage
(``metering``), and hands the work to the part that owns it: ``contents`` for content
writes, ``keys``, ``sharing`` and ``reports`` for the account operations, ``sync`` for
remotes, and the core (``replica.Replica``) for bytes, ops, verify and gc. The access
rules live in ``access``; the records are built from rows in ``rows``. The parts are made
on first use (``services``), so opening a store imports only what reads need.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence
from itertools import starmap
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from . import ids, rows, validate
from .access import OWNER, READ
from .clock import SystemClock, WallClock, day_of
from .errors import DreamflareError, InvalidArgument, NotFound
from .metering import CountingReader, Meter, metered
from .progress import Progress, Silent
from .records import Content, Page, Version
from .replica import FileLike, Replica
from .services import Services
from .thumbnails import DEFAULT_MAX_PIXELS, DEFAULT_SIZE

if TYPE_CHECKING:  # records made only by the operations that return them (see services)
    from .previews import ThumbnailImage
    from .records.accounts import (
        Analytics,
        ApiKey,
        ApiUsage,
        Collaboration,
        ContentUrls,
        Identity,
        NewApiKey,
        StorageUsage,
    )
    from .records.outcomes import (
        BackupReport,
        GcReport,
        Problem,
        SyncReport,
        UploadResult,
        VerifyReport,
    )
    from .records.search import Facets, Generation

Tags = str | list[str] | tuple[str, ...] | None


class Store:
    """A dreamflare store: a folder with a SQLite catalog and content-addressed blobs.

    Safe to share between threads, and to open from many processes at once.

    Re-uploading bytes already stored writes nothing; the stored file is first compared,
    without reading it, with what was recorded when it was last known good (its size,
    inode and mtime), and replaced by the bytes being uploaded if it changed.
    ``rehash_on_dedup=True`` re-hashes the stored file instead, which also catches damage
    that kept its size and mtime, at the cost of half the re-upload speed: off by default.

    Opening raises CorruptStore for a damaged catalog (see ``verify`` and ``restore``).

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
        warm_thumbnails: bool = False,
        thumbnail_max_pixels: int = DEFAULT_MAX_PIXELS,
        rehash_on_dedup: bool = False,
    ) -> None:
        self.path = Path(path)
        quota = validate.quota(quota_bytes)  # checked before anything is made
        if not isinstance(rehash_on_dedup, bool):
            raise InvalidArgument("rehash_on_dedup must be True or False")
        self._randbits = randbits or ids.randbits
        self.replica = Replica(
            self.path, clock or SystemClock(), self._randbits, quota, rehash_on_dedup
        )
        self.meter = Meter(self.replica.counters, self.replica.wall)
        self._parts = Services(self.replica, self.meter, extract_metadata, thumbnail_max_pixels)
        self._access, self._reading = self._parts.access, self._parts.reading
        self._reindex_after_upgrade()
        # Make each new upload's 256 px thumbnail in the background, so a gallery's first
        # look is instant (off by default: it spends CPU on pictures no one may look at).
        self.warm_thumbnails = warm_thumbnails

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
        self._parts.close()
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
        path: str | None = None,
    ) -> Content:
        """Store a file's bytes and metadata; with ``content_id``, add a new version of it.

        ``file`` is a path, ``bytes``, or a binary file object. The bytes are stored once
        however many contents or users upload them. The MIME type and, for images, the
        width and height are read from the bytes (when they tell nothing: from a
        ``content_type`` attribute of the file object, then from the name's extension).
        ``path`` says where the file sits in a folder (``renders/a/cat.png``): downloads
        of many contents lay them out by it, and ``upload_batch`` finds them by it.
        """
        user_id = validate.user_id(user_id)
        description = validate.description(description)
        tag_list = validate.tags(tags)
        name = validate.filename(filename) if filename is not None else None
        where = validate.path(path) if path is not None else None
        if content_id is not None:
            ids.check_id("content", content_id)
        content, _ = self._parts.contents.upload(
            file, user_id, description, tag_list, content_id, name, where
        )
        self._warm([content])
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
        them), by ``jobs`` threads a group at a time so their flushes are shared (bytes
        kept as rows by this thread); then every content is created in one transaction.
        Each file counts as one upload in API usage. The result has, in the order of
        ``files``, each one's ``Content``, or the error that kept it out (the others
        still go in).
        """
        user_id = validate.user_id(user_id)
        description = validate.description(description)
        tag_list = validate.tags(tags)
        done = self._parts.contents.upload_many(files, user_id, description, tag_list, jobs)
        results = [outcome for outcome, _ in done]
        self._warm(results)
        return results

    def upload_batch(
        self,
        files: Sequence[FileLike],
        user_id: str,
        description: str | None = None,
        tags: Tags = None,
        *,
        jobs: int = 8,
        progress: Progress | None = None,
        paths: Sequence[str | None] | None = None,
        new: bool = False,
        records: bool = True,
    ) -> list[UploadResult]:
        """Upload many files and say, per file, what became of it.

        Small files take the batch path of ``upload_many`` a chunk at a time; large files
        are uploaded one by one on ``jobs`` threads (hashing, reading and fsync release
        the GIL, so one file's flush overlaps the next one's hashing). Each result, in the
        order of ``files``, has the content or the error, and whether the bytes were new
        to the store. ``progress`` hears of each file (and its bytes) as it is done.

        ``paths`` (one per file, or None for a file without one) makes a folder upload
        repeatable, as ``rsync`` or ``restic backup`` are: a file whose path names a live
        content of the user with the same bytes is ``"unchanged"`` (a file unchanged
        since its last upload, by size, mtime and inode, is not even read), with other
        bytes it is ``"versioned"`` (a new version of that content), else ``"created"``.
        ``new=True`` makes every file a new content, whatever its path. ``records=False``
        leaves the content of unchanged results None (a re-run then builds nothing for them).
        """
        user_id = validate.user_id(user_id)
        description = validate.description(description)
        tag_list = validate.tags(tags)
        if paths is not None and len(paths) != len(files):
            raise InvalidArgument("give one path (or None) per file")
        results = self._parts.contents.upload_batch(
            files, user_id, description, tag_list, jobs, progress or Silent(), paths, new, records
        )
        self._warm([result.content for result in results])
        return results

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
        self._parts.contents.delete(content_id, user_id)

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
            return self._parts.finding.tagged(user_id, tag_list, limit, offset)
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
        return self._parts.contents.update(content_id, user_id, description, tag_list)

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
        return self._parts.reports.storage_usage(validate.user_id(user_id))

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
        return self._parts.reports.api_usage(validate.user_id(user_id))

    @metered("get_analytics")
    def get_analytics(self, user_id: str, content_id: str | None = None) -> Analytics:
        """Views, downloads, bytes served and viewers: of one content (owner only), or of
        all the user's contents with the most viewed ones."""
        user_id = validate.user_id(user_id)
        if content_id is not None:
            ids.check_id("content", content_id)
            self._access.content(content_id, user_id, OWNER)
        return self._parts.reports.analytics(user_id, content_id)

    # -- 8, 9. API keys -------------------------------------------------------------------

    @metered("generate_api_key")
    def generate_api_key(self, user_id: str, description: str | None = None) -> NewApiKey:
        """A new API key for the user. Its secret is in the result and nowhere else, ever."""
        return self._parts.keys.generate(
            validate.user_id(user_id), validate.description(description)
        )

    @metered("revoke_api_key")
    def revoke_api_key(self, key_id: str, user_id: str) -> None:
        """Revoke one of the user's keys. Another user's key, or a revoked one, is not found."""
        ids.check_id("key", key_id)
        self._parts.keys.revoke(key_id, validate.user_id(user_id))

    def list_api_keys(self, user_id: str) -> list[ApiKey]:
        """The user's keys, revoked ones included, never their secrets."""
        return self._parts.keys.list(validate.user_id(user_id))

    def authenticate(self, api_key: str) -> str:
        """The user who owns a valid, unrevoked key; Unauthenticated otherwise."""
        return self._parts.keys.authenticate(api_key)

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
        collaborator_id = validate.user_id(collaborator_id, "collaboratorId")
        permissions = validate.permissions(permissions)
        strip = bool(validate.flag(strip_metadata, "strip_metadata"))
        return self._parts.sharing.create(user_id, content_id, collaborator_id, permissions, strip)

    @metered("list_collaborations")
    def list_collaborations(self, user_id: str) -> list[Collaboration]:
        """Collaborations on contents the user owns, and those shared with the user."""
        return self._parts.sharing.list(validate.user_id(user_id))

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
        return self._parts.sharing.update(collaboration_id, user_id, checked, strip)

    @metered("delete_collaboration")
    def delete_collaboration(self, collaboration_id: str, user_id: str) -> None:
        """End a collaboration: its owner may, and so may the collaborator (leaving)."""
        ids.check_id("collaboration", collaboration_id)
        self._parts.sharing.delete(collaboration_id, validate.user_id(user_id))

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
        reader, source = self._reading.open(content_id, user_id, version, strip_metadata)
        day = self._today()
        user_id = validate.user_id(user_id)
        self.replica.counters.count_read(content_id, user_id, day, False, 0)
        counting = CountingReader(reader, self.replica.counters, content_id, user_id, day)
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
        data = self._reading.read(content_id, user_id, version, strip_metadata)
        day = day_of(self.replica.now_ms())
        self.replica.counters.count_read(content_id, user_id, day, False, len(data))
        self.meter.note(bytes_out=len(data))
        return data

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
        from .catalog.search import parse  # the query language, imported by searches only
        from .finding import filters_of

        parsed = parse(validate.query(query))
        filters = filters_of(
            tags, model, lora, sampler, seed, generator, mime_type, favorite,
            created_after, created_before,
        )  # fmt: skip
        limit = validate.integer(limit, "limit", 1, validate.MAX_LIMIT)
        offset = validate.integer(offset, "offset", 0, validate.MAX_OFFSET)
        return self._parts.finding.search(user_id, parsed, filters, limit, offset)

    @metered("facets")
    def facets(
        self, user_id: str, query: str | None = None, *, tags: Tags = None, limit: int = 50
    ) -> Facets:
        """The models, LoRAs, samplers, generators and tags of the contents the user can
        see (those matching ``query`` and ``tags`` when given), each with its count, most
        used first, at most ``limit`` of each."""
        from .catalog.search import Filters, parse

        user_id = validate.user_id(user_id)
        parsed = parse(validate.query(query))
        filters = Filters(tags=validate.tags(tags) or ())
        limit = validate.integer(limit, "limit", 1, validate.MAX_LIMIT)
        return self._parts.finding.facets(user_id, parsed, filters, limit)

    @metered("set_favorite")
    def set_favorite(self, content_id: str, user_id: str, favorite: bool = True) -> None:
        """Mark a content the user can see as one of their favorites (or unmark it): the
        user's own mark, which syncs; search with ``favorite=True`` finds them."""
        ids.check_id("content", content_id)
        user_id = validate.user_id(user_id)
        mark = validate.flag(favorite, "favorite")
        if mark is None:
            raise InvalidArgument("favorite must be true or false")
        self._parts.finding.set_favorite(content_id, user_id, mark)

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
        return self._parts.finding.generation(
            content_id, user_id, number, self._reading.fetch_remote_blob
        )

    def reindex(self, progress: Callable[[int], None] | None = None) -> int:
        """Read the generation metadata of the versions that have none yet (contents
        uploaded before this release, or with extraction off), where their bytes are
        here; each record found is recorded by an op that makes no new version, and syncs.
        Returns how many were recorded. ``progress`` hears how many versions were read."""
        return self._parts.finding.reindex(progress)

    def _reindex_after_upgrade(self) -> None:
        """Index once the contents a store held when it was upgraded to this release."""
        catalog = self.replica.catalog
        if catalog.db.meta("reindex_pending") is None:
            return
        self._parts.finding.reindex()
        with catalog.atomic():
            catalog.db.conn.execute("DELETE FROM meta WHERE key = 'reindex_pending'")

    # -- thumbnails and signed URLs (the gallery) ------------------------------------------

    @metered("thumbnail")
    def thumbnail(
        self, content_id: str, user_id: str, size: int = DEFAULT_SIZE, version: int | None = None
    ) -> bytes:
        """A WebP thumbnail of the content (or of one of its versions), its longest side
        at most ``size`` (32..1024) pixels; the generic icon of its type when it has no
        picture (audio, a damaged file, one over the pixel cap).

        Made once per (bytes, size) and kept beside the blobs (counted in no one's
        storage, never synced, removed by gc with its source). Anyone who may get the
        content may have it. It is an API call, neither a view nor a download: a grid of
        fifty thumbnails is not fifty views.
        """
        return self._thumbnail(content_id, user_id, size, version).data

    @metered("thumbnail")
    def open_thumbnail(
        self, content_id: str, user_id: str, size: int = DEFAULT_SIZE, version: int | None = None
    ) -> ThumbnailImage:
        """What ``thumbnail`` gives, with the ETag and cacheability a server answers with."""
        return self._thumbnail(content_id, user_id, size, version)

    def _thumbnail(
        self, content_id: str, user_id: str, size: int, version: int | None
    ) -> ThumbnailImage:
        size = validate.integer(size, "size", 32, 1024)
        # Thumbnails hold pixels only, never the metadata a collaborator may not see.
        digest, source, _ = self._reading.source(content_id, user_id, version)
        return self._parts.previews.get(
            digest, source["mime"], size, lambda: self._reading.blob(digest)
        )

    def warm_thumbnails_now(self, size: int = DEFAULT_SIZE) -> int:
        """Make the ``size`` thumbnail of every live blob that has none yet; returns how
        many blobs were looked at. For ``dreamflare thumbnails``, before a gallery opens."""
        size = validate.integer(size, "size", 32, 1024)
        with self.replica.catalog.snapshot():
            blobs = self.replica.catalog.reads.live_blob_types()
        for digest, mime in blobs:
            self._parts.previews.get(
                digest, mime, size, functools.partial(self._reading.blob, digest)
            )
        return len(blobs)

    def wait_for_thumbnails(self) -> None:
        """Wait until the thumbnails being warmed after uploads are made."""
        self._parts.previews.wait()

    def _warm(self, contents: Sequence[object]) -> None:
        if not self.warm_thumbnails:
            return
        for content in contents:
            if isinstance(content, Content):
                opener = functools.partial(self._reading.blob, content.hash)
                self._parts.previews.warm(content.hash, content.mime_type, opener)

    def identify(self, api_key: str) -> Identity:
        """The user and key id of a valid, unrevoked API key; Unauthenticated otherwise."""
        return self._parts.keys.identify(api_key)

    def whoami(self, api_key: str) -> Identity:
        """The user and key id of a valid, unrevoked API key (Unauthenticated otherwise),
        counted in that user's API usage."""
        identity = self._parts.keys.identify(api_key)
        self.meter.charge("whoami", identity.user_id, False)
        return identity

    @metered("create_urls")
    def create_urls(
        self,
        user_id: str,
        content_ids: Sequence[str] | str,
        expires_in: int = validate.DEFAULT_LIFETIME,
        key_id: str | None = None,
    ) -> list[ContentUrls]:
        """Signed URLs of the thumbnails and bytes of contents the user may get, for a
        browser page whose ``<img>`` tags cannot send a key (see ``signing``).

        ``key_id`` is the user's key the URLs answer to: revoking it ends them. They
        live ``expires_in`` seconds (at most a day). Ids the user may not get are NotFound.
        """
        user_id = validate.user_id(user_id)
        if isinstance(content_ids, str):
            content_ids = [part.strip() for part in content_ids.split(",") if part.strip()]
        if not content_ids or len(content_ids) > validate.MAX_LIMIT:
            raise InvalidArgument(f"contentIds must name 1 to {validate.MAX_LIMIT} contents")
        for content_id in content_ids:
            ids.check_id("content", content_id)
        lifetime = validate.integer(expires_in, "expiresIn", 1, validate.MAX_LIFETIME)
        if key_id is None:
            raise InvalidArgument("keyId is required: signed URLs answer to the key that made them")
        ids.check_id("key", key_id)
        with self.replica.catalog.snapshot():
            self._access.key(key_id, user_id)
            for content_id in content_ids:
                self._access.content(content_id, user_id, READ)
        expires = self.replica.now_ms() // 1000 + lifetime
        return self._parts.signer.urls(content_ids, user_id, key_id, expires)

    def check_signed_url(
        self, path: str, user_id: str, key_id: str, expires: str, signature: str
    ) -> str:
        """The user a signed URL for ``path`` acts for; Unauthenticated if it is forged,
        expired, or its key has been revoked."""
        now = self.replica.now_ms() / 1000
        return self._parts.signer.check(path, user_id, key_id, expires, signature, now)

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

    def verify(self, repair: bool = False, full: bool = False) -> list[Problem]:
        """Check the catalog file, re-hash every live blob and check every invariant;
        return the problems found (an empty list means healthy).

        The catalog is checked by SQLite's ``quick_check``, or with ``full`` by its slower
        ``integrity_check``. A blob found corrupt is moved to the store's ``bad/`` folder
        (reads of it keep failing until a good copy comes back). With ``repair``, a good
        copy of every missing or corrupt blob is fetched from the configured remotes
        (checked against its hash), and only what could not be repaired is returned.
        """
        return list(self.verify_report(repair, full).problems)

    def verify_report(self, repair: bool = False, full: bool = False) -> VerifyReport:
        """``verify()``'s problems, with what it checked: blobs re-hashed and their bytes,
        content rows, versions and ops read, and blobs kept only on a remote (pulled
        lazily: present nowhere here, so not hashed). ``report.ok`` means healthy."""
        if not isinstance(repair, bool) or not isinstance(full, bool):
            raise InvalidArgument("repair and full must be True or False")
        report = self.replica.verify_report(full)
        if not repair or report.ok:
            return report
        from . import sync

        problems = tuple(sync.repair(self.replica, list(report.problems)))
        return dataclasses.replace(report, problems=problems)

    def gc(self, min_age: float = 3600.0, dry_run: bool = False, compact: bool = False) -> GcReport:
        """Remove blobs no version references and temp files left by crashes. Works on a
        full disk too: should the catalog have no room to commit, the store gives back
        the small reserve it keeps for this (and takes it again once there is room).

        Only files untouched for ``min_age`` seconds are removed: an upload in flight
        touches the blob it is about to reference, so gc leaves it alone. Should gc take
        it all the same (``min_age=0``, or in the instant between its age check and the
        touch), the upload sees the bytes gone inside its own transaction and refuses
        with Conflict: a reference to missing bytes is never committed. The report also
        counts the unreferenced blobs kept as too young; ``dry_run`` removes nothing and
        says what would go.

        Small blobs are rows of the catalog: removing them frees pages that later writes
        reuse, but the file keeps its size. ``compact=True`` then rewrites the catalog
        without them (SQLite's VACUUM: it needs room for a copy of the catalog, and other
        writers wait meanwhile) and reports the bytes given back to the disk.
        """
        return self.replica.gc(min_age, dry_run, compact is True)

    def state_digest(self) -> str:
        """A hash of the materialised state: equal on replicas that have fully synced."""
        return self.replica.state_digest()

    # -- backup and restore -------------------------------------------------------------

    def backup(self, dest: str | os.PathLike[str]) -> BackupReport:
        """Copy this store, consistently while it is in use, into the new folder ``dest``:
        the catalog by SQLite's online backup, then every blob it references, checked
        against its hash; the copy is verified. The copy is a store (the same replica):
        restore it with ``Store.restore``. Its problems are in the report."""
        from . import backup

        return backup.backup(self.replica, Path(dest), self._randbits)

    @staticmethod
    def restore(source: str | os.PathLike[str], dest: str | os.PathLike[str]) -> BackupReport:
        """Copy the backup at ``source`` into the new folder ``dest`` (checked as
        ``backup`` checks), and return what was copied; then open ``dest`` as the store.
        Keep using only one of the original and the restored store: they are one replica."""
        if not Replica.exists(Path(source)):
            raise NotFound(f"no store at {source}", path=str(source))
        with Store(source) as backup:
            return backup.backup(dest)

    # -- everyday workflows: what verify checked, remotes and quotas as lists -------------

    def remotes(self) -> dict[str, str]:
        """The saved remotes: name -> URL (their options, which may hold secrets, stay in)."""
        with self.replica.catalog.snapshot():
            saved = self.replica.catalog.local.remotes()
        return {name: url for name, (url, _) in saved.items()}

    def remove_remote(self, name: str) -> None:
        """Forget a saved remote and how far this store synced with it (NotFound if none).
        Nothing on the remote itself changes."""
        with self.replica.catalog.atomic():
            if not self.replica.catalog.local.forget_remote(name):
                raise NotFound(f"no remote named {name!r}", remote=name)

    def quotas(self) -> dict[str, int]:
        """The quotas set per user with ``set_quota``: user -> bytes (others get the
        store's default, ``Store(path, quota_bytes=...)``)."""
        with self.replica.catalog.snapshot():
            return self.replica.catalog.local.quotas()

    def check_room(self, nbytes: int) -> None:
        """Refuse (StorageFull) before anything is written when the store's disk has no
        room for ``nbytes`` more bytes (a margin kept): what a server does with an
        upload's declared length, before it reads the body."""
        self.replica.blobs.check_room(validate.integer(nbytes, "nbytes", 0, 2**62))

    # -- asked before opening -----------------------------------------------------------

    @staticmethod
    def exists(path: str | os.PathLike[str]) -> bool:
        """Whether a store lives at ``path``.

        Opening a ``Store`` creates one, so a face that must not (the CLI, where a
        mistyped ``--store`` is an error and not a new store) asks this first.
        """
        return Replica.exists(Path(path))
