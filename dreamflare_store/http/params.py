"""A request's parameters: read from the query string and the body, bound to ``Store`` keywords.

Values are passed on to the store as they arrived (``limit=abc`` stays the string
``"abc"``), so the store's own checks judge them, and a refused call counts in API usage
like any other. This module refuses only what the store cannot be asked: a parameter the
operation does not take, one given twice, a JSON value of the wrong shape, a body that
cannot be decoded, and a missing ``userId``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from ..errors import InvalidArgument, PermissionDenied, Unauthenticated
from .errors import HttpError
from .multipart import parse_fields
from .operations import Operation

Item = tuple[str, Any]

MAX_FIELDS = 100
JSON_TYPES = ("application/json",)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def query_items(raw: bytes, what: str = "the query string") -> list[Item]:
    """The name-value pairs of a raw query string (or form body), strictly decoded as UTF-8."""
    if not raw:
        return []
    try:
        return parse_qsl(
            raw.decode("utf-8"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"{what} is not valid UTF-8") from exc
    except ValueError as exc:
        raise InvalidArgument(f"{what} has more than {MAX_FIELDS} fields") from exc


def media_type(content_type: str | None) -> tuple[str, dict[bytes, bytes]]:
    """The lower-cased media type of a Content-Type header, and its parameters."""
    ctype, options = parse_options_header(content_type or "")
    return ctype.decode("latin-1"), options


def body_items(content_type: str | None, body: bytes) -> list[Item]:
    """The parameters in a POST or PUT body: JSON, URL-encoded or multipart form fields."""
    if not body:
        return []
    ctype, options = media_type(content_type)
    if ctype in JSON_TYPES or ctype.endswith("+json"):
        return _json_items(body)
    if ctype == "application/x-www-form-urlencoded":
        return query_items(body, "the form body")
    if ctype == "multipart/form-data":
        boundary = options.get(b"boundary")
        if not boundary:
            raise InvalidArgument("a multipart/form-data body needs a boundary")
        return list(parse_fields(boundary, body))
    raise HttpError(
        415,
        "unsupported_media_type",
        f"the body must be JSON or form fields, not {ctype or 'of no stated type'}",
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise InvalidArgument(f"the JSON body gives {key!r} more than once")
        seen[key] = value
    return seen


def _json_items(body: bytes) -> list[Item]:
    try:
        document = json.loads(body, object_pairs_hook=_no_duplicates)
    except InvalidArgument:
        raise
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidArgument(f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidArgument("the JSON body must be an object of parameters")
    return list(document.items())


def _checked(op: Operation, name: str, value: Any) -> Any:
    """The value if its JSON shape fits the parameter (the store judges its content)."""
    param = op.by_name.get(name)
    if param is None or param.kind == "file":
        expected = ", ".join(p.name for p in op.params if p.kind != "file")
        hint = " (the file goes in the multipart body)" if name == "file" else ""
        raise InvalidArgument(f"unknown parameter {name!r}{hint}; {op.summary} takes {expected}")
    if value is None:
        return None
    if param.kind == "integer":
        ok = isinstance(value, int | str) and not isinstance(value, bool)
    elif param.kind == "boolean":
        ok = isinstance(value, bool | str)
    elif param.kind == "tags":
        ok = isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(item, str) for item in value)
        )
    else:
        ok = isinstance(value, str)
    if not ok:
        kind = {
            "integer": "an integer",
            "tags": "a string or a list of strings",
            "boolean": "true or false",
        }
        raise InvalidArgument(
            f"{name} must be {kind.get(param.kind, 'a string')}, not {type(value).__name__}"
        )
    return value


def bind(op: Operation, items: Iterable[Item]) -> dict[str, Any]:
    """Map a request's parameters, by wire name, to the keywords of ``op``'s store method.

    JSON ``null`` means "not given". Repeated ``tags`` (``tags=a&tags=b``) are a list of
    tags; any other parameter given twice (in the path and the query, say) is refused. A missing
    ``userId`` (or any other required parameter) is ``InvalidArgument``.
    """
    values: dict[str, Any] = {}
    for name, raw in items:
        value = _checked(op, name, raw)
        if value is None:
            continue
        if name in values:
            first = values[name]
            if op.by_name[name].kind == "tags" and isinstance(value, str):
                # Repeated fields are the list form: one tag each, as in a JSON list.
                values[name] = [*([first] if isinstance(first, str) else first), value]
                continue
            raise InvalidArgument(f"{name} is given more than once")
        values[name] = value
    for param in op.params:
        if param.required and param.kind != "file" and not values.get(param.name):
            raise InvalidArgument(f"{param.name} is required")
    return {op.by_name[name].arg: value for name, value in values.items()}


def check_item(op: Operation, name: str, value: Any, key_user: str) -> None:
    """Refuse one parameter as it arrives (a multipart field, before or after a large
    file): unknown, of the wrong shape, or a ``userId`` that is not the key's."""
    _checked(op, name, value)
    if name == "userId":
        check_user({"user_id": value}, key_user)


def check_user(kwargs: dict[str, Any], key_user: str) -> None:
    """The userId rule: a request acts only as the user whose API key it carries."""
    if kwargs["user_id"] != key_user:
        raise PermissionDenied(
            f"this API key does not belong to user {kwargs['user_id']!r}",
            user_id=kwargs["user_id"],
        )


def api_key(request: Request) -> str:
    """The key from ``Authorization: Bearer`` or ``X-API-Key`` (one key, one header)."""
    bearer: list[str] = []
    header: list[str] = []
    for name, raw in request.scope["headers"]:  # names are lower case in ASGI
        if name == b"authorization":
            bearer.append(raw.decode("latin-1"))
        elif name == b"x-api-key":
            header.append(raw.decode("latin-1"))
    keys: list[str] = []
    for value in bearer:
        scheme, _, credentials = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <apiKey>'")
        keys.append(credentials.strip())
    keys += [value.strip() for value in header]
    if not keys:
        raise Unauthenticated(
            "an API key is required: send 'Authorization: Bearer <apiKey>' or 'X-API-Key'"
        )
    if len(set(keys)) > 1:
        raise Unauthenticated("the request carries more than one API key")
    return keys[0]
