"""The local backends (file, moto S3, fake-gcs-server) behave as the store expects, via fsspec."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import backends
from backends import HOST, Remote, local_remote
from backends.fixtures import RemoteFactory

# Payloads that have broken emulators or transports before: gcp-storage-emulator dropped a
# trailing \r, so \r-endings are here on purpose.
PAYLOADS: dict[str, bytes] = {
    "all-bytes": bytes(range(256)),
    "all-bytes-reversed": bytes(range(255, -1, -1)) * 3,
    "cr-ending": b"abc\r",
    "only-cr": b"\r" * 13,
    "crlf": b"line one\r\nline two\r\n",
    "empty": b"",
    "nul": b"\x00",
}


# One client per server for the whole module. The storage options ask for a new instance on
# every call, and a new s3fs client loads botocore's JSON service models on its first request
# (~0.3 s), which would otherwise dominate this suite. With the listings cache off, a shared
# client holds no state that could leak between tests.
_CLIENTS: dict[tuple[str, str], Any] = {}


def open_fs(remote: Remote, *, fresh: bool = False) -> tuple[Any, str]:
    """Return (filesystem, root path without trailing slash) for a remote.

    ``fresh=True`` builds a new client instead of reusing the module's one for that server.
    """
    fs, root = remote.url_to_fs()
    if not fresh:
        key = (remote.url.split("://", 1)[0], remote.storage_options.get("endpoint_url", ""))
        fs = _CLIENTS.setdefault(key, fs)
    return fs, root.rstrip("/")


def relative(paths: list[str], root: str) -> set[str]:
    """Strip ``root/`` from listed paths so they compare across backends."""
    prefix = root + "/"
    assert all(p.startswith(prefix) for p in paths), (paths, root)
    return {p[len(prefix) :] for p in paths}


def test_remote_shape(remote: Remote, remote_kind: str) -> None:
    """Each kind yields the URL scheme and options documented in backends."""
    scheme = {"file": "file://", "s3": "s3://", "gcs": "gs://"}[remote_kind]
    assert remote.url.startswith(scheme)
    assert not remote.url.endswith("/")
    if remote_kind == "file":
        assert remote.storage_options == {"auto_mkdir": True}
    else:
        opts = remote.storage_options
        assert opts["endpoint_url"].startswith(f"http://{HOST}:")
        assert opts["use_listings_cache"] is False
        assert opts["skip_instance_cache"] is True


def test_pipe_cat_round_trip(remote: Remote) -> None:
    """Binary payloads, including empty ones and \\r endings, read back byte for byte."""
    fs, root = open_fs(remote)
    for name, payload in PAYLOADS.items():
        fs.pipe_file(f"{root}/payloads/{name}", payload)
    for name, payload in PAYLOADS.items():
        assert fs.cat_file(f"{root}/payloads/{name}") == payload, name
        assert fs.info(f"{root}/payloads/{name}")["size"] == len(payload), name
    # Ranged reads are how large blobs get resumed.
    assert fs.cat_file(f"{root}/payloads/all-bytes", start=10, end=20) == bytes(range(10, 20))


def test_overwrite(remote: Remote) -> None:
    """A plain write replaces an existing object."""
    fs, root = open_fs(remote)
    fs.pipe_file(f"{root}/k", b"first")
    fs.pipe_file(f"{root}/k", b"second")
    assert fs.cat_file(f"{root}/k") == b"second"


def test_put_get_files(remote: Remote, tmp_path: Path) -> None:
    """put_file/get_file copy local files to and from nested remote paths."""
    fs, root = open_fs(remote)
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOADS["all-bytes"] * 17 + b"\r")
    fs.put_file(str(src), f"{root}/deep/nested/dir/blob.bin")
    dst = tmp_path / "out" / "blob.bin"
    dst.parent.mkdir()
    fs.get_file(f"{root}/deep/nested/dir/blob.bin", str(dst))
    assert dst.read_bytes() == src.read_bytes()


def test_find_lists_everything(remote: Remote) -> None:
    """find returns every object (and only objects) under a root, and under a prefix."""
    fs, root = open_fs(remote)
    keys = {"a", "blobs/ab/ab01", "blobs/ab/ab02", "blobs/cd/cd01", "ops/0001.log"}
    for key in keys:
        fs.pipe_file(f"{root}/{key}", key.encode())
    assert relative(fs.find(root), root) == keys
    assert relative(fs.find(f"{root}/blobs/ab"), root) == {"blobs/ab/ab01", "blobs/ab/ab02"}
    assert fs.find(f"{root}/missing-prefix") == []
    assert fs.exists(f"{root}/blobs/cd/cd01")
    assert not fs.exists(f"{root}/blobs/cd/cd02")


def test_exclusive_create(remote: Remote) -> None:
    """pipe_file(mode="create") writes a new key but refuses to replace an existing one.

    On s3 and gcs the server enforces it (If-None-Match / ifGenerationMatch=0); on a local
    folder fsspec checks for existence first, which is racy but has the same outcome here.
    """
    fs, root = open_fs(remote)
    path = f"{root}/refs/head"
    fs.pipe_file(path, b"v1", mode="create")
    with pytest.raises(FileExistsError):
        fs.pipe_file(path, b"v2", mode="create")
    assert fs.cat_file(path) == b"v1"


def test_bulk_put_and_cat_with_missing(remote: Remote, tmp_path: Path) -> None:
    """fs.put of lists, then fs.cat(on_error="return") yields bytes or FileNotFoundError."""
    fs, root = open_fs(remote)
    local = []
    remote_paths = []
    for i in range(20):
        f = tmp_path / f"blob-{i}"
        f.write_bytes(bytes([i]) * i)  # blob-0 is empty
        local.append(str(f))
        remote_paths.append(f"{root}/blobs/{i:02x}/blob-{i}")
    fs.put(local, remote_paths)
    missing = f"{root}/blobs/ff/absent"
    result = fs.cat([*remote_paths, missing], on_error="return")
    assert set(result) == {*remote_paths, missing}
    for i, path in enumerate(remote_paths):
        assert result[path] == bytes([i]) * i
    assert isinstance(result[missing], FileNotFoundError)


def test_remotes_are_isolated(remote_factory: RemoteFactory) -> None:
    """Two fresh remotes are empty, distinct, and do not see each other's objects."""
    first, second = remote_factory(), remote_factory()
    assert first.url != second.url
    fs1, root1 = open_fs(first)
    fs2, root2 = open_fs(second)
    assert fs1.find(root1) == []
    fs1.pipe_file(f"{root1}/shared-key", b"one")
    fs1.pipe_file(f"{root1}/only-in-first", b"x")
    fs2.pipe_file(f"{root2}/shared-key", b"two")
    assert fs1.cat_file(f"{root1}/shared-key") == b"one"
    assert fs2.cat_file(f"{root2}/shared-key") == b"two"
    assert relative(fs2.find(root2), root2) == {"shared-key"}


