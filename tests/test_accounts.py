"""API keys, API usage, analytics, buffered counters and quotas (operations 7-10, quota)."""

from __future__ import annotations

import base64
import gc
import io
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import disk_state, stored_blobs

from dreamflare_store import (
    ApiKey,
    DreamflareError,
    InvalidArgument,
    NewApiKey,
    NotFound,
    QuotaExceeded,
    Store,
    Unauthenticated,
    oplog,
)
from dreamflare_store import counters as counters_module
from dreamflare_store.keys import secret_hash

DAY_ONE_LATE = int(datetime(2026, 11, 28, 23, 59, 30, tzinfo=UTC).timestamp() * 1000)
UNKNOWN_CONTENT = "cnt_" + "0" * 26
UNKNOWN_KEY = "key_" + "0" * 26


class FakeClock:
    """A wall clock the test moves by hand (thread-safe enough: reads of one int)."""

    def __init__(self, ms: int = DAY_ONE_LATE) -> None:
        self.ms = ms

    def time_ms(self) -> int:
        return self.ms

    def advance(self, ms: int) -> None:
        self.ms += ms


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock):
    with Store(tmp_path / "store", clock=clock) as s:
        yield s


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# -- 8, 9. API keys ------------------------------------------------------------------------


def test_generate_api_key_returns_a_long_random_secret_once(store: Store, clock: FakeClock):
    key = store.generate_api_key("alice", description="ci runner")
    assert isinstance(key, NewApiKey)
    assert key.key_id.startswith("key_") and key.user_id == "alice"
    assert key.description == "ci runner" and key.created_at == _iso(clock.ms)
    assert key.revoked_at is None and key.last_used_at is None
    secret = key.api_key
    assert secret.startswith("dfk_") and len(secret) >= 32
    body = secret[len("dfk_") :]
    assert len(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))) * 8 >= 128
    assert key.to_dict()["apiKey"] == secret
    # Listed keys never carry the secret, in Python or in JSON.
    (listed,) = store.list_api_keys("alice")
    assert isinstance(listed, ApiKey) and not hasattr(listed, "api_key")
    assert listed.key_id == key.key_id and "apiKey" not in listed.to_dict()
    assert secret not in repr(listed.to_dict())


def test_secrets_and_ids_never_repeat(store: Store) -> None:
    keys = [store.generate_api_key("alice") for _ in range(200)]
    assert len({k.api_key for k in keys}) == len({k.key_id for k in keys}) == 200
    # 200 secrets of 43 random base64url characters use the whole alphabet.
    alphabet = set("".join(k.api_key[4:] for k in keys))
    assert len(alphabet) == 64


def test_the_store_keeps_only_a_hash_of_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with Store(path) as store:
        key = store.generate_api_key("alice")
        (op,) = [op for op in store.replica.catalog.log.all_ops() if op.kind == oplog.KEY_CREATE]
        # The op (which sync ships to every replica) holds the hash, not the secret.
        assert op.data["secret_hash"] == secret_hash(key.api_key)
        assert key.api_key not in repr(op.data)
    secret = key.api_key.encode()
    for file in path.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            assert secret not in data and secret[4:] not in data, file.name
    with Store(path) as store:
        assert store.authenticate(key.api_key) == "alice"


def test_authenticate_returns_the_owner_and_records_last_use(tmp_path: Path, clock: FakeClock):
    path = tmp_path / "store"
    with Store(path, clock=clock) as store:
        alice = store.generate_api_key("alice")
        bob = store.generate_api_key("bob")
        clock.advance(60_000)
        assert store.authenticate(alice.api_key) == "alice"
        assert store.authenticate(bob.api_key) == "bob"
        assert store.list_api_keys("alice")[0].last_used_at == _iso(clock.ms)
        clock.advance(5_000)
        assert store.authenticate(alice.api_key) == "alice"
        used = clock.ms
        # authenticate is not an API call: it does not count in usage.
        assert store.get_api_usage("alice").by_operation == {
            "generate_api_key": {"calls": 1, "errors": 0, "bytesIn": 0, "bytesOut": 0}
        }
    with Store(path, clock=clock) as store:  # the last use was flushed on close
        assert store.list_api_keys("alice")[0].last_used_at == _iso(used)
        assert store.list_api_keys("bob")[0].last_used_at == _iso(used - 5_000)


