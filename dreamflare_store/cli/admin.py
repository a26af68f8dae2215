"""The commands that look after a store: init, serve (over HTTP), verify, gc, thumbnails,
backup and restore.

``serve`` imports the HTTP machinery (uvicorn, FastAPI) inside the command, so other
commands start fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..errors import InvalidArgument
from ..records.outcomes import BackupReport
from . import format as fmt
from .context import State, store_command, user_option
from .exit_codes import fail

# -- the store ------------------------------------------------------------------------


@store_command()
def init(state: State) -> None:
    """Create a store (nothing changes if one is already there).

    \b
    Example:
      dreamflare --store ./dreamflare-data init
    """
    from ..store import Store

    path = Path(state.store_path)
    created = not Store.exists(path)
    with Store(path) as store:
        replica = store.replica_id
    if state.as_json:
        state.emit({"store": str(path), "created": created, "replicaId": replica})
    elif created:
        click.echo(f"Created a store at {path}")
    else:
        click.echo(f"A store already exists at {path}")


@store_command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--user", "-u", "user", metavar="USER", envvar="DREAMFLARE_USER", show_envvar=True,
    help="Who gets the first API key (default: the login name).",
)  # fmt: skip
@click.option(
    "--warm-thumbnails", is_flag=True, help="Make each upload's thumbnail in the background."
)
def serve(state: State, host: str, port: int, user: str | None, warm_thumbnails: bool) -> None:
    """Serve the store over HTTP, with the gallery at /.

    Clients (and the gallery) authenticate with API keys. On first run (on 127.0.0.1)
    USER gets a key, printed once with ready curl lines; make keys for others with
    `dreamflare key generate --user NAME`. Any address but loopback is reachable from
    other machines: put the server behind TLS there (a reverse proxy).

    \b
    Example:
      dreamflare serve --user alice --port 8000
      curl -H "Authorization: Bearer dfk_..." "http://127.0.0.1:8000/content/list?userId=alice"
    """
    _create_if_new(state)
    from .serve import serve as run_server

    try:
        run_server(state.store_path, host, port, user=user, warm_thumbnails=warm_thumbnails)
    except ImportError as exc:  # the http extra is not installed: its message says how
        fail(InvalidArgument(str(exc)))


def _create_if_new(state: State) -> None:
    """``serve`` is the first thing a new user runs: it makes the store when its folder is
    new or empty. A folder that holds other files is still refused (a mistyped --store)."""
    from ..store import Store

    path = Path(state.store_path)
    if Store.exists(path):
        return
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        state.require_store()  # raises NotFound with the usual hint
    Store(path).close()
    click.echo(f"Created a store at {path}", err=True)


# -- maintenance ----------------------------------------------------------------------


@store_command()
@click.option(
    "--repair",
    is_flag=True,
    help="Fetch a good copy of every missing or corrupt file from the configured remotes.",
)
@click.option("--full", is_flag=True, help="Run SQLite's full integrity check (slower).")
def verify(state: State, repair: bool, full: bool) -> None:
    """Re-hash every file and check the catalog; say what was checked.

    Files found corrupt are moved to the store's bad/ folder. With --repair, good
    copies come from the remotes; what could not be repaired is listed. Exits 1 when a
    problem is found (or, with --repair, remains). Blobs kept only on a remote (pulled
    with --blobs lazy or none) cannot be hashed here: they are counted, not checked.

    \b
    Example:
      dreamflare verify
      dreamflare verify --repair --full
      dreamflare verify --json | jq .blobsChecked
    """  # fmt: skip
    report = state.store.verify_report(repair=repair, full=full)
    problems = report.problems
    if state.as_json:
        state.emit(report)
    else:
        if problems:
            rows = [(item.kind, item.message) for item in problems]
            click.echo(fmt.table(("PROBLEM", "DETAIL"), rows))
            click.echo()
        click.echo(fmt.verify_text(report))
    if problems:
        click.get_current_context().exit(1)


@store_command()
@click.option(
    "--min-age", type=click.FloatRange(min=0), default=3600.0, show_default=True,
    metavar="SECONDS", help="Leave files younger than this (uploads in flight).",
)  # fmt: skip
@click.option("--dry-run", "-n", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option(
    "--compact", is_flag=True,
    help="Then give the catalog's free space back to the disk (rewrites the catalog).",
)  # fmt: skip
def gc(state: State, min_age: float, dry_run: bool, compact: bool) -> None:
    """Remove files no version needs, and leftovers of crashes.

    Files younger than --min-age are kept (an upload may be about to use them) and
    counted; run with --min-age 0 when nothing else uses the store. Small files live
    inside the catalog: removing them frees room that later uploads reuse, and
    --compact gives that room back to the disk.

    \b
    Examples:
      dreamflare gc --dry-run
      dreamflare gc --min-age 0 --compact
    """
    report = state.store.gc(min_age, dry_run, compact)
    if state.as_json:
        state.emit(report)
        return
    verb = "Would remove" if dry_run else "Removed"
    line = (
        f"{verb} {report.blobs_removed:,} unreferenced files"
        f" ({fmt.human_size(report.bytes_freed)}) and"
        f" {report.temp_files_removed:,} temporary files"
        f" ({report.thumbnails_removed:,} thumbnails of files no longer kept)."
    )
    if report.blobs_kept_young:
        line += (
            f" Kept {report.blobs_kept_young:,} unreferenced files younger than"
            f" {min_age:g} s (--min-age)."
        )
    if compact and not dry_run:
        line += (
            f" Compacting the catalog gave {fmt.human_size(report.catalog_bytes_returned)}"
            " back to the disk."
        )
    click.echo(line)


@store_command()
@user_option
@click.option(
    "--out", "folder", default="renders", show_default=True, metavar="DIR",
    help="Folder to write the sample renders in.",
)  # fmt: skip
def demo(state: State, user: str, folder: str) -> None:
    """Write a few sample renders and upload them, to try the store on.

    The images are small PNGs carrying the metadata AUTOMATIC1111 (a `parameters` text)
    and ComfyUI (its `prompt` and `workflow` graphs) write, so search and the gallery have
    something to show. They land in DIR (made if needed, here ./renders) and are uploaded
    from there as `dreamflare upload DIR` would; running it again changes nothing. Makes
    the store if there is none.

    \b
    Example:
      dreamflare demo --user alice
      dreamflare ls --user alice
    """
    from ..store import Store
    from . import demo as samples

    root = Path(folder)
    written = samples.write_samples(root)
    top = os.path.basename(os.path.normpath(os.path.abspath(root)))
    results = []
    with Store(state.store_path) as store:
        for path, tags in written:
            place = f"{top}/{path.relative_to(root).as_posix()}"
            prompt = next(sample[1] for sample in samples.SAMPLES if place.endswith(sample[0]))
            (result,) = store.upload_batch([path], user, prompt, tags, paths=[place])
            if result.error is not None:
                raise result.error
            results.append(result)
    if state.as_json:
        state.emit({"items": [result.to_dict() for result in results]})
        return
    for result in results:
        assert result.content is not None
        click.echo(f"{result.content.content_id}  {result.status:9}  {result.content.path}")
    click.echo(f"{len(results)} sample renders in {root} and in the store, for {user}.")


@store_command()
@click.option(
    "--size",
    "sizes",
    type=click.IntRange(32, 1024),
    multiple=True,
    metavar="PIXELS",
    help="Thumbnail size to make (repeatable; default 256, the gallery's).",
)
def thumbnails(state: State, sizes: tuple[int, ...]) -> None:
    """Make the thumbnails a gallery will ask for, ahead of time.

    Thumbnails already made are kept; only missing ones are drawn.

    \b
    Example:
      dreamflare thumbnails --size 256 --size 1024
    """
    counts = {size: state.store.warm_thumbnails_now(size) for size in sizes or (256,)}
    if state.as_json:
        state.emit({"sizes": {str(size): count for size, count in counts.items()}})
    else:
        for size, count in counts.items():
            click.echo(f"Thumbnails of {count:,} files at {size} px are ready.")


@store_command()
@click.argument("dest", type=click.Path(path_type=Path))
def backup(state: State, dest: Path) -> None:
    """Copy the store, consistently while in use, into a new folder DEST.

    The catalog is copied by SQLite's online backup, then every file it references,
    checked against its hash; the copy is verified. Exits 1 when a problem is found.

    \b
    Example:
      dreamflare backup backups/dreamflare-2026-12-02
    """
    _report_copy(state, state.store.backup(dest))


@store_command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("dest", type=click.Path(path_type=Path))
def restore(state: State, source: Path, dest: Path) -> None:
    """Restore the backup SOURCE into a new folder DEST (checked as backup checks).

    Then use DEST as the store (--store DEST), in place of the damaged one.

    \b
    Example:
      dreamflare restore backups/dreamflare-2026-12-02 ./dreamflare-data-restored
    """
    from ..store import Store

    _report_copy(state, Store.restore(source, dest))


def _report_copy(state: State, report: BackupReport) -> None:
    if state.as_json:
        state.emit(report)
    else:
        click.echo(
            f"Copied {report.blobs:,} files ({fmt.human_size(report.bytes)}) and the catalog"
            f" to {report.path}."
        )
        for problem in report.problems:
            click.echo(f"problem: {problem.kind}: {problem.message}", err=True)
    if report.problems:
        click.get_current_context().exit(1)


COMMANDS: list[click.Command] = [init, serve, verify, gc, demo, thumbnails, backup, restore]
