"""One behavioural suite, run twice: against ``Store`` and against ``Client`` over HTTP.

The ``face`` fixture gives each test a way to act as a user: the store itself, or a
``Client`` with that user's API key talking to a real uvicorn server on 127.0.0.1 that
serves the same store. Every assertion here must hold for both, so the embedded engine
and the network API cannot drift apart.
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import damage_blob

from dreamflare_store import (
    Conflict,
    IntegrityError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    Store,
)
from dreamflare_store.blobs import hash_bytes
from dreamflare_store.client import Client
from dreamflare_store.http.testing import LiveServer

PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5d8b1d30000000049454e44ae426082"
)
MISSING_CONTENT = "cnt_00000000000000000000000000"
MISSING_COLLAB = "col_00000000000000000000000000"
MISSING_KEY = "key_00000000000000000000000000"


@dataclass
class Face:
    """The store under test, and a way to act as a user through the face being tested."""

    kind: str
    store: Store
    make: Callable[[str], Any]
    _apis: dict[str, Any] = field(default_factory=dict)

    def __call__(self, user: str) -> Any:
        # Both faces make one key per user on first use, so API usage matches exactly.
        if user not in self._apis:
            key = self.store.generate_api_key(user, description="parity suite")
            self._apis[user] = self.make(key.api_key)
        return self._apis[user]


@pytest.fixture(params=["store", "client"])
def face(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Face]:
    with Store(tmp_path / "store") as store:
        if request.param == "store":
            yield Face("store", store, lambda key: store)
            return
        with LiveServer(store) as server:
            clients: list[Client] = []

            def make(key: str) -> Client:
                clients.append(Client(server.url, key))
                return clients[-1]

            yield Face("client", store, make)
            for client in clients:
                client.close()


# -- the interface itself -------------------------------------------------------------------

SHARED = [
    "upload", "get_content", "delete_content", "list_content", "update_metadata",
    "get_storage_usage", "get_api_usage", "generate_api_key", "revoke_api_key",
    "get_analytics", "create_collaboration", "list_collaborations", "update_collaboration",
    "delete_collaboration", "get_content_versions", "open_content", "read_content",
]  # fmt: skip


@pytest.mark.parametrize("name", SHARED)
def test_client_methods_have_the_store_signatures(name: str) -> None:
    def shape(method: Any) -> list[tuple[str, Any, Any]]:
        params = list(inspect.signature(method).parameters.values())[1:]
        return [(p.name, p.kind, p.default) for p in params]

    assert shape(getattr(Client, name)) == shape(getattr(Store, name))


# -- 1. upload --------------------------------------------------------------------------


def test_upload_bytes_path_and_file_object(face: Face, tmp_path: Path) -> None:
    alice = face("alice")
    c1 = alice.upload(file=b"hello", user_id="alice", description="d", tags="b, a,b")
    assert (c1.filename, c1.size, c1.hash, c1.version) == ("upload", 5, hash_bytes(b"hello"), 1)
    assert c1.tags == ("b", "a") and c1.description == "d" and c1.user_id == "alice"
    photo = tmp_path / "photo.png"
    photo.write_bytes(PNG_1x1)
    c2 = alice.upload(file=photo, user_id="alice")
    assert (c2.filename, c2.mime_type, c2.width, c2.height) == ("photo.png", "image/png", 1, 1)
    with open(photo, "rb") as handle:
        handle.read(8)  # the upload reads on from where the caller left the file
        c3 = alice.upload(file=handle, user_id="alice", tags=["x", "y"])
    assert (c3.filename, c3.size, c3.tags) == ("photo.png", len(PNG_1x1) - 8, ("x", "y"))
    c4 = alice.upload(file=io.BytesIO(b"stream"), user_id="alice", filename="named.bin")
    assert (c4.filename, c4.size) == ("named.bin", 6)
    assert alice.get_content(c4.content_id, "alice") == c4


def test_upload_refuses_what_the_store_refuses(face: Face, tmp_path: Path) -> None:
    alice = face("alice")
    with pytest.raises(NotFound):
        alice.upload(file=tmp_path / "missing.png", user_id="alice")
    with pytest.raises(InvalidArgument):
        alice.upload(file=tmp_path, user_id="alice")  # a folder
    with pytest.raises(InvalidArgument):
        alice.upload(file=12, user_id="alice")
    text = tmp_path / "t.txt"
    text.write_text("x")
    with open(text) as handle, pytest.raises(InvalidArgument):
        alice.upload(file=handle, user_id="alice")
    for bad in ({"tags": ["a,b"]}, {"tags": ["x"] * 40 + [str(i) for i in range(40)]},
                {"description": "x" * 5000}, {"filename": "a/b"}, {"user_id": ""},
                {"content_id": "nope"}):  # fmt: skip
        with pytest.raises(InvalidArgument):
            alice.upload(file=b"x", **{"user_id": "alice", **bad})
    assert alice.list_content("alice").total == 0
    assert face.store.verify() == []


def test_a_new_version_keeps_fields_it_does_not_set(face: Face) -> None:
    alice = face("alice")
    c = alice.upload(file=b"one", user_id="alice", description="d", tags="t", filename="a.txt")
    v2 = alice.upload(file=b"two", user_id="alice", content_id=c.content_id)
    assert (v2.content_id, v2.version, v2.description, v2.tags, v2.filename) == (
        c.content_id, 2, "d", ("t",), "a.txt"
    )  # fmt: skip
    v3 = alice.upload(file=b"3", user_id="alice", content_id=c.content_id, tags=[], filename="b")
    assert (v3.version, v3.tags, v3.filename, v3.size) == (3, (), "b", 1)
    versions = alice.get_content_versions(c.content_id, "alice")
    assert [v.changes for v in versions] == [
        ("file", "filename", "description", "tags"),
        ("file",),
        ("file", "filename", "tags"),
    ]
    assert alice.read_content(c.content_id, "alice", version=1) == b"one"
    with pytest.raises(NotFound):
        alice.upload(file=b"x", user_id="alice", content_id=MISSING_CONTENT)


# -- 2-5, 15. content -----------------------------------------------------------------------


def test_get_and_delete(face: Face) -> None:
    alice = face("alice")
    c = alice.upload(file=b"bytes", user_id="alice")
    assert alice.get_content(c.content_id, "alice") == c
    assert alice.delete_content(c.content_id, "alice") is None
    for call in (
        lambda: alice.get_content(c.content_id, "alice"),
        lambda: alice.delete_content(c.content_id, "alice"),
        lambda: alice.get_content_versions(c.content_id, "alice"),
        lambda: alice.read_content(c.content_id, "alice"),
    ):
        with pytest.raises(NotFound):
            call()
    with pytest.raises(InvalidArgument):
        alice.get_content("cnt_bad", "alice")
    with pytest.raises(InvalidArgument):
        alice.get_content("a/b", "alice")


def test_list_pages(face: Face) -> None:
    alice = face("alice")
    made = [alice.upload(file=bytes([i]), user_id="alice").content_id for i in range(5)]
    page = alice.list_content("alice", limit=2)
    assert (page.total, page.limit, page.offset) == (5, 2, 0)
    assert [c.content_id for c in page.items] == made[::-1][:2]
    assert [c.content_id for c in alice.list_content("alice", limit=2, offset=4).items] == made[:1]
    assert alice.list_content("alice", offset=10).items == ()
    assert alice.list_content("alice").limit == 50
    assert face("bob").list_content("bob").total == 0
    for bad in ({"limit": 0}, {"limit": 1001}, {"limit": "abc"}, {"offset": -1},
                {"limit": 1.5}, {"limit": True}):  # fmt: skip
        with pytest.raises(InvalidArgument):
            alice.list_content("alice", **bad)


def test_update_metadata(face: Face) -> None:
    alice = face("alice")
    c = alice.upload(file=b"x", user_id="alice", description="old", tags="a")
    u = alice.update_metadata(c.content_id, "alice", tags=["b", "c"])
    assert (u.tags, u.description, u.version) == (("b", "c"), "old", 2)
    u = alice.update_metadata(c.content_id, "alice", description="")
    assert (u.tags, u.description, u.version) == (("b", "c"), "", 3)
    u = alice.update_metadata(c.content_id, "alice", tags="")
    assert u.tags == ()
    for bad in ({}, {"tags": ["a,b"]}, {"tags": [""]}, {"description": "\x00"}):
        with pytest.raises(InvalidArgument):
            alice.update_metadata(c.content_id, "alice", **bad)
    assert alice.get_content(c.content_id, "alice").version == 4
    with pytest.raises(NotFound):
        alice.update_metadata(MISSING_CONTENT, "alice", description="x")


def test_versions_oldest_first(face: Face) -> None:
    alice = face("alice")
    c = alice.upload(file=b"x", user_id="alice", description="one")
    alice.update_metadata(c.content_id, "alice", description="two")
    versions = alice.get_content_versions(c.content_id, "alice")
    assert [(v.version, v.description, v.changes) for v in versions] == [
        (1, "one", ("file", "filename", "description")),
        (2, "two", ("description",)),
    ]
    assert all(v.content_id == c.content_id and v.user_id == "alice" for v in versions)


def test_unicode_and_spaces_survive_the_trip(face: Face) -> None:
    user = "José Ñ + café & co"
    api = face(user)
    c = api.upload(file=b"x", user_id=user, description="déjà vu\nline two", tags="ünï,中文",
                   filename="naïve résumé.txt")  # fmt: skip
    assert (c.user_id, c.filename, c.tags) == (user, "naïve résumé.txt", ("ünï", "中文"))
    assert api.get_content(c.content_id, user).description == "déjà vu\nline two"
    assert api.list_content(user).total == 1


# -- reading bytes --------------------------------------------------------------------------


def test_open_and_read_content(face: Face) -> None:
    alice = face("alice")
    c = alice.upload(file=PNG_1x1, user_id="alice", filename="dot.png")
    alice.upload(file=b"second", user_id="alice", content_id=c.content_id)
    assert alice.read_content(c.content_id, "alice") == b"second"
    assert alice.read_content(c.content_id, "alice", version=1) == PNG_1x1
    with alice.open_content(c.content_id, "alice", version=1) as reader:
        assert (reader.size, reader.digest) == (len(PNG_1x1), hash_bytes(PNG_1x1))
        assert (reader.filename, reader.mime_type) == ("dot.png", "image/png")
        assert reader.read(4) + reader.read() == PNG_1x1
    with pytest.raises(NotFound):
        alice.read_content(c.content_id, "alice", version=3)
    with pytest.raises(InvalidArgument):
        alice.read_content(c.content_id, "alice", version=0)


def test_large_content_round_trip(face: Face, tmp_path: Path) -> None:
    data = bytes(range(256)) * 12_289  # about 3 MiB, more than one streamed chunk
    alice = face("alice")
    c = alice.upload(file=io.BytesIO(data), user_id="alice")
    assert alice.read_content(c.content_id, "alice") == data
    with alice.open_content(c.content_id, "alice") as reader:
        chunks = iter(lambda: reader.read(100_000), b"")
        assert b"".join(chunks) == data


def test_corrupt_bytes_are_an_integrity_error(face: Face) -> None:
    alice = face("alice")
    c = alice.upload(file=b"precious bytes", user_id="alice")
    damage_blob(face.store, c.hash, "flipped byte")
    with pytest.raises(IntegrityError):
        alice.read_content(c.content_id, "alice")


# -- 6-9. usage and keys --------------------------------------------------------------------


def test_storage_usage(face: Face) -> None:
    alice = face("alice")
    c = alice.upload(file=b"12345", user_id="alice")
    alice.upload(file=b"123", user_id="alice", content_id=c.content_id)
    alice.upload(file=b"12345", user_id="alice")
    usage = alice.get_storage_usage("alice")
    assert (usage.content_count, usage.version_count, usage.bytes, usage.history_bytes) == (
        2, 3, 8, 8
    )  # fmt: skip
    assert usage.quota_bytes is None and usage.user_id == "alice"


def test_quota(face: Face) -> None:
    alice = face("alice")
    face.store.set_quota("alice", 10)
    alice.upload(file=b"123456", user_id="alice")
    with pytest.raises(QuotaExceeded):
        alice.upload(file=b"abcdef", user_id="alice")
    assert alice.get_storage_usage("alice").quota_bytes == 10
    assert alice.list_content("alice").total == 1


def test_api_usage_counts_one_call_per_request(face: Face) -> None:
    alice = face("alice")  # the key made for alice counts as one generate_api_key
    c = alice.upload(file=b"12345", user_id="alice")
    alice.get_content(c.content_id, "alice")
    assert alice.read_content(c.content_id, "alice") == b"12345"
    with pytest.raises(InvalidArgument):
        alice.list_content("alice", limit=0)
    with pytest.raises(NotFound):
        alice.get_content(MISSING_CONTENT, "alice")
    usage = alice.get_api_usage("alice")
    assert (usage.total_calls, usage.errors, usage.bytes_in, usage.bytes_out) == (6, 2, 5, 5)
    assert usage.by_operation == {
        "generate_api_key": {"calls": 1, "errors": 0, "bytesIn": 0, "bytesOut": 0},
        "upload": {"calls": 1, "errors": 0, "bytesIn": 5, "bytesOut": 0},
        "get_content": {"calls": 2, "errors": 1, "bytesIn": 0, "bytesOut": 0},
        face_read_op(face): {"calls": 1, "errors": 0, "bytesIn": 0, "bytesOut": 5},
        "list_content": {"calls": 1, "errors": 1, "bytesIn": 0, "bytesOut": 0},
    }
    assert [day["calls"] for day in usage.daily] == [6]


def face_read_op(face: Face) -> str:
    # Over HTTP every read of bytes is a download (open_content); in process,
    # read_content is its own operation.
    return "read_content" if face.kind == "store" else "open_content"


def test_keys(face: Face) -> None:
    alice = face("alice")
    new = alice.generate_api_key("alice", description="ci")
    assert new.api_key.startswith("dfk_") and len(new.api_key) >= 32
    assert (new.user_id, new.description, new.revoked_at) == ("alice", "ci", None)
    assert alice.revoke_api_key(new.key_id, "alice") is None
    with pytest.raises(NotFound):
        alice.revoke_api_key(new.key_id, "alice")
    bobs = face("bob").generate_api_key("bob")
    with pytest.raises(NotFound):
        alice.revoke_api_key(bobs.key_id, "alice")
    with pytest.raises(NotFound):
        alice.revoke_api_key(MISSING_KEY, "alice")
    with pytest.raises(InvalidArgument):
        alice.revoke_api_key("key_nope", "alice")
    with pytest.raises(InvalidArgument):
        alice.generate_api_key("alice", description="x" * 5000)


# -- 10. analytics --------------------------------------------------------------------------


def test_analytics(face: Face) -> None:
    alice, bob = face("alice"), face("bob")
    c = alice.upload(file=b"12345", user_id="alice")
    other = alice.upload(file=b"other", user_id="alice")
    alice.get_content(c.content_id, "alice")
    alice.read_content(c.content_id, "alice")
    alice.create_collaboration("alice", c.content_id, "bob")
    bob.get_content(c.content_id, "bob")
    one = alice.get_analytics("alice", content_id=c.content_id)
    assert (one.views, one.downloads, one.bytes_served, one.unique_viewers) == (2, 1, 5, 2)
    assert one.top_content is None and one.content_id == c.content_id
    every = alice.get_analytics("alice")
    assert every.content_id is None and every.views == 2
    assert every.top_content == ({"contentId": c.content_id, "views": 2, "downloads": 1},)
    assert [day["views"] for day in every.daily] == [2]
    with pytest.raises(PermissionDenied):
        bob.get_analytics("bob", content_id=c.content_id)
    with pytest.raises(NotFound):
        face("carol").get_analytics("carol", content_id=other.content_id)
    assert bob.get_analytics("bob").views == 0


# -- 11-14. collaborations ------------------------------------------------------------------


def test_collaborations(face: Face) -> None:
    alice, bob, carol = face("alice"), face("bob"), face("carol")
    c = alice.upload(file=b"shared", user_id="alice")
    with pytest.raises(NotFound):
        bob.get_content(c.content_id, "bob")
    collab = alice.create_collaboration("alice", c.content_id, "bob")
    assert (collab.user_id, collab.collaborator_id, collab.permissions) == ("alice", "bob", "read")
    assert bob.read_content(c.content_id, "bob") == b"shared"
    assert [v.version for v in bob.get_content_versions(c.content_id, "bob")] == [1]
    with pytest.raises(PermissionDenied):
        bob.update_metadata(c.content_id, "bob", description="mine now")
    with pytest.raises(PermissionDenied):
        bob.update_collaboration(collab.collaboration_id, "bob", "write")
    with pytest.raises(NotFound):
        carol.update_collaboration(collab.collaboration_id, "carol", "write")
    assert alice.list_collaborations("alice") == [collab]
    assert bob.list_collaborations("bob") == [collab]
    assert carol.list_collaborations("carol") == []
    up = alice.update_collaboration(collab.collaboration_id, "alice", "write")
    assert up.permissions == "write"
    assert bob.update_metadata(c.content_id, "bob", description="edited").description == "edited"
    bob.upload(file=b"v2", user_id="bob", content_id=c.content_id)
    with pytest.raises(PermissionDenied):
        bob.delete_content(c.content_id, "bob")
    with pytest.raises(Conflict):
        alice.create_collaboration("alice", c.content_id, "bob", permissions="write")
    with pytest.raises(InvalidArgument):
        alice.create_collaboration("alice", c.content_id, "alice")
    with pytest.raises(InvalidArgument):
        alice.create_collaboration("alice", c.content_id, "carol", permissions="admin")
    with pytest.raises(InvalidArgument):
        alice.update_collaboration(collab.collaboration_id, "alice", "admin")
    with pytest.raises(NotFound):
        carol.create_collaboration("carol", c.content_id, "bob")
    assert bob.delete_collaboration(collab.collaboration_id, "bob") is None  # leaving
    with pytest.raises(NotFound):
        alice.delete_collaboration(collab.collaboration_id, "alice")
    with pytest.raises(NotFound):
        bob.get_content(c.content_id, "bob")
    with pytest.raises(NotFound):
        alice.delete_collaboration(MISSING_COLLAB, "alice")
    assert face.store.verify() == []