def _bad_secrets(secret: str) -> list[Any]:
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    return [
        "",
        "dfk_",
        "dfk_" + "A" * 43,  # well formed, unknown
        flipped,  # one character off
        secret + "A",
        secret[:-1],
        " " + secret,
        secret + "\n",
        "xyz_" + secret[4:],
        secret.upper() if secret.upper() != secret else secret.lower(),
        "Bearer " + secret,
        secret.encode(),
        None,
        12345,
        ["dfk_"],
    ]


def test_authenticate_refuses_revoked_unknown_and_malformed_keys(store: Store) -> None:
    secret = store.generate_api_key("alice").api_key
    revoked = store.generate_api_key("alice")
    store.revoke_api_key(revoked.key_id, "alice")
    before = store.state_digest()
    for bad in [revoked.api_key, *_bad_secrets(secret)]:
        with pytest.raises(Unauthenticated) as raised:
            store.authenticate(bad)
        assert raised.value.status == 401 and raised.value.code == "unauthenticated"
    assert store.state_digest() == before
    assert store.list_api_keys("alice")[1].last_used_at is None  # a refused key is not used
    assert store.authenticate(secret) == "alice"


def test_a_key_of_another_store_is_unknown(tmp_path: Path) -> None:
    with Store(tmp_path / "one") as one, Store(tmp_path / "two") as two:
        secret = one.generate_api_key("alice").api_key
        with pytest.raises(Unauthenticated):
            two.authenticate(secret)


def test_revoke_api_key(store: Store, clock: FakeClock) -> None:
    first = store.generate_api_key("alice")
    second = store.generate_api_key("alice")
    bobs = store.generate_api_key("bob")
    clock.advance(1_000)
    assert store.revoke_api_key(first.key_id, "alice") is None
    with pytest.raises(Unauthenticated):
        store.authenticate(first.api_key)
    assert store.authenticate(second.api_key) == "alice"
    assert store.authenticate(bobs.api_key) == "bob"
    listed = store.list_api_keys("alice")
    assert [k.key_id for k in listed] == [first.key_id, second.key_id]  # revoked ones stay
    assert listed[0].revoked_at == _iso(clock.ms) and listed[1].revoked_at is None
    kinds = [op.kind for op in store.replica.catalog.log.all_ops() if op.entity == first.key_id]
    assert kinds == [oplog.KEY_CREATE, oplog.KEY_REVOKE]


def test_revoke_api_key_bad_input_changes_nothing(store: Store) -> None:
    alice = store.generate_api_key("alice")
    bob = store.generate_api_key("bob")
    gone = store.generate_api_key("alice")
    store.revoke_api_key(gone.key_id, "alice")
    cases: list[tuple[Any, Any, type[DreamflareError]]] = [
        (gone.key_id, "alice", NotFound),  # revoking twice
        (bob.key_id, "alice", NotFound),  # another user's key
        (alice.key_id, "bob", NotFound),
        (UNKNOWN_KEY, "alice", NotFound),
        (alice.api_key, "alice", InvalidArgument),  # the secret is not the id
        ("key_" + "0" * 25, "alice", InvalidArgument),
        ("cnt_" + "0" * 26, "alice", InvalidArgument),
        ("", "alice", InvalidArgument),
        (None, "alice", InvalidArgument),
        (alice.key_id, "", InvalidArgument),
        (alice.key_id, None, InvalidArgument),
    ]
    for key_id, user, expected in cases:
        before = disk_state(store)
        with pytest.raises(DreamflareError) as raised:
            store.revoke_api_key(key_id, user)
        assert type(raised.value) is expected, (key_id, user, raised.value)
        assert disk_state(store) == before
    assert store.authenticate(alice.api_key) == "alice"
    assert store.authenticate(bob.api_key) == "bob"
    with pytest.raises(Unauthenticated):
        store.authenticate(gone.api_key)


def test_list_api_keys_shows_a_user_their_own_keys_only(store: Store) -> None:
    mine = [store.generate_api_key("alice", description=f"k{i}").key_id for i in range(3)]
    store.generate_api_key("bob")
    assert [k.key_id for k in store.list_api_keys("alice")] == mine
    assert store.list_api_keys("carol") == []
    for bad in ("", None, "x" * 129):
        with pytest.raises(InvalidArgument):
            store.list_api_keys(bad)


def test_generate_api_key_bad_input(store: Store) -> None:
    before = disk_state(store)
    for user, description in (("", None), (None, None), ("alice", "x" * 4097),
                              ("alice", "bell\x07"), ("alice", 7)):  # fmt: skip
        with pytest.raises(InvalidArgument):
            store.generate_api_key(user, description=description)
    assert disk_state(store) == before


# -- 7. API usage --------------------------------------------------------------------------


