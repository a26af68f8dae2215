"""Sync through real remotes: a local folder, moto's S3 and fake-gcs-server, all started
for real by the backends fixtures.

Replicas converge; blobs travel eagerly, lazily or not at all; bad remotes (unknown
protocol, missing bucket, refused credentials, corrupt segments, blobs or counters) give
a RemoteError and leave the local store as it was; transfers are batched; interrupted
pushes and pulls (a failing remote, a killed process) resume without loss or duplicates.

``FlakyFileSystem`` plugs into fsspec's registry as ``flaky://`` and wraps a real
filesystem: it counts the calls sync makes, fails chosen ones, or kills its process.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import fsspec
import msgpack
import pytest
from fsspec.spec import AbstractFileSystem
from helpers import damage_blob

from backends import Remote, local_remote
from dreamflare_store import (
    BlobUnavailable,
    IntegrityError,
    InvalidArgument,
    NotFound,
    RemoteError,
    Store,
    SyncReport,
    oplog,
)
from dreamflare_store.blobs import hash_bytes

TESTS = Path(__file__).resolve().parent

# -- a filesystem that counts, fails and kills: fault injection through fsspec's registry --

# Every public call sync could make; anything else goes to the wrapper itself.
_DELEGATED = frozenset(
    {
        *("cat", "cat_file", "exists", "find", "get", "get_file", "info", "isdir", "isfile"),
        *("ls", "makedirs", "mkdir", "mv", "open", "pipe", "pipe_file", "put", "put_file"),
        *("rm", "rm_file"),
    }
)


class InjectedFault(ConnectionError):
    """What the flaky remote raises: looks like a dropped connection."""


class FlakyFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """``flaky://<path>`` = the target filesystem's ``<path>``, with injected trouble.

    Options: ``target_protocol``/``target_options`` (the real remote), ``fail_rate`` (the
    chance that a call fails; a bulk put/get first moves a random part of its files, and a
    write may fail after it happened, as when an acknowledgement is lost), ``seed``, and
    ``kill_on`` (kill this process with SIGKILL part-way through the ``kill_nth`` call of
    that method), ``delay`` (seconds each bulk put or get waits first: a slow network).
    """

    protocol = "flaky"
    calls: ClassVar[Counter[str]] = Counter()
    objects: ClassVar[Counter[str]] = Counter()

    def __init__(
        self,
        target_protocol: str,
        target_options: dict[str, Any] | None = None,
        fail_rate: float = 0.0,
        seed: int = 0,
        kill_on: str | None = None,
        kill_nth: int = 1,
        delay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.target = fsspec.filesystem(target_protocol, **(target_options or {}))
        protocols = self.target.protocol
        protocols = protocols if isinstance(protocols, tuple | list) else (protocols,)
        # Same atomicity as the target: a wrapper of S3 is an object store to sync.
        self.protocol = ("flaky", *protocols)
        self.fail_rate = fail_rate
        self.rng = random.Random(seed)
        self.kill_on = kill_on
        self.kill_nth = kill_nth
        self.delay = delay
        self.seen: Counter[str] = Counter()

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        return path[len("flaky://") :] if path.startswith("flaky://") else path

    def __getattribute__(self, name: str) -> Any:
        if name not in _DELEGATED:
            return object.__getattribute__(self, name)
        method = getattr(object.__getattribute__(self, "target"), name)
        wrapper = object.__getattribute__(self, "_wrapped")
        return lambda *args, **kwargs: wrapper(name, method, args, kwargs)

    def _wrapped(
        self, name: str, method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        FlakyFileSystem.calls[name] += 1
        first = args[0] if args else None
        FlakyFileSystem.objects[name] += len(first) if isinstance(first, list) else 1
        self.seen[name] += 1
        if name in ("put", "get"):
            time.sleep(self.delay)
        kill = name == self.kill_on and self.seen[name] == self.kill_nth
        fail = kill or self.rng.random() < self.fail_rate
        if not fail:
            return method(*args, **kwargs)
        if name in ("put", "get") and isinstance(first, list) and len(first) > 1:
            cut = self.rng.randrange(1, len(first))  # fail part-way through a bulk transfer
            method(first[:cut], args[1][:cut])
        elif name in ("pipe_file", "mv") and self.rng.random() < 0.5:
            method(*args, **kwargs)  # it happened, but the caller never hears so
        if kill:
            os.kill(os.getpid(), signal.SIGKILL)
        raise InjectedFault(f"injected fault in {name}")


fsspec.register_implementation("flaky", FlakyFileSystem, clobber=True)


def flaky_url(remote: Remote) -> str:
    """The flaky:// URL that wraps a backends Remote."""
    return "flaky://" + remote.url.split("://", 1)[1]


