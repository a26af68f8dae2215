"""A stateful property test of the access rules, collaborations and API keys.

Owners, collaborators and strangers do random operations on random contents,
collaborations and keys (known ones, deleted ones, and ids that never existed). Every
answer (success, NotFound, PermissionDenied, ...) must be what a plain-dict model of
DESIGN.md's rules predicts; ``authenticate`` must agree with a model of the keys; API usage
and analytics must equal the model's counts. After every step the single access check is
asked about every (content, user) pair, and ``verify()`` must find nothing wrong.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from dreamflare_store import (
    Conflict,
    DreamflareError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Store,
    Unauthenticated,
)
from dreamflare_store.access import Access
from tests.genmeta_fixtures import itxt, png

USERS = ("ann", "ben", "cid", "dot")
PERMISSIONS = ("read", "write")
NEEDS = ("read", "write", "owner")
# A render whose prompt holds words no other payload has: search for them finds exactly
# the contents whose current bytes are this one, among those the user may see with their
# metadata.
PROMPT = (
    "zephyr quokka in velvet light\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 4242,"
    " Size: 1x1, Model: quokkamodel"
)
RENDER = png(itxt("parameters", PROMPT))
PAYLOADS = st.sampled_from(
    [b"", b"a", b"bb" * 7, b"\x89PNG\r\n\x1a\n" + b"\0" * 30, RENDER, RENDER]
)
UNKNOWN_CONTENT = "cnt_" + "0" * 26
UNKNOWN_COLLABORATION = "col_" + "0" * 26
UNKNOWN_KEY = "key_" + "0" * 26
START_MS = 1_795_000_000_000
OK = "ok"
Outcome = str | type[DreamflareError]
T = TypeVar("T")


class FakeClock:
    def __init__(self) -> None:
        self.ms = START_MS

    def time_ms(self) -> int:
        return self.ms


@dataclass
class ModelContent:
    owner: str
    size: int
    live: bool = True
    render: bool = False  # the current bytes are RENDER
    views: int = 0
    downloads: int = 0
    served: int = 0
    viewers: set[str] = field(default_factory=set)


@dataclass
class ModelCollaboration:
    content: str
    owner: str
    collaborator: str
    permissions: str
    live: bool = True
    strip: bool = False


@dataclass
class ModelKey:
    key_id: str
    user: str
    secret: str
    revoked: bool = False


class AccessMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="df-access-"))
        self.clock = FakeClock()
        self.store = Store(self.root / "store", clock=self.clock)
        self.content: dict[str, ModelContent] = {}
        self.collab: dict[str, ModelCollaboration] = {}
        self.key: dict[str, ModelKey] = {}
        self.calls: Counter[tuple[str, str]] = Counter()  # (user, operation) -> calls
        self.errors: Counter[tuple[str, str]] = Counter()

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- the model of the rules ------------------------------------------------------------

    def level(self, content_id: str, user: str) -> str | None:
        """What ``user`` may do to a content: "owner", "write", "read", or None (unseen)."""
        content = self.content.get(content_id)
        if content is None or not content.live:
            return None
        if content.owner == user:
            return "owner"
        granted = [
            c.permissions
            for c in self.collab.values()
            if c.live and c.content == content_id and c.collaborator == user
        ]
        return max(granted) if granted else None  # "write" > "read"

    def expect(self, content_id: str, user: str, need: str) -> Outcome:
        level = self.level(content_id, user)
        if level is None:
            return NotFound
        if level == "owner" or need == "read" or (need == "write" and level == "write"):
            return OK
        return PermissionDenied

    def strips(self, content_id: str, user: str) -> bool:
        """Whether ``user`` (who may read the content) sees it without its metadata: every
        live collaboration giving it to them says so."""
        content = self.content[content_id]
        if content.owner == user:
            return False
        given = [
            c.strip
            for c in self.collab.values()
            if c.live and c.content == content_id and c.collaborator == user
        ]
        return bool(given) and all(given)

    def found_by_prompt(self, user: str) -> set[str]:
        """The contents a search for the prompt's words must find for ``user``."""
        return {
            cid
            for cid, c in self.content.items()
            if c.render and self.level(cid, user) is not None and not self.strips(cid, user)
        }

    def visible_collaboration(self, collaboration_id: str, user: str) -> bool:
        c = self.collab.get(collaboration_id)
        return (
            c is not None
            and c.live
            and self.content[c.content].live
            and user in (c.owner, c.collaborator)
        )

    # -- calling the store and comparing ---------------------------------------------------

    def call(
        self, operation: str, user: str, expected: Outcome, action: Callable[[], T]
    ) -> T | None:
        """Run one API call, check its answer against ``expected``, and count it as the store
        should (every call with a valid user counts, failures as errors)."""
        self.calls[(user, operation)] += 1
        try:
            result = action()
        except DreamflareError as exc:
            note(f"{operation} by {user}: {type(exc).__name__}")
            assert expected != OK, f"{operation} by {user} failed: {exc!r}"
            assert type(exc) is expected, f"{operation} by {user}: {exc!r}, expected {expected}"
            self.errors[(user, operation)] += 1
            return None
        note(f"{operation} by {user}: ok")
        assert expected == OK, f"{operation} by {user} succeeded, expected {expected}"
        return result

    # -- picking things to act on ------------------------------------------------------------

    def pick(self, data: st.DataObject, pool: dict[str, Any], unknown: str) -> str:
        """A known id (live or deleted), now and then one that never existed.

        Ids are drawn in creation order, never sorted: ids made in the same millisecond
        order randomly, and a replay must pick the same thing.
        """
        known = list(pool)
        if not known or data.draw(st.integers(0, 9), label="unknown?") == 0:
            return unknown
        return data.draw(st.sampled_from(known))

    def pick_user(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(USERS), label="user")

    @initialize()
    def shared_contents(self) -> None:
        """Each user owns a content, shared with the next user to read, the one after to write."""
        for i, owner in enumerate(USERS):
            made = self.store.upload(owner.encode() * (i + 1), owner)
            self.calls[(owner, "upload")] += 1
            self.content[made.content_id] = ModelContent(owner, made.size)
            for step, permissions in ((1, "read"), (2, "write")):
                collaborator = USERS[(i + step) % len(USERS)]
                shared = self.store.create_collaboration(
                    owner, made.content_id, collaborator, permissions
                )
                self.calls[(owner, "create_collaboration")] += 1
                self.collab[shared.collaboration_id] = ModelCollaboration(
                    made.content_id, owner, collaborator, permissions
                )

    # -- contents --------------------------------------------------------------------------

    @rule(user=st.sampled_from(USERS), payload=PAYLOADS)
    def upload(self, user: str, payload: bytes) -> None:
        made = self.call("upload", user, OK, lambda: self.store.upload(payload, user))
        assert made is not None and made.user_id == user
        self.content[made.content_id] = ModelContent(user, len(payload), render=payload == RENDER)

    @rule(data=st.data(), payload=PAYLOADS)
    def upload_version(self, data: st.DataObject, payload: bytes) -> None:
        content = self.pick(data, self.content, UNKNOWN_CONTENT)
        user = self.pick_user(data)
        expected = self.expect(content, user, "write")
        made = self.call(
            "upload", user, expected, lambda: self.store.upload(payload, user, content_id=content)
        )
        if made is not None:
            assert made.user_id == self.content[content].owner
            self.content[content].size = len(payload)
            self.content[content].render = payload == RENDER

    @rule(data=st.data())
    def get_content(self, data: st.DataObject) -> None:
        content = self.pick(data, self.content, UNKNOWN_CONTENT)
        user = self.pick_user(data)
        expected = self.expect(content, user, "read")
        got = self.call(
            "get_content", user, expected, lambda: self.store.get_content(content, user)
        )
        if got is not None:
            model = self.content[content]
            assert (got.user_id, got.size) == (model.owner, model.size)
            shown = model.render and not self.strips(content, user)
            assert (got.generation is not None) is shown
            model.views += 1
            model.viewers.add(user)

    @rule(data=st.data(), streamed=st.booleans())
    def read_bytes(self, data: st.DataObject, streamed: bool) -> None:
        content = self.pick(data, self.content, UNKNOWN_CONTENT)
        user = self.pick_user(data)
        expected = self.expect(content, user, "read")

        def read() -> bytes:
            if streamed:
                with self.store.open_content(content, user) as reader:
                    return bytes(reader.read())
            return self.store.read_content(content, user)

        operation = "open_content" if streamed else "read_content"
        got = self.call(operation, user, expected, read)
        if got is not None:
            model = self.content[content]
            if model.render and self.strips(content, user):
                assert b"quokka" not in got  # their bytes come without the metadata
            else:
                assert len(got) == model.size
            model.downloads += 1
            model.served += len(got)
            model.viewers.add(user)

    @rule(data=st.data())
    def get_content_versions(self, data: st.DataObject) -> None:
        content = self.pick(data, self.content, UNKNOWN_CONTENT)
        user = self.pick_user(data)
        expected = self.expect(content, user, "read")
        self.call(
            "get_content_versions",
            user,
            expected,
            lambda: self.store.get_content_versions(content, user),
        )

    @rule(data=st.data())
    def update_metadata(self, data: st.DataObject) -> None:
        content = self.pick(data, self.content, UNKNOWN_CONTENT)
        user = self.pick_user(data)
        expected = self.expect(content, user, "write")
        self.call(
            "update_metadata",
            user,
            expected,
            lambda: self.store.update_metadata(content, user, description=f"by {user}"),
        )

    @rule(data=st.data())
    def delete_content(self, data: st.DataObject) -> None:
        content = self.pick(data, self.content, UNKNOWN_CONTENT)
        user = self.pick_user(data)
        expected = self.expect(content, user, "owner")
        self.call(
            "delete_content", user, expected, lambda: self.store.delete_content(content, user)
        )
        if expected == OK:
            self.content[content].live = False

    @rule(data=st.data())
    def get_analytics(self, data: st.DataObject) -> None:
        content = self.pick(data, self.content, UNKNOWN_CONTENT)
        user = self.pick_user(data)
        expected = self.expect(content, user, "owner")
        got = self.call(
            "get_analytics", user, expected, lambda: self.store.get_analytics(user, content)
        )
        if got is not None:
            model = self.content[content]
            assert (got.views, got.downloads, got.bytes_served) == (
                model.views,
                model.downloads,
                model.served,
            )
            assert got.unique_viewers == len(model.viewers)

    # -- collaborations --------------------------------------------------------------------

    @rule(
        data=st.data(),
        collaborator=st.sampled_from(USERS),
        permissions=st.sampled_from(PERMISSIONS),
        by_owner=st.booleans(),
        strip=st.booleans(),
    )
    def create_collaboration(
        self,
        data: st.DataObject,
        collaborator: str,
        permissions: str,
        by_owner: bool,
        strip: bool,
    ) -> None:
        content = self.pick(data, self.content, UNKNOWN_CONTENT)
        if by_owner and content in self.content:
            user = self.content[content].owner  # mostly succeeds: sharing grows
        else:
            user = self.pick_user(data)
        level = self.level(content, user)
        expected: Outcome
        if collaborator == user:
            expected = InvalidArgument
        elif level is None:
            expected = NotFound
        elif level != "owner":
            expected = PermissionDenied
        elif self.level(content, collaborator) is not None:
            expected = Conflict  # already collaborates
        else:
            expected = OK
        made = self.call(
            "create_collaboration",
            user,
            expected,
            lambda: self.store.create_collaboration(
                user, content, collaborator, permissions, strip_metadata=strip
            ),
        )
        if made is not None:
            assert (made.user_id, made.collaborator_id, made.permissions) == (
                user,
                collaborator,
                permissions,
            )
            assert made.strip_metadata is strip
            self.collab[made.collaboration_id] = ModelCollaboration(
                content, user, collaborator, permissions, strip=strip
            )

    def pick_collaboration_and_user(self, data: st.DataObject) -> tuple[str, str]:
        collaboration = self.pick(data, self.collab, UNKNOWN_COLLABORATION)
        model = self.collab.get(collaboration)
        # Mostly someone the collaboration concerns; sometimes anyone.
        if model is not None and data.draw(st.booleans(), label="concerned?"):
            return collaboration, data.draw(st.sampled_from([model.owner, model.collaborator]))
        return collaboration, self.pick_user(data)

    @rule(
        data=st.data(),
        permissions=st.sampled_from(PERMISSIONS),
        strip=st.sampled_from([None, None, True, False]),
    )
    def update_collaboration(
        self, data: st.DataObject, permissions: str, strip: bool | None
    ) -> None:
        collaboration, user = self.pick_collaboration_and_user(data)
        expected: Outcome
        if not self.visible_collaboration(collaboration, user):
            expected = NotFound
        elif self.collab[collaboration].owner != user:
            expected = PermissionDenied
        else:
            expected = OK
        got = self.call(
            "update_collaboration",
            user,
            expected,
            lambda: self.store.update_collaboration(
                collaboration, user, permissions, strip_metadata=strip
            ),
        )
        if got is not None:
            assert got.permissions == permissions
            self.collab[collaboration].permissions = permissions
            if strip is not None:
                self.collab[collaboration].strip = strip
            assert got.strip_metadata is self.collab[collaboration].strip

    # -- finding ---------------------------------------------------------------------------

    @rule(
        user=st.sampled_from(USERS),
        query=st.sampled_from(["quokka", "zephyr velvet", '"velvet light"', "quok*"]),
        by_filter=st.sampled_from([None, "model", "seed", "lora"]),
    )
    def search(self, user: str, query: str, by_filter: str | None) -> None:
        """A stranger never finds another's content; a collaborator without metadata never
        finds it by the prompt's words or by generation filters."""
        expected = self.found_by_prompt(user)
        if by_filter is None:
            action = lambda: self.store.search_content(user, query)  # noqa: E731
        elif by_filter == "model":
            action = lambda: self.store.search_content(user, model="quokkamodel")  # noqa: E731
        elif by_filter == "seed":
            action = lambda: self.store.search_content(user, seed=4242)  # noqa: E731
        else:
            expected = set()  # the prompt names no LoRA
            action = lambda: self.store.search_content(user, lora="quokka")  # noqa: E731
        page = self.call("search_content", user, OK, action)
        assert page is not None
        assert {item.content_id for item in page.items} == expected
        assert page.total == len(expected)
        everything = self.call(
            "search_content", user, OK, lambda: self.store.search_content(user, limit=500)
        )
        assert everything is not None
        assert {item.content_id for item in everything.items} == {
            cid for cid in self.content if self.level(cid, user) is not None
        }
        facets = self.call("facets", user, OK, lambda: self.store.facets(user))
        assert facets is not None
        models = {f.value: f.count for f in facets.models}
        made_visibly = self.found_by_prompt(user)
        assert models == ({"quokkamodel": len(made_visibly)} if made_visibly else {})

    @rule(data=st.data())
    def get_generation(self, data: st.DataObject) -> None:
        content = self.pick(data, self.content, UNKNOWN_CONTENT)
        user = self.pick_user(data)
        expected = self.expect(content, user, "read")
        if expected == OK and self.strips(content, user):
            expected = PermissionDenied
        got = self.call(
            "get_generation", user, expected, lambda: self.store.get_generation(content, user)
        )
        if got is not None:
            assert (got.record is not None) is self.content[content].render

    @rule(data=st.data())
    def delete_collaboration(self, data: st.DataObject) -> None:
        collaboration, user = self.pick_collaboration_and_user(data)
        expected = OK if self.visible_collaboration(collaboration, user) else NotFound
        self.call(
            "delete_collaboration",
            user,
            expected,
            lambda: self.store.delete_collaboration(collaboration, user),
        )
        if expected == OK:
            self.collab[collaboration].live = False

    @rule(user=st.sampled_from(USERS))
    def list_collaborations(self, user: str) -> None:
        got = self.call(
            "list_collaborations", user, OK, lambda: self.store.list_collaborations(user)
        )
        assert got is not None
        expected = {
            cid: (c.content, c.owner, c.collaborator, c.permissions)
            for cid, c in self.collab.items()
            if self.visible_collaboration(cid, user)
        }
        assert {
            c.collaboration_id: (c.content_id, c.user_id, c.collaborator_id, c.permissions)
            for c in got
        } == expected

    # -- keys ------------------------------------------------------------------------------

    @rule(user=st.sampled_from(USERS))
    def generate_api_key(self, user: str) -> None:
        made = self.call("generate_api_key", user, OK, lambda: self.store.generate_api_key(user))
        assert made is not None and made.user_id == user
        self.key[made.key_id] = ModelKey(made.key_id, user, made.api_key)

    @rule(data=st.data(), by_owner=st.booleans())
    def revoke_api_key(self, data: st.DataObject, by_owner: bool) -> None:
        key = self.pick(data, self.key, UNKNOWN_KEY)
        model = self.key.get(key)
        user = model.user if by_owner and model is not None else self.pick_user(data)
        ok = model is not None and model.user == user and not model.revoked
        self.call(
            "revoke_api_key",
            user,
            OK if ok else NotFound,
            lambda: self.store.revoke_api_key(key, user),
        )
        if ok:
            assert model is not None
            model.revoked = True

    @rule(data=st.data(), tamper=st.sampled_from(["none", "none", "flip", "cut", "prefix"]))
    def authenticate(self, data: st.DataObject, tamper: str) -> None:
        if not self.key:
            return
        model = self.key[data.draw(st.sampled_from(list(self.key)))]
        secret = model.secret
        if tamper == "flip":
            secret = secret[:-1] + ("B" if secret[-1] == "A" else "A")
        elif tamper == "cut":
            secret = secret[:-1]
        elif tamper == "prefix":
            secret = "dfx_" + secret[4:]
        if tamper == "none" and not model.revoked:
            assert self.store.authenticate(secret) == model.user
            return
        try:
            self.store.authenticate(secret)
        except Unauthenticated:
            return
        raise AssertionError(f"authenticate accepted a {tamper} key, revoked={model.revoked}")

    @rule(user=st.sampled_from(USERS))
    def list_api_keys(self, user: str) -> None:
        listed = self.store.list_api_keys(user)  # not an API call: not counted
        expected = {k.key_id: k.revoked for k in self.key.values() if k.user == user}
        assert {k.key_id: k.revoked_at is not None for k in listed} == expected

    # -- usage, time, reopening ------------------------------------------------------------

    @rule(user=st.sampled_from(USERS))
    def get_api_usage(self, user: str) -> None:
        got = self.call("get_api_usage", user, OK, lambda: self.store.get_api_usage(user))
        assert got is not None
        # The answer counts every call before this one.
        self.calls[(user, "get_api_usage")] -= 1
        expected = {
            operation: (calls, self.errors[(who, operation)])
            for (who, operation), calls in self.calls.items()
            if who == user and calls
        }
        self.calls[(user, "get_api_usage")] += 1
        assert {op: (v["calls"], v["errors"]) for op, v in got.by_operation.items()} == expected
        assert got.total_calls == sum(c for c, _ in expected.values())
        assert sum(day["calls"] for day in got.daily) == got.total_calls

    @rule(hours=st.integers(1, 30))
    def time_passes(self, hours: int) -> None:
        self.clock.ms += hours * 3_600_000

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = Store(self.root / "store", clock=self.clock)

    # -- after every step ------------------------------------------------------------------

    @invariant()
    def the_access_check_matches_the_model_everywhere(self) -> None:
        """The single access check, asked about every known content and user, for every need.

        (``access.Access``, beneath the facade, free of side effects: every operation's
        answer comes from it.)
        """
        for content in [*self.content, UNKNOWN_CONTENT]:
            for user in USERS:
                for need in NEEDS:
                    expected = self.expect(content, user, need)
                    try:
                        Access(self.store.replica.catalog).content(content, user, need)
                        got: Outcome = OK
                    except DreamflareError as exc:
                        got = type(exc)
                    assert got == expected, (content, user, need, got, expected)

    @invariant()
    def the_store_is_healthy(self) -> None:
        assert self.store.verify() == []


def test_access_rules_hold_in_every_sequence() -> None:
    run_state_machine_as_test(
        AccessMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
