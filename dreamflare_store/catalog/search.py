"""Search reads: the query language, and the SQL of search pages and facets.

The query language is for people pasting prompts: plain words (all must match),
``"quoted phrases"`` and ``prefix*``; everything else is literal text, searched for its
words, so no input makes FTS5 raise. Runs of CJK characters are looked up in the trigram
index (a run of one or two characters by a scan of it: only contents with such text are
in it).

Matches are ranked by how many of the query's words their text repeats (from the small
``search_again`` index the fold keeps), then newest first: a page costs one pass over the
matches, not bm25 over each of them. A word repeated by more than one text in
``_COMMON_SHARE`` (and by more than ``_MIN_COMMON`` texts) counts for nothing, as bm25
gives nearly no weight to a word most texts hold.

Who may see what is decided by ``access`` and arrives here as a ``Scope``: the user's own
contents, contents shared with them with their metadata, and contents shared without it
(matched on description, tags and filename only, never by generation filters).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .db import Part
from .reads import CONTENT_COLUMNS
from .search_index import CJK, FACET_KINDS

_TOKEN = re.compile(r'"([^"]*)"|(\w+)(\*?)')
_WORD = re.compile(r"\w+")
# The columns a collaborator without metadata may match: no prompt, no model.
_PLAIN_COLUMNS = "{description tags filename}"
_COLUMNS = ", ".join(f"c.{column}" for column in CONTENT_COLUMNS)
MAX_TERMS = 32  # words of a query used (a pasted prompt is long; its first words suffice)
# One FTS5 token (unicode61 splits words at "_" too) of two characters or more: only those
# are kept as repeated words, so only those are looked up.
_ONE_TOKEN = re.compile(r"[^\W_]{2,}")
_COMMON_SHARE = 50
_MIN_COMMON = 1000


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: the FTS5 expression of its words, its CJK runs, and the FTS5
    expressions of its one-token words and prefixes (those that rank the matches)."""

    words: str | None
    cjk: tuple[str, ...]
    ranking: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self.words is None and not self.cjk


def parse(text: str | None) -> Query:
    """The query for ``text``; never raises (unbalanced quotes and operators are text)."""
    if not text:
        return Query(None, ())
    parts: list[str] = []
    cjk: list[str] = []
    ranking: list[str] = []
    for match in _TOKEN.finditer(text):
        phrase, word, star = match.groups()
        source = phrase if phrase is not None else word
        runs = re.findall(CJK, source)
        cjk.extend(runs)
        rest = re.sub(CJK, " ", source)
        words = _WORD.findall(rest)
        if not words:
            continue
        if phrase is not None:
            parts.append('"' + " ".join(words) + '"')
            if len(words) == 1 and _ONE_TOKEN.fullmatch(words[0]):
                ranking.append(parts[-1])
        else:
            for word in words:
                parts.append(f'"{word}"')
                if _ONE_TOKEN.fullmatch(word):
                    ranking.append(parts[-1])
            if star:
                parts[-1] += "*"
                if ranking and ranking[-1] == parts[-1][:-1]:
                    ranking[-1] = parts[-1]
        if len(parts) >= MAX_TERMS:
            break
    return Query(
        " ".join(parts[:MAX_TERMS]) or None,
        tuple(dict.fromkeys(cjk))[:MAX_TERMS],
        tuple(dict.fromkeys(ranking))[:MAX_TERMS],
    )


@dataclass(frozen=True, slots=True)
class Scope:
    """The contents a user may search: their own, those shared with their metadata
    (``full``) and those shared without it (``stripped``)."""

    user: str
    full: tuple[str, ...] = ()
    stripped: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Filters:
    """Filters that combine with a query. Generation filters (model, LoRA, sampler, seed,
    generator) never match contents shared without their metadata."""

    tags: tuple[str, ...] = ()
    model: str | None = None
    lora: str | None = None
    sampler: str | None = None
    seed: str | None = None
    generator: str | None = None
    mime: str | None = None
    favorite: bool | None = None
    after_hlc: str | None = None
    before_hlc: str | None = None
    terms: tuple[tuple[str, str], ...] = field(init=False)

    def __post_init__(self) -> None:
        found = [("tag", tag) for tag in self.tags]
        for kind in ("model", "lora", "sampler", "seed", "generator"):
            value = getattr(self, kind)
            if value is not None:
                found.append((kind, value))
        object.__setattr__(self, "terms", tuple(found))

    @property
    def generation(self) -> bool:
        return any(kind != "tag" for kind, _ in self.terms)

    @property
    def any(self) -> bool:
        return bool(self.terms) or (
            self.mime is not None
            or self.favorite is not None
            or self.after_hlc is not None
            or self.before_hlc is not None
        )


