"""HTTP: the adapter's cost over the engine it serves, and over the HTTP stack it runs on.

The server is ``dreamflare_store.http.testing.LiveServer`` (uvicorn on 127.0.0.1) in its
own process, as it is deployed; the client is ``dreamflare_store.client.Client`` (httpx).

- **upload** of a large new file (``Client.upload(path)``: streamed multipart) against
  ``Store.upload(path)`` of the same file, in-process, into a fresh store on the same disk:
  what the adapter keeps of the engine's ingest speed. Each round has its own file, so
  both sides always store new bytes.
- **download** of it (``Client.open_content`` read to the end, verified) against
  ``Store.open_content`` read the same way.
- **get_content** latency over HTTP against ``GET /health`` on the same server and
  connection: the round trip of the HTTP stack itself, with no store behind it.

No targets: DESIGN.md sets none for HTTP; the ratios say where time goes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks import harness
from benchmarks.harness import Config, MiB, Result
from benchmarks.ingest import make_large_files
from dreamflare_store import Store

USER = "bench"


def serve(store_path: str) -> None:
    """Child process: serve a store until stdin closes; print the URL and an API key."""
    from dreamflare_store.http.testing import LiveServer

    with Store(store_path) as store, LiveServer(store) as server:
        key = store.generate_api_key(USER, description="benchmarks").api_key
        print(json.dumps({"url": server.url, "key": key}), flush=True)
        sys.stdin.read()


@contextmanager
def server(store_path: Path) -> Iterator[tuple[str, str]]:
    """A server process over ``store_path``: its URL and an API key of USER."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.http_api", "--serve", str(store_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the benchmark server did not start")
        info = json.loads(line)
        yield info["url"], info["key"]
    finally:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=60)


def _drain(reader: object) -> None:
    read = reader.read  # type: ignore[attr-defined]
    while read(MiB):
        pass


def run(config: Config) -> list[Result]:
    """Every HTTP benchmark, at the sizes of ``config.mode``."""
    from dreamflare_store.client import Client

    size = config.size(512 * MiB, 64 * MiB, 4 * MiB)
    calls = config.size(2_000, 300, 30)
    source_dir = config.fresh("src")
    make_large_files(source_dir, config.rounds, size, seed=4)
    sources = sorted(source_dir.iterdir())
    results = []
    with server(config.fresh("served") / "store") as (url, key), Client(url, key) as client:

        def http_upload(number: int) -> float:
            return harness.timed(lambda: client.upload(sources[number], USER))

        def direct_upload(number: int) -> float:
            folder = config.fresh(f"direct-{number}")
            with Store(folder / "store") as store:
                seconds = harness.timed(lambda: store.upload(sources[number], USER))
            config.discard(folder)
            return seconds

        engine, baseline = harness.rounds(config, http_upload, direct_upload)
        results.append(
            Result(
                "http",
                f"upload of a new {size // MiB} MiB file over HTTP",
                "throughput",
                engine,
                baseline,
                "Store.upload(path) in-process",
                work_bytes=size,
                work_items=1,
            )
        )
        source = sources[0]
        content_id = client.upload(source, USER).content_id
        with Store(config.fresh("direct-read") / "store") as store:
            local_id = store.upload(source, USER).content_id

            def http_download(number: int) -> float:
                return harness.timed(lambda: _drain(client.open_content(content_id, USER)))

            def direct_download(number: int) -> float:
                return harness.timed(lambda: _drain(store.open_content(local_id, USER)))

            engine, baseline = harness.rounds(config, http_download, direct_download)
        results.append(
            Result(
                "http",
                f"download of a {size // MiB} MiB content over HTTP (verified)",
                "throughput",
                engine,
                baseline,
                "Store.open_content read in-process (verified)",
                work_bytes=size,
                work_items=1,
            )
        )
        http = client._http  # the same connection pool, for the floor of the stack
        engine_samples: list[float] = []
        baseline_samples: list[float] = []
        for number in range(config.rounds):
            pair = [
                (lambda i: client.get_content(content_id, USER), engine_samples),
                (lambda i: http.get("/health").raise_for_status(), baseline_samples),
            ]
            for action, into in pair if number % 2 else reversed(pair):
                into.extend(harness.latencies(action, calls))
        results.append(
            Result(
                "http",
                "get_content over HTTP",
                "latency",
                engine_samples,
                baseline_samples,
                "GET /health on the same server and connection",
            )
        )
    return results


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(sys.argv[2])
        raise SystemExit(0)
    raise SystemExit(
        harness.main(
            {"http": run}, description=__doc__.splitlines()[0], prog="python -m benchmarks.http_api"
        )
    )
