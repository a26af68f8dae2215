"""Reading bytes: a verified reader over a content's bytes (or a version's), under the
access rules, fetched from a remote first when it was pulled lazily, and stripped of its
embedded metadata when asked or when the reader may not see it."""

from __future__ import annotations

from typing import Any

from . import ids, validate
from .access import READ, Access
from .blobs import VerifiedReader
from .catalog import Row
from .errors import BlobUnavailable, DreamflareError, IntegrityError, NotFound
from .replica import Replica


class Reading:
    """Verified readers over the bytes users may read."""

    def __init__(self, replica: Replica, access: Access) -> None:
        self._replica = replica
        self._access = access

    def open(
        self, content_id: str, user_id: str, version: int | None, strip: Any = False
    ) -> tuple[VerifiedReader, Row]:
        """A verified reader over the bytes (stripped of their metadata when asked, or
        when the user may not see it), and the content or version row they belong to."""
        digest, source, stripped = self.source(content_id, user_id, version, strip)
        if not stripped:
            return self.blob(digest), source
        return self._replica.blobs.open(self._stripped(digest)), source

    def read(self, content_id: str, user_id: str, version: int | None, strip: Any = False) -> bytes:
        """All the bytes ``open`` would serve, verified, in one call: for a small read,
        whose cost is mostly the steps around its bytes (one query when the user owns
        the content, bytes included when they are a row; the bytes hashed and checked
        without a reader object)."""
        if version is None and strip is False:
            ids.check_id("content", content_id)
            own = self._access.owned(content_id, validate.user_id(user_id), with_data=True)
            if own is not None:  # the owner: this one query decided it
                if own["data"] is not None:
                    return self._replica.blobs.checked_row(own["blob"], own["data"])
                return self._blob_bytes(own["blob"])  # a file, or a row pulled lazily
        digest, _, stripped = self.source(content_id, user_id, version, strip)
        if stripped:
            return self._replica.blobs.read(self._stripped(digest))
        return self._blob_bytes(digest)

    def _blob_bytes(self, digest: str) -> bytes:
        """All the bytes of blob ``digest``, verified, fetched from its remote first if it
        was pulled lazily."""
        try:
            return self._replica.blobs.read(digest)
        except IntegrityError as exc:
            if not isinstance(exc.__cause__, FileNotFoundError):
                raise  # here and corrupt: the error stands (the file is quarantined)
        self.fetch_remote_blob(digest)  # not here: pulled lazily, or quarantined before
        return self._replica.blobs.read(digest)

    def _stripped(self, digest: str) -> str:
        """The digest of the stripped copy of blob ``digest`` (fetched first if need be)."""
        if not self._replica.blobs.exists(digest):
            self.fetch_remote_blob(digest)
        return self._replica.stripped_blob(digest)

    def source(
        self, content_id: str, user_id: str, version: int | None, strip: Any = False
    ) -> tuple[str, Row, bool]:
        """The blob digest of a content (or of one of its versions) the user may read, the
        content or version row it belongs to, and whether its bytes are to be served
        stripped of their metadata (asked, or the user may not see it)."""
        ids.check_id("content", content_id)
        user_id = validate.user_id(user_id)
        strip = bool(validate.flag(strip, "strip_metadata"))
        if version is None and (own := self._access.owned(content_id, user_id)) is not None:
            return own["blob"], own, strip  # an owner sees the metadata: stripped only if asked
        catalog = self._replica.catalog
        with catalog.snapshot():
            source = self._access.content(content_id, user_id, READ)
            strip = strip or self._access.strips(source, user_id)
            if version is None:
                return source["blob"], source, strip
            number = validate.integer(version, "version", 1, 2**62)
            version_row = catalog.reads.version_row(content_id, number)
        if version_row is None:
            raise NotFound(f"content {content_id} has no version {number}", content_id=content_id)
        return version_row["blob"], version_row, strip

    def blob(self, digest: str) -> VerifiedReader:
        """A verified reader over a blob, fetched from its remote first if it was lazily
        pulled (verified as it arrives).

        The blob is opened first and looked for elsewhere only when that fails: the one
        call that fetches a blob's bytes here (``blobs.open``) is all a read of local
        bytes costs."""
        blobs = self._replica.blobs
        try:
            return blobs.open(digest)
        except IntegrityError:
            pass  # not here: fetched if it was pulled lazily, else opening again says why
        self.fetch_remote_blob(digest)
        return blobs.open(digest)

    def fetch_remote_blob(self, digest: str) -> None:
        """Bring a lazily pulled blob home from its remote (verified), or say it is remote-only."""
        remote = self._replica.catalog.local.remote_of_blob(digest)
        if remote is None:
            return  # blobs.open reports the missing blob as an integrity error
        from . import sync

        try:
            sync.fetch_blob(self._replica, remote, digest)
        except BlobUnavailable:
            raise
        except DreamflareError as exc:
            raise BlobUnavailable(
                f"the bytes of blob {digest} are only on remote {remote!r}, which cannot be"
                f" reached: {exc.message}",
                digest=digest,
                remote=remote,
            ) from exc
