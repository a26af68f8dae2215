"""Sync transfers: push and pull carried out over a ``Remote``, in bulk calls.

Order keeps the remote consistent at every instant: a push uploads the blobs its new ops
reference, then the segments, then the counters, so a reader never finds an op whose blob
is missing. A pull reads and checks everything first, then changes the catalog in one
transaction, so a corrupt segment, blob or snapshot leaves the store as it was. Progress
is kept locally per remote and checked against the remote's own listing, so an
interrupted push or pull resumes without losing or duplicating anything.

What to move is decided in ``plan``; this module gathers its inputs and moves the bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import ids, oplog
from ..blobs import hash_bytes
from ..blobs.room import full_disk
from ..errors import IntegrityError, InvalidArgument
from ..oplog import Op
from ..progress import Progress
from ..records.outcomes import SyncReport
from ..replica import Replica
from . import plan
from . import remote_layout as layout
from .remote import Remote, RemoteSpec

SEGMENT_OPS = 10_000  # ops per remote segment: ~3 MB, one request each
ADOPT_THREADS = 8  # hashing and fsync of downloads run well in parallel


@contextlib.contextmanager
def _phase(progress: Progress, label: str, files: int, nbytes: int) -> Iterator[None]:
    progress.start(label, files, nbytes)
    try:
        yield
    finally:
        progress.finish()


@dataclass(slots=True)
class Tally:
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


def progress_key(spec: RemoteSpec) -> str:
    """What progress is kept under: re-pointing a name at a new URL starts afresh."""
    return spec.url if spec.identity == spec.url else f"{spec.identity}@{spec.url}"


# -- push -----------------------------------------------------------------------------------


def push(replica: Replica, rem: Remote, spec: RemoteSpec, progress: Progress, tally: Tally) -> None:
    """Send this replica's new ops (after the blobs they reference) and its counters;
    with nothing new, make no request at all."""
    catalog = replica.catalog
    me = replica.replica_id
    key = progress_key(spec)
    replica.counters.flush()  # buffered counts belong in the snapshot
    with catalog.snapshot():
        pushed = catalog.local.remote_progress(key).get(me, 0)
        top = catalog.log.max_rseq(me)
        counters = layout.encode_counters(me, catalog.tallies.counter_snapshot(me))
    counters_tag = hash_bytes(counters)
    counters_meta = f"sync.counters-pushed {key}"
    counters_due = catalog.db.meta(counters_meta) != counters_tag
    if top <= pushed and not counters_due:
        return  # nothing new: not one request
    rem.make_root()
    if top > pushed:
        # The remote's own listing is the truth: a push cut short after writing a segment
        # (before recording it here) must not send those ops again, and a remote that
        # lost segments gets them again.
        mine = layout.parse_segments(rem.listing(f"ops/{me}")).get(me, [])
        reached = layout.chain(mine, 0)
        pushed = min(reached[-1].last if reached else 0, top)
    if top > pushed:
        _send_blobs(replica, rem, pushed, top, progress, tally)
        _send_segments(replica, rem, key, pushed, top, progress, tally)
    else:
        with catalog.atomic():
            catalog.local.set_remote_progress(key, me, pushed)
    if counters_due:
        rem.write(layout.counters_key(me), counters)
        tally.bytes_sent += len(counters)
        with catalog.atomic():
            catalog.db.set_meta(counters_meta, counters_tag)


def _own_ops(replica: Replica, after: int, top: int) -> Iterator[list[Op]]:
    """This replica's ops ``after+1..top`` in segment-sized, rseq-ordered chunks."""
    while after < top:
        with replica.catalog.snapshot():
            ops = replica.catalog.log.ops_of(
                replica.replica_id, after, min(SEGMENT_OPS, top - after)
            )
        if not ops:
            return
        yield ops
        after = ops[-1].rseq


def _send_blobs(
    replica: Replica, rem: Remote, after: int, top: int, progress: Progress, tally: Tally
) -> None:
    """Upload every blob the ops ``after+1..top`` reference that the remote lacks."""
    refs: dict[str, int] = {}
    for ops in _own_ops(replica, after, top):
        refs.update(plan.referenced_blobs(ops))
    if not refs:
        return
    on_remote = plan.present_blobs(rem.listing(*plan.listing_prefixes(refs)), refs)

    def local_size(digest: str) -> int | None:
        return replica.blobs.size(digest)

    def live() -> dict[str, int]:
        with replica.catalog.snapshot():
            return replica.catalog.reads.live_blobs()

    sending = plan.plan_send(refs, on_remote, local_size, live)
    if sending.lost:
        raise IntegrityError(
            f"cannot push: {len(sending.lost)} blob(s) that live content references are"
            f" missing here and on the remote, e.g. {sending.lost[0]} (run verify)",
            digest=sending.lost[0],
        )
    local = sending.upload
    # Corrupt bytes must not reach the remote, where every replica would trip on them.
    with ThreadPoolExecutor(ADOPT_THREADS) as pool:
        checks = dict(zip(local, pool.map(replica.blobs.check, local), strict=True))
    corrupt = sorted(digest for digest, ok in checks.items() if not ok)
    if corrupt:
        raise IntegrityError(
            f"cannot push: {len(corrupt)} blob(s) here do not match their hash, e.g."
            f" {corrupt[0]} (run verify); nothing was sent",
            digest=corrupt[0],
        )
    total = sum(local.values())

    def done(nbytes: int) -> None:
        progress.advance(1, nbytes)

    # A blob kept as a row goes up from a temp copy, to the same key as a file would:
    # the remote's layout does not depend on how each replica keeps its blobs.
    with replica.blobs.as_files(sorted(local)) as files:
        pairs = [(path, layout.blob_key(digest)) for digest, path in files.items()]
        with _phase(progress, "Uploading files", len(pairs), total):
            rem.put_files(pairs, done)
    tally.blobs_sent += len(pairs)
    tally.bytes_sent += total