class Search(Part):
    """Search pages and facets over the index the fold keeps."""

    def page(
        self, query: Query, scope: Scope, filters: Filters, limit: int, offset: int
    ) -> tuple[list[tuple[Any, ...]], list[bool], int]:
        """A page of matches (rows of ``CONTENT_COLUMNS``), best match first then newest
        (newest first without a query); whether each one is stripped; and the total."""
        sql, args = self._matches(query, scope, filters)
        cursor = self.conn.cursor()
        cursor.row_factory = None
        want = offset + limit
        # The matches that repeat some of the query's words, found in the pass that counts
        # the matches (one probe of a small set per match, no ranking function), then
        # scored (only those), best first.
        ranked: list[tuple[int, int, int]] = []
        full, plain = self._ranking_terms(query, scope)
        if full:
            total, found = cursor.execute(
                "SELECT count(*), json_group_array(json_array(n, stripped)) FILTER (WHERE n IN"
                f" (SELECT rowid FROM search_again WHERE search_again MATCH ?)) FROM ({sql})",
                [" OR ".join(full), *args],
            ).fetchone()
            ranked = self._scored(json.loads(found), full, plain)
        else:
            (total,) = cursor.execute(f"SELECT count(*) FROM ({sql})", args).fetchone()
        if total <= offset:
            return [], [], int(total)
        window = [(n, strip) for _, n, strip in ranked[offset:want]]
        if len(ranked) < want:
            # Then the others, newest first: the word index walks its rows backwards and
            # stops after the page.
            start = max(offset, len(ranked))
            skip = ""
            if ranked:
                skip = " WHERE n NOT IN (SELECT value FROM json_each(?))"
                args = [*args, json.dumps([n for _, n, _ in ranked])]
            window += cursor.execute(
                f"SELECT n, stripped FROM ({sql}){skip} ORDER BY n DESC LIMIT ? OFFSET ?",
                [*args, want - start, start - len(ranked)],
            ).fetchall()
        rows = {
            row[-1]: row[:-1]
            for row in cursor.execute(
                f"SELECT {_COLUMNS}, c.n FROM contents c"
                " WHERE c.n IN (SELECT value FROM json_each(?))",
                (json.dumps([n for n, _ in window]),),
            ).fetchall()
        }
        return [rows[n] for n, _ in window], [bool(strip) for _, strip in window], int(total)

    def _ranking_terms(self, query: Query, scope: Scope) -> tuple[list[str], list[str]]:
        """The query's words that rank its matches, as FTS5 expressions over every column
        (``full``) and over the columns a collaborator without metadata may match
        (``plain``, only when some content is shared so with the user): those some texts
        repeat, but not most of them."""
        if not query.ranking:
            return [], []
        (last,) = self.conn.execute("SELECT max(n) FROM search_owner").fetchone()
        common = max(_MIN_COMMON, (last or 0) // _COMMON_SHARE)
        # A word most texts repeat tells nothing about a match (bm25 gives it no weight
        # either); counting its repeats stops at the bound.
        full = [term for term in query.ranking if self._repeated_by(term, common + 1) <= common]
        plain = [f"{_PLAIN_COLUMNS} : {term}" for term in full] if scope.stripped else []
        return full, plain

    def _scored(
        self, found: list[list[int]], full: list[str], plain: list[str]
    ) -> list[tuple[int, int, int]]:
        """``(score, n, stripped)`` of the matches ``found`` (``[n, stripped]`` pairs) that
        repeat some ranking words, best first: how many of them they repeat, in the
        columns their reader may match."""
        if not found:
            return []
        probe = "(j.value IN (SELECT rowid FROM search_again WHERE search_again MATCH ?))"
        sums = [" + ".join([probe] * len(terms)) or "0" for terms in (full, plain)]
        scores = {
            n: (score_full, score_plain)
            for n, score_full, score_plain in self.conn.execute(
                f"SELECT j.value, {sums[0]}, {sums[1]} FROM json_each(?) j",
                [*full, *plain, json.dumps([n for n, _ in found])],
            ).fetchall()
        }
        ranked = [(scores[n][1 if strip else 0], n, strip) for n, strip in found]
        return sorted((item for item in ranked if item[0] > 0), reverse=True)

    def _repeated_by(self, term: str, bound: int) -> int:
        """How many texts repeat ``term`` (counted up to ``bound``)."""
        (count,) = self.conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM search_again WHERE search_again MATCH ? LIMIT ?)",
            (term, bound),
        ).fetchone()
        return int(count)

    def facets(
        self, query: Query, scope: Scope, filters: Filters, limit: int
    ) -> dict[str, list[tuple[str, int]]]:
        """Per facet kind, the values of the matching contents with their counts, most
        used first (at most ``limit`` each)."""
        conn = self.conn
        counts: dict[str, dict[str, list[Any]]] = {kind: {} for kind in FACET_KINDS}

        def add(kind: str, value: str, count: int) -> None:
            slot = counts[kind].setdefault(value.casefold(), [value, 0])
            slot[1] += count

        if query.empty and not filters.any:
            # The user's own contents from the maintained counts; those shared with them
            # are few, and counted here. Own values outside the top that shared contents
            # also carry are read too, so the merged top is exact.
            shared_terms = self._shared_terms(scope)
            for kind in FACET_KINDS:
                extra = [value for (k, value) in shared_terms if k == kind]
                rows = conn.execute(
                    "SELECT value, count FROM facet_counts WHERE owner = ? AND kind = ?"
                    " ORDER BY count DESC LIMIT ?",
                    (scope.user, kind, limit),
                ).fetchall()
                if extra:
                    rows += conn.execute(
                        "SELECT value, count FROM facet_counts WHERE owner = ? AND kind = ?"
                        " AND value IN (SELECT value FROM json_each(?))",
                        (scope.user, kind, json.dumps(sorted(set(extra)))),
                    ).fetchall()
                seen: set[str] = set()
                for value, count in rows:
                    if value.casefold() not in seen:
                        seen.add(value.casefold())
                        add(kind, value, count)
            for (kind, value), count in shared_terms.items():
                add(kind, value, count)
        else:
            sql, args = self._matches(query, scope, filters)
            kinds = ", ".join(f"'{kind}'" for kind in FACET_KINDS)
            for kind, value, count in conn.execute(
                f"SELECT t.kind, t.value, count(*) FROM ({sql}) m"
                " JOIN content_terms t ON t.n = m.n"
                f" WHERE t.kind IN ({kinds}) AND (m.stripped = 0 OR t.kind = 'tag')"
                " GROUP BY t.kind, t.value",
                args,
            ):
                add(kind, value, count)
        out: dict[str, list[tuple[str, int]]] = {}
        for kind, values in counts.items():
            ranked = sorted(values.values(), key=lambda slot: (-slot[1], slot[0]))
            out[kind] = [(value, count) for value, count in ranked[:limit]]
        return out

    def _shared_terms(self, scope: Scope) -> dict[tuple[str, str], int]:
        """Facet terms of the live contents shared with the user (tags only for those
        shared without metadata)."""
        out: dict[tuple[str, str], int] = {}
        for ids, plain in ((scope.full, False), (scope.stripped, True)):
            if not ids:
                continue
            for kind, value in self.conn.execute(
                "SELECT t.kind, t.value FROM contents c JOIN content_terms t ON t.n = c.n"
                " WHERE c.deleted = 0 AND c.owner != ?"
                " AND c.content_id IN (SELECT value FROM json_each(?))",
                (scope.user, json.dumps(ids)),
            ):
                if kind in FACET_KINDS and (not plain or kind == "tag"):
                    out[(kind, value)] = out.get((kind, value), 0) + 1
        return out

    def _owns_everything(self, scope: Scope) -> bool:
        """Whether every live content is the user's own and none is shared with them (the
        common case of a one-user store): then no match needs checking whose it is."""
        if scope.full or scope.stripped:
            return False
        row = self.conn.execute(
            "SELECT (SELECT contents FROM storage_usage WHERE user = ?),"
            " (SELECT sum(contents) FROM storage_usage)",
            (scope.user,),
        ).fetchone()
        return row[0] is not None and row[0] == row[1]

    def _matches(self, query: Query, scope: Scope, filters: Filters) -> tuple[str, list[Any]]:
        """SQL of the visible matching contents: their ``n`` and ``stripped`` (1 for those
        shared without metadata), and its args."""
        if query.empty:
            return self._listed(scope, filters)
        parts: list[str] = []
        args: list[Any] = []
        where, where_args = _filters(filters, scope.user, "m")
        ranked, ranked_args = _ranked(query, plain=False)
        # CROSS JOIN: the matches drive (SQLite keeps that order); whose each one is comes
        # from the narrow search_owner table, never from the wide contents rows.
        if self._owns_everything(scope):
            parts.append(f"SELECT m.n AS n, 0 AS stripped FROM ({ranked}) m"
                         f" WHERE 1{where}")  # fmt: skip
            args += [*ranked_args, *where_args]
        else:
            shared = ""
            shared_args: list[Any] = []
            if scope.full:
                shared = " OR m.n IN (SELECT n FROM contents WHERE deleted = 0 AND content_id IN"
                shared += " (SELECT value FROM json_each(?)))"
                shared_args.append(json.dumps(scope.full))
            parts.append(
                f"SELECT m.n AS n, 0 AS stripped FROM ({ranked}) m"
                f" CROSS JOIN search_owner o ON o.n = m.n WHERE (o.owner = ?{shared}){where}"
            )
            args += [*ranked_args, scope.user, *shared_args, *where_args]
        if scope.stripped and not filters.generation:
            ranked, ranked_args = _ranked(query, plain=True)
            parts.append(
                f"SELECT m.n AS n, 1 AS stripped FROM ({ranked}) m"
                " WHERE m.n IN (SELECT n FROM contents WHERE deleted = 0 AND owner != ?"
                f" AND content_id IN (SELECT value FROM json_each(?))){where}"
            )
            args += [*ranked_args, scope.user, json.dumps(scope.stripped), *where_args]
        return " UNION ALL ".join(parts), args

    def _listed(self, scope: Scope, filters: Filters) -> tuple[str, list[Any]]:
        """As ``_matches`` without a query: the visible contents."""
        where, where_args = _filters(filters, scope.user, "c")
        own = "c.owner = ?"
        args: list[Any] = [scope.user]
        if scope.full:
            own = "(c.owner = ? OR c.content_id IN (SELECT value FROM json_each(?)))"
            args.append(json.dumps(scope.full))
        parts = [
            f"SELECT c.n AS n, 0 AS stripped FROM contents c WHERE c.deleted = 0 AND {own}{where}"
        ]
        args += where_args
        if scope.stripped and not filters.generation:
            parts.append(
                "SELECT c.n AS n, 1 AS stripped FROM contents c"
                " WHERE c.deleted = 0 AND c.owner != ?"
                f" AND c.content_id IN (SELECT value FROM json_each(?)){where}"
            )
            args += [scope.user, json.dumps(scope.stripped), *where_args]
        return " UNION ALL ".join(parts), args