def _cell(calls: int, errors: int = 0, bytes_in: int = 0, bytes_out: int = 0) -> dict[str, int]:
    return {"calls": calls, "errors": errors, "bytesIn": bytes_in, "bytesOut": bytes_out}


def test_every_call_counts_with_errors_and_bytes(store: Store, tmp_path: Path) -> None:
    first = b"a" * 100
    second = b"b" * 50
    c = store.upload(first, "alice", description="d").content_id
    store.upload(second, "alice", content_id=c)
    other = store.upload(b"other bytes", "alice").content_id
    for _ in range(3):
        store.get_content(c, "alice")
    with pytest.raises(NotFound):
        store.get_content(UNKNOWN_CONTENT, "alice")
    with pytest.raises(InvalidArgument):
        store.get_content("nonsense", "alice")
    assert store.read_content(c, "alice") == second
    assert store.read_content(c, "alice", version=1) == first
    with pytest.raises(NotFound):
        store.read_content(c, "alice", version=9)
    with store.open_content(c, "alice") as reader:
        assert reader.read(20) == second[:20]  # bytes out are the bytes actually served
    with pytest.raises(InvalidArgument):
        store.update_metadata(c, "alice")
    store.update_metadata(c, "alice", tags="x")
    store.list_content("alice")
    store.get_storage_usage("alice")
    store.get_content_versions(c, "alice")
    key = store.generate_api_key("alice")
    store.revoke_api_key(key.key_id, "alice")
    with pytest.raises(NotFound):
        store.revoke_api_key(key.key_id, "alice")
    store.get_analytics("alice")
    store.get_analytics("alice", c)
    collab = store.create_collaboration("alice", c, "bob")
    store.list_collaborations("alice")
    store.update_collaboration(collab.collaboration_id, "alice", "write")
    store.delete_collaboration(collab.collaboration_id, "alice")
    store.delete_content(other, "alice")
    # None of these is an API call.
    store.authenticate(store.generate_api_key("carol").api_key)
    store.list_api_keys("alice")
    store.set_quota("alice", 10**9)
    store.verify()
    store.gc()
    store.state_digest()
    store.flush()

    usage = store.get_api_usage("alice")
    expected = {
        "upload": _cell(3, bytes_in=100 + 50 + len(b"other bytes")),
        "get_content": _cell(5, errors=2),
        "read_content": _cell(3, errors=1, bytes_out=150),
        "open_content": _cell(1, bytes_out=20),
        "update_metadata": _cell(2, errors=1),
        "list_content": _cell(1),
        "get_storage_usage": _cell(1),
        "get_content_versions": _cell(1),
        "generate_api_key": _cell(1),
        "revoke_api_key": _cell(2, errors=1),
        "get_analytics": _cell(2),
        "create_collaboration": _cell(1),
        "list_collaborations": _cell(1),
        "update_collaboration": _cell(1),
        "delete_collaboration": _cell(1),
        "delete_content": _cell(1),
    }
    assert usage.by_operation == expected
    assert usage.user_id == "alice"
    assert usage.total_calls == sum(cell["calls"] for cell in expected.values()) == 27
    assert usage.errors == 5
    assert (usage.bytes_in, usage.bytes_out) == (161, 170)
    assert usage.daily == ({"date": "2026-11-28", **_cell(27, 5, 161, 170)},)
    # The call that asked is counted too, for the next answer.
    assert store.get_api_usage("alice").by_operation["get_api_usage"] == _cell(1)
    assert store.get_api_usage("carol").by_operation == {"generate_api_key": _cell(1)}
    assert store.get_api_usage("nobody").total_calls == 0


def test_usage_daily_series_across_midnight(store: Store, clock: FakeClock) -> None:
    c = store.upload(b"12345", "alice").content_id  # 23:59:30 on day one
    store.read_content(c, "alice")
    clock.advance(60_000)  # 00:00:30 on day two
    store.read_content(c, "alice")
    store.get_content(c, "alice")
    with pytest.raises(NotFound):
        store.get_content(UNKNOWN_CONTENT, "alice")
    usage = store.get_api_usage("alice")
    assert usage.daily == (
        {"date": "2026-11-28", **_cell(2, bytes_in=5, bytes_out=5)},
        {"date": "2026-11-29", **_cell(3, errors=1, bytes_out=5)},
    )
    assert usage.to_dict() == {
        "userId": "alice",
        "totalCalls": 5,
        "errors": 1,
        "bytesIn": 5,
        "bytesOut": 10,
        "byOperation": {
            "get_content": _cell(2, errors=1),
            "read_content": _cell(2, bytes_out=10),
            "upload": _cell(1, bytes_in=5),
        },
        "daily": [
            {"date": "2026-11-28", **_cell(2, bytes_in=5, bytes_out=5)},
            {"date": "2026-11-29", **_cell(3, errors=1, bytes_out=5)},
        ],
    }


