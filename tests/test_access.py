"""Access rules (DESIGN.md "Access rules", INTERFACE.md "Access"), and collaborations.

The heart of this file is one table: every operation, done by the owner of a content, a
``read`` collaborator, a ``write`` collaborator, a stranger, and two users whose
collaboration was deleted (by the owner, or by leaving), each answer checked against the
rules. A refused call must leave the store as it was (counters aside: a refused call still
counts in API usage, as an error).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import disk_state

from dreamflare_store import (
    Collaboration,
    Conflict,
    DreamflareError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Store,
    Unauthenticated,
    oplog,
)

OWNER, READER, WRITER, STRANGER = "owner", "reader", "writer", "stranger"
FORMER, LEAVER, NEWCOMER = "former", "leaver", "newcomer"
ACTORS = (OWNER, READER, WRITER, STRANGER, FORMER, LEAVER)
FIRST = b"the first version of the content"
SECOND = b"bytes of a second version, uploaded by whoever may"
START_MS = 1_795_000_000_000  # 2026-11-18, a fixed wall clock for reproducible records
UNKNOWN_CONTENT = "cnt_" + "0" * 26
UNKNOWN_COLLABORATION = "col_" + "0" * 26


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, ms: int = START_MS) -> None:
        self.ms = ms

    def time_ms(self) -> int:
        return self.ms

    def advance(self, ms: int) -> None:
        self.ms += ms


@dataclass
class World:
    """A store with one content of OWNER's, shared in every way the rules tell apart."""

    store: Store
    clock: FakeClock
    content: str
    collab: dict[str, str]  # collaborator -> collaboration id (live or deleted)
    owner_key: str


def make_world(path: Path) -> World:
    clock = FakeClock()
    store = Store(path, clock=clock)
    content = store.upload(FIRST, OWNER, description="first", tags="a,b").content_id
    collab = {}
    for user, permissions in (
        (READER, "read"),
        (WRITER, "write"),
        (FORMER, "write"),
        (LEAVER, "read"),
    ):
        made = store.create_collaboration(OWNER, content, user, permissions)
        collab[user] = made.collaboration_id
    store.delete_collaboration(collab[FORMER], OWNER)  # removed by the owner
    store.delete_collaboration(collab[LEAVER], LEAVER)  # left on their own
    key = store.generate_api_key(OWNER, description="owner's key")
    clock.advance(1000)
    return World(store, clock, content, collab, key.key_id)


@pytest.fixture
def world(tmp_path: Path):
    w = make_world(tmp_path / "store")
    yield w
    w.store.close()


OK = "ok"
Outcome = str | type[DreamflareError]


def rule(owner: Outcome, reader: Outcome, writer: Outcome, **others: Outcome) -> dict[str, Outcome]:
    """Expected outcome per actor; stranger and former collaborators are alike unless given."""
    table = {OWNER: owner, READER: reader, WRITER: writer}
    for actor in (STRANGER, FORMER, LEAVER):
        table[actor] = others.get(actor, others.get("rest", NotFound))
    return table


ALL_OK = rule(OK, OK, OK, rest=OK)
SEE = rule(OK, OK, OK)  # whoever may see the content
CHANGE = rule(OK, PermissionDenied, OK)  # whoever may change it
OWN = rule(OK, PermissionDenied, PermissionDenied)  # the owner alone


@dataclass(frozen=True)
class Case:
    """One operation of the matrix: how to call it, who may, and what success looks like."""

    name: str
    method: str  # the Store method name, as API usage counts it
    call: Callable[[World, str], Any]
    expect: dict[str, Outcome]
    check: Callable[[World, str, Any], None]


def _no_check(world: World, actor: str, result: Any) -> None:
    return None


def _check_new_content(world: World, actor: str, result: Any) -> None:
    assert result.user_id == actor and result.version == 1


def _check_version(world: World, actor: str, result: Any) -> None:
    store = world.store
    assert result.user_id == OWNER and result.version == 2 and result.size == len(SECOND)
    versions = store.get_content_versions(world.content, OWNER)
    assert [v.user_id for v in versions] == [OWNER, actor]
    assert store.read_content(world.content, OWNER) == SECOND
    # The bytes count against the content's owner, never against a collaborator.
    assert store.get_storage_usage(OWNER).history_bytes == len(FIRST) + len(SECOND)
    if actor != OWNER:
        assert store.get_storage_usage(actor).history_bytes == 0


