"""The remote layout of sync, and the codecs of what it stores (no I/O, no fsspec)::

    objects/<2>/<2>/<hash>             blobs, immutable, uploaded only if absent
    ops/<replica>/<first>-<last>       msgpack segments of one replica's own ops, immutable
    counters/<replica>                 that replica's counter snapshot, replaced on push

Names go both ways here (key from digest or range, and back from a listing), exact
inverses that ignore foreign names; so do the checks of what a remote hands back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgpack

from .. import ids, oplog
from ..errors import InvalidArgument
from ..oplog import Op

RSEQ_DIGITS = 12  # zero-padded, so segment names sort by position
COUNTERS_FORMAT = 1
REPLICA = r"[A-Za-z0-9_-]{1,64}"
SEGMENT = re.compile(rf"\Aops/({REPLICA})/(\d{{{RSEQ_DIGITS}}})-(\d{{{RSEQ_DIGITS}}})\Z")
BLOB = re.compile(r"\Aobjects/([0-9a-f]{2})/([0-9a-f]{2})/(\1\2[0-9a-f]{60})\Z")
COUNTERS = re.compile(rf"\Acounters/({REPLICA})\Z")
_DIGEST = re.compile(r"\A[0-9a-f]{64}\Z")
_HLC = re.compile(r"\A\d{13}\.\d{6}\.(.+)\Z")


# -- names on the remote ------------------------------------------------------------------


def blob_key(digest: str) -> str:
    return f"objects/{digest[:2]}/{digest[2:4]}/{digest}"


def segment_key(replica: str, first: int, last: int) -> str:
    return f"ops/{replica}/{first:0{RSEQ_DIGITS}d}-{last:0{RSEQ_DIGITS}d}"


def counters_key(replica: str) -> str:
    return f"counters/{replica}"


@dataclass(frozen=True, slots=True, order=True)
class Segment:
    """One segment on the remote: ops ``first..last`` of ``replica``."""

    first: int
    last: int
    replica: str
    key: str


def parse_segments(listing: dict[str, dict[str, Any]]) -> dict[str, list[Segment]]:
    """Segments per replica from a listing of ``ops/``; foreign names are ignored."""
    found: dict[str, list[Segment]] = {}
    for rel in listing:
        match = SEGMENT.match(rel)
        if match is None:
            continue
        first, last = int(match[2]), int(match[3])
        if 1 <= first <= last:
            found.setdefault(match[1], []).append(Segment(first, last, match[1], rel))
    for segments in found.values():
        segments.sort()
    return found


def chain(segments: list[Segment], done: int) -> list[Segment]:
    """The segments that extend ``1..done`` without a gap, furthest-reaching first.

    Overlaps (two pushes that raced) are harmless: ops are applied by id, once.
    """
    picked: list[Segment] = []
    while True:
        reach = [s for s in segments if s.first <= done + 1 <= s.last]
        if not reach:
            return picked
        best = max(reach, key=lambda s: s.last)
        picked.append(best)
        done = best.last


def blob_of(op: Op) -> tuple[str, int] | None:
    """The blob (digest, size) an op makes a version reference, if any."""
    if op.kind not in (oplog.CONTENT_CREATE, oplog.CONTENT_CHANGE):
        return None
    fields = op.data.get("fields")
    if not isinstance(fields, dict) or "blob" not in fields:
        return None
    return fields["blob"], fields["size"]


# -- checks of what a remote hands back ---------------------------------------------------


def check_op(op: Op, replica: str, rseq: int) -> None:
    """The parts of an op sync relies on before applying it."""
    if op.replica != replica or op.rseq != rseq:
        raise InvalidArgument(f"op {op.op_id!r} is not op {rseq} of replica {replica}")
    ids.check_id("op", op.op_id)
    hlc = _HLC.match(op.hlc)
    if hlc is None or hlc[1] != replica:
        raise InvalidArgument(f"op {op.op_id} has a malformed timestamp {op.hlc!r}")
    kind = {"content": "content", "collab": "collaboration", "key": "key"}[op.kind.split(".")[0]]
    ids.check_id(kind, op.entity, "entity")
    if op.kind in (oplog.CONTENT_CREATE, oplog.CONTENT_CHANGE):
        fields = op.data.get("fields")
        if not isinstance(fields, dict):
            raise InvalidArgument(f"op {op.op_id} has no fields")
        if "blob" in fields or op.kind == oplog.CONTENT_CREATE:
            digest, size = fields.get("blob"), fields.get("size")
            if not isinstance(digest, str) or not _DIGEST.match(digest):
                raise InvalidArgument(f"op {op.op_id} names a malformed blob {digest!r}")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidArgument(f"op {op.op_id} gives a malformed size {size!r}")
        if not isinstance(fields.get("generation", {}), dict | None):
            raise InvalidArgument(f"op {op.op_id} has a malformed generation record")
    elif op.kind == oplog.CONTENT_GENERATION:
        digest = op.data.get("blob")
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise InvalidArgument(f"op {op.op_id} names a malformed blob {digest!r}")
        if not isinstance(op.data.get("generation"), dict):
            raise InvalidArgument(f"op {op.op_id} has a malformed generation record")
    elif op.kind == oplog.CONTENT_FAVORITE:
        user, mark = op.data.get("user"), op.data.get("favorite")
        if not isinstance(user, str) or not user or not isinstance(mark, bool):
            raise InvalidArgument(f"op {op.op_id} is a malformed favorite mark")


# -- counter snapshots ---------------------------------------------------------------------


def encode_counters(replica: str, snapshot: dict[str, list[list[Any]]]) -> bytes:
    """A replica's counter snapshot as stored on the remote."""
    packed: bytes = msgpack.packb(
        {"format": COUNTERS_FORMAT, "replica": replica, **snapshot}, use_bin_type=True
    )
    return packed