def test_each_user_is_charged_for_their_own_calls(store: Store) -> None:
    c = store.upload(b"shared", "alice").content_id
    store.create_collaboration("alice", c, "bob")
    store.read_content(c, "bob")
    with pytest.raises(NotFound):
        store.read_content(c, "mallory")
    assert store.get_api_usage("bob").by_operation == {"read_content": _cell(1, bytes_out=6)}
    assert store.get_api_usage("mallory").by_operation == {"read_content": _cell(1, errors=1)}
    assert "read_content" not in store.get_api_usage("alice").by_operation


# -- 10. analytics -------------------------------------------------------------------------


def test_views_downloads_and_viewers_of_one_content(store: Store, clock: FakeClock) -> None:
    data = b"0123456789" * 10
    c = store.upload(data, "alice").content_id
    store.create_collaboration("alice", c, "bob", "read")
    store.create_collaboration("alice", c, "carol", "write")
    store.get_content(c, "alice")  # the owner's own reads count too
    store.get_content(c, "alice")
    store.get_content(c, "bob")
    store.read_content(c, "bob")
    with store.open_content(c, "carol") as reader:
        assert reader.read() == data
    for user in ("mallory", "dave"):  # refused reads are no views
        with pytest.raises(NotFound):
            store.get_content(c, user)
        with pytest.raises(NotFound):
            store.read_content(c, user)
    store.get_content_versions(c, "bob")  # listing versions is neither a view nor a download
    store.list_content("alice")
    analytics = store.get_analytics("alice", c)
    assert (analytics.views, analytics.downloads, analytics.bytes_served) == (3, 2, 200)
    assert analytics.unique_viewers == 3
    assert analytics.daily == ({"date": "2026-11-28", "views": 3, "downloads": 2,
                                "bytesServed": 200},)  # fmt: skip
    assert analytics.top_content is None
    as_json = analytics.to_dict()
    assert as_json["contentId"] == c and as_json["uniqueViewers"] == 3
    assert "topContent" not in as_json


def test_a_partial_read_serves_only_what_was_read(store: Store) -> None:
    c = store.upload(b"x" * 1000, "alice").content_id
    with store.open_content(c, "alice") as reader:
        reader.seek(900)
        assert len(reader.read()) == 100
    with store.open_content(c, "alice"):
        pass  # opened, never read: still a download, no bytes served
    analytics = store.get_analytics("alice", c)
    assert (analytics.downloads, analytics.bytes_served) == (2, 100)
    assert store.get_api_usage("alice").by_operation["open_content"] == _cell(2, bytes_out=100)


def test_analytics_daily_series_and_distinct_viewers(store: Store, clock: FakeClock) -> None:
    c = store.upload(b"abc", "alice").content_id
    store.create_collaboration("alice", c, "bob")
    store.get_content(c, "bob")
    store.read_content(c, "bob")
    clock.advance(60_000)  # past midnight
    store.get_content(c, "bob")
    store.get_content(c, "alice")
    store.read_content(c, "alice", version=1)
    analytics = store.get_analytics("alice", c)
    assert analytics.daily == (
        {"date": "2026-11-28", "views": 1, "downloads": 1, "bytesServed": 3},
        {"date": "2026-11-29", "views": 2, "downloads": 1, "bytesServed": 3},
    )
    assert analytics.unique_viewers == 2  # bob on two days is one viewer
    # Distinct viewers are kept per content and day.
    rows = store.replica.catalog.db.conn.execute("SELECT day, user FROM viewers ORDER BY day, user")
    assert [tuple(row) for row in rows] == [
        ("2026-11-28", "bob"),
        ("2026-11-29", "alice"),
        ("2026-11-29", "bob"),
    ]


