"""The ``Store`` facade: every operation, its argument checks, and its access rule.

Each operation is a short method: check the arguments (``validate``), check access
(``_authorize``, the one place the access rules live), then call the part that owns the
step: the blob store for bytes, the catalog for rows, the op log for changes.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import secrets
import stat
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import starmap
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

import blake3
import msgpack

from . import ids, media, oplog, validate
from .accounts import AccountsMixin
from .blobs import SMALL_FILE, BlobStore, StoredBlob, VerifiedReader, read_small, stage_many
from .catalog import CONTENT_COLUMNS, Catalog, Row, tags_from_sql
from .clock import HybridClock, SystemClock, WallClock, day_of, hlc_wall_ms
from .counters import CounterBuffer
from .errors import (
    BlobUnavailable,
    Conflict,
    DreamflareError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
)
from .metering import Call, metered
from .oplog import Op
from .records import (
    Content,
    GcReport,
    Page,
    Problem,
    StorageUsage,
    SyncReport,
    UploadResult,
    Version,
    new_content,
)

if TYPE_CHECKING:
    from .sync import Progress

# Small files per transaction of upload_batch: each chunk shares its flushes and commits
# at once, and a progress bar moves once per chunk.
BATCH_CHUNK = 500

FileLike = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]


class Store(AccountsMixin):
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
        self.default_quota = validate.quota(quota_bytes)  # checked before anything is made
        if self.path.exists() and not self.path.is_dir():
            raise InvalidArgument(f"store path {self.path} exists and is not a folder")
        self.path.mkdir(parents=True, exist_ok=True)
        self.wall = clock or SystemClock()
        self._randbits = randbits or ids.randbits
        self.blobs = BlobStore(self.path)
        self.catalog = Catalog(self.path / "catalog.db")
        self.replica_id = self._replica_id()
        self.clock = HybridClock(self.replica_id, self.wall, self.catalog.last_hlc())
        self.counters = CounterBuffer(self.catalog, self.replica_id, time.monotonic)
        self._local = threading.local()
        self._closed = False
        # A store dropped without close(), or still open when the interpreter exits, still
        # writes its buffered counters: a process that ends normally loses no count.
        self._finalizer = weakref.finalize(
            self, _flush_and_close, self.counters, self.catalog, os.getpid()
        )

    def _replica_id(self) -> str:
        with self.catalog.atomic():
            replica = self.catalog.meta("replica_id")
            if replica is None:
                replica = secrets.token_hex(8)
                self.catalog.set_meta("replica_id", replica)
        return replica

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def close(self) -> None:
        """Flush buffered counters and close the catalog. Idempotent."""
        if self._closed:
            return
        self._finalizer.detach()
        try:
            self.counters.stop()
            self.counters.flush()
        finally:
            self._closed = True
            self.catalog.close()

    def flush(self) -> None:
        """Write buffered usage and analytics counters now."""
        self.counters.flush()

    # -- internal helpers ----------------------------------------------------------------

    def _now_ms(self) -> int:
        return self.wall.time_ms()

    def _new_id(self, kind: str) -> str:
        return ids.new_id(kind, self._now_ms(), self._randbits)

    def _record(self, kind: str, entity: str, data: dict[str, Any]) -> Op:
        """Make a local op and fold it in (inside the caller's transaction)."""
        last = self.catalog.last_hlc()
        if last is not None:
            self.clock.observe(last)  # other processes writing to this store share the log
        op = Op(
            op_id=self._new_id("op"),
            hlc=self.clock.now(),
            replica=self.replica_id,
            rseq=self.catalog.next_rseq(self.replica_id),
            kind=kind,
            entity=entity,
            data=data,
        )
        self.catalog.apply(op)
        return op

    def _count_call(self, operation: str, user_id: object, call: Call, error: bool) -> None:
        try:
            user = validate.user_id(user_id)
        except InvalidArgument:
            return  # no valid user to charge it to: the call changes nothing at all
        if self._closed:
            return
        self.counters.count_call(
            user, operation, day_of(self._now_ms()), error, call.bytes_in, call.bytes_out
        )

    def _note(self, bytes_in: int = 0, bytes_out: int = 0) -> None:
        call: Call | None = getattr(self._local, "call", None)
        if call is not None:
            call.bytes_in += bytes_in
            call.bytes_out += bytes_out

    def _authorize(self, content_id: str, user_id: str, need: str) -> Row:
        """The access rule, in one place. ``need`` is "read", "write" or "owner".

        Content a user may not see is NotFound (no existence leak); content they see but
        may not change is PermissionDenied.
        """
        row = self.catalog.content_row(content_id)
        if row is None or row["deleted"]:
            raise NotFound(f"content {content_id} not found", content_id=content_id)
        if row["owner"] == user_id:
            return row
        granted = self.catalog.permission_of(content_id, user_id)
        if granted is None:
            raise NotFound(f"content {content_id} not found", content_id=content_id)
        if need == "read" or (need == "write" and granted == "write"):
            return row
        raise PermissionDenied(
            f"user {user_id!r} may not {'change' if need == 'write' else 'manage'} "
            f"content {content_id}",
            content_id=content_id,
        )

    def _content(self, row: Row) -> Content:
        # The one builder list pages use too, so a content reads the same either way.
        return _content_of(*[row[column] for column in CONTENT_COLUMNS])

    # -- 1. upload ------------------------------------------------------------------------

    @metered("upload")
    def upload(
        self,
        file: FileLike,
        user_id: str,
        description: str | None = None,
        tags: str | list[str] | tuple[str, ...] | None = None,
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
        content, _ = self._upload(file, user_id, description, tag_list, content_id, name)
        return content

    def _upload(
        self,
        file: FileLike,
        user_id: str,
        description: str | None,
        tag_list: tuple[str, ...] | None,
        content_id: str | None,
        name: str | None,
    ) -> tuple[Content, bool]:
        """``upload`` after its argument checks; also says whether the bytes were new."""
        owner = user_id
        if content_id is not None:
            ids.check_id("content", content_id)
            owner = self._authorize(content_id, user_id, "write")["owner"]
        stored = self._store_bytes(file, owner)
        self._note(bytes_in=stored.size)
        fields, changes = _file_fields(stored, file, name, description, tag_list, content_id)
        with self.catalog.atomic():
            self._check_quota(owner, stored.digest, stored.size)
            self._check_still_stored(stored)
            if content_id is None:
                content_id = self._new_id("content")
                data = {"owner": owner, "author": user_id, "fields": fields}
                kind = oplog.CONTENT_CREATE
            else:
                self._authorize(content_id, user_id, "write")
                data = {"author": user_id, "fields": fields}
                kind = oplog.CONTENT_CHANGE
            data["version_id"] = self._new_id("version")
            data["changes"] = changes
            self._record(kind, content_id, data)
            row = self.catalog.content_row(content_id)
        assert row is not None
        return self._content(row), stored.created

    def upload_batch(
        self,
        files: Sequence[FileLike],
        user_id: str,
        description: str | None = None,
        tags: str | list[str] | tuple[str, ...] | None = None,
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
        bar = progress or _Silent()
        results: list[UploadResult | None] = [None] * len(files)
        small = [i for i, file in enumerate(files) if _small_loader(file) is not None]
        for start in range(0, len(small), BATCH_CHUNK):
            chunk = small[start : start + BATCH_CHUNK]
            batch = [files[i] for i in chunk]
            done = self._upload_many(batch, user_id, description, tag_list, jobs)
            nbytes = 0
            for index, (outcome, new) in zip(chunk, done, strict=True):
                results[index] = _result(files[index], index, outcome, new)
                nbytes += outcome.size if isinstance(outcome, Content) else 0
            bar.advance(len(chunk), nbytes)
        rest = [i for i, result in enumerate(results) if result is None]
        day = day_of(self._now_ms())

        def one(index: int) -> UploadResult:
            file = files[index]
            try:
                content, new = self._upload(file, user_id, description, tag_list, None, None)
            except DreamflareError as exc:
                outcome: Content | DreamflareError = exc
                new = False
            except OSError as exc:
                outcome, new = _as_error(exc, file), False
            else:
                outcome = content
            size = outcome.size if isinstance(outcome, Content) else 0
            failed = not isinstance(outcome, Content)
            self.counters.count_call(user_id, "upload", day, failed, size, 0)
            bar.advance(1, size)
            return _result(file, index, outcome, new)

        with ThreadPoolExecutor(max(1, jobs), thread_name_prefix="dreamflare-upload") as pool:
            for index, result in zip(rest, pool.map(one, rest), strict=True):
                results[index] = result
        return [result for result in results if result is not None]

    def upload_many(
        self,
        files: Sequence[FileLike],
        user_id: str,
        description: str | None = None,
        tags: str | list[str] | tuple[str, ...] | None = None,
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
        done = self._upload_many(files, user_id, description, tags, jobs)
        return [outcome for outcome, _ in done]

    def _upload_many(
        self,
        files: Sequence[FileLike],
        user_id: str,
        description: str | None,
        tags: str | list[str] | tuple[str, ...] | None,
        jobs: int,
    ) -> list[tuple[Content | DreamflareError, bool]]:
        """``upload_many``, saying of each file also whether its bytes were new to the store
        (the CLI's summary counts new bytes and deduplicated ones)."""
        user_id = validate.user_id(user_id)
        description = validate.description(description)
        tag_list = validate.tags(tags)
        written, settle = self._store_many(files, user_id, jobs)
        try:
            # What each content will hold, made while the last bytes are still being
            # flushed (and before the write lock is taken).
            prepared = {
                index: self._content_data(blob, files[index], user_id, description, tag_list)
                for index, blob in enumerate(written)
                if isinstance(blob, StoredBlob)
            }
            with self.catalog.atomic():
                final = settle()  # every blob durable, its name too, before the commit
                outcomes: list[StoredBlob | DreamflareError | Content] = list(final)
                rows = self._create_many(user_id, outcomes, prepared)
        finally:
            with contextlib.suppress(Exception):
                settle()  # a no-op when done; else it ends the batch's threads
        day = day_of(self._now_ms())
        results: list[tuple[Content | DreamflareError, bool]] = []
        for index, outcome in enumerate(outcomes):
            row = rows.get(index)
            blob = final[index]
            if row is not None:
                outcome = self._content(row)
            assert not isinstance(outcome, StoredBlob)
            done = isinstance(outcome, Content)
            size = outcome.size if isinstance(outcome, Content) else 0
            self.counters.count_call(user_id, "upload", day, not done, size, 0)
            results.append((outcome, done and isinstance(blob, StoredBlob) and blob.created))
        return results

    def _content_data(
        self,
        blob: StoredBlob,
        file: FileLike,
        user_id: str,
        description: str | None,
        tag_list: tuple[str, ...] | None,
    ) -> tuple[str, dict[str, Any]]:
        """A new content's id and the data of the op that creates it."""
        fields, changes = _file_fields(blob, file, None, description, tag_list)
        data = {"owner": user_id, "author": user_id, "fields": fields}
        data |= {"version_id": self._new_id("version"), "changes": changes}
        return self._new_id("content"), data

    def _create_many(
        self,
        user_id: str,
        outcomes: list[StoredBlob | DreamflareError | Content],
        prepared: dict[int, tuple[str, dict[str, Any]]],
    ) -> dict[int, Row]:
        """Inside the batch's transaction: the prepared content of each stored blob the
        quota admits and gc left in place (a refusal takes the blob's place in
        ``outcomes``); their rows by index."""
        admit = self._quota_gate(user_id)
        last = self.catalog.last_hlc()
        if last is not None:
            self.clock.observe(last)
        rseq = self.catalog.next_rseq(self.replica_id)
        made: dict[int, Op] = {}
        for index, blob in enumerate(outcomes):
            if not isinstance(blob, StoredBlob):
                continue
            try:
                admit(blob.digest, blob.size)
                self._check_still_stored(blob)
            except DreamflareError as exc:
                outcomes[index] = exc
                continue
            content_id, data = prepared[index]
            op_id, hlc = self._new_id("op"), self.clock.now()
            made[index] = Op(op_id, hlc, self.replica_id, rseq, oplog.CONTENT_CREATE,
                             content_id, data)  # fmt: skip
            rseq += 1
        first = self.catalog.apply_new_contents(list(made.values()))
        found = self.catalog.content_rows_between(first, first + len(made) - 1)
        return dict(zip(made, found, strict=True))

    def _store_many(
        self, files: Sequence[FileLike], owner: str, jobs: int
    ) -> tuple[
        list[StoredBlob | DreamflareError], Callable[[], list[StoredBlob | DreamflareError]]
    ]:
        """The bytes of each file written (small ones by groups), or why they could not be,
        and what waits until all of them are durable (the last group's flushes may still
        be running) and gives their final outcomes. Call it whatever happens."""
        out: list[StoredBlob | DreamflareError | None] = [None] * len(files)
        loaders: list[Callable[[], bytes]] = []
        small: list[int] = []
        for index, file in enumerate(files):
            load = _small_loader(file)
            if load is not None:
                small.append(index)
                loaders.append(load)
        pending = stage_many(self.blobs, loaders, media.SNIFF_BYTES, jobs)

        def outcomes(blobs: Sequence[StoredBlob | Exception]) -> list[StoredBlob | DreamflareError]:
            done = list(out)
            for index, blob in zip(small, blobs, strict=True):
                done[index] = (
                    blob if isinstance(blob, StoredBlob) else _as_error(blob, files[index])
                )
            return [blob for blob in done if blob is not None]

        try:
            chosen = set(small)
            rest = [i for i in range(len(files)) if i not in chosen]
            with ThreadPoolExecutor(max(1, jobs), thread_name_prefix="dreamflare-upload") as pool:
                done = pool.map(lambda i: _attempt(self._store_bytes, files[i], owner), rest)
                for index, blob in zip(rest, done, strict=True):
                    out[index] = (
                        blob if isinstance(blob, StoredBlob) else _as_error(blob, files[index])
                    )
            written = outcomes(pending.written)
        except BaseException:
            with contextlib.suppress(Exception):
                pending.finish()
            raise
        return written, lambda: outcomes(pending.finish())

    def _store_bytes(self, file: FileLike, owner: str) -> StoredBlob:
        """Write the bytes durably (before any row references them) and return their name."""
        head = media.SNIFF_BYTES

        def admit(digest: str, size: int) -> None:
            self._check_quota(owner, digest, size)

        if isinstance(file, bytes | bytearray | memoryview):
            return self.blobs.write_bytes(bytes(file), head, admit)
        if isinstance(file, str | os.PathLike):
            path = Path(file)
            if not path.is_file():
                if path.exists():
                    raise InvalidArgument(f"not a regular file: {path}")
                raise NotFound(f"no such file: {path}", path=str(path))
            return self.blobs.write_file(path, head, admit, self.catalog.size_referenced)
        if hasattr(file, "read"):
            if isinstance(file, io.TextIOBase):
                raise InvalidArgument("file must be a binary file object (opened with 'rb')")
            return self.blobs.write_stream(file, head, admit)
        raise InvalidArgument(
            f"file must be a path, bytes or a binary file object, not {type(file).__name__}"
        )

    def _check_quota(self, owner: str, digest: str, size: int) -> None:
        """Refuse ``size`` more bytes past ``owner``'s quota (bytes they hold cost nothing)."""
        self._quota_gate(owner)(digest, size)

    def _check_still_stored(self, blob: StoredBlob) -> None:
        """Inside the transaction that will reference ``blob``: its bytes are still there.

        gc removes blobs under the write lock, so none can go between this check and the
        commit; before it, a gc may have taken them (an old unreferenced blob between gc's
        age check and the upload's touch of it, or a new one under ``gc(min_age=0)``).
        """
        if not self.blobs.present(blob.digest):
            raise Conflict(
                f"the stored bytes {blob.digest} were removed by gc during this upload;"
                " upload again"
            )

    def _quota_gate(self, owner: str) -> Callable[[str, int], None]:
        """The quota check for new blobs of ``owner``, one after another (a batch, inside
        its transaction): each one admitted counts against the quota for the next."""
        quota = self.catalog.quota(owner)
        if quota is None:
            quota = self.default_quota
        used = 0 if quota is None else self.catalog.user_history_bytes(owner)
        counted: set[str] = set()

        def admit(digest: str, size: int) -> None:
            nonlocal used
            if quota is None or digest in counted or self.catalog.user_has_blob(owner, digest):
                return
            if used + size > quota:
                raise _over_quota(owner, quota, used, size)
            counted.add(digest)
            used += size

        return admit

    # -- 2-5, 15. content -----------------------------------------------------------------

    @metered("get_content")
    def get_content(self, content_id: str, user_id: str) -> Content:
        """One content item, as it is now. Counts as a view in analytics."""
        ids.check_id("content", content_id)
        user_id = validate.user_id(user_id)
        row = self._authorize(content_id, user_id, "read")
        self.counters.count_read(content_id, user_id, day_of(self._now_ms()), True, 0)
        return self._content(row)

    @metered("delete_content")
    def delete_content(self, content_id: str, user_id: str) -> None:
        """Delete a content and all its versions (owner only). Final, even across replicas."""
        ids.check_id("content", content_id)
        user_id = validate.user_id(user_id)
        with self.catalog.atomic():
            self._authorize(content_id, user_id, "owner")
            self._record(oplog.CONTENT_DELETE, content_id, {"author": user_id})

    @metered("list_content")
    def list_content(self, user_id: str, limit: int = 50, offset: int = 0) -> Page[Content]:
        """A page of the user's own contents, newest first."""
        user_id = validate.user_id(user_id)
        limit = validate.integer(limit, "limit", 1, validate.MAX_LIMIT)
        offset = validate.integer(offset, "offset", 0, validate.MAX_OFFSET)
        with self.catalog.snapshot():
            total = self.catalog.count_live(user_id)
            rows = self.catalog.list_page(user_id, limit, offset) if offset < total else []
        return Page(tuple(starmap(_content_of, rows)), total, limit, offset)

    @metered("update_metadata")
    def update_metadata(
        self,
        content_id: str,
        user_id: str,
        description: str | None = None,
        tags: str | list[str] | tuple[str, ...] | None = None,
    ) -> Content:
        """Set the description and/or tags (``None`` keeps a field); appends a version."""
        ids.check_id("content", content_id)
        user_id = validate.user_id(user_id)
        description = validate.description(description)
        tag_list = validate.tags(tags)
        if description is None and tag_list is None:
            raise InvalidArgument("give a description or tags to update")
        fields: dict[str, Any] = {}
        if description is not None:
            fields["description"] = description
        if tag_list is not None:
            fields["tags"] = list(tag_list)
        with self.catalog.atomic():
            self._authorize(content_id, user_id, "write")
            data = {
                "author": user_id,
                "version_id": self._new_id("version"),
                "fields": fields,
                "changes": list(fields),
            }
            self._record(oplog.CONTENT_CHANGE, content_id, data)
            row = self.catalog.content_row(content_id)
        assert row is not None
        return self._content(row)

    @metered("get_content_versions")
    def get_content_versions(self, content_id: str, user_id: str) -> list[Version]:
        """Every version of a content, oldest first: each one's snapshot and its changes."""
        ids.check_id("content", content_id)
        user_id = validate.user_id(user_id)
        with self.catalog.snapshot():
            self._authorize(content_id, user_id, "read")
            rows = self.catalog.versions_of(content_id)
        return [self._version(row) for row in rows]

    def _version(self, row: Row) -> Version:
        return Version(
            version_id=row["version_id"],
            content_id=row["content_id"],
            version=row["number"],
            user_id=row["author"],
            created_at=_iso_of_hlc(row["hlc"]),
            hash=row["blob"],
            size=row["size"],
            filename=row["filename"],
            mime_type=row["mime"],
            description=row["description"],
            tags=_tags(row["tags"]),
            changes=tuple(row["changes"].split(",")) if row["changes"] else (),
            width=row["width"],
            height=row["height"],
        )

    @metered("get_storage_usage")
    def get_storage_usage(self, user_id: str) -> StorageUsage:
        """The user's storage: contents, versions, current bytes and bytes of all versions."""
        user_id = validate.user_id(user_id)
        with self.catalog.snapshot():
            row = self.catalog.storage_row(user_id)
            quota = self.catalog.quota(user_id)
        if quota is None:
            quota = self.default_quota
        if row is None:
            return StorageUsage(user_id, 0, 0, 0, 0, quota)
        return StorageUsage(
            user_id, row["contents"], row["versions"], row["bytes"], row["history_bytes"], quota
        )

    def set_quota(self, user_id: str, quota_bytes: int | None) -> None:
        """Limit the bytes a user's contents keep over all versions (None: the default)."""
        user_id = validate.user_id(user_id)
        quota = validate.quota(quota_bytes)
        with self.catalog.atomic():
            self.catalog.set_quota(user_id, quota)

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
        day = day_of(self._now_ms())
        user_id = validate.user_id(user_id)
        self.counters.count_read(content_id, user_id, day, False, 0)
        counting = _CountingReader(reader, self, content_id, user_id, day)
        counting.filename, counting.mime_type = source["filename"], source["mime"]
        return cast(BinaryIO, counting)  # a RawIOBase: every BinaryIO method a reader needs

    @metered("read_content")
    def read_content(self, content_id: str, user_id: str, version: int | None = None) -> bytes:
        """All the bytes of the content (or of one of its versions), verified."""
        reader, _ = self._open(content_id, user_id, version)
        with reader:
            data = reader.read()
        self.counters.count_read(content_id, user_id, day_of(self._now_ms()), False, len(data))
        self._note(bytes_out=len(data))
        return data

    def _open(
        self, content_id: str, user_id: str, version: int | None
    ) -> tuple[VerifiedReader, Row]:
        """A verified reader over the bytes, and the content or version row they belong to."""
        ids.check_id("content", content_id)
        user_id = validate.user_id(user_id)
        with self.catalog.snapshot():
            source = self._authorize(content_id, user_id, "read")
            if version is None:
                digest = source["blob"]
            else:
                number = validate.integer(version, "version", 1, 2**62)
                version_row = self.catalog.version_row(content_id, number)
                if version_row is None:
                    raise NotFound(
                        f"content {content_id} has no version {number}", content_id=content_id
                    )
                digest, source = version_row["blob"], version_row
        if not self.blobs.exists(digest):
            self._fetch_remote_blob(digest)
        return self.blobs.open(digest), source

    def _fetch_remote_blob(self, digest: str) -> None:
        """Bring a lazily pulled blob home from its remote (verified), or say it is remote-only."""
        remote = self.catalog.remote_of_blob(digest)
        if remote is None:
            return  # blobs.open reports the missing blob as an integrity error
        from . import sync

        try:
            sync.fetch_blob(self, remote, digest)
        except BlobUnavailable:
            raise
        except DreamflareError as exc:
            raise BlobUnavailable(
                f"the bytes of blob {digest} are only on remote {remote!r}, which cannot be"
                f" reached: {exc.message}",
                digest=digest,
                remote=remote,
            ) from exc

    # Operations 7-14 (usage, keys, analytics, collaborations) live in accounts.py.

    # -- sync (sync.py owns the remote side; fsspec is imported only when used) -----------

    def add_remote(self, name: str, url: str, **storage_options: Any) -> None:
        """Save a remote: an fsspec URL plus the options to open it (credentials from the
        environment are better left out: fsspec finds them itself)."""
        from . import sync

        sync.add_remote(self, name, url, storage_options)

    def push(self, remote: str, progress: Progress | None = None) -> SyncReport:
        """Send this replica's new ops (after the blobs they reference) and its counters.

        ``progress`` (see ``sync.Progress``) hears of each file and change sent.
        """
        from . import sync

        return sync.push(self, remote, progress)

    def pull(
        self, remote: str, blobs: str = "lazy", progress: Progress | None = None
    ) -> SyncReport:
        """Apply other replicas' ops from a remote; fetch blobs "eager", "lazy" or "none"."""
        from . import sync

        return sync.pull(self, remote, blobs, progress)

    def sync(
        self, remote: str, blobs: str = "lazy", progress: Progress | None = None
    ) -> SyncReport:
        """Pull (fetching blobs as ``blobs`` says), then push."""
        from . import sync

        return sync.sync(self, remote, blobs, progress)

    # -- maintenance ----------------------------------------------------------------------

    def verify(self) -> list[Problem]:
        """Re-hash every live blob and check every invariant; an empty list means healthy."""
        self.flush()
        problems: list[Problem] = []
        with self.catalog.snapshot():
            live = self.catalog.live_blobs()
            remote_only = self.catalog.remote_blob_digests()
            stored = self.catalog.stored_storage()
            recount = self.catalog.recount_storage()
            gaps = self.catalog.version_numbers_ok()
        for digest in sorted(live):
            if self.blobs.exists(digest):
                if not self.blobs.check(digest):
                    problems.append(
                        Problem("corrupt_blob", digest, f"blob {digest} does not match its hash")
                    )
            elif digest not in remote_only:
                problems.append(Problem("missing_blob", digest, f"blob {digest} is missing"))
        for user in sorted(set(stored) | set(recount)):
            if stored.get(user, (0, 0, 0, 0)) != recount.get(user, (0, 0, 0, 0)):
                problems.append(
                    Problem(
                        "counter_mismatch",
                        user,
                        f"storage counters of {user!r} are {stored.get(user)}, a recount gives"
                        f" {recount.get(user)}",
                    )
                )
        for content_id in gaps:
            problems.append(
                Problem("version_gap", content_id, f"versions of {content_id} are not 1..n")
            )
        return problems

    def gc(self, min_age: float = 3600.0) -> GcReport:
        """Remove blobs no version references and temp files left by crashes.

        Only files untouched for ``min_age`` seconds are removed: an upload in flight
        touches the blob it is about to reference, so gc leaves it alone. Should gc take
        it all the same (``min_age=0``, or in the instant between its age check and the
        touch), the upload sees the bytes gone inside its own transaction and refuses
        with Conflict: a reference to missing bytes is never committed.
        """
        cutoff = time.time() - min_age
        removed = freed = temps = 0
        with self.catalog.atomic():  # the write lock: no upload commits a reference meanwhile
            live = self.catalog.live_blobs()
            for digest, path in list(self.blobs.iter_digests()):
                if digest in live:
                    continue
                try:
                    if path.stat().st_mtime > cutoff:
                        continue
                except FileNotFoundError:
                    continue
                freed += self.blobs.remove(digest)
                removed += 1
        for temp in list(self.blobs.stale_temps(min_age)):
            temp.unlink(missing_ok=True)
            temps += 1
        return GcReport(removed, freed, temps)

    def state_digest(self) -> str:
        """A hash of the materialised state: equal on replicas that have fully synced."""
        self.flush()
        hasher = blake3.blake3()
        for row in self.catalog.digest_rows():
            hasher.update(msgpack.packb(row, use_bin_type=True))
        return hasher.hexdigest()


def _content_of(
    content_id: str,
    owner: str,
    filename: str,
    mime: str,
    size: int,
    blob: str,
    description: str | None,
    tags: str | None,
    version: int,
    created_hlc: str,
    updated_hlc: str,
    width: int | None,
    height: int | None,
) -> Content:
    """The record of a content row's ``CONTENT_COLUMNS``: every Content is built here."""
    created_at = _iso_of_hlc(created_hlc)
    updated_at = created_at if updated_hlc == created_hlc else _iso_of_hlc(updated_hlc)
    return new_content(
        content_id, owner, filename, mime, size, blob, description, _tags(tags), version,
        created_at, updated_at, width, height,
    )  # fmt: skip


# A page of 100 contents parses 100 tag lists and formats up to 200 times, so each of
# these costs a few dict lookups rather than a parse or a strftime. The caches are
# plain dicts (a hit is cheaper than an lru_cache call), emptied when they grow large.
_CACHE_SIZE = 4096
_TAGS: dict[str | None, tuple[str, ...]] = {}
_DATES: dict[int, str] = {}  # day since the epoch -> "YYYY-MM-DD"
_CLOCK = tuple(f"T{hour:02d}:{minute:02d}:" for hour in range(24) for minute in range(60))
_SECONDS = tuple(f"{second:02d}." for second in range(60))
_MILLIS = tuple(f"{ms:03d}Z" for ms in range(1000))
_DAY_MS = 86_400_000  # UTC has no leap seconds in POSIX time


def _tags(text: str | None) -> tuple[str, ...]:
    try:
        return _TAGS[text]
    except KeyError:
        if len(_TAGS) >= _CACHE_SIZE:
            _TAGS.clear()
        tags = _TAGS[text] = tags_from_sql(text)
        return tags


def _iso_of_hlc(hlc: str) -> str:
    """``iso_ms(hlc_wall_ms(hlc))``, the time of a record, from tables of its parts' text."""
    ms = hlc_wall_ms(hlc)
    day = ms // _DAY_MS
    ms -= day * _DAY_MS
    minute = ms // 60_000
    ms -= minute * 60_000
    second = ms // 1000
    try:
        date = _DATES[day]
    except KeyError:
        if len(_DATES) >= _CACHE_SIZE:
            _DATES.clear()
        date = _DATES[day] = time.strftime("%Y-%m-%d", time.gmtime(day * 86400))
    return f"{date}{_CLOCK[minute]}{_SECONDS[second]}{_MILLIS[ms - second * 1000]}"


def _over_quota(owner: str, quota: int, used: int, size: int) -> QuotaExceeded:
    return QuotaExceeded(
        f"storing {size} bytes would take {owner!r} past their quota of {quota} bytes"
        f" ({used} used)",
        user_id=owner,
        quota_bytes=quota,
    )


def _file_fields(
    stored: StoredBlob,
    file: object,
    name: str | None,
    description: str | None,
    tags: tuple[str, ...] | None,
    content_id: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The fields a version with these bytes sets (the first one of a content when
    ``content_id`` is None), and the names of what it changes."""
    new = content_id is None
    info = media.sniff(stored.head)
    fields: dict[str, Any] = {
        "mime": info.mime,
        "size": stored.size,
        "blob": stored.digest,
        "width": info.width,
        "height": info.height,
    }
    changes = ["file"]
    if new or name is not None:
        fields["filename"] = name or _default_filename(file)
        changes.append("filename")
    if description is not None:
        fields["description"] = description
        changes.append("description")
    if tags is not None and (not new or tags):
        fields["tags"] = list(tags)
        changes.append("tags")
    return fields, changes


def _small_loader(file: object) -> Callable[[], bytes] | None:
    """For bytes, or a regular file small enough to read whole, what reads them; None for
    the rest (large files, file objects, paths that are not files), which take the path
    of ``upload``, errors included."""
    if isinstance(file, bytes | bytearray | memoryview):
        return functools.partial(bytes, file)
    if not isinstance(file, str | os.PathLike):
        return None
    try:
        info = os.stat(file)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size > SMALL_FILE:
        return None
    return functools.partial(read_small, os.fsdecode(file), info.st_size)


def _attempt(action: Callable[..., StoredBlob], *args: Any) -> StoredBlob | Exception:
    try:
        return action(*args)
    except Exception as exc:  # noqa: BLE001 (returned: one file's failure is its own)
        return exc


def _as_error(exc: Exception, file: object) -> DreamflareError:
    """A file's failure as the error ``upload`` would have raised for it."""
    if isinstance(exc, DreamflareError):
        return exc
    where = str(file) if isinstance(file, str | os.PathLike) else "file"
    if isinstance(exc, FileNotFoundError):
        return NotFound(f"no such file: {where}", path=where)
    if isinstance(exc, OSError):
        return InvalidArgument(f"cannot read {where}: {exc.strerror or exc}")
    raise exc


def _result(
    file: object, index: int, outcome: Content | DreamflareError, new: bool
) -> UploadResult:
    source = os.fspath(file) if isinstance(file, str | os.PathLike) else f"#{index}"
    if isinstance(outcome, Content):
        return UploadResult(str(source), "created", outcome, new)
    return UploadResult(str(source), "failed", None, False, outcome)


class _Silent:
    """The progress of a caller who asked for none."""

    def start(self, label: str, files: int, nbytes: int) -> None:
        return None

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        return None

    def finish(self) -> None:
        return None


def _default_filename(file: object) -> str:
    if isinstance(file, str | os.PathLike):
        name = os.path.basename(os.fspath(file))
    else:
        given = getattr(file, "name", None)
        name = os.path.basename(given) if isinstance(given, str) else ""
    try:
        return validate.filename(name)
    except InvalidArgument:
        return "upload"


class _CountingReader(io.RawIOBase):
    """Passes reads through to a verified reader, counting the bytes served."""

    def __init__(
        self, reader: VerifiedReader, store: Store, content_id: str, user_id: str, day: str
    ) -> None:
        super().__init__()
        self._reader = reader
        self._store = store
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
            self._store.counters.add_served(self._content_id, self._day, count)
            self._store.counters.add_bytes_out(self._user_id, "open_content", self._day, count)
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._reader.seek(offset, whence)

    def tell(self) -> int:
        return self._reader.tell()

    def close(self) -> None:
        self._reader.close()
        super().close()


def _flush_and_close(counters: CounterBuffer, catalog: Catalog, pid: int) -> None:
    """Write a forgotten store's buffered counters (at garbage collection or at exit)."""
    if os.getpid() != pid:
        return  # a forked child's copy: these counts are its parent's to write
    with contextlib.suppress(Exception):  # at exit or in gc there is no one left to tell
        counters.stop()
        counters.flush()
    catalog.close()
