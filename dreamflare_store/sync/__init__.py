"""Sync: push and pull a store's ops, blobs and counters through any fsspec remote.

Remote layout (DESIGN.md; names and codecs in ``remote_layout``)::

    objects/<2>/<2>/<hash>             blobs, immutable, uploaded only if absent
    ops/<replica>/<first>-<last>       msgpack segments of one replica's own ops, immutable
    counters/<replica>                 that replica's counter snapshot, replaced on push

The package works over the core (``replica.Replica``), never over the ``Store`` facade:
this module configures and resolves remotes and holds the entry points; ``plan`` decides
what to send and fetch (set algebra, no I/O); ``transfer`` moves the bytes and applies
what arrived; ``remote`` is the narrow fsspec client every byte goes through.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..blobs.room import full_disk
from ..errors import (
    BlobUnavailable,
    DreamflareError,
    IntegrityError,
    InvalidArgument,
    NotFound,
    StorageFull,
)
from ..progress import Progress, Silent
from ..records.outcomes import Problem, SyncReport
from ..replica import Replica
from . import remote_layout as layout
from . import transfer
from .plan import NO_SOURCE
from .remote import Remote, RemoteSpec, check_protocol, open_remote

try:
    import fcntl
except ImportError:  # not on Windows: pushes there are serialised per process only
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "MODES",
    "NO_SOURCE",
    "add_remote",
    "fetch_blob",
    "pull",
    "push",
    "repair_blobs",
    "resolve",
    "sync",
]

MODES = ("eager", "lazy", "none")
_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


# -- remotes: configuring and resolving -----------------------------------------------------


def add_remote(replica: Replica, name: str, url: str, options: dict[str, Any]) -> None:
    """Save a remote under ``name`` (replacing one of that name). Makes no request."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgument(
            f"remote name {name!r} must be 1-64 letters, digits, '.', '_' or '-', starting"
            " with a letter or digit"
        )
    url = _normal_url(url)
    try:
        encoded = json.dumps(options, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"storage options must be plain JSON values: {exc}") from exc
    if len(encoded) > 65_536:
        raise InvalidArgument("storage options are too large")
    check_protocol(url)
    with replica.catalog.atomic():
        replica.catalog.local.set_remote(name, url, json.loads(encoded))


def _normal_url(url: object) -> str:
    """A URL as stored and used: local paths made absolute, no trailing slash."""
    if not isinstance(url, str) or not url.strip() or len(url) > 4096:
        raise InvalidArgument("a remote URL must be a non-empty string of at most 4096 chars")
    if "\x00" in url:
        raise InvalidArgument("a remote URL cannot contain NUL")
    if "://" not in url:
        return Path(url).expanduser().resolve().as_uri()
    head, _, rest = url.partition("://")
    stripped = rest.rstrip("/")
    return f"{head}://{stripped}" if stripped else url


def _looks_like_url(text: str) -> bool:
    return "://" in text or text.startswith(("/", ".", "~")) or os.sep in text


def resolve(replica: Replica, remote: str) -> RemoteSpec:
    """A configured remote name (which wins), else a URL or local path given directly."""
    if not isinstance(remote, str) or not remote:
        raise InvalidArgument("remote must be a configured name or a URL")
    configured = replica.catalog.local.remotes()
    if remote in configured:
        url, options = configured[remote]
        return RemoteSpec(remote, url, options)
    if _looks_like_url(remote):
        url = _normal_url(remote)
        return RemoteSpec(url, url, {})
    raise NotFound(
        f"no remote named {remote!r}: add it with add_remote(name, url), or give a URL",
        remote=remote,
    )