def test_analytics_of_all_a_users_content_with_the_top_ten(store: Store) -> None:
    ids = [store.upload(f"item {i}".encode(), "alice").content_id for i in range(12)]
    theirs = store.upload(b"bob's", "bob").content_id
    for i, c in enumerate(ids):
        for _ in range(i):
            store.get_content(c, "alice")
    store.read_content(ids[0], "alice")
    store.read_content(ids[0], "alice")
    store.get_content(theirs, "bob")
    store.delete_content(ids[11], "alice")  # deleted content leaves the figures
    analytics = store.get_analytics("alice")
    assert analytics.content_id is None
    assert analytics.views == sum(range(11))
    assert analytics.downloads == 2 and analytics.bytes_served == 2 * len(b"item 0")
    assert analytics.unique_viewers == 1
    top = analytics.top_content
    assert top is not None and len(top) == 10
    assert [item["contentId"] for item in top] == [ids[i] for i in range(10, 0, -1)]
    assert [item["views"] for item in top] == list(range(10, 0, -1))
    assert analytics.to_dict()["topContent"][0] == {"contentId": ids[10], "views": 10,
                                                    "downloads": 0}  # fmt: skip
    bob = store.get_analytics("bob")
    assert (bob.views, bob.unique_viewers) == (1, 1)
    assert [item["contentId"] for item in bob.top_content or ()] == [theirs]


def test_analytics_bad_input_changes_nothing(store: Store) -> None:
    c = store.upload(b"abc", "alice").content_id
    cases: list[tuple[Any, Any, type[DreamflareError]]] = [
        ("alice", UNKNOWN_CONTENT, NotFound),
        ("bob", c, NotFound),
        ("alice", "cnt_x", InvalidArgument),
        ("alice", "col_" + "0" * 26, InvalidArgument),
        ("alice", 5, InvalidArgument),
        ("", c, InvalidArgument),
        (None, None, InvalidArgument),
    ]
    for user, content, expected in cases:
        before = disk_state(store)
        with pytest.raises(DreamflareError) as raised:
            store.get_analytics(user, content)
        assert type(raised.value) is expected
        assert disk_state(store) == before


# -- buffered counters ---------------------------------------------------------------------


