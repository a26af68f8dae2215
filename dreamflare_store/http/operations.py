"""The operations served over HTTP, as data: path, method, parameters, status, result.

One table drives the server's routes, its parameter checks and its OpenAPI document, and
the client's requests, so the two ends of the wire cannot disagree. The JSON shape of each
result, by the name in ``Operation.result``, is in ``SCHEMAS`` below. Each operation calls
exactly one ``Store`` method, named by ``Operation.name``; each parameter names the keyword
it becomes. Numbers 1-15 are the documented operations; ``open_content`` is the download.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .. import validate
from ..ids import PREFIXES

_ID_CHARS = "[0-9A-HJKMNP-TV-Z]{26}"


def _id_schema(kind: str) -> dict[str, Any]:
    return {"type": "string", "pattern": f"^{PREFIXES[kind]}_{_ID_CHARS}$"}


USER_ID_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": validate.MAX_USER_ID,
}
_DESCRIPTION_SCHEMA: dict[str, Any] = {"type": "string", "maxLength": validate.MAX_DESCRIPTION}
_TAGS_SCHEMA: dict[str, Any] = {"type": "string", "description": "comma-separated"}
_PERMISSIONS_SCHEMA: dict[str, Any] = {"type": "string", "enum": list(validate.PERMISSIONS)}


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: its name on the wire, the ``Store`` keyword it becomes, its kind.

    ``kind`` says which JSON values are accepted: ``"string"`` (a string), ``"integer"``
    (an integer, or a string of digits, as in a query), ``"tags"`` (a comma-separated
    string or, in JSON and repeated form fields, a list of strings) or ``"file"``.
    """

    name: str
    arg: str
    kind: str
    schema: dict[str, Any]
    required: bool = False
    description: str = ""


def _user(action: str) -> Param:
    return Param(
        "userId", "user_id", "string", USER_ID_SCHEMA, True, f"The ID of the user {action}."
    )


def _content_id(description: str, required: bool = True) -> Param:
    return Param("contentId", "content_id", "string", _id_schema("content"), required, description)


