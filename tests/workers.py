"""Code run in child processes by the crash and multi-process tests.

Run as a script: ``python workers.py crash STORE ACKS SEED`` uploads and updates forever,
appending one line per acknowledged upload to ACKS (after the call returned);
``python workers.py batch STORE ACKS SEED`` does the same with batches of ``upload_many``;
``python workers.py threads STORE ACKS SEED`` runs the first on four threads at once;
``python workers.py gc|repair|reserve STORE ACKS SEED`` mixes in that maintenance.
"""

from __future__ import annotations

import os
import random
import sys
import threading
from pathlib import Path
from typing import TextIO

# The store imports its upload path (genmeta, the thread pools) on first use: imported
# here, before a worker says its store is open, so the parent's kill window measures
# uploads, not imports.
import dreamflare_store.contents  # noqa: F401
import dreamflare_store.genmeta  # noqa: F401
from dreamflare_store import Store


def payload(seed: int, n: int) -> bytes:
    """The bytes of upload n of a worker: reproducible, so the parent can check them."""
    rng = random.Random(seed * 1_000_003 + n)
    size = rng.choice([0, 1, 100, 4096, 70_000, 400_000])
    return rng.randbytes(size)


def crash_loop(store_path: str, acks_path: str, seed: int) -> None:
    with Store(store_path) as store, open(acks_path, "a", encoding="utf-8") as acks:
        os.fsync(acks.fileno())  # the parent waits for this file: the store is open
        _upload_forever(store, acks, seed, threading.Lock())


def threads_loop(store_path: str, acks_path: str, seed: int) -> None:
    """crash_loop on four threads sharing one store, so their uploads share commits."""
    with Store(store_path) as store, open(acks_path, "a", encoding="utf-8") as acks:
        os.fsync(acks.fileno())
        lock = threading.Lock()
        threads = [
            threading.Thread(target=_upload_forever, args=(store, acks, seed * 10 + k, lock))
            for k in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _upload_forever(store: Store, acks: TextIO, seed: int, lock: threading.Lock) -> None:
    n = 0
    last = None
    while True:
        data = payload(seed, n)
        if last is not None and n % 3 == 0:
            c = store.upload(file=data, user_id=f"u{seed % 3}", content_id=last)
        else:
            c = store.upload(file=data, user_id=f"u{seed % 3}", tags=f"n{n}")
        with lock:
            acks.write(f"{c.content_id} {c.version} {seed} {n}\n")
            acks.flush()
            os.fsync(acks.fileno())
        if n % 4 == 1:
            store.update_metadata(c.content_id, f"u{seed % 3}", description=f"d{n}")
        last = c.content_id
        n += 1


def upload_many(store_path: str, user: str, count: int, out: str) -> None:
    """Upload ``count`` files (some shared between workers) and write their ids to ``out``."""
    ids = []
    with Store(store_path) as store:
        for i in range(count):
            data = f"shared-{i % 10}".encode() if i % 2 else f"{user}-{i}".encode() * 100
            ids.append(store.upload(file=data, user_id=user, tags=f"w,{i}").content_id)
            if i % 5 == 0:
                store.get_content(ids[-1], user)
    Path(out).write_text("\n".join(ids), encoding="utf-8")


def batch_loop(store_path: str, acks_path: str, seed: int) -> None:
    """Batches of upload_many forever; a line per content once its batch returned."""
    with Store(store_path) as store, open(acks_path, "a", encoding="utf-8") as acks:
        os.fsync(acks.fileno())
        n = 0
        while True:
            numbers = range(n, n + 40)
            out = store.upload_many([payload(seed, i) for i in numbers], f"u{seed % 3}")
            for i, c in zip(numbers, out, strict=True):
                acks.write(f"{c.content_id} 1 {seed} {i}\n")  # type: ignore[union-attr]
            acks.flush()
            os.fsync(acks.fileno())
            n += 40


def maintenance_loop(store_path: str, acks_path: str, seed: int, mode: str) -> None:
    """Uploads, deletes and one kind of maintenance forever, to be killed part-way:
    "gc" collects after each delete, "repair" removes a blob and runs verify(repair=True)
    from a remote folder beside the store, "reserve" gives the reserve back and takes it
    again. A line "+ content_id seed n" per acknowledged upload, and "- content_id"
    before each delete (a delete cut short by the kill may or may not have happened)."""
    rng = random.Random(seed)
    remote = str(Path(store_path).parent / "remote")
    with Store(store_path) as store, open(acks_path, "a", encoding="utf-8") as acks:
        store.add_remote("origin", remote)
        os.fsync(acks.fileno())
        kept: list[str] = []
        n = 0
        while True:
            c = store.upload(file=payload(seed, n), user_id="m")
            if mode == "repair":
                store.push("origin")  # acknowledged once a copy is on the remote too
            acks.write(f"+ {c.content_id} {seed} {n}\n")
            kept.append(c.content_id)
            if n % 3 == 2:
                gone = kept.pop(rng.randrange(len(kept)))
                acks.write(f"- {gone}\n")
            acks.flush()
            os.fsync(acks.fileno())
            if n % 3 == 2:
                store.delete_content(gone, "m")
            if mode == "gc":
                store.gc(min_age=0)
            elif mode == "repair" and kept:
                victim = store.get_content(rng.choice(kept), "m").hash
                path = store.replica.blobs.path(victim)
                if path.is_file():
                    path.unlink(missing_ok=True)
                else:  # a small blob kept as a row of the catalog
                    conn = store.replica.catalog.db.conn
                    conn.execute("DELETE FROM blob_data WHERE hash = ?", (victim,))
                store.verify(repair=True)
            elif mode == "reserve":
                store.replica.blobs.reserve.release()
                store.replica.blobs.reserve.take()
            n += 1


if __name__ == "__main__":
    if sys.argv[1] == "crash":
        crash_loop(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "batch":
        batch_loop(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "threads":
        threads_loop(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        maintenance_loop(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[1])