def flaky_options(remote: Remote, **faults: Any) -> dict[str, Any]:
    return {
        "target_protocol": remote.url.split("://", 1)[0],
        "target_options": remote.storage_options,
        **faults,
    }


# -- helpers --------------------------------------------------------------------------------


@pytest.fixture
def stores(tmp_path: Path) -> Any:
    """make(name) -> a fresh Store in tmp_path; all are closed at the end."""
    made: list[Store] = []

    def make(name: str) -> Store:
        store = Store(tmp_path / name)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


_CLIENTS: dict[str, tuple[Any, str]] = {}


def open_fs(remote: Remote) -> tuple[Any, str]:
    """A client of the remote for checking it independently of sync (one per bucket: a
    new S3 client's first request costs half a second)."""
    if remote.url not in _CLIENTS:
        _CLIENTS[remote.url] = remote.url_to_fs()
    return _CLIENTS[remote.url]


def connect(store: Store, remote: Remote, name: str = "origin") -> str:
    store.add_remote(name, remote.url, **remote.storage_options)
    return name


def remote_files(remote: Remote) -> dict[str, bytes]:
    """Every object on a remote (relative path -> bytes), read independently of sync."""
    fs, root = open_fs(remote)
    root = root.rstrip("/")
    paths = fs.find(root)
    data = fs.cat(paths) if paths else {}
    return {path[len(root) + 1 :]: body for path, body in data.items()}


def assert_remote_consistent(remote: Remote, killed: bool = False) -> None:
    """Each replica's segments cover 1..n once (no gap, no overlap); every blob any op
    references is on the remote, whole (the right size; ``remote_hashes_ok`` checks the
    bytes). Only a killed process leaves temporary uploads (on a plain folder; listings
    ignore them)."""
    fs, root = open_fs(remote)
    root = root.rstrip("/")
    listing = {path[len(root) + 1 :]: info for path, info in fs.find(root, detail=True).items()}
    segments = sorted(rel for rel in listing if rel.startswith("ops/"))
    bodies = fs.cat([f"{root}/{rel}" for rel in segments]) if segments else {}
    ranges: dict[str, list[tuple[int, int]]] = {}
    for rel in segments:
        _, replica, name = rel.split("/")
        first, last = (int(part) for part in name.split("-"))
        ranges.setdefault(replica, []).append((first, last))
        for op in oplog.decode_segment(bodies[f"{root}/{rel}"]):
            fields = op.data.get("fields", {})
            if "blob" in fields:
                blob = fields["blob"]
                key = f"objects/{blob[:2]}/{blob[2:4]}/{blob}"
                assert key in listing, f"op {op.op_id} references {blob}, not on the remote"
                assert listing[key]["size"] == fields["size"]
    for replica, spans in ranges.items():
        spans.sort()
        expected = 1
        for first, last in spans:
            assert first == expected, f"replica {replica}: segments {spans} overlap or gap"
            expected = last + 1
    if not killed:
        assert not [rel for rel in listing if ".tmp-" in rel], "temporary uploads left behind"


def remote_hashes_ok(remote: Remote) -> bool:
    """Every blob on the remote hashes to its name."""
    fs, root = open_fs(remote)
    paths = fs.find(root.rstrip("/") + "/objects")
    return all(hash_bytes(body) == path.rsplit("/", 1)[1] for path, body in fs.cat(paths).items())


def settle(stores: list[Store], remote: str) -> None:
    """Everyone pushes, then everyone pulls: all have everything."""
    for store in stores:
        store.sync(remote)
    for store in stores:
        store.pull(remote)


def populate(store: Store, user: str, count: int, tag: str) -> list[str]:
    ids = []
    for i in range(count):
        content = store.upload(f"{tag}-{i}".encode() * (i + 1), user, description=f"{tag} {i}")
        ids.append(content.content_id)
    return ids


# -- convergence ----------------------------------------------------------------------------


