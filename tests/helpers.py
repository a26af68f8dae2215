"""Small helpers shared by the tests: real files, real stores, store state snapshots."""

from __future__ import annotations

import contextlib
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

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
    # Small blobs kept as rows are blobs too (their bytes and age are checked by hash).
    rows.append(
        ("blob_data", conn.execute("SELECT hash, size FROM blob_data ORDER BY 1").fetchall())
    )
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


class Cli:
    """Runs ``dreamflare --store STORE ...`` in-process, in a scratch working folder, with
    ``env`` (DREAMFLARE_USER and DREAMFLARE_STORE unset unless given) and ``stdin``."""

    def __init__(self, store: Path, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.store = store
        self.cwd = cwd
        self.env = env or {}
        self.runner = CliRunner()

    def __call__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        code: int | None = 0,
        stdin: str | None = None,
    ) -> Result:
        from dreamflare_store.cli import cli

        base: dict[str, str | None] = {"DREAMFLARE_USER": None, "DREAMFLARE_STORE": None}
        old = Path.cwd()
        os.chdir(self.cwd)
        try:
            result = self.runner.invoke(
                cli,
                ["--store", str(self.store), *args],
                env={**base, **self.env, **(env or {})},
                input=stdin,
            )
        finally:
            os.chdir(old)
        # Anything but a clean exit would be a traceback in a terminal.
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        if code is not None:
            assert result.exit_code == code, (result.stdout, result.stderr)
        return result

    def json(self, *args: str, **kwargs: Any) -> Any:
        return json.loads(self(*args, "--json", **kwargs).stdout)


def file_blobs_only(store: Store) -> Store:
    """Have ``store`` keep every new blob as a file, as stores did before small blobs
    became rows of the catalog (for tests of what is particular to blob files)."""
    store.replica.blobs.inline_max = -1
    return store


def blob_rows(store: Store) -> dict[str, bytes]:
    """The small blobs the store keeps as rows of its catalog, by digest."""
    conn = store.replica.catalog.db.conn
    return {str(d): bytes(b) for d, b in conn.execute("SELECT hash, data FROM blob_data")}


def stored_blobs(store: Store) -> set[str]:
    """Every blob stored locally, as a file or as a row."""
    files = {digest for digest, _ in store.replica.blobs.iter_digests()}
    return files | set(blob_rows(store))


def damage_blob(store: Store, digest: str, how: str) -> None:
    """Damage a stored blob, file or row alike: "flipped byte", "truncation" or
    "deleted blob" (a row's bytes are changed by SQL, as bit rot in the catalog would)."""
    path = store.replica.blobs.path(digest)
    if path.is_file():
        data = bytearray(path.read_bytes())
        if how == "flipped byte":
            data[len(data) // 2] ^= 0x01
            path.write_bytes(bytes(data))
        elif how == "truncation":
            with open(path, "r+b") as file:
                file.truncate(len(data) // 2)
        else:
            path.unlink()
        return
    conn = store.replica.catalog.db.conn
    (data,) = conn.execute("SELECT data FROM blob_data WHERE hash = ?", (digest,)).fetchone()
    data = bytearray(data)
    if how == "flipped byte":
        data[len(data) // 2] ^= 0x01
        conn.execute("UPDATE blob_data SET data = ? WHERE hash = ?", (bytes(data), digest))
    elif how == "truncation":
        half = bytes(data[: len(data) // 2])
        conn.execute("UPDATE blob_data SET data = ? WHERE hash = ?", (half, digest))
    else:
        conn.execute("DELETE FROM blob_data WHERE hash = ?", (digest,))


def spooled(store_path: Path) -> list[str]:
    """The anonymous temp files in the store's folder this process holds open (the server
    runs in it): a spooled upload, while it lasts."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(f"{store_path}/") and target.endswith("(deleted)"):
                held.append(target)
    return held
