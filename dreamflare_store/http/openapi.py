"""The OpenAPI document of the HTTP adapter, built from the operations table.

Written out rather than inferred, because one endpoint takes its parameters from the
query string, form fields or JSON alike, and its schemas are the records' ``to_dict()``
shapes exactly (no extra properties allowed), so a fuzzer checking responses against
this document also checks that the wire format has not drifted from the records.
"""

from __future__ import annotations

import copy
from typing import Any

from .. import validate
from .operations import OPERATIONS, Operation, Param

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


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _items(name: str) -> dict[str, Any]:
    return _object({"items": {"type": "array", "items": _ref(name)}})


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
        },
        optional=("width", "height"),
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
                "items": {"type": "string", "enum": ["file", "filename", "description", "tags"]},
            },
            "width": _INT,
            "height": _INT,
        },
        optional=("width", "height"),
    ),
    "ContentPage": _object(
        {
            "items": {"type": "array", "items": _ref("Content")},
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

_ERROR_TEXT = {
    400: "Invalid argument (a malformed or missing parameter).",
    401: "Missing, unknown, malformed or revoked API key.",
    403: "userId is not the API key's user, or the user may not do this.",
    404: "No such thing, or not visible to this user.",
    409: "Conflicts with the current state.",
    413: "Over the storage quota, or a body too large.",
    415: "A body of a type this operation does not take.",
    416: "The range is outside the content.",
    500: "The stored bytes do not match their hash.",
    502: "The remote holding the bytes failed.",
    503: "The bytes are only on a remote that cannot be reached.",
}


def _error_statuses(op: Operation) -> list[int]:
    statuses = [400, 401, 403]
    if any(p.name.endswith("Id") and p.name != "userId" for p in op.params):
        statuses.append(404)
    if op.name == "create_collaboration":
        statuses.append(409)
    if op.has_body:
        statuses += [413, 415]
    if op.name == "open_content":
        statuses += [416, 500, 502, 503]
    return sorted(statuses)


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _ERROR_TEXT[status],
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": _STRING}}
    return response


def _parameter(param: Param, where: str) -> dict[str, Any]:
    return {
        "name": param.name,
        "in": where,
        "required": param.required or where == "path",
        "description": param.description,
        "schema": param.schema,
    }


def _body_schema(op: Operation, params: list[Param], json: bool) -> dict[str, Any]:
    properties = {}
    for param in params:
        schema = copy.deepcopy(param.schema)
        if json and param.kind == "tags":
            schema = {"oneOf": [schema, {"type": "array", "items": _STRING}]}
        properties[param.name] = {**schema, "description": param.description}
    return {
        "type": "object",
        "properties": properties,
        "required": [param.name for param in params if param.required],
        "additionalProperties": False,
    }


def _success(op: Operation) -> dict[str, Any]:
    if op.result is None:
        return {str(op.status): {"description": "Done (no body)."}}
    if op.result == "bytes":
        binary = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
        etag = {"ETag": {"description": "The content hash, in quotes.", "schema": _STRING}}
        return {
            "200": {"description": "The bytes.", "headers": etag, "content": binary},
            "206": {"description": "The requested range of the bytes.", "content": binary},
            "304": {"description": "Not modified: the If-None-Match ETag is current."},
        }
    return {
        str(op.status): {
            "description": op.result,
            "content": {"application/json": {"schema": _ref(op.result)}},
        }
    }


def _operation(op: Operation) -> dict[str, Any]:
    in_path = set(op.path_params)
    out: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary if op.number is None else f"{op.number}. {op.summary}",
        "description": op.description,
        "parameters": [_parameter(p, "path") for p in op.params if p.name in in_path],
        "responses": {
            **_success(op),
            **{str(status): _error_response(status) for status in _error_statuses(op)},
        },
    }
    rest = [p for p in op.params if p.name not in in_path]
    if not op.has_body:
        out["parameters"] += [_parameter(p, "query") for p in rest]
    elif op.name == "upload":
        # The file part last: it is streamed, so the fields must be known when it starts.
        ordered = [p for p in rest if p.kind != "file"] + [p for p in rest if p.kind == "file"]
        form = _body_schema(op, ordered, json=False)
        out["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": form}},
        }
    else:
        out["requestBody"] = {
            "required": True,
            "description": "Also accepted: the same parameters as multipart form fields, or"
            " in the query string.",
            "content": {
                "application/json": {"schema": _body_schema(op, rest, json=True)},
                "application/x-www-form-urlencoded": {"schema": _body_schema(op, rest, json=False)},
            },
        }
    return out


def document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every operation, with the health check."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    paths["/health"] = {
        "get": {
            "operationId": "health",
            "summary": "Health check",
            "description": "Answers while the server is up. Needs no API key.",
            "security": [],
            "responses": {
                "200": {
                    "description": "Up.",
                    "content": {"application/json": {"schema": _ref("Health")}},
                }
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "DreamFlare Store API",
            "version": version,
            "description": (
                "The operations of a dreamflare store over HTTP. Send your API key as"
                " `Authorization: Bearer <apiKey>` (or `X-API-Key: <apiKey>`); every request"
                " acts as the key's user, so `userId` must be that user. Parameters go in the"
                " query string for GET and DELETE, and in form fields or a JSON object for"
                ' POST and PUT. Errors are `{"error": {"code", "message"}}`.'
            ),
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
    }
