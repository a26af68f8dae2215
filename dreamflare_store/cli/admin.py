"""The commands that look after a store: init, serve (over HTTP), verify, gc, thumbnails,
backup and restore.

``serve`` imports the HTTP machinery (uvicorn, FastAPI) inside the command, so other
commands start fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InvalidArgument
from ..records import BackupReport
from . import format as fmt
from .context import State, store_command
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
    "--warm-thumbnails", is_flag=True, help="Make each upload's thumbnail in the background."
)
def serve(state: State, host: str, port: int, warm_thumbnails: bool) -> None:
    """Serve the store over HTTP, with the gallery at /.

    Clients authenticate with API keys from `dreamflare key generate`; the gallery
    signs in with one too.

    \b
    Example:
      dreamflare serve --port 8000
      curl -H "Authorization: Bearer dfk_..." "http://127.0.0.1:8000/content/list?userId=alice"
    """
    _create_if_new(state)
    from .serve import serve as run_server

    try:
        run_server(state.store_path, host, port, warm_thumbnails=warm_thumbnails)
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
    """Re-hash every file and check the catalog.

    Files found corrupt are moved to the store's bad/ folder. With --repair, good
    copies come from the remotes; what could not be repaired is listed. Exits 1 when a
    problem is found (or, with --repair, remains).

    \b
    Example:
      dreamflare verify
      dreamflare verify --repair --full
    """  # fmt: skip
    problems = state.store.verify(repair=repair, full=full)
    if state.as_json:
        state.emit({"ok": not problems, "items": [item.to_dict() for item in problems]})
    elif not problems:
        click.echo("No problems found.")
    else:
        rows = [(item.kind, item.message) for item in problems]
        click.echo(fmt.table(("PROBLEM", "DETAIL"), rows))
        click.echo(f"\n{len(problems):,} problem{'s' if len(problems) != 1 else ''} found.")
    if problems:
        click.get_current_context().exit(1)


@store_command()
@click.option(
    "--min-age", type=click.FloatRange(min=0), default=3600.0, show_default=True,
    metavar="SECONDS", help="Leave files younger than this (uploads in flight).",
)  # fmt: skip
def gc(state: State, min_age: float) -> None:
    """Remove files no version needs, and leftovers of crashes.

    \b
    Example:
      dreamflare gc
    """
    report = state.store.gc(min_age)
    if state.as_json:
        state.emit(report)
    else:
        click.echo(
            f"Removed {report.blobs_removed:,} unreferenced files"
            f" ({fmt.human_size(report.bytes_freed)} freed),"
            f" {report.temp_files_removed:,} temporary files and"
            f" {report.thumbnails_removed:,} thumbnails of files no longer kept."
        )


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
      dreamflare backup /mnt/backups/dreamflare-2026-12-02
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
      dreamflare restore /mnt/backups/dreamflare-2026-12-02 ./dreamflare-data-restored
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


COMMANDS: list[click.Command] = [init, serve, verify, gc, thumbnails, backup, restore]
