"""Thumbnails of stored blobs: made once per (blob hash, size), kept as derived blobs.

``thumbnails.render`` draws them; this service decides when: it looks for the kept file
first, and otherwise makes it under that file's lock (``DerivedBlobs.making``), so that
any number of concurrent first requests render once. It may also warm thumbnails in the
background after uploads (one thread, so a burst of uploads never takes every core from
the requests being served). The access rules and metering stay in the ``Store``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from . import thumbnails
from .blobs import VerifiedReader
from .replica import Replica
from .thumbnails.base import check_max_pixels, check_size

# Part of every thumbnail's file name and ETag: raised when the renderer's output changes,
# so that new pictures get new names and browsers never keep an old one as "immutable".
RENDERER = "r1"
KIND = "thumbs"
# The libraries a kind of content needs: without them it gets an icon, which is not kept
# (installing the library later must give the real picture).
_NEEDS = {"image": "PIL", "video": "av"}

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ThumbnailImage:
    """A thumbnail as a server answers it.

    ``etag`` names exactly these bytes: the source blob's hash, the size and the
    renderer's version. ``immutable`` is true when the bytes are kept and will never
    change under that name (an icon given for a missing library is not).
    """

    data: bytes
    mime_type: str
    etag: str
    immutable: bool
    is_icon: bool


class Previews:
    """Thumbnails of one replica's blobs."""

    def __init__(self, replica: Replica, max_pixels: int = thumbnails.DEFAULT_MAX_PIXELS) -> None:
        self._derived = replica.derived
        self.max_pixels = check_max_pixels(max_pixels)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._pending: set[Future[object]] = set()
        self.closed = False

    def get(
        self, digest: str, mime: str, size: int, open_blob: Callable[[], VerifiedReader]
    ) -> ThumbnailImage:
        """The thumbnail of blob ``digest`` (of type ``mime``) at ``size``: the kept one,
        or one made now from ``open_blob()`` (a verified reader) and kept."""
        size = check_size(size)
        variant = f"{size}-{RENDERER}"
        etag = f'"{digest[:32]}-{variant}"'
        data = self._derived.read(KIND, digest, variant)
        if data is not None:
            return ThumbnailImage(data, thumbnails.MIME_TYPE, etag, True, False)
        with self._derived.making(KIND, digest, variant):
            data = self._derived.read(KIND, digest, variant)  # made while this one waited
            if data is not None:
                return ThumbnailImage(data, thumbnails.MIME_TYPE, etag, True, False)
            with io.BufferedReader(open_blob(), 1 << 16) as reader:
                # The reader checks the whole blob's hash before its first seek: corrupt
                # bytes raise IntegrityError here rather than being drawn (or kept as an
                # icon) as though the file itself were damaged.
                reader.seek(0, io.SEEK_END)
                reader.seek(0)
                thumb = thumbnails.render(reader, mime, size, max_pixels=self.max_pixels)
            keep = not (thumb.is_icon and _library_missing(mime))
            if thumb.is_icon:
                log.info("thumbnail of %s is its icon: %s", digest, thumb.reason)
            if keep:
                self._derived.write(KIND, digest, variant, thumb.data)
        return ThumbnailImage(thumb.data, thumb.mime_type, etag, keep, thumb.is_icon)

    def warm(
        self, digest: str, mime: str, open_blob: Callable[[], VerifiedReader], size: int = 256
    ) -> None:
        """Make the thumbnail of a blob in the background (nothing if it is kept already)."""
        if self.closed or thumbnails.kind_of(mime) not in _NEEDS:
            return
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="dreamflare-thumbs")
            future: Future[object] = self._pool.submit(self._warm, digest, mime, open_blob, size)
            self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    def _warm(
        self, digest: str, mime: str, open_blob: Callable[[], VerifiedReader], size: int
    ) -> None:
        if self.closed:
            return
        try:
            self.get(digest, mime, size, open_blob)
        except Exception as exc:  # noqa: BLE001 (a warm-up is a favour: the request will retry)
            log.warning("could not warm the thumbnail of %s: %s", digest, exc)

    def wait(self) -> None:
        """Wait until every thumbnail being warmed is made (tests, the CLI)."""
        with self._pool_lock:
            pending = list(self._pending)
        for future in pending:
            with contextlib.suppress(Exception):
                future.result()

    def close(self) -> None:
        """Stop warming: what is queued is dropped, what runs finishes. Idempotent."""
        self.closed = True
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _library_missing(mime: str) -> bool:
    """Whether the library that draws this kind of content is not installed."""
    needed = _NEEDS.get(thumbnails.kind_of(mime))
    return needed is not None and importlib.util.find_spec(needed) is None
