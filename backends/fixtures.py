"""pytest plugin with real storage backends: ``pytest_plugins = ["backends.fixtures"]``.

Fixtures:

* ``s3_server`` / ``gcs_server`` (session): one moto / fake-gcs-server per session, started on
  first use and stopped at the end. Their logs go to pytest's session temp dir.
* ``remote_kind`` (function, parametrised ``file``, ``s3``, ``gcs``): which backend this test
  instance runs against. Tests request ``remote`` or ``remote_factory`` instead of it.
* ``remote_factory`` (function): ``remote_factory()`` returns a fresh, empty Remote of this
  test's kind on every call (a new bucket, or a new folder under tmp_path for ``file``).
* ``remote`` (function): one fresh Remote, i.e. ``remote_factory()`` called once.

A test that uses ``remote`` and ``remote_factory`` together runs three times, not nine, because
both hang off ``remote_kind``. Choose backends with ``--remote-kinds=file,s3`` (the other
instances are deselected). Servers are started lazily, so ``--remote-kinds=file`` starts none.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Importing backends first sets the environment gcsfs needs before anything imports gcsfs.
from backends import GcsServer, Remote, S3Server, local_remote, start_gcs, start_s3

REMOTE_KINDS = ("file", "s3", "gcs")

RemoteFactory = Callable[[], Remote]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--remote-kinds``."""
    parser.addoption(
        "--remote-kinds",
        default=",".join(REMOTE_KINDS),
        help="comma-separated backends for the remote fixtures (default: %(default)s)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect test instances whose remote kind was not asked for with ``--remote-kinds``."""
    wanted = {k.strip() for k in config.getoption("--remote-kinds").split(",") if k.strip()}
    if unknown := wanted - set(REMOTE_KINDS):
        raise pytest.UsageError(f"--remote-kinds: unknown {sorted(unknown)}; use {REMOTE_KINDS}")
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        kind = callspec.params.get("remote_kind") if callspec is not None else None
        (keep if kind is None or kind in wanted else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A moto S3 server on 127.0.0.1 shared by the whole session."""
    with start_s3(tmp_path_factory.mktemp("s3-server") / "server.log") as server:
        yield server


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsServer]:
    """A fake-gcs-server on 127.0.0.1 shared by the whole session."""
    with start_gcs(tmp_path_factory.mktemp("gcs-server") / "server.log") as server:
        yield server


@pytest.fixture(params=REMOTE_KINDS)
def remote_kind(request: pytest.FixtureRequest) -> str:
    """The backend kind of this test instance: ``"file"``, ``"s3"`` or ``"gcs"``."""
    kind: str = request.param
    return kind


@pytest.fixture
def remote_factory(
    remote_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> RemoteFactory:
    """A callable returning a fresh, empty Remote of this test's kind on each call."""
    if remote_kind == "file":
        counter = itertools.count()

        def new_folder() -> Remote:
            return local_remote(tmp_path / f"remote-{next(counter)}")

        return new_folder
    # Servers are separate session fixtures pulled lazily here: a parametrised fixture cannot be
    # fetched with getfixturevalue, and a file-only run should not start any server.
    server: S3Server | GcsServer = request.getfixturevalue(f"{remote_kind}_server")
    return server.new_bucket


@pytest.fixture
def remote(remote_factory: RemoteFactory) -> Remote:
    """A fresh, empty Remote: a new bucket on s3/gcs, a new folder under tmp_path for file."""
    return remote_factory()