def _check_content(world: World, actor: str, result: Any) -> None:
    assert result.content_id == world.content and result.user_id == OWNER
    assert result.description == "first"


def _check_deleted(world: World, actor: str, result: Any) -> None:
    for user in ACTORS:
        with pytest.raises(NotFound):
            world.store.get_content(world.content, user)
    assert world.store.list_collaborations(OWNER) == []


def _check_list(world: World, actor: str, result: Any) -> None:
    # A user's list holds their own contents only, never ones shared with them.
    ids = [c.content_id for c in result.items]
    assert ids == ([world.content] if actor == OWNER else [])
    assert result.total == len(ids)


def _check_updated(world: World, actor: str, result: Any) -> None:
    assert result.description == f"by {actor}" and result.version == 2
    assert world.store.get_content_versions(world.content, OWNER)[-1].user_id == actor


def _check_storage(world: World, actor: str, result: Any) -> None:
    assert result.user_id == actor
    assert result.content_count == (1 if actor == OWNER else 0)


def _check_usage(world: World, actor: str, result: Any) -> None:
    assert result.user_id == actor


def _check_new_key(world: World, actor: str, result: Any) -> None:
    assert world.store.authenticate(result.api_key) == actor


def _check_revoked(world: World, actor: str, result: Any) -> None:
    assert world.store.list_api_keys(OWNER)[0].revoked_at is not None


def _check_content_analytics(world: World, actor: str, result: Any) -> None:
    assert result.content_id == world.content


def _check_user_analytics(world: World, actor: str, result: Any) -> None:
    assert result.user_id == actor and result.content_id is None
    world.store.get_content(world.content, READER)  # a view, so the content has figures
    again = world.store.get_analytics(actor)
    top = [item["contentId"] for item in again.top_content]
    assert top == ([world.content] if actor == OWNER else [])


def _check_new_collaboration(world: World, actor: str, result: Any) -> None:
    assert isinstance(result, Collaboration)
    assert (result.user_id, result.collaborator_id, result.permissions) == (
        OWNER,
        NEWCOMER,
        "read",
    )
    assert world.store.get_content(world.content, NEWCOMER).content_id == world.content


def _check_listed_collaborations(world: World, actor: str, result: Any) -> None:
    visible = {
        OWNER: {world.collab[READER], world.collab[WRITER]},
        READER: {world.collab[READER]},
        WRITER: {world.collab[WRITER]},
    }.get(actor, set())
    assert {c.collaboration_id for c in result} == visible


def _check_reader_promoted(world: World, actor: str, result: Any) -> None:
    assert result.permissions == "write" and result.collaborator_id == READER
    world.store.update_metadata(world.content, READER, description="the reader now writes")


def _check_writer_demoted(world: World, actor: str, result: Any) -> None:
    assert result.permissions == "read"
    world.store.get_content(world.content, WRITER)
    with pytest.raises(PermissionDenied):
        world.store.update_metadata(world.content, WRITER, description="no longer")


def _check_access_gone(collaborator: str) -> Callable[[World, str, Any], None]:
    def check(world: World, actor: str, result: Any) -> None:
        with pytest.raises(NotFound):
            world.store.get_content(world.content, collaborator)
        with pytest.raises(NotFound):
            world.store.delete_collaboration(world.collab[collaborator], actor)
        assert world.collab[collaborator] not in {
            c.collaboration_id for c in world.store.list_collaborations(OWNER)
        }

    return check


def _check_versions(world: World, actor: str, result: Any) -> None:
    assert [v.version for v in result] == [1]


def _check_open(world: World, actor: str, result: Any) -> None:
    assert result == FIRST


def _read_open(world: World, actor: str) -> bytes:
    with world.store.open_content(world.content, actor) as reader:
        return bytes(reader.read())


