"""The gallery's side of the adapter: its page and files, thumbnails, signed URLs, whoami.

The page (``/``) and its files (``/gallery/...``) are read from this package
(``static/gallery``: HTML, CSS and plain JavaScript, no build step, nothing from another
host) and served under a strict Content-Security-Policy: scripts and styles from the
adapter only, no inline script, images and media from the adapter only.

A browser's ``<img>`` cannot send a key, so the thumbnail and download routes also accept
a signed URL (``signing``: ``userId``, ``keyId``, ``expires`` and ``sig`` in the query)
in place of the key; ``POST /content/urls`` makes them for a page of contents, with the key.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..errors import InvalidArgument, Unauthenticated
from . import download, params, workers
from .errors import HttpError
from .operations import BY_NAME, Operation

if TYPE_CHECKING:
    from ..store import Store

Endpoint = Callable[[Request], Awaitable[Response]]
SIGNED = ("keyId", "expires", "sig")
# The page loads its own script, style and icons, the pictures it is served, and asks
# the API on the same origin: nothing else, and nothing inline.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:;"
    " media-src 'self'; connect-src 'self'; font-src 'self'; manifest-src 'self';"
    " frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# The files of the page, by the name it loads them as: nothing else is served.
FILES: dict[str, str] = {
    "gallery.js": "text/javascript; charset=utf-8",
    "gallery.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def routes() -> list[BaseRoute]:
    """The routes of the page and its files."""
    return [
        Route("/", _page, methods=["GET", "HEAD"], name="gallery"),
        Route("/gallery/{name}", _file, methods=["GET", "HEAD"], name="gallery_file"),
    ]


@functools.lru_cache(maxsize=8)
def _read(name: str) -> bytes | None:
    try:
        return (resources.files(__package__) / "static" / "gallery" / name).read_bytes()
    except (FileNotFoundError, OSError):
        return None


async def _page(request: Request) -> Response:
    data = _read("index.html")
    if data is None:
        raise HttpError(404, "not_found", "the gallery's files are not installed")
    headers = {**_PAGE_HEADERS, "Cache-Control": "no-cache"}
    return Response(data, media_type="text/html; charset=utf-8", headers=headers)


async def _file(request: Request) -> Response:
    name = request.path_params["name"]
    mime = FILES.get(name)
    data = None if mime is None else _read(name)
    if mime is None or data is None:
        raise HttpError(404, "not_found", "no such path")
    headers = {**_PAGE_HEADERS, "Cache-Control": "no-cache"}
    return Response(data, media_type=mime, headers=headers)


# -- signed URLs -------------------------------------------------------------------------


def split_signed(items: list[params.Item]) -> tuple[list[params.Item], dict[str, str] | None]:
    """The request's parameters without a signed URL's fields, and those fields (None when
    the URL is not signed). A field given twice, or only some of them, is refused."""
    signed: dict[str, str] = {}
    rest: list[params.Item] = []
    for name, value in items:
        if name not in SIGNED:
            rest.append((name, value))
            continue
        if name in signed or not isinstance(value, str):
            raise Unauthenticated(f"the signed URL gives {name} more than once")
        signed[name] = value
    if not signed:
        return rest, None
    if len(signed) != len(SIGNED):
        raise Unauthenticated("a signed URL needs keyId, expires and sig")
    return rest, signed


def keyed_or_signed(
    store: Store, request: Request, op: Operation, method: Callable[..., Any]
) -> Callable[[], Any]:
    """The whole of a GET that a key or a signed URL authorises, for one worker thread:
    check the key (or the signature: genuine, unexpired, its key unrevoked), then call
    ``method`` with the parameters, as the user the key or the URL names."""
    path = [(name, request.path_params[name]) for name in op.path_params]
    items = path + params.query_items(request.scope.get("query_string", b""))
    items, signed = split_signed(items)
    key = None if signed is not None else _key(request)
    try:
        kwargs: dict[str, Any] | None = params.bind(op, items)
        refused: Exception | None = None
    except (InvalidArgument, HttpError) as exc:
        kwargs, refused = None, exc

    def call() -> Any:
        if signed is None:
            assert key is not None
            user = store.authenticate(key)
        else:
            user_id = dict(items).get("userId")
            if not isinstance(user_id, str):
                raise Unauthenticated("a signed URL names its userId")
            user = store.check_signed_url(
                request.url.path, user_id, signed["keyId"], signed["expires"], signed["sig"]
            )
        if refused is not None:
            raise refused
        assert kwargs is not None
        params.check_user(kwargs, user)
        return method(**kwargs)

    return call


def _key(request: Request) -> str:
    return params.api_key(request)


# -- endpoints -----------------------------------------------------------------------------


def thumbnail_endpoint(store: Store) -> Endpoint:
    """``GET /content/{contentId}/thumbnail``: the WebP, its ETag, and 304 when unchanged."""
    op = BY_NAME["open_thumbnail"]

    async def thumbnail(request: Request) -> Response:
        call = keyed_or_signed(store, request, op, store.open_thumbnail)
        image = await workers.POOL.run(call)
        headers = {
            "ETag": image.etag,
            "Cache-Control": (
                "private, max-age=31536000, immutable" if image.immutable else "private, no-cache"
            ),
            "X-Content-Type-Options": "nosniff",
        }
        if download.etag_matches(request.headers.get("if-none-match"), image.etag):
            return Response(status_code=304, headers=headers)
        return Response(image.data, media_type=image.mime_type, headers=headers)

    return thumbnail


def download_endpoint(store: Store) -> Endpoint:
    """``GET /content/{contentId}/data``, by key or by signed URL (videos play from one)."""
    op = BY_NAME["open_content"]

    async def content_data(request: Request) -> Response:
        call = keyed_or_signed(store, request, op, store.open_content)
        return await download.respond(request, await workers.POOL.run(call))

    return content_data


def whoami_endpoint(store: Store) -> Endpoint:
    """``GET /whoami``: the key's user and key id."""

    async def whoami(request: Request) -> Response:
        key = _key(request)
        identity = await workers.POOL.run(functools.partial(store.whoami, key))
        return JSONResponse(identity.to_dict())

    return whoami


def create_urls_endpoint(
    store: Store, read_body: Callable[[Request], Awaitable[bytes]]
) -> Endpoint:
    """``POST /content/urls``: signed URLs answering to the request's own key."""
    op = BY_NAME["create_urls"]

    async def create_urls(request: Request) -> Response:
        key = _key(request)
        # The key is checked before the body is read: a stranger's body is not read.
        identity = await workers.POOL.run(functools.partial(store.identify, key))
        body = await read_body(request)
        items = params.body_items(request.headers.get("content-type"), body)
        items += params.query_items(request.scope.get("query_string", b""))
        kwargs = params.bind(op, items)
        params.check_user(kwargs, identity.user_id)
        call = functools.partial(store.create_urls, **kwargs, key_id=identity.key_id)
        urls = await workers.POOL.run(call)
        return JSONResponse({"items": [item.to_dict() for item in urls]})

    return create_urls
