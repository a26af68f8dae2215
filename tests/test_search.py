"""Finding renders: generation metadata read at upload, search, facets, favorites, the
generation record, stripped sharing and downloads, reindexing and convergence.

Every test uses a real store in tmp_path and real image bytes (raw PNG chunk writers and
Pillow), never mocks.
"""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from dreamflare_store import InvalidArgument, NotFound, PermissionDenied, Store, oplog
from dreamflare_store.catalog.search import parse
from tests.genmeta_fixtures import itxt, pillow_bytes, pillow_image, png, text

FOX = (
    "a red fox at dawn, (masterpiece:1.2), <lora:pixel:0.8>, misty meadow\n"
    "Negative prompt: blurry\nSteps: 30, Sampler: DPM++ 2M, CFG scale: 6, Seed: 1234,"
    " Size: 1024x1024, Model: sdxl_base_1.0"
)
OWL = (
    "an owl in the moonlight, 月光の下のフクロウ\nSteps: 20, Sampler: Euler a, CFG scale: 7,"
    " Seed: 18446744073709551615, Size: 512x512, Model: dreamshaper_8"
)


def fox_png(salt: int = 0) -> bytes:
    return png(itxt("parameters", FOX), after=[text("salt", str(salt))])


def owl_png() -> bytes:
    return png(itxt("parameters", OWL))


