"""Progress bars for people: click's bar on stderr, only on a terminal, else a null bar.

The engine reports progress through a small object with ``start(label, files, nbytes)``,
``advance(files, nbytes)`` and ``finish()`` (``dreamflare_store.progress.Progress``;
``Store.upload_batch`` calls only ``advance``, so its caller starts and finishes the
phase) and knows nothing of the UI. ``progress_bar(state)`` is the one way a command
gets such an object: a ``Bar`` drawn by ``click.progressbar`` when a person watches, else a
``NullBar``.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO, cast

import click

from .format import human_size

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

    from .context import State

# Work that ends within this many seconds draws nothing, so quick commands stay quiet.
DELAY = 0.5


def show_progress(state: State) -> bool:
    """Whether to draw bars: only for people, both streams on a terminal, and no --json."""
    return not state.as_json and sys.stdout.isatty() and sys.stderr.isatty()


def progress_bar(state: State) -> Bar | NullBar:
    """The progress object for a command: a bar on stderr when a person watches, else a
    null one, so the engine may report progress the same way either way."""
    return Bar(sys.stderr) if show_progress(state) else NullBar()


class NullBar:
    """The progress of a command nobody watches: every report is ignored."""

    def start(self, label: str, files: int, nbytes: int) -> None:
        """Ignore the start of a phase."""

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        """Ignore finished files and bytes."""

    def finish(self) -> None:
        """Ignore the end of a phase."""


class Bar:
    """One phase at a time drawn by ``click.progressbar``: percent, ETA, files and bytes.

    The bar measures bytes when the phase has any, else files. Thread-safe: upload
    workers advance it at once. A phase that ends within ``delay`` seconds draws nothing.
    """

    def __init__(self, stream: TextIO, delay: float | None = None) -> None:
        self._stream = _Terminal(stream)
        self._delay = DELAY if delay is None else delay
        self._lock = threading.Lock()
        self._drawn = contextlib.ExitStack()
        self._bar: ProgressBar[int] | None = None
        self._started = time.monotonic()
        self.label = ""
        self.files = self.nbytes = self.total_files = self.total_bytes = 0

    def start(self, label: str, files: int, nbytes: int) -> None:
        """Begin a phase with its totals (closing the bar of the phase before, if any)."""
        with self._lock:
            self._close()
            self.label, self.total_files, self.total_bytes = label, files, nbytes
            self.files = self.nbytes = 0
            self._started = time.monotonic()

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        """Count finished files and bytes, and redraw."""
        with self._lock:
            self.files += files
            self.nbytes += nbytes
            if self._bar is not None:
                steps = nbytes if self.total_bytes else files
                if steps:
                    self._bar.update(steps)
                else:  # the counts beside the bar changed, not the bar itself
                    self._bar.render_progress()
            elif time.monotonic() - self._started >= self._delay:
                self._open()

    def finish(self) -> None:
        """End the phase: the bar's last line stays on the screen."""
        with self._lock:
            self._close()

    def counts(self) -> str:
        """``"2/4 files  2.0 MiB/4.0 MiB"``: what is done of the phase."""
        return (
            f"{self.files:,}/{self.total_files:,} files"
            f"  {human_size(self.nbytes)}/{human_size(self.total_bytes)}"
        )

    def _open(self) -> None:
        if not (self.total_files or self.total_bytes):
            return  # an empty phase has nothing to show
        bar: ProgressBar[int] = click.progressbar(
            length=self.total_bytes or self.total_files,
            label=self.label,
            file=cast(TextIO, self._stream),
            item_show_func=lambda _item: self.counts(),
        )
        bar.update(self.nbytes if self.total_bytes else self.files)  # then drawn once
        self._bar = self._drawn.enter_context(bar)

    def _close(self) -> None:
        self._drawn.close()
        self._bar = None


class _Terminal:
    """A stream that says it is a terminal: click draws a bar only on one, and whether a
    person watches was already decided (by ``show_progress``)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return True
