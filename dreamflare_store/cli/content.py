"""The content commands: upload, get, download, ls, rm, update, versions."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import Conflict, DreamflareError, NotFound
from ..records import Page
from . import format as fmt
from .context import State, store_command, user_option
from .exit_codes import fail
from .progress import progress_bar


@store_command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@user_option
@click.option("--description", "-d", help="Description for every file uploaded.")
@click.option("--tags", "-t", metavar="A,B", help="Comma-separated tags for every file.")
@click.option("--content-id", metavar="ID", help="Upload PATH as a new version of this content.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(1, 64),
    default=None,
    help="Files uploaded at once (default: 8).",
)
@click.option("--hidden", is_flag=True, help="Include hidden files and folders (names with a dot).")
@click.option(
    "--prefix", metavar="P", default=None,
    help="First part of each file's path in the store, instead of the folder's own name"
    " ('' for none).",
)  # fmt: skip
@click.option(
    "--new", "always_new", is_flag=True,
    help="Make every file a new content, even where its path already names one.",
)  # fmt: skip
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary.")
def upload(
    state: State,
    paths: tuple[str, ...],
    user: str,
    description: str | None,
    tags: str | None,
    content_id: str | None,
    jobs: int | None,
    hidden: bool,
    prefix: str | None,
    always_new: bool,
    quiet: bool,
) -> None:
    """Upload files and folders (recursively), a content per file, as rsync would.

    Each file keeps its path: a folder's own name, then the path inside it
    (renders/batch0/img.png), as `cp -r renders dest/` lays it out; --prefix chooses
    another first part. Uploading a folder again is cheap and changes only what changed:
    a file whose path already names one of your contents with the same bytes is skipped
    (unchanged; files untouched since their last upload are not even read), with other
    bytes it becomes a new version of that content. --new makes every file a new content.
    Unchanged files of a folder are counted in the summary, not listed (as rsync).
    Bytes already in the store are not stored again (deduplicated). A file that cannot be
    read is reported and the others still go in (the exit code is then 1). With --json,
    one file prints its content; folders or several files print {"items", "errors",
    counts...}.

    \b
    Examples:
      dreamflare upload ./renders --user alice --tags sunset,v2
      dreamflare upload ./renders --user alice            # again: only what changed
      dreamflare upload ./renders --user alice --prefix shoot-2/
      dreamflare upload cat-v2.png --user alice --content-id cnt_...
    """
    from .. import ids, validate
    from . import upload as batch

    validate.user_id(user)  # bad shared arguments fail once, before any file is read
    validate.description(description)
    validate.tags(tags)
    if content_id is not None:
        ids.check_id("content", content_id)
    items, failures = batch.collect(paths, include_hidden=hidden, prefix=prefix)
    single = len(paths) == 1 and not Path(paths[0]).is_dir()
    if content_id is not None and (len(items) + len(failures) != 1 or not single):
        raise click.UsageError("--content-id takes exactly one file")
    store = state.store  # opened first: a mistyped --store is the error to show
    if single and failures and failures[0].error is not None:
        fail(failures[0].error)  # one file: its error is the command's error
    began = time.perf_counter()
    if content_id is not None:
        outcomes = [batch.upload_version(store, items[0], user, description, tags, content_id)]
    else:
        outcomes = batch.upload_files(
            store, items, user, description, tags, jobs or batch.DEFAULT_JOBS,
            progress_bar(state), new=always_new, records=state.as_json or single,
        )  # fmt: skip
    summary = batch.summarize([*failures, *outcomes], time.perf_counter() - began)
    if single and summary.errors and summary.errors[0].error is not None:
        fail(summary.errors[0].error)
    for outcome in [*failures, *outcomes]:
        if outcome.error is not None:
            click.echo(f"error: {outcome.error.message}", err=True)
        elif quiet or state.as_json or (outcome.status == "unchanged" and not single):
            continue  # as rsync: the files of a folder left as they were are only counted
        elif outcome.content is not None:
            made = outcome.content
            note = {"unchanged": "  (unchanged)", "versioned": "  (new version)"}.get(
                outcome.status, "  (already stored)" if outcome.deduplicated else ""
            )
            click.echo(
                f"{made.content_id}  v{made.version}  {fmt.human_size(made.size):>10}"
                f"  {outcome.path}{note}"
            )
    if state.as_json:
        state.emit(summary.items[0] if single else summary)
    elif not (single and not quiet):
        click.echo(summary.text())
    if summary.failed:
        click.get_current_context().exit(1)


@store_command()
@click.argument("content_id", metavar="ID")
@user_option
def get(state: State, content_id: str, user: str) -> None:
    """Show one content: its file, metadata and current version.

    \b
    Example:
      dreamflare get cnt_01J... --user alice
    """
    content = state.store.get_content(content_id, user)
    if state.as_json:
        state.emit(content)
    else:
        click.echo(fmt.content_details(content))


@store_command()
@click.argument("content_ids", metavar="[ID]...", nargs=-1)
@user_option
@click.option(
    "--output",
    "-o",
    metavar="FILE|DIR",
    help="Where to write: a file, a folder (a trailing / makes it), or - for stdout"
    " (default: here). Several contents always go into a folder.",
)
@click.option("--version", "version", type=click.IntRange(min=1), help="A past version.")
@click.option("--force", "-f", is_flag=True, help="Overwrite files that exist with other bytes.")
@click.option("--all", "every", is_flag=True, help="Every one of your contents.")
@click.option("--tag", metavar="TAG", help="Your contents with this tag.")
@click.option(
    "--strip-metadata", is_flag=True,
    help="Without the embedded generation metadata (prompt, workflow, EXIF, XMP...).",
)  # fmt: skip
def download(
    state: State,
    content_ids: tuple[str, ...],
    user: str,
    output: str | None,
    version: int | None,
    force: bool,
    every: bool,
    tag: str | None,
    strip_metadata: bool,
) -> None:
    """Write contents' bytes (verified) to files.

    The bytes are checked against their hash as they are read. A file appears whole or
    not at all (written beside it, then renamed). Several contents (IDs, --all, --tag; -
    reads IDs from stdin) are laid out inside the folder by their paths (else their
    filenames), as they were uploaded; nothing is written outside it, a file already
    there with the same bytes is skipped, and one with other bytes is kept unless
    --force is given.

    \b
    Examples:
      dreamflare download cnt_01J... --user alice
      dreamflare download cnt_01J... --user alice --version 1 -o old.png
      dreamflare download cnt_01J... --user alice -o - | file -
      dreamflare download cnt_01J... --user alice --strip-metadata -o clean.png
      dreamflare download --all --user alice -o backup/
      dreamflare download --tag sunset --user alice -o sunsets/
    """
    from . import fetch

    ids = fetch.read_ids(content_ids)
    if every or tag is not None or len(ids) > 1:
        if version is not None or output == "-":
            raise click.UsageError("--version and -o - take exactly one ID")
        if ids and (every or tag is not None):
            raise click.UsageError("give IDs, or --all, or --tag")
        _download_many(state, ids, user, Path(output or "."), force, every, tag, strip_metadata)
        return
    if not ids:
        raise click.UsageError("give a content ID (or several, --all, --tag)")
    content_id = ids[0]
    if output is not None and output.endswith(("/", os.sep)) and not Path(output).exists():
        Path(output).mkdir(parents=True)  # `-o out/`: a folder, as cp and curl --create-dirs
    target = Path(output) if output not in (None, "-") else None
    if target is not None and not target.is_dir() and target.exists() and not force:
        fail(Conflict(f"{target} already exists (use --force to overwrite)", path=str(target)))
    # One call: the reader also tells the filename the bytes have (at that version).
    with state.store.open_content(content_id, user, version, strip_metadata) as reader:
        if output == "-":
            import shutil  # here, not at start-up: only downloads copy files

            shutil.copyfileobj(reader, sys.stdout.buffer, 1 << 20)
            sys.stdout.buffer.flush()
            return
        if target is None or target.is_dir():
            name = _plain_name(getattr(reader, "filename", None), content_id)
            target = target / name if target is not None else Path(name)
        if target.exists() and not force:
            fail(Conflict(f"{target} already exists (use --force to overwrite)", path=str(target)))
        if not target.parent.is_dir():
            fail(NotFound(f"no folder {target.parent} to write {target.name} in", path=str(target)))
        size = _write_atomically(reader, target, force)
    if state.as_json:
        state.emit({"contentId": content_id, "version": version, "path": str(target), "size": size})
    else:
        click.echo(f"Wrote {target} ({fmt.human_size(size)})")


def _download_many(
    state: State,
    ids: list[str],
    user: str,
    folder: Path,
    force: bool,
    every: bool,
    tag: str | None,
    strip: bool,
) -> None:
    """Several contents into ``folder``, laid out by their paths (see ``fetch``)."""
    from . import fetch

    store = state.store
    planned = fetch.lay_out(fetch.select(store, user, ids, every, tag))
    folder.mkdir(parents=True, exist_ok=True)
    bar = progress_bar(state)
    done = fetch.fetch(store, user, folder, planned, force, bar, _write_atomically, strip)
    if state.as_json:
        state.emit(done)
    else:
        for _content, _target, error in done.errors:
            click.echo(f"error: {error.message}", err=True)
        click.echo(
            f"Wrote {len(done.written):,} files ({fmt.human_size(done.nbytes)}) in {folder};"
            f" {len(done.skipped):,} already there with the same bytes;"
            f" {len(done.errors):,} failed."
        )
    if done.errors:
        click.get_current_context().exit(1)


def _plain_name(filename: str | None, fallback: str) -> str:
    """A stored filename as a name in the current folder: never a path out of it."""
    name = Path(filename or "").name
    return name if name not in ("", ".", "..") else fallback


def _write_atomically(reader: Any, target: Path, force: bool) -> int:
    """Copy into a temp file beside ``target``, fsync, then rename (or link, to refuse an
    overwrite that raced us). Returns the bytes written; leaves nothing behind on error."""
    import shutil

    temp = target.with_name(f".{target.name}.{os.urandom(4).hex()}.part")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:  # name the file the user asked for, not our temp file
        raise OSError(exc.errno, exc.strerror, str(target)) from exc
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(reader, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        if force:
            os.replace(temp, target)
        else:
            try:
                os.link(temp, target)  # atomic "create only if absent"
            except FileExistsError:
                fail(Conflict(f"{target} already exists (use --force to overwrite)"))
            except OSError:  # no hard links on this filesystem
                os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return size


@store_command(name="ls")
@user_option
@click.option("--limit", "-n", type=int, default=50, show_default=True, help="Contents per page.")
@click.option("--offset", type=int, default=0, show_default=True, help="Contents to skip.")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="TAG",
    help="Only contents with this tag (repeat: all of them).",
)
@click.option("--all", "every", is_flag=True, help="Every content, all pages at once.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the IDs, one a line.")
def list_(
    state: State,
    user: str,
    limit: int,
    offset: int,
    tags: tuple[str, ...],
    every: bool,
    quiet: bool,
) -> None:
    """List your contents, newest first, a page at a time (or --all of them).

    \b
    Examples:
      dreamflare ls --user alice --limit 20 --offset 20
      dreamflare ls --user alice --tag sunset --tag best
      ID=$(dreamflare ls --user alice -q -n 1)
      dreamflare --json ls --user alice --all | jq -r '.items[].contentId'
    """
    if every:
        from . import fetch

        found = tuple(fetch.iter_contents(state.store, user, tags))
        page = Page(found, len(found), max(len(found), 1), 0)
    else:
        page = state.store.list_content(user, limit, offset, tags=list(tags) or None)
    if state.as_json:
        state.emit(page)
        return
    if quiet:
        for item in page.items:
            click.echo(item.content_id)
        return
    if not page.items:
        click.echo("No contents." if page.total == 0 else f"No contents past {offset}.")
        return
    click.echo(fmt.content_table(page.items))
    last = page.offset + len(page.items)
    more = f"; next: --offset {last}" if last < page.total else ""
    click.echo(f"\n{page.offset + 1}-{last} of {page.total:,}{more}")


@store_command()
@click.argument("content_ids", metavar="ID...", nargs=-1, required=True)
@user_option
def rm(state: State, content_ids: tuple[str, ...], user: str) -> None:
    """Delete contents and all their versions (owner only). - reads IDs from stdin.

    Each ID is deleted on its own: one that fails is reported, the others still go (the
    exit code is then 1).

    \b
    Examples:
      dreamflare rm cnt_01J... cnt_01K... --user alice
      dreamflare --json ls --user alice --tag draft | jq -r '.items[].contentId' \\
        | dreamflare rm - --user alice
    """
    from . import fetch

    each_id(state, fetch.read_ids(content_ids), lambda cid: state.store.delete_content(cid, user))


def each_id(state: State, ids: list[str], action: Callable[[str], None]) -> None:
    """Run ``action`` on each id, reporting each failure and going on; exit 1 if any failed.

    One id is the command's own: its error is the command's, its JSON ``{"deleted": id}``;
    several print ``{"deleted": [...], "errors": [...]}``.
    """
    if len(ids) == 1:
        action(ids[0])
        if state.as_json:
            state.emit({"deleted": ids[0]})
        else:
            click.echo(f"Deleted {ids[0]}")
        return
    deleted: list[str] = []
    failed: list[tuple[str, DreamflareError]] = []
    for item in ids:
        try:
            action(item)
        except DreamflareError as exc:
            failed.append((item, exc))
            continue
        deleted.append(item)
    if state.as_json:
        errors = [{"id": item, **error.to_dict()} for item, error in failed]
        state.emit({"deleted": deleted, "errors": errors})
    else:
        for item in deleted:
            click.echo(f"Deleted {item}")
        for _, error in failed:
            click.echo(f"error: {error.message}", err=True)
    if failed:
        click.get_current_context().exit(1)


@store_command()
@click.argument("content_id", metavar="ID")
@user_option
@click.option("--description", "-d", help="New description.")
@click.option("--tags", "-t", metavar="A,B", help="New tags, replacing the old ones.")
def update(
    state: State, content_id: str, user: str, description: str | None, tags: str | None
) -> None:
    """Change a content's description and/or tags (adds a version).

    \b
    Example:
      dreamflare update cnt_01J... --user alice --tags cat,cute,best
    """
    content = state.store.update_metadata(content_id, user, description, tags)
    if state.as_json:
        state.emit(content)
    else:
        click.echo(f"Updated {content_id} to version {content.version}")
        click.echo(fmt.content_details(content))


@store_command()
@click.argument("content_id", metavar="ID")
@user_option
def versions(state: State, content_id: str, user: str) -> None:
    """Show a content's history, oldest first: who changed what, when.

    \b
    Example:
      dreamflare versions cnt_01J... --user alice
    """
    history = state.store.get_content_versions(content_id, user)
    if state.as_json:
        state.emit({"items": [item.to_dict() for item in history]})
    else:
        click.echo(fmt.version_history(history))


COMMANDS: list[click.Command] = [upload, get, download, list_, rm, update, versions]
