"""Writing contents: uploads (one, or a batch), metadata updates and deletes.

Every write keeps DESIGN.md's order: the bytes are durable before the transaction that
references them; inside it, the access rule and the quota are checked again and the op is
recorded. Arguments arrive already validated (the ``Store`` facade checks them).
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from . import media, oplog, rows, validate
from .access import OWNER, WRITE, Access
from .blobs import StoredBlob, hash_bytes, hash_file
from .catalog import CONTENT_COLUMNS, file_stat
from .errors import DreamflareError, InvalidArgument, StorageFull
from .metering import Meter
from .progress import Progress
from .records import Content
from .records.outcomes import UploadResult, unchanged_result
from .replica import FileLike, Replica, as_error, small_loader

# Small files per transaction of upload_batch: each chunk shares its flushes and commits
# at once, and a progress bar moves once per chunk.
BATCH_CHUNK = 500
# A file whose mtime is this close to the moment it was last read may have changed again
# within one tick of the file system's clock (2 s on FAT, coarser on some network file
# systems): the stat cache does not vouch for it, and it is hashed again.
RACY_NS = 2_000_000_000


def version_data(
    author: str,
    version_id: str,
    fields: dict[str, Any],
    changes: list[str],
    owner: str | None = None,
) -> dict[str, Any]:
    """The data of a content op that makes a version: the one builder of such data.

    With ``owner`` it creates the content (content.create), else it changes it.
    """
    data: dict[str, Any] = {"author": author, "fields": fields}
    if owner is not None:
        data["owner"] = owner
    data["version_id"] = version_id
    data["changes"] = changes
    return data


class Contents:
    """The content writes of one replica, under the access rules and quotas."""

    def __init__(
        self, replica: Replica, access: Access, meter: Meter, extract: bool = True
    ) -> None:
        self._replica = replica
        # Whether uploads read the generation metadata embedded in the bytes.
        self.extract = extract
        self._access = access
        self._meter = meter
        self._catalog = replica.catalog

    def upload(
        self,
        file: FileLike,
        user_id: str,
        description: str | None,
        tags: tuple[str, ...] | None,
        content_id: str | None,
        name: str | None,
        path: str | None = None,
    ) -> tuple[Content, bool]:
        """Store the bytes, then create a content (or, with ``content_id``, add a version
        of it); the content, and whether the bytes were new to the store."""
        owner = user_id
        if content_id is not None:
            owner = self._access.content(content_id, user_id, WRITE)["owner"]
        with self._catalog.coming():
            stored = self._replica.store_bytes(file, owner)
            self._meter.note(bytes_in=stored.size)
            fields, changes = _file_fields(
                stored, file, name, description, tags, content_id is None, path
            )
            if self.extract:  # off the write lock: the bytes are published, read by name
                _set_generation(fields, self._replica.generation_of(stored))
            # The transaction may share its commit with other threads' uploads (group
            # commit); it returns once that commit is durable.
            row = self._catalog.grouped(
                functools.partial(
                    self._record_upload, stored, fields, changes, owner, user_id, content_id
                )
            )
        assert row is not None
        return rows.content(row), stored.created

    def _record_upload(
        self,
        stored: StoredBlob,
        fields: dict[str, Any],
        changes: list[str],
        owner: str,
        user_id: str,
        content_id: str | None,
    ) -> Any:
        """Inside the write transaction: admit the stored bytes, make the content (or,
        with ``content_id``, its new version) by an op; the content's row."""
        self._replica.quota_gate(owner)(stored.digest, stored.size)
        self._replica.keep_blob(stored)  # a small blob's bytes: written now
        if stored.data is None:  # a file (bytes kept as a row have none to describe)
            self._replica.note_blobs([stored.digest])
        version_id = self._replica.new_id("version")
        if content_id is None:
            content_id = self._replica.new_id("content")
            data = version_data(user_id, version_id, fields, changes, owner)
            kind = oplog.CONTENT_CREATE
        else:
            self._access.content(content_id, user_id, WRITE)
            data = version_data(user_id, version_id, fields, changes)
            kind = oplog.CONTENT_CHANGE
        self._replica.record(kind, content_id, data)
        return self._catalog.reads.content_row(content_id)

    def upload_many(
        self,
        files: Sequence[FileLike],
        user_id: str,
        description: str | None,
        tags: tuple[str, ...] | None,
        jobs: int,
        paths: Sequence[str | None] | None = None,
    ) -> list[tuple[Content | DreamflareError, bool]]:
        """Create a content for each file, its bytes written by ``jobs`` threads (small
        ones by groups sharing their flushes), all in one transaction. Per file, in
        order: its content or the error that kept it out, and whether its bytes were new.
        Each file counts as one upload in API usage."""
        # Small files' generation metadata is read from their bytes while in memory.
        found: dict[int, dict[str, Any] | None] = {}

        def seen(index: int, data: bytes) -> None:
            found[index] = self._replica.generation_in(data)

        written, settle = self._replica.store_many(
            files, user_id, jobs, seen if self.extract else None
        )
        try:
            # What each content will hold, made while the last bytes are still being
            # flushed (and before the write lock is taken).
            prepared = {
                index: self._new_content(
                    blob,
                    files[index],
                    user_id,
                    description,
                    tags,
                    paths[index] if paths is not None else None,
                )  # fmt: skip
                for index, blob in enumerate(written)
                if isinstance(blob, StoredBlob)
            }
            if self.extract:
                for index, (_, data) in prepared.items():
                    blob = written[index]
                    assert isinstance(blob, StoredBlob)
                    record = (
                        found[index]
                        if index in found
                        else self._replica.extract_generation(blob.digest)  # a large file
                    )
                    _set_generation(data["fields"], record)
            with self._catalog.atomic():
                final = settle()  # every blob durable, its name too, before the commit
                outcomes: list[StoredBlob | DreamflareError | Content] = list(final)
                made = self._create_many(user_id, outcomes, prepared)
        finally:
            with contextlib.suppress(Exception):
                settle()  # a no-op when done; else it ends the batch's threads
        results: list[tuple[Content | DreamflareError, bool]] = []
        for index, outcome in enumerate(outcomes):
            row = made.get(index)
            blob = final[index]
            if row is not None:
                outcome = rows.content(row)
            assert not isinstance(outcome, StoredBlob)
            done = isinstance(outcome, Content)
            size = outcome.size if isinstance(outcome, Content) else 0
            self._meter.charge("upload", user_id, not done, size, 0)
            results.append((outcome, done and isinstance(blob, StoredBlob) and blob.created))
        return results

    def _new_content(
        self,
        blob: StoredBlob,
        file: FileLike,
        user_id: str,
        description: str | None,
        tags: tuple[str, ...] | None,
        path: str | None,
    ) -> tuple[str, dict[str, Any]]:
        """A new content's id and the data of the op that creates it."""
        fields, changes = _file_fields(blob, file, None, description, tags, True, path)
        version_id = self._replica.new_id("version")
        return self._replica.new_id("content"), version_data(
            user_id, version_id, fields, changes, user_id
        )

    def _create_many(
        self,
        user_id: str,
        outcomes: list[StoredBlob | DreamflareError | Content],
        prepared: dict[int, tuple[str, dict[str, Any]]],
    ) -> dict[int, Any]:
        """Inside the batch's transaction: record the prepared content of each stored blob
        the quota admits and gc left in place (a refusal takes the blob's place in
        ``outcomes``); their rows by index."""
        admit = self._replica.quota_gate(user_id)
        admitted: list[int] = []
        for index, blob in enumerate(outcomes):
            if not isinstance(blob, StoredBlob):
                continue
            try:
                admit(blob.digest, blob.size)
            except StorageFull:
                raise  # the batch fails, as it does when the rows below cannot be written
            except DreamflareError as exc:
                outcomes[index] = exc
                continue
            admitted.append(index)
        # Small blobs' bytes are written now, all by one statement (StorageFull fails the
        # batch: SQLite may have rolled the transaction back).
        blobs = [cast(StoredBlob, outcomes[index]) for index in admitted]
        chosen: list[int] = []
        for index, removed in zip(admitted, self._replica.keep_blobs(blobs), strict=True):
            if removed is None:
                chosen.append(index)
            else:
                outcomes[index] = removed
        self._replica.note_blobs(
            [blob.digest for blob in outcomes if isinstance(blob, StoredBlob) and blob.data is None]
        )
        found = self._replica.record_new_contents([prepared[index] for index in chosen])
        return dict(zip(chosen, found, strict=True))

    def upload_batch(
        self,
        files: Sequence[FileLike],
        user_id: str,
        description: str | None,
        tags: tuple[str, ...] | None,
        jobs: int,
        progress: Progress,
        paths: Sequence[str | None] | None = None,
        new: bool = False,
        records: bool = True,
    ) -> list[UploadResult]:
        """Upload each file: small files through ``upload_many`` a chunk at a time, large
        ones through ``upload`` on ``jobs`` threads; a result per file, in order.

        With ``paths`` (and not ``new``), a file whose path names a live content of the
        user becomes a new version of it, or nothing at all when that content already has
        its bytes ("unchanged": known from the stat cache without reading the file, else
        by hashing it). Without ``records``, an unchanged result carries no content.
        """
        results: list[UploadResult | None] = [None] * len(files)
        targets: dict[int, str] = {}  # index -> the content a file is a new version of
        stats: dict[int, tuple[str, int, int, int, int]] = {}
        if paths is not None:
            # The stat cache first: a path it knows was valid when its content took it.
            found, sources = ({}, {}) if new else self._cached(files, paths, user_id)
            self._check_paths(files, paths, results, found)
            if not new:
                targets = self._match_paths(
                    files, paths, user_id, results, progress, records, found, sources
                )
            stats = _stat_sources(files, paths, results)
        small = [
            i
            for i, file in enumerate(files)
            if results[i] is None and i not in targets and small_loader(file) is not None
        ]
        for start in range(0, len(small), BATCH_CHUNK):
            chunk = small[start : start + BATCH_CHUNK]
            batch = [files[i] for i in chunk]
            chunk_paths = [paths[i] for i in chunk] if paths is not None else None
            nbytes = 0
            done = self.upload_many(batch, user_id, description, tags, jobs, chunk_paths)
            for index, (outcome, fresh) in zip(chunk, done, strict=True):
                results[index] = _result(files[index], index, outcome, fresh)
                nbytes += outcome.size if isinstance(outcome, Content) else 0
            progress.advance(len(chunk), nbytes)

        def one(index: int) -> UploadResult:
            file = files[index]
            outcome: Content | DreamflareError
            fresh = False
            # A new version of the content at this path keeps that path: not a change.
            path = paths[index] if paths is not None and index not in targets else None
            try:
                outcome, fresh = self.upload(
                    file, user_id, description, tags, targets.get(index), None, path
                )
            except DreamflareError as exc:
                outcome = exc
            except OSError as exc:
                outcome = as_error(exc, file)
            size = outcome.size if isinstance(outcome, Content) else 0
            self._meter.charge("upload", user_id, not isinstance(outcome, Content), size, 0)
            progress.advance(1, size)
            return _result(file, index, outcome, fresh, index in targets)

        rest = [i for i, result in enumerate(results) if result is None]
        if rest:
            with ThreadPoolExecutor(max(1, jobs), thread_name_prefix="dreamflare-upload") as pool:
                for index, result in zip(rest, pool.map(one, rest), strict=True):
                    results[index] = result
        final = [result for result in results if result is not None]
        if stats:
            self._remember(user_id, final, stats, paths or ())
        return final

    def _check_paths(
        self,
        files: Sequence[FileLike],
        paths: Sequence[str | None],
        results: list[UploadResult | None],
        known: dict[int, str],
    ) -> None:
        """Refuse, file by file, a path that is not valid or that names two files (the
        paths of ``known`` files are valid: the stat cache has them from earlier uploads)."""
        seen: set[str] = set()
        check = validate.path
        for index, path in enumerate(paths):
            if path is None:
                continue
            try:
                if index not in known:
                    check(path)
                if path in seen:
                    raise InvalidArgument(f"path {path!r} is given to two files of one upload")
            except InvalidArgument as exc:
                known.pop(index, None)
                results[index] = UploadResult(
                    _source(files[index], index), "failed", None, False, exc
                )
            seen.add(path)

    def _match_paths(
        self,
        files: Sequence[FileLike],
        paths: Sequence[str | None],
        user_id: str,
        results: list[UploadResult | None],
        progress: Progress,
        records: bool,
        found: dict[int, str],
        sources: dict[int, str],
    ) -> dict[int, str]:
        """Settle the files whose path names a live content with the same bytes
        ("unchanged" results, with their content when ``records``); the others at such a
        path, by index, with the content they will be a new version of.

        ``found`` are the files the stat cache vouched for (index -> content id): they are
        not read. The others are compared with the newest live content at their path:
        by size, then by hash. ``sources`` has the absolute path of each file given by one.
        """
        rest = [
            i for i, path in enumerate(paths)
            if path is not None and results[i] is None and i not in found
        ]  # fmt: skip
        with self._catalog.snapshot():
            # Rows of one state: the triggers that keep the cache true ran before this.
            by_id = self._catalog.reads.content_tuples(found.values()) if records else {}
            wanted = [path for i in rest if (path := paths[i]) is not None]
            live = self._catalog.reads.live_by_paths(user_id, wanted) if wanted else {}
        targets: dict[int, str] = {}
        remember: list[tuple[str, str, str, str, str]] = []
        for index in rest:
            path = paths[index]
            row = live.get(path) if path is not None else None
            if row is None or path is None:
                continue
            content_id, blob = row[0], row[5]
            source = sources.get(index)
            if _same_bytes(files[index], source, row[4], blob, path, content_id, remember):
                found[index] = content_id
                if records:
                    by_id[content_id] = row
            else:
                targets[index] = content_id
        if remember:
            with self._catalog.atomic():
                self._catalog.local.cache_files(user_id, remember)
        content_of = rows.content_of
        width = len(CONTENT_COLUMNS)
        for index, content_id in found.items():
            row = by_id.get(content_id)
            content = content_of(*row[:width]) if row is not None else None
            # Each was given by path (it has a source): its result names that path.
            results[index] = unchanged_result(os.fspath(files[index]), content)  # type: ignore[arg-type]
        if found:
            # Not charged as uploads: nothing was stored (a Client never sends them), and a
            # re-run that changes nothing writes nothing, not even a counter.
            progress.advance(len(found), 0)
        return targets

    def _cached(
        self, files: Sequence[FileLike], paths: Sequence[str | None], user: str
    ) -> tuple[dict[int, str], dict[int, str]]:
        """The files the stat cache vouches for (index -> content id), and the absolute
        path of each file given by path that has a path in the store (index -> source).

        One query loads the user's cached files between the batch's first and last
        source (a folder's, for a folder upload); each file is then one string and a
        dict lookup. A folder listing's ``os.DirEntry`` keeps the stat it made: no second
        stat here. A path already absolute and normal is kept as it is, one relative and
        normal is joined to the working folder (``abspath`` for thousands of files would
        cost more than all the rest).
        """
        cwd = os.getcwd().rstrip("/") + "/"
        sources: dict[int, str] = {}
        keys: list[tuple[int, str]] = []
        for index, file in enumerate(files):
            path = paths[index]
            if path.__class__ is not str:
                continue
            entry = isinstance(file, os.DirEntry)
            if entry:
                given: str = file.path  # type: ignore[union-attr]
            elif isinstance(file, str | os.PathLike):
                given = os.fspath(file)
            else:
                continue  # bytes or a file object: nothing to stat
            while given[:2] == "./":
                given = given[2:]
            if "/." in given or "//" in given or given[:1] in ("", "."):
                source = os.path.abspath(given)  # a "." or ".." part, or "//"
            else:
                source = given if given[0] == "/" else cwd + given
            sources[index] = source
            try:
                info = file.stat() if entry else os.stat(source)  # type: ignore[union-attr]
            except OSError:
                continue  # the upload reports it
            # The key cached_files gives, with file_stat's string inline: one per file.
            keys.append(
                (index, f"{source}\t{path}\t{info.st_size} {info.st_mtime_ns} {info.st_ino}")
            )
        if not sources:
            return {}, sources
        cached = self._catalog.local.cached_files(
            user, min(sources.values()), max(sources.values())
        )
        get = cached.get
        found = {index: cid for index, key in keys if (cid := get(key)) is not None}
        return found, sources

    def _remember(
        self,
        user_id: str,
        results: Sequence[UploadResult],
        stats: dict[int, tuple[str, int, int, int, int]],
        paths: Sequence[str | None],
    ) -> None:
        """Put the files just uploaded from paths in the stat cache, as they were before
        they were read (a change since then shows as a new mtime; one within the clock's
        resolution of the reading keeps the file out of the cache)."""
        entries = [
            (source, path, file_stat(size, mtime_ns, inode), content.content_id, content.hash)
            for index, (source, size, mtime_ns, inode, seen) in stats.items()
            if (content := results[index].content) is not None
            and results[index].status in ("created", "versioned")
            and content.size == size
            and mtime_ns < seen - RACY_NS
            and (path := paths[index]) is not None
        ]
        if entries:
            with self._catalog.atomic():
                self._catalog.local.cache_files(user_id, entries)

    def update(
        self,
        content_id: str,
        user_id: str,
        description: str | None,
        tags: tuple[str, ...] | None,
    ) -> Content:
        """Set the description and/or tags (None keeps a field): a new version."""
        fields: dict[str, Any] = {}
        if description is not None:
            fields["description"] = description
        if tags is not None:
            fields["tags"] = list(tags)
        with self._catalog.atomic():
            self._access.content(content_id, user_id, WRITE)
            data = version_data(user_id, self._replica.new_id("version"), fields, list(fields))
            self._replica.record(oplog.CONTENT_CHANGE, content_id, data)
            row = self._catalog.reads.content_row(content_id)
        assert row is not None
        return rows.content(row)

    def delete(self, content_id: str, user_id: str) -> None:
        """Delete a content and all its versions (owner only): final, even across replicas.
        Works on a full disk too (``Replica.freeing``): a delete is how room is made."""

        def delete() -> None:
            with self._catalog.atomic():
                self._access.content(content_id, user_id, OWNER)
                self._replica.record(oplog.CONTENT_DELETE, content_id, {"author": user_id})

        self._replica.freeing(delete)


