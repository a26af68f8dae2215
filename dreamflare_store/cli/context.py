"""What every ``dreamflare`` command shares: the state, the common options, the decorator.

The root group puts a ``State`` in ``ctx.obj``; it opens the ``Store`` lazily, once, on
first use (so ``--help`` never creates a store folder), and closes it with
``ctx.call_on_close``. ``store_command`` makes a command that receives the state and takes
``--json`` and ``--store`` after its name too. How errors become exit codes is in
``exit_codes``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import NotFound

if TYPE_CHECKING:
    from ..store import Store

DEFAULT_STORE = "./dreamflare-data"


# -- state -----------------------------------------------------------------------------


class State:
    """What every command shares: where the store is, the output mode, the open store."""

    def __init__(self, ctx: click.Context, store_path: str, as_json: bool) -> None:
        self._ctx = ctx
        self.store_path = store_path
        self.as_json = as_json
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        """The store, opened on first use and closed when the command ends."""
        if self._store is None:
            self.require_store()
            from ..store import Store

            self._store = Store(self.store_path)
            self._ctx.call_on_close(self._store.close)
        return self._store

    def require_store(self) -> None:
        """Only ``init`` creates a store: a mistyped path is an error, not a new store."""
        from ..store import Store

        # `--store ~` must not fill a home folder with a new store's files.
        if not Store.exists(self.store_path):
            path = Path(self.store_path)
            raise NotFound(
                f"no store at {path} (create one with `dreamflare init`, or point --store or"
                " DREAMFLARE_STORE at an existing one)",
                path=str(path),
            )

    def emit(self, document: Any) -> None:
        """Print one JSON document (records are turned into their ``to_dict()`` shape)."""
        if hasattr(document, "to_dict"):
            document = document.to_dict()
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))


pass_state = click.make_pass_decorator(State)


# -- shared options --------------------------------------------------------------------


def _set_store(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.find_object(State).store_path = value  # type: ignore[union-attr]


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_object(State).as_json = True  # type: ignore[union-attr]


def _common_options() -> list[click.Parameter]:
    """``--json`` and ``--store`` on each command too, so they may follow its name."""
    return [
        click.Option(
            ["--json", "as_json"],
            is_flag=True,
            expose_value=False,
            callback=_set_json,
            help="Print the result as JSON.",
        ),
        click.Option(
            ["--store"],
            metavar="PATH",
            expose_value=False,
            callback=_set_store,
            help="Store folder (default: $DREAMFLARE_STORE, else ./dreamflare-data).",
        ),
    ]


user_option = click.option(
    "--user",
    "-u",
    "user",
    metavar="USER",
    envvar="DREAMFLARE_USER",
    show_envvar=True,
    required=True,
    help="The user acting.",
)


def store_command(
    group: click.Group | None = None, name: str | None = None
) -> Callable[[Callable[..., Any]], click.Command]:
    """A command (added to ``group`` if given) with the shared options and the state."""

    def decorate(function: Callable[..., Any]) -> click.Command:
        command = click.command(name)(pass_state(function))
        command.params.extend(_common_options())
        if group is not None:
            group.add_command(command)
        return command

    return decorate
