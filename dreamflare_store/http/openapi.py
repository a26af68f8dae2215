"""The OpenAPI document of the HTTP adapter, generated from the operations table.

Paths, methods, parameters, success statuses and result schemas all come from
``operations.OPERATIONS`` and the schemas of its results (``operations.SCHEMAS``); this
module only says how the table reads as OpenAPI 3.1: where each parameter goes (path,
query, or a form or JSON body), which errors each operation may answer, and the health
check. The result schemas are the records' ``to_dict()`` shapes exactly (no extra
properties allowed), so a fuzzer checking responses against this document also checks
that the wire format has not drifted from the records.
"""

from __future__ import annotations

import copy
from typing import Any

from .operations import OPERATIONS, SCHEMAS, Operation, Param, ref

__all__ = ["SCHEMAS", "document"]

_STRING: dict[str, Any] = {"type": "string"}

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
        "content": {"application/json": {"schema": ref("Error")}},
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
            "content": {"application/json": {"schema": ref(op.result)}},
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
                    "content": {"application/json": {"schema": ref("Health")}},
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
