"""The ASGI application: routes, API-key authentication, and errors as JSON.

Each request is served in the same steps: authenticate the key, gather the parameters
(``params``), check that ``userId`` is the key's user, then make exactly one ``Store`` call
in a worker thread (the store blocks on SQLite and the disk; point reads, which do not,
run on the event loop) and answer with the record's JSON. Uploads and downloads stream
(``upload``, ``download``). Errors of every kind are answered as
``{"error": {"code", "message"}}`` with the status from ``errors.STATUS``.

A trip to a worker thread costs the event loop more than a small store call costs the
worker, so a request without a body makes one trip, key check and store call together.
Every trip, uploads and downloads included, is made by the adapter's own thread pool
(``workers``).

The application is plain Starlette, its routes built from the operations table
(``operations``), which also gives the OpenAPI document (``openapi``) served at
``/openapi.json`` and browsed at ``/docs`` and ``/redoc`` (``docs``).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..errors import DreamflareError, InvalidArgument
from ..records import Record
from . import docs, gallery, openapi, params, workers
from .errors import HttpError, status_of
from .operations import BY_NAME, OPERATIONS, Operation
from .params import api_key as _api_key
from .upload import stream_upload

if TYPE_CHECKING:
    from ..store import Store

MAX_BODY = 1024 * 1024  # parameters only: uploads stream and are not bounded by this
# Operations that are a few primary-key lookups in SQLite (readers never wait in WAL mode)
# and buffered counts (written by the buffer's own thread): on the event loop they cost
# less than the trip to a worker thread would. Whatever may scan, write or stream goes to
# the workers.
POINT_READS = frozenset({"get_content", "get_content_versions", "get_storage_usage"})
log = logging.getLogger(__name__)
T = TypeVar("T")

Endpoint = Callable[[Request], Awaitable[Response]]


def create_app(store: Store) -> Starlette:
    """The HTTP adapter over ``store``: the 15 documented operations, downloads, health,
    the OpenAPI document and its browsable docs, and the gallery (its page at ``/``,
    thumbnails, signed URLs). Returns the ASGI application."""
    from .. import __version__

    routes: list[BaseRoute] = []
    # Fixed paths first, so /content/list is never taken for /content/{contentId}.
    for op in sorted(OPERATIONS, key=lambda op: "{" in op.path):
        if op.name == "upload":
            endpoint = _upload_endpoint(store)
        elif op.name == "open_content":
            endpoint = gallery.download_endpoint(store)
        elif op.name == "open_thumbnail":
            endpoint = gallery.thumbnail_endpoint(store)
        elif op.name == "whoami":
            endpoint = gallery.whoami_endpoint(store)
        elif op.name == "create_urls":
            endpoint = gallery.create_urls_endpoint(store, _body)
        else:
            endpoint = _endpoint(store, op)
        routes.append(Route(op.path, endpoint, methods=[op.method], name=op.name))
        if op.path in ("/content/list", "/content/search", "/content/facets"):
            # Other methods on these paths are refused here, never routed as a content id.
            routes.append(Route(op.path, _get_only, methods=["PUT", "POST", "DELETE", "PATCH"]))
    routes.append(Route("/health", _health, methods=["GET"], name="health"))
    routes += docs.routes(openapi.document(__version__))
    routes += gallery.routes()
    return Starlette(
        routes=routes,
        exception_handlers={
            DreamflareError: _dreamflare_error,
            HttpError: _http_error,
            HTTPException: _starlette_error,
            Exception: _internal_error,
        },
    )


# -- the steps of every request -----------------------------------------------------------


async def _authenticate(store: Store, request: Request) -> str:
    """The user whose valid, unrevoked key the request carries (else Unauthenticated)."""
    key = _api_key(request)
    return await _in_thread(functools.partial(store.authenticate, key))


async def _in_thread(call: Callable[[], T]) -> T:
    """``call()`` in a worker thread (if the request is cancelled meanwhile, the call
    still finishes and its result is dropped: a reader so dropped closes when collected)."""
    return await workers.POOL.run(call)


def _items(op: Operation, request: Request) -> list[params.Item]:
    path = [(name, request.path_params[name]) for name in op.path_params]
    return path + params.query_items(request.scope.get("query_string", b""))


async def _body(request: Request) -> bytes:
    """The whole (small) body of a POST or PUT that carries parameters."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise _too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> HttpError:
    return HttpError(413, "request_too_large", f"a parameter body may be at most {MAX_BODY} bytes")