def test_replicas_converge(remote: Remote, stores: Any) -> None:
    """Three offline replicas converge through one remote; versions and bytes agree."""
    a, b, c = stores("a"), stores("b"), stores("c")
    for store in (a, b, c):
        connect(store, remote)
    mine = populate(a, "alice", 3, "a")
    populate(b, "bob", 2, "b")
    a.update_metadata(mine[0], "alice", tags="x,y")
    a.create_collaboration("alice", mine[1], "carol", "write")
    b.generate_api_key("bob", "laptop")
    a.get_content(mine[0], "alice")  # a read: counters travel too
    settle([a, b, c], "origin")
    assert a.state_digest() == b.state_digest() == c.state_digest()
    c.upload(b"new bytes by carol", "carol", content_id=mine[1])  # carol may write
    settle([a, b, c], "origin")
    assert a.state_digest() == b.state_digest() == c.state_digest()
    for store in (a, b, c):
        versions = store.get_content_versions(mine[1], "alice")
        assert [v.version for v in versions] == [1, 2]
        assert store.read_content(mine[1], "alice") == b"new bytes by carol"
        assert store.verify() == []
    assert_remote_consistent(remote)
    assert remote_hashes_ok(remote)


def test_concurrent_changes_merge_by_hlc(stores: Any, tmp_path: Path) -> None:
    """The same field set on two replicas: the later HLC wins everywhere; a delete made
    concurrently with an update wins over it; versions agree on every replica."""
    url = str(tmp_path / "remote")
    a, b = stores("a"), stores("b")
    first = a.upload(b"one", "alice", description="v1").content_id
    second = a.upload(b"two", "alice").content_id
    a.create_collaboration("alice", first, "bob", "write")
    settle([a, b], url)
    a.update_metadata(first, "alice", description="from a")
    b.update_metadata(first, "bob", description="from b")  # later HLC: b's clock saw a's
    a.delete_content(second, "alice")
    b.update_metadata(second, "alice", tags="edited")
    settle([a, b], url)
    assert a.state_digest() == b.state_digest()
    assert a.get_content(first, "alice").description == "from b"
    for store in (a, b):
        with pytest.raises(NotFound):
            store.get_content(second, "alice")
        history = store.get_content_versions(first, "alice")
        assert [v.description for v in history] == ["v1", "from a", "from b"]
        assert store.verify() == []


def test_counters_merge_as_grow_only(stores: Any, tmp_path: Path) -> None:
    """Reads on two replicas add up after sync; distinct viewers merge as a set."""
    url = str(tmp_path / "remote")
    a, b = stores("a"), stores("b")
    cid = a.upload(b"pic", "alice").content_id
    a.create_collaboration("alice", cid, "bob")
    settle([a, b], url)
    for _ in range(3):
        a.get_content(cid, "alice")
    b.get_content(cid, "bob")
    b.read_content(cid, "alice")
    settle([a, b], url)
    assert a.state_digest() == b.state_digest()
    stats = [s.get_analytics("alice", cid) for s in (a, b)]
    assert stats[0] == stats[1]
    assert (stats[0].views, stats[0].downloads, stats[0].unique_viewers) == (4, 1, 2)
    assert stats[0].bytes_served == 3
    usage = [s.get_api_usage("alice") for s in (a, b)]
    assert usage[0] == usage[1]


def test_deleted_and_collected_before_first_push(stores: Any, tmp_path: Path) -> None:
    """Bytes deleted and garbage-collected before they were ever pushed are not needed:
    the delete travels in the same push."""
    url = str(tmp_path / "remote")
    a, b = stores("a"), stores("b")
    gone = a.upload(b"short-lived", "alice").content_id
    kept = a.upload(b"kept", "alice").content_id
    a.delete_content(gone, "alice")
    assert a.gc(min_age=0).blobs_removed == 1
    assert a.push(url).blobs_sent == 1
    b.pull(url, blobs="eager")
    assert b.state_digest() == a.state_digest()
    assert b.read_content(kept, "alice") == b"kept"
    assert b.verify() == []


def test_corrupt_local_blob_is_never_pushed(stores: Any, tmp_path: Path) -> None:
    a = stores("a")
    digest = a.upload(b"good bytes", "alice").hash
    damage_blob(a, digest, "flipped byte")
    with pytest.raises(IntegrityError, match="do not match their hash"):
        a.push(str(tmp_path / "remote"))
    assert not (tmp_path / "remote" / "ops").exists()
    assert not (tmp_path / "remote" / "objects").exists()


def test_repointed_remote_gets_everything(stores: Any, tmp_path: Path) -> None:
    """A name pointed at a new URL starts afresh: the new place gets every op and blob."""
    a = stores("a")
    populate(a, "alice", 3, "moved")
    a.add_remote("origin", str(tmp_path / "first"))
    assert a.push("origin").ops_sent == 3
    a.add_remote("origin", str(tmp_path / "second"))
    assert (a.push("origin").ops_sent, a.push("origin").ops_sent) == (3, 0)


