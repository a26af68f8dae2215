"""``dreamflare`` commands beyond content: usage, analytics, API keys, collaborations,
sync, the HTTP server, and store maintenance. ``cli.py`` adds them to the root group.

Sync and the HTTP server import their machinery (fsspec, uvicorn) inside the command, so
other commands start fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from . import cli_format as fmt
from .cli_base import CATALOG_FILE, State, fail, show_progress, store_command, user_option
from .errors import InvalidArgument
from .records import SyncReport

DEFAULT_REMOTE = "origin"


# -- usage and analytics --------------------------------------------------------------


@click.group()
def usage() -> None:
    """Storage and API usage of a user."""


@store_command(usage, "storage")
@user_option
def usage_storage(state: State, user: str) -> None:
    """Contents, versions and bytes a user keeps, against their quota.

    \b
    Example:
      dreamflare usage storage --user alice
    """
    result = state.store.get_storage_usage(user)
    if state.as_json:
        state.emit(result)
    else:
        click.echo(fmt.storage_text(result))


@store_command(usage, "api")
@user_option
def usage_api(state: State, user: str) -> None:
    """API calls a user made: totals, per operation and per day.

    \b
    Example:
      dreamflare usage api --user alice
    """
    result = state.store.get_api_usage(user)
    if state.as_json:
        state.emit(result)
    else:
        click.echo(fmt.api_usage_text(result))


@store_command()
@user_option
@click.option("--content-id", metavar="ID", help="One content (yours) instead of all.")
def analytics(state: State, user: str, content_id: str | None) -> None:
    """Views, downloads and viewers of your contents, or of one.

    \b
    Example:
      dreamflare analytics --user alice --content-id cnt_01J...
    """
    result = state.store.get_analytics(user, content_id)
    if state.as_json:
        state.emit(result)
    else:
        click.echo(fmt.analytics_text(result))


# -- API keys -------------------------------------------------------------------------


@click.group()
def key() -> None:
    """API keys for the HTTP server (`dreamflare serve`)."""


@store_command(key, "generate")
@user_option
@click.option("--description", "-d", help="What the key is for.")
def key_generate(state: State, user: str, description: str | None) -> None:
    """Make a new API key. Its secret is shown this once: copy it now.

    \b
    Example:
      dreamflare key generate --user alice --description "render farm"
    """
    new = state.store.generate_api_key(user, description)
    if state.as_json:
        state.emit(new)
        return
    click.echo(f"New API key {new.key_id} for {new.user_id}:\n")
    click.echo(f"    {new.api_key}\n")
    click.echo("This secret is shown only now; the store keeps only its hash. Copy it.")


@store_command(key, "revoke")
@click.argument("key_id", metavar="KEY_ID")
@user_option
def key_revoke(state: State, key_id: str, user: str) -> None:
    """Revoke one of your API keys; it stops working at once.

    \b
    Example:
      dreamflare key revoke key_01J... --user alice
    """
    state.store.revoke_api_key(key_id, user)
    if state.as_json:
        state.emit({"revoked": key_id})
    else:
        click.echo(f"Revoked {key_id}")


@store_command(key, "list")
@user_option
def key_list(state: State, user: str) -> None:
    """List your API keys (never their secrets), revoked ones included.

    \b
    Example:
      dreamflare key list --user alice
    """
    keys = state.store.list_api_keys(user)
    if state.as_json:
        state.emit({"items": [item.to_dict() for item in keys]})
        return
    if not keys:
        click.echo("No API keys.")
        return
    rows = [
        (
            item.key_id,
            item.description or "-",
            fmt.relative_time(item.created_at),
            fmt.relative_time(item.last_used_at) if item.last_used_at else "never",
            f"revoked {fmt.relative_time(item.revoked_at)}" if item.revoked_at else "active",
        )
        for item in keys
    ]
    click.echo(fmt.table(("KEY ID", "DESCRIPTION", "CREATED", "LAST USED", "STATUS"), rows))


# -- collaborations -------------------------------------------------------------------


@click.group()
def collab() -> None:
    """Share contents with other users, to read or to write."""


permissions_choice = click.Choice(["read", "write"])


@store_command(collab, "create")
@user_option
@click.option("--content-id", metavar="ID", required=True, help="The content to share.")
@click.option("--collaborator", metavar="USER", required=True, help="Who to share it with.")
@click.option(
    "--permissions", type=permissions_choice, default="read", show_default=True,
    help="read: see and download; write: also update and upload new versions.",
)  # fmt: skip
def collab_create(
    state: State, user: str, content_id: str, collaborator: str, permissions: str
) -> None:
    """Share a content you own with another user.

    \b
    Example:
      dreamflare collab create --user alice --content-id cnt_01J... --collaborator bob
    """
    result = state.store.create_collaboration(user, content_id, collaborator, permissions)
    if state.as_json:
        state.emit(result)
    else:
        click.echo(
            f"Shared {result.content_id} with {result.collaborator_id}"
            f" ({result.permissions}): {result.collaboration_id}"
        )


@store_command(collab, "list")
@user_option
def collab_list(state: State, user: str) -> None:
    """Collaborations on your contents, and contents shared with you.

    \b
    Example:
      dreamflare collab list --user bob
    """
    items = state.store.list_collaborations(user)
    if state.as_json:
        state.emit({"items": [item.to_dict() for item in items]})
        return
    if not items:
        click.echo("No collaborations.")
        return
    rows = [
        (
            item.collaboration_id,
            item.content_id,
            item.user_id,
            item.collaborator_id,
            item.permissions,
            fmt.relative_time(item.updated_at),
        )
        for item in items
    ]
    headers = ("ID", "CONTENT", "OWNER", "COLLABORATOR", "PERMISSIONS", "UPDATED")
    click.echo(fmt.table(headers, rows))


@store_command(collab, "update")
@click.argument("collaboration_id", metavar="ID")
@user_option
@click.option("--permissions", type=permissions_choice, required=True, help="read or write.")
def collab_update(state: State, collaboration_id: str, user: str, permissions: str) -> None:
    """Change what a collaborator may do (the content's owner only).

    \b
    Example:
      dreamflare collab update col_01J... --user alice --permissions write
    """
    result = state.store.update_collaboration(collaboration_id, user, permissions)
    if state.as_json:
        state.emit(result)
    else:
        click.echo(f"{result.collaborator_id} may now {result.permissions} {result.content_id}")


@store_command(collab, "rm")
@click.argument("collaboration_id", metavar="ID")
@user_option
def collab_rm(state: State, collaboration_id: str, user: str) -> None:
    """End a collaboration: the owner may, and the collaborator may leave.

    \b
    Example:
      dreamflare collab rm col_01J... --user bob
    """
    state.store.delete_collaboration(collaboration_id, user)
    if state.as_json:
        state.emit({"deleted": collaboration_id})
    else:
        click.echo(f"Deleted {collaboration_id}")


# -- sync -----------------------------------------------------------------------------


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


class _SyncBar:
    """The engine's sync progress (``sync.Progress``) as bars: one per phase, on stderr,
    only for people at a terminal."""

    def __init__(self, state: State) -> None:
        self._enabled = show_progress(state)
        self._bar = fmt.NullProgress()

    def start(self, label: str, files: int, nbytes: int) -> None:
        self._bar = fmt.Progress(files, nbytes, label) if self._enabled else fmt.NullProgress()

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        self._bar.advance(files, nbytes)

    def finish(self) -> None:
        self._bar.close()


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
    _sync_report(state, remote_name, state.store.push(remote_name, _SyncBar(state)))


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
    _sync_report(state, remote_name, state.store.pull(remote_name, blobs, _SyncBar(state)))


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
    _sync_report(state, remote_name, state.store.sync(remote_name, blobs, _SyncBar(state)))


@store_command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
def serve(state: State, host: str, port: int) -> None:
    """Serve the store over HTTP.

    Clients authenticate with API keys from `dreamflare key generate`.

    \b
    Example:
      dreamflare serve --port 8000
      curl -H "Authorization: Bearer dfk_..." "http://127.0.0.1:8000/content/list?userId=alice"
    """
    _create_if_new(state)
    from .serve import serve as run_server

    try:
        run_server(state.store_path, host, port)
    except ImportError as exc:  # the http extra is not installed: its message says how
        fail(InvalidArgument(str(exc)))


def _create_if_new(state: State) -> None:
    """``serve`` is the first thing a new user runs: it makes the store when its folder is
    new or empty. A folder that holds other files is still refused (a mistyped --store)."""
    path = Path(state.store_path)
    if (path / CATALOG_FILE).is_file():
        return
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        state.require_store()  # raises NotFound with the usual hint
    from .store import Store

    Store(path).close()
    click.echo(f"Created a store at {path}", err=True)


# -- maintenance ----------------------------------------------------------------------


@store_command()
def verify(state: State) -> None:
    """Re-hash every file and check the catalog.

    Exits 1 when a problem is found.

    \b
    Example:
      dreamflare verify
    """
    problems = state.store.verify()
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
            f" ({fmt.human_size(report.bytes_freed)} freed) and"
            f" {report.temp_files_removed:,} temporary files."
        )


COMMANDS: list[click.Command] = [
    usage, analytics, key, collab, remote, push, pull, sync, serve, verify, gc
]  # fmt: skip