CASES = [
    Case(
        "upload",
        "upload",
        lambda w, a: w.store.upload(b"mine: " + a.encode(), a),
        ALL_OK,
        _check_new_content,
    ),
    Case(
        "upload_version",
        "upload",
        lambda w, a: w.store.upload(SECOND, a, content_id=w.content),
        CHANGE,
        _check_version,
    ),
    Case(
        "get_content",
        "get_content",
        lambda w, a: w.store.get_content(w.content, a),
        SEE,
        _check_content,
    ),
    Case(
        "delete_content",
        "delete_content",
        lambda w, a: w.store.delete_content(w.content, a),
        OWN,
        _check_deleted,
    ),
    Case("list_content", "list_content", lambda w, a: w.store.list_content(a), ALL_OK, _check_list),
    Case(
        "update_metadata",
        "update_metadata",
        lambda w, a: w.store.update_metadata(w.content, a, description=f"by {a}"),
        CHANGE,
        _check_updated,
    ),
    Case(
        "get_storage_usage",
        "get_storage_usage",
        lambda w, a: w.store.get_storage_usage(a),
        ALL_OK,
        _check_storage,
    ),
    Case(
        "get_api_usage",
        "get_api_usage",
        lambda w, a: w.store.get_api_usage(a),
        ALL_OK,
        _check_usage,
    ),
    Case(
        "generate_api_key",
        "generate_api_key",
        lambda w, a: w.store.generate_api_key(a),
        ALL_OK,
        _check_new_key,
    ),
    Case(
        "revoke_api_key",
        "revoke_api_key",
        lambda w, a: w.store.revoke_api_key(w.owner_key, a),
        rule(OK, NotFound, NotFound),
        _check_revoked,
    ),
    Case(
        "get_analytics_content",
        "get_analytics",
        lambda w, a: w.store.get_analytics(a, w.content),
        OWN,
        _check_content_analytics,
    ),
    Case(
        "get_analytics_user",
        "get_analytics",
        lambda w, a: w.store.get_analytics(a),
        ALL_OK,
        _check_user_analytics,
    ),
    Case(
        "create_collaboration",
        "create_collaboration",
        lambda w, a: w.store.create_collaboration(a, w.content, NEWCOMER),
        OWN,
        _check_new_collaboration,
    ),
    Case(
        "list_collaborations",
        "list_collaborations",
        lambda w, a: w.store.list_collaborations(a),
        ALL_OK,
        _check_listed_collaborations,
    ),
    Case(
        "update_collaboration_of_reader",
        "update_collaboration",
        lambda w, a: w.store.update_collaboration(w.collab[READER], a, "write"),
        rule(OK, PermissionDenied, NotFound),
        _check_reader_promoted,
    ),
    Case(
        "update_collaboration_of_writer",
        "update_collaboration",
        lambda w, a: w.store.update_collaboration(w.collab[WRITER], a, "read"),
        rule(OK, NotFound, PermissionDenied),
        _check_writer_demoted,
    ),
    Case(
        "update_collaboration_deleted",
        "update_collaboration",
        lambda w, a: w.store.update_collaboration(w.collab[FORMER], a, "read"),
        rule(NotFound, NotFound, NotFound),
        _no_check,
    ),
    Case(
        "delete_collaboration_of_reader",
        "delete_collaboration",
        lambda w, a: w.store.delete_collaboration(w.collab[READER], a),
        rule(OK, OK, NotFound),
        _check_access_gone(READER),
    ),
    Case(
        "delete_collaboration_of_writer",
        "delete_collaboration",
        lambda w, a: w.store.delete_collaboration(w.collab[WRITER], a),
        rule(OK, NotFound, OK),
        _check_access_gone(WRITER),
    ),
    Case(
        "delete_collaboration_deleted",
        "delete_collaboration",
        lambda w, a: w.store.delete_collaboration(w.collab[LEAVER], a),
        rule(NotFound, NotFound, NotFound),
        _no_check,
    ),
    Case(
        "get_content_versions",
        "get_content_versions",
        lambda w, a: w.store.get_content_versions(w.content, a),
        SEE,
        _check_versions,
    ),
    Case("open_content", "open_content", _read_open, SEE, _check_open),
    Case(
        "read_content",
        "read_content",
        lambda w, a: w.store.read_content(w.content, a),
        SEE,
        _check_open,
    ),
    Case(
        "read_content_version",
        "read_content",
        lambda w, a: w.store.read_content(w.content, a, version=1),
        SEE,
        _check_open,
    ),
]