def test_counter_snapshots_written_within_one_clock_tick(stores: Any, tmp_path: Path) -> None:
    """Two snapshots of one size that a folder remote stamps with the same modification
    time (one tick of the file system's clock) are both merged."""
    folder = tmp_path / "remote"
    a, b = stores("a"), stores("b")
    cid = a.upload(b"x", "alice").content_id
    a.get_content(cid, "alice")
    a.push(str(folder))
    b.pull(str(folder))
    snapshot = folder / "counters" / a.replica_id
    stamp = snapshot.stat()
    a.get_content(cid, "alice")
    a.push(str(folder))
    assert snapshot.stat().st_size == stamp.st_size
    os.utime(snapshot, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    b.pull(str(folder))
    assert b.state_digest() == a.state_digest()
    assert b.get_analytics("alice", cid).views == 2


# -- blobs: eager, lazy, none -----------------------------------------------------------------


def test_pull_eager_brings_every_blob(remote: Remote, stores: Any) -> None:
    a, b = stores("a"), stores("b")
    connect(a, remote), connect(b, remote)
    cids = populate(a, "alice", 4, "eager")
    a.push("origin")
    report = b.pull("origin", blobs="eager")
    assert (report.ops_received, report.blobs_received) == (4, 4)
    assert b.replica.catalog.local.remote_blob_sources() == {}
    assert all(b.replica.blobs.exists(b.get_content(cid, "alice").hash) for cid in cids)
    assert b.verify() == []


def test_pull_lazy_fetches_on_first_read(remote: Remote, stores: Any) -> None:
    """Lazy: recorded remote-only; the first read downloads, checks and keeps the bytes;
    afterwards the remote is not needed."""
    a, b = stores("a"), stores("b")
    connect(a, remote), connect(b, remote)
    cid = a.upload(b"lazy bytes" * 1000, "alice").content_id
    a.push("origin")
    report = b.pull("origin", blobs="lazy")
    digest = b.get_content(cid, "alice").hash
    assert (report.ops_received, report.blobs_received) == (1, 0)
    assert not b.replica.blobs.exists(digest)
    assert b.replica.catalog.local.remote_blob_sources() == {digest: "origin"}
    assert b.verify() == []  # invariant 4: recorded as remote-only counts
    with b.open_content(cid, "alice") as reader:
        assert reader.read() == b"lazy bytes" * 1000
    assert b.replica.blobs.exists(digest)
    assert b.replica.catalog.local.remote_blob_sources() == {}
    b.add_remote("origin", str(b.path / "no-such-folder"))  # bytes are local now
    assert b.read_content(cid, "alice") == b"lazy bytes" * 1000


def test_pull_none_then_lazy(remote: Remote, stores: Any) -> None:
    """blobs="none": no bytes and no source; reads say so; a lazy pull gives a source."""
    a, b = stores("a"), stores("b")
    connect(a, remote), connect(b, remote)
    cid = a.upload(b"metadata only", "alice").content_id
    a.push("origin")
    b.pull("origin", blobs="none")
    assert b.get_content(cid, "alice").size == len(b"metadata only")
    assert b.verify() == []
    with pytest.raises(BlobUnavailable, match="remote-only"):
        b.read_content(cid, "alice")
    b.pull("origin", blobs="lazy")
    assert b.read_content(cid, "alice") == b"metadata only"


def test_eager_pull_hydrates_lazy_blobs(remote: Remote, stores: Any) -> None:
    a, b = stores("a"), stores("b")
    connect(a, remote), connect(b, remote)
    populate(a, "alice", 3, "hydrate")
    a.push("origin")
    b.pull("origin", blobs="lazy")
    assert len(b.replica.catalog.local.remote_blob_sources()) == 3
    report = b.pull("origin", blobs="eager")
    assert (report.ops_received, report.blobs_received) == (0, 3)
    assert b.replica.catalog.local.remote_blob_sources() == {}
    assert b.verify() == []


def test_lazy_read_with_remote_unreachable(stores: Any, tmp_path: Path) -> None:
    """No remote answers: a clear BlobUnavailable that says the bytes are remote-only."""
    folder = tmp_path / "remote"
    a, b = stores("a"), stores("b")
    cid = a.upload(b"far away", "alice").content_id
    a.push(str(folder))
    b.pull(str(folder), blobs="lazy")
    folder.rename(tmp_path / "moved")
    with pytest.raises(BlobUnavailable, match="only on remote") as caught:
        b.read_content(cid, "alice")
    assert caught.value.digest == b.get_content(cid, "alice").hash
    assert b.verify() == []  # still recorded as remote-only, nothing corrupt stored


def test_lazy_read_with_s3_down(stores: Any, tmp_path: Path) -> None:
    """A remote whose server does not answer at all: BlobUnavailable, promptly."""
    a, b = stores("a"), stores("b")
    folder = tmp_path / "remote"
    cid = a.upload(b"over the network", "alice").content_id
    a.push(str(folder))
    b.add_remote("origin", str(folder))
    b.pull("origin")
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    b.add_remote(
        "origin",
        "s3://bucket",
        key="k",
        secret="s3cr3t-value",
        endpoint_url=f"http://127.0.0.1:{port}",
        config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 1},
    )
    with pytest.raises(BlobUnavailable, match="cannot reach") as caught:
        b.read_content(cid, "alice")
    assert "s3cr3t-value" not in str(caught.value)


