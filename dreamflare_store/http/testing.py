"""A real server in a background thread, for tests and notebooks.

>>> with Store(tmp) as store, LiveServer(store) as server:       # doctest: +SKIP
...     client = Client(server.url, store.generate_api_key("alice").api_key)

It is uvicorn serving ``create_app(store)`` on a free port of 127.0.0.1 (bound before the
thread starts, so there is no race for the port), stopped on exit.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import uvicorn

from .app import create_app

if TYPE_CHECKING:
    from ..store import Store


class LiveServer:
    """uvicorn serving a store from a background thread, on 127.0.0.1 and a free port.

    ``app`` is the ASGI application to serve instead of ``create_app(store)`` (the
    benchmarks add routes to one).
    """

    def __init__(
        self, store: Store, host: str = "127.0.0.1", port: int = 0, *, app: Any = None
    ) -> None:
        self.store = store
        self.app = app
        self.host = host
        self.port = port
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LiveServer:
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are
        # TCP, and without it every response waits out a 40 ms delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self.url = f"http://{self.host}:{self.port}"
        config = uvicorn.Config(
            self.app or create_app(self.store), log_level="warning", ws="none", lifespan="off"
        )
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="dreamflare-http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.005)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=20)
