"""Run one local storage server in the foreground: ``python -m backends {s3,gcs}``.

It creates a bucket and prints how to point a dreamflare store at it, then serves until Ctrl-C.
All data lives in memory and is gone when the server stops.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time
from typing import Any

import backends
from backends.servers import S3Server, _log_tail, _Server

_DESCRIPTION = """\
Run a local storage server on 127.0.0.1 in the foreground, for trying out sync.

  s3   moto's S3 server (any key/secret accepted; "testing"/"testing" is printed)
  gcs  fake-gcs-server (anonymous access)

A fresh bucket is created and the fsspec URL and options for it are printed, as a
`dreamflare remote add` command line and as Python. Everything is kept in memory
and lost when the server stops (Ctrl-C).
"""

# Options a user has to give the CLI to reach the server; the cache options in storage_options
# only tune the client, so they are shown in the Python snippet alone.
_CONNECTION_OPTIONS = ("endpoint_url", "key", "secret", "token", "project")


def _instructions(server: _Server, remote: backends.Remote, remote_name: str) -> str:
    """Return the text telling the user how to use ``remote``."""
    opts = remote.storage_options
    cli = ["dreamflare", "remote", "add", remote_name, remote.url]
    for name in _CONNECTION_OPTIONS:
        if name in opts:
            cli += ["--option", f"{name}={opts[name]}"]
    kwargs = ", ".join(f"{k}={v!r}" for k, v in opts.items())
    env_lines = [
        # Needed by every process that talks to the server, not only this one.
        "export GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false"
        if server.kind == "gcs"
        else "export AWS_EC2_METADATA_DISABLED=true",
    ]
    lines = [
        f"{server.kind} server running at {server.endpoint} "
        f"(started in {server.startup_seconds:.2f} s, log: {server.log_path})",
        "",
        f"Bucket:          {remote.url}",
        f"fsspec options:  {opts!r}",
        "",
        "Shell (set this in the shell that runs dreamflare):",
        *(f"  {line}" for line in env_lines),
        f"  {shlex.join(cli)}",
        "",
        "Python:",
        "  import fsspec",
        f"  fs, root = fsspec.url_to_fs({remote.url!r}, {kwargs})",
        f"  store.add_remote({remote_name!r}, {remote.url!r}, {kwargs})",
        "",
        "Press Ctrl-C to stop (all data is lost).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, start the server, print instructions and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m backends",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=["s3", "gcs"], help="which server to run")
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    parser.add_argument("--log", default=None, help="server log file (default: temporary)")
    parser.add_argument("--bucket-prefix", default="dreamflare", help="bucket name prefix")
    parser.add_argument("--name", default=None, help="remote name in the printed commands")
    args = parser.parse_args(argv)

    start = backends.start_s3 if args.kind == "s3" else backends.start_gcs
    try:
        server: _Server = start(args.log, port=args.port)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    # SIGTERM (e.g. from `timeout`) should clean up like Ctrl-C does.
    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    with server:
        remote = server.new_bucket(args.bucket_prefix)
        name = args.name or ("local-s3" if isinstance(server, S3Server) else "local-gcs")
        print(_instructions(server, remote, name), flush=True)
        try:
            while server.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("\nstopping", file=sys.stderr, flush=True)
            return 0
        # Read the log before stop() deletes a temporary one.
        print(
            f"error: server exited unexpectedly; log:\n{_log_tail(server.log_path)}",
            file=sys.stderr,
        )
    return 1


if __name__ == "__main__":
    sys.exit(main())