def _render(op: Operation, result: Any) -> Response:
    if result is None:
        return Response(status_code=op.status)
    if isinstance(result, list):
        body: Any = {"items": [item.to_dict() for item in result]}
    else:
        assert isinstance(result, Record)
        body = result.to_dict()
    return JSONResponse(body, status_code=op.status)


# -- endpoints ------------------------------------------------------------------------------


def _endpoint(store: Store, op: Operation) -> Endpoint:
    method = getattr(store, op.name)
    # Store arguments the seed lists as optional but the method needs (the permissions of
    # an update): left out, they reach the store as None, which refuses them.
    needed = [
        name
        for name, param in inspect.signature(method).parameters.items()
        if param.default is inspect.Parameter.empty
    ]

    async def endpoint(request: Request) -> Response:
        key = _api_key(request)
        if op.has_body:
            # The key is checked before the body is read: a stranger's body is not read.
            user = await _in_thread(functools.partial(store.authenticate, key))
            body = await _body(request)
            items = _items(op, request)
            items += params.body_items(request.headers.get("content-type"), body)
            kwargs = params.bind(op, items)
            params.check_user(kwargs, user)
            kwargs = {**dict.fromkeys(needed), **kwargs}
            return _render(op, await _in_thread(functools.partial(method, **kwargs)))
        # No body: the parameters are at hand, so the key check and the store call share
        # one trip to a worker thread (each trip costs more than the check itself), or
        # none at all for a point read.
        call = _keyed_call(store, key, op, request, method, needed)
        if op.name in POINT_READS:
            return _render(op, call())
        return _render(op, await _in_thread(call))

    endpoint.__name__ = op.name
    return endpoint


def _keyed_call(
    store: Store,
    key: str,
    op: Operation,
    request: Request,
    method: Callable[..., T],
    needed: Iterable[str] = (),
) -> Callable[[], T]:
    """The whole of a request without a body, for one worker thread: check the key, then
    (only for the key's holder) refuse bad parameters or call ``method`` with them."""
    try:
        kwargs = {**dict.fromkeys(needed), **params.bind(op, _items(op, request))}
    except (DreamflareError, HttpError) as exc:
        refused: Exception | None = exc
    else:
        refused = None

    def call() -> T:
        user = store.authenticate(key)
        if refused is not None:
            raise refused
        params.check_user(kwargs, user)
        return method(**kwargs)

    return call


def _upload_endpoint(store: Store) -> Endpoint:
    op = BY_NAME["upload"]

    async def upload(request: Request) -> Response:
        user = await _authenticate(store, request)
        items = _items(op, request)
        ctype, options = params.media_type(request.headers.get("content-type"))
        if ctype != "multipart/form-data":
            raise HttpError(
                415,
                "unsupported_media_type",
                "an upload is a multipart/form-data body with a 'file' part",
            )
        boundary = options.get(b"boundary")
        if not boundary:
            raise InvalidArgument("a multipart/form-data body needs a boundary")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit():
            # The body holds the file and a little more: a disk without room for all of
            # it is refused before a byte is written (a chunked body is checked as it
            # streams, by the blob store).
            await _in_thread(functools.partial(store.check_room, int(declared)))
        content = await stream_upload(store, user, items, boundary, request.stream())
        return _render(op, content)

    return upload


async def _get_only(request: Request) -> Response:
    path = request.url.path
    raise HttpError(405, "method_not_allowed", f"{path} only answers GET", {"Allow": "GET"})


async def _health(request: Request) -> Response:
    from .. import __version__

    return JSONResponse({"status": "ok", "version": __version__})


# -- errors -----------------------------------------------------------------------------------


def _error(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="dreamflare"'
    return JSONResponse(body, status_code=status, headers=headers)


async def _dreamflare_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DreamflareError)
    status = status_of(exc)
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc.message)
    return _error(status, exc.to_dict())


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpError)
    return _error(exc.status, exc.to_dict(), exc.headers)


_STARLETTE_CODES = {404: "not_found", 405: "method_not_allowed"}


async def _starlette_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _STARLETTE_CODES.get(exc.status_code, "http_error")
    message = "no such path" if exc.status_code == 404 else str(exc.detail)
    return _error(exc.status_code, {"error": {"code": code, "message": message}}, exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("internal error serving %s %s", request.method, request.url.path)
    return _error(500, {"error": {"code": "internal", "message": "internal server error"}})
