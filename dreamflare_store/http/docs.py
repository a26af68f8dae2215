"""The OpenAPI document and the pages that browse it: ``/openapi.json``, ``/docs``, ``/redoc``.

Swagger UI (``/docs``) and ReDoc (``/redoc``) are served whole by the adapter, their
scripts and styles read from this package's own files (``static/docs``: the standalone
builds of both, with their licenses), so the pages work offline. A Content-Security-Policy
keeps the browser from loading anything from another host (ReDoc's sidebar would fetch a
logo from its CDN; blocked, the logo is left out). Should the files be missing (a
stripped installation), each page says so and links to the raw document.
"""

from __future__ import annotations

import functools
import html
import json
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from . import INSTALL_HINT, workers
from .errors import HttpError

ASSETS_PATH = "/docs/assets"
# The files a page may load, by the name it loads them as: nothing else is served.
ASSETS: dict[str, tuple[str, str]] = {
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css; charset=utf-8"),
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", "text/javascript"),
    "favicon-32x32.png": ("swagger-ui/favicon-32x32.png", "image/png"),
    "redoc.standalone.js": ("redoc/redoc.standalone.js", "text/javascript"),
}
TITLE = "DreamFlare Store API"
# Scripts only from the adapter (no inline ones); both UIs inject inline styles; ReDoc
# searches in a worker it starts from a blob; fetches go to the API itself.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline';"
    " img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:;"
    " connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'"
)
# Swagger UI's start, served as a file (the policy allows no inline script); it reads
# the document's URL from the page.
_SWAGGER_INIT = b"""window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.spec,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    validatorUrl: null,
  });
});
"""

_SWAGGER = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-spec="{spec_attr}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/swagger-init.js"></script>
</body>
</html>
"""

_REDOC = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
<redoc spec-url="{spec_attr}"></redoc>
<script src="{assets}/redoc.standalone.js"></script>
</body>
</html>
"""

_MISSING = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title></head>
<body>
<p>The {page} page needs files this installation lacks: reinstall with <code>{hint}</code></p>
<p>The API's OpenAPI document is at <a href="{spec_attr}">{spec_attr}</a>.</p>
</body>
</html>
"""


@functools.cache
def asset_root() -> Path | None:
    """The folder of the Swagger UI and ReDoc builds shipped with the package, or None if
    any file is missing."""
    root = Path(__file__).parent / "static" / "docs"
    return root if all((root / path).is_file() for path, _ in ASSETS.values()) else None


def routes(document: dict[str, Any]) -> list[Route]:
    """The routes serving ``document`` as JSON and the two pages that browse it."""
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    async def openapi_json(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return [
        Route("/openapi.json", openapi_json, methods=["GET"], include_in_schema=False),
        Route("/docs", _swagger, methods=["GET"], include_in_schema=False),
        Route("/redoc", _redoc, methods=["GET"], include_in_schema=False),
        Route(f"{ASSETS_PATH}/{{name}}", _asset, methods=["GET"], include_in_schema=False),
    ]


def _page(request: Request, template: str, page: str) -> Response:
    # Paths are rooted where the app is mounted (behind a proxy's prefix, say).
    root = request.scope.get("root_path", "").rstrip("/")
    spec = f"{root}/openapi.json"
    values = {
        "title": html.escape(TITLE),
        "assets": html.escape(root + ASSETS_PATH),
        "spec_attr": html.escape(spec),
        "page": page,
        "hint": html.escape(INSTALL_HINT),
    }
    if asset_root() is None:
        template = _MISSING
    return HTMLResponse(template.format(**values), headers={"Content-Security-Policy": CSP})


async def _swagger(request: Request) -> Response:
    return _page(request, _SWAGGER, "Swagger UI")


async def _redoc(request: Request) -> Response:
    return _page(request, _REDOC, "ReDoc")


async def _asset(request: Request) -> Response:
    name = request.path_params["name"]
    root = asset_root()
    entry = ASSETS.get(name)
    if name == "swagger-init.js":
        data, media_type = _SWAGGER_INIT, "text/javascript"
    elif root is None or entry is None:
        raise HttpError(404, "not_found", "no such path")
    else:
        path, media_type = entry
        data = await workers.POOL.run((root / path).read_bytes)
    # The files change only with the installed package: a day's caching is safe.
    headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
    return Response(data, media_type=media_type, headers=headers)
