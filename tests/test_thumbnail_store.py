"""Thumbnails kept by the store and served over HTTP, and the signed URLs of the gallery.

The renderer itself (every mode of every format, EXIF, bombs in a child process) is
tested in test_thumbnails.py; here: what the store does with its pictures. Made once per
(bytes, size), under the access rules of ``get_content``, counted as API calls and never
as views, kept outside usage and sync, removed by gc with their source, made from lazily
pulled bytes as a read would, and served with an ETag, a 304 and an immutable cache.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import damage_blob
from PIL import Image

from dreamflare_store import (
    InvalidArgument,
    NotFound,
    Store,
    Unauthenticated,
)
from dreamflare_store.client import Client
from dreamflare_store.http.testing import LiveServer
from dreamflare_store.thumbnails import icon_for

RED, BLUE = (220, 30, 30), (30, 30, 220)


def picture(fmt: str, size: tuple[int, int] = (640, 400), **params: Any) -> bytes:
    image = Image.new("RGB", size, RED)
    image.paste(BLUE, (size[0] // 2, 0, size[0], size[1]))
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def video(tmp_path: Path) -> bytes:
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for colour in (RED, BLUE):
            frame = av.VideoFrame.from_image(Image.new("RGB", (320, 240), colour))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


def webp(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "WEBP"
    image.load()
    return image


def thumbnail_files(store: Store) -> list[Path]:
    return sorted(p for p in (store.path / "derived" / "thumbs").glob("*/*") if p.is_file())


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Store(tmp_path / "store") as opened:
        yield opened


# -- every type -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("PNG", {}), ("JPEG", {"quality": 90}), ("WEBP", {}), ("GIF", {}), ("BMP", {}), ("TIFF", {})],
)
def test_every_picture_type_gets_a_webp_of_its_picture(
    store: Store, fmt: str, params: dict[str, Any]
) -> None:
    content = store.upload(picture(fmt, **params), "alice")
    image = webp(store.thumbnail(content.content_id, "alice", 128))
    assert image.size == (128, 80)
    left, right = image.convert("RGB").getpixel((10, 40)), image.convert("RGB").getpixel((118, 40))
    assert left[0] > 150 > left[2] and right[2] > 150 > right[0]


def test_a_video_gets_its_first_frame(store: Store, tmp_path: Path) -> None:
    content = store.upload(video(tmp_path), "alice", filename="clip.mp4")
    assert content.mime_type == "video/mp4"
    image = webp(store.thumbnail(content.content_id, "alice", 64))
    assert max(image.size) == 64 and image.convert("RGB").getpixel((32, 24))[0] > 150


@pytest.mark.parametrize(
    ("data", "filename", "mime"),
    [
        (b"just some words\n" * 20, "notes.txt", "text/plain"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(200), "song.mp3", "audio/mpeg"),
        (b"%PDF-1.4\n" + bytes(100), "paper.pdf", "application/pdf"),
    ],
)
def test_other_types_get_the_icon_of_their_kind(
    store: Store, data: bytes, filename: str, mime: str
) -> None:
    content = store.upload(data, "alice", filename=filename)
    assert store.thumbnail(content.content_id, "alice", 256) == icon_for(content.mime_type).data


def test_a_corrupt_image_gets_its_icon_and_never_a_500(store: Store) -> None:
    broken = picture("PNG")[:200] + bytes(300)  # a PNG header, then garbage
    content = store.upload(broken, "alice", filename="broken.png")
    assert content.mime_type == "image/png"
    assert store.thumbnail(content.content_id, "alice") == icon_for("image/png").data
    key = store.generate_api_key("alice").api_key
    with LiveServer(store) as server:
        response = httpx.get(
            f"{server.url}/content/{content.content_id}/thumbnail",
            params={"userId": "alice"},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert response.status_code == 200 and response.headers["content-type"] == "image/webp"
    assert response.content == icon_for("image/png").data


def test_a_picture_over_the_pixel_cap_gets_its_icon(tmp_path: Path) -> None:
    with Store(tmp_path / "s", thumbnail_max_pixels=100_000) as store:
        content = store.upload(picture("PNG", (400, 300)), "alice")  # 120,000 pixels
        assert store.thumbnail(content.content_id, "alice") == icon_for("image/png").data
        small = store.upload(picture("PNG", (300, 300)), "alice")
        assert store.thumbnail(small.content_id, "alice") != icon_for("image/png").data


def test_a_100_megapixel_png_gets_its_icon_at_once(store: Store, tmp_path: Path) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    # 10,000 x 10,000 RGBA (400 MB decoded) in about 400 KB: never decoded, by its header.
    width = height = 10_000
    squeeze = zlib.compressobj(9)
    row = bytes(1 + 4 * width)
    parts = [
        b"\x89PNG\r\n\x1a\n",
        chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)),
    ]
    body = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    parts += [chunk(b"IDAT", body), chunk(b"IEND", b"")]
    content = store.upload(b"".join(parts), "alice", filename="bomb.png")
    start = time.perf_counter()
    assert store.thumbnail(content.content_id, "alice") == icon_for("image/png").data
    assert time.perf_counter() - start < 5


def test_a_blob_whose_bytes_rotted_is_an_integrity_error_not_an_icon(store: Store) -> None:
    from dreamflare_store import IntegrityError

    content = store.upload(picture("PNG"), "alice")
    damage_blob(store, content.hash, "flipped byte")
    with pytest.raises(IntegrityError):
        store.thumbnail(content.content_id, "alice")
    assert thumbnail_files(store) == []  # nothing kept from rotten bytes


# -- sizes, versions, access ----------------------------------------------------------------


def test_sizes_and_versions(store: Store) -> None:
    content = store.upload(picture("PNG", (1000, 500)), "alice")
    store.upload(picture("PNG", (500, 1000)), "alice", content_id=content.content_id)
    for size in (32, 100, 256, 1024):
        assert max(webp(store.thumbnail(content.content_id, "alice", size)).size) == min(size, 1000)
    assert webp(store.thumbnail(content.content_id, "alice", 100, version=1)).size == (100, 50)
    assert webp(store.thumbnail(content.content_id, "alice", 100)).size == (50, 100)
    for bad in (31, 1025, 0, -5, "big", True):
        with pytest.raises(InvalidArgument):
            store.thumbnail(content.content_id, "alice", bad)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        store.thumbnail(content.content_id, "alice", 100, version=3)


def test_the_access_rules_of_get_content(store: Store) -> None:
    content = store.upload(picture("PNG"), "alice")
    with pytest.raises(NotFound):
        store.thumbnail(content.content_id, "bob")
    store.create_collaboration("alice", content.content_id, "bob", "read")
    assert webp(store.thumbnail(content.content_id, "bob"))
    store.delete_content(content.content_id, "alice")
    with pytest.raises(NotFound):
        store.thumbnail(content.content_id, "alice")


# -- made once, kept apart --------------------------------------------------------------------


def test_made_once_per_bytes_and_size_even_by_concurrent_first_requests(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dreamflare_store import previews

    renders: list[int] = []
    real = previews.thumbnails.render

    def counting(*args: Any, **kwargs: Any) -> Any:
        renders.append(1)
        time.sleep(0.2)  # long enough for every thread to ask while the first one draws
        return real(*args, **kwargs)

    monkeypatch.setattr(previews.thumbnails, "render", counting)
    first = store.upload(picture("PNG"), "alice")
    same_bytes = store.upload(picture("PNG"), "bob")  # other content, other user, same blob
    results: list[bytes] = []
    barrier = threading.Barrier(8)

    def ask(content_id: str, user: str) -> None:
        barrier.wait()
        results.append(store.thumbnail(content_id, user))

    threads = [
        threading.Thread(target=ask, args=(c.content_id, c.user_id))
        for c in [first, same_bytes] * 4
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(renders) == 1 and len(set(results)) == 1 and len(results) == 8
    store.thumbnail(first.content_id, "alice", 64)  # another size is another picture
    assert len(renders) == 2 and len(thumbnail_files(store)) == 2


CHILD = """
import sys, time
from dreamflare_store import Store, previews
real = previews.thumbnails.render
def counting(*args, **kwargs):
    with open(sys.argv[2], "a") as log:
        log.write("render\\n")
    time.sleep(0.5)
    return real(*args, **kwargs)
