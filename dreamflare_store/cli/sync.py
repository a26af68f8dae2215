"""The sync commands: remotes, push, pull and sync, with a bar per phase.

The sync machinery (fsspec) is imported by the store inside these commands only, so other
commands start fast.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from . import format as fmt
from .context import State, store_command
from .progress import progress_bar

if TYPE_CHECKING:
    from ..records import SyncReport

DEFAULT_REMOTE = "origin"


@click.group()
def remote() -> None:
    """Remotes to sync with: any fsspec URL (folder, s3://, gs://)."""


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
def remote_add(state: State, name: str, url: str, options: tuple[str, ...]) -> None:
    """Save a remote under a name.

    \b
    Examples:
      dreamflare remote add origin /mnt/backup/dreamflare
      dreamflare remote add origin s3://bucket/dreamflare -o endpoint_url=http://127.0.0.1:9000
    """
    storage_options = dict(_parse_option(text) for text in options)
    state.store.add_remote(name, url, **storage_options)
    if state.as_json:
        state.emit({"remote": name, "url": url})
    else:
        click.echo(f"Added remote {name}: {url}")


def _sync_report(state: State, remote_name: str, report: SyncReport) -> None:
    if state.as_json:
        state.emit(report)
        return
    click.echo(f"{remote_name}: {fmt.sync_text(report)}")


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
    _sync_report(state, remote_name, state.store.push(remote_name, progress_bar(state)))


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
    _sync_report(state, remote_name, state.store.pull(remote_name, blobs, progress_bar(state)))


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
    _sync_report(state, remote_name, state.store.sync(remote_name, blobs, progress_bar(state)))


COMMANDS: list[click.Command] = [remote, push, pull, sync]
