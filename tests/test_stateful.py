"""A stateful property test of versioning against a plain-dict model.

Random uploads, new versions, metadata updates, deletes, reopening the store and gc; after
every step DESIGN.md's invariants 3-5 are checked: version numbers gap-free and stable,
snapshots immutable, storage counters equal to a recount, every live blob readable.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from dreamflare_store import NotFound, Store

USERS = ("alice", "bob")
# A small pool of payloads, so that dedup across contents and users happens often.
PAYLOADS = st.sampled_from(
    [b"", b"a", b"bb", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, bytes(range(256)) * 9]
)
TAGS = st.lists(st.sampled_from(["cat", "dog", "sky", "x y"]), max_size=3)
DESCRIPTIONS = st.none() | st.sampled_from(["", "first", "second", "ünïcödé"])


@dataclass
class Snapshot:
    data: bytes
    filename: str
    description: str | None
    tags: tuple[str, ...]
    changes: tuple[str, ...]


@dataclass
class ModelContent:
    owner: str
    versions: list[Snapshot] = field(default_factory=list)


class VersioningMachine(RuleBasedStateMachine):
    contents = Bundle("contents")

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="df-stateful-"))
        self.store = Store(self.root / "store")
        self.model: dict[str, ModelContent] = {}
        self.deleted: set[str] = set()
        self.seen_versions: dict[str, list[dict[str, object]]] = {}

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.root, ignore_errors=True)

    @rule(
        target=contents,
        user=st.sampled_from(USERS),
        data=PAYLOADS,
        tags=TAGS,
        description=DESCRIPTIONS,
    )
    def upload(self, user: str, data: bytes, tags: list[str], description: str | None) -> str:
        c = self.store.upload(
            file=data, user_id=user, tags=tags, description=description, filename="f.bin"
        )
        note(f"uploaded {c.content_id} for {user}: {len(data)} bytes")
        changes = (
            ["file", "filename"]
            + (["description"] if description is not None else [])
            + (["tags"] if tags else [])
        )
        self.model[c.content_id] = ModelContent(
            user, [Snapshot(data, "f.bin", description, tuple(dict.fromkeys(tags)), tuple(changes))]
        )
        return c.content_id

    @rule(content=contents, data=PAYLOADS)
    def new_version(self, content: str, data: bytes) -> None:
        if content in self.deleted:
            return
        model = self.model[content]
        c = self.store.upload(file=data, user_id=model.owner, content_id=content)
        last = model.versions[-1]
        model.versions.append(Snapshot(data, last.filename, last.description, last.tags, ("file",)))
        assert c.version == len(model.versions)

    @rule(content=contents, tags=st.none() | TAGS, description=DESCRIPTIONS)
    def update_metadata(
        self, content: str, tags: list[str] | None, description: str | None
    ) -> None:
        if content in self.deleted or (tags is None and description is None):
            return
        model = self.model[content]
        c = self.store.update_metadata(content, model.owner, description=description, tags=tags)
        last = model.versions[-1]
        changes = (("description",) if description is not None else ()) + (
            ("tags",) if tags is not None else ()
        )
        model.versions.append(
            Snapshot(
                last.data,
                last.filename,
                description if description is not None else last.description,
                tuple(dict.fromkeys(tags)) if tags is not None else last.tags,
                changes,
            )
        )
        assert c.version == len(model.versions)

    @rule(content=consumes(contents))
    def delete(self, content: str) -> None:
        if content in self.deleted:
            return
        self.store.delete_content(content, self.model[content].owner)
        self.deleted.add(content)

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = Store(self.root / "store")

    @rule()
    def gc(self) -> None:
        self.store.gc(min_age=0)

    @precondition(lambda self: bool(self.deleted))
    @rule()
    def deleted_stay_deleted(self) -> None:
        for content in self.deleted:
            owner = self.model[content].owner
            try:
                self.store.get_content(content, owner)
            except NotFound:
                continue
            raise AssertionError(f"deleted content {content} came back")

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def versions_match_model_and_never_change(self) -> None:
        for content, model in self.model.items():
            if content in self.deleted:
                continue
            versions = self.store.get_content_versions(content, model.owner)
            assert [v.version for v in versions] == list(range(1, len(model.versions) + 1))
            for version, snap in zip(versions, model.versions, strict=True):
                assert (version.filename, version.description, version.tags, version.changes) == (
                    snap.filename,
                    snap.description,
                    snap.tags,
                    snap.changes,
                )
                assert version.size == len(snap.data)
            earlier = self.seen_versions.get(content, [])
            current = [v.to_dict() for v in versions]
            assert current[: len(earlier)] == earlier, "a version snapshot changed"
            self.seen_versions[content] = current
            c = self.store.get_content(content, model.owner)
            assert c.version == len(model.versions)
            assert self.store.read_content(content, model.owner) == model.versions[-1].data

    @invariant()
    def every_live_version_is_readable(self) -> None:
        for content, model in self.model.items():
            if content in self.deleted:
                continue
            for number, snap in enumerate(model.versions, start=1):
                assert self.store.read_content(content, model.owner, version=number) == snap.data

    @invariant()
    def storage_counters_equal_a_recount(self) -> None:
        for user in USERS:
            live = [m for c, m in self.model.items() if m.owner == user and c not in self.deleted]
            usage = self.store.get_storage_usage(user)
            assert usage.content_count == len(live)
            assert usage.version_count == sum(len(m.versions) for m in live)
            assert usage.bytes == sum(len(m.versions[-1].data) for m in live)
            distinct = {snap.data for m in live for snap in m.versions}
            assert usage.history_bytes == sum(len(d) for d in distinct)
            assert self.store.list_content(user, limit=1000).total == len(live)

    @invariant()
    def verify_is_clean(self) -> None:
        assert self.store.verify() == []


def test_versioning_state_machine() -> None:
    run_state_machine_as_test(
        VersioningMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
