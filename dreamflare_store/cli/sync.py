"""The sync commands: remotes, push, pull and sync, with a bar per phase.

The sync machinery (fsspec) is imported by the store inside these commands only, so other
commands start fast.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from ..errors import Conflict
from . import format as fmt
from .context import State, store_command
from .progress import progress_bar

if TYPE_CHECKING:
    from ..records.outcomes import SyncReport

DEFAULT_REMOTE = "origin"


@click.group()
def remote() -> None:
    """Remotes to sync with: any fsspec URL (folder, s3://, gs://)."""


def shown_url(url: str) -> str:
    """A remote's URL as printed: a password or token in it (``user:secret@host``, a query
    string) is replaced by ``***``, as git does for credentials in remote URLs."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    host, slash, path = rest.partition("/")
    if "@" in host:
        user = host.rsplit("@", 1)[0].split(":", 1)[0]
        host = f"{user}:***@{host.rsplit('@', 1)[1]}"
    path, question, _ = path.partition("?")
    return f"{scheme}://{host}{slash}{path}" + ("?***" if question else "")


def _parse_option(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint="--option")
    try:
        value = json.loads(raw)  # true, 3, {"a": 1}; anything else stays a string
    except ValueError:
        value = raw
    return name, value


@store_command(remote, "add")
@click.argument("name")
@click.argument("url")
@click.option(
    "--option", "-o", "options", multiple=True, metavar="KEY=VALUE",
    help="A storage option for fsspec (repeatable); JSON values are parsed.",
)  # fmt: skip
@click.option("--force", "-f", is_flag=True, help="Replace a remote of that name.")
def remote_add(state: State, name: str, url: str, options: tuple[str, ...], force: bool) -> None:
    """Save a remote under a name (as `git remote add`: a name already saved is refused
    unless --force).

    \b
    Examples:
      dreamflare remote add origin /mnt/backup/dreamflare
      dreamflare remote add origin s3://bucket/dreamflare -o endpoint_url=http://127.0.0.1:9000
    """
    storage_options = dict(_parse_option(text) for text in options)
    known = state.store.remotes()
    if name in known and not force:
        raise Conflict(
            f"remote {name!r} exists already ({known[name]}): use --force to replace it, or"
            " another name",
            remote=name,
        )
    state.store.add_remote(name, url, **storage_options)
    saved = shown_url(state.store.remotes()[name])
    if state.as_json:
        state.emit({"remote": name, "url": saved})
    else:
        click.echo(f"{'Replaced' if name in known else 'Added'} remote {name}: {saved}")


@store_command(remote, "list")
def remote_list(state: State) -> None:
    """List the saved remotes: names and URLs (options, which may hold secrets, never).

    \b
    Example:
      dreamflare remote list
    """
    saved = state.store.remotes()
    if state.as_json:
        items = [{"remote": name, "url": shown_url(url)} for name, url in saved.items()]
        state.emit({"items": items})
    elif not saved:
        click.echo("No remotes (add one with `dreamflare remote add NAME URL`).")
    else:
        width = max(len(name) for name in saved)
        for name, url in saved.items():  # whole URLs: a table would cut long ones
            click.echo(f"{name.ljust(width)}  {shown_url(url)}")


@store_command(remote, "remove")
@click.argument("name")
def remote_remove(state: State, name: str) -> None:
    """Forget a saved remote (nothing on the remote changes).

    \b
    Example:
      dreamflare remote remove origin
    """
    state.store.remove_remote(name)
    if state.as_json:
        state.emit({"removed": name})
    else:
        click.echo(f"Removed remote {name}")


def _sync_report(
    state: State, remote_name: str, report: SyncReport, sent: bool, received: bool
) -> None:
    if state.as_json:
        state.emit(report)
        return
    url = state.store.remotes().get(remote_name)
    where = f"{remote_name} ({shown_url(url)})" if url else remote_name
    click.echo(f"{where}: {fmt.sync_text(report, sent, received)}")


remote_argument = click.argument("remote_name", metavar="[REMOTE]", default=DEFAULT_REMOTE)


@store_command()
@remote_argument
def push(state: State, remote_name: str) -> None:
    """Send this store's new changes and files to a remote.

    REMOTE is a name saved with `remote add` (default: origin) or a URL.

    \b
    Example:
      dreamflare push origin
    """
    report = state.store.push(remote_name, progress_bar(state))
    _sync_report(state, remote_name, report, sent=True, received=False)


@store_command()
@remote_argument
@click.option(
    "--blobs", type=click.Choice(["eager", "lazy", "none"]), default="lazy", show_default=True,
    help="Fetch files now (eager), on first read (lazy), or not at all.",
)  # fmt: skip
def pull(state: State, remote_name: str, blobs: str) -> None:
    """Apply other stores' changes from a remote.

    REMOTE is a name saved with `remote add` (default: origin) or a URL.

    \b
    Example:
      dreamflare pull origin --blobs eager
    """
    report = state.store.pull(remote_name, blobs, progress_bar(state))
    _sync_report(state, remote_name, report, sent=False, received=True)


@store_command()
@remote_argument
@click.option(
    "--blobs", type=click.Choice(["eager", "lazy", "none"]), default="lazy", show_default=True,
    help="While pulling: fetch files now (eager), on first read (lazy), or not at all.",
)  # fmt: skip
def sync(state: State, remote_name: str, blobs: str) -> None:
    """Pull, then push.

    REMOTE is a name saved with `remote add` (default: origin) or a URL.

    \b
    Example:
      dreamflare sync origin
    """
    report = state.store.sync(remote_name, blobs, progress_bar(state))
    _sync_report(state, remote_name, report, sent=True, received=True)


COMMANDS: list[click.Command] = [remote, push, pull, sync]
