"""Sync planning: what to send and what to fetch, as set algebra over digests and ranges.

Nothing here does I/O: each function takes what the local catalog and the remote's
listings say and returns a decision, so every rule can be tested without a remote (as
dvc-objects separates ``status`` from ``transfer``). ``transfer`` gathers the inputs and
carries the decisions out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .. import oplog
from ..oplog import Op
from . import remote_layout as layout

# Checking which of a few blobs a remote has lists only their shard folders; past this
# many folders one listing of objects/ is cheaper than a request per folder.
SHARD_LISTINGS_MAX = 8
# The remote a blob is recorded on when it was pulled with blobs="none": no source.
NO_SOURCE = ""


def listing_prefixes(wanted: Iterable[str]) -> list[str]:
    """The remote folders to list to learn which of the ``wanted`` digests it holds: their
    shard folders when they are few, else all of ``objects``."""
    shards = sorted({layout.blob_key(digest).rsplit("/", 1)[0] for digest in wanted})
    return shards if len(shards) <= SHARD_LISTINGS_MAX else ["objects"]


def present_blobs(listing: dict[str, dict[str, Any]], wanted: dict[str, int]) -> set[str]:
    """Which of ``wanted`` (digest -> size) a listing shows whole. An object of the wrong
    size (an upload cut short on a plain folder) counts as absent."""
    present: set[str] = set()
    for rel, info in listing.items():
        match = layout.BLOB.match(rel)
        if match is not None and wanted.get(match[3]) == info.get("size"):
            present.add(match[3])
    return present


def referenced_blobs(ops: Iterable[Op]) -> dict[str, int]:
    """The blobs (digest -> size) that versions made by ``ops`` reference."""
    refs: dict[str, int] = {}
    for op in ops:
        ref = layout.blob_of(op)
        if ref is not None:
            refs[ref[0]] = ref[1]
    return refs


@dataclass(frozen=True, slots=True)
class SendPlan:
    """What a push uploads: local blobs by digest and size; lost blobs stop the push."""

    upload: dict[str, int]
    lost: list[str]


def plan_send(
    refs: dict[str, int],
    on_remote: set[str],
    local_size: Callable[[str], int | None],
    live: Callable[[], dict[str, int]],
) -> SendPlan:
    """The blobs new ops reference that the remote lacks: those here go up; those missing
    here too are lost if live content references them (the push must stop). The others
    belong only to deleted contents whose bytes gc took: the delete travels in the same
    push, so no replica will ever need them."""
    upload: dict[str, int] = {}
    absent: list[str] = []
    for digest in refs:
        if digest in on_remote:
            continue
        size = local_size(digest)
        if size is None:
            absent.append(digest)
        else:
            upload[digest] = size
    if not absent:
        return SendPlan(upload, [])
    alive = live()
    return SendPlan(upload, [digest for digest in absent if digest in alive])


@dataclass(slots=True)
class BlobPlan:
    """What a pull does with bytes: fetch them now, or record them as remote-only."""

    record: dict[str, int]  # digest -> size: to record as remote-only
    fetch: dict[str, int]  # digest -> size: to download now (eager)
    forget: set[str] = field(default_factory=set)  # remote-only records no longer needed


@dataclass(frozen=True, slots=True)
class PullNeeds:
    """The blobs a pull has to think about: those its ops make live contents reference and
    that are not here (``needed``), and older remote-only ones it may now fetch
    (``hydrate``). Ask the remote about all of ``wanted``."""

    needed: dict[str, int]
    hydrate: dict[str, int]

    @property
    def wanted(self) -> dict[str, int]:
        return {**self.hydrate, **self.needed}


def pull_needs(
    ops: list[Op],
    mode: str,
    deleted_here: Callable[[str], bool],
    here: Callable[[str], bool],
    sources: dict[str, str],
    live: dict[str, int],
) -> PullNeeds:
    """The blobs a pull of ``ops`` must find on the remote (``needs.needed``) or may fetch
    (``needs.hydrate``): bytes that contents alive after the pull reference and that are
    not ``here``; with ``eager``, every remote-only blob of live content too; with
    ``lazy``, those pulled earlier with ``none`` (they get a source)."""
    entities_of: dict[str, set[str]] = {}
    sizes: dict[str, int] = {}
    dead = {op.entity for op in ops if op.kind == oplog.CONTENT_DELETE}
    for op in ops:
        ref = layout.blob_of(op)
        if ref is not None:
            entities_of.setdefault(ref[0], set()).add(op.entity)
            sizes[ref[0]] = ref[1]
    dead |= {e for es in entities_of.values() for e in es if e not in dead and deleted_here(e)}
    needed = {
        digest: sizes[digest]
        for digest, entities in entities_of.items()
        if entities - dead and not here(digest)
    }
    if mode == "none":
        return PullNeeds(needed, {})
    hydrate = {
        digest: live[digest]
        for digest, source in sources.items()
        if digest in live and (mode == "eager" or source == NO_SOURCE) and not here(digest)
    }
    return PullNeeds(needed, hydrate)


def plan_pull(
    needs: PullNeeds,
    present: set[str],
    mode: str,
    sources: dict[str, str],
    live: dict[str, int],
    here: Callable[[str], bool],
) -> BlobPlan:
    """What a pull does with the bytes, given which of ``needs.wanted`` the remote holds
    (the caller has checked that every needed blob is there)."""
    if mode == "none":
        return BlobPlan({d: s for d, s in needs.needed.items() if d not in sources}, {})
    found = {d: s for d, s in needs.wanted.items() if d in present}
    if mode == "eager":
        # Records of bytes that are here after all (uploaded again since), or that no live
        # content needs any more, go too: afterwards only bytes this remote lacks remain.
        stale = {d for d in sources if d not in live or here(d)}
        return BlobPlan({}, found, stale | set(found))
    return BlobPlan(found, {})
