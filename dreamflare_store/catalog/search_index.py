"""The search index of live contents, kept by the fold: words, the words each text repeats,
CJK trigrams, facet terms and per-owner facet counts.

Only ``Fold`` calls these (inside its transaction), so every replica's index follows the
ops it folded. A content is indexed under its arrival number ``n`` (the rowid of both
FTS5 tables), from its current snapshot: its filename, description, tags and generation
record (prompt, model, LoRAs, sampler, generator, seed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from .db import Part

# Facet kinds counted per owner (seeds are a filter, never a facet: each one is unique).
FACET_KINDS = ("model", "lora", "sampler", "generator", "tag")
# Kinds read from the generation record: what a collaborator without metadata never uses.
GENERATION_KINDS = ("model", "lora", "sampler", "generator", "seed")
MAX_TERM = 256

# Characters of scripts written without spaces between words (CJK ideographs, kana,
# hangul): runs of them are indexed again as trigrams. A pattern, compiled on first use
# (and kept by re's cache): compiling it takes about 3 ms, which a process that neither
# indexes nor searches (a `dreamflare ls`) need not pay.
CJK = "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f]+"
SEARCH_COLUMNS = ("prompt", "description", "tags", "filename", "model")
# A word as FTS5's unicode61 tokenizer sees one (it splits at "_" too), of two characters
# or more: a repeated "a" tells nothing about a text, and most prompts repeat it.
_TOKEN = re.compile(r"[^\W_]{2,}")


def generation_of(text: str | None) -> dict[str, Any] | None:
    """The generation record stored in a row's ``generation`` column (None if none)."""
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def generation_to_sql(record: Any) -> str | None:
    """A generation record as the column stores it: compact, sorted JSON (deterministic)."""
    if not isinstance(record, dict):
        return None
    return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _texts(
    filename: str | None, description: str | None, tags: Sequence[str], gen: dict[str, Any] | None
) -> tuple[str | None, ...]:
    gen = gen or {}
    prompt = gen.get("prompt")
    model = gen.get("model")
    return (
        prompt if isinstance(prompt, str) else None,
        description,
        " ".join(tags) if tags else None,
        filename,
        model if isinstance(model, str) else None,
    )


def terms_of(tags: Sequence[str], gen: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The ``(kind, value)`` facet terms of a snapshot, each once (case folded)."""
    found: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()

    def add(kind: str, value: Any) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            return
        value = value.strip()[:MAX_TERM]
        key = (kind, value.casefold())
        if key not in seen:
            seen.add(key)
            found.append((kind, value))

    for tag in tags:
        add("tag", tag)
    if gen:
        for kind in ("model", "sampler", "generator", "seed"):
            add(kind, gen.get(kind))
        loras = gen.get("loras")
        if isinstance(loras, list):
            for lora in loras:
                if isinstance(lora, dict):
                    add("lora", lora.get("name"))
    return found


class SearchIndex(Part):
    """Keeps the index of live contents; called by the fold only."""

    def add(
        self,
        items: Iterable[
            tuple[int, str, str | None, str | None, Sequence[str], dict[str, Any] | None]
        ],
    ) -> None:
        """Index contents ``(n, owner, filename, description, tags, generation)``."""
        words: list[tuple[Any, ...]] = []
        cjk: list[tuple[Any, ...]] = []
        again: list[tuple[Any, ...]] = []
        terms: list[tuple[str, str, int]] = []
        counts: dict[tuple[str, str, str], int] = {}
        owners: list[tuple[tuple[Any, ...], str]] = []
        for n, owner, filename, description, tags, gen in items:
            texts = _texts(filename, description, tags, gen)
            words.append((n, *texts))
            owners.append((words[-1], owner))
            runs = tuple(_cjk_runs(text) for text in texts)
            if any(runs):
                cjk.append((n, *runs))
            repeated = tuple(_repeated(text) for text in texts)
            if any(repeated):
                again.append((n, *repeated))
            for kind, value in terms_of(tags, gen):
                terms.append((kind, value, n))
                if kind in FACET_KINDS:
                    key = (owner, kind, value)
                    counts[key] = counts.get(key, 0) + 1
        conn = self.conn
        conn.executemany(
            "INSERT INTO search_words (rowid, prompt, description, tags, filename, model)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            words,
        )
        conn.executemany(
            "INSERT INTO search_owner (n, owner) VALUES (?, ?)", [(w[0], o) for w, o in owners]
        )
        if cjk:
            conn.executemany(
                "INSERT INTO search_cjk (rowid, prompt, description, tags, filename, model)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                cjk,
            )
        if again:
            conn.executemany(
                "INSERT INTO search_again (rowid, prompt, description, tags, filename, model)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                again,
            )
        conn.executemany(
            "INSERT OR IGNORE INTO content_terms (kind, value, n) VALUES (?, ?, ?)", terms
        )
        self._count(counts)

    def remove(self, n: int, owner: str) -> None:
        """Take content ``n`` of ``owner`` out of the index (nothing if it is not in it)."""
        conn = self.conn
        counts: dict[tuple[str, str, str], int] = {}
        for kind, value in conn.execute("SELECT kind, value FROM content_terms WHERE n = ?", (n,)):
            if kind in FACET_KINDS:
                counts[(owner, kind, value)] = counts.get((owner, kind, value), 0) - 1
        conn.execute("DELETE FROM content_terms WHERE n = ?", (n,))
        conn.execute("DELETE FROM search_words WHERE rowid = ?", (n,))
        conn.execute("DELETE FROM search_owner WHERE n = ?", (n,))
        conn.execute("DELETE FROM search_cjk WHERE rowid = ?", (n,))
        conn.execute("DELETE FROM search_again WHERE rowid = ?", (n,))
        self._count(counts)

    def _count(self, counts: dict[tuple[str, str, str], int]) -> None:
        if not counts:
            return
        self.conn.executemany(
            "INSERT INTO facet_counts (owner, kind, value, count) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (owner, kind, value) DO UPDATE SET count = count + excluded.count",
            [(owner, kind, value, delta) for (owner, kind, value), delta in counts.items()],
        )
        gone = [key for key, delta in counts.items() if delta < 0]
        if gone:  # a value no live content carries any more is no facet
            self.conn.executemany(
                "DELETE FROM facet_counts WHERE owner = ? AND kind = ? AND value = ?"
                " AND count <= 0",
                gone,
            )


def _cjk_runs(text: str | None) -> str | None:
    if not text or text.isascii():
        return None
    runs = re.findall(CJK, text)
    return " ".join(runs) if runs else None


def _repeated(text: str | None) -> str | None:
    """The words ``text`` holds more than once, each once (None if none): what ranks a
    match above those that hold the query's words only once."""
    if not text:
        return None
    words = _TOKEN.findall(text.casefold())
    if len(set(words)) == len(words):
        return None  # the common case, decided by one set built in C
    seen: set[str] = set()
    again: dict[str, None] = {}
    for word in words:
        if word in seen:
            again[word] = None
        else:
            seen.add(word)
    return " ".join(again)
