"""Invariant 1: applying the same set of ops in any order, with duplicates, gives one state."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

from helpers import replay, state_rows
from hypothesis import given, settings
from hypothesis import strategies as st

from dreamflare_store import NotFound, Store


def _busy_store(path: Path, seed: int) -> Store:
    """A store with a random history: versions, updates, deletes, collaborations, keys."""
    rng = random.Random(seed)
    store = Store(path, randbits=rng.getrandbits)
    users = ["alice", "bob", "carol"]
    live: list[tuple[str, str]] = []
    collaborations: list[tuple[str, str]] = []
    keys: list[tuple[str, str]] = []
    for _ in range(60):
        action = rng.random()
        if action < 0.3 or not live:
            user = rng.choice(users)
            c = store.upload(
                file=rng.randbytes(rng.randint(0, 64)),
                user_id=user,
                tags=rng.sample(["a", "b", "c"], 2),
            )
            live.append((c.content_id, user))
        elif action < 0.45:
            cid, owner = rng.choice(live)
            store.upload(file=rng.randbytes(8), user_id=owner, content_id=cid, description="v")
        elif action < 0.65:
            cid, owner = rng.choice(live)
            store.update_metadata(cid, owner, description=str(rng.random()))
        elif action < 0.72:
            cid, owner = live.pop(rng.randrange(len(live)))
            store.delete_content(cid, owner)
        elif action < 0.82:
            cid, owner = rng.choice(live)
            other = rng.choice([u for u in users if u != owner])
            if store.replica.catalog.reads.permission_of(cid, other) is None:
                col = store.create_collaboration(owner, cid, other, rng.choice(["read", "write"]))
                collaborations.append((col.collaboration_id, owner))
        elif action < 0.88 and collaborations:
            col_id, owner = rng.choice(collaborations)
            # Its content may be deleted by now: then the update is refused, which is fine.
            with contextlib.suppress(NotFound):
                store.update_collaboration(col_id, owner, rng.choice(["read", "write"]))
        elif action < 0.93:
            user = rng.choice(users)
            keys.append((store.generate_api_key(user).key_id, user))
        elif keys:
            key_id, user = keys.pop()
            store.revoke_api_key(key_id, user)
    return store


def test_replay_in_shuffled_order_with_duplicates_gives_same_digest(tmp_path: Path) -> None:
    source = _busy_store(tmp_path / "source", seed=7)
    ops = source.replica.catalog.log.all_ops()
    assert len(ops) > 50
    in_order = replay(tmp_path / "in-order", sorted(ops, key=lambda op: op.sort_key))
    rng = random.Random(1)
    shuffled_ops = ops + rng.sample(ops, len(ops) // 2)
    rng.shuffle(shuffled_ops)
    shuffled = replay(tmp_path / "shuffled", shuffled_ops)
    assert in_order.state_digest() == shuffled.state_digest()
    assert state_rows(in_order) == state_rows(source)
    # The replicas hold no blobs (ops only): every other invariant must hold.
    assert {p.kind for p in shuffled.verify()} <= {"missing_blob"}
    assert (
        shuffled.replica.catalog.reads.stored_storage()
        == source.replica.catalog.reads.stored_storage()
    )
    for store in (source, in_order, shuffled):
        store.close()


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), order=st.randoms(use_true_random=False))
def test_any_order_converges(tmp_path_factory, seed: int, order: random.Random) -> None:
    root = tmp_path_factory.mktemp("replay")
    source = _busy_store(root / "source", seed=seed % 1000)
    ops = source.replica.catalog.log.all_ops()
    permuted = list(ops)
    order.shuffle(permuted)
    permuted += [order.choice(ops) for _ in range(5)]
    replayed = replay(root / "replayed", permuted)
    assert state_rows(replayed) == state_rows(source)
    assert (
        replayed.replica.catalog.reads.stored_storage()
        == source.replica.catalog.reads.stored_storage()
    )
    assert (
        replayed.replica.catalog.reads.recount_storage()
        == source.replica.catalog.reads.recount_storage()
    )
    source.close()
    replayed.close()
