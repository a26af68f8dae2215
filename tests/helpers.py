"""Small helpers shared by the tests: real files, real stores, store state snapshots."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from dreamflare_store import Store
from dreamflare_store.oplog import Op


def png_bytes(width: int, height: int, seed: int = 0) -> bytes:
    """A real, valid PNG (one grey row pattern), made without any imaging library."""
    raw = b"".join(
        b"\x00" + bytes([(seed + x + y) % 256 for x in range(width)]) for y in range(height)
    )

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def disk_state(store: Store) -> tuple[str, frozenset[str], frozenset[str]]:
    """What a failed call must leave unchanged: the catalog (counters aside), blobs, temp files."""
    store.flush()
    conn = store.replica.catalog.db.conn
    rows = []
    for table in (
        "ops",
        "contents",
        "versions",
        "collaborations",
        "api_keys",
        "storage_usage",
        "user_blobs",
        "list_blocks",
        "quotas",
    ):
        rows.append((table, conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()))
    catalog = repr([(t, [tuple(r) for r in rs]) for t, rs in rows])
    blobs = frozenset(
        str(p.relative_to(store.path)) for p in (store.path / "objects").rglob("*") if p.is_file()
    )
    temps = frozenset(os.listdir(store.path / "tmp"))
    return catalog, blobs, temps


def blob_files(store_path: Path) -> list[Path]:
    return [p for p in (store_path / "objects").rglob("*") if p.is_file()]


def replay(path: Path, ops: list[Op]) -> Store:
    """A new store at ``path`` holding the fold of ``ops``, applied one at a time."""
    store = Store(path)
    for op in ops:
        with store.replica.catalog.atomic():
            store.replica.catalog.fold.apply(op)
    return store


def state_rows(store: Store) -> list[tuple[object, ...]]:
    """The materialised state without counters (reads and calls count, ops do not)."""
    return [row for row in store.replica.catalog.reads.digest_rows() if row[0] < 5]