_COUNTER_SHAPES: dict[str, tuple[type, ...]] = {
    "api_usage": (str, str, str, int, int, int, int),
    "content_stats": (str, str, int, int, int),
    "viewers": (str, str, str),
}


def decode_counters(data: bytes, replica: str) -> dict[str, list[list[Any]]]:
    """Parse and check a counter snapshot; InvalidArgument if it is not one of ``replica``."""
    try:
        obj = msgpack.unpackb(data, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise InvalidArgument(f"not msgpack: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("replica") != replica:
        raise InvalidArgument("not a counter snapshot of this replica")
    if obj.get("format") != COUNTERS_FORMAT:
        raise InvalidArgument(f"unknown counter format {obj.get('format')!r}")
    snapshot: dict[str, list[list[Any]]] = {}
    for table, shape in _COUNTER_SHAPES.items():
        rows = obj.get(table, [])
        if not isinstance(rows, list):
            raise InvalidArgument(f"{table} is not a list")
        for row in rows:
            if (
                not isinstance(row, list)
                or len(row) != len(shape)
                or not all(
                    isinstance(value, kind) and not isinstance(value, bool)
                    for value, kind in zip(row, shape, strict=True)
                )
                or any(isinstance(value, int) and value < 0 for value in row)
            ):
                raise InvalidArgument(f"malformed {table} row {row!r}")
        snapshot[table] = rows
    return snapshot


def info_tag(info: dict[str, Any]) -> str | None:
    """A version tag of a listed object that changes with every write, or None.

    Only tags derived from the bytes or bumped by every write qualify (an S3 ETag, a GCS
    generation or MD5): a modification time does not, since two snapshots of one size
    written within one tick of a file system's clock would look the same, and the second
    would never be merged. Without a tag the snapshot is read on every pull (it is small).
    """
    for name in ("ETag", "etag", "generation", "md5Hash"):
        if info.get(name) is not None:
            return f"{name}={info[name]} size={info.get('size')}"
    return None
