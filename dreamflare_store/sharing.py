"""Collaborations: an owner shares a content with another user, to read or to write."""

from __future__ import annotations

from typing import Any

from . import oplog, rows
from .access import OWNER, Access
from .errors import Conflict, InvalidArgument
from .records.accounts import Collaboration
from .replica import Replica


class Sharing:
    """The collaborations of one replica, under the access rules."""

    def __init__(self, replica: Replica, access: Access) -> None:
        self._replica = replica
        self._access = access
        self._catalog = replica.catalog

    def create(
        self,
        user_id: str,
        content_id: str,
        collaborator_id: str,
        permissions: str,
        strip_metadata: bool = False,
    ) -> Collaboration:
        """Share a content the user owns with a collaborator (once per collaborator)."""
        if collaborator_id == user_id:
            raise InvalidArgument("a user cannot collaborate with themselves")
        collaboration_id = self._replica.new_id("collaboration")
        with self._catalog.atomic():
            self._access.content(content_id, user_id, OWNER)
            if self._catalog.reads.permission_of(content_id, collaborator_id) is not None:
                raise Conflict(
                    f"{collaborator_id!r} already collaborates on content {content_id}",
                    content_id=content_id,
                )
            data: dict[str, Any] = {
                "content_id": content_id,
                "owner": user_id,
                "collaborator": collaborator_id,
                "permissions": permissions,
            }
            if strip_metadata:
                data["strip_metadata"] = True
            self._replica.record(oplog.COLLAB_CREATE, collaboration_id, data)
            row = self._catalog.reads.collaboration_row(collaboration_id)
        assert row is not None
        return rows.collaboration(row)

    def list(self, user_id: str) -> list[Collaboration]:
        """Collaborations on contents the user owns, and those shared with the user."""
        return [rows.collaboration(row) for row in self._catalog.reads.collaborations_of(user_id)]

    def update(
        self,
        collaboration_id: str,
        user_id: str,
        permissions: str | None,
        strip_metadata: bool | None = None,
    ) -> Collaboration:
        """Change a collaborator's permissions and/or metadata setting (the content's
        owner only; None keeps one)."""
        with self._catalog.atomic():
            self._access.collaboration(collaboration_id, user_id, change=True)
            data: dict[str, Any] = {}
            if permissions is not None:
                data["permissions"] = permissions
            if strip_metadata is not None:
                data["strip_metadata"] = strip_metadata
            self._replica.record(oplog.COLLAB_UPDATE, collaboration_id, data)
            row = self._catalog.reads.collaboration_row(collaboration_id)
        assert row is not None
        return rows.collaboration(row)

    def delete(self, collaboration_id: str, user_id: str) -> None:
        """End a collaboration: its owner may, and so may the collaborator (leaving)."""
        with self._catalog.atomic():
            self._access.collaboration(collaboration_id, user_id)
            self._replica.record(oplog.COLLAB_DELETE, collaboration_id, {"author": user_id})
