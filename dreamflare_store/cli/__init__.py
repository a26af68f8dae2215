"""The ``dreamflare`` command line: every operation of the store, for people and scripts.

This package holds the root group (here) and the commands by area: ``content`` (upload,
get, download, ls, rm, update, versions), ``accounts`` (usage, analytics, key, collab),
``sync`` (remote, push, pull, sync) and ``admin`` (init, serve, verify, gc, thumbnails,
backup, restore). They share ``context`` (the lazily opened store, the common options),
``exit_codes`` (the one place errors become exit codes), ``format`` (text for people) and
``progress`` (bars). Commands
use only the public ``Store`` API. Start-up matters, so fsspec, HTTP and sync machinery
are imported only inside the commands that need them.
"""

from __future__ import annotations

import click

from . import accounts, admin, content, find, sync
from .context import DEFAULT_STORE, State
from .exit_codes import DreamflareGroup

__all__ = ["cli", "main"]

# -- the root group --------------------------------------------------------------------


@click.group(
    "dreamflare",
    cls=DreamflareGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Example session:
  export DREAMFLARE_USER=alice
  dreamflare init
  dreamflare upload ./renders --tags sunset,v2
  dreamflare ls
  dreamflare versions cnt_...
Run `dreamflare COMMAND --help` for each command's options.""",
)
@click.option(
    "--store",
    metavar="PATH",
    envvar="DREAMFLARE_STORE",
    default=DEFAULT_STORE,
    show_default=True,
    show_envvar=True,
    help="Store folder.",
)
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON, for scripts.")
@click.version_option(package_name="dreamflare-store", prog_name="dreamflare")
@click.pass_context
def cli(ctx: click.Context, store: str, as_json: bool) -> None:
    """Store, version and share AI-generated images and videos, offline first.

    A store is a folder: a SQLite catalog beside content-addressed files, deduplicated
    across users. It syncs later with any fsspec location (a folder, S3, GCS).

    Exit codes: 0 success, 1 an error (one line on stderr), 2 a usage error.
    """
    ctx.obj = State(ctx, store, as_json)


for _module in (content, find, accounts, sync, admin):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    """The ``dreamflare`` executable."""
    cli(prog_name="dreamflare")
