"""HTTP: the adapter against the bare HTTP stack it runs on, and against the engine it serves.

Three processes, all on 127.0.0.1. The server (``--serve``) is uvicorn serving
``create_app(store)`` as deployed, with bare routes of the same framework added to the
same app in that process only (the package's app has none). The load generator
(``--load``) is a separate process that sends a bounded number of requests over a few
keep-alive connections (raw HTTP/1.1 on asyncio, so that it costs the server's CPU as
little as possible) and reports its timings as JSON. The benchmark process steers both.
uvicorn runs as ``LiveServer`` runs it: its default HTTP parser (h11, or httptools where
installed) and no access log, for both sides alike. In the request benchmarks the sides
take turns a slice of requests at a time, so a busy machine weighs on both alike.

- **GET /content/{contentId}** (authenticated, one ``Store.get_content``) against a bare
  route returning a fixed copy of the same content JSON: no key check, no store. Both get
  the same requests (API key included). Target: 0.5x the bare route's throughput.
- **small upload** (``POST /upload`` of a new 4 KiB file per request, multipart with a
  ``userId`` field) against a bare route of the same framework that reads the same body the
  framework's own way (``await request.form()``) and passes the file to ``Store.upload`` in
  a worker thread, answering its JSON. That baseline stores too, because every upload is
  durable: the blob and the catalog are each flushed to disk before the answer, some
  milliseconds here, tens of times what the HTTP stack costs, so against a route that
  stores nothing the ratio would measure the disk, not the adapter. The rate of such a
  route (same body, same JSON, nothing stored) is in the note. Target: 0.5x.
- **large upload** (``Client.upload(path)``: a streamed multipart body) of a new file
  against ``Store.upload(path)`` of the same file in-process, into a fresh store on the
  same disk. The body flows from the socket into the blob store's temp file: it is written
  once. Target: 0.5x.
- **download** of that content (``Client.open_content`` read to the end, verified) against
  ``Store.open_content`` read the same way. No target: it says what the HTTP hop costs.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks import harness
from benchmarks.harness import Config, MiB, Result
from benchmarks.ingest import make_large_files
from dreamflare_store import Store

USER = "bench"
CONCURRENCY = 4  # keep-alive connections of the load generator
SMALL_FILE = 4096
BOUNDARY = "dreamflare-benchmark-boundary"
BARE = "/bench"  # the bare routes live under this prefix, in the benchmark's server only


# -- the server process -----------------------------------------------------------------


def add_bare_routes(app: Any, store: Store, document: dict[str, Any]) -> None:
    """Routes of the same app (so the same framework, server and middleware) doing the
    least each benchmark's work needs: ``document`` is the content JSON they answer."""
    import anyio
    from starlette.datastructures import UploadFile
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    async def content(request: Request) -> Response:
        return JSONResponse(document)

    async def form_file(request: Request) -> tuple[str, bytes, str | None]:
        async with request.form() as form:
            user, upload = form["userId"], form["file"]
            assert isinstance(user, str) and isinstance(upload, UploadFile)
            return user, await upload.read(), upload.filename

    async def upload(request: Request) -> Response:
        user, data, filename = await form_file(request)
        stored = await anyio.to_thread.run_sync(
            functools.partial(store.upload, data, user, filename=filename)
        )
        return JSONResponse(stored.to_dict(), status_code=201)

    async def upload_nothing(request: Request) -> Response:
        await form_file(request)
        return JSONResponse(document, status_code=201)

    app.add_route(f"{BARE}/content/{{contentId}}", content, methods=["GET"])
    app.add_route(f"{BARE}/upload", upload, methods=["POST"])
    app.add_route(f"{BARE}/upload-nothing", upload_nothing, methods=["POST"])


def serve(store_path: str) -> None:
    """Child process: serve a store until stdin closes; print what the benchmark needs."""
    from dreamflare_store.http import create_app
    from dreamflare_store.http.testing import LiveServer

    with Store(store_path) as store:
        key = store.generate_api_key(USER, description="benchmarks").api_key
        sample = store.upload(
            os.urandom(SMALL_FILE), USER, description="a sample", tags="bench,sample"
        )
        app = create_app(store)
        add_bare_routes(app, store, sample.to_dict())
        with LiveServer(store, app=app) as server:
            info = {"url": server.url, "key": key, "content_id": sample.content_id}
            print(json.dumps(info), flush=True)
            sys.stdin.read()


