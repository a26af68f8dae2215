"""The one place where errors become exit codes: the root group, ``DreamflareGroup``.

A ``DreamflareError`` (or an ``OSError`` about a user's file) is one ``error: ...`` line on
stderr (its JSON with ``--json``) and exit 1; click's usage errors exit 2. Commands raise
errors rather than print them (only ``upload`` lists the files of a batch that failed).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, NoReturn

import click

from ..errors import DreamflareError, NotFound, PermissionDenied
from .context import State


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
