"""Operations 7-14: API usage, API keys, analytics and collaborations.

A mixin of ``Store``: it uses the store's catalog, counters, op recording and its single
access check, so the rules of DESIGN.md stay in one place.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import blake3

from . import ids, oplog, validate
from .catalog import Row
from .clock import hlc_wall_ms, iso_ms
from .errors import Conflict, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from .metering import metered
from .records import Analytics, ApiKey, ApiUsage, Collaboration, NewApiKey

if TYPE_CHECKING:
    from .catalog import Catalog
    from .counters import CounterBuffer
    from .oplog import Op

API_KEY_PREFIX = "dfk_"
_SECRET_BYTES = 32  # 256 bits of randomness
_SECRET_LENGTH = len(API_KEY_PREFIX) + 43  # base64url of 32 bytes, unpadded
TOP_CONTENT = 10


def secret_hash(secret: str) -> str:
    """What the store keeps of a key: a hash. Keys are found by it, never by comparing secrets."""
    return blake3.blake3(secret.encode()).hexdigest()


def _iso(hlc: str | None) -> str | None:
    return None if hlc is None else iso_ms(hlc_wall_ms(hlc))


class AccountsMixin:
    """API usage, keys, analytics and collaborations of a ``Store``."""

    if TYPE_CHECKING:  # what the mixin uses of Store (declared for the type checker only)
        catalog: Catalog
        counters: CounterBuffer

        def flush(self) -> None: ...
        def _now_ms(self) -> int: ...
        def _new_id(self, kind: str) -> str: ...
        def _record(self, kind: str, entity: str, data: dict[str, Any]) -> Op: ...
        def _authorize(self, content_id: str, user_id: str, need: str) -> Row: ...

    # -- 7. API usage ---------------------------------------------------------------------

    @metered("get_api_usage")
    def get_api_usage(self, user_id: str) -> ApiUsage:
        """API calls the user made: totals, per operation, and per day (oldest first)."""
        user_id = validate.user_id(user_id)
        self.flush()
        rows = self.catalog.usage_rows(user_id)
        by_operation: dict[str, dict[str, int]] = {}
        daily: dict[str, dict[str, Any]] = {}
        totals = [0, 0, 0, 0]
        for row in rows:
            cell = (row["calls"], row["errors"], row["bytes_in"], row["bytes_out"])
            op = by_operation.setdefault(
                row["operation"], {"calls": 0, "errors": 0, "bytesIn": 0, "bytesOut": 0}
            )
            day = daily.setdefault(
                row["day"],
                {"date": row["day"], "calls": 0, "errors": 0, "bytesIn": 0, "bytesOut": 0},
            )
            for target in (op, day):
                target["calls"] += cell[0]
                target["errors"] += cell[1]
                target["bytesIn"] += cell[2]
                target["bytesOut"] += cell[3]
            totals = [a + b for a, b in zip(totals, cell, strict=True)]
        return ApiUsage(
            user_id=user_id,
            total_calls=totals[0],
            errors=totals[1],
            bytes_in=totals[2],
            bytes_out=totals[3],
            by_operation=dict(sorted(by_operation.items())),
            daily=tuple(daily[day] for day in sorted(daily)),
        )

    # -- 8, 9. API keys -------------------------------------------------------------------

    @metered("generate_api_key")
    def generate_api_key(self, user_id: str, description: str | None = None) -> NewApiKey:
        """A new API key for the user. Its secret is in the result and nowhere else, ever."""
        user_id = validate.user_id(user_id)
        description = validate.description(description)
        secret = API_KEY_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
        key_id = self._new_id("key")
        with self.catalog.atomic():
            self._record(
                oplog.KEY_CREATE,
                key_id,
                {"user": user_id, "description": description, "secret_hash": secret_hash(secret)},
            )
            row = self.catalog.key_row(key_id)
        assert row is not None
        key = self._api_key(row, None)
        return NewApiKey(**{name: getattr(key, name) for name in key.__slots__}, api_key=secret)

    @metered("revoke_api_key")
    def revoke_api_key(self, key_id: str, user_id: str) -> None:
        """Revoke one of the user's keys. Another user's key, or a revoked one, is not found."""
        ids.check_id("key", key_id)
        user_id = validate.user_id(user_id)
        with self.catalog.atomic():
            row = self.catalog.key_row(key_id)
            if row is None or row["user"] != user_id or row["revoked_hlc"] is not None:
                raise NotFound(f"API key {key_id} not found", key_id=key_id)
            self._record(oplog.KEY_REVOKE, key_id, {"user": user_id})

    def list_api_keys(self, user_id: str) -> list[ApiKey]:
        """The user's keys, revoked ones included, never their secrets."""
        user_id = validate.user_id(user_id)
        self.flush()
        return [self._api_key(row, row["last_used_ms"]) for row in self.catalog.keys_of(user_id)]

    def authenticate(self, api_key: str) -> str:
        """The user who owns a valid, unrevoked key; Unauthenticated otherwise."""
        if (
            not isinstance(api_key, str)
            or len(api_key) != _SECRET_LENGTH
            or not api_key.startswith(API_KEY_PREFIX)
        ):
            raise Unauthenticated("malformed API key")
        row = self.catalog.key_by_hash(secret_hash(api_key))
        if row is None:
            raise Unauthenticated("unknown API key")
        if row["revoked_hlc"] is not None:
            raise Unauthenticated("this API key has been revoked")
        self.counters.key_used(row["key_id"], self._now_ms())
        return str(row["user"])

    def _api_key(self, row: Row, last_used_ms: int | None) -> ApiKey:
        return ApiKey(
            key_id=row["key_id"],
            user_id=row["user"],
            description=row["description"],
            created_at=iso_ms(hlc_wall_ms(row["created_hlc"])),
            revoked_at=_iso(row["revoked_hlc"]),
            last_used_at=None if last_used_ms is None else iso_ms(last_used_ms),
        )

    # -- 10. analytics --------------------------------------------------------------------

    @metered("get_analytics")
    def get_analytics(self, user_id: str, content_id: str | None = None) -> Analytics:
        """Views, downloads, bytes served and viewers: of one content (owner only), or of
        all the user's contents with the most viewed ones."""
        user_id = validate.user_id(user_id)
        if content_id is not None:
            ids.check_id("content", content_id)
            self._authorize(content_id, user_id, "owner")
        self.flush()
        with self.catalog.snapshot():
            rows = self.catalog.stats_rows(user_id, content_id)
            unique = self.catalog.unique_viewers(user_id, content_id)
        daily: dict[str, dict[str, Any]] = {}
        per_content: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
        views = downloads = served = 0
        for row in rows:
            day = daily.setdefault(
                row["day"], {"date": row["day"], "views": 0, "downloads": 0, "bytesServed": 0}
            )
            day["views"] += row["views"]
            day["downloads"] += row["downloads"]
            day["bytesServed"] += row["bytes_served"]
            per_content[row["content_id"]][0] += row["views"]
            per_content[row["content_id"]][1] += row["downloads"]
            views += row["views"]
            downloads += row["downloads"]
            served += row["bytes_served"]
        top = None
        if content_id is None:
            ranked = sorted(
                per_content.items(), key=lambda item: (-item[1][0], -item[1][1], item[0])
            )
            top = tuple(
                {"contentId": cid, "views": counts[0], "downloads": counts[1]}
                for cid, counts in ranked[:TOP_CONTENT]
            )
        return Analytics(
            user_id=user_id,
            content_id=content_id,
            views=views,
            downloads=downloads,
            bytes_served=served,
            unique_viewers=unique,
            daily=tuple(daily[day] for day in sorted(daily)),
            top_content=top,
        )

    # -- 11-14. collaborations ------------------------------------------------------------

    @metered("create_collaboration")
    def create_collaboration(
        self, user_id: str, content_id: str, collaborator_id: str, permissions: str = "read"
    ) -> Collaboration:
        """Share a content the user owns with a collaborator, to ``read`` or ``write``."""
        user_id = validate.user_id(user_id)
        ids.check_id("content", content_id)
        collaborator_id = validate.user_id(collaborator_id, "collaborator_id")
        permissions = validate.permissions(permissions)
        if collaborator_id == user_id:
            raise InvalidArgument("a user cannot collaborate with themselves")
        collaboration_id = self._new_id("collaboration")
        with self.catalog.atomic():
            self._authorize(content_id, user_id, "owner")
            if self.catalog.permission_of(content_id, collaborator_id) is not None:
                raise Conflict(
                    f"{collaborator_id!r} already collaborates on content {content_id}",
                    content_id=content_id,
                )
            self._record(
                oplog.COLLAB_CREATE,
                collaboration_id,
                {
                    "content_id": content_id,
                    "owner": user_id,
                    "collaborator": collaborator_id,
                    "permissions": permissions,
                },
            )
            row = self.catalog.collaboration_row(collaboration_id)
        assert row is not None
        return self._collaboration(row)

    @metered("list_collaborations")
    def list_collaborations(self, user_id: str) -> list[Collaboration]:
        """Collaborations on contents the user owns, and those shared with the user."""
        user_id = validate.user_id(user_id)
        return [self._collaboration(row) for row in self.catalog.collaborations_of(user_id)]

    @metered("update_collaboration")
    def update_collaboration(
        self, collaboration_id: str, user_id: str, permissions: str
    ) -> Collaboration:
        """Change a collaborator's permissions (the content's owner only)."""
        ids.check_id("collaboration", collaboration_id)
        user_id = validate.user_id(user_id)
        permissions = validate.permissions(permissions)
        with self.catalog.atomic():
            row = self._visible_collaboration(collaboration_id, user_id)
            if row["owner"] != user_id:
                raise PermissionDenied(
                    "only the content's owner may change a collaboration",
                    collaboration_id=collaboration_id,
                )
            self._record(oplog.COLLAB_UPDATE, collaboration_id, {"permissions": permissions})
            updated = self.catalog.collaboration_row(collaboration_id)
        assert updated is not None
        return self._collaboration(updated)

    @metered("delete_collaboration")
    def delete_collaboration(self, collaboration_id: str, user_id: str) -> None:
        """End a collaboration: its owner may, and so may the collaborator (leaving)."""
        ids.check_id("collaboration", collaboration_id)
        user_id = validate.user_id(user_id)
        with self.catalog.atomic():
            self._visible_collaboration(collaboration_id, user_id)
            self._record(oplog.COLLAB_DELETE, collaboration_id, {"author": user_id})

    def _visible_collaboration(self, collaboration_id: str, user_id: str) -> Row:
        """A live collaboration its owner or collaborator asks about; NotFound for others."""
        row = self.catalog.collaboration_row(collaboration_id)
        if (
            row is None
            or row["deleted"]
            or user_id not in (row["owner"], row["collaborator"])
            or not self._content_live(row["content_id"])
        ):
            raise NotFound(
                f"collaboration {collaboration_id} not found", collaboration_id=collaboration_id
            )
        return row

    def _content_live(self, content_id: str) -> bool:
        content = self.catalog.content_row(content_id)
        return content is not None and not content["deleted"]

    def _collaboration(self, row: Row) -> Collaboration:
        return Collaboration(
            collaboration_id=row["collaboration_id"],
            content_id=row["content_id"],
            user_id=row["owner"],
            collaborator_id=row["collaborator"],
            permissions=row["permissions"],
            created_at=iso_ms(hlc_wall_ms(row["created_hlc"])),
            updated_at=iso_ms(hlc_wall_ms(row["updated_hlc"])),
        )
