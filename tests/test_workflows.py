"""Everyday workflows, as a new user meets them: the first five minutes (serve, demo),
repeatable folder uploads, bulk commands, remotes and maintenance, and the HTTP API as a
client written from its document sees it. Real stores, real folders, a real server."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from helpers import Cli, spooled, stored_blobs

from dreamflare_store import InvalidArgument, NotFound, Store
from dreamflare_store import contents as contents_module
from dreamflare_store.blobs import hash_bytes
from dreamflare_store.cli import demo as demo_module
from dreamflare_store.cli.sync import shown_url
from dreamflare_store.client import Client
from dreamflare_store.http.operations import SCHEMAS
from dreamflare_store.http.testing import LiveServer
from dreamflare_store.media import declared_mime

USER = "alice"
PAST_NS = time.time_ns() - 3600 * 10**9  # files made an hour before their upload


@pytest.fixture
def run(tmp_path: Path) -> Cli:
    work = tmp_path / "work"
    work.mkdir()
    runner = Cli(tmp_path / "store", work, {"DREAMFLARE_USER": USER})
    runner("init")
    return runner


def tree(root: Path, files: dict[str, bytes]) -> Path:
    """Write ``files`` under ``root``, dated an hour back (as renders made before)."""
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, ns=(PAST_NS, PAST_NS))
    return root


def op_count(store: Store) -> int:
    return store.verify_report().ops


# -- 6. repeatable folder uploads: the Python API ----------------------------------------


def test_upload_batch_with_paths_creates_then_skips_then_versions(tmp_path: Path) -> None:
    root = tree(tmp_path / "renders", {"a.png": b"A" * 100, "deep/b.png": b"B" * 200})
    files = [root / "a.png", root / "deep/b.png"]
    paths = ["renders/a.png", "renders/deep/b.png"]
    with Store(tmp_path / "store") as store:
        first = store.upload_batch(files, USER, paths=paths)
        assert [r.status for r in first] == ["created", "created"]
        assert [r.content.path for r in first if r.content] == paths
        assert [r.new_bytes for r in first] == [True, True]
        ops = op_count(store)
        again = store.upload_batch(files, USER, paths=paths)
        assert [r.status for r in again] == ["unchanged", "unchanged"]
        assert [r.content.content_id for r in again if r.content] == [
            r.content.content_id for r in first if r.content
        ]
        assert op_count(store) == ops and store.list_content(USER).total == 2
        tree(root, {"a.png": b"a" * 150})  # new bytes at the same path
        third = store.upload_batch(files, USER, paths=paths)
        assert [r.status for r in third] == ["versioned", "unchanged"]
        assert third[0].content is not None and third[0].content.version == 2
        assert third[0].content.content_id == first[0].content.content_id  # type: ignore[union-attr]
        versions = store.get_content_versions(third[0].content.content_id, USER)
        assert [v.path for v in versions] == ["renders/a.png"] * 2
        assert versions[1].changes == ("file",)  # the path stays: not a change
        assert store.list_content(USER).total == 2
        fresh = store.upload_batch(files, USER, paths=paths, new=True)
        assert [r.status for r in fresh] == ["created", "created"]
        assert store.list_content(USER).total == 4
        assert store.verify() == []


def test_the_stat_cache_skips_reading_unchanged_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tree(tmp_path / "r", {f"{i}.bin": bytes([i]) * 1000 for i in range(5)})
    files = sorted(root.iterdir())
    paths = [f"r/{f.name}" for f in files]
    hashed: list[str] = []
    real = contents_module.hash_file

    def counting(path: Any) -> str:
        hashed.append(str(path))
        return real(path)

    monkeypatch.setattr(contents_module, "hash_file", counting)
    with Store(tmp_path / "store") as store:
        store.upload_batch(files, USER, paths=paths)
        assert [r.status for r in store.upload_batch(files, USER, paths=paths)] == ["unchanged"] * 5
        assert hashed == []  # size, mtime and inode matched: nothing was read
        # A file touched (same bytes, new mtime) is hashed once, then trusted again.
        os.utime(files[0], ns=(PAST_NS + 10**9, PAST_NS + 10**9))
        assert store.upload_batch(files, USER, paths=paths)[0].status == "unchanged"
        assert hashed == [str(files[0])]
        store.upload_batch(files, USER, paths=paths)
        assert hashed == [str(files[0])]


def test_a_file_changed_within_the_clock_tick_of_its_upload_is_hashed(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    file = root / "now.bin"
    file.write_bytes(b"x" * 64)  # mtime: now, racy against its upload
    with Store(tmp_path / "store") as store:
        store.upload_batch([file], USER, paths=["r/now.bin"])
        info = os.stat(file)
        file.write_bytes(b"y" * 64)  # same size; put the same mtime back
        os.utime(file, ns=(info.st_atime_ns, info.st_mtime_ns))
        result = store.upload_batch([file], USER, paths=["r/now.bin"])[0]
        assert result.status == "versioned"  # not trusted from the cache: hashed
        assert store.read_content(result.content.content_id, USER) == b"y" * 64  # type: ignore[union-attr]


def test_a_no_op_rerun_writes_nothing_and_reads_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tree(tmp_path / "r", {f"d{i % 3}/{i}.bin": bytes([i]) * 2000 for i in range(30)})
    files = sorted(p for p in root.rglob("*.bin"))
    paths = [f"r/{f.relative_to(root).as_posix()}" for f in files]
    hashed: list[str] = []
    real = contents_module.hash_file
    monkeypatch.setattr(contents_module, "hash_file", lambda p: hashed.append(p) or real(p))
    with Store(tmp_path / "store") as store:
        store.upload_batch(files, USER, paths=paths)
        store.flush()
        watcher = sqlite3.connect(tmp_path / "store" / "catalog.db")
        before = watcher.execute("PRAGMA data_version").fetchone()
        size = os.path.getsize(tmp_path / "store" / "catalog.db-wal")
        again = store.upload_batch(files, USER, paths=paths, records=False)
        store.flush()
        assert [r.status for r in again] == ["unchanged"] * 30
        assert all(
            r.content is None and r.source == str(f) for r, f in zip(again, files, strict=True)
        )
        # No transaction committed (not even a usage counter), nothing read or hashed.
        assert watcher.execute("PRAGMA data_version").fetchone() == before
        assert os.path.getsize(tmp_path / "store" / "catalog.db-wal") == size
        assert hashed == []
        watcher.close()
        with_records = store.upload_batch(files, USER, paths=paths)
        assert [r.content.path for r in with_records if r.content] == paths


def test_the_stat_cache_never_answers_for_another_user(tmp_path: Path) -> None:
    root = tree(tmp_path / "r", {"a.bin": b"a" * 500, "b.bin": b"b" * 500})
    files, paths = [root / "a.bin", root / "b.bin"], ["r/a.bin", "r/b.bin"]
    with Store(tmp_path / "store") as store:
        store.upload_batch(files, USER, paths=paths)
        theirs = store.upload_batch(files, "bob", paths=paths)
        assert [r.status for r in theirs] == ["created", "created"]  # bob had none of them
        assert {r.content.user_id for r in theirs if r.content} == {"bob"}
        mine = store.upload_batch(files, USER, paths=paths)
        assert [r.status for r in mine] == ["unchanged", "unchanged"]
        assert {r.content.user_id for r in mine if r.content} == {USER}


def test_a_file_whose_content_went_away_or_changed_is_not_taken_as_unchanged(
    tmp_path: Path,
) -> None:
    root = tree(tmp_path / "r", {"a.bin": b"a" * 500, "b.bin": b"b" * 500, "c.bin": b"c" * 500})
    files = [root / "a.bin", root / "b.bin", root / "c.bin"]
    paths = ["r/a.bin", "r/b.bin", "r/c.bin"]
    with Store(tmp_path / "store") as store:
        first = [r.content for r in store.upload_batch(files, USER, paths=paths)]
        assert all(first)
        a, b, c = (content.content_id for content in first if content)
        store.delete_content(a, USER)  # deleted: uploaded again as a new content
        store.upload(io.BytesIO(b"other"), USER, content_id=b)  # other bytes, same content
        store.update_metadata(c, USER, tags="kept")  # metadata only: still the same bytes
        again = store.upload_batch(files, USER, paths=paths)
        assert [r.status for r in again] == ["created", "versioned", "unchanged"]
        assert again[0].content is not None and again[0].content.content_id != a
        assert store.read_content(b, USER) == b"b" * 500
        # A newer content at a path takes it from the one the cache knew.
        newer = store.upload_batch([files[2]], USER, paths=["r/c.bin"], new=True)[0].content
        assert newer is not None
        (result,) = store.upload_batch([files[2]], USER, paths=["r/c.bin"])
        assert result.status == "unchanged" and result.content is not None
        assert result.content.content_id == newer.content_id


def test_a_file_replaced_with_the_same_size_and_mtime_is_read_again(tmp_path: Path) -> None:
    root = tree(tmp_path / "r", {"a.bin": b"a" * 500})
    file = root / "a.bin"
    with Store(tmp_path / "store") as store:
        store.upload_batch([file], USER, paths=["r/a.bin"])
        replacement = tree(tmp_path / "new", {"a.bin": b"z" * 500}) / "a.bin"
        os.replace(replacement, file)  # same size and mtime, another inode
        (result,) = store.upload_batch([file], USER, paths=["r/a.bin"])
        assert result.status == "versioned" and result.content is not None
        assert store.read_content(result.content.content_id, USER) == b"z" * 500


@pytest.mark.parametrize(
    "bad", ["../x", "/etc/passwd", "a//b", "a/./b", "a/../b", "a\x00b", "a\nb", "C:/x", "x" * 1025]
)
def test_paths_are_sanitised(tmp_path: Path, bad: str) -> None:
    with Store(tmp_path / "store") as store:
        with pytest.raises(InvalidArgument):
            store.upload(b"data", USER, path=bad)
        (result,) = store.upload_batch([b"data"], USER, paths=[bad])
        assert result.status == "failed" and isinstance(result.error, InvalidArgument)
        assert store.list_content(USER).total == 0


def test_a_path_travels_with_sync(tmp_path: Path) -> None:
    with Store(tmp_path / "a") as one, Store(tmp_path / "b") as two:
        made = one.upload(b"bytes", USER, path="renders/x/y.png")
        for store in (one, two):
            store.add_remote("origin", str(tmp_path / "remote"))
        one.push("origin")
        two.pull("origin", blobs="eager")
        assert two.get_content(made.content_id, USER).path == "renders/x/y.png"
        assert [v.path for v in two.get_content_versions(made.content_id, USER)] == [
            "renders/x/y.png"
        ]


# -- 6. repeatable folder uploads: the command line --------------------------------------


def test_upload_dir_twice_keeps_the_catalog_and_the_structure(run: Cli) -> None:
    tree(run.cwd / "gen", {"batch0/img_000.png": b"0" * 10, "batch1/img_001.png": b"1" * 10})
    first = run.json("upload", "gen")
    assert sorted(item["path"] for item in first["items"]) == [
        "gen/batch0/img_000.png",
        "gen/batch1/img_001.png",
    ]
    assert all(item["filename"].startswith("img_") for item in first["items"])
    again = run("upload", "gen").stdout
    assert "Uploaded 2 files: 0 new, 0 new versions, 2 unchanged" in again
    tree(run.cwd / "gen", {"batch0/img_000.png": b"changed"})
    third = run.json("upload", "gen")
    assert (third["new"], third["versioned"], third["unchanged"]) == (0, 1, 1)
    assert run.json("ls")["total"] == 2
    prefixed = run.json("upload", "gen", "--prefix", "shoot")
    assert {item["path"] for item in prefixed["items"]} == {
        "shoot/batch0/img_000.png",
        "shoot/batch1/img_001.png",
    }
    bare = run.json("upload", "gen", "--prefix", "")
    assert {item["path"] for item in bare["items"]} == {"batch0/img_000.png", "batch1/img_001.png"}
    doubled = run.json("upload", "gen", "--new")
    assert doubled["new"] == 2 and run.json("ls")["total"] == 8


def test_client_upload_many_has_the_same_results(tmp_path: Path) -> None:
    root = tree(tmp_path / "r", {"a.bin": b"a" * 10, "b.bin": b"b" * 10})
    files = [root / "a.bin", root / "b.bin"]
    paths = ["r/a.bin", "r/b.bin"]
    with Store(tmp_path / "store") as store, LiveServer(store) as server:
        key = store.generate_api_key(USER).api_key
        with Client(server.url, key) as client:
            assert [r.status for r in client.upload_many(files, USER, paths=paths)] == [
                "created", "created"
            ]  # fmt: skip
            tree(root, {"b.bin": b"B" * 11})
            again = client.upload_many(files, USER, paths=paths)
            assert [r.status for r in again] == ["unchanged", "versioned"]
            assert again[1].content is not None and again[1].content.version == 2
            assert again[1].content.path == "r/b.bin"
        assert store.list_content(USER).total == 2


# -- 7, 8. many things back; bulk commands -----------------------------------------------


def test_download_all_lays_contents_out_by_path(run: Cli, tmp_path: Path) -> None:
    tree(run.cwd / "gen", {"a/x.png": b"x" * 5, "b/y.png": b"y" * 5})
    run("upload", "gen", "--tags", "set")
    other = tree(tmp_path / "other", {"x.png": b"z"}) / "x.png"
    run("upload", str(other), "--prefix", "gen/a", "--new")  # a second content at gen/a/x.png
    out = run.cwd / "out"
    report = run.json("download", "--all", "-o", "out")
    written = sorted(Path(item["path"]).relative_to("out").as_posix() for item in report["written"])
    assert len(written) == 3 and "gen/b/y.png" in written and "gen/a/x.png" in written
    # Two contents at one path: the second gets its id added.
    assert any(name.startswith("gen/a/x.cnt_") for name in written)
    assert (out / "gen/b/y.png").read_bytes() == b"y" * 5
    again = run.json("download", "--all", "-o", "out")
    assert again["written"] == [] and len(again["skipped"]) == 3
    (out / "gen/b/y.png").write_bytes(b"mine")
    refused = run("download", "--tag", "set", "-o", "out", code=1)
    assert "exists with other bytes" in refused.stderr
    assert (out / "gen/b/y.png").read_bytes() == b"mine"
    run("download", "--tag", "set", "-o", "out", "--force")
    assert (out / "gen/b/y.png").read_bytes() == b"y" * 5
    assert sorted(p.name for p in run.cwd.iterdir()) == ["gen", "out"]  # nothing outside


def test_download_one_into_a_new_folder_with_a_trailing_slash(run: Cli) -> None:
    tree(run.cwd, {"cat.png": b"meow"})
    cid = run.json("upload", "cat.png")["contentId"]
    run("download", cid, "-o", "fresh/")
    assert (run.cwd / "fresh" / "cat.png").read_bytes() == b"meow"
    assert (run.cwd / "fresh").is_dir()


def test_rm_and_collab_rm_take_several_ids_and_stdin(run: Cli) -> None:
    tree(run.cwd / "d", {f"{i}.bin": bytes([i]) * 3 for i in range(4)})
    run("upload", "d")
    ids = run("ls", "-q").stdout.split()
    assert len(ids) == 4
    done = run.json("rm", ids[0], ids[1], "cnt_" + "0" * 26, code=1)
    assert done["deleted"] == ids[:2] and len(done["errors"]) == 1
    run("rm", "-", stdin=f"{ids[2]}\n{ids[3]}\n")
    assert run.json("ls")["total"] == 0
    tree(run.cwd / "e", {"a": b"a", "b": b"b"})
    run("upload", "e")
    cols = [
        run.json("collab", "create", "--content-id", cid, "--collaborator", "bob")[
            "collaborationId"
        ]
        for cid in run("ls", "-q").stdout.split()
    ]
    run("collab", "rm", *cols)
    assert run.json("collab", "list")["items"] == []


def test_ls_filters_by_tag_and_pages_through_all(run: Cli) -> None:
    tree(run.cwd / "t", {"a": b"1"})
    tree(run.cwd / "u", {f"{i}": bytes([i]) for i in range(5)})
    run("upload", "t", "--tags", "keep")
    run("upload", "u")
    tagged = run.json("ls", "--tag", "keep")
    assert tagged["total"] == 1 and tagged["items"][0]["tags"] == ["keep"]
    everything = run.json("ls", "--all", "--limit", "2")
    assert everything["total"] == 6 and len(everything["items"]) == 6


# -- 9-13. remotes and maintenance -------------------------------------------------------


def test_remote_add_refuses_an_existing_name_and_lists_without_secrets(
    run: Cli, tmp_path: Path
) -> None:
    run("remote", "add", "origin", str(tmp_path / "r1"), "-o", "token=s3cr3t")
    refused = run("remote", "add", "origin", str(tmp_path / "r2"), code=1)
    assert "exists already" in refused.stderr and "--force" in refused.stderr
    run("remote", "add", "origin", str(tmp_path / "r2"), "--force")
    listed = run("remote", "list").stdout
    assert "origin" in listed and "r2" in listed and "s3cr3t" not in listed
    assert run.json("remote", "list")["items"] == [
        {"remote": "origin", "url": f"file://{tmp_path / 'r2'}"}
    ]
    pushed = run("push").stdout
    assert (
        pushed.startswith(f"origin (file://{tmp_path / 'r2'}): sent") and "received" not in pushed
    )
    run("remote", "remove", "origin")
    assert "no remote named" in run("remote", "remove", "origin", code=1).stderr
    assert shown_url("https://user:pw@host/x?sig=1") == "https://user:***@host/x?***"


def test_gc_counts_what_it_keeps_and_dry_runs(run: Cli) -> None:
    tree(run.cwd, {"a.bin": b"a" * 100})
    cid = run.json("upload", "a.bin")["contentId"]
    run("rm", cid)
    young = run("gc").stdout
    assert "Removed 0 unreferenced files" in young and "Kept 1 unreferenced files younger" in young
    dry = run.json("gc", "--min-age", "0", "--dry-run")
    assert dry["blobsRemoved"] == 1 and dry["bytesFreed"] == 100 and dry["dryRun"] is True
    assert run.json("gc", "--min-age", "0")["blobsRemoved"] == 1  # the dry run removed nothing


def test_verify_says_what_it_checked_and_counts_remote_only_blobs(tmp_path: Path) -> None:
    with Store(tmp_path / "a") as one, Store(tmp_path / "b") as two:
        one.upload(b"x" * 10, USER)
        one.upload(b"y" * 20, USER)
        for store in (one, two):
            store.add_remote("origin", str(tmp_path / "remote"))
        one.push("origin")
        two.pull("origin", blobs="none")
        report = two.verify_report()
        assert report.ok and two.verify() == []
        assert (report.blobs_checked, report.remote_only, report.contents) == (0, 2, 2)
        checked = one.verify_report()
        assert (checked.blobs_checked, checked.bytes_checked, checked.ops) == (2, 30, 2)
    result = Cli(tmp_path / "b", tmp_path)("verify")
    assert "2 files only on a remote" in result.stdout and "Checked 0 files" in result.stdout
    as_json = Cli(tmp_path / "b", tmp_path).json("verify")
    assert as_json["ok"] and as_json["remoteOnly"] == 2 and as_json["items"] == []


def test_usage_labels_and_quota_commands(run: Cli) -> None:
    out = run("usage", "storage").stdout
    assert "logical size" in out and "what the quota counts" in out
    assert run.json("quota", "set", "--user", "bob", "2MiB") == {
        "userId": "bob", "quotaBytes": 2 * 1024 * 1024
    }  # fmt: skip
    shown = run("quota", "show").stdout
    assert "bob" in shown and "2.0 MiB" in shown
    run("quota", "set", "--user", "bob", "none")
    assert "No quotas set" in run("quota", "show").stdout
    assert "not a size" in run("quota", "set", "--user", "bob", "lots", code=1).stderr


def test_revoking_a_key_twice_says_already_revoked(tmp_path: Path) -> None:
    with Store(tmp_path / "store") as store, LiveServer(store) as server:
        key = store.generate_api_key(USER)
        other = store.generate_api_key(USER).api_key
        store.revoke_api_key(key.key_id, USER)
        with pytest.raises(NotFound, match="already revoked"):
            store.revoke_api_key(key.key_id, USER)
        response = httpx.delete(
            f"{server.url}/api/key/{key.key_id}/revoke",
            params={"userId": USER},
            headers={"Authorization": f"Bearer {other}"},
        )
        assert response.status_code == 404  # as INTERFACE.md fixes
        assert "already revoked" in response.json()["error"]["message"]


# -- 1, 2, 14. serve ---------------------------------------------------------------------


def serve_process(
    store: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    code = "import sys; from dreamflare_store.cli import main; sys.argv[0] = 'dreamflare'; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, "--store", str(store), "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent), **(env or {})},
    )


def read_until(stream: Any, needle: str, limit: float = 30.0) -> str:
    seen = ""
    end = time.monotonic() + limit
    while needle not in seen and time.monotonic() < end:
        line = stream.readline()
        if not line:
            break
        seen += line
    return seen


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def test_serve_on_a_port_in_use_is_one_line_and_makes_no_key(
    tmp_path: Path, busy_port: int
) -> None:
    process = serve_process(tmp_path / "store", "--user", "carol", "--port", str(busy_port))
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    lines = [line for line in err.splitlines() if line and not line.startswith("Created a store")]
    assert len(lines) == 1 and "cannot listen on" in lines[0] and "in use" in lines[0]
    assert "dfk_" not in out
    with Store(tmp_path / "store") as store:
        assert store.list_api_keys("carol") == []


def test_serve_makes_the_first_key_for_its_user_then_says_how_to_make_more(
    tmp_path: Path,
) -> None:
    for attempt in range(2):
        process = serve_process(tmp_path / "store", "--user", "carol", "--port", "0")
        try:
            text = read_until(process.stdout, "dreamflare key generate --user")
        finally:
            process.terminate()
            process.communicate(timeout=30)
        if attempt == 0:
            assert "API key for user 'carol'" in text and "dfk_" in text
            assert "dreamflare key generate --user NAME" in text
        else:
            assert "dfk_" not in text
            assert "'carol' has API keys already" in text
            assert "dreamflare key generate --user carol" in text


def test_serve_off_loopback_warns_about_tls(tmp_path: Path) -> None:
    process = serve_process(
        tmp_path / "store", "--user", "carol", "--host", "0.0.0.0", "--port", "0"
    )
    try:
        text = read_until(process.stdout, "TLS")
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert "warning: 0.0.0.0 is reachable from other machines" in text and "TLS" in text


# -- 3. demo -----------------------------------------------------------------------------


def test_demo_writes_renders_with_real_metadata_and_uploads_them(run: Cli) -> None:
    first = run.json("demo")["items"]
    assert len(first) == len(demo_module.SAMPLES) and {i["status"] for i in first} == {"created"}
    data = (run.cwd / "renders" / "a1111" / "cat-0001.png").read_bytes()
    assert data.startswith(b"\x89PNG") and b"tEXtparameters\x00" in data
    assert b"Negative prompt: " in data and b"Steps: 30" in data and b"Seed: 98765" in data
    comfy = (run.cwd / "renders" / "comfyui" / "city-0001.png").read_bytes()
    graph = comfy.split(b"tEXtprompt\x00", 1)[1]
    assert b'"class_type": "KSampler"' in graph and b"tEXtworkflow\x00" in comfy
    again = run.json("demo")["items"]
    assert {item["status"] for item in again} == {"unchanged"}
    content = first[0]["content"]
    assert content["mimeType"] == "image/png" and content["width"] == demo_module.SIZE
    assert run.json("ls", "--tag", "sunset")["total"] == 2


# -- 15-17. the HTTP API as a client from the document sees it ---------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Store, str, dict[str, str]]]:
    with Store(tmp_path / "store") as store, LiveServer(store) as live:
        headers = {"Authorization": f"Bearer {store.generate_api_key(USER).api_key}"}
        yield store, live.url, headers


def nothing_left(store: Store, ops: int) -> bool:
    """No content, no blob, no op and no temp file (spooled or the store's) since ``ops``."""
    blobs = stored_blobs(store)  # files or rows
    temps = list((store.path / "tmp").iterdir())
    loose = [p for p in store.path.iterdir() if p.name.startswith("tmp") and p.is_file()]
    held = spooled(store.path)  # the server runs in this process: its open files show
    return not blobs and not temps and not loose and not held and op_count(store) == ops


PAYLOAD = os.urandom(3 << 20)  # more than one spool write


@pytest.mark.parametrize(
    "parts",
    [
        ["userId", "tags", "description", "file"],  # fields first
        ["file", "userId", "tags", "description"],  # what curl -F file=@x -F userId=... sends
        ["tags", "file", "userId", "description"],  # fields on both sides
        ["userId", "file", "tags", "description"],  # the user before, the rest after
    ],
)
def test_upload_parts_in_any_order(server: Any, parts: list[str]) -> None:
    store, url, headers = server
    ops = op_count(store)
    values = {"userId": USER, "tags": "a", "description": "late or early"}
    files = [
        ("file", ("clip.bin", PAYLOAD)) if name == "file" else (name, (None, values[name]))
        for name in parts
    ]
    response = httpx.post(f"{url}/upload", headers=headers, files=files, timeout=60)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["hash"] == hash_bytes(PAYLOAD) and body["size"] == len(PAYLOAD)
    assert (body["tags"], body["description"], body["filename"]) == (
        ["a"], "late or early", "clip.bin"
    )  # fmt: skip
    assert op_count(store) == ops + 1 and store.list_content(USER).total == 1
    assert store.read_content(body["contentId"], USER) == PAYLOAD
    assert not [p for p in store.path.iterdir() if p.name.startswith("tmp") and p.is_file()]


@pytest.mark.parametrize(
    ("parts", "status", "message"),
    [
        ([("file", None), ("userId", "bob")], 403, "does not belong"),
        ([("userId", USER), ("file", None), ("limit", "1")], 400, "unknown parameter"),
        ([("file", None), ("userId", USER), ("tags", "bad\x01tag")], 400, "control characters"),
        ([("tags", "a"), ("file", None), ("description", "d" * 5000), ("userId", USER)], 400,
         "description"),
        ([("file", None), ("tags", "x")], 400, "userId is required"),
        ([("userId", USER), ("file", None), ("contentId", "cnt_" + "0" * 26)],
         404, "not_found"),
    ],
)  # fmt: skip
def test_a_refused_upload_in_any_order_changes_nothing(
    server: Any, parts: list[tuple[str, str | None]], status: int, message: str
) -> None:
    store, url, headers = server
    ops = op_count(store)
    files = [
        ("file", ("f.bin", PAYLOAD)) if value is None else (name, (None, value))
        for name, value in parts
    ]
    response = httpx.post(f"{url}/upload", headers=headers, files=files, timeout=60)
    assert response.status_code == status, response.text
    assert message in response.text
    assert nothing_left(store, ops) and store.list_content(USER).total == 0


def test_a_quota_or_a_cut_body_refuses_a_file_sent_first(server: Any) -> None:
    store, url, headers = server
    ops = op_count(store)
    store.set_quota(USER, 1000)
    response = httpx.post(
        f"{url}/upload",
        headers=headers,
        files=[("file", ("f.bin", b"x" * 5000)), ("userId", (None, USER))],
    )
    assert response.status_code == 413 and "quota_exceeded" in response.text
    store.set_quota(USER, None)
    boundary = "cut"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n'
        ).encode()
        + b"x" * 5000
        + f"\r\n--{boundary}\r\nContent-Disposition: form-data;".encode()
    )
    response = httpx.post(
        f"{url}/upload",
        params={"userId": USER},
        headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=body,
    )
    assert response.status_code == 400, response.text
    assert nothing_left(store, ops)  # a quota is this store's own setting: no op
    assert store.list_content(USER).total == 0
    assert stored_blobs(store) == set()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_sends_the_file_first_or_between_fields(server: Any, tmp_path: Path) -> None:
    store, url, headers = server
    source = tree(tmp_path, {"x.png": b"png-ish bytes"}) / "x.png"
    answers = []
    for order in (
        ["-F", f"file=@{source}", "-F", "userId=alice", "-F", "tags=first"],
        ["-F", "tags=second", "-F", f"file=@{source}", "-F", "userId=alice"],
    ):
        done = subprocess.run(
            ["curl", "-s", "-H", f"Authorization: {headers['Authorization']}", *order,
             f"{url}/upload"],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        answers.append(json.loads(done.stdout))
    assert [a["filename"] for a in answers] == ["x.png", "x.png"]
    assert [a["tags"] for a in answers] == [["first"], ["second"]]
    assert store.list_content(USER).total == 2


def test_errors_name_parameters_as_the_api_does(server: Any) -> None:
    _, url, headers = server
    response = httpx.get(f"{url}/content/nope", params={"userId": USER}, headers=headers)
    assert response.status_code == 400
    assert "contentId 'nope'" in response.json()["error"]["message"]
    response = httpx.put(
        f"{url}/collaboration/bad", json={"userId": USER, "permissions": "read"}, headers=headers
    )
    assert "collaborationId" in response.json()["error"]["message"]
    store = server[0]
    with pytest.raises(InvalidArgument, match="keyId 'k'"):
        store.revoke_api_key("k", USER)
    with pytest.raises(InvalidArgument, match="userId must not be empty"):
        store.list_content("")


def test_a_declared_type_is_kept_when_sniffing_finds_nothing(server: Any) -> None:
    _, url, headers = server
    unknown = b"\x00\x01 not a known header" * 10
    by_type = httpx.post(
        f"{url}/upload",
        headers=headers,
        data={"userId": USER},
        files={"file": ("clip", unknown, "video/mp4")},
    )
    assert by_type.json()["mimeType"] == "video/mp4"
    by_name = httpx.post(
        f"{url}/upload", headers=headers, data={"userId": USER}, files={"file": ("c.mp4", unknown)}
    )
    assert by_name.json()["mimeType"] == "video/mp4"
    unsafe = httpx.post(
        f"{url}/upload",
        headers=headers,
        data={"userId": USER},
        files={"file": ("page.html", unknown, "text/html")},
    )
    assert unsafe.json()["mimeType"] == "application/octet-stream"
    assert declared_mime("image/png", "video/mp4", "x.mp4") == "image/png"  # bytes win


def test_a_path_given_over_http_is_kept_and_documented(server: Any) -> None:
    store, url, headers = server
    response = httpx.post(
        f"{url}/upload",
        headers=headers,
        data={"userId": USER, "path": "renders/a/b.png"},
        files={"file": ("b.png", b"bytes")},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    root = {"components": {"schemas": SCHEMAS}, "$ref": "#/components/schemas/Content"}
    jsonschema.Draft202012Validator(root).validate(body)
    assert body["path"] == "renders/a/b.png"
    versions = httpx.get(
        f"{url}/content/{body['contentId']}/versions", params={"userId": USER}, headers=headers
    ).json()["items"]
    root["$ref"] = "#/components/schemas/Version"
    jsonschema.Draft202012Validator(root).validate(versions[0])
    assert versions[0]["changes"] == ["file", "filename", "path"]
    refused = httpx.post(
        f"{url}/upload",
        headers=headers,
        data={"userId": USER, "path": "../escape"},
        files={"file": ("b.png", b"other")},
    )
    assert refused.status_code == 400 and store.list_content(USER).total == 1
