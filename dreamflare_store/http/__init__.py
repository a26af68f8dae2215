"""The HTTP adapter: the store's operations over HTTP, as an ASGI application.

Needs the ``http`` extra (Starlette, uvicorn, python-multipart, and the Swagger UI and
ReDoc files of drf-spectacular-sidecar for the offline ``/docs`` and ``/redoc``)::

    pip install 'dreamflare-store[http]'

>>> from dreamflare_store import Store                    # doctest: +SKIP
>>> from dreamflare_store.http import create_app
>>> app = create_app(Store("./dreamflare-data"))          # serve it with any ASGI server
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..store import Store

INSTALL_HINT = "pip install 'dreamflare-store[http]'"

__all__ = ["INSTALL_HINT", "create_app"]


def create_app(store: Store) -> Any:
    """The ASGI application (a Starlette app) serving ``store``."""
    try:
        from .app import create_app as _create_app
    except ImportError as exc:
        raise ImportError(
            f"the HTTP adapter needs Starlette, uvicorn and python-multipart ({exc.name} is"
            f" missing): {INSTALL_HINT}"
        ) from exc
    return _create_app(store)