def _file_fields(
    stored: StoredBlob,
    file: object,
    name: str | None,
    description: str | None,
    tags: tuple[str, ...] | None,
    new: bool,
    path: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The fields a version with these bytes sets (the first of a content when ``new``),
    and the names of what it changes.

    The type is sniffed from the bytes; when they tell nothing, a ``content_type`` the file
    object carries (an HTTP part's declared type), then the name's extension, may say.
    """
    info = media.sniff(stored.head)
    filename = name or _default_filename(file)
    declared = getattr(file, "content_type", None)
    mime = media.declared_mime(info.mime, declared if isinstance(declared, str) else None, filename)
    fields: dict[str, Any] = {
        "mime": mime,
        "size": stored.size,
        "blob": stored.digest,
        "width": info.width,
        "height": info.height,
    }
    changes = ["file"]
    if new or name is not None:
        fields["filename"] = filename
        changes.append("filename")
    if path is not None:
        fields["path"] = path
        changes.append("path")
    if description is not None:
        fields["description"] = description
        changes.append("description")
    if tags is not None and (not new or tags):
        fields["tags"] = list(tags)
        changes.append("tags")
    return fields, changes


def _set_generation(fields: dict[str, Any], record: dict[str, Any] | None) -> None:
    """Put a version's generation record in its op's fields (left out when there is none:
    the fold reads new bytes without one as having none)."""
    if record is not None:
        fields["generation"] = record


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


def _stat_sources(
    files: Sequence[FileLike],
    paths: Sequence[str | None],
    results: Sequence[UploadResult | None],
) -> dict[int, tuple[str, int, int, int, int]]:
    """Before reading them: ``(source, size, mtime_ns, inode, seen_ns)`` of the files given
    by path that will be uploaded, for the stat cache."""
    stats: dict[int, tuple[str, int, int, int, int]] = {}
    for index, file in enumerate(files):
        if results[index] is not None or paths[index] is None:
            continue
        if not isinstance(file, str | os.PathLike):
            continue
        seen_ns = time.time_ns()
        try:
            info = os.stat(file)
        except OSError:
            continue
        source = os.path.abspath(os.fspath(file))
        stats[index] = (source, info.st_size, info.st_mtime_ns, info.st_ino, seen_ns)
    return stats


def _same_bytes(
    file: FileLike,
    source: str | None,
    size: int,
    blob: str,
    path: str,
    content_id: str,
    remember: list[tuple[str, str, str, str, str]],
) -> bool:
    """Whether ``file`` has the bytes ``blob`` (of ``size``), read and hashed; a file given
    by path that has them, and has not changed within the clock's resolution of its
    reading, goes into ``remember`` for the stat cache. A file object is read once only,
    so it is never "the same": it goes in as a new version."""
    if source is not None:
        try:
            seen_ns = time.time_ns()  # the file system's clock, which mtimes use
            info = os.stat(source)  # now, before reading: what the cache keeps
            if info.st_size != size or hash_file(source) != blob:
                return False
        except OSError:
            return False  # the upload reports the error
        if info.st_mtime_ns < seen_ns - RACY_NS:
            stat = file_stat(info.st_size, info.st_mtime_ns, info.st_ino)
            remember.append((source, path, stat, content_id, blob))
        return True
    if isinstance(file, bytes | bytearray | memoryview):
        return len(file) == size and hash_bytes(bytes(file)) == blob
    return False


def _result(
    file: object,
    index: int,
    outcome: Content | DreamflareError,
    new: bool,
    versioned: bool = False,
) -> UploadResult:
    source = _source(file, index)
    if isinstance(outcome, Content):
        return UploadResult(source, "versioned" if versioned else "created", outcome, new)
    return UploadResult(source, "failed", None, False, outcome)


def _source(file: object, index: int) -> str:
    """How a result names its file: the path given, else its place in the batch."""
    return str(os.fspath(file)) if isinstance(file, str | os.PathLike) else f"#{index}"