def test_reads_take_no_write_lock(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer holds the lock; hundreds of counted reads still go on at full speed."""
    monkeypatch.setattr(counters_module, "FLUSH_SECONDS", 3600.0)
    c = store.upload(b"bytes to read", "alice").content_id
    store.flush()
    blocker = sqlite3.connect(store.path / "catalog.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    done = threading.Event()

    def reads() -> None:
        for _ in range(200):
            store.get_content(c, "alice")
            store.read_content(c, "alice")
        store.get_content_versions(c, "alice")
        done.set()

    worker = threading.Thread(target=reads)
    try:
        worker.start()
        assert done.wait(20), "reads waited for the write lock"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        worker.join()
    analytics = store.get_analytics("alice", c)
    assert (analytics.views, analytics.downloads) == (200, 200)


def test_a_read_never_fails_because_its_counters_could_not_be_written(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that cannot be written now (the lock held too long, a full disk) stays
    buffered for the next one; the read that happened to trigger it still succeeds."""
    monkeypatch.setattr(counters_module, "FLUSH_EVENTS", 1)
    c = store.upload(b"abc", "alice").content_id
    real = store.replica.catalog.tallies.add_counters
    failures = [3]

    def failing(*args: Any) -> None:
        if failures[0]:
            failures[0] -= 1
            raise sqlite3.OperationalError("database is locked")
        real(*args)

    monkeypatch.setattr(store.replica.catalog.tallies, "add_counters", failing)
    reads = 0
    deadline = time.monotonic() + 30
    while failures[0] and time.monotonic() < deadline:  # each read wakes the writer
        assert store.get_content(c, "alice").content_id == c
        assert store.read_content(c, "alice") == b"abc"
        reads += 1
        time.sleep(0.01)
    assert failures == [0] and reads >= 1
    analytics = store.get_analytics("alice", c)  # nothing lost, nothing counted twice
    assert (analytics.views, analytics.downloads) == (reads, reads)
    assert analytics.bytes_served == 3 * reads
    usage = store.get_api_usage("alice").by_operation
    assert usage["get_content"] == _cell(reads)
    assert usage["read_content"] == _cell(reads, bytes_out=3 * reads)


def test_readers_do_not_wait_for_another_readers_flush(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one reader's batch waits for the write lock, the other readers go on."""
    monkeypatch.setattr(counters_module, "FLUSH_SECONDS", 0.0)
    counters = store.replica.counters
    entered = threading.Event()
    armed = False
    real_flush = counters.flush

    def flush() -> None:
        with counters._flush_lock:  # (reentrant) armed or not, decided once it is ours
            if armed:
                entered.set()
            real_flush()

    # Patched before anything is counted, so every batch the buffer's thread writes goes
    # through it: one it began earlier cannot hold that thread while the test waits.
    monkeypatch.setattr(counters, "flush", flush)
    c = store.upload(b"abc", "alice").content_id
    store.flush()
    blocker = sqlite3.connect(store.path / "catalog.db", isolation_level=None)
    # Taken while no batch is being written (the upload's may still be, on a slow disk),
    # so the next batch to start is a reader's and finds the write lock held.
    with counters._flush_lock:
        blocker.execute("BEGIN IMMEDIATE")
        armed = True
    first = threading.Thread(target=store.get_content, args=(c, "alice"))
    others_done = threading.Event()

    def others() -> None:
        for _ in range(100):
            store.get_content(c, "alice")
        others_done.set()

    second = threading.Thread(target=others)
    try:
        first.start()
        assert entered.wait(20)  # the first reader's batch now waits for the write lock
        second.start()
        assert others_done.wait(20), "a reader waited for another reader's flush"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        for thread in (first, second):
            if thread.ident is not None:
                thread.join()
    assert store.get_analytics("alice", c).views == 101


def test_counters_flush_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(counters_module, "FLUSH_SECONDS", 3600.0)
    monkeypatch.setattr(counters_module, "FLUSH_EVENTS", 50)
    path = tmp_path / "store"
    with Store(path) as writer, Store(path) as watcher:
        c = writer.upload(b"abc", "alice").content_id
        writer.flush()
        for _ in range(10):
            writer.get_content(c, "alice")
        # Ten reads are still in the reader's memory: another store does not see them yet.
        assert watcher.get_analytics("alice", c).views == 0
        for _ in range(40):
            writer.get_content(c, "alice")
        # 50 reads make 100 events: the batch limit was passed, so the buffer's own
        # thread writes them, a moment later.
        deadline = time.monotonic() + 30
        while watcher.get_analytics("alice", c).views < 25 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watcher.get_analytics("alice", c).views >= 25
        writer.flush()
        assert watcher.get_analytics("alice", c).views == 50


def test_counters_are_exact_under_concurrent_readers(tmp_path: Path) -> None:
    threads, rounds = 8, 200
    data = b"concurrently read bytes"
    path = tmp_path / "store"
    store = Store(path)
    c = store.upload(data, "alice").content_id
    readers = [f"reader{i}" for i in range(threads)]
    for user in readers:
        store.create_collaboration("alice", c, user)
    start = threading.Barrier(threads + 1)
    failures: list[BaseException] = []
    stop_flushing = threading.Event()

    def read(user: str) -> None:
        try:
            start.wait()
            for _ in range(rounds):
                store.get_content(c, user)
                assert store.read_content(c, user) == data
        except BaseException as exc:  # noqa: BLE001 (reported by the main thread)
            failures.append(exc)

    def flush_now_and_then() -> None:
        start.wait()
        while not stop_flushing.wait(0.01):
            store.flush()

    workers = [threading.Thread(target=read, args=(user,)) for user in readers]
    flusher = threading.Thread(target=flush_now_and_then)
    for thread in [*workers, flusher]:
        thread.start()
    for thread in workers:
        thread.join()
    stop_flushing.set()
    flusher.join()
    assert failures == []

    def check(s: Store) -> None:
        analytics = s.get_analytics("alice", c)
        total = threads * rounds
        assert (analytics.views, analytics.downloads) == (total, total)
        assert analytics.bytes_served == total * len(data)
        assert analytics.unique_viewers == threads
        for user in readers:
            by_operation = s.get_api_usage(user).by_operation
            assert by_operation["get_content"] == _cell(rounds)
            assert by_operation["read_content"] == _cell(rounds, bytes_out=rounds * len(data))

    check(store)
    digest = store.state_digest()
    store.close()
    with Store(path) as reopened:
        assert reopened.state_digest() == digest
        check(reopened)
        assert reopened.verify() == []


def test_counters_are_kept_per_replica_and_merge(tmp_path: Path) -> None:
    with Store(tmp_path / "a") as a, Store(tmp_path / "b") as b:
        c = a.upload(b"abc", "alice").content_id
        with b.replica.catalog.atomic():
            for op in a.replica.catalog.log.all_ops():
                b.replica.catalog.fold.apply(op)
        b.replica.blobs.write_bytes(b"abc", 0)
        a.get_content(c, "alice")
        a.read_content(c, "alice")
        b.get_content(c, "alice")
        a.flush()
        b.flush()
        snapshot = a.replica.catalog.tallies.counter_snapshot(a.replica_id)
        assert (
            snapshot["api_usage"]
            and a.replica.catalog.tallies.counter_snapshot(b.replica_id)["api_usage"] == []
        )
        for _ in range(2):  # merging twice is merging once (grow-only counters)
            with b.replica.catalog.atomic():
                b.replica.catalog.tallies.merge_counter_snapshot(a.replica_id, snapshot)
            analytics = b.get_analytics("alice", c)
            assert (analytics.views, analytics.downloads, analytics.bytes_served) == (2, 1, 3)
        by_op = b.get_api_usage("alice").by_operation
        assert by_op["get_content"]["calls"] == 2 and by_op["upload"]["calls"] == 1


CHILD = textwrap.dedent(
    """
    import sys, threading
    from dreamflare_store import Store

    path, content, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    kept = []

    def reads(store):
        for _ in range(30):
            store.get_content(content, "alice")
            store.read_content(content, "alice")

    def main():
        store = Store(path)
        if mode in ("kept", "exit"):
            kept.append(store)  # still open when the interpreter exits
        if mode == "thread":
            worker = threading.Thread(target=reads, args=(store,))
            worker.start()
            worker.join()
            kept.append(store)
        else:
            reads(store)
        # "dropped": the store goes out of scope here, never closed

    main()
    if mode == "exit":
        sys.exit(0)
    """
)


@pytest.mark.parametrize("mode", ["kept", "dropped", "thread", "exit"])
def test_a_process_that_exits_normally_loses_no_count(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "store"
    with Store(path) as store:
        c = store.upload(b"child reads these", "alice").content_id
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    subprocess.run([sys.executable, str(script), str(path), c, mode], check=True, timeout=60)
    with Store(path) as store:
        analytics = store.get_analytics("alice", c)
        assert (analytics.views, analytics.downloads) == (30, 30)
        assert analytics.bytes_served == 30 * len(b"child reads these")
        usage = store.get_api_usage("alice").by_operation
        assert usage["get_content"] == _cell(30)
        assert usage["read_content"] == _cell(30, bytes_out=30 * len(b"child reads these"))


def test_counts_from_several_processes_add_up(tmp_path: Path) -> None:
    """Processes sharing one store folder share its replica: their batches add up."""
    path = tmp_path / "store"
    with Store(path) as store:
        c = store.upload(b"read by many processes", "alice").content_id
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    children = [
        subprocess.Popen([sys.executable, str(script), str(path), c, mode])
        for mode in ("kept", "dropped", "thread")
    ]
    assert [child.wait(timeout=60) for child in children] == [0, 0, 0]
    with Store(path) as store:
        analytics = store.get_analytics("alice", c)
        assert (analytics.views, analytics.downloads) == (90, 90)
        assert store.get_api_usage("alice").by_operation["get_content"] == _cell(90)


def test_a_store_dropped_without_close_writes_its_counts(tmp_path: Path) -> None:
    path = tmp_path / "store"
    store = Store(path)
    c = store.upload(b"abc", "alice").content_id
    store.get_content(c, "alice")
    store.read_content(c, "alice")
    del store  # never closed: its finalizer flushes the buffer and closes the catalog
    gc.collect()
    with Store(path) as store:
        analytics = store.get_analytics("alice", c)
        assert (analytics.views, analytics.downloads, analytics.bytes_served) == (1, 1, 3)


# -- quota ---------------------------------------------------------------------------------


def _blob_and_temp_files(store: Store) -> tuple[set[str], set[Path]]:
    """The blobs stored (files and rows, by digest) and the temp files."""
    return stored_blobs(store), set((store.path / "tmp").iterdir())


def test_store_default_quota(tmp_path: Path) -> None:
    with Store(tmp_path / "store", quota_bytes=100) as store:
        assert store.get_storage_usage("alice").quota_bytes == 100
        store.upload(b"a" * 60, "alice")
        store.upload(b"b" * 40, "alice")  # exactly at the quota
        before = disk_state(store)
        with pytest.raises(QuotaExceeded) as raised:
            store.upload(b"c", "alice")
        assert disk_state(store) == before
        error = raised.value
        assert (error.status, error.code) == (413, "quota_exceeded")
        assert (error.user_id, error.quota_bytes) == ("alice", 100)
        # Bytes the user already keeps cost nothing more.
        store.upload(b"a" * 60, "alice", description="the same bytes again")
        # Every user has their own quota, and empty files always fit.
        store.upload(b"a" * 100, "bob")
        store.upload(b"", "alice")
        assert store.get_storage_usage("alice").history_bytes == 100
        assert store.verify() == []


def test_set_quota_per_user(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with Store(path, quota_bytes=10) as store:
        store.set_quota("alice", 30)
        store.set_quota("bob", 5)
        assert [store.get_storage_usage(u).quota_bytes for u in ("alice", "bob", "carol")] == [
            30,
            5,
            10,
        ]
        store.upload(b"a" * 30, "alice")
        with pytest.raises(QuotaExceeded):
            store.upload(b"b" * 6, "bob")
        store.set_quota("bob", None)  # back to the store's default
        store.upload(b"b" * 6, "bob")
    with Store(path) as store:  # a user's quota is kept; the default belongs to the opener
        assert store.get_storage_usage("alice").quota_bytes == 30
        assert store.get_storage_usage("carol").quota_bytes is None
        with pytest.raises(QuotaExceeded):
            store.upload(b"x", "alice")
        store.upload(b"c" * 1000, "carol")


def test_quota_counts_every_version_kept_and_deleting_frees_it(store: Store) -> None:
    store.set_quota("alice", 100)
    c = store.upload(b"1" * 40, "alice").content_id
    store.upload(b"2" * 40, "alice", content_id=c)  # current size 40, history 80
    with pytest.raises(QuotaExceeded):
        store.upload(b"3" * 40, "alice", content_id=c)
    store.update_metadata(c, "alice", description="metadata costs no bytes")
    store.upload(b"1" * 40, "alice", content_id=c)  # an old version's bytes come back free
    assert store.get_storage_usage("alice").history_bytes == 80
    store.delete_content(c, "alice")
    store.upload(b"4" * 100, "alice")
    assert store.verify() == []


def test_a_write_collaborators_version_counts_against_the_owner(store: Store) -> None:
    store.set_quota("alice", 100)
    store.set_quota("bob", 0)  # bob's own quota does not matter on alice's content
    c = store.upload(b"a" * 80, "alice").content_id
    store.create_collaboration("alice", c, "bob", "write")
    store.upload(b"b" * 20, "bob", content_id=c)
    before = disk_state(store)
    with pytest.raises(QuotaExceeded) as raised:
        store.upload(b"c" * 1, "bob", content_id=c)
    assert raised.value.user_id == "alice"
    assert disk_state(store) == before
    assert store.get_storage_usage("alice").history_bytes == 100
    assert store.get_storage_usage("bob").history_bytes == 0
    with pytest.raises(QuotaExceeded):
        store.upload(b"x", "bob")  # bob's own content is under bob's quota


@pytest.mark.parametrize("kind", ["bytes", "path", "file object", "large stream"])
def test_quota_exceeded_stores_nothing(store: Store, tmp_path: Path, kind: str) -> None:
    store.set_quota("alice", 1000)
    store.upload(b"k" * 600, "alice")
    data = b"n" * (3 * 1024 * 1024 + 5 if kind == "large stream" else 500)
    source: Any
    if kind == "bytes":
        source = data
    elif kind == "path":
        source = tmp_path / "new.bin"
        source.write_bytes(data)
    else:
        source = io.BytesIO(data)
    blobs, temps = _blob_and_temp_files(store)
    before = disk_state(store)
    with pytest.raises(QuotaExceeded):
        store.upload(source, "alice")
    assert _blob_and_temp_files(store) == (blobs, temps)
    assert temps == set()
    assert disk_state(store) == before
    assert store.get_storage_usage("alice").history_bytes == 600


def test_concurrent_uploads_never_pass_the_quota(store: Store) -> None:
    store.set_quota("alice", 1000)
    outcomes: list[str] = []
    lock = threading.Lock()

    def upload(i: int) -> None:
        try:
            store.upload(bytes([i]) * 200, "alice")
            result = "ok"
        except QuotaExceeded:
            result = "over"
        with lock:
            outcomes.append(result)

    workers = [threading.Thread(target=upload, args=(i,)) for i in range(10)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(outcomes) == ["ok"] * 5 + ["over"] * 5
    assert store.get_storage_usage("alice").history_bytes == 1000
    assert store.verify() == []
    store.gc(min_age=0)  # a blob written by a loser of the race is only garbage
    assert len(_blob_and_temp_files(store)[0]) == 5


def test_bad_quota_values(tmp_path: Path, store: Store) -> None:
    before = disk_state(store)
    for value in (-1, 1.5, "lots", True, 2**63, [1]):
        with pytest.raises(InvalidArgument):
            store.set_quota("alice", value)
        with pytest.raises(InvalidArgument):
            Store(tmp_path / "never", quota_bytes=value)
        assert not (tmp_path / "never").exists()  # refused before anything was made
    for user in ("", None, "a\x00"):
        with pytest.raises(InvalidArgument):
            store.set_quota(user, 10)
    assert disk_state(store) == before
    assert store.get_storage_usage("alice").quota_bytes is None
