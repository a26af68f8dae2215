"""``dreamflare serve``: the HTTP adapter over a store folder, run by uvicorn.

It binds its address first (a port in use is one line and exit 1, before anything is
made); then, on a loopback address, when the user (``--user``, else ``$DREAMFLARE_USER``,
else the login name) has no API key yet, it makes one and prints it with ready ``curl``
lines, so a new user can try the API at once. On any other address it warns that keys
travel in clear text without TLS.
"""

from __future__ import annotations

import contextlib
import gc
import getpass
import ipaddress
import os
import shlex
import socket
import sys
from typing import TextIO
from urllib.parse import quote

from .. import validate
from ..errors import InvalidArgument
from ..store import Store
from .context import DEFAULT_STORE

INSTALL_HINT = "pip install 'dreamflare-store[http]'"


def serve(
    store_path: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    out: TextIO | None = None,
    warm_thumbnails: bool = False,
    user: str | None = None,
) -> None:
    """Serve the store at ``store_path`` over HTTP on ``host:port`` until interrupted.

    ``store_path`` defaults to ``$DREAMFLARE_STORE``, else ``./dreamflare-data``. Messages
    for the person at the terminal go to ``out`` (default: stdout). ``user`` is who gets
    the first key (default: ``default_user()``). A port that cannot be bound raises
    InvalidArgument before the store is opened. With ``warm_thumbnails``, each upload's
    256 px thumbnail is made in the background.
    """
    try:
        import uvicorn

        from ..http.app import create_app
    except ImportError as exc:
        raise ImportError(f"serving over HTTP needs the http extra: {INSTALL_HINT}") from exc
    out = out or sys.stdout
    path = store_path or os.environ.get("DREAMFLARE_STORE") or DEFAULT_STORE
    chosen = validate.user_id(user) if user is not None else default_user()
    sock = bind(host, port)  # first: a port in use must fail before a key is made
    with sock, Store(path, warm_thumbnails=warm_thumbnails) as store:
        app = create_app(store)
        base = base_url(host, sock.getsockname()[1])
        print_welcome(store, host, base, out, chosen)
        # Everything loaded so far (modules, the app) lives as long as the server: out of
        # the collector's sight, a full collection walks only what requests make (about
        # 28 ms less per full collection, the pauses a p99 latency would show).
        gc.freeze()
        config = uvicorn.Config(app, log_level="info")
        # As uvicorn.run: Ctrl-C (re-raised by uvicorn after its graceful shutdown) ends
        # the server normally, exit code 0.
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(config).run(sockets=[sock])


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; InvalidArgument in one line if it cannot be had
    (a port in use, an address not of this machine)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise InvalidArgument(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        hint = " (another server is there: try --port)" if exc.errno == 98 else ""
        raise InvalidArgument(f"cannot listen on {host}:{port}: {reason}{hint}") from None
    sock.set_inheritable(True)
    return sock


def base_url(host: str, port: int) -> str:
    """The URL a local client uses to reach ``host:port``."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"  # an IPv6 literal
    return f"http://{shown}:{port}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_user() -> str:
    """``$DREAMFLARE_USER``, else the login name, else ``"default"``."""
    for candidate in (os.environ.get("DREAMFLARE_USER"), _login_name()):
        try:
            return validate.user_id(candidate)
        except InvalidArgument:
            continue
    return "default"


def _login_name() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 (no login name in some containers)
        return None


def print_welcome(
    store: Store, host: str, base: str, out: TextIO, user: str | None = None
) -> str | None:
    """Say where the API is; on loopback, make and show a first key if ``user`` (default:
    ``default_user()``) has none, else say how to make one. Returns the new key's secret,
    if one was made."""
    print(
        f"dreamflare: serving {store.path} at {base} (gallery: {base}/, API docs: {base}/docs)",
        file=out,
    )
    user = user or default_user()
    make = f"dreamflare key generate --user {shlex.quote(user)}"
    if not is_loopback(host):
        print(
            f"warning: {host} is reachable from other machines and API keys travel in clear"
            " text: put the server behind TLS (a reverse proxy; see the README).",
            file=out,
        )
    if store.list_api_keys(user):
        print(
            f"{user!r} has API keys already; make a new one with `{make}`"
            " (and one for anyone else with --user NAME).",
            file=out,
        )
        out.flush()
        return None
    if not is_loopback(host):
        print(f"No API key for {user!r} yet: make one with `{make}`.", file=out)
        out.flush()
        return None
    secret = store.generate_api_key(user, description="first key, made by dreamflare serve").api_key
    auth = shlex.quote(f"Authorization: Bearer {secret}")
    usage = shlex.quote(f"{base}/storage/usage?userId={quote(user, safe='')}")
    print(
        f"\nFirst run: here is an API key for user {user!r} (shown only this once):\n\n"
        f"    {secret}\n\n"
        f"Try it:\n\n"
        f"    curl -H {auth} {usage}\n"
        f"    curl -H {auth} -F userId={shlex.quote(user)} -F file=@picture.png {base}/upload\n\n"
        f"Keys for other users: dreamflare key generate --user NAME\n",
        file=out,
    )
    out.flush()
    return secret