def test_the_matrix_covers_every_operation() -> None:
    documented = {
        "upload", "get_content", "delete_content", "list_content", "update_metadata",
        "get_storage_usage", "get_api_usage", "generate_api_key", "revoke_api_key",
        "get_analytics", "create_collaboration", "list_collaborations",
        "update_collaboration", "delete_collaboration", "get_content_versions",
        "open_content", "read_content",
    }  # fmt: skip
    assert {case.method for case in CASES} == documented


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_access_matrix(world: World, case: Case, actor: str) -> None:
    store = world.store
    expected = case.expect[actor]
    errors_before = _errors(store, actor, case.method)
    if expected == OK:
        result = case.call(world, actor)
        case.check(world, actor, result)
        assert store.verify() == []
        return
    before = disk_state(store)
    with pytest.raises(DreamflareError) as raised:
        case.call(world, actor)
    assert type(raised.value) is expected, f"{case.name} by {actor}: {raised.value!r}"
    assert disk_state(store) == before, "a refused call changed the store"
    # A refused call is still an API call: it counts, as an error, for whoever made it.
    assert _errors(store, actor, case.method) == errors_before + 1


def _errors(store: Store, user: str, method: str) -> int:
    usage = store.get_api_usage(user).by_operation
    return usage.get(method, {}).get("errors", 0)


def test_not_found_does_not_tell_hidden_from_missing(world: World) -> None:
    """A stranger learns nothing: the answer for a hidden content is that of a missing one."""
    store = world.store
    with pytest.raises(NotFound) as hidden:
        store.get_content(world.content, STRANGER)
    with pytest.raises(NotFound) as missing:
        store.get_content(UNKNOWN_CONTENT, STRANGER)
    assert str(hidden.value).replace(world.content, "ID") == str(missing.value).replace(
        UNKNOWN_CONTENT, "ID"
    )
    assert hidden.value.to_dict()["error"]["code"] == "not_found"


def test_rules_hold_for_a_store_reopened(tmp_path: Path) -> None:
    w = make_world(tmp_path / "store")
    w.store.close()
    with Store(tmp_path / "store") as store:
        assert store.get_content(w.content, READER).content_id == w.content
        with pytest.raises(PermissionDenied):
            store.update_metadata(w.content, READER, description="nope")
        store.update_metadata(w.content, WRITER, description="yes")
        for user in (STRANGER, FORMER, LEAVER):
            with pytest.raises(NotFound):
                store.read_content(w.content, user)


# -- collaborations: records, lifecycle, the op log ----------------------------------------


def test_collaboration_record_and_its_json(world: World) -> None:
    store, clock = world.store, world.clock
    made = store.create_collaboration(OWNER, world.content, NEWCOMER, permissions="write")
    assert made.collaboration_id.startswith("col_")
    assert made.created_at == made.updated_at
    clock.advance(5_000)
    updated = store.update_collaboration(made.collaboration_id, OWNER, "read")
    assert updated.created_at == made.created_at and updated.updated_at > made.updated_at
    assert updated.to_dict() == {
        "collaborationId": made.collaboration_id,
        "contentId": world.content,
        "userId": OWNER,
        "collaboratorId": NEWCOMER,
        "permissions": "read",
        "createdAt": made.created_at,
        "updatedAt": updated.updated_at,
        "stripMetadata": False,
    }
    assert store.list_collaborations(NEWCOMER) == [updated]


def test_collaborator_may_be_given_the_content_again_after_leaving(world: World) -> None:
    store = world.store
    again = store.create_collaboration(OWNER, world.content, LEAVER, "write")
    assert again.collaboration_id != world.collab[LEAVER]
    store.update_metadata(world.content, LEAVER, description="back again")
    with pytest.raises(Conflict):
        store.create_collaboration(OWNER, world.content, LEAVER, "read")


def test_collaborations_of_a_deleted_content_disappear(world: World) -> None:
    store = world.store
    store.delete_content(world.content, OWNER)
    for user in ACTORS:
        assert store.list_collaborations(user) == []
    for user in (OWNER, READER):
        with pytest.raises(NotFound):
            store.update_collaboration(world.collab[READER], user, "write")
        with pytest.raises(NotFound):
            store.delete_collaboration(world.collab[READER], user)
    with pytest.raises(NotFound):
        store.create_collaboration(OWNER, world.content, NEWCOMER)
    assert store.verify() == []


