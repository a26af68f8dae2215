"""Sync: push and pull of many small and a few large blobs through the local S3 server.

The remote is moto's S3 server on 127.0.0.1 (``backends.start_s3``), reached through s3fs,
as a user's bucket would be. The engine's ``Store.push`` (to an empty bucket) and eager
``Store.pull`` (into an empty store) are set against the same bytes moved, in the same run,
by two baselines that use the same s3fs client:

- **a plain loop of fsspec calls**: ``fs.put_file`` (``fs.get_file``) once per blob, each
  call waiting for the one before, as a simple sync script would;
- **one bulk fsspec call**: ``fs.put(files, keys)`` (``fs.get(keys, files)``), fsspec's own
  concurrent transfer, with nothing else to do.

The engine does more than either: it lists what the remote has, uploads the op segment
and counters after the blobs, and on pull checks every blob's hash, fsyncs it into the
store and applies the ops in one transaction; the baselines' downloads are not fsynced.
Every measurement gets a fresh bucket, and moto is reset between them so its memory holds
one data set at a time. Clients are warmed before timing (an S3 client's first request
costs ~0.5 s), so the figures compare transfers, not set-up.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from backends import S3Server, start_s3
from benchmarks import harness
from benchmarks.harness import Config, MiB, Result
from benchmarks.ingest import batch_upload, files_of, make_large_files, make_small_files
from dreamflare_store import Store

USER = "bench"


def _reset(server: S3Server) -> None:
    """Empty moto (every bucket): the next measurement starts from nothing."""
    request = urllib.request.Request(f"{server.endpoint}/moto-api/reset", method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=60):
        pass


def _client(server: S3Server) -> Any:
    """One warmed s3fs client for every baseline bucket (as one program would hold)."""
    import fsspec  # type: ignore[import-untyped]

    fs = fsspec.filesystem("s3", **server.storage_options())
    fs.ls("")  # the first request sets the client up
    return fs


def put_loop(fs: Any, pairs: list[tuple[str, str]]) -> None:
    for local, key in pairs:
        fs.put_file(local, key)


def put_bulk(fs: Any, pairs: list[tuple[str, str]]) -> None:
    fs.put([local for local, _ in pairs], [key for _, key in pairs])


def get_loop(fs: Any, pairs: list[tuple[str, str]]) -> None:
    for key, local in pairs:
        fs.get_file(key, local)


def get_bulk(fs: Any, pairs: list[tuple[str, str]]) -> None:
    fs.get([key for key, _ in pairs], [local for _, local in pairs])


Transfers = Callable[[Any, list[tuple[str, str]]], None]
BASELINES: dict[str, tuple[Transfers, Transfers]] = {
    "loop": (put_loop, get_loop),
    "bulk": (put_bulk, get_bulk),
}


def _blob_pairs(store: Store, spill: Path) -> list[tuple[str, str]]:
    """(local blob file, remote key) of every blob of a store, in the sync layout. The
    baselines move files: small blobs, which the store keeps as rows of its catalog, are
    written out once to files in ``spill`` for them."""
    files = {digest: str(path) for digest, path in store.replica.blobs.iter_digests()}
    conn = store.replica.catalog.db.conn
    spill.mkdir(parents=True, exist_ok=True)
    for digest, data in conn.execute("SELECT hash, data FROM blob_data"):
        (spill / digest).write_bytes(data)
        files[digest] = str(spill / digest)
    return [
        (path, f"objects/{digest[:2]}/{digest[2:4]}/{digest}")
        for digest, path in sorted(files.items())
    ]


class Transfer:
    """One data set (a store holding it) moved every way, one fresh bucket per measure."""

    def __init__(self, config: Config, server: S3Server, label: str, source: Path) -> None:
        self.config = config
        self.server = server
        self.label = label
        self.source = source
        with Store(source) as store:
            self.pairs = _blob_pairs(store, source.parent / f"{label}-rows")
        self.work_bytes = sum(Path(local).stat().st_size for local, _ in self.pairs)
        self.times: dict[str, list[float]] = {}
        self.client = _client(server)

    def _record(self, name: str, seconds: float) -> None:
        self.times.setdefault(name, []).append(seconds)

    def _push_engine(self, number: int) -> str:
        """Push the source store to a new bucket; returns the bucket's URL for the pulls."""
        bucket = self.server.new_bucket(f"engine-{number}").url
        options = self.server.storage_options()
        with Store(self.config.fresh(f"{self.label}-warm-{number}")) as warm:
            warm.add_remote("origin", bucket, **options)
            warm.push("origin")  # opens and warms the process's client for this bucket
        with Store(self.source) as store:
            store.add_remote("origin", bucket, **options)  # progress is kept per URL
            self._record("push engine", harness.timed(lambda: store.push("origin")))
        return bucket

    def _pull_engine(self, number: int, bucket: str) -> None:
        with Store(self.config.fresh(f"{self.label}-pulled-{number}")) as store:
            store.add_remote("origin", bucket, **self.server.storage_options())

            def pull() -> None:
                report = store.pull("origin", blobs="eager")
                assert report.blobs_received == len(self.pairs), report

            self._record("pull engine", harness.timed(pull))

    def _baselines(self, number: int) -> None:
        """Both baselines, each pushing into its own bucket and pulling back from it."""
        for kind, (put, get) in BASELINES.items():
            root = self.server.new_bucket(f"{kind}-{number}").url.split("://", 1)[1]
            up = [(local, f"{root}/{key}") for local, key in self.pairs]
            fs = self.client
            self._record(f"push {kind}", harness.timed(partial(put, fs, up)))
            target = self.config.fresh(f"{self.label}-get-{kind}-{number}")
            down = [(key, str(target / f"{i:06d}")) for i, (_, key) in enumerate(up)]
            self._record(f"pull {kind}", harness.timed(partial(get, fs, down)))

    def _engine(self, number: int) -> None:
        self._pull_engine(number, self._push_engine(number))

    def run(self) -> None:
        for number in range(self.config.rounds):
            # Alternate who goes first, so slow drift of the machine favours neither.
            sides = [self._engine, self._baselines]
            for side in sides if number % 2 == 0 else sides[::-1]:
                side(number)
                _reset(self.server)

    def results(self, what: str) -> list[Result]:
        count = len(self.pairs)
        size = self.work_bytes / max(count, 1)
        out = []
        for direction in ("push", "pull"):
            for kind, name in (
                ("loop", "a plain loop of fs.{}_file calls"),
                ("bulk", "one bulk fs.{}(list, list)"),
            ):
                verb = "put" if direction == "push" else "get"
                out.append(
                    Result(
                        "sync",
                        f"{direction} {what}: {count} x {size / MiB:.2f} MiB to moto S3"
                        f" (against {kind})",
                        "throughput",
                        self.times[f"{direction} engine"],
                        self.times[f"{direction} {kind}"],
                        name.format(verb),
                        work_bytes=self.work_bytes,
                        work_items=count,
                    )
                )
        return out


def run(config: Config) -> list[Result]:
    """Push and pull, small and large blobs, against both baselines."""
    results: list[Result] = []
    with start_s3(config.workdir / "moto.log") as server:
        makers: list[tuple[str, Callable[[Path], int]]] = [
            ("small blobs", lambda f: make_small_files(f, config.size(2000, 60, 20))),
            (
                "large blobs",
                lambda f: make_large_files(
                    f, config.size(3, 2, 1), config.size(64 * MiB, 8 * MiB, 2 * MiB)
                ),
            ),
        ]
        for what, make in makers:
            label = what.split()[0]
            source_files = config.fresh(f"{label}-files")
            make(source_files)
            source = config.fresh(f"{label}-store")
            with Store(source) as store:
                batch_upload(store, source_files)
            assert files_of(source_files)
            transfer = Transfer(config, server, label, source)
            transfer.run()
            results.extend(transfer.results(what))
    return results


if __name__ == "__main__":
    raise SystemExit(harness.main({"sync": run}))
