"""A full disk: every operation says StorageFull, delete and gc still free room, nothing
acknowledged is lost, no temp file is left.

Each scenario runs on a real 20 MiB tmpfs mounted by the test (tests run as root in CI),
and on an injected full disk (blob writes fail with ENOSPC, the catalog cannot grow), so
the same paths are tested where mounting is impossible.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from dreamflare_store import Content, StorageFull, Store
from dreamflare_store.blobs import batch, local, room
from dreamflare_store.catalog.db import Database
from dreamflare_store.cli import cli
from dreamflare_store.http.testing import LiveServer

MIB = 1 << 20


class Disk:
    """A small disk a store lives on: ``fill()`` leaves no byte free, ``make_room()`` undoes it."""

    store_path: Path

    def fill(self) -> None:
        raise NotImplementedError

    def make_room(self) -> None:
        raise NotImplementedError


class Tmpfs(Disk):
    """A real 20 MiB tmpfs; ``fill`` writes a file beside the store until ENOSPC."""

    def __init__(self, mount: Path) -> None:
        self.mount = mount
        self.store_path = mount / "store"
        self.filler = mount / "filler"

    def fill(self) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)

    def make_room(self) -> None:
        self.filler.unlink(missing_ok=True)


class Injected(Disk):
    """A disk of ``budget`` bytes for blobs, seen through the engine's seams: the free-space
    probe (``room.free_bytes``), the blob writes (``write_all``) and the catalog's growth
    (SQLite's ``max_page_count``, which makes it answer "database or disk is full"). The
    reserve given back makes room for its size in the catalog, as on a real disk."""

    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
        self.store_path = path
        self.budget = budget
        self.full = False
        self.room_pages = 0  # what a reserve given back to the full disk lets the catalog grow
        self.connections: list[sqlite3.Connection] = []
        write_all = local.write_all

        def limited_write(fd: int, data: Any) -> None:
            size = memoryview(data).nbytes
            if size > self.budget:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.budget -= size
            write_all(fd, data)

        connect = Database._connect

        def limited_connect(db: Database) -> sqlite3.Connection:
            conn = connect(db)
            self.connections.append(conn)
            self._limit(conn)
            return conn

        release = room.Reserve.release

        def release_into_catalog(reserve: room.Reserve) -> bool:
            released = release(reserve)
            if released and self.full:
                self.room_pages += reserve.size // 4096
                for conn in self.connections:
                    with contextlib.suppress(sqlite3.ProgrammingError):  # closed
                        self._limit(conn)
            return released

        monkeypatch.setattr(room.Reserve, "release", release_into_catalog)
        monkeypatch.setattr(room, "free_bytes", lambda path: 0 if self.full else self.budget)
        monkeypatch.setattr(local, "write_all", limited_write)
        monkeypatch.setattr(batch, "write_all", limited_write)
        monkeypatch.setattr(Database, "_connect", limited_connect)

    def _limit(self, conn: sqlite3.Connection) -> None:
        # max_page_count cannot go below the pages in use: 1 pins the catalog to its size.
        limit = 1 << 30
        if self.full:
            limit = self.pinned + self.room_pages if self.room_pages else 1
        conn.execute(f"PRAGMA max_page_count = {limit}")

    def fill(self) -> None:
        self.full, self.budget, self.room_pages = True, 0, 0
        probe = sqlite3.connect(self.store_path / "catalog.db")
        try:
            self.pinned = probe.execute("PRAGMA page_count").fetchone()[0]
        finally:
            probe.close()
        for conn in self.connections:
            with contextlib.suppress(sqlite3.ProgrammingError):  # closed
                self._limit(conn)

    def make_room(self) -> None:
        self.full, self.budget, self.room_pages = False, 100 * MIB, 0
        for conn in self.connections:
            with contextlib.suppress(sqlite3.ProgrammingError):  # closed
                self._limit(conn)


def _mount_tmpfs(where: Path) -> str | None:
    """Mount a 20 MiB tmpfs at ``where``; return why it could not be, or None."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return "mounting a tmpfs needs root and mount(8)"
    where.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    return None if run.returncode == 0 else f"mount -t tmpfs failed: {run.stderr.strip()}"


@pytest.fixture(params=["tmpfs", "injected"])
def disk(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Disk]:
    if request.param == "injected":
        yield Injected(tmp_path / "store", monkeypatch, 12 * MIB)
        return
    mount = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    why = _mount_tmpfs(mount)
    if why is not None:
        pytest.skip(why)
    try:
        yield Tmpfs(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _leftovers(store: Store) -> list[Path]:
    return list((store.path / "tmp").iterdir())


def _upload_until_full(
    store: Store, source: Path
) -> tuple[list[tuple[Content, bytes]], StorageFull]:
    """Upload distinct files from ``source`` (outside the store) until the disk refuses."""
    done: list[tuple[Content, bytes]] = []
    for n in range(1000):
        data = os.urandom(400_000 + n)
        source.write_bytes(data)
        try:
            done.append((store.upload(file=source, user_id="alice"), data))
        except StorageFull as exc:
            return done, exc
    raise AssertionError("the disk never filled")


def test_uploads_until_full_are_refused_by_name(
    disk: Disk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source-file.bin"
    with Store(disk.store_path) as store:
        done, error = _upload_until_full(store, source)
        assert len(done) > 3
        assert error.code == "storage_full" and error.status == 507
        assert str(store.path) in error.message and str(source) not in error.message
        assert error.path == str(store.path)
        assert _leftovers(store) == []
        # Bytes that cannot fit are refused before anything is written: no temp file made.
        free = room.free_bytes(store.path)
        temps: list[str] = []
        temp_name = local.BlobStore._temp_name

        def spied(blobs: local.BlobStore) -> str:
            temps.append(temp_name(blobs))
            return temps[-1]

        monkeypatch.setattr(local.BlobStore, "_temp_name", spied)
        with pytest.raises(StorageFull):
            store.upload(file=os.urandom(free + 1), user_id="alice")
        source.write_bytes(os.urandom(free + 1))
        with pytest.raises(StorageFull), open(source, "rb") as stream:
            store.upload(file=stream, user_id="alice")
        with pytest.raises(StorageFull):
            store.upload(file=source, user_id="alice")
        assert temps == []
        monkeypatch.setattr(local.BlobStore, "_temp_name", temp_name)
        assert room.free_bytes(store.path) >= free - 64 * 1024 and _leftovers(store) == []
        for content, data in done:
            assert store.read_content(content.content_id, "alice") == data
        assert store.verify() == []


def test_every_operation_on_a_full_disk_says_storage_full(disk: Disk, tmp_path: Path) -> None:
    store = Store(disk.store_path)
    contents = [store.upload(file=os.urandom(200_000), user_id="alice") for _ in range(6)]
    keep = contents[0].content_id
    disk.fill()
    attempts: dict[str, Any] = {
        "upload": lambda: store.upload(file=os.urandom(300_000), user_id="alice"),
        "upload small": lambda: store.upload(file=b"tiny" * 10, user_id="alice"),
        "update_metadata": lambda: [
            store.update_metadata(keep, "alice", description="d" * 4000 + str(i))
            for i in range(400)
        ],
        "generate_api_key": lambda: [
            store.generate_api_key("alice", "k" * 2000) for _ in range(400)
        ],
        "create_collaboration": lambda: [
            store.create_collaboration("alice", keep, f"friend{i}" + "x" * 100) for i in range(400)
        ],
    }
    for name, attempt in attempts.items():
        with pytest.raises(StorageFull):
            attempt()
            pytest.fail(f"{name} did not fill the disk")
    outcomes = store.upload_many([os.urandom(5000 + i) for i in range(3)], "alice")
    assert all(isinstance(out, StorageFull) for out in outcomes), outcomes
    # Deleting and gc free room on the full disk (the reserve lets their commits through).
    for content in contents[1:]:
        store.delete_content(content.content_id, "alice")
    report = store.gc(min_age=0)
    assert report.blobs_removed == 5
    disk.make_room()
    again = store.upload(file=os.urandom(100_000), user_id="alice")
    store.gc(min_age=0)
    assert store.replica.blobs.reserve.held()
    assert store.read_content(again.content_id, "alice")
    assert store.get_content(keep, "alice").content_id == keep
    assert store.verify() == []
    assert _leftovers(store) == []
    store.close()


def test_gc_of_small_blobs_kept_as_rows_works_on_a_full_disk(disk: Disk, tmp_path: Path) -> None:
    """Rows are freed inside the catalog: gc must commit without writing their bytes
    again (SQLite's secure_delete would zero every freed page through the log)."""
    store = Store(disk.store_path)
    contents = [store.upload(file=os.urandom(100_000), user_id="alice") for _ in range(10)]
    assert not list(store.replica.blobs.iter_digests())  # all rows
    disk.fill()
    for content in contents[1:]:
        store.delete_content(content.content_id, "alice")
    report = store.gc(min_age=0)
    assert (report.blobs_removed, report.bytes_freed) == (9, 900_000)
    disk.make_room()
    assert store.read_content(contents[0].content_id, "alice")
    assert store.verify() == []
    store.close()


def test_delete_and_gc_on_a_disk_full_to_the_last_byte(disk: Disk, tmp_path: Path) -> None:
    """The reserve is given back when a delete cannot commit, and taken again after."""
    store = Store(disk.store_path)
    contents = [store.upload(file=os.urandom(300_000), user_id="alice") for _ in range(8)]
    for content in contents:
        store.update_metadata(content.content_id, "alice", tags="before")
    assert store.replica.blobs.reserve.held()
    disk.fill()
    for content in contents[:4]:
        store.delete_content(content.content_id, "alice")
    assert store.gc(min_age=0).blobs_removed == 4
    disk.make_room()
    store.gc(min_age=0)
    assert store.replica.blobs.reserve.held()
    for content in contents[4:]:
        assert store.get_content(content.content_id, "alice").tags == ("before",)
    assert store.list_content("alice").total == 4
    assert store.verify() == []
    store.close()
    with Store(disk.store_path) as reopened:
        assert reopened.list_content("alice").total == 4


def test_close_on_a_full_disk_says_storage_full(disk: Disk) -> None:
    store = Store(disk.store_path)
    content = store.upload(file=b"x" * 1000, user_id="alice")
    store.replica.counters.stop()  # the counts wait for close
    for n in range(3000):  # a row of API usage each, written at close
        store.get_storage_usage(f"user-{n:05}-" + "u" * 100)
    disk.fill()
    with pytest.raises(StorageFull):
        store.close()
    assert store.replica.closed
    disk.make_room()
    with Store(disk.store_path) as reopened:
        assert reopened.get_content(content.content_id, "alice").content_id == content.content_id


def test_faces_report_a_full_disk(disk: Disk, tmp_path: Path) -> None:
    """The CLI prints one line and exits 1; HTTP answers 507 storage_full."""
    source = tmp_path / "photo.png"
    source.write_bytes(os.urandom(300_000))
    with Store(disk.store_path) as store:
        kept = store.upload(file=os.urandom(300_000), user_id="alice").content_id
    disk.fill()
    store_option = ["--store", str(disk.store_path)]
    result = CliRunner().invoke(cli, [*store_option, "upload", str(source), "-u", "alice"])
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().count("\n") == 0, result.stderr  # one line
    assert "is full" in result.stderr and str(source) not in result.stderr
    # On the full disk, the store still opens to delete and gc (the reserve makes room).
    result = CliRunner().invoke(cli, [*store_option, "rm", kept, "-u", "alice"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, [*store_option, "gc", "--min-age", "0"])
    assert result.exit_code == 0, result.output
    assert "Removed 1 unreferenced" in result.stdout
    disk.make_room()
    with Store(disk.store_path) as store:
        key = store.generate_api_key("alice").api_key
        disk.fill()
        with LiveServer(store) as server:
            answer = httpx.post(
                f"{server.url}/upload",
                params={"userId": "alice"},
                files={"file": ("photo.png", source.read_bytes(), "image/png")},
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
        assert answer.status_code == 507, answer.text
        assert answer.json()["error"]["code"] == "storage_full"
        disk.make_room()
        # An upload declaring more bytes than the disk has room for is refused before any
        # of it is written: no temp file, the disk as it was (sent by hand: an HTTP client
        # will not declare a length it does not send).
        with LiveServer(store) as server:
            free = room.free_bytes(disk.store_path)  # as the store sees it (injected too)
            host, port = server.url.removeprefix("http://").split(":")
            head = (
                f"POST /upload?userId=alice HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {key}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\n"
                f"Content-Length: {free + 1}\r\nConnection: close\r\n\r\n"
            )
            with socket.create_connection((host, int(port)), timeout=30) as conn:
                conn.sendall(head.encode() + b"--b\r\n")
                chunks = []
                while chunk := conn.recv(65536):  # the server closes after its answer
                    chunks.append(chunk)
                reply = b"".join(chunks).decode("latin-1")
        assert reply.startswith("HTTP/1.1 507"), reply
        assert "storage_full" in reply
        assert list((disk.store_path / "tmp").iterdir()) == []


def test_a_pull_into_a_full_disk_says_storage_full(disk: Disk, tmp_path: Path) -> None:
    remote = str(tmp_path / "remote")
    with Store(tmp_path / "source") as source:
        made = {
            source.upload(file=os.urandom(400_000), user_id="alice").content_id: None
            for _ in range(3)
        }
        source.push(remote)
    with Store(disk.store_path) as store:
        disk.fill()
        with pytest.raises(StorageFull):
            store.pull(remote, blobs="eager")
        assert _leftovers(store) == []
        assert store.list_content("alice").total == 0  # nothing half applied
        disk.make_room()
        store.pull(remote, blobs="eager")
        assert {c.content_id for c in store.list_content("alice").items} == set(made)
        assert store.verify() == []