def test_corrupt_blob_on_remote_is_never_kept(remote: Remote, stores: Any) -> None:
    """Bytes that do not match their hash: a lazy read fails and an eager pull fails, and
    neither stores them."""
    a, b, c = stores("a"), stores("b"), stores("c")
    for store in (a, b, c):
        connect(store, remote)
    cid = a.upload(b"precious bytes", "alice").content_id
    a.push("origin")
    digest = a.get_content(cid, "alice").hash
    fs, root = open_fs(remote)
    fs.pipe_file(
        f"{root.rstrip('/')}/objects/{digest[:2]}/{digest[2:4]}/{digest}", b"evil bytes!!!!"
    )
    b.pull("origin", blobs="lazy")
    with pytest.raises(BlobUnavailable, match="corrupt"):
        b.read_content(cid, "alice")
    assert not b.replica.blobs.exists(digest)
    before = c.state_digest()
    with pytest.raises(RemoteError, match="corrupt"):
        c.pull("origin", blobs="eager")
    assert c.state_digest() == before
    assert not c.replica.blobs.exists(digest)


# -- bad remotes leave the store unchanged --------------------------------------------------


def test_corrupt_segment_changes_nothing(remote: Remote, stores: Any) -> None:
    a, b = stores("a"), stores("b")
    connect(a, remote), connect(b, remote)
    populate(a, "alice", 2, "seg")
    a.push("origin")
    fs, root = open_fs(remote)
    segment = next(p for p in fs.find(root.rstrip("/") + "/ops"))
    good = fs.cat_file(segment)
    before = b.state_digest()
    for bad in (b"\xc1 not msgpack", msgpack.packb([b"\x80"]), good[:-3], msgpack.packb([])):
        fs.pipe_file(segment, bad)
        with pytest.raises(RemoteError, match="corrupt"):
            b.pull("origin")
        assert b.state_digest() == before
        assert b.replica.catalog.local.remote_progress("origin@" + remote.url) == {}
    fs.pipe_file(segment, good)
    assert b.pull("origin").ops_received == 2


def test_ops_of_a_newer_format_are_refused_by_name(stores: Any, tmp_path: Path) -> None:
    """A replica meeting ops written by a newer release (a newer op format) applies none of
    them and says which release to upgrade to; ops without a format (older releases) and
    of its own format keep applying."""
    remote = local_remote(tmp_path / "remote")
    a, b = stores("a"), stores("b")
    connect(a, remote), connect(b, remote)
    populate(a, "alice", 2, "fmt")
    a.push("origin")
    fs, root = open_fs(remote)
    segment = next(p for p in fs.find(root.rstrip("/") + "/ops"))
    good = fs.cat_file(segment)
    ops = [msgpack.unpackb(raw) for raw in msgpack.unpackb(good)]
    assert all(op["format"] == oplog.OP_FORMAT for op in ops)

    def segment_of(objs: list[dict[str, Any]]) -> bytes:
        return msgpack.packb([msgpack.packb(obj) for obj in objs])  # type: ignore[no-any-return]

    newer = [{**ops[0], "format": oplog.OP_FORMAT + 1, "writer": "9.3.0"}, ops[1]]
    before = b.state_digest()
    fs.pipe_file(segment, segment_of(newer))
    with pytest.raises(RemoteError, match=r"upgrade to dreamflare-store 9\.3\.0") as info:
        b.pull("origin")
    assert "corrupt" not in str(info.value)
    assert b.state_digest() == before
    # Ops of older releases carry no format: they are format 1 and apply.
    older = [{k: v for k, v in op.items() if k not in ("format", "writer")} for op in ops]
    fs.pipe_file(segment, segment_of(older))
    assert b.pull("origin").ops_received == 2
    assert b.state_digest() == a.state_digest()


