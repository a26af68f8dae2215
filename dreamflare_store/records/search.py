"""The records of finding renders: facet counts and generation metadata."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import Record


@dataclass(frozen=True, slots=True)
class FacetCount(Record):
    """One facet value and how many of the contents in view carry it."""

    value: str
    count: int


@dataclass(frozen=True, slots=True)
class Facets(Record):
    """The models, LoRAs, samplers, generators and tags of the contents in view, each
    with its count, most used first."""

    models: tuple[FacetCount, ...]
    loras: tuple[FacetCount, ...]
    samplers: tuple[FacetCount, ...]
    generators: tuple[FacetCount, ...]
    tags: tuple[FacetCount, ...]


@dataclass(frozen=True, slots=True)
class Generation(Record):
    """How a version was made: the normalised record and the raw texts it was read from
    (read from the bytes when asked for; never stored in ops)."""

    content_id: str
    version: int
    record: dict[str, Any] | None
    raw: dict[str, str]
    truncated: tuple[str, ...] = ()
