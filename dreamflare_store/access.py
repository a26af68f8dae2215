"""Every access rule of DESIGN.md, in one place: contents, collaborations and API keys.

- The owner may do everything with their content; a ``read`` collaborator may get it,
  read its bytes and list its versions; a ``write`` collaborator may also change its
  metadata and upload new versions, never delete it or manage its collaborations.
- Content a user may not see is ``NotFound`` (no existence leak); content they may see but
  not change is ``PermissionDenied``.
- A collaboration is visible to its owner and its collaborator only; only the owner
  changes it, and either of them may end it.
- An API key is visible and revocable by its user only.
- Generation metadata (prompts, models, seeds: the ``generation`` record, its raw text,
  the bytes' embedded metadata) is withheld from a collaborator whose every collaboration
  on the content says ``strip_metadata``: they see ``generation`` null, cannot read the
  raw text (PermissionDenied), find the content only by its description, tags and
  filename (never by prompt words or generation filters), see none of it in facets, and
  download its bytes stripped. Search and facets cover the user's own contents and those
  shared with them, nothing else, not even as a count.
- Favorites are each user's own; a user may mark anything they can read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .catalog import Catalog, Row
from .errors import NotFound, PermissionDenied

if TYPE_CHECKING:
    from .catalog.search import Scope

READ = "read"
WRITE = "write"
OWNER = "owner"


class Access:
    """The access checks, over the catalog's rows. Each returns the row it checked."""

    def __init__(self, catalog: Catalog) -> None:
        self._reads = catalog.reads

    def content(self, content_id: str, user_id: str, need: str) -> Row:
        """The live content row, if ``user_id`` may do what ``need`` ("read", "write",
        "owner") asks; else NotFound or PermissionDenied."""
        row = self._reads.content_row(content_id)
        if row is None or row["deleted"]:
            raise NotFound(f"content {content_id} not found", content_id=content_id)
        if row["owner"] == user_id:
            return row
        granted = self._reads.permission_of(content_id, user_id)
        if granted is None:
            raise NotFound(f"content {content_id} not found", content_id=content_id)
        if need == READ or (need == WRITE and granted == WRITE):
            return row
        raise PermissionDenied(
            f"user {user_id!r} may not {'change' if need == WRITE else 'manage'} "
            f"content {content_id}",
            content_id=content_id,
        )

    def owned(self, content_id: str, user_id: str, with_data: bool = False) -> Row | None:
        """What reading needs of the live content row (``Reads.read_row``, with the bytes
        of a small blob if asked) if ``user_id`` owns it (who may do everything with it),
        else None: then ``content`` decides. One query and no transaction (one row is
        consistent by itself): the common read, of one's own content, needs no more."""
        row = self._reads.read_row(content_id, with_data)
        if row is None or row["deleted"] or row["owner"] != user_id:
            return None
        return row

    def strips(self, row: Row, user_id: str) -> bool:
        """Whether ``user_id`` reads the content of ``row`` (which they may read) without
        its generation metadata."""
        if row["owner"] == user_id:
            return False
        return self._reads.strips_for(row["content_id"], user_id)

    def generation(self, content_id: str, user_id: str) -> Row:
        """The content row, if ``user_id`` may read its generation metadata; NotFound as
        for reading, PermissionDenied for a collaborator without metadata."""
        row = self.content(content_id, user_id, READ)
        if self.strips(row, user_id):
            raise PermissionDenied(
                f"the generation metadata of content {content_id} is not shared with {user_id!r}",
                content_id=content_id,
            )
        return row

    def scope(self, user_id: str) -> Scope:
        """What search and facets may show ``user_id``: their own contents, and those
        shared with them, with or without their metadata."""
        from .catalog.search import Scope  # only search needs it: not imported to open a store

        shared = self._reads.shared_with(user_id)
        return Scope(
            user_id,
            tuple(content_id for content_id, strip in shared if not strip),
            tuple(content_id for content_id, strip in shared if strip),
        )

    def collaboration(self, collaboration_id: str, user_id: str, change: bool = False) -> Row:
        """A live collaboration on a live content, if ``user_id`` is its owner or its
        collaborator (NotFound for anyone else); with ``change``, its owner only
        (PermissionDenied for the collaborator)."""
        row = self._reads.collaboration_row(collaboration_id)
        content = None if row is None else self._reads.content_row(row["content_id"])
        if (
            row is None
            or row["deleted"]
            or user_id not in (row["owner"], row["collaborator"])
            or content is None
            or content["deleted"]
        ):
            raise NotFound(
                f"collaboration {collaboration_id} not found", collaboration_id=collaboration_id
            )
        if change and row["owner"] != user_id:
            raise PermissionDenied(
                "only the content's owner may change a collaboration",
                collaboration_id=collaboration_id,
            )
        return row

    def key(self, key_id: str, user_id: str) -> Row:
        """An unrevoked API key of ``user_id``; NotFound for another user's key, a revoked
        one or none."""
        row = self._reads.key_row(key_id)
        if row is None or row["user"] != user_id:
            raise NotFound(f"API key {key_id} not found", key_id=key_id)
        if row["revoked_hlc"] is not None:
            # Still NotFound (INTERFACE.md fixes 404), but worded for what `key list` shows.
            raise NotFound(f"API key {key_id} is already revoked", key_id=key_id)
        return row
