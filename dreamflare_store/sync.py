"""Sync: push and pull a store's ops, blobs and counters through any fsspec remote.

Remote layout (DESIGN.md)::

    objects/<2>/<2>/<hash>             blobs, immutable, uploaded only if absent
    ops/<replica>/<first>-<last>       msgpack segments of one replica's own ops, immutable
    counters/<replica>                 that replica's counter snapshot, replaced on push

Order keeps the remote consistent at every instant: a push uploads the blobs its new ops
reference, then the segments, then the counters, so a reader never finds an op whose blob
is missing. Progress is kept locally per remote (how far this replica pushed, how far each
other replica's ops were applied) and checked against the remote's own listing, so an
interrupted push or pull resumes without losing or duplicating anything.

Planning (which ops, which blobs) is set algebra over rseq ranges and digests in the small
functions below; names and codecs of the layout live in ``layout``, and every byte moves
through ``remote.Remote``, in bulk calls.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import ids, layout, oplog
from .blobs import hash_bytes
from .errors import (
    BlobUnavailable,
    IntegrityError,
    InvalidArgument,
    NotFound,
)
from .oplog import Op
from .records import SyncReport
from .remote import Remote, RemoteSpec, check_protocol, open_remote

if TYPE_CHECKING:
    from .store import Store

try:
    import fcntl
except ImportError:  # not on Windows: pushes there are serialised per process only
    fcntl = None  # type: ignore[assignment]

MODES = ("eager", "lazy", "none")
SEGMENT_OPS = 10_000  # ops per remote segment: ~3 MB, one request each
# Checking which of a few blobs a remote has lists only their shard folders; past this
# many folders one listing of objects/ is cheaper than a request per folder.
SHARD_LISTINGS_MAX = 8
ADOPT_THREADS = 8  # hashing and fsync of downloads run well in parallel
# The remote a blob is recorded on when it was pulled with blobs="none": no source.
NO_SOURCE = ""
_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


# -- progress reporting ---------------------------------------------------------------------


class Progress(Protocol):
    """What a transfer reports, to draw a bar (the CLI's); the engine knows no UI.

    ``start`` opens a phase ("Uploading files", ...) with its totals, ``advance`` reports
    files and bytes done, ``finish`` closes the phase (also when it failed).
    """

    def start(self, label: str, files: int, nbytes: int) -> None: ...

    def advance(self, files: int = 0, nbytes: int = 0) -> None: ...

    def finish(self) -> None: ...


class _Silent:
    """The progress of a caller who asked for none."""

    def start(self, label: str, files: int, nbytes: int) -> None:
        return None

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        return None

    def finish(self) -> None:
        return None


@contextlib.contextmanager
def _phase(progress: Progress, label: str, files: int, nbytes: int) -> Iterator[None]:
    progress.start(label, files, nbytes)
    try:
        yield
    finally:
        progress.finish()


@dataclass(slots=True)
class _Tally:
    ops_sent: int = 0
    ops_received: int = 0
    blobs_sent: int = 0
    blobs_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0

    def report(self) -> SyncReport:
        return SyncReport(
            self.ops_sent,
            self.ops_received,
            self.blobs_sent,
            self.blobs_received,
            self.bytes_sent,
            self.bytes_received,
        )


# -- remotes: configuring, resolving, opening -----------------------------------------------


def add_remote(store: Store, name: str, url: str, options: dict[str, Any]) -> None:
    """Save a remote under ``name`` (replacing one of that name). Makes no request."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgument(
            f"remote name {name!r} must be 1-64 letters, digits, '.', '_' or '-', starting"
            " with a letter or digit"
        )
    url = _normal_url(url)
    try:
        encoded = json.dumps(options, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"storage options must be plain JSON values: {exc}") from exc
    if len(encoded) > 65_536:
        raise InvalidArgument("storage options are too large")
    check_protocol(url)
    with store.catalog.atomic():
        store.catalog.set_remote(name, url, json.loads(encoded))


def _normal_url(url: object) -> str:
    """A URL as stored and used: local paths made absolute, no trailing slash."""
    if not isinstance(url, str) or not url.strip() or len(url) > 4096:
        raise InvalidArgument("a remote URL must be a non-empty string of at most 4096 chars")
    if "\x00" in url:
        raise InvalidArgument("a remote URL cannot contain NUL")
    if "://" not in url:
        return Path(url).expanduser().resolve().as_uri()
    head, _, rest = url.partition("://")
    stripped = rest.rstrip("/")
    return f"{head}://{stripped}" if stripped else url