@contextmanager
def server(store_path: Path) -> Iterator[dict[str, str]]:
    """A server process over ``store_path``: its URL, an API key of USER, a content id."""
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
        yield json.loads(line)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=60)


# -- the load generator process ---------------------------------------------------------


def load(url: str) -> None:
    """Child process: run each job read from stdin (a JSON line), print its timings."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    for line in sys.stdin:
        print(json.dumps(asyncio.run(_run_job(host, port, json.loads(line)))), flush=True)


def _multipart(user: str, name: str, data: bytes) -> bytes:
    return (
        (
            f"--{BOUNDARY}\r\n"
            f'Content-Disposition: form-data; name="userId"\r\n\r\n{user}\r\n'
            f"--{BOUNDARY}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


async def _run_job(host: str, port: int, job: dict[str, Any]) -> dict[str, Any]:
    """Send ``job["requests"]`` requests over ``job["concurrency"]`` connections."""
    head = (
        f"{job['method']} {job['path']} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {job['key']}\r\n"
    )
    upload = job.get("upload")
    filler = os.urandom(upload["size"]) if upload else b""

    def request(index: int) -> bytes:
        if not upload:
            return f"{head}\r\n".encode()
        # Every request carries bytes never sent before, so every upload stores new bytes.
        unique = f"{upload['tag']}-{index}-".encode()
        body = _multipart(USER, f"small-{index}.bin", unique + filler[len(unique) :])
        return (
            f"{head}Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    connections = [await asyncio.open_connection(host, port) for _ in range(job["concurrency"])]
    pending = iter(range(job["requests"]))  # shared: each request is sent once
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    clock = time.perf_counter

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for index in pending:
            data = request(index)
            start = clock()
            writer.write(data)
            status, body = await _response(reader)
            latencies.append(clock() - start)
            statuses[status] += 1
            if status >= 300 and not errors:
                errors.append(body[:500].decode("utf-8", "replace"))

    start = clock()
    await asyncio.gather(*(worker(reader, writer) for reader, writer in connections))
    seconds = clock() - start
    for _, writer in connections:
        writer.close()
    return {"seconds": seconds, "latencies": latencies, "statuses": statuses, "errors": errors}


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One response's status and body (the routes measured send a Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            raise RuntimeError("the load generator reads only responses with a Content-Length")
    return int(head[9:12]), await reader.readexactly(length) if length else b""


class LoadGenerator:
    """The load generator process, given jobs one at a time."""

    def __init__(self, url: str, key: str) -> None:
        self.key = key
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.http_api", "--load", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, method: str, path: str, requests: int, status: int, **extra: Any) -> Any:
        """Run one job; its timings. Every answer must have ``status``."""
        assert self.process.stdin is not None and self.process.stdout is not None
        job = {"method": method, "path": path, "requests": requests, "key": self.key}
        job |= {"concurrency": CONCURRENCY, **extra}
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the load generator stopped")
        result = json.loads(line)
        if result["statuses"] != {str(status): requests}:
            raise RuntimeError(
                f"{method} {path}: answers {result['statuses']}, expected all {status}:"
                f" {result['errors'][:1]}"
            )
        return result

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


# -- the benchmarks ---------------------------------------------------------------------


def _rate(count: int, samples: list[float]) -> str:
    return f"{count / statistics.median(samples):,.0f} req/s"


def _p50(latencies: list[float]) -> str:
    return f"p50 {harness.percentile(latencies, 50) * 1e3:.2f} ms"


def turns(config: Config, slices: int, *sides: Callable[[int, int], float]) -> list[list[float]]:
    """Rounds in which the sides take turns a slice of requests at a time.

    ``side(round, slice)`` runs one slice and returns the seconds the load generator
    measured. Each round's figure is the sum of its slices; who goes first rotates. Short
    turns put every side under the same load from the rest of a busy machine.
    """
    times = [[0.0] * config.rounds for _ in sides]
    for number in range(config.rounds):
        harness.settle()
        for part in range(slices):
            first = (number + part) % len(sides)
            for which in [*range(first, len(sides)), *range(first)]:
                times[which][number] += sides[which](number, part)
    return times


def requests_benchmarks(config: Config, info: dict[str, str]) -> list[Result]:
    """GET /content/{contentId} and a small upload, each against its bare route."""
    get_slices, get_slice = config.size(8, 4, 2), config.size(500, 200, 20)
    up_slices, up_slice = config.size(4, 2, 2), config.size(60, 24, 4)
    gets, uploads = get_slices * get_slice, up_slices * up_slice
    content_path = f"/content/{info['content_id']}?userId={USER}"
    generator = LoadGenerator(info["url"], info["key"])
    latencies: dict[str, list[float]] = defaultdict(list)

    def get(side: str, path: str) -> Callable[[int, int], float]:
        def run(number: int, part: int) -> float:
            result = generator.run("GET", path, get_slice, 200)
            latencies[side].extend(result["latencies"])
            return float(result["seconds"])

        return run

    def upload(side: str, path: str) -> Callable[[int, int], float]:
        def run(number: int, part: int) -> float:
            new = {"size": SMALL_FILE, "tag": f"{side}-{number}-{part}"}
            result = generator.run("POST", path, up_slice, 201, upload=new)
            latencies[side].extend(result["latencies"])
            return float(result["seconds"])

        return run

    results = []
    try:
        for path in (content_path, BARE + content_path):  # warm up: threads, caches
            generator.run("GET", path, min(gets, 200), 200)
        engine, baseline = turns(
            config, get_slices, get("get", content_path), get("get-bare", BARE + content_path)
        )
        results.append(
            Result(
                "http",
                f"GET /content/{{contentId}}: {gets:,} requests, {CONCURRENCY} connections",
                "throughput",
                engine,
                baseline,
                "a bare route of the same app answering the same JSON",
                target=0.5,
                note=f"engine {_rate(gets, engine)}, {_p50(latencies['get'])};"
                f" bare {_rate(gets, baseline)}, {_p50(latencies['get-bare'])}",
            )
        )
        for side, path in (("warm", "/upload"), ("warm-bare", f"{BARE}/upload")):
            generator.run("POST", path, CONCURRENCY, 201, upload={"size": SMALL_FILE, "tag": side})
        engine, baseline, nothing = turns(
            config,
            up_slices,
            upload("up", "/upload"),
            upload("up-bare", f"{BARE}/upload"),
            upload("up-nothing", f"{BARE}/upload-nothing"),
        )
        results.append(
            Result(
                "http",
                f"small upload (a new {SMALL_FILE // 1024} KiB file each): {uploads:,} requests,"
                f" {CONCURRENCY} connections",
                "throughput",
                engine,
                baseline,
                "a bare route of the same app: request.form(), then Store.upload",
                target=0.5,
                note=f"engine {_rate(uploads, engine)}, {_p50(latencies['up'])};"
                f" bare {_rate(uploads, baseline)}, {_p50(latencies['up-bare'])};"
                f" a bare route storing nothing {_rate(uploads, nothing)}",
            )
        )
    finally:
        generator.close()
    return results


def _drain(reader: object) -> None:
    read = reader.read  # type: ignore[attr-defined]
    while read(MiB):
        pass


def transfer_benchmarks(config: Config, info: dict[str, str]) -> list[Result]:
    """A large upload and its download, against the same in-process."""
    from dreamflare_store.client import Client

    size = config.size(256 * MiB, 64 * MiB, 4 * MiB)
    source_dir = config.fresh("src")
    make_large_files(source_dir, config.rounds, size, seed=4, exact=True)
    sources = sorted(source_dir.iterdir())
    results = []
    with Client(info["url"], info["key"]) as client:

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
                target=0.5,
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
    return results


def run(config: Config) -> list[Result]:
    """Every HTTP benchmark, at the sizes of ``config.mode``."""
    with server(config.fresh("served") / "store") as info:
        return requests_benchmarks(config, info) + transfer_benchmarks(config, info)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(sys.argv[2])
        raise SystemExit(0)
    if len(sys.argv) > 2 and sys.argv[1] == "--load":
        load(sys.argv[2])
        raise SystemExit(0)
    raise SystemExit(
        harness.main(
            {"http": run}, description=__doc__.splitlines()[0], prog="python -m benchmarks.http_api"
        )
    )