def test_missing_blob_on_remote_changes_nothing(remote: Remote, stores: Any) -> None:
    a, b = stores("a"), stores("b")
    connect(a, remote), connect(b, remote)
    cid = a.upload(b"will vanish", "alice").content_id
    a.push("origin")
    digest = a.get_content(cid, "alice").hash
    fs, root = open_fs(remote)
    fs.rm_file(f"{root.rstrip('/')}/objects/{digest[:2]}/{digest[2:4]}/{digest}")
    before = b.state_digest()
    for mode in ("lazy", "eager"):
        with pytest.raises(RemoteError, match="does not have"):
            b.pull("origin", blobs=mode)
        assert b.state_digest() == before
    # Metadata without bytes is still to be had.
    assert b.pull("origin", blobs="none").ops_received == 1
    assert b.verify() == []


def test_corrupt_counters_change_nothing(remote: Remote, stores: Any) -> None:
    a, b = stores("a"), stores("b")
    connect(a, remote), connect(b, remote)
    cid = a.upload(b"x", "alice").content_id
    a.get_content(cid, "alice")
    a.push("origin")
    fs, root = open_fs(remote)
    path = f"{root.rstrip('/')}/counters/{a.replica_id}"
    before = b.state_digest()
    for bad in (
        b"junk",
        msgpack.packb({"format": 1, "replica": "someone-else"}),
        msgpack.packb({"format": 1, "replica": a.replica_id, "viewers": [[1, 2, 3]]}),
    ):
        fs.pipe_file(path, bad)
        with pytest.raises(RemoteError, match="counter snapshot"):
            b.pull("origin")
        assert b.state_digest() == before


def test_unknown_protocol(stores: Any) -> None:
    a = stores("a")
    with pytest.raises(RemoteError, match="unknown remote protocol"):
        a.add_remote("origin", "nosuchproto://bucket")
    with pytest.raises(RemoteError, match="unknown remote protocol"):
        a.push("nosuchproto://bucket/x")
    assert a.replica.catalog.local.remotes() == {}


def test_missing_bucket(remote: Remote, remote_kind: str, stores: Any, tmp_path: Path) -> None:
    a = stores("a")
    a.upload(b"data", "alice")
    before = a.state_digest()
    if remote_kind == "file":
        url = (tmp_path / "no" / "such" / "folder").as_uri()
        a.add_remote("gone", url)
        with pytest.raises(RemoteError, match="does not exist"):
            a.pull("gone")
    else:
        scheme = remote.url.split("://")[0]
        a.add_remote("gone", f"{scheme}://no-such-bucket-0123", **remote.storage_options)
        for action in (a.push, a.pull):
            with pytest.raises(RemoteError, match="no such bucket"):
                action("gone")
    assert a.state_digest() == before


