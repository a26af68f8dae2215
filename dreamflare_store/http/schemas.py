"""The JSON shapes of the operations' results, by the names in ``Operation.result``.

Each is a record's ``to_dict()`` shape exactly, with the error body and the health check;
the OpenAPI document (``openapi``) carries them as its component schemas.
"""

from __future__ import annotations

from typing import Any

from .. import validate

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
_GENERATION: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "The normalised generation record (GENMETA.md), or null.",
}
_FACET = _object({"value": _STRING, "count": _INT})
_FACET_KINDS = ("models", "loras", "samplers", "generators", "tags")
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
            "generation": _GENERATION,
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
            "generation": _GENERATION,
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
            "stripMetadata": {"type": "boolean"},
        }
    ),
    "Facets": _object({kind: {"type": "array", "items": _FACET} for kind in _FACET_KINDS}),
    "Generation": _object(
        {
            "contentId": _STRING,
            "version": {"type": "integer", "minimum": 1},
            "record": _GENERATION,
            "raw": {"type": "object", "additionalProperties": _STRING},
            "truncated": {"type": "array", "items": _STRING},
        }
    ),
    "Identity": _object({"userId": _STRING, "keyId": _STRING}),
    "ContentUrls": _object(
        {
            "contentId": _STRING,
            "thumbnailUrl": _STRING,
            "dataUrl": _STRING,
            "expiresAt": _TIME,
        }
    ),
    "ContentUrlsList": _items("ContentUrls"),
    "Health": _object({"status": {"type": "string", "enum": ["ok"]}, "version": _STRING}),
}