def _looks_like_url(text: str) -> bool:
    return "://" in text or text.startswith(("/", ".", "~")) or os.sep in text


def resolve(store: Store, remote: str) -> RemoteSpec:
    """A configured remote name (which wins), else a URL or local path given directly."""
    if not isinstance(remote, str) or not remote:
        raise InvalidArgument("remote must be a configured name or a URL")
    configured = store.catalog.remotes()
    if remote in configured:
        url, options = configured[remote]
        return RemoteSpec(remote, url, options)
    if _looks_like_url(remote):
        url = _normal_url(remote)
        return RemoteSpec(url, url, {})
    raise NotFound(
        f"no remote named {remote!r}: add it with add_remote(name, url), or give a URL",
        remote=remote,
    )


def _progress_key(spec: RemoteSpec) -> str:
    """What progress is kept under: re-pointing a name at a new URL starts afresh."""
    return spec.url if spec.identity == spec.url else f"{spec.identity}@{spec.url}"


# Open remotes, shared by every store of the process: the first request of a new S3
# client costs ~0.5 s (botocore loads its service model per session).
_OPEN: OrderedDict[tuple[str, str, str], Remote] = OrderedDict()
_OPEN_MAX = 32
_OPEN_LOCK = threading.Lock()


def _open(spec: RemoteSpec) -> Remote:
    """An open client for a remote, reused while its name, URL and options stay the same."""
    key = (spec.identity, spec.url, json.dumps(spec.options, sort_keys=True, default=str))
    with _OPEN_LOCK:
        remote = _OPEN.get(key)
        if remote is not None:
            _OPEN.move_to_end(key)
            return remote
    remote = open_remote(spec)
    with _OPEN_LOCK:
        remote = _OPEN.setdefault(key, remote)
        while len(_OPEN) > _OPEN_MAX:
            _OPEN.popitem(last=False)
    return remote