def test_a_collaborator_sees_each_shared_content_and_nothing_else(tmp_path: Path) -> None:
    with Store(tmp_path / "store") as store:
        mine = [store.upload(f"alice {i}".encode(), "alice").content_id for i in range(3)]
        theirs = store.upload(b"carol's", "carol").content_id
        store.create_collaboration("alice", mine[0], "bob", "read")
        store.create_collaboration("alice", mine[2], "bob", "write")
        store.create_collaboration("carol", theirs, "bob", "read")
        shared = {c.content_id: c.permissions for c in store.list_collaborations("bob")}
        assert shared == {mine[0]: "read", mine[2]: "write", theirs: "read"}
        assert {c.content_id for c in store.list_collaborations("alice")} == {mine[0], mine[2]}
        with pytest.raises(NotFound):
            store.get_content(mine[1], "bob")
        # Alice cannot reach carol's content through bob, nor manage carol's collaboration.
        with pytest.raises(NotFound):
            store.get_content(theirs, "alice")
        carol_collab = store.list_collaborations("carol")[0].collaboration_id
        with pytest.raises(NotFound):
            store.delete_collaboration(carol_collab, "alice")


def test_every_collaboration_change_goes_through_the_op_log(world: World, tmp_path: Path) -> None:
    store = world.store
    made = store.create_collaboration(OWNER, world.content, NEWCOMER)
    store.update_collaboration(made.collaboration_id, OWNER, "write")
    store.delete_collaboration(made.collaboration_id, NEWCOMER)
    ops = store.replica.catalog.log.all_ops()
    kinds = [op.kind for op in ops if op.entity == made.collaboration_id]
    assert kinds == [oplog.COLLAB_CREATE, oplog.COLLAB_UPDATE, oplog.COLLAB_DELETE]
    key_kinds = [op.kind for op in ops if op.entity == world.owner_key]
    assert key_kinds == [oplog.KEY_CREATE]

    # The tables are only a cache of the log: folding the same ops, in any order, into an
    # empty store gives the same collaborations and keys.
    random.Random(7).shuffle(ops)
    with Store(tmp_path / "replay") as replay:
        replay.replica.blobs.write_bytes(FIRST, 0)  # bytes travel beside the log, not in it
        with replay.replica.catalog.atomic():
            for op in ops:
                replay.replica.catalog.fold.apply(op)
        for user in (*ACTORS, NEWCOMER):
            assert replay.list_collaborations(user) == store.list_collaborations(user)
            assert replay.list_api_keys(user) == [
                k.__class__(**{**_fields(k), "last_used_at": None})
                for k in store.list_api_keys(user)
            ]
        assert replay.get_content(world.content, READER) == store.get_content(world.content, READER)
        assert replay.verify() == []


def _fields(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__slots__}


# -- bad input: a clear error, and nothing changed -----------------------------------------

MALFORMED_CONTENT_IDS = [
    "", "cnt_", "cnt_" + "0" * 25, "cnt_" + "0" * 27, "cnt_" + "I" * 26, "CNT_" + "0" * 26,
    "col_" + "0" * 26, "../../etc/passwd", "cnt_0000000000000000000000000\n", None, 42,
    b"cnt_" + b"0" * 26,
]  # fmt: skip
MALFORMED_COLLABORATION_IDS = [
    "", "col_", "col_" + "0" * 25, "cnt_" + "0" * 26, "col_" + "u" * 26, "col_%00", None, 7,
]  # fmt: skip
BAD_PERMISSIONS = ["admin", "READ", "Write", "", " read", None, 1, ["read"], True]
BAD_USERS = ["", "x" * 129, "tab\there", "nul\x00", "new\nline", None, 5, b"alice"]


