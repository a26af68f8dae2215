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
from .clock import SystemClock, WallClock, day_of
from .contents import Contents
from .counters import CounterBuffer
from .errors import BlobUnavailable, DreamflareError, InvalidArgument, NotFound
from .keys import Keys
from .metering import Meter, metered
from .progress import Progress, Silent
from .records import (
    Analytics,
    ApiKey,
    ApiUsage,
    Collaboration,
    Content,
    GcReport,
    NewApiKey,
    Page,
    Problem,
    StorageUsage,
    SyncReport,
    UploadResult,
    VerifyReport,
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
    ) -> None:
        self.path = Path(path)
        quota = validate.quota(quota_bytes)  # checked before anything is made
        self.replica = Replica(self.path, clock or SystemClock(), randbits or ids.randbits, quota)
        self.meter = Meter(self.replica.counters, self.replica.wall)
        self._access = Access(self.replica.catalog)
        self._contents = Contents(self.replica, self._access, self.meter)
        self._keys = Keys(self.replica, self._access)
        self._sharing = Sharing(self.replica, self._access)
        self._reports = Reports(self.replica)

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
        content, _ = self._contents.upload(
            file, user_id, description, tag_list, content_id, name, where
        )
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
        paths: Sequence[str | None] | None = None,
        new: bool = False,
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
        ``new=True`` makes every file a new content, whatever its path.
        """
        user_id = validate.user_id(user_id)
        description = validate.description(description)
        tag_list = validate.tags(tags)
        if paths is not None and len(paths) != len(files):
            raise InvalidArgument("give one path (or None) per file")
        return self._contents.upload_batch(
            files, user_id, description, tag_list, jobs, progress or Silent(), paths, new
        )

    # -- 2-5, 15. content -----------------------------------------------------------------

    @metered("get_content")
    def get_content(self, content_id: str, user_id: str) -> Content:
        """One content item, as it is now. Counts as a view in analytics."""
        ids.check_id("content", content_id)
        user_id = validate.user_id(user_id)
        row = self._access.content(content_id, user_id, READ)
        self.replica.counters.count_read(content_id, user_id, self._today(), True, 0)
        return rows.content(row)

    @metered("delete_content")
    def delete_content(self, content_id: str, user_id: str) -> None:
        """Delete a content and all its versions (owner only). Final, even across replicas."""
        ids.check_id("content", content_id)
        user_id = validate.user_id(user_id)
        self._contents.delete(content_id, user_id)

    @metered("list_content")
    def list_content(self, user_id: str, limit: int = 50, offset: int = 0) -> Page[Content]:
        """A page of the user's own contents, newest first."""
        user_id = validate.user_id(user_id)
        limit = validate.integer(limit, "limit", 1, validate.MAX_LIMIT)
        offset = validate.integer(offset, "offset", 0, validate.MAX_OFFSET)
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
            self._access.content(content_id, user_id, READ)
            found = self.replica.catalog.reads.versions_of(content_id)
        return [rows.version(row) for row in found]

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
        self, user_id: str, content_id: str, collaborator_id: str, permissions: str = "read"
    ) -> Collaboration:
        """Share a content the user owns with a collaborator, to ``read`` or ``write``."""
        user_id = validate.user_id(user_id)
        ids.check_id("content", content_id)
        collaborator_id = validate.user_id(collaborator_id, "collaboratorId")
        permissions = validate.permissions(permissions)
        return self._sharing.create(user_id, content_id, collaborator_id, permissions)

    @metered("list_collaborations")
    def list_collaborations(self, user_id: str) -> list[Collaboration]:
        """Collaborations on contents the user owns, and those shared with the user."""
        return self._sharing.list(validate.user_id(user_id))

    @metered("update_collaboration")
    def update_collaboration(
        self, collaboration_id: str, user_id: str, permissions: str
    ) -> Collaboration:
        """Change a collaborator's permissions (the content's owner only)."""
        ids.check_id("collaboration", collaboration_id)
        user_id = validate.user_id(user_id)
        permissions = validate.permissions(permissions)
        return self._sharing.update(collaboration_id, user_id, permissions)

    @metered("delete_collaboration")
    def delete_collaboration(self, collaboration_id: str, user_id: str) -> None:
        """End a collaboration: its owner may, and so may the collaborator (leaving)."""
        ids.check_id("collaboration", collaboration_id)
        self._sharing.delete(collaboration_id, validate.user_id(user_id))

    # -- reading bytes --------------------------------------------------------------------

    @metered("open_content")
    def open_content(self, content_id: str, user_id: str, version: int | None = None) -> BinaryIO:
        """A binary file object over the bytes of the content (or of one of its versions).

        The bytes are checked against their hash as they are read: corrupt bytes raise
        IntegrityError instead of being returned. Counts as a download. Besides ``size``
        and ``digest``, it tells the ``filename`` and ``mime_type`` of the bytes, so a
        server can answer a download with one call.
        """
        reader, source = self._open(content_id, user_id, version)
        day = self._today()
        user_id = validate.user_id(user_id)
        self.replica.counters.count_read(content_id, user_id, day, False, 0)
        counting = _CountingReader(reader, self.replica.counters, content_id, user_id, day)
        counting.filename, counting.mime_type = source["filename"], source["mime"]
        return cast(BinaryIO, counting)  # a RawIOBase: every BinaryIO method a reader needs

    @metered("read_content")
    def read_content(self, content_id: str, user_id: str, version: int | None = None) -> bytes:
        """All the bytes of the content (or of one of its versions), verified."""
        reader, _ = self._open(content_id, user_id, version)
        with reader:
            data = reader.read()
        self.replica.counters.count_read(content_id, user_id, self._today(), False, len(data))
        self.meter.note(bytes_out=len(data))
        return data

    def _open(
        self, content_id: str, user_id: str, version: int | None
    ) -> tuple[VerifiedReader, Row]:
        """A verified reader over the bytes, and the content or version row they belong to."""
        ids.check_id("content", content_id)
        user_id = validate.user_id(user_id)
        catalog = self.replica.catalog
        with catalog.snapshot():
            source = self._access.content(content_id, user_id, READ)
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

    def gc(self, min_age: float = 3600.0, dry_run: bool = False) -> GcReport:
        """Remove blobs no version references and temp files left by crashes.

        Only files untouched for ``min_age`` seconds are removed: an upload in flight
        touches the blob it is about to reference, so gc leaves it alone. Should gc take
        it all the same (``min_age=0``, or in the instant between its age check and the
        touch), the upload sees the bytes gone inside its own transaction and refuses
        with Conflict: a reference to missing bytes is never committed. The report also
        counts the unreferenced blobs kept as too young; ``dry_run`` removes nothing and
        says what would go.
        """
        return self.replica.gc(min_age, dry_run)

    def state_digest(self) -> str:
        """A hash of the materialised state: equal on replicas that have fully synced."""
        return self.replica.state_digest()

    # -- everyday workflows: what verify checked, remotes and quotas as lists -------------

    def verify_report(self) -> VerifyReport:
        """``verify()``'s problems, with what it checked: blobs re-hashed and their bytes,
        content rows, versions and ops read, and blobs kept only on a remote (pulled
        lazily: present nowhere here, so not hashed). ``report.ok`` means healthy."""
        return self.replica.verify_report()

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

    # -- asked before opening -----------------------------------------------------------

    @staticmethod
    def exists(path: str | os.PathLike[str]) -> bool:
        """Whether a store lives at ``path``.

        Opening a ``Store`` creates one, so a face that must not (the CLI, where a
        mistyped ``--store`` is an error and not a new store) asks this first.
        """
        return Replica.exists(Path(path))


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
