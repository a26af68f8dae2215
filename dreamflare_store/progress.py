"""How long work reports its progress: a small callback protocol; the engine knows no UI."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """What a transfer or a batch reports, to draw a bar (the CLI's).

    ``start`` opens a phase ("Uploading files", ...) with its totals, ``advance`` reports
    files and bytes done, ``finish`` closes the phase (also when it failed).
    """

    def start(self, label: str, files: int, nbytes: int) -> None: ...

    def advance(self, files: int = 0, nbytes: int = 0) -> None: ...

    def finish(self) -> None: ...


class Silent:
    """The progress of a caller who asked for none."""

    def start(self, label: str, files: int, nbytes: int) -> None:
        return None

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        return None

    def finish(self) -> None:
        return None
