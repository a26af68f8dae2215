"""The sync plan without a remote: which blobs a push sends and a pull fetches or records,
decided from listings and the catalog's view alone (``dreamflare_store.sync.plan``)."""

from __future__ import annotations

from typing import Any

from dreamflare_store import oplog
from dreamflare_store.oplog import Op
from dreamflare_store.sync import plan
from dreamflare_store.sync import remote_layout as layout

A, B, C = "a" * 64, "b" * 64, "c" * 64
HLC = "1796225391200.000000.r1"


def _op(kind: str, entity: str, digest: str | None = None, size: int = 10) -> Op:
    data: dict[str, Any] = {"author": "u"}
    if digest is not None:
        data["fields"] = {"blob": digest, "size": size}
    return Op("op_x", HLC, "r1", 1, kind, entity, data)


def test_present_blobs_counts_only_whole_objects() -> None:
    listing = {
        layout.blob_key(A): {"size": 10},
        layout.blob_key(B): {"size": 3},  # cut short: absent
        "objects/zz/foreign": {"size": 10},
    }
    assert plan.present_blobs(listing, {A: 10, B: 10, C: 10}) == {A}


def test_listing_prefixes_are_shards_when_few() -> None:
    assert plan.listing_prefixes([A, B]) == ["objects/aa/aa", "objects/bb/bb"]
    many = [f"{n:02x}" * 32 for n in range(plan.SHARD_LISTINGS_MAX + 1)]
    assert plan.listing_prefixes(many) == ["objects"]


def test_plan_send_uploads_what_the_remote_lacks_and_stops_on_lost_bytes() -> None:
    here = {A: 10, B: 20}
    sending = plan.plan_send({A: 10, B: 20, C: 30}, {B}, here.get, lambda: {C: 30})
    assert sending.upload == {A: 10}
    assert sending.lost == [C]  # live content references it, and it is nowhere
    dead = plan.plan_send({C: 30}, set(), here.get, lambda: {})
    assert dead == plan.SendPlan({}, [])  # only a deleted content held it


def test_pull_needs_skip_deleted_contents_and_bytes_here() -> None:
    ops = [
        _op(oplog.CONTENT_CREATE, "cnt_1", A),
        _op(oplog.CONTENT_CREATE, "cnt_2", B),
        _op(oplog.CONTENT_DELETE, "cnt_2"),
        _op(oplog.CONTENT_CREATE, "cnt_3", C),
    ]
    needs = plan.pull_needs(ops, "lazy", lambda e: e == "cnt_3", lambda d: False, {}, {})
    assert needs.needed == {A: 10}
    assert plan.pull_needs(ops, "lazy", lambda e: False, lambda d: d == A, {}, {}).needed == {C: 10}


def test_plan_pull_by_mode() -> None:
    ops = [_op(oplog.CONTENT_CREATE, "cnt_1", A)]
    sources = {B: plan.NO_SOURCE, C: "origin"}
    live = {B: 5, C: 6}
    nowhere = lambda digest: False  # noqa: E731

    lazy = plan.pull_needs(ops, "lazy", nowhere, nowhere, sources, live)
    assert lazy.hydrate == {B: 5}  # pulled with "none" before: now it gets a source
    assert plan.plan_pull(lazy, {A, B}, "lazy", sources, live, nowhere).record == {A: 10, B: 5}

    eager = plan.pull_needs(ops, "eager", nowhere, nowhere, sources, live)
    assert eager.hydrate == {B: 5, C: 6}
    done = plan.plan_pull(eager, {A, B, C}, "eager", sources, live, nowhere)
    assert done.fetch == {A: 10, B: 5, C: 6} and done.record == {}
    assert done.forget == {A, B, C}  # each one fetched is here now: no record left

    none = plan.pull_needs(ops, "none", nowhere, nowhere, sources, live)
    assert plan.plan_pull(none, set(), "none", sources, live, nowhere).record == {A: 10}