def _ranked(query: Query, plain: bool) -> tuple[str, list[Any]]:
    """SQL of ``n`` for the contents the query matches."""
    args: list[Any] = []
    conditions: list[str] = []
    if query.words is not None:
        expression = f"{_PLAIN_COLUMNS} : ({query.words})" if plain else query.words
        base = "SELECT rowid AS n FROM search_words WHERE search_words MATCH ?"
        args.append(expression)
    else:
        base = "SELECT rowid AS n FROM search_cjk WHERE 1"
    columns = (
        ("description", "tags", "filename")
        if plain
        else ("prompt", "description", "tags", "filename", "model")
    )
    for run in query.cjk:
        if len(run) >= 3:
            target = f"{_PLAIN_COLUMNS} : " if plain else ""
            condition = "SELECT rowid FROM search_cjk WHERE search_cjk MATCH ?"
            args.append(f'{target}"{run}"')
        else:
            likes = " OR ".join(f"{column} LIKE ?" for column in columns)
            condition = f"SELECT rowid FROM search_cjk WHERE {likes}"
            args += [f"%{run}%"] * len(columns)
        conditions.append(f"rowid IN ({condition})")
    if conditions:
        base += " AND " + " AND ".join(conditions)
    return base, args


def _filters(filters: Filters, user: str, alias: str) -> tuple[str, list[Any]]:
    """SQL conditions (each starting with " AND ") of the filters on the contents whose
    arrival number is ``alias.n`` (``alias`` is the contents row itself when it is "c"),
    and their args."""
    sql: list[str] = []
    args: list[Any] = []
    n = f"{alias}.n"
    # "+n": a value, not the column, so the filter is never pushed into the FTS5 scan as a
    # rowid constraint (which would look each term's contents up in the index one by one).
    for kind, value in filters.terms:
        sql.append(f" AND +{n} IN (SELECT n FROM content_terms WHERE kind = ? AND value = ?)")
        args += [kind, value]
    row: list[str] = []  # conditions on the contents row
    if filters.mime is not None:
        row.append("c.mime = ?")
        args.append(filters.mime)
    if filters.favorite is not None:
        negate = "" if filters.favorite else "NOT "
        row.append(
            f"c.content_id {negate}IN"
            " (SELECT content_id FROM favorites WHERE user = ? AND favorite = 1)"
        )
        args.append(user)
    if filters.after_hlc is not None:
        row.append("c.created_hlc >= ?")
        args.append(filters.after_hlc)
    if filters.before_hlc is not None:
        row.append("c.created_hlc < ?")
        args.append(filters.before_hlc)
    if row and alias == "c":
        sql.extend(f" AND {condition}" for condition in row)
    elif row:
        sql.append(
            f" AND EXISTS (SELECT 1 FROM contents c WHERE c.n = {n} AND {' AND '.join(row)})"
        )
    return "".join(sql), args
