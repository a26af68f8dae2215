"""Operation records: what every mutation is, and its msgpack codec.

An op is ``(id, hlc, replica, rseq, kind, entity, data)``. ``entity`` names the one thing
the op changes (a content, collaboration or key id), ``rseq`` is its position among its
origin replica's own ops (remote segments are named by it), and ``data`` holds the
kind's fields. The deterministic fold of ops into tables lives in ``catalog.Catalog.apply``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

from .clock import is_hlc
from .errors import InvalidArgument
from .version import __version__

# The format of the ops this release writes. A release that adds fields to ops (or kinds)
# raises it; a replica refuses ops of a format newer than its own instead of folding them
# in without the fields it does not know (replicas would then disagree). Ops without a
# format are of format 1.
OP_FORMAT = 2
# Format 2 (release 0.2.0) adds: ``fields["generation"]`` on content ops that set bytes,
# ``fields["path"]`` on content versions, ``strip_metadata`` on collaboration ops, and the
# kinds content.generation (a record read from a version's bytes, no new version) and
# content.favorite (a user's favorite mark).

CONTENT_CREATE = "content.create"
CONTENT_CHANGE = "content.change"
CONTENT_DELETE = "content.delete"
CONTENT_GENERATION = "content.generation"
CONTENT_FAVORITE = "content.favorite"
COLLAB_CREATE = "collab.create"
COLLAB_UPDATE = "collab.update"
COLLAB_DELETE = "collab.delete"
KEY_CREATE = "key.create"
KEY_REVOKE = "key.revoke"

KINDS = frozenset(
    {
        CONTENT_CREATE,
        CONTENT_CHANGE,
        CONTENT_DELETE,
        CONTENT_GENERATION,
        CONTENT_FAVORITE,
        COLLAB_CREATE,
        COLLAB_UPDATE,
        COLLAB_DELETE,
        KEY_CREATE,
        KEY_REVOKE,
    }
)

# The fields a content version may set, in the order versions list them.
CONTENT_FIELDS = ("file", "filename", "path", "description", "tags")


@dataclass(frozen=True, slots=True)
class Op:
    """One mutation, as stored in the log and shipped in remote segments."""

    op_id: str
    hlc: str
    replica: str
    rseq: int
    kind: str
    entity: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def sort_key(self) -> tuple[str, str]:
        """The total order every replica folds ops in."""
        return (self.hlc, self.op_id)

    def encode(self) -> bytes:
        return encode_op(self)


def encode_op(op: Op) -> bytes:
    """msgpack bytes of one op (a map, so new fields can be added later)."""
    packed: bytes = msgpack.packb(
        {
            "id": op.op_id,
            "hlc": op.hlc,
            "replica": op.replica,
            "rseq": op.rseq,
            "kind": op.kind,
            "entity": op.entity,
            "data": op.data,
            "format": OP_FORMAT,
            "writer": __version__,
        },
        use_bin_type=True,
    )
    return packed


def decode_op(raw: bytes) -> Op:
    """Parse and check one op; anything malformed raises InvalidArgument."""
    try:
        obj = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise InvalidArgument(f"malformed op record: {exc}") from exc
    return op_from_obj(obj)


def op_from_obj(obj: Any) -> Op:
    """Check the shape of an unpacked op."""
    if not isinstance(obj, dict):
        raise InvalidArgument("malformed op record: not a map")
    check_format(obj)
    try:
        op = Op(
            op_id=obj["id"],
            hlc=obj["hlc"],
            replica=obj["replica"],
            rseq=obj["rseq"],
            kind=obj["kind"],
            entity=obj["entity"],
            data=obj["data"],
        )
    except KeyError as exc:
        raise InvalidArgument(f"malformed op record: missing {exc}") from exc
    text_fields = (op.op_id, op.hlc, op.replica, op.kind, op.entity)
    if not all(isinstance(value, str) for value in text_fields):
        raise InvalidArgument("malformed op record: wrong field types")
    if not isinstance(op.rseq, int) or op.rseq < 1 or not isinstance(op.data, dict):
        raise InvalidArgument("malformed op record: wrong field types")
    if not is_hlc(op.hlc):
        raise InvalidArgument(f"malformed op record: bad timestamp {op.hlc!r}")
    if op.kind not in KINDS:
        raise InvalidArgument(f"malformed op record: unknown kind {op.kind!r}")
    return op


def check_format(obj: dict[Any, Any]) -> None:
    """Refuse an op of a format this release cannot fold, naming the release that wrote it.

    The error is an InvalidArgument whose ``op_format`` and ``writer`` say what to upgrade
    to; sync reports it as such rather than as corruption.
    """
    number = obj.get("format", 1)
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise InvalidArgument(f"malformed op record: bad format {number!r}")
    if number > OP_FORMAT:
        writer = obj.get("writer")
        release = writer if isinstance(writer, str) and len(writer) <= 32 else "a newer release"
        raise InvalidArgument(
            f"op format {number} is newer than this dreamflare-store ({__version__}) reads"
            f" (up to format {OP_FORMAT}): upgrade to dreamflare-store {release} or later",
            op_format=number,
            writer=release,
        )


def encode_segment(ops: list[Op]) -> bytes:
    """One remote segment: a msgpack array of encoded ops."""
    packed: bytes = msgpack.packb([op.encode() for op in ops], use_bin_type=True)
    return packed


def decode_segment(raw: bytes) -> list[Op]:
    """Parse a remote segment; anything malformed raises InvalidArgument."""
    try:
        items = msgpack.unpackb(raw, raw=False)
    except Exception as exc:
        raise InvalidArgument(f"malformed op segment: {exc}") from exc
    if not isinstance(items, list) or not all(isinstance(item, bytes) for item in items):
        raise InvalidArgument("malformed op segment: not a list of ops")
    return [decode_op(item) for item in items]
