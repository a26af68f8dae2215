"""The ``dreamflare`` command line: every command, its output for people and for scripts,
and every error path, through click's runner; then the installed executable on a real
store, as a subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from helpers import Cli
from PIL import Image

from dreamflare_store import Store
from dreamflare_store import replica as replica_module
from dreamflare_store.blobs import SMALL_FILE
from dreamflare_store.cli import cli, progress
from dreamflare_store.cli import format as cli_format
from dreamflare_store.cli import upload as cli_upload
from dreamflare_store.cli.context import State

MISSING_ID = "cnt_" + "0" * 26


# -- helpers -----------------------------------------------------------------------------


@pytest.fixture
def run(tmp_path: Path) -> Cli:
    work = tmp_path / "work"
    work.mkdir()
    runner = Cli(tmp_path / "store", work)
    runner("init")
    return runner


def png(
    path: Path, width: int = 8, height: int = 6, color: tuple[int, int, int] = (9, 9, 9)
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), color).save(path)
    return path


def upload_one(run: Cli, path: Path, *extra: str, user: str = "alice") -> dict[str, Any]:
    result: dict[str, Any] = run.json("upload", str(path), "--user", user, *extra)
    return result


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    context = click.Context(group)
    for name in group.list_commands(context):  # the root group imports its commands lazily
        command = group.get_command(context, name)
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found.extend(all_commands(command, (*prefix, name)))
    return found


# -- help and start-up -------------------------------------------------------------------


@pytest.mark.parametrize("command", [(), *all_commands(cli)], ids=" ".join)
def test_every_command_has_help_with_an_example(tmp_path: Path, command: tuple[str, ...]) -> None:
    runner = Cli(tmp_path / "store", tmp_path)
    result = runner(*command, "--help")
    assert result.stdout.startswith("Usage: dreamflare")
    target = cli
    for name in command:
        assert isinstance(target, click.Group)
        target = target.get_command(click.Context(target), name)  # type: ignore[assignment]
    if isinstance(target, click.Group) and command:
        assert target.help
    else:
        assert "Example" in result.stdout
    assert not (tmp_path / "store").exists()  # help never creates a store
    assert not (tmp_path / "dreamflare-data").exists()


def test_the_root_group_knows_every_command_of_each_module() -> None:
    """The root group imports a command's module when the command runs: its table of
    names must hold every command each module defines, and nothing else."""
    from importlib import import_module

    from dreamflare_store.cli import COMMAND_MODULES

    for module_name in set(COMMAND_MODULES.values()):
        module = import_module(f"dreamflare_store.cli.{module_name}")
        listed = {name for name, owner in COMMAND_MODULES.items() if owner == module_name}
        assert {command.name for command in module.COMMANDS} == listed, module_name


def test_importing_the_cli_leaves_remote_and_http_machinery_unloaded() -> None:
    code = (
        "import sys, dreamflare_store.cli\n"
        "print(sorted(m for m in ('fsspec', 'httpx', 'starlette', 'uvicorn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- init and the store option -----------------------------------------------------------


def test_init_creates_once_and_reports(tmp_path: Path) -> None:
    runner = Cli(tmp_path / "s", tmp_path)
    assert not Store.exists(tmp_path / "s")
    assert runner("init").stdout.startswith("Created a store at")
    assert Store.exists(tmp_path / "s") and not Store.exists(tmp_path)
    assert "already exists" in runner("init").stdout
    report = runner.json("init")
    assert report["created"] is False and report["store"] == str(tmp_path / "s")
    assert len(report["replicaId"]) > 0


def test_init_on_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = Cli(tmp_path / "file", tmp_path)("init", code=1)
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output


def test_commands_other_than_init_need_an_existing_store(tmp_path: Path) -> None:
    runner = Cli(tmp_path / "nowhere", tmp_path)
    result = runner("ls", "--user", "alice", code=1)
    assert "no store at" in result.stderr and "dreamflare init" in result.stderr
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    runner = Cli(tmp_path / "photos", tmp_path)
    assert "no store at" in runner("ls", "--user", "alice", code=1).stderr
    assert sorted(path.name for path in (tmp_path / "photos").iterdir()) == ["a.jpg"]


def test_store_and_user_come_from_the_environment(run: Cli, tmp_path: Path) -> None:
    png(run.cwd / "a.png")
    env = {"DREAMFLARE_STORE": str(run.store), "DREAMFLARE_USER": "alice"}
    result = run.runner.invoke(cli, ["upload", str(run.cwd / "a.png"), "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["userId"] == "alice"
    listed = run.runner.invoke(cli, ["ls", "--json"], env=env)
    assert json.loads(listed.stdout)["total"] == 1


def test_json_and_store_may_follow_the_command(run: Cli, tmp_path: Path) -> None:
    other = tmp_path / "other"
    Cli(other, tmp_path)("init")
    png(run.cwd / "a.png")
    result = run.runner.invoke(
        cli, ["upload", str(run.cwd / "a.png"), "-u", "bob", "--store", str(other), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["userId"] == "bob"
    with Store(other) as store:
        assert store.list_content("bob").total == 1
    with Store(run.store) as store:
        assert store.list_content("bob").total == 0


# -- upload ------------------------------------------------------------------------------


def test_upload_one_file_prints_its_content(run: Cli) -> None:
    png(run.cwd / "cat.png", 12, 7)
    result = run("upload", "cat.png", "--user", "alice", "-d", "a cat", "--tags", "cat, cute")
    line = result.stdout.strip()
    assert line.startswith("cnt_") and "cat.png" in line and "v1" in line
    again = upload_one(run, run.cwd / "cat.png", "--tags", "cat")
    assert again["contentId"] == line.split()[0] and again["version"] == 1  # unchanged
    content = upload_one(run, run.cwd / "cat.png", "--tags", "cat", "--new")
    assert content["filename"] == "cat.png" and content["path"] == "cat.png"
    assert content["mimeType"] == "image/png"
    assert (content["width"], content["height"]) == (12, 7)
    assert content["tags"] == ["cat"]
    with Store(run.store) as store:
        first = store.get_content(line.split()[0], "alice")
    assert first.description == "a cat" and first.tags == ("cat", "cute")


def test_upload_folder_recurses_skips_hidden_and_counts_dedup(run: Cli) -> None:
    folder = run.cwd / "renders"
    png(folder / "a.png", color=(1, 0, 0))
    png(folder / "b.png", color=(2, 0, 0))
    png(folder / "deep" / "er" / "c.png", color=(3, 0, 0))
    png(folder / "deep" / "copy-of-a.png", color=(1, 0, 0))
    (folder / ".DS_Store").write_bytes(b"junk")
    png(folder / ".cache" / "x.png", color=(4, 0, 0))
    report = run.json("upload", str(folder), "--user", "alice", "--tags", "batch", "-d", "set")
    names = sorted(item["filename"] for item in report["items"])
    assert names == ["a.png", "b.png", "c.png", "copy-of-a.png"]
    assert report["uploaded"] == 4 and report["failed"] == 0 and report["errors"] == []
    assert report["new"] == 4 and report["deduplicated"] == 1  # new contents; 1 of known bytes
    sizes = {item["filename"]: item["size"] for item in report["items"]}
    assert report["bytesStored"] == sum(sizes.values()) - sizes["a.png"]
    assert all(
        item["tags"] == ["batch"] and item["description"] == "set" for item in report["items"]
    )
    again = run("upload", str(folder), "--user", "alice", "--hidden")
    # Again, with the hidden files: the four already uploaded are unchanged.
    assert "Uploaded 6 files: 2 new, 0 new versions, 4 unchanged (0 deduplicated)" in again.stdout
    # As rsync: the two new files are listed, the four left as they were only counted.
    listed = again.stdout.splitlines()[:-1]
    assert sorted(line.rsplit("/", 1)[-1] for line in listed) == [".DS_Store", "x.png"]


def test_upload_reports_an_unreadable_file_and_uploads_the_rest(
    run: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = run.cwd / "pics"
    for index in range(5):
        png(folder / f"{index}.png", color=(index, 0, 0))
    (folder / "gone.png").symlink_to(folder / "missing-target.png")
    locked = folder / "2.png"
    real_read = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    real_read_small = replica_module.read_small

    def read_small(path: str, size: int) -> bytes:  # the batch path's reader
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return real_read_small(path, size)

    # Root reads files whatever their mode: the refusal is made here instead.
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(replica_module, "read_small", read_small)
    result = run("upload", str(folder), "--user", "alice", "-j", "3", code=1)
    assert f"{locked}: cannot read: Permission denied" in result.stderr
    assert "gone.png: no such file or folder" in result.stderr
    assert "Uploaded 4 files" in result.stdout and "2 failed" in result.stdout
    assert "Traceback" not in result.output
    with Store(run.store) as store:
        stored = {item.filename for item in store.list_content("alice").items}
    assert stored == {"0.png", "1.png", "3.png", "4.png"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_upload_reports_a_file_without_read_permission(run: Cli) -> None:
    png(run.cwd / "ok.png")
    secret = png(run.cwd / "secret.png", color=(5, 5, 5))
    secret.chmod(0)
    result = run("upload", "ok.png", "secret.png", "--user", "alice", code=1)
    assert "secret.png: cannot read" in result.stderr
    assert "Uploaded 1 file" in result.stdout


def test_upload_of_a_nonexistent_file(run: Cli) -> None:
    result = run("upload", "nope.png", "--user", "alice", code=1)
    assert result.stderr.strip() == "error: nope.png: no such file or folder"
    png(run.cwd / "ok.png")
    result = run("upload", "ok.png", "nope.png", "--user", "alice", "--json", code=1)
    report = json.loads(result.stdout)
    assert report["uploaded"] == 1 and report["failed"] == 1
    assert report["errors"] == [
        {
            "path": "nope.png",
            "error": {"code": "not_found", "message": "nope.png: no such file or folder"},
        }
    ]


def test_upload_of_an_empty_folder_and_of_a_fifo(run: Cli) -> None:
    (run.cwd / "empty").mkdir()
    assert "Uploaded 0 files" in run("upload", "empty", "--user", "alice").stdout
    os.mkfifo(run.cwd / "pipe")
    result = run("upload", "pipe", "--user", "alice", code=1)
    assert "not a regular file" in result.stderr


def test_upload_checks_shared_arguments_before_reading_files(run: Cli) -> None:
    png(run.cwd / "a.png")
    result = run("upload", "a.png", "--user", "alice", "--tags", "a" * 65, code=1)
    assert "longer than 64" in result.stderr
    result = run("upload", "a.png", "--user", "alice", "--content-id", "nope", code=1)
    assert "not a valid content id" in result.stderr
    result = run("upload", "a.png", "--user", "", code=1)
    assert "userId must not be empty" in result.stderr
    with Store(run.store) as store:
        assert store.get_storage_usage("alice").content_count == 0


def test_upload_new_version_with_content_id(run: Cli) -> None:
    first = upload_one(run, png(run.cwd / "cat.png", 4, 4), "--tags", "cat")
    png(run.cwd / "cat-v2.png", 16, 9, color=(200, 0, 0))
    second = upload_one(run, run.cwd / "cat-v2.png", "--content-id", first["contentId"])
    assert second["contentId"] == first["contentId"]
    assert second["version"] == 2 and (second["width"], second["height"]) == (16, 9)
    assert second["filename"] == "cat.png"  # a new version keeps the name, as the API does
    assert second["tags"] == ["cat"]
    png(run.cwd / "other.png")
    result = run(
        "upload", "cat.png", "other.png", "-u", "alice", "--content-id", first["contentId"], code=2
    )
    assert "--content-id takes exactly one file" in result.stderr
    result = run("upload", "cat.png", "--user", "bob", "--content-id", first["contentId"], code=1)
    assert "not found" in result.stderr


def test_upload_in_parallel_stores_every_file(run: Cli) -> None:
    folder = run.cwd / "many"
    for index in range(40):
        (folder / f"d{index % 4}").mkdir(parents=True, exist_ok=True)
        (folder / f"d{index % 4}" / f"{index}.bin").write_bytes(os.urandom(100 + index))
    (folder / "big.bin").write_bytes(os.urandom(SMALL_FILE + 12345))
    report = run.json("upload", str(folder), "--user", "alice", "--jobs", "8")
    assert report["uploaded"] == 41 and report["new"] == 41
    with Store(run.store) as store:
        assert store.list_content("alice", limit=100).total == 41
        big = next(item for item in report["items"] if item["filename"] == "big.bin")
        assert store.read_content(big["contentId"], "alice") == (folder / "big.bin").read_bytes()
        assert store.verify() == []


def test_upload_quiet_prints_only_the_summary(run: Cli) -> None:
    png(run.cwd / "d" / "a.png")
    out = run("upload", "d", "--user", "alice", "-q").stdout
    assert out.startswith("Uploaded 1 file: 1 new, 0 new versions, 0 unchanged (0 deduplicated)")
    assert "cnt_" not in out


# -- get, ls, update, versions, rm -------------------------------------------------------


def test_get_shows_every_field(run: Cli) -> None:
    content = upload_one(run, png(run.cwd / "cat.png", 30, 20), "-d", "a cat", "-t", "x,y")
    out = run("get", content["contentId"], "--user", "alice").stdout
    for text in (content["contentId"], "cat.png", "image/png (30x20)", "a cat", "x, y", "alice"):
        assert text in out
    assert "(just now)" in out
    assert run.json("get", content["contentId"], "-u", "alice") == {
        **content,
        "updatedAt": content["updatedAt"],
    }


def test_unknown_and_malformed_ids(run: Cli) -> None:
    result = run("get", MISSING_ID, "--user", "alice", code=1)
    assert result.stderr == f"error: content {MISSING_ID} not found\n"
    assert result.stdout == ""
    result = run("get", "cnt_nope", "--user", "alice", code=1)
    assert "not a valid content id" in result.stderr
    result = run("--json", "get", MISSING_ID, "--user", "alice", code=1)
    assert json.loads(result.stderr) == {
        "error": {"code": "not_found", "message": f"content {MISSING_ID} not found"}
    }
    for command in (("rm",), ("versions",), ("download",), ("update", "-t", "x")):
        result = run(command[0], MISSING_ID, *command[1:], "--user", "alice", code=1)
        assert "not found" in result.stderr


def test_missing_user_is_a_usage_error(run: Cli) -> None:
    for command in (["ls"], ["get", MISSING_ID], ["usage", "storage"], ["key", "list"]):
        result = run(*command, code=2)
        assert "Missing option '--user'" in result.stderr
        assert "DREAMFLARE_USER" in result.stderr


def test_ls_pages_a_table(run: Cli) -> None:
    for index in range(3):
        upload_one(run, png(run.cwd / f"{index}.png", color=(index, 1, 1)), "-t", f"t{index}")
    out = run("ls", "--user", "alice", "--limit", "2").stdout
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "FILENAME", "TYPE", "SIZE", "VER", "TAGS", "UPDATED"]
    assert "2.png" in lines[1] and "1.png" in lines[2]  # newest first
    assert "1-2 of 3; next: --offset 2" in out
    page = run.json("ls", "--user", "alice", "--limit", "2", "--offset", "2")
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 2)
    assert [item["filename"] for item in page["items"]] == ["0.png"]
    assert run("ls", "--user", "bob").stdout.strip() == "No contents."
    assert "No contents past 10" in run("ls", "--user", "alice", "--offset", "10").stdout
    assert "limit must be between 1 and 1000" in run("ls", "-u", "alice", "-n", "0", code=1).stderr
    assert "Invalid value" in run("ls", "-u", "alice", "-n", "many", code=2).stderr


def test_update_and_versions_show_the_history(run: Cli) -> None:
    content = upload_one(run, png(run.cwd / "cat.png"), "-t", "cat")
    cid = content["contentId"]
    out = run("update", cid, "--user", "alice", "--tags", "cat,cute", "-d", "sleepy").stdout
    assert "Updated" in out and "version 2" in out
    updated = run.json("update", cid, "--user", "alice", "--tags", "best")
    assert updated["version"] == 3 and updated["tags"] == ["best"]
    assert updated["description"] == "sleepy"
    result = run("update", cid, "--user", "alice", code=1)
    assert "give a description or tags" in result.stderr
    history = run("versions", cid, "--user", "alice").stdout.splitlines()
    assert len(history) == 3
    assert history[0].startswith("v1") and "created:" in history[0] and "image/png" in history[0]
    assert "description: sleepy" in history[1] and "tags: cat, cute" in history[1]
    assert history[2].startswith("v3") and "tags: best" in history[2]
    items = run.json("versions", cid, "--user", "alice")["items"]
    assert [item["version"] for item in items] == [1, 2, 3]
    assert items[1]["changes"] == ["description", "tags"]


def test_rm_deletes(run: Cli) -> None:
    cid = upload_one(run, png(run.cwd / "a.png"))["contentId"]
    assert run("rm", cid, "--user", "bob", code=1).stderr == f"error: content {cid} not found\n"
    assert run.json("rm", cid, "--user", "alice") == {"deleted": cid}
    assert "not found" in run("get", cid, "--user", "alice", code=1).stderr
    assert "not found" in run("rm", cid, "--user", "alice", code=1).stderr
    cid = upload_one(run, png(run.cwd / "b.png"))["contentId"]
    assert run("rm", cid, "--user", "alice").stdout == f"Deleted {cid}\n"


# -- download ----------------------------------------------------------------------------


def test_download_writes_the_bytes_and_refuses_to_overwrite(run: Cli) -> None:
    source = png(run.cwd / "src" / "cat.png", 5, 5)
    cid = upload_one(run, source)["contentId"]
    out = run("download", cid, "--user", "alice").stdout
    assert out == "Wrote cat.png (" + cli_format.human_size(source.stat().st_size) + ")\n"
    assert (run.cwd / "cat.png").read_bytes() == source.read_bytes()
    (run.cwd / "cat.png").write_bytes(b"mine")
    result = run("download", cid, "--user", "alice", code=1)
    assert "cat.png already exists (use --force to overwrite)" in result.stderr
    assert (run.cwd / "cat.png").read_bytes() == b"mine"
    run("download", cid, "--user", "alice", "--force")
    assert (run.cwd / "cat.png").read_bytes() == source.read_bytes()
    assert sorted(path.name for path in run.cwd.iterdir()) == ["cat.png", "src"]  # no temp left


def test_download_versions_folders_and_stdout(run: Cli) -> None:
    v1 = png(run.cwd / "v1.png", 3, 3)
    cid = upload_one(run, v1)["contentId"]
    v2 = png(run.cwd / "v2.png", 9, 9, color=(1, 2, 3))
    upload_one(run, v2, "--content-id", cid)
    report = run.json("download", cid, "-u", "alice", "--version", "1", "-o", "old.png")
    assert report == {
        "contentId": cid,
        "version": 1,
        "path": "old.png",
        "size": v1.stat().st_size,
    }
    assert (run.cwd / "old.png").read_bytes() == v1.read_bytes()
    (run.cwd / "out").mkdir()
    run("download", cid, "-u", "alice", "-o", "out")
    assert (run.cwd / "out" / "v1.png").read_bytes() == v2.read_bytes()  # name kept, bytes new
    result = run("download", cid, "-u", "alice", "-o", "-")
    assert result.stdout_bytes == v2.read_bytes()
    result = run("download", cid, "-u", "alice", "--version", "7", "-o", "x.png", code=1)
    assert "has no version 7" in result.stderr
    assert not (run.cwd / "x.png").exists()
    assert "Invalid value" in run("download", cid, "-u", "alice", "--version", "0", code=2).stderr


def test_download_of_corrupt_bytes_leaves_no_file(run: Cli) -> None:
    source = run.cwd / "data.bin"
    source.write_bytes(os.urandom(300_000))
    content = upload_one(run, source)
    with Store(run.store) as store:
        blob = store.replica.blobs.path(content["hash"])
    blob.chmod(0o644)
    corrupt = bytearray(blob.read_bytes())
    corrupt[-1] ^= 0xFF
    blob.write_bytes(bytes(corrupt))
    result = run("download", content["contentId"], "-u", "alice", "-o", "copy.bin", code=1)
    assert "corrupt" in result.stderr
    assert [path.name for path in run.cwd.iterdir()] == ["data.bin"]
    verify = run("verify", code=1)
    assert "corrupt_blob" in verify.stdout and "1 problem found" in verify.stdout
    report = run.json("verify", code=1)
    assert report["ok"] is False and report["items"][0]["kind"] == "corrupt_blob"


def test_download_into_a_missing_folder_is_one_error_line(run: Cli) -> None:
    cid = upload_one(run, png(run.cwd / "a.png"))["contentId"]
    result = run("download", cid, "-u", "alice", "-o", "no/such/dir/a.png", code=1)
    assert result.stderr == "error: no folder no/such/dir to write a.png in\n"
    (run.cwd / "plain").write_text("x")
    result = run("download", cid, "-u", "alice", "-o", "plain/a.png", code=1)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


# -- keys, collaborations, usage, analytics ----------------------------------------------


def test_key_generate_list_revoke(run: Cli) -> None:
    out = run("key", "generate", "--user", "alice", "-d", "farm").stdout
    secret = next(word for word in out.split() if word.startswith("dfk_"))
    assert out.count(secret) == 1 and "shown only now" in out
    new = run.json("key", "generate", "--user", "alice")
    assert new["apiKey"].startswith("dfk_") and len(new["apiKey"]) >= 32
    with Store(run.store) as store:
        assert store.authenticate(secret) == "alice"
        assert store.authenticate(new["apiKey"]) == "alice"
    keys = run.json("key", "list", "--user", "alice")["items"]
    assert len(keys) == 2 and all("apiKey" not in item for item in keys)
    listed = run("key", "list", "--user", "alice").stdout
    assert "farm" in listed and "active" in listed and secret not in listed
    assert run.json("key", "revoke", new["keyId"], "--user", "alice") == {"revoked": new["keyId"]}
    again = run("key", "revoke", new["keyId"], "--user", "alice", code=1).stderr
    assert "already revoked" in again  # as `key list` shows it, not "not found"
    assert "not found" in run("key", "revoke", new["keyId"], "--user", "bob", code=1).stderr
    assert "revoked" in run("key", "list", "--user", "alice").stdout
    assert run("key", "list", "--user", "bob").stdout == "No API keys.\n"


def test_collaborations_and_permissions(run: Cli) -> None:
    cid = upload_one(run, png(run.cwd / "a.png"))["contentId"]
    out = run("collab", "create", "-u", "alice", "--content-id", cid, "--collaborator", "bob")
    assert f"Shared {cid} with bob (read)" in out.stdout
    shared = run.json("collab", "list", "--user", "bob")["items"]
    assert len(shared) == 1 and shared[0]["permissions"] == "read"
    col = shared[0]["collaborationId"]
    assert "bob" in run("collab", "list", "--user", "alice").stdout
    assert run("collab", "list", "--user", "carol").stdout == "No collaborations.\n"
    # bob may read, not change; carol may not even see it.
    assert run.json("get", cid, "--user", "bob")["contentId"] == cid
    result = run("update", cid, "--user", "bob", "-t", "x", code=1)
    assert "may not change" in result.stderr
    assert "not found" in run("get", cid, "--user", "carol", code=1).stderr
    result = run("collab", "update", col, "--user", "bob", "--permissions", "write", code=1)
    assert "only the content's owner" in result.stderr
    result = run("collab", "update", col, "--user", "alice", "--permissions", "admin", code=2)
    assert "'admin' is not one of 'read', 'write'" in result.stderr
    updated = run.json("collab", "update", col, "--user", "alice", "--permissions", "write")
    assert updated["permissions"] == "write"
    assert run.json("update", cid, "--user", "bob", "-t", "x")["tags"] == ["x"]
    result = run(
        "collab", "create", "-u", "alice", "--content-id", cid, "--collaborator", "bob", code=1
    )
    assert "already collaborates" in result.stderr
    assert run.json("collab", "rm", col, "--user", "bob") == {"deleted": col}
    assert "not found" in run("collab", "rm", col, "--user", "alice", code=1).stderr
    assert "not found" in run("get", cid, "--user", "bob", code=1).stderr


def test_usage_and_analytics(run: Cli) -> None:
    source = png(run.cwd / "a.png")
    cid = upload_one(run, source)["contentId"]
    run("get", cid, "-u", "alice")
    run("download", cid, "-u", "alice", "-o", "-")
    storage = run.json("usage", "storage", "--user", "alice")
    assert storage["contentCount"] == 1 and storage["bytes"] == source.stat().st_size
    out = run("usage", "storage", "--user", "alice").stdout
    assert "contents" in out and "quota             none" in out
    assert "current versions  77 B (logical size" in out and "stored            77 B (every" in out
    api = run.json("usage", "api", "--user", "alice")
    assert api["byOperation"]["upload"]["calls"] == 1
    assert api["byOperation"]["open_content"]["bytesOut"] == source.stat().st_size
    out = run("usage", "api", "--user", "alice").stdout
    assert "OPERATION" in out and "upload" in out
    stats = run.json("analytics", "--user", "alice")
    assert (stats["views"], stats["downloads"]) == (1, 1)
    assert stats["topContent"][0]["contentId"] == cid
    one = run.json("analytics", "--user", "alice", "--content-id", cid)
    assert one["contentId"] == cid and "topContent" not in one
    out = run("analytics", "--user", "alice").stdout
    assert "MOST VIEWED" in out and cid in out
    run("collab", "create", "-u", "alice", "--content-id", cid, "--collaborator", "bob")
    result = run("analytics", "--user", "bob", "--content-id", cid, code=1)
    assert "may not manage" in result.stderr


# -- maintenance and sync ----------------------------------------------------------------


def test_verify_and_gc(run: Cli) -> None:
    assert run("verify").stdout.endswith("No problems found.\n")
    assert run.json("verify") == {
        "ok": True, "items": [], "blobsChecked": 0, "bytesChecked": 0, "remoteOnly": 0,
        "contents": 0, "versions": 0, "ops": 0,
    }  # fmt: skip
    cid = upload_one(run, png(run.cwd / "a.png"))["contentId"]
    run("rm", cid, "-u", "alice")
    assert run.json("gc") == {
        "blobsRemoved": 0, "bytesFreed": 0, "tempFilesRemoved": 0, "thumbnailsRemoved": 0,
        "blobsKeptYoung": 1, "dryRun": False, "catalogBytesReturned": 0,
    }  # fmt: skip
    out = run("gc", "--min-age", "0").stdout
    assert out.startswith("Removed 1 unreferenced files")
    assert run("gc", "--min-age", "-1", code=2).exit_code == 2


def test_gc_compact_gives_the_room_of_removed_small_files_back(run: Cli) -> None:
    # Small files are rows of the catalog: gc frees their pages, --compact returns them.
    ids = []
    for index in range(20):
        source = run.cwd / f"f{index}.bin"
        source.write_bytes(os.urandom(100_000))
        ids.append(upload_one(run, source)["contentId"])
    catalog = run.store / "catalog.db"
    for cid in ids[1:]:
        run("rm", cid, "-u", "alice")
    run("gc", "--min-age", "0")

    def size() -> int:
        wal = catalog.with_name("catalog.db-wal")
        return catalog.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    before = size()
    report = run.json("gc", "--min-age", "0", "--compact")
    assert report["blobsRemoved"] == 0 and report["catalogBytesReturned"] > 15 * 100_000
    assert size() < before - 15 * 100_000
    out = run("gc", "--compact").stdout
    assert "Compacting the catalog gave" in out
    assert run("get", ids[0], "-u", "alice").exit_code == 0
    assert run("verify").stdout.endswith("No problems found.\n")


def test_remote_option_values_are_parsed() -> None:
    from dreamflare_store.cli.sync import _parse_option

    assert _parse_option("anon=true") == ("anon", True)
    assert _parse_option("endpoint_url=http://127.0.0.1:9000") == (
        "endpoint_url",
        "http://127.0.0.1:9000",
    )
    assert _parse_option('client_kwargs={"region_name": "x"}') == (
        "client_kwargs",
        {"region_name": "x"},
    )
    with pytest.raises(click.BadParameter):
        _parse_option("novalue")


def test_remote_add_rejects_a_bad_option(run: Cli) -> None:
    result = run("remote", "add", "origin", "/tmp/x", "--option", "oops", code=2)
    assert "is not KEY=VALUE" in result.stderr


def test_push_and_pull_through_a_folder_remote(run: Cli, tmp_path: Path) -> None:
    """The sync commands are thin wrappers; sync itself is tested in its own suite."""
    cid = upload_one(run, png(run.cwd / "a.png"))["contentId"]
    folder = str(tmp_path / "remote")
    url = f"file://{folder}"  # as saved: local paths become absolute file URLs
    assert run.json("remote", "add", "origin", folder) == {"remote": "origin", "url": url}
    pushed = run.json("push")
    assert pushed["opsSent"] == 1 and pushed["blobsSent"] == 1
    other = Cli(tmp_path / "other", run.cwd)
    other("init")
    other("remote", "add", "origin", folder)
    out = other("pull", "--blobs", "eager").stdout
    # The remote's URL, and only the direction the command moved.
    assert out.startswith(f"origin ({url}): received 1 change and 1 file")
    assert "sent" not in out
    assert other.json("get", cid, "--user", "alice")["contentId"] == cid
    assert "nothing new" in other("sync", "origin").stdout
    assert "no remote named 'elsewhere'" in other("push", "elsewhere", code=1).stderr


def test_serve_refuses_a_folder_that_is_not_a_store(tmp_path: Path) -> None:
    # serve makes a store in a new or empty folder (the README's first command relies on
    # it), but never in a folder that holds other files: that is a mistyped --store.
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    result = Cli(busy, tmp_path)("serve", "--port", "0", code=1)
    assert "no store at" in result.stderr
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]


# -- formatting and progress -------------------------------------------------------------


def test_human_sizes_and_times() -> None:
    assert cli_format.human_size(0) == "0 B"
    assert cli_format.human_size(1023) == "1023 B"
    assert cli_format.human_size(1536) == "1.5 KiB"
    assert cli_format.human_size(5 * 2**20) == "5.0 MiB"
    assert cli_format.human_size(3 * 2**40) == "3.0 TiB"
    now = cli_format.parse_time("2026-11-28T12:00:00.000Z").timestamp()
    assert cli_format.relative_time("2026-11-28T11:59:50.000Z", now) == "just now"
    assert cli_format.relative_time("2026-11-28T11:55:00.000Z", now) == "5 min ago"
    assert cli_format.relative_time("2026-11-28T09:00:00.000Z", now) == "3 h ago"
    assert cli_format.relative_time("2026-11-26T12:00:00.000Z", now) == "2 days ago"
    assert cli_format.relative_time("2026-11-01T08:30:00.000Z", now) == "2026-11-01 08:30"
    assert cli_format.relative_time(None, now) == "-"
    assert (
        cli_format.full_time("2026-11-28T11:55:00.000Z", now)
        == "2026-11-28 11:55:00 UTC (5 min ago)"
    )


def test_table_aligns_and_cuts() -> None:
    text = cli_format.table(("A", "NUM"), [("x", 5), ("longer", 123), ("y" * 60, 1)], right=[1])
    lines = text.splitlines()
    assert lines[0] == "A" + " " * 39 + "  NUM"
    assert lines[1].endswith("    5") and lines[2].endswith("  123")
    assert "…" in lines[3] and len(lines[3]) == len(lines[0])


def test_progress_bar_draws_files_and_bytes_only_when_enabled() -> None:
    scripted = State(click.Context(cli), "unused", as_json=True)
    assert type(progress.progress_bar(scripted)) is progress.NullBar
    stream = io.StringIO()
    bar = progress.Bar(stream, delay=0.0)
    bar.start("Uploading", 4, 4 * 2**20)
    bar.advance(files=1, nbytes=2**20)
    bar.advance(files=1, nbytes=2**20)
    drawn = stream.getvalue()
    assert "Uploading" in drawn and "2/4 files  2.0 MiB/4.0 MiB" in drawn
    assert " 50%" in drawn
    bar.finish()
    assert stream.getvalue().endswith("\n")  # the last line stays, the cursor moves on
    quiet = io.StringIO()
    slow = progress.Bar(quiet, delay=60.0)
    slow.start("Uploading", 1, 1)
    slow.advance(files=1, nbytes=1)
    slow.finish()
    assert quiet.getvalue() == ""  # quick work draws nothing


def test_folder_upload_draws_a_bar_on_a_terminal(run: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    for index in range(3):
        png(run.cwd / "d" / f"{index}.png", color=(index, 2, 2))
    monkeypatch.setattr(progress, "show_progress", lambda state: True)  # a terminal
    monkeypatch.setattr(progress, "DELAY", 0.0)
    result = run("upload", "d", "--user", "alice", "-q")
    assert "Uploading" in result.stderr and "3/3 files" in result.stderr
    assert result.stdout.startswith("Uploaded 3 files: 3 new, 0 new versions, 0 unchanged")


def test_collect_lists_each_file_once(tmp_path: Path) -> None:
    png(tmp_path / "d" / "a.png")
    png(tmp_path / "d" / "b" / "c.png")
    items, failures = cli_upload.collect([tmp_path / "d", tmp_path / "d" / "a.png", tmp_path / "x"])
    assert [os.path.basename(item.path) for item in items] == ["a.png", "c.png"]
    assert [str(outcome.error) for outcome in failures] == [
        f"{tmp_path / 'x'}: no such file or folder"
    ]


# -- the installed executable ------------------------------------------------------------


def dreamflare_executable() -> Path:
    path = Path(sys.executable).parent / "dreamflare"
    if not path.exists():
        pytest.skip("the dreamflare executable is not installed next to this Python")
    return path


def sh(
    *args: str, cwd: Path, env: dict[str, str], code: int = 0
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(dreamflare_executable()), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == code, (args, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done


@pytest.fixture
def shell_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DREAMFLARE_")}
    env["DREAMFLARE_STORE"] = str(tmp_path / "store")
    return env


def test_executable_session_with_json(tmp_path: Path, shell_env: dict[str, str]) -> None:
    folder = tmp_path / "images"
    for index in range(6):
        png(folder / f"{index}.png", 10 + index, 10, color=(index, 0, 0))
    sh("init", cwd=tmp_path, env=shell_env)
    report = json.loads(
        sh(
            "upload",
            str(folder),
            "--user",
            "alice",
            "--tags",
            "set",
            "--json",
            cwd=tmp_path,
            env=shell_env,
        ).stdout
    )
    assert report["uploaded"] == 6 and report["new"] == 6
    page = json.loads(sh("--json", "ls", "--user", "alice", cwd=tmp_path, env=shell_env).stdout)
    assert page["total"] == 6 and {item["tags"][0] for item in page["items"]} == {"set"}
    cid = page["items"][0]["contentId"]
    shell_env["DREAMFLARE_USER"] = "alice"
    updated = json.loads(
        sh("update", cid, "-t", "best", "--json", cwd=tmp_path, env=shell_env).stdout
    )
    assert updated["version"] == 2
    history = json.loads(sh("versions", cid, "--json", cwd=tmp_path, env=shell_env).stdout)
    assert [item["version"] for item in history["items"]] == [1, 2]
    sh("download", cid, "-o", "copy.png", cwd=tmp_path, env=shell_env)
    assert (tmp_path / "copy.png").read_bytes() == (
        folder / page["items"][0]["filename"]
    ).read_bytes()
    usage = json.loads(sh("usage", "storage", "--json", cwd=tmp_path, env=shell_env).stdout)
    assert usage["contentCount"] == 6
    verified = sh("verify", cwd=tmp_path, env=shell_env).stdout
    assert verified.startswith("Checked 6 files") and verified.endswith("No problems found.\n")


def test_executable_errors_and_exit_codes(tmp_path: Path, shell_env: dict[str, str]) -> None:
    done = sh("ls", "--user", "alice", cwd=tmp_path, env=shell_env, code=1)
    assert done.stderr.startswith("error: no store at") and done.stderr.count("\n") == 1
    sh("init", cwd=tmp_path, env=shell_env)
    done = sh("get", MISSING_ID, "--user", "alice", cwd=tmp_path, env=shell_env, code=1)
    assert done.stderr == f"error: content {MISSING_ID} not found\n"
    done = sh("--json", "get", MISSING_ID, "--user", "alice", cwd=tmp_path, env=shell_env, code=1)
    assert json.loads(done.stderr)["error"]["code"] == "not_found"
    done = sh("get", MISSING_ID, cwd=tmp_path, env=shell_env, code=2)
    assert "Missing option '--user'" in done.stderr
    sh("no-such-command", cwd=tmp_path, env=shell_env, code=2)
    help_env = {**shell_env, "DREAMFLARE_STORE": str(tmp_path / "never")}
    assert "upload" in sh("--help", cwd=tmp_path, env=help_env).stdout
    assert not (tmp_path / "never").exists()


def modules_loaded_by(*args: str, cwd: Path, env: dict[str, str]) -> set[str]:
    """The modules the ``dreamflare`` executable had imported when it exited: it runs as
    installed, and a hook prints ``sys.modules`` at exit (an import by ``import_module``,
    as the root group imports its commands, is seen too)."""
    script = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: sys.stderr.write('\\nMODULES ' + ' '.join(sys.modules)))\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(dreamflare_executable()), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(done.stderr.rsplit("MODULES ", 1)[1].split())


def test_executable_imports_no_remote_or_http_machinery(
    tmp_path: Path, shell_env: dict[str, str]
) -> None:
    """Start-up is part of speed (DESIGN.md): a one-file upload must not pay for fsspec
    (~135 ms) or the HTTP stack. Checked by what is imported, which does not flake."""
    sh("init", cwd=tmp_path, env=shell_env)
    png(tmp_path / "a.png")
    imported = modules_loaded_by("upload", "a.png", "--user", "alice", cwd=tmp_path, env=shell_env)
    assert "dreamflare_store.store" in imported
    heavy = {"fsspec", "httpx", "uvicorn", "starlette", "dreamflare_store.sync"}
    assert not heavy & imported


def test_ls_imports_only_what_listing_needs(tmp_path: Path, shell_env: dict[str, str]) -> None:
    """`dreamflare ls` is the quick command people type most: it must not import the
    remote, HTTP or imaging stacks, nor the upload, search, keys or thumbnail parts of the
    store (the benchmark `benchmarks.startup` measures what that buys)."""
    sh("init", cwd=tmp_path, env=shell_env)
    png(tmp_path / "a.png")
    sh("upload", "a.png", "--user", "alice", cwd=tmp_path, env=shell_env)
    imported = modules_loaded_by("ls", "--user", "alice", cwd=tmp_path, env=shell_env)
    assert {"dreamflare_store.store", "dreamflare_store.cli.content"} <= imported
    heavy = {"fsspec", "starlette", "uvicorn", "httpx", "PIL", "av", "concurrent.futures"}
    parts = {
        "dreamflare_store.sync",
        "dreamflare_store.contents",
        "dreamflare_store.genmeta",
        "dreamflare_store.finding",
        "dreamflare_store.keys",
        "dreamflare_store.previews",
        "dreamflare_store.records.outcomes",
        "dreamflare_store.cli.admin",
        "dreamflare_store.cli.sync",
    }
    assert not (heavy | parts) & imported


def test_executable_serve_makes_a_new_store_and_serves_it(tmp_path: Path) -> None:
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "DREAMFLARE_USER": "alice"}
    env.pop("DREAMFLARE_STORE", None)
    server = subprocess.Popen(
        [str(dreamflare_executable()), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            if "serving" in line and "http://127.0.0.1:" in line:
                url = line.split(" at ", 1)[1].split()[0]
        assert url is not None, "serve printed no address"
        assert (tmp_path / "dreamflare-data" / "catalog.db").is_file()
        while True:  # the address is printed just before uvicorn binds it
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=10) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(20)
        if server.stdout is not None:
            server.stdout.close()