previews.thumbnails.render = counting
with Store(sys.argv[1]) as store:
    print(len(store.thumbnail(sys.argv[3], "alice")))
"""


def test_made_once_by_concurrent_processes(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    with Store(tmp_path / "s") as store:
        content = store.upload(picture("PNG"), "alice")
    log = tmp_path / "renders.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path / "s"), str(log), content.content_id],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(3)
    ]
    outputs = [child.communicate(timeout=60)[0] for child in children]
    assert all(child.returncode == 0 for child in children)
    assert len(set(outputs)) == 1
    assert log.read_text().count("render") == 1


def test_not_counted_in_storage_usage_nor_quota_and_an_api_call_not_a_view(
    tmp_path: Path,
) -> None:
    data = picture("PNG")
    with Store(tmp_path / "s", quota_bytes=len(data)) as store:
        content = store.upload(data, "alice")
        before = store.get_storage_usage("alice")
        for size in (64, 128, 256, 512):
            store.thumbnail(content.content_id, "alice", size)
        assert store.get_storage_usage("alice") == before
        assert len(thumbnail_files(store)) == 4
        store.flush()
        assert store.get_analytics("alice").views == 0
        assert store.get_analytics("alice").downloads == 0
        assert store.get_api_usage("alice").by_operation["thumbnail"]["calls"] == 4
        assert store.verify() == []


def test_gc_drops_thumbnails_whose_source_is_gone(store: Store) -> None:
    kept = store.upload(picture("PNG"), "alice")
    gone = store.upload(picture("JPEG"), "alice")
    shared = store.upload(picture("JPEG"), "bob")  # the same bytes as `gone`
    for content in (kept, gone):
        store.thumbnail(content.content_id, "alice")
    assert len(thumbnail_files(store)) == 2
    store.delete_content(gone.content_id, "alice")
    assert store.gc(min_age=0).thumbnails_removed == 0  # bob's content still has the bytes
    store.delete_content(shared.content_id, "bob")
    report = store.gc(min_age=0)
    assert report.thumbnails_removed == 1 and report.blobs_removed == 1
    assert [p.name.split(".")[0] for p in thumbnail_files(store)] == [kept.hash]


def test_never_synced_each_replica_makes_its_own(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    with Store(tmp_path / "a") as a, Store(tmp_path / "b") as b:
        a.add_remote("origin", str(remote))
        b.add_remote("origin", str(remote))
        content = a.upload(picture("PNG"), "alice")
        made_on_a = a.thumbnail(content.content_id, "alice")
        a.push("origin")
        assert not [p for p in remote.rglob("*") if "derived" in p.parts or ".256" in p.name]
        b.pull("origin", blobs="lazy")
        assert not b.replica.blobs.exists(content.hash)  # remote-only until read
        assert thumbnail_files(b) == []
        # The first thumbnail fetches the original lazily (verified), as a read would.
        assert b.thumbnail(content.content_id, "alice") == made_on_a
        assert b.replica.blobs.exists(content.hash)
        assert len(thumbnail_files(b)) == 1 and b.verify() == []


def test_uploads_may_warm_the_thumbnail_in_the_background(tmp_path: Path) -> None:
    with Store(tmp_path / "s", warm_thumbnails=True) as store:
        one = store.upload(picture("PNG"), "alice")
        many = store.upload_many([picture("JPEG"), picture("GIF")], "alice")
        store.wait_for_thumbnails()
        hashes = {one.hash, *(c.hash for c in many if not isinstance(c, Exception))}
        assert {p.name.split(".")[0] for p in thumbnail_files(store)} == hashes
    with Store(tmp_path / "cold") as store:  # off by default
        store.upload(picture("PNG"), "alice")
        store.wait_for_thumbnails()
        assert thumbnail_files(store) == []


def test_the_thumbnails_command_warms_a_store(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from dreamflare_store.cli import cli

    with Store(tmp_path / "s") as store:
        for fmt in ("PNG", "JPEG"):
            store.upload(picture(fmt), "alice")
    result = CliRunner().invoke(
        cli, ["--store", str(tmp_path / "s"), "thumbnails", "--size", "64", "--size", "256"]
    )
    assert result.exit_code == 0, result.output
    assert "2 files at 64 px" in result.output
    with Store(tmp_path / "s") as store:
        assert len(thumbnail_files(store)) == 4


# -- over HTTP ------------------------------------------------------------------------------


@pytest.fixture
def served(store: Store) -> Any:
    with LiveServer(store) as server:
        yield store, server


def test_http_etag_304_and_immutable_cache(served: Any) -> None:
    store, server = served
    key = store.generate_api_key("alice").api_key
    content = store.upload(picture("PNG"), "alice")
    url = f"{server.url}/content/{content.content_id}/thumbnail"
    auth = {"Authorization": f"Bearer {key}"}
    first = httpx.get(url, params={"userId": "alice", "size": 100}, headers=auth)
    assert first.status_code == 200 and first.headers["content-type"] == "image/webp"
    assert "immutable" in first.headers["cache-control"]
    assert webp(first.content).size == (100, 63)
    etag = first.headers["etag"]
    again = httpx.get(
        url, params={"userId": "alice", "size": 100}, headers={**auth, "If-None-Match": etag}
    )
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    other = httpx.get(url, params={"userId": "alice", "size": 101}, headers=auth)
    assert other.headers["etag"] != etag
    for params, status in (({"userId": "alice", "size": 5000}, 400), ({"userId": "bob"}, 403)):
        assert httpx.get(url, params=params, headers=auth).status_code == status
    assert httpx.get(url, params={"userId": "alice"}).status_code == 401
    store.flush()
    usage = store.get_api_usage("alice").by_operation["thumbnail"]
    # The 304 is a call too; the bad size an error; the wrong user never reached the store.
    assert usage["calls"] == 4 and usage["errors"] == 1


def test_client_thumbnail_matches_the_store(served: Any) -> None:
    store, server = served
    key = store.generate_api_key("alice")
    content = store.upload(picture("JPEG"), "alice")
    with Client(server.url, key.api_key) as client:
        assert client.thumbnail(content.content_id, "alice", 64) == store.thumbnail(
            content.content_id, "alice", 64
        )
        assert client.whoami().user_id == "alice" and client.whoami().key_id == key.key_id
        (urls,) = client.create_urls("alice", [content.content_id])
        assert urls.content_id == content.content_id


# -- signed URLs --------------------------------------------------------------------------------


def test_signed_urls_open_thumbnails_and_bytes_without_a_key(served: Any) -> None:
    store, server = served
    key = store.generate_api_key("alice")
    data = picture("PNG")
    content = store.upload(data, "alice")
    answer = httpx.post(
        f"{server.url}/content/urls",
        json={"userId": "alice", "contentIds": [content.content_id], "expiresIn": 600},
        headers={"Authorization": f"Bearer {key.api_key}"},
    )
    assert answer.status_code == 200, answer.text
    (urls,) = answer.json()["items"]
    assert key.api_key not in urls["thumbnailUrl"] + urls["dataUrl"]
    thumb = httpx.get(server.url + urls["thumbnailUrl"] + "&size=64")
    assert thumb.status_code == 200 and max(webp(thumb.content).size) == 64
    assert httpx.get(server.url + urls["dataUrl"]).content == data
    ranged = httpx.get(server.url + urls["dataUrl"], headers={"Range": "bytes=0-7"})
    assert ranged.status_code == 206 and ranged.content == data[:8]  # videos seek with Range
    # A signature opens its own path only, for its own user, unaltered.
    forged = [
        urls["thumbnailUrl"].replace("/thumbnail", "/data"),
        urls["thumbnailUrl"].replace("userId=alice", "userId=bob"),
        urls["thumbnailUrl"][:-1] + ("0" if urls["thumbnailUrl"][-1] != "0" else "1"),
        urls["thumbnailUrl"].replace("expires=", "expires=1"),
        urls["thumbnailUrl"].split("&sig=")[0],
    ]
    for url in forged:
        response = httpx.get(server.url + url)
        assert response.status_code == 401, url


def test_signed_urls_end_at_expiry_and_with_their_key(tmp_path: Path) -> None:
    class Clock:
        now = 1_800_000_000_000

        def time_ms(self) -> int:
            return self.now

    clock = Clock()
    with Store(tmp_path / "s", clock=clock) as store, LiveServer(store) as server:
        key = store.generate_api_key("alice")
        other = store.generate_api_key("alice")
        content = store.upload(picture("PNG"), "alice")
        (short,) = store.create_urls("alice", [content.content_id], 60, key_id=key.key_id)
        (kept,) = store.create_urls("alice", [content.content_id], 3600, key_id=other.key_id)
        assert httpx.get(server.url + short.thumbnail_url).status_code == 200
        clock.now += 61_000
        expired = httpx.get(server.url + short.thumbnail_url)
        assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
        assert httpx.get(server.url + kept.thumbnail_url).status_code == 200
        store.revoke_api_key(other.key_id, "alice")
        revoked = httpx.get(server.url + kept.data_url)
        assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]


def test_signed_urls_follow_the_access_rules(store: Store) -> None:
    alice = store.generate_api_key("alice")
    bob = store.generate_api_key("bob")
    content = store.upload(picture("PNG"), "alice")
    with pytest.raises(NotFound):
        store.create_urls("bob", [content.content_id], key_id=bob.key_id)
    with pytest.raises(NotFound):  # a key of someone else
        store.create_urls("alice", [content.content_id], key_id=bob.key_id)
    with pytest.raises(InvalidArgument):
        store.create_urls("alice", [], key_id=alice.key_id)
    with pytest.raises(InvalidArgument):
        store.create_urls("alice", [content.content_id], 0, key_id=alice.key_id)
    with pytest.raises(InvalidArgument):
        store.create_urls("alice", [content.content_id], 86_401, key_id=alice.key_id)
    (urls,) = store.create_urls("alice", [content.content_id], key_id=alice.key_id)
    path, _, query = urls.thumbnail_url.partition("?")
    fields = dict(part.split("=") for part in query.split("&"))
    assert (
        store.check_signed_url(path, "alice", fields["keyId"], fields["expires"], fields["sig"])
        == "alice"
    )
    with pytest.raises(Unauthenticated):
        store.check_signed_url(path, "alice", fields["keyId"], "soon", fields["sig"])
    # A user who lost access keeps no access through an old URL: the rules run per request.
    store.create_collaboration("alice", content.content_id, "bob", "read")
    (bobs,) = store.create_urls("bob", [content.content_id], key_id=bob.key_id)
    (collab,) = store.list_collaborations("bob")
    store.delete_collaboration(collab.collaboration_id, "alice")
    with LiveServer(store) as server:
        response = httpx.get(server.url + bobs.thumbnail_url)
    assert response.status_code == 404


def test_whoami_names_the_key_and_refuses_a_bad_one(served: Any) -> None:
    store, server = served
    key = store.generate_api_key("alice")
    me = httpx.get(f"{server.url}/whoami", headers={"Authorization": f"Bearer {key.api_key}"})
    assert me.json() == {"userId": "alice", "keyId": key.key_id}
    assert httpx.get(f"{server.url}/whoami").status_code == 401
    store.revoke_api_key(key.key_id, "alice")
    gone = httpx.get(f"{server.url}/whoami", headers={"X-API-Key": key.api_key})
    assert gone.status_code == 401


def test_a_signed_data_url_downloads_without_metadata(served: Any) -> None:
    from PIL import PngImagePlugin

    store, server = served
    key = store.generate_api_key("alice")
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a secret prompt\nSteps: 20, Seed: 1, Model: m")
    out = io.BytesIO()
    Image.new("RGB", (64, 64), RED).save(out, "PNG", pnginfo=info)
    content = store.upload(out.getvalue(), "alice")
    (urls,) = store.create_urls("alice", [content.content_id], key_id=key.key_id)
    whole = httpx.get(server.url + urls.data_url).content
    bare = httpx.get(server.url + urls.data_url + "&stripMetadata=true").content
    assert b"a secret prompt" in whole and b"a secret prompt" not in bare
    assert Image.open(io.BytesIO(bare)).size == (64, 64)