def _bad_calls(w: World) -> list[tuple[str, Callable[[], Any], type[DreamflareError]]]:
    s, c = w.store, w.content
    reader_collab = w.collab[READER]
    calls: list[tuple[str, Callable[[], Any], type[DreamflareError]]] = [
        ("self", lambda: s.create_collaboration(OWNER, c, OWNER), InvalidArgument),
        ("unknown content", lambda: s.create_collaboration(OWNER, UNKNOWN_CONTENT, NEWCOMER),
         NotFound),
        ("duplicate", lambda: s.create_collaboration(OWNER, c, READER, "write"), Conflict),
        ("duplicate same", lambda: s.create_collaboration(OWNER, c, WRITER, "write"), Conflict),
        ("unknown collab update",
         lambda: s.update_collaboration(UNKNOWN_COLLABORATION, OWNER, "read"), NotFound),
        ("unknown collab delete",
         lambda: s.delete_collaboration(UNKNOWN_COLLABORATION, OWNER), NotFound),
        ("deleted collab update", lambda: s.update_collaboration(w.collab[FORMER], OWNER,
                                                                 "write"), NotFound),
        ("deleted twice", lambda: s.delete_collaboration(w.collab[FORMER], OWNER), NotFound),
        ("left twice", lambda: s.delete_collaboration(w.collab[LEAVER], LEAVER), NotFound),
        ("stranger's collab update",
         lambda: s.update_collaboration(reader_collab, STRANGER, "read"), NotFound),
    ]  # fmt: skip
    for bad in MALFORMED_CONTENT_IDS:
        calls.append((f"content id {bad!r}",
                      lambda bad=bad: s.create_collaboration(OWNER, bad, NEWCOMER),
                      InvalidArgument))  # fmt: skip
    for bad in MALFORMED_COLLABORATION_IDS:
        calls.append((f"update id {bad!r}",
                      lambda bad=bad: s.update_collaboration(bad, OWNER, "read"),
                      InvalidArgument))  # fmt: skip
        calls.append((f"delete id {bad!r}", lambda bad=bad: s.delete_collaboration(bad, OWNER),
                      InvalidArgument))  # fmt: skip
    for bad in BAD_PERMISSIONS:
        calls.append((f"create permissions {bad!r}",
                      lambda bad=bad: s.create_collaboration(OWNER, c, NEWCOMER, bad),
                      InvalidArgument))  # fmt: skip
        calls.append((f"update permissions {bad!r}",
                      lambda bad=bad: s.update_collaboration(reader_collab, OWNER, bad),
                      InvalidArgument))  # fmt: skip
    for bad in BAD_USERS:
        calls.append(
            (
                f"collaborator {bad!r}",
                lambda bad=bad: s.create_collaboration(OWNER, c, bad),
                InvalidArgument,
            )
        )
    return calls


def test_bad_collaboration_input_is_refused_and_changes_nothing(world: World) -> None:
    store = world.store
    calls = _bad_calls(world)
    assert len(calls) > 50
    for label, call, expected in calls:
        before = disk_state(store)
        with pytest.raises(DreamflareError) as raised:
            call()
        assert type(raised.value) is expected, f"{label}: {raised.value!r}"
        assert raised.value.status < 500, label
        assert disk_state(store) == before, f"{label} changed the store"
    # The collaborations are as they were: the reader still only reads.
    assert store.get_content(world.content, READER)
    with pytest.raises(PermissionDenied):
        store.update_metadata(world.content, READER, description="x")
    assert store.verify() == []


def _user_calls(s: Store, c: str, bad: Any) -> list[Callable[[], Any]]:
    collab = "col_" + "1" * 26
    return [
        lambda: s.create_collaboration(bad, c, NEWCOMER),
        lambda: s.list_collaborations(bad),
        lambda: s.update_collaboration(collab, bad, "read"),
        lambda: s.delete_collaboration(collab, bad),
        lambda: s.get_content(c, bad),
        lambda: s.read_content(c, bad),
        lambda: s.open_content(c, bad),
        lambda: s.update_metadata(c, bad, description="x"),
        lambda: s.delete_content(c, bad),
        lambda: s.upload(b"x", bad),
        lambda: s.upload(b"x", bad, content_id=c),
        lambda: s.get_content_versions(c, bad),
        lambda: s.list_content(bad),
        lambda: s.get_storage_usage(bad),
        lambda: s.get_api_usage(bad),
        lambda: s.generate_api_key(bad),
        lambda: s.revoke_api_key("key_" + "0" * 26, bad),
        lambda: s.list_api_keys(bad),
        lambda: s.get_analytics(bad),
        lambda: s.get_analytics(bad, c),
        lambda: s.set_quota(bad, 10),
    ]


@pytest.mark.parametrize("bad", BAD_USERS, ids=repr)
def test_a_bad_user_id_changes_nothing_at_all(world: World, bad: Any) -> None:
    """With no valid user to charge the call to, not even the usage counters move."""
    store = world.store
    before = store.state_digest()
    for call in _user_calls(store, world.content, bad):
        with pytest.raises(InvalidArgument):
            call()
    assert store.state_digest() == before


def test_a_collaboration_does_not_authenticate_anyone(world: World) -> None:
    """Sharing is about content, not identity: a collaborator gets no key of the owner's."""
    assert world.store.list_api_keys(READER) == []
    with pytest.raises(Unauthenticated):
        world.store.authenticate("dfk_" + "A" * 43)
