"""The operations served over HTTP, as data: path, method, parameters, status, result.

One table drives the server's routes, its parameter checks and its OpenAPI document, and
the client's requests, so the two ends of the wire cannot disagree. The JSON shape of each
result, by the name in ``Operation.result``, is in ``SCHEMAS`` (``schemas``). Each operation calls
exactly one ``Store`` method, named by ``Operation.name``; each parameter names the keyword
it becomes. Numbers 1-15 are the documented operations; ``open_content`` is the download;
``open_thumbnail``, ``create_urls`` and ``whoami`` serve the gallery.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .. import validate
from ..ids import PREFIXES
from .schemas import SCHEMAS, ref  # the JSON shapes of the results, importable from here

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
_BOOLEAN_SCHEMA: dict[str, Any] = {"type": "boolean"}
_LIMIT_SCHEMA: dict[str, Any] = {
    "type": "integer", "minimum": 1, "maximum": validate.MAX_LIMIT, "default": 50,
}  # fmt: skip
_OFFSET_SCHEMA: dict[str, Any] = {
    "type": "integer", "minimum": 0, "maximum": validate.MAX_OFFSET, "default": 0,
}  # fmt: skip
_FILTER_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 256}


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
    # ``"boolean"`` kind: true/false in JSON, "true"/"false" in a query or form.


def _user(action: str) -> Param:
    return Param(
        "userId", "user_id", "string", USER_ID_SCHEMA, True, f"The ID of the user {action}."
    )


def _content_id(description: str, required: bool = True) -> Param:
    return Param("contentId", "content_id", "string", _id_schema("content"), required, description)


def _version() -> Param:
    description = "A version number (default: the current version)."
    return Param(
        "version", "version", "integer", {"type": "integer", "minimum": 1}, False, description
    )


def _tag_filter(what: str) -> Param:
    return Param(
        "tag",
        "tags",
        "tags",
        {"type": "array", "items": {"type": "string"}},
        False,
        f"Only {what} carrying this tag (repeat it: every one must match).",
    )


def _strip(what: str) -> Param:
    return Param(
        "stripMetadata",
        "strip_metadata",
        "boolean",
        _BOOLEAN_SCHEMA,
        False,
        what,
    )


_QUERY = Param(
    "q",
    "query",
    "string",
    {"type": "string", "maxLength": validate.MAX_QUERY},
    False,
    'Words (all must match), "quoted phrases" and prefix*; anything else is literal text.',
)


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
            _tag_filter("contents"),
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
            _strip(
                "Share without how the content was made: the collaborator sees no generation"
                " record, cannot find it by prompt or generation filters, and downloads"
                " its bytes stripped of their metadata (default false)."
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
            _strip("Whether the collaborator's view is stripped of the generation metadata."),
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
            _version(),
            _strip(
                "Serve the bytes without their embedded metadata (the image data unchanged;"
                " the ETag is the stripped bytes' hash)."
            ),
        ),
    ),
    Operation(
        "search_content",
        "GET",
        "/content/search",
        200,
        "ContentPage",
        "Search Content",
        "Find your contents and those shared with you by the words of their prompt,"
        " description, tags, filename and model, and by filters; best match first, then"
        " newest (newest first without `q`).",
        (
            _user("searching"),
            _QUERY,
            _tag_filter("contents"),
            Param("model", "model", "string", _FILTER_SCHEMA, False, "Only this model."),
            Param("lora", "lora", "string", _FILTER_SCHEMA, False, "Only with this LoRA."),
            Param("sampler", "sampler", "string", _FILTER_SCHEMA, False, "Only this sampler."),
            Param("seed", "seed", "string", _FILTER_SCHEMA, False, "Only this seed."),
            Param(
                "generator", "generator", "string", _FILTER_SCHEMA, False, "Only this generator."
            ),
            Param("mimeType", "mime_type", "string", _FILTER_SCHEMA, False, "Only this type."),
            Param(
                "favorite",
                "favorite",
                "boolean",
                _BOOLEAN_SCHEMA,
                False,
                "Only your favorites (true), or only the others (false).",
            ),
            Param(
                "createdAfter",
                "created_after",
                "string",
                {"type": "string", "format": "date-time"},
                False,
                "Only contents created at or after this time (ISO 8601).",
            ),
            Param(
                "createdBefore",
                "created_before",
                "string",
                {"type": "string", "format": "date-time"},
                False,
                "Only contents created before this time (ISO 8601).",
            ),
            Param("limit", "limit", "integer", _LIMIT_SCHEMA, False, "Items per page."),
            Param("offset", "offset", "integer", _OFFSET_SCHEMA, False, "Items to skip."),
        ),
    ),
    Operation(
        "facets",
        "GET",
        "/content/facets",
        200,
        "Facets",
        "Content Facets",
        "The models, LoRAs, samplers, generators and tags of the contents you can see"
        " (matching `q` and `tag` when given), each with its count, most used first.",
        (
            _user("asking"),
            _QUERY,
            _tag_filter("contents"),
            Param("limit", "limit", "integer", _LIMIT_SCHEMA, False, "Values per facet."),
        ),
    ),
    Operation(
        "set_favorite",
        "PUT",
        "/content/{contentId}/favorite",
        204,
        None,
        "Set Favorite",
        "Mark a content you can see as one of your favorites (or unmark it).",
        (
            _content_id("The ID of the content."),
            _user("marking the content"),
            Param(
                "favorite",
                "favorite",
                "boolean",
                _BOOLEAN_SCHEMA,
                False,
                "true to mark (the default), false to unmark.",
            ),
        ),
    ),
    Operation(
        "get_generation",
        "GET",
        "/content/{contentId}/generation",
        200,
        "Generation",
        "Get Generation Metadata",
        "How a content (or one of its versions) was made: the normalised generation record"
        " and the raw texts it was read from.",
        (
            _content_id("The ID of the content."),
            _user("asking"),
            _version(),
        ),
    ),
    Operation(
        "open_thumbnail",
        "GET",
        "/content/{contentId}/thumbnail",
        200,
        "bytes",
        "Get a Thumbnail",
        "A WebP thumbnail of a content (or of one of its versions), its longest side at most"
        " `size` pixels; the generic icon of its type when it has no picture. The `ETag`"
        " names the bytes, size and renderer, and the answer may be cached as immutable;"
        " `If-None-Match` gets a 304. Counted in API usage, not as a view. Instead of a key,"
        " the URL may carry a signature from `POST /content/urls`.",
        (
            _content_id("The ID of the content."),
            _user("asking for the thumbnail"),
            Param(
                "size",
                "size",
                "integer",
                {"type": "integer", "minimum": 32, "maximum": 1024, "default": 256},
                False,
                "The longest side in pixels (default 256).",
            ),
            _version(),
        ),
    ),
    Operation(
        "create_urls",
        "POST",
        "/content/urls",
        200,
        "ContentUrlsList",
        "Sign URLs",
        "Short-lived URLs of the thumbnails and bytes of contents the user may get, for"
        " `<img>` and `<video>` tags, which cannot send a key. Each carries an HMAC of its"
        " path, user, key and expiry; it stops working at its expiry or when the key that"
        " asked for it is revoked.",
        (
            _user("asking for the URLs"),
            Param(
                "contentIds",
                "content_ids",
                "tags",
                {"type": "string", "description": "comma-separated, or a JSON list"},
                True,
                f"The contents (1 to {validate.MAX_LIMIT}).",
            ),
            Param(
                "expiresIn",
                "expires_in",
                "integer",
                {"type": "integer", "minimum": 1, "maximum": 86400, "default": 3600},
                False,
                "Seconds the URLs stay good (default an hour, at most a day).",
            ),
        ),
    ),
    Operation(
        "whoami",
        "GET",
        "/whoami",
        200,
        "Identity",
        "Who Am I",
        "The user the API key belongs to, and the key's id: how a page signed in with a key"
        " learns its user.",
        (),
    ),
)

BY_NAME: dict[str, Operation] = {op.name: op for op in OPERATIONS}

__all__ = ["BY_NAME", "OPERATIONS", "SCHEMAS", "Operation", "Param", "ref"]
