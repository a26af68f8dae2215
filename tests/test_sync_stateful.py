"""A stateful property test of sync: three replicas of one remote, working offline.

Random operations on each replica (uploads, new versions, metadata updates, deletes,
collaborations, API keys, reads that count), with concurrent updates of the same field and
deletes concurrent with updates made on purpose, and random pushes and pulls (eager, lazy,
none) between them. After every step DESIGN.md's invariants hold on every replica
(``verify() == []``) and the remote never holds an op whose blob is missing. At the end
everyone syncs; then all replicas have equal ``state_digest()``, version histories and
counters, and what they hold is what an independent fold of every op made gives:
last-writer-wins by HLC per field, a delete final and winning over concurrent changes.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from test_sync import assert_remote_consistent

from backends import Remote
from backends.fixtures import RemoteFactory
from dreamflare_store import BlobUnavailable, Store
from dreamflare_store import oplog as oplog_module
from dreamflare_store.oplog import Op
from dreamflare_store.sync import NO_SOURCE
from tests.genmeta_fixtures import itxt, png

USERS = ("alice", "bob", "carol")
REPLICAS = st.integers(min_value=0, max_value=2)
PICK = st.integers(min_value=0, max_value=10_000)
# Two renders with generation metadata (replica 2 uploads without reading it, so only
# reindex gives its uploads their records: ops of their own, made on several replicas).
RENDERS = [
    png(itxt("parameters", f"quokka {word} at dawn\nSteps: 20, Seed: {seed}, Model: {model}"))
    for word, seed, model in (("zephyr", 1, "alpha_xl"), ("velvet", 2, "beta_xl"))
]
PAYLOADS = st.sampled_from(
    [b"", b"a", b"bb", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, bytes(range(256)), *RENDERS]
)
TAGS = st.lists(st.sampled_from(["cat", "dog", "sky"]), max_size=2, unique=True)
DESCRIPTIONS = st.sampled_from(["", "first", "second", "ünïcödé", "x\n--==0==\ny"])
MODES = st.sampled_from(["eager", "lazy", "none"])


# -- the reference: an independent fold of every op made, in HLC order ---------------------


@dataclass
class Expected:
    """What every replica must hold once all ops reached it."""

    contents: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # None: deleted
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    collaborations: dict[str, tuple[str, bool]] = field(default_factory=dict)
    revoked: dict[str, bool] = field(default_factory=dict)
    strip: dict[str, bool] = field(default_factory=dict)
    favorites: dict[tuple[str, str], bool] = field(default_factory=dict)


def fold(ops: list[Op]) -> Expected:
    """DESIGN.md's rules, written plainly: fields last-writer-wins in (hlc, op id) order,
    each create or change is a version, a delete is final."""
    out = Expected()
    for op in sorted(ops, key=lambda op: op.sort_key):
        if op.kind == oplog_module.CONTENT_CREATE:
            snapshot = {"description": None, "tags": [], "generation": None, **op.data["fields"]}
            out.contents[op.entity] = snapshot
            out.versions[op.entity] = [dict(snapshot)]
        elif op.kind == oplog_module.CONTENT_CHANGE:
            current = out.contents.get(op.entity)
            if current is not None:
                if "blob" in op.data["fields"]:
                    current["generation"] = None  # new bytes bring their own record
                current.update(op.data["fields"])
                out.versions[op.entity].append(dict(current))
        elif op.kind == oplog_module.CONTENT_GENERATION:
            current = out.contents.get(op.entity)
            if current is not None:  # no new version: the versions of those bytes get it
                for snapshot in [current, *out.versions[op.entity]]:
                    if snapshot["blob"] == op.data["blob"]:
                        snapshot["generation"] = op.data["generation"]
        elif op.kind == oplog_module.CONTENT_FAVORITE:
            out.favorites[(op.entity, op.data["user"])] = op.data["favorite"]
        elif op.kind == oplog_module.CONTENT_DELETE:
            out.contents[op.entity] = None
        elif op.kind == oplog_module.COLLAB_CREATE:
            out.collaborations[op.entity] = (op.data["permissions"], False)
            out.strip[op.entity] = bool(op.data.get("strip_metadata"))
        elif op.kind == oplog_module.COLLAB_UPDATE:
            permissions, deleted = out.collaborations[op.entity]
            if not deleted:
                permissions = op.data.get("permissions", permissions)
                out.collaborations[op.entity] = (permissions, False)
                out.strip[op.entity] = op.data.get("strip_metadata", out.strip[op.entity])
        elif op.kind == oplog_module.COLLAB_DELETE:
            out.collaborations[op.entity] = (out.collaborations[op.entity][0], True)
        elif op.kind == oplog_module.KEY_CREATE:
            out.revoked.setdefault(op.entity, False)
        elif op.kind == oplog_module.KEY_REVOKE:
            out.revoked[op.entity] = True
    return out


def current(state: Any) -> tuple[Any, ...]:
    """The fields a snapshot (a row, or the reference's dict) is compared on."""
    tags = state["tags"]
    tags = tuple(json.loads(tags)) if isinstance(tags, str) else tuple(tags or ())
    generation = state["generation"]
    if isinstance(generation, str):
        generation = json.loads(generation)
    return (state["blob"], state["size"], state["description"], tags, generation)


def last_op(store: Store) -> Op:
    """The op the replica's last mutation recorded."""
    me = store.replica_id
    return store.replica.catalog.log.ops_of(me, store.replica.catalog.log.max_rseq(me) - 1, 1)[0]


def pick(items: list[Any], index: int) -> Any:
    return items[index % len(items)]


# -- the machine ----------------------------------------------------------------------------


class SyncMachine(RuleBasedStateMachine):
    """Three replicas of one remote. ``remote_factory`` is set on the class by the test."""

    remote_factory: RemoteFactory

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="df-sync-stateful-"))
        self.remote: Remote = self.remote_factory()
        self.stores = [Store(self.root / f"replica-{i}", extract_metadata=i != 2) for i in range(3)]
        for store in self.stores:
            store.add_remote("origin", self.remote.url, **self.remote.storage_options)
        self.ops: list[Op] = []

    @initialize(user=st.sampled_from(USERS), data=PAYLOADS)
    def first_upload(self, user: str, data: bytes) -> None:
        self._did(0, self.stores[0].upload(data, user, description="first").content_id)

    # -- what a replica can see ----------------------------------------------------------

    def _live(self, r: int, owner: str | None = None) -> list[tuple[str, str]]:
        """(content id, owner) of the contents replica r holds alive."""
        rows = (
            self.stores[r]
            .replica.catalog.db.conn.execute(
                "SELECT content_id, owner FROM contents WHERE deleted = 0 ORDER BY content_id"
            )
            .fetchall()
        )
        return [(row[0], row[1]) for row in rows if owner is None or row[1] == owner]

    def _writers(self, r: int, content_id: str, owner: str) -> list[str]:
        catalog = self.stores[r].replica.catalog
        return [owner] + [u for u in USERS if catalog.reads.permission_of(content_id, u) == "write"]

    def _did(self, r: int, what: str) -> None:
        op = last_op(self.stores[r])
        self.ops.append(op)
        note(f"replica {r}: {op.kind} {op.entity} ({what}) at {op.hlc}")

    # -- content --------------------------------------------------------------------------

    @rule(r=REPLICAS, user=st.sampled_from(USERS), data=PAYLOADS, tags=TAGS, d=DESCRIPTIONS)
    def upload(self, r: int, user: str, data: bytes, tags: list[str], d: str) -> None:
        content = self.stores[r].upload(data, user, description=d, tags=tags)
        self._did(r, f"upload by {user}")
        assert content.version == 1

    @rule(r=REPLICAS, i=PICK, w=PICK, data=PAYLOADS)
    def new_version(self, r: int, i: int, w: int, data: bytes) -> None:
        live = self._live(r)
        if not live:
            return
        content_id, owner = pick(live, i)
        user = pick(self._writers(r, content_id, owner), w)
        self.stores[r].upload(data, user, content_id=content_id)
        self._did(r, f"new version by {user}")

    @rule(r=REPLICAS, i=PICK, w=PICK, d=st.none() | DESCRIPTIONS, tags=st.none() | TAGS)
    def update_metadata(
        self, r: int, i: int, w: int, d: str | None, tags: list[str] | None
    ) -> None:
        live = self._live(r)
        if not live or (d is None and tags is None):
            return
        content_id, owner = pick(live, i)
        user = pick(self._writers(r, content_id, owner), w)
        self.stores[r].update_metadata(content_id, user, description=d, tags=tags)
        self._did(r, f"metadata by {user}")

    @rule(r=REPLICAS, i=PICK)
    def delete(self, r: int, i: int) -> None:
        live = self._live(r)
        if not live:
            return
        content_id, owner = pick(live, i)
        self.stores[r].delete_content(content_id, owner)
        self._did(r, "delete")

    @rule(r1=REPLICAS, r2=REPLICAS, i=PICK, d1=DESCRIPTIONS, d2=DESCRIPTIONS)
    def concurrent_updates_of_one_field(self, r1: int, r2: int, i: int, d1: str, d2: str) -> None:
        """The same description set on two replicas before they sync."""
        both = sorted(set(self._live(r1)) & set(self._live(r2)))
        if r1 == r2 or not both:
            return
        content_id, owner = pick(both, i)
        self.stores[r1].update_metadata(content_id, owner, description=d1)
        self._did(r1, "concurrent update")
        self.stores[r2].update_metadata(content_id, owner, description=d2)
        self._did(r2, "concurrent update")

    @rule(r1=REPLICAS, r2=REPLICAS, i=PICK, tags=TAGS)
    def delete_concurrent_with_update(self, r1: int, r2: int, i: int, tags: list[str]) -> None:
        """One replica deletes a content while another changes it."""
        both = sorted(set(self._live(r1)) & set(self._live(r2)))
        if r1 == r2 or not both:
            return
        content_id, owner = pick(both, i)
        self.stores[r2].update_metadata(content_id, owner, tags=tags or ["late"])
        self._did(r2, "update concurrent with a delete")
        self.stores[r1].delete_content(content_id, owner)
        self._did(r1, "delete concurrent with an update")

    # -- collaborations and keys -------------------------------------------------------------

    @rule(
        r=REPLICAS,
        i=PICK,
        c=st.sampled_from(USERS),
        p=st.sampled_from(["read", "write"]),
        strip=st.booleans(),
    )
    def collaborate(self, r: int, i: int, c: str, p: str, strip: bool) -> None:
        live = self._live(r)
        if not live:
            return
        content_id, owner = pick(live, i)
        if (
            c == owner
            or self.stores[r].replica.catalog.reads.permission_of(content_id, c) is not None
        ):
            return
        self.stores[r].create_collaboration(owner, content_id, c, p, strip_metadata=strip)
        self._did(r, f"share with {c}")

    def _collaborations(self, r: int) -> list[tuple[str, str]]:
        rows = (
            self.stores[r]
            .replica.catalog.db.conn.execute(
                "SELECT k.collaboration_id, k.owner FROM collaborations k JOIN contents c"
                " USING (content_id) WHERE k.deleted = 0 AND c.deleted = 0"
                " ORDER BY k.collaboration_id"
            )
            .fetchall()
        )
        return [(row[0], row[1]) for row in rows]

    @rule(
        r=REPLICAS,
        i=PICK,
        p=st.sampled_from(["read", "write", None]),
        remove=st.booleans(),
        strip=st.sampled_from([None, True, False]),
    )
    def change_collaboration(
        self, r: int, i: int, p: str | None, remove: bool, strip: bool | None
    ) -> None:
        found = self._collaborations(r)
        if not found:
            return
        collaboration_id, owner = pick(found, i)
        if remove:
            self.stores[r].delete_collaboration(collaboration_id, owner)
        elif p is None and strip is None:
            return
        else:
            self.stores[r].update_collaboration(collaboration_id, owner, p, strip)
        self._did(r, "collaboration change")

    # -- finding: favorites and reindexing ---------------------------------------------------

    @rule(r=REPLICAS, i=PICK, u=st.sampled_from(USERS), mark=st.booleans())
    def favorite(self, r: int, i: int, u: str, mark: bool) -> None:
        live = self._live(r)
        if not live:
            return
        content_id, owner = pick(live, i)
        user = u if self.stores[r].replica.catalog.reads.permission_of(content_id, u) else owner
        self.stores[r].set_favorite(content_id, user, mark)
        self._did(r, f"favorite {mark} by {user}")

    @rule(r=REPLICAS)
    def reindex(self, r: int) -> None:
        store = self.stores[r]
        before = store.replica.catalog.log.max_rseq(store.replica_id)
        recorded = store.reindex()
        after = store.replica.catalog.log.max_rseq(store.replica_id)
        assert after - before == recorded
        if recorded:
            self.ops.extend(store.replica.catalog.log.ops_of(store.replica_id, before, recorded))
            note(f"replica {r}: reindex recorded {recorded}")

    @rule(r=REPLICAS, user=st.sampled_from(USERS), revoke=st.booleans(), i=PICK)
    def api_key(self, r: int, user: str, revoke: bool, i: int) -> None:
        store = self.stores[r]
        live = [k for k in store.list_api_keys(user) if k.revoked_at is None]
        if revoke and live:
            store.revoke_api_key(pick(live, i).key_id, user)
            self._did(r, "revoke key")
        else:
            secret = store.generate_api_key(user, "laptop").api_key
            assert store.authenticate(secret) == user
            self._did(r, "new key")

    # -- reads that count --------------------------------------------------------------------

    @rule(r=REPLICAS, i=PICK, download=st.booleans())
    def read(self, r: int, i: int, download: bool) -> None:
        live = self._live(r)
        if not live:
            return
        content_id, owner = pick(live, i)
        store = self.stores[r]
        if not download:
            store.get_content(content_id, owner)
            return
        digest = store.replica.catalog.reads.content_row(content_id)["blob"]
        try:
            data = store.read_content(content_id, owner)
        except BlobUnavailable:
            assert (
                store.replica.catalog.local.remote_of_blob(digest) == NO_SOURCE
            )  # pulled with "none"
            note(f"replica {r}: bytes of {content_id} not pulled")
            return
        assert store.replica.blobs.exists(digest)
        assert len(data) == store.replica.catalog.reads.content_row(content_id)["size"]

    # -- sync ----------------------------------------------------------------------------------

    @rule(r=REPLICAS)
    def push(self, r: int) -> None:
        report = self.stores[r].push("origin")
        note(f"replica {r}: push {report}")
        assert_remote_consistent(self.remote)

    @rule(r=REPLICAS, mode=MODES)
    def pull(self, r: int, mode: str) -> None:
        report = self.stores[r].pull("origin", blobs=mode)
        note(f"replica {r}: pull {mode} {report}")

    @rule(r=REPLICAS)
    def sync(self, r: int) -> None:
        note(f"replica {r}: sync {self.stores[r].sync('origin')}")

    @invariant()
    def replicas_are_healthy(self) -> None:
        for store in self.stores:
            assert store.verify() == []

    # -- the end: everyone syncs, everyone agrees, and agrees with the reference -------------

    def teardown(self) -> None:
        try:
            if self.ops:
                self._converge_and_check()
        finally:
            for store in self.stores:
                store.close()
            shutil.rmtree(self.root, ignore_errors=True)

    def _converge_and_check(self) -> None:
        for store in self.stores:
            store.push("origin")
        for store in self.stores:
            store.pull("origin", blobs="eager")
        assert_remote_consistent(self.remote)
        digests = [store.state_digest() for store in self.stores]
        assert digests[0] == digests[1] == digests[2]
        replicas = [store.replica_id for store in self.stores]
        snapshots = [
            [store.replica.catalog.tallies.counter_snapshot(replica) for replica in replicas]
            for store in self.stores
        ]
        assert snapshots[0] == snapshots[1] == snapshots[2]
        expected = fold(self.ops)
        for store in self.stores:
            assert store.verify() == []
            assert (
                store.replica.catalog.local.remote_blob_sources() == {}
            )  # eager: all bytes are here
            self._check_against(store, expected)
        for user in USERS:  # metered reads last: each counts only on its own replica
            assert len({repr(store.get_api_usage(user)) for store in self.stores}) == 1
            assert len({repr(store.get_analytics(user)) for store in self.stores}) == 1
        histories = {
            content_id: [
                [v.to_dict() for v in store.get_content_versions(content_id, snapshot["owner"])]
                for store in self.stores
            ]
            for content_id, snapshot in self._owners(expected).items()
        }
        for content_id, per_replica in histories.items():
            assert per_replica[0] == per_replica[1] == per_replica[2], content_id
        # Search and facets follow the ops: the same on every replica (in an order that
        # may differ where it falls back to local arrival, as list pages do).
        for user in USERS:
            for query in ("quokka", "zephyr", "dawn", None):
                pages = {
                    repr(
                        sorted(
                            repr(sorted(c.to_dict().items()))
                            for c in store.search_content(user, query, limit=500).items
                        )
                    )
                    for store in self.stores
                }
                assert len(pages) == 1, (user, query)
            assert len({repr(store.facets(user).to_dict()) for store in self.stores}) == 1

    def _owners(self, expected: Expected) -> dict[str, dict[str, Any]]:
        owners = {
            op.entity: op.data["owner"] for op in self.ops if op.kind == oplog_module.CONTENT_CREATE
        }
        return {cid: {"owner": owners[cid]} for cid, state in expected.contents.items() if state}

    def _check_against(self, store: Store, expected: Expected) -> None:
        catalog = store.replica.catalog
        for content_id, state in expected.contents.items():
            row = catalog.reads.content_row(content_id)
            assert row is not None
            if state is None:
                assert row["deleted"] == 1, content_id
                continue
            assert row["deleted"] == 0
            assert current(row) == current(state), content_id
            versions = catalog.reads.versions_of(content_id)
            assert [v["number"] for v in versions] == list(range(1, len(versions) + 1))
            assert [current(v) for v in versions] == [
                current(s) for s in expected.versions[content_id]
            ]
        for collaboration_id, (permissions, deleted) in expected.collaborations.items():
            row = catalog.reads.collaboration_row(collaboration_id)
            assert (row["permissions"], bool(row["deleted"])) == (permissions, deleted)
        for key_id, revoked in expected.revoked.items():
            assert (catalog.reads.key_row(key_id)["revoked_hlc"] is not None) == revoked
        for collaboration_id, strip in expected.strip.items():
            row = catalog.reads.collaboration_row(collaboration_id)
            assert bool(row["strip_metadata"]) is strip, collaboration_id
        favorites = {
            (row[0], row[1]): bool(row[2])
            for row in catalog.db.conn.execute("SELECT content_id, user, favorite FROM favorites")
        }
        assert favorites == expected.favorites
        # Every replica finds the same renders for every user, from the ops alone.
        for user in USERS:
            for query in ("quokka", "zephyr", None):
                found = store.search_content(user, query, limit=500)
                ids = [item.content_id for item in found.items]
                visible = {
                    cid
                    for cid, state in expected.contents.items()
                    if state is not None
                    and state["generation"] is not None
                    and store.replica.catalog.reads.content_row(cid)["owner"] == user
                    and (query is None or query in state["generation"]["prompt"])
                }
                assert visible <= set(ids) or query is None, (user, query)


# File remotes get the big run; the servers a smaller one (each request costs more).
RUNS = {"file": (40, 40), "s3": (3, 15), "gcs": (3, 15)}


def test_replicas_converge(remote_kind: str, remote_factory: RemoteFactory) -> None:
    examples, steps = RUNS[remote_kind]
    machine = type(
        "SyncMachineFor", (SyncMachine,), {"remote_factory": staticmethod(remote_factory)}
    )
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
