"""What every ``dreamflare`` command shares: the state, the error mapping, the options.

The root group puts a ``State`` in ``ctx.obj``; it opens the ``Store`` lazily, once, on
first use (so ``--help`` never creates a store folder), and closes it with
``ctx.call_on_close``. Errors become exit codes in one place, ``DreamflareGroup.invoke``:
a ``DreamflareError`` (or an ``OSError`` about a user's file) is one ``error: ...`` line on
stderr and exit 1; click's usage errors exit 2.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .errors import DreamflareError, NotFound, PermissionDenied

if TYPE_CHECKING:
    from .store import Store

DEFAULT_STORE = "./dreamflare-data"
CATALOG_FILE = "catalog.db"  # Store(path) keeps its catalog here (store.py)


# -- state and errors ------------------------------------------------------------------


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
            from .store import Store

            self._store = Store(self.store_path)
            self._ctx.call_on_close(self._store.close)
        return self._store

    def require_store(self) -> None:
        """Only ``init`` creates a store: a mistyped path is an error, not a new store."""
        path = Path(self.store_path)
        # The catalog file is what makes a folder a store: `--store ~` must not fill a
        # home folder with a new store's files.
        if not (path / CATALOG_FILE).is_file():
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


class CommandFailed(click.ClickException):
    """A DreamflareError on its way out: ``error: message`` (or its JSON) on stderr, exit 1."""

    exit_code = 1

    def __init__(self, error: DreamflareError, as_json: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.as_json = as_json

    def show(self, file: Any = None) -> None:
        if self.as_json:
            text = json.dumps(self.error.to_dict(), ensure_ascii=False)
        else:
            text = f"error: {self.error.message}"
        click.echo(text, err=True)


class DreamflareGroup(click.Group):
    """The root group: the one place where errors are mapped to exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DreamflareError as exc:
            raise CommandFailed(exc, _json_mode(ctx)) from exc
        except BrokenPipeError:
            # `dreamflare ls | head`: the reader left; say nothing more (Python's advice).
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(1)
        except OSError as exc:
            # A user's file or folder (download target, store path) that cannot be used.
            raise CommandFailed(_os_error(exc), _json_mode(ctx)) from exc


def _os_error(exc: OSError) -> DreamflareError:
    """The closest DreamflareError for a failed file operation, naming the file."""
    message = f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc.strerror or exc)
    if isinstance(exc, FileNotFoundError):
        return NotFound(message)
    if isinstance(exc, PermissionError):
        return PermissionDenied(message)
    return DreamflareError(message)


def _json_mode(ctx: click.Context) -> bool:
    state = ctx.find_object(State)
    return state is not None and state.as_json


def fail(error: DreamflareError) -> NoReturn:
    """Stop the command with an error (mapped like any DreamflareError)."""
    raise error


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


def show_progress(state: State) -> bool:
    """Progress bars only for people: both streams on a terminal, and no --json."""
    return not state.as_json and sys.stdout.isatty() and sys.stderr.isatty()
