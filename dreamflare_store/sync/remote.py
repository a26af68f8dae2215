"""The fsspec boundary of sync: open a remote, move bytes in bulk, translate its errors.

Everything sync does to a remote goes through a ``Remote``. Every exception fsspec, s3fs,
gcsfs, botocore, aiohttp or the OS raises in there becomes a ``RemoteError`` in
``_translate``, and nowhere else. This module imports fsspec, so only ``sync`` imports it,
and only when a remote is used (``import fsspec`` alone costs ~135 ms of start-up).

Writes are atomic on every kind of remote, so a reader (or a crash) never leaves a
half-written object under its final name:

- object stores (S3, GCS, Azure, memory) publish an object only when its upload completes,
  so bytes go straight to their name, many at once with fsspec's bulk ``put``;
- a local folder gets a bulk ``put`` to temporary names beside the targets, then a rename
  of each (a local system call, not a remote request);
- any other filesystem gets the same temporary names and one ``mv`` per object.
"""

from __future__ import annotations

import os

# Before gcsfs can be imported (fsspec imports it on first use of gs://): gcsfs 2026.x
# otherwise probes every bucket's layout over gRPC and retries it for up to a minute.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

import asyncio  # noqa: E402
import json  # noqa: E402
import secrets  # noqa: E402
import threading  # noqa: E402
from collections import OrderedDict  # noqa: E402
from collections.abc import Callable, Iterable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlsplit, urlunsplit  # noqa: E402

import fsspec  # type: ignore[import-untyped]  # noqa: E402
import fsspec.asyn  # type: ignore[import-untyped]  # noqa: E402
from fsspec.callbacks import Callback  # type: ignore[import-untyped]  # noqa: E402

from ..blobs.room import is_full  # noqa: E402
from ..errors import DreamflareError, RemoteError  # noqa: E402

# Protocols whose objects appear whole or not at all once an upload completes.
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "memory"})
LOCAL = frozenset({"file", "local"})
# gcsfs sends payloads under 5 MiB as multipart/related with the fixed boundary "==0==";
# bytes containing it break the upload (HTTP 500, retried for ~30 s). Those go resumable.
GCS_BOUNDARY = b"--==0=="
GCS_SIMPLE_UPLOAD_MAX = 5 * 2**20
GCS_PARALLEL_GET_MIN = 100 * 2**20
# Words that mark a storage option as a credential: never shown in messages.
SECRET_WORDS = ("secret", "token", "password", "passwd", "credential", "key", "session", "sas")
# Exception class names (anywhere in the MRO) that mean "could not reach the remote",
# matched by name so that botocore or aiohttp need not be installed to recognise them.
_UNREACHABLE = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ClientConnectorError",
        "ClientConnectionError",
        "ServerDisconnectedError",
        "ServerTimeoutError",
        "ConnectionError",
        "TimeoutError",
    }
)
_CREDENTIALS = frozenset(
    {"NoCredentialsError", "PartialCredentialsError", "GoogleAuthError", "RefreshError"}
)


@dataclass(frozen=True, slots=True)
class RemoteSpec:
    """Where a remote is: the identity progress is kept under, its URL and its options.

    ``identity`` is the configured name, or the URL itself when one was given directly.
    """

    identity: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)