@contextlib.contextmanager
def _sync_lock(store: Store) -> Iterator[None]:
    """One push or pull of a store at a time, across threads and processes.

    Two pushes at once would both send the same new ops in differently cut segments.
    """
    with open(store.path / "sync.lock", "a+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _check_mode(blobs: object) -> str:
    if blobs not in MODES:
        raise InvalidArgument(f"blobs must be one of {', '.join(MODES)}, not {blobs!r}")
    return str(blobs)


# -- public entry points --------------------------------------------------------------------


def push(store: Store, remote: str, progress: Progress | None = None) -> SyncReport:
    """Send this replica's new ops (after the blobs they reference) and its counters.

    With nothing new since the last push to this remote, no request is made at all.
    """
    spec = resolve(store, remote)
    tally = _Tally()
    with _sync_lock(store):
        _push(store, spec, progress or _Silent(), tally)
    return tally.report()


def pull(
    store: Store, remote: str, blobs: str = "lazy", progress: Progress | None = None
) -> SyncReport:
    """Apply the other replicas' new ops from a remote and merge their counters.

    ``blobs``: "eager" fetches the bytes now (and any still remote-only), "lazy" records
    them as remote-only and fetches each on first read, "none" records them remote-only
    with no source (reading them fails until a lazy or eager pull). On any error the
    catalog is left as it was.
    """
    mode = _check_mode(blobs)
    spec = resolve(store, remote)
    tally = _Tally()
    with _sync_lock(store):
        _pull(store, spec, mode, progress or _Silent(), tally)
    return tally.report()


def sync(
    store: Store, remote: str, blobs: str = "lazy", progress: Progress | None = None
) -> SyncReport:
    """Pull, then push."""
    mode = _check_mode(blobs)
    spec = resolve(store, remote)
    tally = _Tally()
    with _sync_lock(store):
        _open(spec).make_root()  # a first sync to a new folder is a push
        _pull(store, spec, mode, progress or _Silent(), tally)
        _push(store, spec, progress or _Silent(), tally)
    return tally.report()


def fetch_blob(store: Store, remote: str, digest: str) -> None:
    """Bring one lazily pulled blob home: download, check its hash, keep it.

    Raises BlobUnavailable for blobs pulled with blobs="none", RemoteError when the remote
    cannot be reached or holds corrupt bytes (nothing is stored then).
    """
    if remote == NO_SOURCE:
        raise BlobUnavailable(
            f"the bytes of blob {digest} are remote-only: they were pulled with blobs='none';"
            " pull with blobs='lazy' or 'eager' to fetch them",
            digest=digest,
        )
    spec = resolve(store, remote)
    rem = _open(spec)
    temp = store.blobs.download_path()
    try:
        rem.get_files([(layout.blob_key(digest), temp)], {}, _no_progress)
        store.blobs.adopt(temp, digest)
    except IntegrityError as exc:
        raise rem.error(
            f"blob {digest} is corrupt there (its bytes do not match its hash); nothing was stored"
        ) from exc
    finally:
        temp.unlink(missing_ok=True)
    with store.catalog.atomic():
        store.catalog.forget_remote_blob(digest)


def _no_progress(nbytes: int) -> None:
    return None


# -- push -----------------------------------------------------------------------------------


def _push(store: Store, spec: RemoteSpec, progress: Progress, tally: _Tally) -> None:
    catalog = store.catalog
    me = store.replica_id
    key = _progress_key(spec)
    store.flush()  # buffered counts belong in the snapshot
    with catalog.snapshot():
        pushed = catalog.remote_progress(key).get(me, 0)
        top = catalog.max_rseq(me)
        counters = layout.encode_counters(me, catalog.counter_snapshot(me))
    counters_tag = hash_bytes(counters)
    counters_meta = f"sync.counters-pushed {key}"
    counters_due = catalog.meta(counters_meta) != counters_tag
    if top <= pushed and not counters_due:
        return  # nothing new: not one request
    rem = _open(spec)
    rem.make_root()
    if top > pushed:
        # The remote's own listing is the truth: a push cut short after writing a segment
        # (before recording it here) must not send those ops again, and a remote that
        # lost segments gets them again.
        mine = layout.parse_segments(rem.listing(f"ops/{me}")).get(me, [])
        reached = layout.chain(mine, 0)
        pushed = min(reached[-1].last if reached else 0, top)
    if top > pushed:
        _send_blobs(store, rem, pushed, top, progress, tally)
        _send_segments(store, rem, key, pushed, top, progress, tally)
    else:
        with catalog.atomic():
            catalog.set_remote_progress(key, me, pushed)
    if counters_due:
        rem.write(layout.counters_key(me), counters)
        tally.bytes_sent += len(counters)
        with catalog.atomic():
            catalog.set_meta(counters_meta, counters_tag)


def _own_ops(store: Store, after: int, top: int) -> Iterator[list[Op]]:
    """This replica's ops ``after+1..top`` in segment-sized, rseq-ordered chunks."""
    while after < top:
        with store.catalog.snapshot():
            ops = store.catalog.ops_of(store.replica_id, after, min(SEGMENT_OPS, top - after))
        if not ops:
            return
        yield ops
        after = ops[-1].rseq


def _send_blobs(
    store: Store, rem: Remote, after: int, top: int, progress: Progress, tally: _Tally
) -> None:
    """Upload every blob the ops ``after+1..top`` reference that the remote lacks."""
    refs: dict[str, int] = {}
    for ops in _own_ops(store, after, top):
        for op in ops:
            ref = layout.blob_of(op)
            if ref is not None:
                refs[ref[0]] = ref[1]
    if not refs:
        return
    present = _remote_blobs(rem, refs)
    local: dict[str, int] = {}
    absent: list[str] = []
    for digest in refs:
        if digest in present:
            continue
        if store.blobs.exists(digest):
            local[digest] = store.blobs.path(digest).stat().st_size
        else:
            absent.append(digest)
    if absent:
        with store.catalog.snapshot():
            live = store.catalog.live_blobs()
        lost = [digest for digest in absent if digest in live]
        if lost:
            raise IntegrityError(
                f"cannot push: {len(lost)} blob(s) that live content references are missing"
                f" here and on the remote, e.g. {lost[0]} (run verify)",
                digest=lost[0],
            )
        # The others belong only to deleted contents whose bytes gc removed: the delete
        # travels in this same push, so no replica will ever need them.
    # Corrupt bytes must not reach the remote, where every replica would trip on them.
    with ThreadPoolExecutor(ADOPT_THREADS) as pool:
        checks = dict(zip(local, pool.map(store.blobs.check, local), strict=True))
    corrupt = sorted(digest for digest, ok in checks.items() if not ok)
    if corrupt:
        raise IntegrityError(
            f"cannot push: {len(corrupt)} blob(s) here do not match their hash, e.g."
            f" {corrupt[0]} (run verify); nothing was sent",
            digest=corrupt[0],
        )
    pairs = [(store.blobs.path(digest), layout.blob_key(digest)) for digest in sorted(local)]
    total = sum(local.values())

    def done(nbytes: int) -> None:
        progress.advance(1, nbytes)

    with _phase(progress, "Uploading files", len(pairs), total):
        rem.put_files(pairs, done)
    tally.blobs_sent += len(pairs)
    tally.bytes_sent += total


def _send_segments(
    store: Store,
    rem: Remote,
    key: str,
    after: int,
    top: int,
    progress: Progress,
    tally: _Tally,
) -> None:
    """Write ops ``after+1..top`` as segments, in order, recording each once it is there."""
    me = store.replica_id
    segments = -(-(top - after) // SEGMENT_OPS)
    with _phase(progress, "Sending changes", segments, 0):
        for ops in _own_ops(store, after, top):
            data = oplog.encode_segment(ops)
            rem.write(layout.segment_key(me, ops[0].rseq, ops[-1].rseq), data)
            with store.catalog.atomic():
                store.catalog.set_remote_progress(key, me, ops[-1].rseq)
            tally.ops_sent += len(ops)
            tally.bytes_sent += len(data)
            progress.advance(1, len(data))


def _remote_blobs(rem: Remote, wanted: dict[str, int]) -> set[str]:
    """Which of ``wanted`` (digest -> size) the remote holds whole, in as few listings as
    make sense: the shard folders of a few blobs, else all of objects/ at once.

    An object of the wrong size (an upload cut short on a plain folder) counts as absent.
    """
    if not wanted:
        return set()
    shards = sorted({layout.blob_key(digest).rsplit("/", 1)[0] for digest in wanted})
    listing = rem.listing(*shards) if len(shards) <= SHARD_LISTINGS_MAX else rem.listing("objects")
    present: set[str] = set()
    for rel, info in listing.items():
        match = layout.BLOB.match(rel)
        if match is not None and wanted.get(match[3]) == info.get("size"):
            present.add(match[3])
    return present


# -- pull -----------------------------------------------------------------------------------


def _pull(store: Store, spec: RemoteSpec, mode: str, progress: Progress, tally: _Tally) -> None:
    rem = _open(spec)
    if rem.kind == "local" and not rem.root_exists():
        raise rem.error("the folder does not exist")
    # Everything is read and checked first; the catalog changes in one transaction at the
    # end, so a corrupt segment, blob or snapshot leaves the store as it was.
    ops, reached = _fetch_ops(store, rem, _progress_key(spec), progress, tally)
    counters = _fetch_counters(store, rem, _progress_key(spec), tally)
    plan = _plan_blobs(store, rem, ops, mode)
    if mode == "eager":
        _download(store, rem, plan.fetch, progress, tally)
    _apply(store, rem, spec, ops, reached, plan, counters, mode, tally)


def _fetch_ops(
    store: Store, rem: Remote, key: str, progress: Progress, tally: _Tally
) -> tuple[list[Op], dict[str, int]]:
    """Read and check every segment beyond what was applied; their new ops, deduplicated."""
    done = store.catalog.remote_progress(key)
    me = store.replica_id
    wanted: list[tuple[layout.Segment, int]] = []
    for replica, segments in layout.parse_segments(rem.listing("ops")).items():
        if replica == me:
            continue
        start = done.get(replica, 0)
        wanted.extend((segment, start) for segment in layout.chain(segments, start))
    if not wanted:
        return [], {}
    with _phase(progress, "Receiving changes", len(wanted), 0):
        raw = rem.read_many([segment.key for segment, _ in wanted])
        progress.advance(len(wanted), sum(len(data) for data in raw.values()))
    ops: dict[str, Op] = {}
    reached: dict[str, int] = {}
    for segment, start in wanted:
        data = raw[segment.key]
        tally.bytes_received += len(data)
        for op in _check_segment(rem, segment, data):
            if op.rseq > start:  # overlapping segments repeat ops: keep each once
                ops.setdefault(op.op_id, op)
        reached[segment.replica] = max(reached.get(segment.replica, 0), segment.last)
    return sorted(ops.values(), key=lambda op: op.sort_key), reached


def _check_segment(rem: Remote, segment: layout.Segment, data: bytes) -> list[Op]:
    """Decode a segment and check it is what its name says: any doubt is a RemoteError."""
    try:
        ops = oplog.decode_segment(data)
        if len(ops) != segment.last - segment.first + 1:
            raise InvalidArgument(f"{len(ops)} ops where the name promises a different count")
        for position, op in enumerate(ops, start=segment.first):
            layout.check_op(op, segment.replica, position)
    except InvalidArgument as exc:
        raise rem.error(f"segment {segment.key} is corrupt: {exc.message}") from exc
    return ops


_Snapshot = tuple[str, str | None, dict[str, list[list[Any]]]]  # replica, tag, counters


@dataclass(slots=True)
class _BlobPlan:
    """What a pull does with bytes: fetch them now, or record them as remote-only."""

    record: dict[str, int]  # digest -> size: to record as remote-only
    fetch: dict[str, int]  # digest -> size: to download now (eager)
    forget: set[str] = field(default_factory=set)  # remote-only records no longer needed


def _plan_blobs(store: Store, rem: Remote, ops: list[Op], mode: str) -> _BlobPlan:
    """Set algebra: which blobs live contents will need, which are here, which are there."""
    catalog = store.catalog
    entities_of: dict[str, set[str]] = {}
    sizes: dict[str, int] = {}
    dead = {op.entity for op in ops if op.kind == oplog.CONTENT_DELETE}
    with catalog.snapshot():
        for op in ops:
            ref = layout.blob_of(op)
            if ref is not None:
                entities_of.setdefault(ref[0], set()).add(op.entity)
                sizes[ref[0]] = ref[1]
        for entity in {e for es in entities_of.values() for e in es} - dead:
            row = catalog.content_row(entity)
            if row is not None and row["deleted"]:
                dead.add(entity)
        sources = catalog.remote_blob_sources()
        live = catalog.live_blobs() if sources and mode != "none" else {}
    # Bytes that contents alive after this pull need and that are not here.
    needed = {
        digest: sizes[digest]
        for digest, entities in entities_of.items()
        if entities - dead and not store.blobs.exists(digest)
    }
    if mode == "none":
        return _BlobPlan({d: s for d, s in needed.items() if d not in sources}, {})
    # Blobs recorded earlier as remote-only: eager brings them all home, lazy gives those
    # pulled with blobs="none" a source.
    hydrate = {
        digest: live[digest]
        for digest, source in sources.items()
        if digest in live
        and (mode == "eager" or source == NO_SOURCE)
        and not store.blobs.exists(digest)
    }
    present = _remote_blobs(rem, {**hydrate, **needed})
    missing = sorted(set(needed) - present)
    if missing:
        raise rem.error(
            f"it holds ops that reference {len(missing)} blob(s) it does not have, e.g."
            f" {missing[0]}; nothing was applied"
        )
    found = {d: s for d, s in {**hydrate, **needed}.items() if d in present}
    if mode == "eager":
        # Records of bytes that are here after all (uploaded again since), or that no live
        # content needs any more, go too: afterwards only bytes this remote lacks remain.
        stale = {d for d in sources if d not in live or store.blobs.exists(d)}
        return _BlobPlan({}, found, stale | set(found))
    return _BlobPlan(found, {})


def _download(
    store: Store, rem: Remote, fetch: dict[str, int], progress: Progress, tally: _Tally
) -> None:
    """Fetch blobs concurrently into tmp/, then keep each one whose bytes match its name."""
    if not fetch:
        return
    temps = {digest: store.blobs.download_path() for digest in sorted(fetch)}
    sizes = {layout.blob_key(digest): size for digest, size in fetch.items()}
    total = sum(fetch.values())

    def done(nbytes: int) -> None:
        progress.advance(1, nbytes)

    try:
        with _phase(progress, "Downloading files", len(temps), total):
            rem.get_files([(layout.blob_key(d), temp) for d, temp in temps.items()], sizes, done)
        # Hashing and fsync dominate for many small blobs, and both run well in parallel.
        with ThreadPoolExecutor(ADOPT_THREADS) as pool:
            outcomes = list(pool.map(_adopt, [store] * len(temps), temps.items()))
        corrupt = [digest for digest, ok in zip(temps, outcomes, strict=True) if not ok]
        if corrupt:
            raise rem.error(
                f"{len(corrupt)} blob(s) there are corrupt (their bytes do not match their"
                f" hash), e.g. {corrupt[0]}; they were not kept and nothing was applied"
            )
    finally:
        for temp in temps.values():
            temp.unlink(missing_ok=True)
    tally.blobs_received += len(temps)
    tally.bytes_received += total


def _adopt(store: Store, item: tuple[str, Path]) -> bool:
    try:
        store.blobs.adopt(item[1], item[0])
    except IntegrityError:
        return False
    return True


def _apply(
    store: Store,
    rem: Remote,
    spec: RemoteSpec,
    ops: list[Op],
    reached: dict[str, int],
    plan: _BlobPlan,
    counters: list[_Snapshot],
    mode: str,
    tally: _Tally,
) -> None:
    """Fold the ops in, record progress and remote-only blobs, merge counters: one
    transaction, all or nothing."""
    catalog = store.catalog
    key = _progress_key(spec)
    source = NO_SOURCE if mode == "none" else spec.identity
    received = 0
    if not (ops or plan.record or plan.forget or counters):
        return
    with catalog.atomic():
        for op in ops:
            try:
                received += catalog.apply(op)
            except (IntegrityError, KeyError, TypeError, ValueError) as exc:
                raise rem.error(
                    f"op {op.op_id} of replica {op.replica} cannot be applied ({exc!r});"
                    " nothing was applied"
                ) from exc
            store.clock.observe(op.hlc)
        for replica, last in reached.items():
            catalog.set_remote_progress(key, replica, last)
        for digest, size in plan.record.items():
            catalog.set_remote_blob(digest, source, size)
        for digest in plan.forget:
            catalog.forget_remote_blob(digest)
        for replica, tag, snapshot in counters:
            catalog.merge_counter_snapshot(replica, snapshot)
            if tag is not None:
                catalog.set_meta(f"sync.counters-seen {key} {replica}", tag)
        _check_blobs_reachable(store, rem, {op.entity for op in ops})
    tally.ops_received += received


def _check_blobs_reachable(store: Store, rem: Remote, entities: set[str]) -> None:
    """Invariant 4 for what a pull touched: every live version's blob is here, or recorded
    as remote-only. Raising rolls the whole pull back."""
    catalog = store.catalog
    seen: set[str] = set()
    for entity in sorted(entities):
        is_content = entity.startswith(ids.PREFIXES["content"] + "_")
        row = catalog.content_row(entity) if is_content else None
        if row is None or row["deleted"]:
            continue
        for version in catalog.versions_of(entity):
            digest = version["blob"]
            if digest in seen:
                continue
            seen.add(digest)
            if not store.blobs.exists(digest) and catalog.remote_of_blob(digest) is None:
                raise rem.error(
                    f"content {entity} would reference blob {digest}, which is neither here"
                    " nor on the remote; nothing was applied"
                )


# -- counters -------------------------------------------------------------------------------


def _fetch_counters(store: Store, rem: Remote, key: str, tally: _Tally) -> list[_Snapshot]:
    """The checked counter snapshots of other replicas that changed since last merged."""
    catalog = store.catalog
    due: dict[str, tuple[str, str | None]] = {}
    for rel, info in rem.listing("counters").items():
        match = layout.COUNTERS.match(rel)
        if match is None or match[1] == store.replica_id:
            continue
        tag = layout.info_tag(info)
        if tag is None or catalog.meta(f"sync.counters-seen {key} {match[1]}") != tag:
            due[rel] = (match[1], tag)
    raw = rem.read_many(sorted(due))
    snapshots: list[_Snapshot] = []
    for rel, (replica, tag) in sorted(due.items()):
        try:
            snapshots.append((replica, tag, layout.decode_counters(raw[rel], replica)))
        except InvalidArgument as exc:
            raise rem.error(f"counter snapshot {rel} is corrupt: {exc.message}") from exc
        tally.bytes_received += len(raw[rel])
    return snapshots