@pytest.fixture(scope="module")
def s3_with_auth(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A moto server that checks credentials (none it knows): every request is refused."""
    from backends import start_s3

    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "1"  # the readiness probe
    try:
        server = start_s3(tmp_path_factory.mktemp("s3-auth") / "server.log")
    finally:
        del os.environ["INITIAL_NO_AUTH_ACTION_COUNT"]
    with server:
        yield server


def test_wrong_credentials(s3_with_auth: Any, stores: Any) -> None:
    a = stores("a")
    a.upload(b"data", "alice")
    options = dict(s3_with_auth.storage_options(), secret="wrong-secret-value")
    a.add_remote("origin", "s3://some-bucket", **options)
    before = a.state_digest()
    for action in (a.push, a.pull):
        with pytest.raises(RemoteError, match="credentials") as caught:
            action("origin")
        assert "wrong-secret-value" not in str(caught.value)
    assert a.state_digest() == before


def test_remote_names_and_urls(stores: Any, tmp_path: Path) -> None:
    """A configured name wins over a URL; URLs and paths work directly; bad input is refused."""
    a, b = stores("a"), stores("b")
    a.upload(b"x", "alice")
    folder = tmp_path / "direct"
    assert a.push(str(folder)).ops_sent == 1
    assert a.push(folder.as_uri() + "/").ops_sent == 0  # the same remote, the same progress
    assert b.pull(folder.as_uri()).ops_received == 1
    with pytest.raises(NotFound, match="no remote named"):
        a.push("origin")
    for name in ("", "a/b", "s3://x", "-x", "x" * 65):
        with pytest.raises(InvalidArgument):
            a.add_remote(name, str(folder))
    with pytest.raises(InvalidArgument, match="JSON"):
        a.add_remote("origin", str(folder), handle=object())
    with pytest.raises(InvalidArgument):
        a.pull(str(folder), blobs="sometimes")
    # A configured name means its URL.
    b.add_remote("direct", str(tmp_path / "elsewhere"))
    b.push("direct")
    assert (tmp_path / "elsewhere" / "counters" / b.replica_id).exists()
    assert not (folder / "counters" / b.replica_id).exists()


def test_payload_with_gcs_multipart_boundary(remote: Remote, stores: Any) -> None:
    """gcsfs's fixed multipart boundary inside blobs and segments still round-trips."""
    a, b = stores("a"), stores("b")
    connect(a, remote), connect(b, remote)
    nasty = b"head\n--==0==\nContent-Type: text/plain\n\n--==0==--\r\n"
    cid = a.upload(nasty, "alice", description="desc with \n--==0== inside").content_id
    a.push("origin")
    b.pull("origin", blobs="eager")
    assert b.read_content(cid, "alice") == nasty
    assert b.get_content(cid, "alice").description == "desc with \n--==0== inside"


# -- batching: count the calls sync makes -----------------------------------------------------


def many_blobs(store: Store, count: int) -> None:
    """``count`` contents with distinct bytes, through the batch upload path."""
    made = store.upload_many([f"blob {i}".encode() for i in range(count)], "alice")
    assert all(not isinstance(outcome, Exception) for outcome in made)


def check_batched_transfers(remote: Remote, stores: Any, count: int) -> None:
    a = stores("a")
    many_blobs(a, count)
    a.add_remote("counted", flaky_url(remote), **flaky_options(remote))
    FlakyFileSystem.calls.clear()
    FlakyFileSystem.objects.clear()
    report = a.push("counted")
    assert (report.ops_sent, report.blobs_sent) == (count, count)
    calls = dict(FlakyFileSystem.calls)
    assert calls.pop("put") == 1 and FlakyFileSystem.objects["put"] == count
    assert calls.pop("find") == 2  # own segments, then one listing of objects/
    assert calls.pop("pipe_file") == 2  # the segment, then the counters
    calls.pop("makedirs", None)  # a folder remote is created on first push
    assert calls == {}, calls
    FlakyFileSystem.calls.clear()
    assert a.push("counted") == SyncReport()
    assert FlakyFileSystem.calls == Counter()  # nothing new: not one call
    b = stores("b")
    b.add_remote("counted", flaky_url(remote), **flaky_options(remote))
    FlakyFileSystem.calls.clear()
    FlakyFileSystem.objects.clear()
    report = b.pull("counted", blobs="eager")
    assert (report.ops_received, report.blobs_received) == (count, count)
    calls = dict(FlakyFileSystem.calls)
    assert calls.pop("get") == 1 and FlakyFileSystem.objects["get"] == count
    assert calls.pop("cat") == 2  # the new segment, the counter snapshot
    assert calls.pop("find") == 3  # ops/, counters/, objects/
    calls.pop("exists", None)  # is a folder remote there at all
    assert calls == {}, calls
    assert b.state_digest() == a.state_digest()


def test_push_batches_and_noop_push_makes_no_calls(
    remote: Remote, remote_kind: str, stores: Any
) -> None:
    """1,000 new blobs go up in one bulk call and come down in one; a push with nothing
    new makes no call at all. (100 on the servers here; the slow test sends 1,000.)"""
    check_batched_transfers(remote, stores, 1000 if remote_kind == "file" else 100)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_push_1000_blobs_to_servers_batched(
    kind: str, request: pytest.FixtureRequest, stores: Any
) -> None:
    server = request.getfixturevalue(f"{kind}_server")
    check_batched_transfers(server.new_bucket(), stores, 1000)


# -- faults and interruptions ------------------------------------------------------------------


def test_faults_are_retried_until_replicas_converge(remote: Remote, stores: Any) -> None:
    """Every remote call may fail (mid-way through bulk transfers, or after the write
    happened); retrying push and pull converges, and the remote never holds an op whose
    blob is missing."""
    replicas = [stores(f"r{i}") for i in range(3)]
    for i, store in enumerate(replicas):
        store.add_remote(
            "flaky", flaky_url(remote), **flaky_options(remote, fail_rate=0.15, seed=i)
        )
    rng = random.Random(7)
    failures = 0
    for round_ in range(3):
        for i, store in enumerate(replicas):
            user = f"user{i}"
            populate(store, user, rng.randrange(1, 4), f"r{i}-{round_}")
            mine = store.list_content(user).items
            if mine and rng.random() < 0.5:
                store.update_metadata(mine[0].content_id, user, description=f"round {round_}")
            for action in (store.push, lambda name, s=store: s.pull(name, blobs="eager")):
                try:
                    action("flaky")
                except RemoteError:
                    failures += 1
                assert_remote_consistent(remote)
    assert failures > 5
    for store in replicas:  # now retry until everything got through
        for _ in range(200):
            try:
                store.sync("flaky")
                break
            except RemoteError:
                failures += 1
        else:
            pytest.fail("sync never got through")
    for store in replicas:
        for _ in range(200):
            try:
                store.pull("flaky", blobs="eager")
                break
            except RemoteError:
                pass
    digests = {store.state_digest() for store in replicas}
    assert len(digests) == 1
    for store in replicas:
        assert store.verify() == []
    assert_remote_consistent(remote)
    assert remote_hashes_ok(remote)


KILLED = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import test_sync  # registers flaky://
    from dreamflare_store import Store
    store = Store({store!r})
    store.{action}
    """
)


@pytest.mark.parametrize("kill_on", ["put", "pipe_file"])
def test_killed_push_resumes(remote: Remote, stores: Any, tmp_path: Path, kill_on: str) -> None:
    """SIGKILL part-way through a push (blobs half uploaded; the segment written but not
    recorded): the next push sends what is missing, once."""
    a = stores("a")
    populate(a, "alice", 6, "kill")
    a.get_content(a.list_content("alice").items[0].content_id, "alice")
    a.add_remote("flaky", flaky_url(remote), **flaky_options(remote, kill_on=kill_on))
    a.close()
    script = KILLED.format(tests=str(TESTS), store=str(tmp_path / "a"), action='push("flaky")')
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()
    assert_remote_consistent(remote, killed=True)  # nothing half-done is visible
    a = stores("a")
    a.add_remote("flaky", flaky_url(remote), **flaky_options(remote))
    a.push("flaky")
    assert_remote_consistent(remote, killed=True)
    b = stores("b")
    connect(b, remote)
    assert b.pull("origin", blobs="eager").ops_received == 6
    assert b.state_digest() == a.state_digest()


def test_killed_pull_resumes(remote: Remote, stores: Any, tmp_path: Path) -> None:
    """SIGKILL part-way through an eager pull (segments read, blobs half downloaded)."""
    a = stores("a")
    populate(a, "alice", 6, "pull")
    connect(a, remote)
    a.push("origin")
    b = stores("b")
    b.add_remote("flaky", flaky_url(remote), **flaky_options(remote, kill_on="get", seed=1))
    b.close()
    script = KILLED.format(
        tests=str(TESTS), store=str(tmp_path / "b"), action='pull("flaky", blobs="eager")'
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()
    b = stores("b")
    assert b.replica.catalog.log.max_rseq(a.replica_id) == 0  # nothing was applied
    b.add_remote("flaky", flaky_url(remote), **flaky_options(remote))
    assert b.pull("flaky", blobs="eager").ops_received == 6
    assert b.state_digest() == a.state_digest()
    assert b.verify() == []
    assert b.replica.catalog.local.remote_blob_sources() == {}


# -- the command line ---------------------------------------------------------------------------


def test_cli_sync_commands_show_progress_and_hide_secrets(
    stores: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """remote add / push / pull / sync: a bar per phase on a terminal (here: pretended),
    reports on stdout, and a credential given as an option is never printed."""
    from click.testing import CliRunner

    from dreamflare_store.cli import cli, progress

    folder = local_remote(tmp_path / "remote")
    monkeypatch.setattr(progress, "show_progress", lambda state: True)
    runner = CliRunner()

    def run(store: str, *args: str) -> Any:
        result = runner.invoke(cli, ["--store", str(tmp_path / store), *args])
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return result

    a = stores("a")
    populate(a, "alice", 20, "cli")
    a.close()
    added = run(
        "a", "remote", "add", "origin", flaky_url(folder),
        "-o", "target_protocol=file", "-o", "delay=0.7",
        "-o", "target_options=" + json.dumps({"auto_mkdir": True, "token": "s3cr3t-token"}),
    )  # fmt: skip
    pushed = run("a", "push")
    assert "s3cr3t-token" not in added.output + pushed.output
    assert "Uploading files" in pushed.stderr and "/20 files" in pushed.stderr
    assert pushed.stdout.startswith(f"origin ({flaky_url(folder)}): sent 20 changes and 20 files")
    run("b", "init")
    run("b", "remote", "add", "origin", flaky_url(folder), "-o", "target_protocol=file",
        "-o", "delay=0.7")  # fmt: skip
    pulled = run("b", "pull", "--blobs", "eager")
    assert "Downloading files" in pulled.stderr
    assert "received 20 changes and 20 files" in pulled.stdout
    synced = json.loads(run("b", "--json", "sync", "--blobs", "none").stdout)
    assert synced["opsReceived"] == 0