def pillow_fox() -> bytes:
    """A real 16x12 PNG made by Pillow, with the fox's parameters in a text chunk."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("parameters", FOX)
    return pillow_bytes(pillow_image(), "PNG", pnginfo=info)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "store") as opened:
        yield opened


def ids_of(page: object) -> list[str]:
    return [item.content_id for item in page.items]  # type: ignore[attr-defined]


# -- extraction at upload ------------------------------------------------------------------


def test_upload_reads_the_generation_record_into_the_content_and_its_op(store: Store) -> None:
    content = store.upload(fox_png(), "alice", filename="fox.png")
    record = content.generation
    assert record is not None
    assert record["prompt"].startswith("a red fox at dawn")
    assert record["seed"] == "1234" and record["model"] == "sdxl_base_1.0"
    assert record["loras"] == [{"name": "pixel", "weight": 0.8}]
    assert content.to_dict()["generation"] == record
    assert store.get_content(content.content_id, "alice").generation == record
    conn = store.replica.catalog.db.conn
    (body,) = conn.execute("SELECT body FROM ops WHERE kind = 'content.create'").fetchone()
    op = oplog.decode_op(body)
    assert op.data["fields"]["generation"] == record


def test_bytes_without_metadata_have_a_null_generation(store: Store) -> None:
    from tests.helpers import png_bytes

    content = store.upload(png_bytes(4, 4), "alice")
    assert content.generation is None
    assert content.to_dict()["generation"] is None


def test_upload_many_reads_small_files_in_memory_and_large_ones_from_disk(
    store: Store, tmp_path: Path
) -> None:
    large = tmp_path / "large.png"
    # Larger than the batch path's in-memory limit: a text chunk after IDAT pads it out.
    large.write_bytes(png(itxt("parameters", FOX), after=[text("pad", "x" * (9 << 20))]))
    made = store.upload_many([fox_png(1), owl_png(), large], "alice")
    assert all(not isinstance(item, Exception) for item in made)
    assert [item.generation["model"] for item in made] == [  # type: ignore[union-attr,index]
        "sdxl_base_1.0",
        "dreamshaper_8",
        "sdxl_base_1.0",
    ]


def test_a_new_version_reads_its_own_bytes_and_a_metadata_update_keeps_them(
    store: Store,
) -> None:
    content = store.upload(fox_png(), "alice")
    changed = store.update_metadata(content.content_id, "alice", description="kept")
    assert changed.generation == content.generation
    owl = store.upload(owl_png(), "alice", content_id=content.content_id)
    assert owl.generation["model"] == "dreamshaper_8"  # type: ignore[index]
    versions = store.get_content_versions(content.content_id, "alice")
    assert [v.generation["model"] for v in versions] == [  # type: ignore[index]
        "sdxl_base_1.0",
        "sdxl_base_1.0",
        "dreamshaper_8",
    ]
    assert ids_of(store.search_content("alice", "owl")) == [content.content_id]
    assert store.search_content("alice", "fox").total == 0


def test_extraction_can_be_turned_off(tmp_path: Path) -> None:
    with Store(tmp_path / "s", extract_metadata=False) as off:
        assert off.upload(fox_png(), "alice").generation is None
        assert off.upload_many([owl_png()], "alice")[0].generation is None  # type: ignore[union-attr]


def test_a_format_1_op_changing_the_bytes_leaves_no_stale_record(store: Store) -> None:
    content = store.upload(fox_png(), "alice")
    other = store.upload(b"plain bytes", "bob")
    replica = store.replica
    with replica.catalog.atomic():
        replica.record(
            oplog.CONTENT_CHANGE,
            content.content_id,
            {
                "author": "alice",
                "fields": {"blob": other.hash, "size": other.size, "mime": "text/plain"},
                "version_id": replica.new_id("version"),
                "changes": ["file"],
            },
        )
    assert store.get_content(content.content_id, "alice").generation is None
    assert store.search_content("alice", "fox").total == 0
    assert store.facets("alice").models == ()


# -- the query language ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("fox", True),
        ("red fox", True),
        ("FOX Dawn", True),
        ('"red fox"', True),
        ('"fox red"', False),
        ("mead*", True),
        ("meadows", False),
        ("(masterpiece:1.2)", True),
        ("<lora:pixel:0.8>", True),
        ("sdxl_base", True),
        ("sdxl-base", True),
        ("fox cat", False),
        ('"unbalanced', False),
        ("fox AND OR NOT NEAR(", False),  # operators are words here, searched as such
        ("fox) (( :dawn: -misty ^", True),
        ("fox.png", True),
    ],
)
def test_the_query_language(store: Store, query: str, found: bool) -> None:
    content = store.upload(fox_png(), "alice", filename="fox.png")
    store.upload(owl_png(), "alice", filename="owl.png")
    page = store.search_content("alice", query)
    assert (content.content_id in ids_of(page)) is found


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=60))
def test_no_query_text_raises(store: Store, query: str) -> None:
    if not store.list_content("alice").total:
        store.upload(fox_png(), "alice")
    store.search_content("alice", query)
    store.facets("alice", query)
    parse(query)


def test_cjk_text_is_found_by_a_few_of_its_characters(store: Store) -> None:
    owl = store.upload(owl_png(), "alice")
    store.upload(fox_png(), "alice")
    for query in ("フクロウ", "月光", "光の下", "下の"):
        assert ids_of(store.search_content("alice", query)) == [owl.content_id], query
    assert store.search_content("alice", "月影").total == 0
    chinese = store.upload(b"x", "alice", description="红色的狐狸在黎明")
    assert ids_of(store.search_content("alice", "狐狸")) == [chinese.content_id]


def test_best_match_first_then_newest_and_newest_first_without_a_query(store: Store) -> None:
    weak = store.upload(b"a", "alice", description="fox among many other words in a long text")
    strong = store.upload(b"b", "alice", description="fox fox fox")
    newer = store.upload(b"c", "alice", description="fox among many other words in a long text")
    assert ids_of(store.search_content("alice", "fox"))[0] == strong.content_id
    assert ids_of(store.search_content("alice", "fox"))[1:] == [newer.content_id, weak.content_id]
    assert ids_of(store.search_content("alice")) == [
        newer.content_id,
        strong.content_id,
        weak.content_id,
    ]


def test_matches_that_repeat_more_of_the_query_come_first(store: Store) -> None:
    both = store.upload(b"a", "alice", description="red fox, red sky, a fox at dawn")
    one = store.upload(b"b", "alice", description="a red fox at dawn, red")
    plain = store.upload(b"c", "alice", description="red fox at dawn")
    other = store.upload(b"d", "alice", description="dawn dawn dawn")
    assert ids_of(store.search_content("alice", "red fox")) == [
        both.content_id,
        one.content_id,
        plain.content_id,
    ]
    # A prefix ranks by the words it stands for; a phrase matches, newest first.
    assert ids_of(store.search_content("alice", "fo*"))[0] == both.content_id
    assert ids_of(store.search_content("alice", '"red fox"')) == [
        plain.content_id,
        one.content_id,
        both.content_id,
    ]
    page = store.search_content("alice", "dawn", limit=2, offset=1)
    assert ids_of(page) == [plain.content_id, one.content_id] and page.total == 4
    assert ids_of(store.search_content("alice", "dawn", offset=3)) == [both.content_id]
    assert other.content_id in ids_of(store.search_content("alice", "dawn", limit=1))


def test_the_migration_indexes_the_repeated_words_of_existing_contents(
    tmp_path: Path,
) -> None:
    from dreamflare_store.catalog import db as catalog_db

    path = tmp_path / "s"
    with Store(path) as old:
        strong = old.upload(b"a", "alice", description="owl owl at night")
        weak = old.upload(b"b", "alice", description="an owl at night")
    # As a store of the release before leaves it (no index of repeated words), then the
    # migration that adds one, as the first open after upgrading runs it.
    (migration,) = [m for m in catalog_db._migrations() if "TABLE search_again" in m]
    conn = sqlite3.connect(path / "catalog.db", isolation_level=None)
    conn.execute("DROP TABLE search_again")
    for statement in migration.split(";\n"):
        if statement.strip():
            conn.execute(statement)
    conn.close()
    with Store(path) as store:
        assert ids_of(store.search_content("alice", "owl")) == [
            strong.content_id,
            weak.content_id,
        ]
        assert store.verify() == []


def test_filters_combine_with_the_query_and_with_each_other(store: Store) -> None:
    fox = store.upload(fox_png(), "alice", tags="animal,red")
    owl = store.upload(owl_png(), "alice", tags="animal,night")
    plain = store.upload(b"text", "alice", tags="red")
    cases = {
        "tags=animal": (dict(tags="animal"), {fox, owl}),
        "tags=animal,red": (dict(tags=["animal", "red"]), {fox}),
        "model": (dict(model="dreamshaper_8"), {owl}),
        "model, any case": (dict(model="DREAMSHAPER_8"), {owl}),
        "seed 2**64-1": (dict(seed=2**64 - 1), {owl}),
        "seed text": (dict(seed="1234"), {fox}),
        "lora": (dict(lora="pixel"), {fox}),
        "sampler": (dict(sampler="Euler a"), {owl}),
        "generator": (dict(generator="A1111"), {fox, owl}),
        "mime": (dict(mime_type="image/png"), {fox, owl}),
        "mime other": (dict(mime_type="application/octet-stream"), {plain}),
    }
    for name, (filters, expected) in cases.items():
        page = store.search_content("alice", **filters)  # type: ignore[arg-type]
        assert set(ids_of(page)) == {c.content_id for c in expected}, name
        assert page.total == len(expected), name
    assert store.search_content("alice", "owl", tags="red").total == 0
    assert ids_of(store.search_content("alice", "moonlight", tags="night")) == [owl.content_id]
    page = store.list_content("alice", tags="red")
    assert ids_of(page) == [plain.content_id, fox.content_id] and page.total == 2


def test_created_after_and_before(store: Store) -> None:
    first = store.upload(b"1", "alice")
    second = store.upload(b"2", "alice")
    assert ids_of(store.search_content("alice", created_after=second.created_at)) == [
        second.content_id
    ]
    assert ids_of(store.search_content("alice", created_before=second.created_at)) == [
        first.content_id
    ]
    assert store.search_content("alice", created_after="2999-01-01").total == 0


def test_bad_search_arguments_are_invalid_and_change_nothing(store: Store) -> None:
    for kwargs in (
        dict(query=3),
        dict(limit=0),
        dict(offset=-1),
        dict(model=""),
        dict(seed=["1"]),
        dict(favorite="maybe"),
        dict(created_after="yesterday"),
        dict(tags=[""]),
        dict(query="x" * 5000),
    ):
        with pytest.raises(InvalidArgument):
            store.search_content("alice", **kwargs)  # type: ignore[arg-type]


def test_pages_and_totals(store: Store) -> None:
    made = [store.upload(f"{k}".encode(), "alice", description=f"fox number {k}") for k in range(7)]
    page = store.search_content("alice", "fox", limit=3, offset=3)
    assert page.total == 7 and len(page.items) == 3
    everything = store.search_content("alice", "fox", limit=50)
    assert ids_of(page) == ids_of(everything)[3:6]
    assert store.search_content("alice", "fox", offset=7).items == ()
    assert set(ids_of(everything)) == {c.content_id for c in made}


def test_deleted_contents_are_never_found(store: Store) -> None:
    fox = store.upload(fox_png(), "alice", tags="x")
    store.delete_content(fox.content_id, "alice")
    assert store.search_content("alice", "fox").total == 0
    assert store.search_content("alice", tags="x").total == 0
    assert store.facets("alice").models == () and store.facets("alice").tags == ()


# -- who finds what --------------------------------------------------------------------------


def test_a_stranger_finds_nothing_and_a_collaborator_finds_what_is_shared(store: Store) -> None:
    fox = store.upload(fox_png(), "alice", tags="animal")
    store.upload(owl_png(), "alice", tags="animal")
    assert store.search_content("mallory", "fox").total == 0
    assert store.search_content("mallory").total == 0
    assert store.facets("mallory").tags == () and store.facets("mallory").models == ()
    store.create_collaboration("alice", fox.content_id, "bob")
    assert ids_of(store.search_content("bob", "fox")) == [fox.content_id]
    assert ids_of(store.search_content("bob")) == [fox.content_id]
    assert store.search_content("bob", "owl").total == 0
    assert ids_of(store.search_content("bob", model="sdxl_base_1.0")) == [fox.content_id]
    facets = store.facets("bob")
    assert [(f.value, f.count) for f in facets.models] == [("sdxl_base_1.0", 1)]
    assert [(f.value, f.count) for f in facets.tags] == [("animal", 1)]


def test_a_collaborator_without_metadata_sees_none_of_it(store: Store) -> None:
    data = pillow_fox()
    fox = store.upload(data, "alice", tags="animal", description="for the client")
    collab = store.create_collaboration("alice", fox.content_id, "bob", strip_metadata=True)
    assert collab.strip_metadata and collab.to_dict()["stripMetadata"] is True
    seen = store.get_content(fox.content_id, "bob")
    assert seen.generation is None and seen.to_dict()["generation"] is None
    assert all(v.generation is None for v in store.get_content_versions(fox.content_id, "bob"))
    with pytest.raises(PermissionDenied):
        store.get_generation(fox.content_id, "bob")
    for query in ("dawn", "misty meadow", "sdxl_base", "masterpiece"):
        assert store.search_content("bob", query).total == 0, query
    for filters in (
        dict(model="sdxl_base_1.0"), dict(seed="1234"), dict(lora="pixel"),
        dict(sampler="DPM++ 2M"), dict(generator="A1111"),
    ):  # fmt: skip
        assert store.search_content("bob", **filters).total == 0, filters  # type: ignore[arg-type]
    page = store.search_content("bob", "client")  # the description is theirs to see
    assert ids_of(page) == [fox.content_id] and page.items[0].generation is None
    assert ids_of(store.search_content("bob", tags="animal")) == [fox.content_id]
    facets = store.facets("bob")
    assert facets.models == facets.loras == facets.samplers == facets.generators == ()
    assert [(f.value, f.count) for f in facets.tags] == [("animal", 1)]
    assert store.facets("bob", "client").models == ()
    # Their bytes come stripped, the pixels untouched.
    stripped = store.read_content(fox.content_id, "bob")
    assert b"dawn" not in stripped and b"parameters" not in stripped
    with Image.open(io.BytesIO(stripped)) as a, Image.open(io.BytesIO(data)) as b:
        assert a.tobytes() == b.tobytes() and "parameters" not in a.info
    with store.open_content(fox.content_id, "bob") as reader:
        assert reader.digest != fox.hash  # type: ignore[attr-defined]
    # The owner shares it again: everything is back.
    store.update_collaboration(collab.collaboration_id, "alice", strip_metadata=False)
    assert store.get_content(fox.content_id, "bob").generation == fox.generation
    assert ids_of(store.search_content("bob", "dawn")) == [fox.content_id]
    assert store.read_content(fox.content_id, "bob") == data


def test_anyone_may_ask_for_stripped_bytes_kept_as_one_derived_blob(store: Store) -> None:
    data = pillow_fox()
    fox = store.upload(data, "alice")
    first = store.read_content(fox.content_id, "alice", strip_metadata=True)
    assert b"dawn" not in first and store.read_content(fox.content_id, "alice") == data
    with store.open_content(fox.content_id, "alice", strip_metadata=True) as reader:
        digest = reader.digest  # type: ignore[attr-defined]
        reader.seek(8)
        assert reader.read(4) == first[8:12]
    assert store.read_content(fox.content_id, "alice", strip_metadata=True) == first
    assert store.replica.blobs.exists(digest)
    assert store.gc(min_age=0).blobs_removed == 0  # kept while its source lives
    store.delete_content(fox.content_id, "alice")
    assert store.gc(min_age=0).blobs_removed == 2
    assert not store.replica.blobs.exists(digest)
    assert store.verify() == []


def test_bytes_of_a_format_that_cannot_be_stripped_are_served_as_they_are(store: Store) -> None:
    content = store.upload(b"just some text", "alice")
    assert store.read_content(content.content_id, "alice", strip_metadata=True) == b"just some text"


# -- favorites, facets, the generation record --------------------------------------------------


def test_favorites_are_each_users_own(store: Store) -> None:
    fox = store.upload(fox_png(), "alice")
    owl = store.upload(owl_png(), "alice")
    store.create_collaboration("alice", owl.content_id, "bob")
    store.set_favorite(fox.content_id, "alice")
    store.set_favorite(owl.content_id, "bob")  # a reader may mark what they see
    assert ids_of(store.search_content("alice", favorite=True)) == [fox.content_id]
    assert ids_of(store.search_content("alice", favorite=False)) == [owl.content_id]
    assert ids_of(store.search_content("bob", favorite=True)) == [owl.content_id]
    store.set_favorite(fox.content_id, "alice", favorite=False)
    assert store.search_content("alice", favorite=True).total == 0
    with pytest.raises(NotFound):
        store.set_favorite(fox.content_id, "mallory")
    assert store.get_content(fox.content_id, "alice").version == 1  # no new version


def test_facets_count_each_value_most_used_first_and_follow_changes(store: Store) -> None:
    made = [store.upload(fox_png(k), "alice", tags="animal,red") for k in range(3)]
    store.upload(owl_png(), "alice", tags="animal")
    facets = store.facets("alice")
    assert [(f.value, f.count) for f in facets.models] == [
        ("sdxl_base_1.0", 3),
        ("dreamshaper_8", 1),
    ]
    assert [(f.value, f.count) for f in facets.tags] == [("animal", 4), ("red", 3)]
    assert [(f.value, f.count) for f in facets.generators] == [("A1111", 4)]
    assert [f.value for f in store.facets("alice", limit=1).models] == ["sdxl_base_1.0"]
    store.update_metadata(made[0].content_id, "alice", tags="blue")
    store.delete_content(made[1].content_id, "alice")
    facets = store.facets("alice")
    assert [(f.value, f.count) for f in facets.models] == [
        ("sdxl_base_1.0", 2),
        ("dreamshaper_8", 1),
    ]
    assert [(f.value, f.count) for f in facets.tags] == [("animal", 2), ("blue", 1), ("red", 1)]
    by_query = store.facets("alice", "moonlight")
    assert [(f.value, f.count) for f in by_query.models] == [("dreamshaper_8", 1)]
    by_tag = store.facets("alice", tags="red")
    assert [(f.value, f.count) for f in by_tag.models] == [("sdxl_base_1.0", 1)]
    assert facets.to_dict()["models"][0] == {"value": "sdxl_base_1.0", "count": 2}


def test_the_maintained_counts_equal_a_recount(store: Store) -> None:
    for k in range(5):
        content = store.upload(fox_png(k) if k % 2 else owl_png(), "alice", tags=f"t{k % 2}")
        if k == 3:
            store.delete_content(content.content_id, "alice")
    conn = store.replica.catalog.db.conn
    kept = sorted(
        tuple(r) for r in conn.execute("SELECT owner, kind, value, count FROM facet_counts")
    )
    recount = sorted(
        tuple(r)
        for r in conn.execute(
            "SELECT c.owner, t.kind, t.value, count(*) FROM content_terms t JOIN contents c"
            " USING (n) WHERE t.kind != 'seed' GROUP BY c.owner, t.kind, t.value"
        )
    )
    assert kept == recount


def test_get_generation_reads_the_raw_text_from_the_bytes(store: Store) -> None:
    fox = store.upload(fox_png(), "alice")
    store.upload(owl_png(), "alice", content_id=fox.content_id)
    now = store.get_generation(fox.content_id, "alice")
    assert now.version == 2 and now.record["model"] == "dreamshaper_8"  # type: ignore[index]
    assert now.raw["parameters"] == OWL
    old = store.get_generation(fox.content_id, "alice", version=1)
    assert old.raw["parameters"] == FOX and old.record["seed"] == "1234"  # type: ignore[index]
    assert old.to_dict()["raw"]["parameters"] == FOX
    with pytest.raises(NotFound):
        store.get_generation(fox.content_id, "alice", version=3)
    with pytest.raises(NotFound):
        store.get_generation(fox.content_id, "mallory")
    # The raw text is derived from the bytes, never carried by ops.
    conn = store.replica.catalog.db.conn
    assert all(b"Negative prompt" not in body for (body,) in conn.execute("SELECT body FROM ops"))


# -- reindexing and convergence ----------------------------------------------------------------


def test_reindex_records_what_older_uploads_hold_once(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with Store(path, extract_metadata=False) as old:
        fox = old.upload(fox_png(), "alice")
        old.upload(b"no metadata", "alice")
    with Store(path) as store:
        assert store.search_content("alice", "fox").total == 0
        assert store.reindex() == 1
        assert store.get_content(fox.content_id, "alice").generation["seed"] == "1234"  # type: ignore[index]
        assert store.get_content(fox.content_id, "alice").version == 1
        assert ids_of(store.search_content("alice", "dawn")) == [fox.content_id]
        assert store.reindex() == 0


def test_a_store_from_before_the_upgrade_is_indexed_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with Store(path, extract_metadata=False) as old:
        fox = old.upload(fox_png(), "alice", tags="animal")
    # As the migration leaves a store that had contents: marked for indexing on open.
    conn = sqlite3.connect(path / "catalog.db")
    conn.execute("INSERT INTO meta (key, value) VALUES ('reindex_pending', '1')")
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert store.get_content(fox.content_id, "alice").generation is not None
        assert store.replica.catalog.db.meta("reindex_pending") is None


def test_replicas_that_reindex_the_same_bytes_converge(tmp_path: Path) -> None:
    remote = str(tmp_path / "remote")
    with Store(tmp_path / "a", extract_metadata=False) as a:
        fox = a.upload(fox_png(), "alice")
        a.add_remote("origin", remote)
        a.push("origin")
        with Store(tmp_path / "b") as b:
            b.add_remote("origin", remote)
            b.pull("origin", blobs="eager")
            assert a.reindex() == 1 and b.reindex() == 1
            b.set_favorite(fox.content_id, "alice")
            b.create_collaboration("alice", fox.content_id, "bob", strip_metadata=True)
            for store in (a, b, a):
                store.sync("origin")
            assert a.state_digest() == b.state_digest()
            assert a.get_content(fox.content_id, "alice").generation == fox_record(
                b, fox.content_id
            )
            assert ids_of(a.search_content("alice", favorite=True)) == [fox.content_id]
            assert a.search_content("bob", "dawn").total == 0
            assert a.get_content(fox.content_id, "bob").generation is None


def fox_record(store: Store, content_id: str) -> object:
    return store.get_content(content_id, "alice").generation


def test_a_lazy_replica_searches_without_fetching_bytes(tmp_path: Path) -> None:
    remote = str(tmp_path / "remote")
    with Store(tmp_path / "a") as a, Store(tmp_path / "b") as b:
        fox = a.upload(fox_png(), "alice", tags="animal")
        a.add_remote("origin", remote)
        a.push("origin")
        b.add_remote("origin", remote)
        b.pull("origin", blobs="lazy")
        assert not b.replica.blobs.exists(fox.hash)
        assert ids_of(b.search_content("alice", "dawn")) == [fox.content_id]
        assert [f.value for f in b.facets("alice").models] == ["sdxl_base_1.0"]
        assert b.get_generation(fox.content_id, "alice").raw["parameters"] == FOX


def test_verify_finds_a_search_index_that_drifted(store: Store) -> None:
    store.upload(fox_png(), "alice", tags="Cat")
    store.upload(owl_png(), "alice", tags="cat")
    assert store.verify() == []
    with store.replica.catalog.atomic() as conn:
        conn.execute("UPDATE facet_counts SET count = count + 1 WHERE kind = 'model'")
    assert [p.kind for p in store.verify()] == ["search_index"]


def test_a_store_of_schema_4_gets_the_search_index_of_its_contents(tmp_path: Path) -> None:
    """A store made before this release: its contents enter the index when it is opened,
    their metadata is read from their bytes, and verify finds the index sound."""
    from dreamflare_store.catalog import db as catalog_db

    path = tmp_path / "old"
    path.mkdir()
    with Store(tmp_path / "donor", extract_metadata=False) as donor:
        fox = donor.upload(fox_png(), "alice", tags="animal", filename="fox.png")
        (body,) = donor.replica.catalog.db.conn.execute("SELECT body FROM ops").fetchone()
        blob = donor.read_content(fox.content_id, "alice")
    # The migrations before this release's (the header's mention of "-- migration N" counts
    # as one: the first part is its comment), then the op folded as that release did.
    conn = sqlite3.connect(path / "catalog.db", isolation_level=None)
    for number, script in enumerate(catalog_db._migrations()[:5], start=1):
        for statement in script.split(";\n"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
    op = oplog.decode_op(body)
    fields = op.data["fields"]
    conn.execute(
        "INSERT INTO contents (content_id, owner, filename, mime, size, blob, description, tags,"
        " width, height, version, created_hlc, updated_hlc) VALUES (?,?,?,?,?,?,?,?,?,?,1,?,?)",
        (op.entity, "alice", fields["filename"], fields["mime"], fields["size"], fields["blob"],
         None, '["animal"]', fields["width"], fields["height"], op.hlc, op.hlc),
    )  # fmt: skip
    conn.execute(
        "INSERT INTO versions (version_id, content_id, number, hlc, author, filename, mime, size,"
        " blob, description, tags, width, height, changes) VALUES (?,?,1,?,?,?,?,?,?,?,?,?,?,?)",
        (op.data["version_id"], op.entity, op.hlc, "alice", fields["filename"], fields["mime"],
         fields["size"], fields["blob"], None, '["animal"]', fields["width"], fields["height"],
         "file,filename,tags"),
    )  # fmt: skip
    conn.execute(
        "INSERT INTO ops (op_id, hlc, replica, rseq, entity, kind, body) VALUES (?,?,?,?,?,?,?)",
        (op.op_id, op.hlc, op.replica, op.rseq, op.entity, op.kind, body),
    )
    conn.execute(
        "INSERT INTO storage_usage (user, contents, versions, bytes, history_bytes)"
        " VALUES ('alice', 1, 1, ?, ?)",
        (fields["size"], fields["size"]),
    )
    conn.execute(
        "INSERT INTO user_blobs (user, blob, size, refs) VALUES ('alice', ?, ?, 1)",
        (fields["blob"], fields["size"]),
    )
    conn.execute("INSERT INTO list_blocks (owner, block, live) VALUES ('alice', 0, 1)")
    conn.execute("INSERT INTO list_supers (owner, super, live) VALUES ('alice', 0, 1)")
    conn.close()
    target = path / "objects" / fox.hash[:2] / fox.hash[2:4]
    target.mkdir(parents=True)
    (target / fox.hash).write_bytes(blob)
    with Store(path) as store:
        assert ids_of(store.search_content("alice", "fox")) == [fox.content_id]  # filename
        assert ids_of(store.search_content("alice", "dawn")) == [fox.content_id]  # prompt
        assert [f.value for f in store.facets("alice").tags] == ["animal"]
        assert store.get_content(fox.content_id, "alice").generation is not None
        assert store.verify() == []
