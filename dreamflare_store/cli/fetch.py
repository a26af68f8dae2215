"""Getting many contents back: the batch behind ``dreamflare download --all | --tag | ID...``.

``select`` finds the contents (all of a user's, those with a tag, or the ids named);
``lay_out`` gives each a place inside the target folder (its ``path``, else its
``filename``; a second content at a place taken gets its id added), never outside it;
``fetch`` writes them, skipping files already there with the same bytes and refusing to
overwrite different ones unless told to. ``iter_contents`` pages through a user's
contents for ``ls --all`` and ``--tag`` too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import blake3

from ..errors import Conflict, DreamflareError, InvalidArgument
from ..records import Content

if TYPE_CHECKING:
    from ..progress import Progress
    from ..store import Store

PAGE = 1000  # contents per list call when paging through everything


def iter_contents(
    store: Store, user: str, tags: str | Sequence[str] | None = None
) -> Iterator[Content]:
    """Every live content of ``user``, newest first (with ``tags``: those that have all of
    them), a page at a time."""
    wanted = [tags] if isinstance(tags, str) else list(tags or ()) or None
    offset = 0
    while True:
        page = store.list_content(user, PAGE, offset, tags=wanted)
        yield from page.items
        offset += len(page.items)
        if not page.items or offset >= page.total:
            return


def read_ids(
    given: Sequence[str], stdin: Callable[[], str] = lambda: sys.stdin.read()
) -> list[str]:
    """The ids named, ``-`` replaced by the ids read from stdin (whitespace-separated), as
    ``xargs`` would pass them; each id once, in order."""
    read = sys.stdin.read if stdin is None else stdin
    out: list[str] = []
    for item in given:
        for found in read().split() if item == "-" else [item]:
            if found not in out:
                out.append(found)
    return out


def select(
    store: Store, user: str, ids: Sequence[str], every: bool, tag: str | None
) -> list[Content]:
    """The contents to download: ``ids`` (each checked), else all of them or those tagged."""
    if ids:
        return [store.get_content(content_id, user) for content_id in ids]
    if not every and tag is None:
        raise InvalidArgument("give content ids, --all or --tag")
    return list(iter_contents(store, user, tag))


def lay_out(contents: Iterable[Content]) -> list[tuple[Content, PurePosixPath]]:
    """Each content's place inside the target folder: its path, else its filename; a place
    already taken gets the content's id before its extension (``a.cnt_01....png``)."""
    taken: set[str] = set()
    out = []
    for content in contents:
        place = PurePosixPath(content.path or content.filename)
        if str(place).lower() in taken:
            place = place.with_name(f"{place.stem}.{content.content_id}{place.suffix}")
        taken.add(str(place).lower())
        out.append((content, place))
    return out


def inside(folder: Path, place: PurePosixPath) -> Path:
    """``folder / place``, refused unless it stays inside ``folder`` (paths are checked
    when stored; this holds whatever a remote replica sent)."""
    if place.is_absolute() or any(part in ("", ".", "..") for part in place.parts):
        raise InvalidArgument(f"{place} is not a path inside the folder", path=str(place))
    target = folder.joinpath(*place.parts)
    root = os.path.realpath(folder)
    if os.path.commonpath([root, os.path.realpath(target)]) != root:
        raise InvalidArgument(f"{place} leads outside {folder}", path=str(place))
    return target


@dataclass(slots=True)
class Fetched:
    """What a batch download did."""

    written: list[tuple[Content, Path]] = field(default_factory=list)
    skipped: list[tuple[Content, Path]] = field(default_factory=list)
    errors: list[tuple[Content, Path, DreamflareError]] = field(default_factory=list)
    nbytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` shape: what was written, what was already there, what failed."""

        def entry(content: Content, target: Path) -> dict[str, Any]:
            return {"contentId": content.content_id, "path": str(target), "size": content.size}

        return {
            "written": [entry(*pair) for pair in self.written],
            "skipped": [entry(*pair) for pair in self.skipped],
            "errors": [
                {**entry(content, target), **error.to_dict()}
                for content, target, error in self.errors
            ],
            "bytesWritten": self.nbytes,
        }


def same_bytes(target: Path, content: Content) -> bool:
    """Whether the file at ``target`` holds exactly the content's bytes (by its hash)."""
    if not target.is_file() or target.stat().st_size != content.size:
        return False
    hasher = blake3.blake3()
    with open(target, "rb") as source:
        while chunk := source.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest() == content.hash


def fetch(
    store: Store,
    user: str,
    folder: Path,
    planned: Sequence[tuple[Content, PurePosixPath]],
    force: bool,
    progress: Progress,
    write: Callable[[Any, Path, bool], int],
    strip: bool = False,
) -> Fetched:
    """Write each planned content inside ``folder`` with ``write(reader, target, force)``;
    a file already there with the same bytes is skipped, a different one refused unless
    ``force``. One content's failure is its own: the others still come. With ``strip``,
    the bytes come without their metadata (and a file there is compared with those)."""
    done = Fetched()
    progress.start("Downloading", len(planned), sum(content.size for content, _ in planned))
    try:
        for content, place in planned:
            target = folder / place  # for messages, if `inside` refuses it
            try:
                target = inside(folder, place)
                if target.exists():
                    if not strip and same_bytes(target, content):
                        done.skipped.append((content, target))
                        progress.advance(1, content.size)
                        continue
                    if not force:
                        raise Conflict(
                            f"{target} exists with other bytes (use --force to overwrite)",
                            path=str(target),
                        )
                target.parent.mkdir(parents=True, exist_ok=True)
                with store.open_content(content.content_id, user, None, strip) as reader:
                    done.nbytes += write(reader, target, force)
                done.written.append((content, target))
            except DreamflareError as exc:
                done.errors.append((content, target, exc))
            except OSError as exc:
                reason = exc.strerror or str(exc)
                error = DreamflareError(f"{target}: {reason}", path=str(target))
                done.errors.append((content, target, error))
            progress.advance(1, content.size)
    finally:
        progress.finish()
    return done
