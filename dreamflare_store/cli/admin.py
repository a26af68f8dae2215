"""The commands that look after a store: init, serve (over HTTP), verify and gc.

``serve`` imports the HTTP machinery (uvicorn, FastAPI) inside the command, so other
commands start fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..errors import InvalidArgument
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
def serve(state: State, host: str, port: int, user: str | None) -> None:
    """Serve the store over HTTP.

    Clients authenticate with API keys. On first run (on 127.0.0.1) USER gets a key,
    printed once with ready curl lines; make keys for others with `dreamflare key
    generate --user NAME`. Any address but loopback is reachable from other machines:
    put the server behind TLS there (a reverse proxy).

    \b
    Example:
      dreamflare serve --user alice --port 8000
      curl -H "Authorization: Bearer dfk_..." "http://127.0.0.1:8000/content/list?userId=alice"
    """
    _create_if_new(state)
    from .serve import serve as run_server

    try:
        run_server(state.store_path, host, port, user=user)
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
def verify(state: State) -> None:
    """Re-hash every file and check the catalog; say what was checked.

    Exits 1 when a problem is found. Blobs kept only on a remote (pulled with --blobs lazy
    or none) cannot be hashed here: they are counted, not checked.

    \b
    Example:
      dreamflare verify
      dreamflare verify --json | jq .blobsChecked
    """
    report = state.store.verify_report()
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
def gc(state: State, min_age: float, dry_run: bool) -> None:
    """Remove files no version needs, and leftovers of crashes.

    Files younger than --min-age are kept (an upload may be about to use them) and
    counted; run with --min-age 0 when nothing else uses the store.

    \b
    Examples:
      dreamflare gc --dry-run
      dreamflare gc --min-age 0
    """
    report = state.store.gc(min_age, dry_run)
    if state.as_json:
        state.emit(report)
        return
    verb = "Would remove" if dry_run else "Removed"
    line = (
        f"{verb} {report.blobs_removed:,} unreferenced files"
        f" ({fmt.human_size(report.bytes_freed)}) and"
        f" {report.temp_files_removed:,} temporary files."
    )
    if report.blobs_kept_young:
        line += (
            f" Kept {report.blobs_kept_young:,} unreferenced files younger than"
            f" {min_age:g} s (--min-age)."
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


COMMANDS: list[click.Command] = [init, serve, verify, gc, demo]