@contextlib.contextmanager
def _sync_lock(replica: Replica) -> Iterator[None]:
    """One push or pull of a store at a time, across threads and processes.

    Two pushes at once would both send the same new ops in differently cut segments.
    """
    with open(replica.path / "sync.lock", "a+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _check_mode(blobs: object) -> str:
    if blobs not in MODES:
        raise InvalidArgument(f"blobs must be one of {', '.join(MODES)}, not {blobs!r}")
    return str(blobs)


# -- entry points ---------------------------------------------------------------------------


def push(replica: Replica, remote: str, progress: Progress | None = None) -> SyncReport:
    """Send this replica's new ops (after the blobs they reference) and its counters.

    With nothing new since the last push to this remote, no request is made at all.
    """
    spec = resolve(replica, remote)
    tally = transfer.Tally()
    with _sync_lock(replica):
        transfer.push(replica, open_remote(spec), spec, progress or Silent(), tally)
    return tally.report()


def pull(
    replica: Replica, remote: str, blobs: str = "lazy", progress: Progress | None = None
) -> SyncReport:
    """Apply the other replicas' new ops from a remote and merge their counters.

    ``blobs``: "eager" fetches the bytes now (and any still remote-only), "lazy" records
    them as remote-only and fetches each on first read, "none" records them remote-only
    with no source (reading them fails until a lazy or eager pull). On any error the
    catalog is left as it was.
    """
    mode = _check_mode(blobs)
    spec = resolve(replica, remote)
    tally = transfer.Tally()
    with _sync_lock(replica):
        transfer.pull(replica, open_remote(spec), spec, mode, progress or Silent(), tally)
    return tally.report()


def sync(
    replica: Replica, remote: str, blobs: str = "lazy", progress: Progress | None = None
) -> SyncReport:
    """Pull, then push."""
    mode = _check_mode(blobs)
    spec = resolve(replica, remote)
    tally = transfer.Tally()
    with _sync_lock(replica):
        open_remote(spec).make_root()  # a first sync to a new folder is a push
        transfer.pull(replica, open_remote(spec), spec, mode, progress or Silent(), tally)
        transfer.push(replica, open_remote(spec), spec, progress or Silent(), tally)
    return tally.report()


def fetch_blob(replica: Replica, remote: str, digest: str) -> None:
    """Bring one lazily pulled blob home: download, check its hash, keep it.

    Raises BlobUnavailable for blobs pulled with blobs="none", RemoteError when the remote
    cannot be reached or holds corrupt bytes (nothing is stored then).
    """
    if remote == NO_SOURCE:
        raise BlobUnavailable(
            f"the bytes of blob {digest} are remote-only: they were pulled with blobs='none';"
            " pull with blobs='lazy' or 'eager' to fetch them",
            digest=digest,
        )
    _download_blob(replica, open_remote(resolve(replica, remote)), digest)


def repair_blobs(replica: Replica, digests: Iterable[str]) -> dict[str, str | None]:
    """Fetch a good copy of each blob (missing here, or found corrupt) from the configured
    remotes, tried in name order, each checked against its hash before it is kept.

    Returns, for each digest, the remote that gave a good copy, or None when none could
    (no remote has it, or only a corrupt copy, or none answers). A full disk stops it.
    """
    remotes: dict[str, Remote | None] = dict.fromkeys(sorted(replica.catalog.local.remotes()))
    repaired: dict[str, str | None] = {}
    for digest in digests:
        repaired[digest] = None
        for name, rem in remotes.items():
            try:
                if rem is None:
                    rem = remotes[name] = open_remote(resolve(replica, name))
                _download_blob(replica, rem, digest)
            except StorageFull:
                raise
            except DreamflareError:
                continue  # not there, corrupt there, or unreachable: try the next remote
            repaired[digest] = name
            break
    return repaired


def _download_blob(replica: Replica, rem: Remote, digest: str) -> None:
    """Download one blob from ``rem``, check its hash, keep it, and forget that it was
    remote-only. Raises RemoteError when the remote fails or holds corrupt bytes (nothing
    is stored then)."""
    temp = replica.blobs.download_path()
    try:
        with full_disk(replica.path):
            rem.get_files([(layout.blob_key(digest), temp)], {}, _no_progress)
        replica.blobs.adopt(temp, digest)
    except IntegrityError as exc:
        raise rem.error(
            f"blob {digest} is corrupt there (its bytes do not match its hash); nothing was stored"
        ) from exc
    finally:
        temp.unlink(missing_ok=True)
    with replica.catalog.atomic():
        replica.catalog.local.forget_remote_blob(digest)


def _no_progress(nbytes: int) -> None:
    return None


def repair(replica: Replica, problems: list[Problem]) -> list[Problem]:
    """The problems ``verify`` found, less the missing or corrupt blobs a configured
    remote gave a good copy of (``repair_blobs``); those it could not are said so."""
    broken = [p.subject for p in problems if p.kind in ("missing_blob", "corrupt_blob")]
    if not broken:
        return problems
    repaired = repair_blobs(replica, broken)
    tried = ", ".join(sorted(replica.catalog.local.remotes())) or "none configured"
    out = []
    for problem in problems:
        if problem.subject in repaired and repaired[problem.subject] is not None:
            continue
        if problem.subject in repaired:
            problem = Problem(
                problem.kind,
                problem.subject,
                f"{problem.message}; not repaired: no remote has a good copy (tried: {tried})",
            )
        out.append(problem)
    return out