def _send_segments(
    replica: Replica,
    rem: Remote,
    key: str,
    after: int,
    top: int,
    progress: Progress,
    tally: Tally,
) -> None:
    """Write ops ``after+1..top`` as segments, in order, recording each once it is there."""
    me = replica.replica_id
    segments = -(-(top - after) // SEGMENT_OPS)
    with _phase(progress, "Sending changes", segments, 0):
        for ops in _own_ops(replica, after, top):
            data = oplog.encode_segment(ops)
            rem.write(layout.segment_key(me, ops[0].rseq, ops[-1].rseq), data)
            with replica.catalog.atomic():
                replica.catalog.local.set_remote_progress(key, me, ops[-1].rseq)
            tally.ops_sent += len(ops)
            tally.bytes_sent += len(data)
            progress.advance(1, len(data))


# -- pull -----------------------------------------------------------------------------------


def pull(
    replica: Replica, rem: Remote, spec: RemoteSpec, mode: str, progress: Progress, tally: Tally
) -> None:
    """Apply the other replicas' new ops and merge their counters, fetching blobs as
    ``mode`` says; on any error the catalog is left as it was."""
    if rem.kind == "local" and not rem.root_exists():
        raise rem.error("the folder does not exist")
    # Everything is read and checked first; the catalog changes in one transaction at the
    # end, so a corrupt segment, blob or snapshot leaves the store as it was.
    ops, reached = _fetch_ops(replica, rem, progress_key(spec), progress, tally)
    counters = _fetch_counters(replica, rem, progress_key(spec), tally)
    blobs = _plan_blobs(replica, rem, ops, mode)
    if mode == "eager":
        _download(replica, rem, blobs.fetch, progress, tally)
    _apply(replica, rem, spec, ops, reached, blobs, counters, mode, tally)


def _fetch_ops(
    replica: Replica, rem: Remote, key: str, progress: Progress, tally: Tally
) -> tuple[list[Op], dict[str, int]]:
    """Read and check every segment beyond what was applied; their new ops, deduplicated."""
    done = replica.catalog.local.remote_progress(key)
    me = replica.replica_id
    wanted: list[tuple[layout.Segment, int]] = []
    for other, segments in layout.parse_segments(rem.listing("ops")).items():
        if other == me:
            continue
        start = done.get(other, 0)
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
        if "op_format" in exc.context:  # not corrupt: written by a newer release
            raise rem.error(
                f"segment {segment.key} holds ops this release cannot apply: {exc.message};"
                " nothing was applied"
            ) from exc
        raise rem.error(f"segment {segment.key} is corrupt: {exc.message}") from exc
    return ops


_Snapshot = tuple[str, str | None, dict[str, list[list[Any]]]]  # replica, tag, counters


def _plan_blobs(replica: Replica, rem: Remote, ops: list[Op], mode: str) -> plan.BlobPlan:
    """What to do with the bytes ``ops`` reference: gather what ``plan`` needs to know
    (the catalog's view, then the remote's listing), and check the remote has every blob
    that live contents will need."""
    catalog = replica.catalog
    with catalog.snapshot():

        def deleted_here(entity: str) -> bool:
            row = catalog.reads.content_row(entity)
            return row is not None and bool(row["deleted"])

        sources = catalog.local.remote_blob_sources()
        live = catalog.reads.live_blobs() if sources and mode != "none" else {}
        needs = plan.pull_needs(ops, mode, deleted_here, replica.blobs.exists, sources, live)
    present: set[str] = set()
    if mode != "none" and needs.wanted:
        listing = rem.listing(*plan.listing_prefixes(needs.wanted))
        present = plan.present_blobs(listing, needs.wanted)
        missing = sorted(set(needs.needed) - present)
        if missing:
            raise rem.error(
                f"it holds ops that reference {len(missing)} blob(s) it does not have, e.g."
                f" {missing[0]}; nothing was applied"
            )
    return plan.plan_pull(needs, present, mode, sources, live, replica.blobs.exists)


def _download(
    replica: Replica, rem: Remote, fetch: dict[str, int], progress: Progress, tally: Tally
) -> None:
    """Fetch blobs concurrently into tmp/, then keep each one whose bytes match its name."""
    if not fetch:
        return
    temps = {digest: replica.blobs.download_path() for digest in sorted(fetch)}
    sizes = {layout.blob_key(digest): size for digest, size in fetch.items()}
    total = sum(fetch.values())
    replica.blobs.check_room(total)  # refused before a byte is downloaded, as an upload is

    def done(nbytes: int) -> None:
        progress.advance(1, nbytes)

    try:
        pairs = [(layout.blob_key(d), temp) for d, temp in temps.items()]
        with _phase(progress, "Downloading files", len(temps), total), full_disk(replica.path):
            rem.get_files(pairs, sizes, done)
        # Small blobs become rows, all in one transaction (one flush). For files, hashing
        # and fsync dominate, and both run well in parallel.
        rows = [(temp, d) for d, temp in temps.items() if replica.blobs.as_row(fetch[d])]
        kept = replica.blobs.adopt_rows(rows)
        files = [(d, temp) for d, temp in temps.items() if d not in kept]
        with ThreadPoolExecutor(ADOPT_THREADS) as pool:
            adopted = pool.map(_adopt, [replica] * len(files), files)
            kept.update(zip([d for d, _ in files], adopted, strict=True))
        corrupt = [digest for digest in temps if not kept[digest]]
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


def _adopt(replica: Replica, item: tuple[str, Path]) -> bool:
    try:
        replica.blobs.adopt(item[1], item[0])
    except IntegrityError:
        return False
    return True


def _apply(
    replica: Replica,
    rem: Remote,
    spec: RemoteSpec,
    ops: list[Op],
    reached: dict[str, int],
    blobs: plan.BlobPlan,
    counters: list[_Snapshot],
    mode: str,
    tally: Tally,
) -> None:
    """Fold the ops in, record progress and remote-only blobs, merge counters: one
    transaction, all or nothing."""
    catalog = replica.catalog
    key = progress_key(spec)
    source = plan.NO_SOURCE if mode == "none" else spec.identity
    received = 0
    if not (ops or blobs.record or blobs.forget or counters):
        return
    with catalog.atomic():
        for op in ops:
            try:
                received += catalog.fold.apply(op)
            except (IntegrityError, KeyError, TypeError, ValueError) as exc:
                raise rem.error(
                    f"op {op.op_id} of replica {op.replica} cannot be applied ({exc!r});"
                    " nothing was applied"
                ) from exc
            replica.clock.observe(op.hlc)
        for other, last in reached.items():
            catalog.local.set_remote_progress(key, other, last)
        for digest, size in blobs.record.items():
            catalog.local.set_remote_blob(digest, source, size)
        for digest in blobs.forget:
            catalog.local.forget_remote_blob(digest)
        for other, tag, snapshot in counters:
            catalog.tallies.merge_counter_snapshot(other, snapshot)
            if tag is not None:
                catalog.db.set_meta(f"sync.counters-seen {key} {other}", tag)
        _check_blobs_reachable(replica, rem, {op.entity for op in ops})
    tally.ops_received += received


def _check_blobs_reachable(replica: Replica, rem: Remote, entities: set[str]) -> None:
    """Invariant 4 for what a pull touched: every live version's blob is here, or recorded
    as remote-only. Raising rolls the whole pull back."""
    catalog = replica.catalog
    seen: set[str] = set()
    for entity in sorted(entities):
        is_content = entity.startswith(ids.PREFIXES["content"] + "_")
        row = catalog.reads.content_row(entity) if is_content else None
        if row is None or row["deleted"]:
            continue
        for version in catalog.reads.versions_of(entity):
            digest = version["blob"]
            if digest in seen:
                continue
            seen.add(digest)
            if not replica.blobs.exists(digest) and catalog.local.remote_of_blob(digest) is None:
                raise rem.error(
                    f"content {entity} would reference blob {digest}, which is neither here"
                    " nor on the remote; nothing was applied"
                )


# -- counters -------------------------------------------------------------------------------


def _fetch_counters(replica: Replica, rem: Remote, key: str, tally: Tally) -> list[_Snapshot]:
    """The checked counter snapshots of other replicas that changed since last merged."""
    catalog = replica.catalog
    due: dict[str, tuple[str, str | None]] = {}
    for rel, info in rem.listing("counters").items():
        match = layout.COUNTERS.match(rel)
        if match is None or match[1] == replica.replica_id:
            continue
        tag = layout.info_tag(info)
        if tag is None or catalog.db.meta(f"sync.counters-seen {key} {match[1]}") != tag:
            due[rel] = (match[1], tag)
    raw = rem.read_many(sorted(due))
    snapshots: list[_Snapshot] = []
    for rel, (other, tag) in sorted(due.items()):
        try:
            snapshots.append((other, tag, layout.decode_counters(raw[rel], other)))
        except InvalidArgument as exc:
            raise rem.error(f"counter snapshot {rel} is corrupt: {exc.message}") from exc
        tally.bytes_received += len(raw[rel])
    return snapshots
