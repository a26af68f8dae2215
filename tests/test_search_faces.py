"""Finding renders through the faces: the HTTP routes, the Client and the CLI, against a
real server on 127.0.0.1 and a real store."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from PIL import Image, PngImagePlugin

from dreamflare_store import PermissionDenied, Store
from dreamflare_store.cli import cli
from dreamflare_store.client import Client
from dreamflare_store.http.testing import LiveServer
from tests.genmeta_fixtures import pillow_bytes, pillow_image

PROMPT = (
    "a red fox at dawn, <lora:pixel:0.8>\nNegative prompt: blurry\nSteps: 30, Sampler: Euler a,"
    " CFG scale: 6, Seed: 1234, Size: 16x12, Model: sdxl_base_1.0"
)


def render() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", PROMPT)
    return pillow_bytes(pillow_image(), "PNG", pnginfo=info)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Store, str, dict[str, str]]]:
    with Store(tmp_path / "store") as store, LiveServer(store) as server:
        keys = {user: store.generate_api_key(user).api_key for user in ("alice", "bob")}
        yield store, server.url, keys


def test_http_routes_and_the_client(served: tuple[Store, str, dict[str, str]]) -> None:
    store, url, keys = served
    data = render()
    fox = store.upload(data, "alice", tags="fox,animal", filename="fox.png")
    store.upload(b"plain", "alice", tags="animal")
    alice = {"Authorization": f"Bearer {keys['alice']}"}
    with httpx.Client(base_url=url, headers=alice, timeout=30) as http:
        found = http.get(
            "/content/search", params={"userId": "alice", "q": "red fox", "tag": ["fox", "animal"]}
        )
        assert found.status_code == 200, found.text
        body = found.json()
        assert [item["contentId"] for item in body["items"]] == [fox.content_id]
        assert body["total"] == 1 and body["items"][0]["generation"]["seed"] == "1234"
        assert (
            http.get(
                "/content/search", params={"userId": "alice", "seed": "1234", "lora": "pixel"}
            ).json()["total"]
            == 1
        )
        listed = http.get("/content/list", params={"userId": "alice", "tag": "animal"}).json()
        assert listed["total"] == 2
        facets = http.get("/content/facets", params={"userId": "alice"}).json()
        assert facets["models"] == [{"value": "sdxl_base_1.0", "count": 1}]
        assert facets["tags"][0] == {"value": "animal", "count": 2}
        # Never taken for a content id.
        assert http.delete("/content/search", params={"userId": "alice"}).status_code == 405
        assert (
            http.get(
                "/content/search", params={"userId": "alice", "q": "(red fox:1.3) sdxl-base"}
            ).status_code
            == 200
        )
        bad = http.get("/content/search", params={"userId": "alice", "limit": "0"})
        assert bad.status_code == 400
        generation = http.get(f"/content/{fox.content_id}/generation", params={"userId": "alice"})
        assert generation.json()["raw"]["parameters"] == PROMPT
        marked = http.put(f"/content/{fox.content_id}/favorite", json={"userId": "alice"})
        assert marked.status_code == 204
        assert (
            http.get("/content/search", params={"userId": "alice", "favorite": "true"}).json()[
                "total"
            ]
            == 1
        )
        plain = http.get(f"/content/{fox.content_id}/data", params={"userId": "alice"})
        stripped = http.get(
            f"/content/{fox.content_id}/data", params={"userId": "alice", "stripMetadata": "true"}
        )
        assert plain.content == data and b"red fox" not in stripped.content
        assert stripped.headers["etag"] != plain.headers["etag"]
        part = http.get(
            f"/content/{fox.content_id}/data",
            params={"userId": "alice", "stripMetadata": "true"},
            headers={"Range": "bytes=0-7"},
        )
        assert part.status_code == 206 and part.content == stripped.content[:8]
        with Image.open(io.BytesIO(stripped.content)) as a, Image.open(io.BytesIO(data)) as b:
            assert a.tobytes() == b.tobytes()
        shared = http.post(
            "/collaboration/create",
            json={
                "userId": "alice",
                "contentId": fox.content_id,
                "collaboratorId": "bob",
                "stripMetadata": True,
            },
        ).json()
        assert shared["stripMetadata"] is True
    with Client(url, keys["bob"]) as bob:
        assert bob.search_content("bob", "dawn").total == 0
        assert bob.search_content("bob", "fox").items[0].generation is None  # a tag
        with pytest.raises(PermissionDenied):
            bob.get_generation(fox.content_id, "bob")
        assert b"red fox" not in bob.read_content(fox.content_id, "bob")
        assert bob.facets("bob").models == ()
    with Client(url, keys["alice"]) as client:
        page = client.search_content("alice", "fox", tags=["animal"], seed=1234)
        assert [c.content_id for c in page.items] == [fox.content_id]
        assert page.items[0].generation == fox.generation
        assert client.facets("alice", tags="fox").models[0].value == "sdxl_base_1.0"
        client.set_favorite(fox.content_id, "alice", favorite=False)
        assert client.search_content("alice", favorite=True).total == 0
        assert client.get_generation(fox.content_id, "alice").record["model"] == "sdxl_base_1.0"  # type: ignore[index]
        assert client.list_content("alice", tags="fox").total == 1
        updated = client.update_collaboration(
            shared["collaborationId"], "alice", strip_metadata=False
        )
        assert updated.strip_metadata is False
        assert client.read_content(fox.content_id, "alice", strip_metadata=True) == (
            store.read_content(fox.content_id, "alice", strip_metadata=True)
        )


def run(store: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--store", str(store), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "store"
    (tmp_path / "fox.png").write_bytes(render())
    run(path, "init")
    run(path, "upload", str(tmp_path / "fox.png"), "--user", "alice", "--tags", "fox")
    table = run(path, "search", "red fox", "--user", "alice")
    assert "a red fox at dawn" in table and "sdxl_base_1.0" in table
    found = json.loads(run(path, "--json", "search", "--user", "alice", "--seed", "1234"))
    content_id = found["items"][0]["contentId"]
    assert found["total"] == 1
    assert "Nothing found." in run(path, "search", "owl", "--user", "alice")
    assert (
        json.loads(run(path, "--json", "search", "--user", "alice", "--tag", "cat"))["total"] == 0
    )
    assert "seed" in run(path, "get", content_id, "--user", "alice")
    assert "sdxl_base_1.0" in run(path, "facets", "--user", "alice")
    assert "Negative prompt" in run(path, "generation", content_id, "--user", "alice")
    run(path, "favorite", content_id, "--user", "alice")
    assert content_id in run(path, "search", "--favorites", "--user", "alice")
    assert content_id in run(path, "ls", "--user", "alice", "--tag", "fox")
    run(path, "collab", "create", "--user", "alice", "--content-id", content_id,
        "--collaborator", "bob", "--strip-metadata")  # fmt: skip
    assert "Nothing found." in run(path, "search", "dawn", "--user", "bob")
    run(path, "download", content_id, "--user", "alice", "--strip-metadata",
        "-o", str(tmp_path / "clean.png"))  # fmt: skip
    assert b"red fox" not in (tmp_path / "clean.png").read_bytes()
    assert "Recorded 0" in run(path, "reindex")