def test_second_client_sees_writes_immediately(remote: Remote) -> None:
    """With the listings cache off, a client's listing reflects another client's changes."""
    fs_a, root = open_fs(remote, fresh=True)
    fs_b, _ = open_fs(remote, fresh=True)
    if remote.url.startswith("file://"):
        assert fs_a is fs_b  # local instances are cached and stateless; nothing to compare
    else:
        assert fs_a is not fs_b  # skip_instance_cache: each caller gets its own client
    assert fs_b.ls(root, detail=False) == []
    fs_a.pipe_file(f"{root}/x", b"1")
    assert relative(fs_b.ls(root, detail=False), root) == {"x"}
    fs_a.rm_file(f"{root}/x")
    assert not fs_b.exists(f"{root}/x")


def test_local_remote_creates_folder(tmp_path: Path) -> None:
    """local_remote makes the folder and returns a file:// URL that fsspec resolves to it."""
    folder = tmp_path / "a" / "with space#and%25"  # characters a file: URI would encode
    remote = local_remote(folder)
    assert folder.is_dir()
    fs, root = remote.url_to_fs()
    assert Path(root) == folder.resolve()
    fs.pipe_file(f"{root}/x/y/z", b"auto_mkdir")
    assert (folder / "x" / "y" / "z").read_bytes() == b"auto_mkdir"


def test_environment_set_for_gcsfs() -> None:
    """Importing backends sets the variables that keep gcsfs and botocore on loopback."""
    assert os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] == "false"
    assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"
    assert backends.HOST == "127.0.0.1"


def test_bucket_prefix_validated(gcs_server: backends.GcsServer) -> None:
    """Prefixes that would make an invalid bucket name are refused before any request."""
    for bad in ("", "UPPER", "under_score", "-dash", "x" * 41):
        with pytest.raises(ValueError):
            gcs_server.new_bucket(bad)
    assert gcs_server.new_bucket("ok-prefix").url.startswith("gs://ok-prefix-")


def test_start_stop_context_manager(tmp_path: Path) -> None:
    """A server started outside the fixtures answers, and is gone after its with-block."""
    log = tmp_path / "gcs.log"
    with backends.start_gcs(log) as server:
        assert server.running
        assert server.endpoint.startswith(f"http://{HOST}:")
        fs, root = open_fs(server.new_bucket("ctx"), fresh=True)
        fs.pipe_file(f"{root}/k", b"v")
        assert fs.cat_file(f"{root}/k") == b"v"
    assert not server.running
    assert log.exists()  # a caller-supplied log is kept
    server.stop()  # idempotent


def test_cli_help() -> None:
    """`python -m backends --help` explains both server kinds."""
    out = subprocess.run(
        [sys.executable, "-m", "backends", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "s3" in out and "gcs" in out and "Ctrl-C" in out