def display_url(url: str) -> str:
    """The URL without any ``user:password@`` part, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def protocol_of(url: str) -> str:
    """The fsspec protocol of a URL (``file`` for a plain path)."""
    head, sep, _ = url.partition("://")
    return head.lower().split("::")[0] if sep else "file"


def check_protocol(url: str) -> None:
    """Raise RemoteError unless fsspec knows the URL's protocol and its package is installed.

    Needs no network: a remote can be added while offline.
    """
    protocol = protocol_of(url)
    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError as exc:
        raise RemoteError(
            f"unknown remote protocol {protocol!r} in {display_url(url)}: fsspec knows no such"
            " filesystem",
            url=display_url(url),
        ) from exc
    except ImportError as exc:
        hint = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}.get(protocol)
        extra = f" (pip install 'dreamflare-store[{hint}]')" if hint else ""
        raise RemoteError(
            f"the {protocol}:// filesystem is not installed{extra}: {exc}",
            url=display_url(url),
        ) from exc


# Open remotes, shared by every store of the process: the first request of a new S3
# client costs ~0.5 s (botocore loads its service model per session). This is the one
# owner of open filesystems: fsspec's own instance cache is always skipped, since it
# keeps one instance per thread and per spelling of the options.
_OPEN: OrderedDict[tuple[str, str, str], Remote] = OrderedDict()
_OPEN_MAX = 32
_OPEN_LOCK = threading.Lock()


def open_remote(spec: RemoteSpec) -> Remote:
    """An open client for a remote, reused while its name, URL and options stay the same
    (opening makes no request)."""
    key = (spec.identity, spec.url, json.dumps(spec.options, sort_keys=True, default=str))
    with _OPEN_LOCK:
        remote = _OPEN.get(key)
        if remote is not None:
            _OPEN.move_to_end(key)
            return remote
    remote = _connect(spec)
    with _OPEN_LOCK:
        remote = _OPEN.setdefault(key, remote)
        while len(_OPEN) > _OPEN_MAX:
            _OPEN.popitem(last=False)
    return remote


def _connect(spec: RemoteSpec) -> Remote:
    """Make the filesystem of a remote (no request is made yet)."""
    check_protocol(spec.url)
    options = dict(spec.options)
    # Listings must be fresh: a cached one would hide another replica's new segments.
    options["use_listings_cache"] = False
    options["skip_instance_cache"] = True
    if protocol_of(spec.url) in LOCAL:
        options.setdefault("auto_mkdir", True)
    try:
        fs, root = fsspec.url_to_fs(spec.url, **options)
    except Exception as exc:  # a foreign filesystem may raise anything: translate it
        secrets_ = _secret_values(spec.options)
        raise _translate(exc, "open", spec.identity, spec.url, secrets_) from exc
    return Remote(spec, fs, root)


def _secret_values(options: dict[str, Any]) -> list[str]:
    found: list[str] = []

    def walk(value: Any, secret: bool) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, secret or any(word in str(key).lower() for word in SECRET_WORDS))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item, secret)
        elif secret and isinstance(value, str) and len(value) >= 4:
            found.append(value)

    walk(options, False)
    return sorted(found, key=len, reverse=True)


def redact_options(options: dict[str, Any]) -> dict[str, Any]:
    """Storage options fit to print: credential values replaced by ``***``."""
    shown: dict[str, Any] = {}
    for key, value in options.items():
        if any(word in key.lower() for word in SECRET_WORDS):
            shown[key] = "***"
        elif isinstance(value, dict):
            shown[key] = redact_options(value)
        else:
            shown[key] = value
    return shown


class _FilesDone(Callback):  # type: ignore[misc]
    """An fsspec callback that reports each finished file (and its size) to ``on_file``."""

    def __init__(self, sizes: dict[str, int], on_file: Callable[[int], None]) -> None:
        super().__init__()
        self._sizes = sizes
        self._on_file = on_file

    def branched(self, path_1: str, path_2: str, **kwargs: Any) -> Callback:
        size = self._sizes.get(path_1, self._sizes.get(path_2, 0))
        return _OneFile(size, self._on_file)


class _OneFile(Callback):  # type: ignore[misc]
    def __init__(self, size: int, on_file: Callable[[int], None]) -> None:
        super().__init__()
        self._file_size = size
        self._on_file = on_file

    def __exit__(self, *exc_info: object) -> None:
        if exc_info[0] is None:  # a failed transfer is not progress
            self._on_file(self._file_size)


def _ignore(size: int) -> None:
    return None


class Remote:
    """One open remote: its filesystem, its root, and bulk transfers relative to the root.

    Paths given to and returned by the methods are relative to the root (``objects/ab/...``).
    """

    def __init__(self, spec: RemoteSpec, fs: Any, root: str) -> None:
        self.identity = spec.identity
        self.url = display_url(spec.url)
        self._secrets = _secret_values(spec.options)
        self.fs = fs
        self.base = root.rstrip("/")
        protocols = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
        self.protocols = frozenset(str(p) for p in protocols)
        if self.protocols & LOCAL:
            self.kind = "local"
        elif self.protocols & OBJECT_STORES:
            self.kind = "object"
        else:
            self.kind = "other"
        self.is_gcs = bool(self.protocols & {"gs", "gcs"})

    def __repr__(self) -> str:
        return f"<Remote {self.identity!r} {self.url}>"

    # -- the one error boundary ----------------------------------------------------------

    def _call(self, action: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the filesystem; whatever it raises becomes a RemoteError."""
        try:
            return call(*args, **kwargs)
        except DreamflareError:
            raise
        except Exception as exc:  # a foreign filesystem may raise anything: translate it
            if action == "download" and is_full(exc):
                raise  # the local disk is full, not the remote: the caller names the store
            raise _translate(exc, action, self.identity, self.url, self._secrets) from exc

    def _find_many(self, paths: list[str]) -> dict[str, dict[str, Any]]:
        """``find`` of several prefixes gathered on an async filesystem's own loop."""

        async def gather() -> list[dict[str, dict[str, Any]]]:
            finds = [self.fs._find(path, detail=True) for path in paths]
            return list(await asyncio.gather(*finds))

        found: dict[str, dict[str, Any]] = {}
        for part in fsspec.asyn.sync(self.fs.loop, gather):
            found.update(part)
        return found

    def error(self, message: str) -> RemoteError:
        """A RemoteError about this remote (for problems sync finds in what it read)."""
        where = self.url if self.identity == self.url else f"{self.identity!r} ({self.url})"
        return RemoteError(f"remote {where}: {message}", remote=self.identity, url=self.url)

    # -- paths -----------------------------------------------------------------------------

    def path(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    def _rel(self, path: str) -> str | None:
        prefix = f"{self.base}/"
        path = path.rstrip("/")
        return path[len(prefix) :] if path.startswith(prefix) else None

    # -- listing ----------------------------------------------------------------------------

    def root_exists(self) -> bool:
        """Whether the bucket or folder is there (one request)."""
        return bool(self._call("check", self.fs.exists, self.base))

    def make_root(self) -> None:
        """Create a local folder remote on first push (buckets must exist already)."""
        if self.kind == "local":
            self._call("create folder", self.fs.makedirs, self.base, exist_ok=True)

    def listing(self, *prefixes: str) -> dict[str, dict[str, Any]]:
        """Every object under the prefixes (relative path -> fsspec info).

        One listing per prefix; on an async filesystem (S3, GCS) they run at once.
        """
        paths = [self.path(prefix) for prefix in prefixes]
        if len(paths) > 1 and getattr(self.fs, "async_impl", False):
            found = self._call("list", self._find_many, paths)
        else:
            found = {}
            for path in paths:
                found.update(self._call("list", self.fs.find, path, detail=True))
        listing: dict[str, dict[str, Any]] = {}
        for path, info in found.items():
            rel = self._rel(path)
            if rel is not None and info.get("type", "file") != "directory":
                listing[rel] = info
        return listing

    # -- reading ----------------------------------------------------------------------------

    def read_many(self, rels: list[str]) -> dict[str, bytes]:
        """The bytes of several small objects, fetched concurrently in one bulk call."""
        if not rels:
            return {}
        paths = [self.path(rel) for rel in rels]
        kwargs: dict[str, Any] = {}
        if "s3" in self.protocols:
            kwargs["max_concurrency"] = 1  # else s3fs sends a HEAD before every GET
        found = self._call("read", self.fs.cat, paths, **kwargs)
        by_path = {path.rstrip("/"): data for path, data in found.items()}
        out: dict[str, bytes] = {}
        for rel, path in zip(rels, paths, strict=True):
            data = by_path.get(path, by_path.get(self.fs._strip_protocol(path)))
            if not isinstance(data, bytes):
                raise self.error(f"{rel} could not be read")
            out[rel] = data
        return out

    def get_files(
        self, pairs: list[tuple[str, Path]], sizes: dict[str, int], on_file: Callable[[int], None]
    ) -> None:
        """Download objects (relative path -> local file) concurrently in one bulk call.
        A full local disk raises its OSError, for the caller to name the store's."""
        if not pairs:
            return
        by_path = {self.path(rel): size for rel, size in sizes.items()}
        callback = _FilesDone(by_path, on_file)
        groups: list[tuple[list[tuple[str, Path]], dict[str, Any]]] = [(pairs, {})]
        if self.is_gcs:
            # gcsfs asks for an object's metadata before every download unless told to
            # use one connection; only large objects gain from more.
            small = [p for p in pairs if sizes.get(p[0], 0) < GCS_PARALLEL_GET_MIN]
            large = [p for p in pairs if sizes.get(p[0], 0) >= GCS_PARALLEL_GET_MIN]
            groups = [(small, {"concurrency": 1}), (large, {})]
        for group, kwargs in groups:
            if not group:
                continue
            rpaths = [self.path(rel) for rel, _ in group]
            lpaths = [str(local) for _, local in group]
            self._call("download", self.fs.get, rpaths, lpaths, callback=callback, **kwargs)

    # -- writing ----------------------------------------------------------------------------

    def put_files(
        self, pairs: list[tuple[Path, str]], on_file: Callable[[int], None] = _ignore
    ) -> None:
        """Upload local files (local file -> relative path) concurrently, each atomically."""
        if not pairs:
            return
        sizes = {str(local): local.stat().st_size for local, _ in pairs}
        bulk: list[tuple[str, str]] = []
        for local, rel in pairs:
            if self._gcs_needs_resumable(local, sizes[str(local)]):
                data = local.read_bytes()
                self.write(rel, data)
                on_file(len(data))
            else:
                bulk.append((str(local), rel))
        if not bulk:
            return
        callback = _FilesDone(sizes, on_file)
        lpaths = [local for local, _ in bulk]
        if self.kind == "object":
            rpaths = [self.path(rel) for _, rel in bulk]
            self._call("upload", self.fs.put, lpaths, rpaths, callback=callback)
            return
        finals = [self.path(rel) for _, rel in bulk]
        temps = [_temp_name(final) for final in finals]
        try:
            self._call("upload", self.fs.put, lpaths, temps, callback=callback)
            for temp, final in zip(temps, finals, strict=True):
                self._publish(temp, final)
        except BaseException:
            self._discard(temps)
            raise

    def write(self, rel: str, data: bytes) -> None:
        """Write one object atomically (a segment, a counter snapshot, a guarded blob)."""
        final = self.path(rel)
        kwargs: dict[str, Any] = {}
        if self.is_gcs and len(data) and GCS_BOUNDARY in data:
            kwargs["chunksize"] = len(data)  # one resumable chunk instead of multipart
        if self.kind == "object":
            self._call("upload", self.fs.pipe_file, final, data, **kwargs)
            return
        temp = _temp_name(final)
        try:
            self._call("upload", self.fs.pipe_file, temp, data, **kwargs)
            self._publish(temp, final)
        except BaseException:
            self._discard([temp])
            raise

    def _gcs_needs_resumable(self, local: Path, size: int) -> bool:
        if not self.is_gcs or size == 0 or size >= GCS_SIMPLE_UPLOAD_MAX:
            return False
        with open(local, "rb") as source:
            return GCS_BOUNDARY in source.read()

    def _publish(self, temp: str, final: str) -> None:
        if self.kind == "local":
            try:
                os.replace(self.fs._strip_protocol(temp), self.fs._strip_protocol(final))
            except OSError as exc:
                raise _translate(exc, "upload", self.identity, self.url, self._secrets) from exc
        else:
            self._call("upload", self.fs.mv, temp, final)

    def _discard(self, temps: Iterable[str]) -> None:
        """Best effort: remove temporary uploads after a failure (listings ignore them)."""
        for temp in temps:
            try:
                if self.kind == "local":
                    os.remove(self.fs._strip_protocol(temp))
                else:
                    self.fs.rm_file(temp)
            except Exception:  # noqa: BLE001, S112 (the failure being reported matters more)
                continue


def _translate(
    exc: Exception, action: str, identity: str, url: str, secrets_: list[str]
) -> RemoteError:
    """The most specific RemoteError for what a filesystem raised: the one translation."""
    names = {klass.__name__ for klass in type(exc).__mro__}
    detail = str(exc) or type(exc).__name__
    for secret in secrets_:
        detail = detail.replace(secret, "***")
    url = display_url(url)
    where = f"remote {url}" if identity == url else f"remote {identity!r} ({url})"
    status = getattr(exc, "code", None) or getattr(exc, "status", None)
    if isinstance(exc, PermissionError) or names & _CREDENTIALS or status in (401, 403):
        message = (
            f"{action}: access to {where} was refused; check its credentials (from the"
            f" environment, config files, or the remote's options): {detail}"
        )
    elif isinstance(exc, FileNotFoundError):
        message = (
            f"{action}: {where} has no such bucket, folder or object (buckets must be"
            f" created first): {detail}"
        )
    elif names & _UNREACHABLE:
        message = f"{action}: cannot reach {where}: {detail}"
    elif isinstance(exc, TypeError | ValueError) and action == "open":
        message = f"{action}: invalid URL or storage options for {where}: {detail}"
    else:
        message = f"{action}: {where} failed: {type(exc).__name__}: {detail}"
    return RemoteError(message, remote=identity, url=url)


def _temp_name(final: str) -> str:
    """A temporary name beside ``final`` that no listing mistakes for a real object."""
    return f"{final}.tmp-{secrets.token_hex(6)}"