@dataclass(frozen=True, slots=True)
class Operation:
    """One HTTP operation and the ``Store`` method it calls."""

    name: str
    method: str
    path: str
    status: int
    result: str | None
    summary: str
    description: str
    params: tuple[Param, ...]
    number: int | None = None
    by_name: dict[str, Param] = field(init=False, repr=False, compare=False)
    path_params: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """Names of the parameters that are segments of the path."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {param.name: param for param in self.params})
        object.__setattr__(self, "path_params", tuple(re.findall(r"{(\w+)}", self.path)))

    @property
    def has_body(self) -> bool:
        """POST and PUT take their parameters from a body too (form fields or JSON)."""
        return self.method in ("POST", "PUT")


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "upload",
        "POST",
        "/upload",
        201,
        "Content",
        "Upload Content",
        "Upload AI-generated images or videos to your DreamFlare Cloud account. The body is"
        " multipart/form-data, its parts in any order; the `file` part is streamed to the"
        " store while it is hashed. With `contentId`, the file becomes a new"
        " version of that content.",
        (
            Param(
                "file",
                "file",
                "file",
                {"type": "string", "format": "binary"},
                True,
                "The content file to be uploaded.",
            ),
            Param(
                "description",
                "description",
                "string",
                _DESCRIPTION_SCHEMA,
                False,
                "A description of the uploaded content.",
            ),
            Param(
                "tags",
                "tags",
                "tags",
                _TAGS_SCHEMA,
                False,
                "Comma-separated tags for categorizing the content.",
            ),
            _user("uploading the content"),
            _content_id("Add the file as a new version of this content.", required=False),
            Param(
                "filename",
                "filename",
                "string",
                {"type": "string", "minLength": 1, "maxLength": validate.MAX_FILENAME},
                False,
                "The name to keep (default: the file part's filename).",
            ),
            Param(
                "path",
                "path",
                "string",
                {"type": "string", "minLength": 1, "maxLength": validate.MAX_PATH},
                False,
                "Where the file sits in its folder, /-separated (renders/a/cat.png).",
            ),
        ),
        1,
    ),
    Operation(
        "get_content",
        "GET",
        "/content/{contentId}",
        200,
        "Content",
        "Get Content",
        "Retrieve information about a specific content item.",
        (_content_id("The ID of the content to retrieve."), _user("requesting the content")),
        2,
    ),
    Operation(
        "delete_content",
        "DELETE",
        "/content/{contentId}",
        204,
        None,
        "Delete Content",
        "Delete a specific content item from your account.",
        (_content_id("The ID of the content to delete."), _user("deleting the content")),
        3,
    ),
    Operation(
        "list_content",
        "GET",
        "/content/list",
        200,
        "ContentPage",
        "List Content",
        "List all content items in your account, newest first.",
        (
            _user("listing the content"),
            Param(
                "limit",
                "limit",
                "integer",
                {"type": "integer", "minimum": 1, "maximum": validate.MAX_LIMIT, "default": 50},
                False,
                "Number of content items to retrieve.",
            ),
            Param(
                "offset",
                "offset",
                "integer",
                {"type": "integer", "minimum": 0, "maximum": validate.MAX_OFFSET, "default": 0},
                False,
                "Offset for pagination.",
            ),
        ),
        4,
    ),
    Operation(
        "update_metadata",
        "PUT",
        "/content/{contentId}/metadata",
        200,
        "Content",
        "Update Content Metadata",
        "Update metadata for a specific content item (give a description, tags, or both);"
        " each update is a new version.",
        (
            _content_id("The ID of the content to update."),
            _user("updating the content"),
            Param(
                "description",
                "description",
                "string",
                _DESCRIPTION_SCHEMA,
                False,
                "New description for the content.",
            ),
            Param(
                "tags",
                "tags",
                "tags",
                _TAGS_SCHEMA,
                False,
                "New comma-separated tags for the content.",
            ),
        ),
        5,
    ),
    Operation(
        "get_storage_usage",
        "GET",
        "/storage/usage",
        200,
        "StorageUsage",
        "Get Storage Usage",
        "Retrieve the storage usage for your account.",
        (_user("requesting the storage usage"),),
        6,
    ),
    Operation(
        "get_api_usage",
        "GET",
        "/api/usage",
        200,
        "ApiUsage",
        "Get API Usage",
        "Retrieve API usage statistics for your account.",
        (_user("requesting the API usage"),),
        7,
    ),
    Operation(
        "generate_api_key",
        "POST",
        "/api/key/generate",
        201,
        "NewApiKey",
        "Generate API Key",
        "Generate a new API key for your account. The secret (`apiKey`) is shown only in"
        " this response.",
        (
            _user("generating the API key"),
            Param(
                "description",
                "description",
                "string",
                _DESCRIPTION_SCHEMA,
                False,
                "A description for the new API key.",
            ),
        ),
        8,
    ),
    Operation(
        "revoke_api_key",
        "DELETE",
        "/api/key/{keyId}/revoke",
        204,
        None,
        "Revoke API Key",
        "Revoke a specific API key.",
        (
            Param(
                "keyId",
                "key_id",
                "string",
                _id_schema("key"),
                True,
                "The ID of the API key to revoke.",
            ),
            _user("revoking the API key"),
        ),
        9,
    ),
    Operation(
        "get_analytics",
        "GET",
        "/analytics",
        200,
        "Analytics",
        "Get Analytics",
        "Retrieve analytics data for your content.",
        (
            _user("requesting analytics"),
            _content_id(
                "The ID of the specific content to retrieve analytics for.", required=False
            ),
        ),
        10,
    ),
    Operation(
        "create_collaboration",
        "POST",
        "/collaboration/create",
        201,
        "Collaboration",
        "Create Collaboration",
        "Create a new collaboration on a content item.",
        (
            _user("creating the collaboration"),
            _content_id("The ID of the content to collaborate on."),
            Param(
                "collaboratorId",
                "collaborator_id",
                "string",
                USER_ID_SCHEMA,
                True,
                "The ID of the collaborator.",
            ),
            Param(
                "permissions",
                "permissions",
                "string",
                _PERMISSIONS_SCHEMA,
                False,
                "Permissions for the collaborator (read/write; default read).",
            ),
        ),
        11,
    ),
    Operation(
        "list_collaborations",
        "GET",
        "/collaboration/list",
        200,
        "CollaborationList",
        "List Collaborations",
        "List all collaborations for your account: those you own and those shared with you.",
        (_user("listing collaborations"),),
        12,
    ),
    Operation(
        "update_collaboration",
        "PUT",
        "/collaboration/{collaborationId}",
        200,
        "Collaboration",
        "Update Collaboration",
        "Update the details of a specific collaboration.",
        (
            Param(
                "collaborationId",
                "collaboration_id",
                "string",
                _id_schema("collaboration"),
                True,
                "The ID of the collaboration to update.",
            ),
            _user("updating the collaboration"),
            Param(
                "permissions",
                "permissions",
                "string",
                _PERMISSIONS_SCHEMA,
                False,
                "New permissions for the collaborator (read/write).",
            ),
        ),
        13,
    ),
    Operation(
        "delete_collaboration",
        "DELETE",
        "/collaboration/{collaborationId}",
        204,
        None,
        "Delete Collaboration",
        "Delete a specific collaboration.",
        (
            Param(
                "collaborationId",
                "collaboration_id",
                "string",
                _id_schema("collaboration"),
                True,
                "The ID of the collaboration to delete.",
            ),
            _user("deleting the collaboration"),
        ),
        14,
    ),
    Operation(
        "get_content_versions",
        "GET",
        "/content/{contentId}/versions",
        200,
        "VersionList",
        "Get Content Versions",
        "Retrieve the version history of a specific content item, oldest first.",
        (
            _content_id("The ID of the content to retrieve versions for."),
            _user("requesting versions"),
        ),
        15,
    ),
    Operation(
        "open_content",
        "GET",
        "/content/{contentId}/data",
        200,
        "bytes",
        "Download Content",
        "The bytes of a content, or of one of its versions, verified against their hash."
        " Supports `Range` (one range), `If-None-Match` and `If-Range`; the `ETag` is the"
        " hash in quotes.",
        (
            _content_id("The ID of the content to download."),
            _user("downloading the content"),
            Param(
                "version",
                "version",
                "integer",
                {"type": "integer", "minimum": 1},
                False,
                "A version number (default: the current version).",
            ),
        ),
    ),
)

BY_NAME: dict[str, Operation] = {op.name: op for op in OPERATIONS}


# -- the JSON shapes of the results ------------------------------------------------------
# Keyed by the names in ``Operation.result`` (and the records they hold), with the error
# body and the health check. Each is a record's ``to_dict()`` shape exactly.

_STRING: dict[str, Any] = {"type": "string"}
_INT: dict[str, Any] = {"type": "integer", "minimum": 0}
_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
_HASH: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]{64}$"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    out["type"] = [schema["type"], "null"]
    return out


def _object(
    properties: dict[str, Any], optional: tuple[str, ...] = (), **extra: Any
) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
        **extra,
    }


def ref(name: str) -> dict[str, Any]:
    """A JSON Schema reference to the schema ``name`` of ``SCHEMAS``."""
    return {"$ref": f"#/components/schemas/{name}"}


def _items(name: str) -> dict[str, Any]:
    return _object({"items": {"type": "array", "items": ref(name)}})


_TAGS = {"type": "array", "items": _STRING}
_COUNTS = {"calls": _INT, "errors": _INT, "bytesIn": _INT, "bytesOut": _INT}

SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {"error": _object({"code": _STRING, "message": _STRING})},
        description='Every error: {"error": {"code", "message"}}.',
    ),
    "Content": _object(
        {
            "contentId": _STRING,
            "userId": _STRING,
            "filename": _STRING,
            "mimeType": _STRING,
            "size": _INT,
            "hash": _HASH,
            "description": _nullable(_STRING),
            "tags": _TAGS,
            "version": {"type": "integer", "minimum": 1},
            "createdAt": _TIME,
            "updatedAt": _TIME,
            "width": _INT,
            "height": _INT,
            "path": _STRING,
        },
        optional=("width", "height", "path"),
    ),
    "Version": _object(
        {
            "versionId": _STRING,
            "contentId": _STRING,
            "version": {"type": "integer", "minimum": 1},
            "userId": _STRING,
            "createdAt": _TIME,
            "hash": _HASH,
            "size": _INT,
            "filename": _STRING,
            "mimeType": _STRING,
            "description": _nullable(_STRING),
            "tags": _TAGS,
            "changes": {
                "type": "array",
                "items": {
                    "type": "string",
                    "enum": ["file", "filename", "path", "description", "tags"],
                },
            },
            "width": _INT,
            "height": _INT,
            "path": _STRING,
        },
        optional=("width", "height", "path"),
    ),
    "ContentPage": _object(
        {
            "items": {"type": "array", "items": ref("Content")},
            "total": _INT,
            "limit": {"type": "integer", "minimum": 1, "maximum": validate.MAX_LIMIT},
            "offset": _INT,
        }
    ),
    "VersionList": _items("Version"),
    "CollaborationList": _items("Collaboration"),
    "StorageUsage": _object(
        {
            "userId": _STRING,
            "contentCount": _INT,
            "versionCount": _INT,
            "bytes": _INT,
            "historyBytes": _INT,
            "quotaBytes": _nullable(_INT),
        }
    ),
    "ApiUsage": _object(
        {
            "userId": _STRING,
            "totalCalls": _INT,
            "errors": _INT,
            "bytesIn": _INT,
            "bytesOut": _INT,
            "byOperation": {"type": "object", "additionalProperties": _object(_COUNTS)},
            "daily": {
                "type": "array",
                "items": _object({"date": {"type": "string", "format": "date"}, **_COUNTS}),
            },
        }
    ),
    "NewApiKey": _object(
        {
            "keyId": _STRING,
            "userId": _STRING,
            "description": _nullable(_STRING),
            "createdAt": _TIME,
            "revokedAt": _nullable(_TIME),
            "lastUsedAt": _nullable(_TIME),
            "apiKey": {"type": "string", "minLength": 32},
        }
    ),
    "Analytics": _object(
        {
            "userId": _STRING,
            "contentId": _nullable(_STRING),
            "views": _INT,
            "downloads": _INT,
            "bytesServed": _INT,
            "uniqueViewers": _INT,
            "daily": {
                "type": "array",
                "items": _object(
                    {
                        "date": {"type": "string", "format": "date"},
                        "views": _INT,
                        "downloads": _INT,
                        "bytesServed": _INT,
                    }
                ),
            },
            "topContent": {
                "type": "array",
                "maxItems": 10,
                "items": _object({"contentId": _STRING, "views": _INT, "downloads": _INT}),
            },
        },
        optional=("topContent",),
    ),
    "Collaboration": _object(
        {
            "collaborationId": _STRING,
            "contentId": _STRING,
            "userId": _STRING,
            "collaboratorId": _STRING,
            "permissions": {"type": "string", "enum": list(validate.PERMISSIONS)},
            "createdAt": _TIME,
            "updatedAt": _TIME,
        }
    ),
    "Health": _object({"status": {"type": "string", "enum": ["ok"]}, "version": _STRING}),
}
