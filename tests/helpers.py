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
