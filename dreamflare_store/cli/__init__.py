"""The ``dreamflare`` command line: every operation of the store, for people and scripts.

This package holds the root group (here) and the commands by area: ``content`` (upload,
get, download, ls, rm, update, versions), ``accounts`` (usage, analytics, key, collab),
``sync`` (remote, push, pull, sync) and ``admin`` (init, serve, verify, gc, thumbnails,
backup, restore). They share ``context`` (the lazily opened store, the common options),
``exit_codes`` (the one place errors become exit codes), ``format`` (text for people) and
``progress`` (bars). Commands
use only the public ``Store`` API. Start-up matters, so the root group imports only the
module of the command that runs, and fsspec, HTTP and sync machinery are imported only
inside the commands that need them.
"""

from __future__ import annotations

import gc
from importlib import import_module

import click

from .context import DEFAULT_STORE, State
from .exit_codes import DreamflareGroup

__all__ = ["cli", "main"]

# The module of each command: a command's module is imported when it runs (or when help
# lists them all), so a quick command does not pay for importing every other one.
COMMAND_MODULES = {
    **dict.fromkeys(["upload", "get", "download", "ls", "rm", "update", "versions"], "content"),
    **dict.fromkeys(["search", "facets", "favorite", "generation", "reindex"], "find"),
    **dict.fromkeys(["usage", "quota", "analytics", "key", "collab"], "accounts"),
    **dict.fromkeys(["remote", "push", "pull", "sync"], "sync"),
    **dict.fromkeys(
        ["init", "serve", "verify", "gc", "demo", "thumbnails", "backup", "restore"], "admin"
    ),
}


# Whether ``main`` paused the garbage collector for the start-up (see there).
_collector_paused = False


class LazyGroup(DreamflareGroup):
    """The root group, adding each module's commands (its ``COMMANDS``) on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        global _collector_paused
        if cmd_name in COMMAND_MODULES and cmd_name not in self.commands:
            module = import_module(f".{COMMAND_MODULES[cmd_name]}", __name__)
            import_module("..store", __name__)  # every command but help opens a store
            for command in module.COMMANDS:
                self.add_command(command)
        if _collector_paused:  # the start-up is over: what the command makes is collected
            _collector_paused = False
            gc.enable()
        return super().get_command(ctx, cmd_name)


# -- the root group --------------------------------------------------------------------


@click.group(
    "dreamflare",
    cls=LazyGroup,
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


def main() -> None:
    """The ``dreamflare`` executable."""
    global _collector_paused
    # Start-up (importing the command's module and the store's) makes tens of thousands of
    # objects that live until exit, and no garbage: collecting while they are made, and
    # walking them all again as the process ends, cost a quick command 10-20 ms. So the
    # collector waits until the command is found, and exit skips what exists by then.
    if gc.isenabled():
        gc.disable()
        _collector_paused = True
    try:
        cli(prog_name="dreamflare")
    finally:
        gc.freeze()
