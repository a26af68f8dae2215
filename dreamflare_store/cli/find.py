"""The commands that find renders: search, facets, favorite, generation, reindex."""

from __future__ import annotations

import click

from . import format as fmt
from .context import State, store_command, user_option

_TAG = click.option(
    "--tag", "tags", multiple=True, metavar="T", help="Only with this tag (repeat)."
)


@store_command()
@click.argument("query", required=False)
@user_option
@_TAG
@click.option("--model", metavar="M", help="Only this model.")
@click.option("--lora", metavar="L", help="Only with this LoRA.")
@click.option("--sampler", metavar="S", help="Only this sampler.")
@click.option("--seed", metavar="S", help="Only this seed.")
@click.option("--generator", metavar="G", help="Only this generator (A1111, ComfyUI, ...).")
@click.option("--favorites", "favorite", flag_value=True, default=None, help="Only favorites.")
@click.option("--limit", "-n", type=int, default=50, show_default=True, help="Results per page.")
@click.option("--offset", type=int, default=0, show_default=True, help="Results to skip.")
def search(
    state: State,
    query: str | None,
    user: str,
    tags: tuple[str, ...],
    model: str | None,
    lora: str | None,
    sampler: str | None,
    seed: str | None,
    generator: str | None,
    favorite: bool | None,
    limit: int,
    offset: int,
) -> None:
    """Find your renders (and those shared with you) by prompt words and filters.

    QUERY: plain words (all must match), "quoted phrases" and prefix*; anything else is
    searched for as text, so a pasted prompt works. Best match first, then newest.

    \b
    Examples:
      dreamflare search "red fox" --user alice
      dreamflare search 'fox "at dawn"' --user alice --model sdxl_base --seed 1234
      dreamflare search --user alice --tag portrait --json
    """
    page = state.store.search_content(
        user,
        query,
        tags=list(tags) or None,
        model=model,
        lora=lora,
        sampler=sampler,
        seed=seed,
        generator=generator,
        favorite=favorite,
        limit=limit,
        offset=offset,
    )
    if state.as_json:
        state.emit(page)
        return
    if not page.items:
        click.echo("Nothing found." if page.total == 0 else f"Nothing past {offset}.")
        return
    click.echo(fmt.search_table(page.items))
    last = page.offset + len(page.items)
    more = f"; next: --offset {last}" if last < page.total else ""
    click.echo(f"\n{page.offset + 1}-{last} of {page.total:,}{more}")


@store_command()
@click.argument("query", required=False)
@user_option
@_TAG
@click.option("--limit", "-n", type=int, default=10, show_default=True, help="Values per facet.")
def facets(state: State, query: str | None, user: str, tags: tuple[str, ...], limit: int) -> None:
    """The models, LoRAs, samplers, generators and tags of your renders, most used first.

    \b
    Examples:
      dreamflare facets --user alice
      dreamflare facets "red fox" --user alice --limit 5
    """
    found = state.store.facets(user, query, tags=list(tags) or None, limit=limit)
    if state.as_json:
        state.emit(found)
        return
    sections = (
        ("MODEL", found.models),
        ("LORA", found.loras),
        ("SAMPLER", found.samplers),
        ("GENERATOR", found.generators),
        ("TAG", found.tags),
    )
    blocks = [
        fmt.table((title, "COUNT"), [(item.value, item.count) for item in items], right=(1,))
        for title, items in sections
        if items
    ]
    click.echo("\n\n".join(blocks) if blocks else "No facets.")


@store_command()
@click.argument("content_id", metavar="ID")
@user_option
@click.option("--off", is_flag=True, help="Unmark it.")
def favorite(state: State, content_id: str, user: str, off: bool) -> None:
    """Mark a content as one of your favorites (or unmark it with --off).

    \b
    Example:
      dreamflare favorite cnt_01J... --user alice
    """
    state.store.set_favorite(content_id, user, not off)
    if state.as_json:
        state.emit({"contentId": content_id, "favorite": not off})
    else:
        click.echo(f"{'Unmarked' if off else 'Marked'} {content_id}")


@store_command()
@click.argument("content_id", metavar="ID")
@user_option
@click.option("--version", "version", type=click.IntRange(min=1), help="A past version.")
def generation(state: State, content_id: str, user: str, version: int | None) -> None:
    """How a content was made: its generation record and the raw text it came from.

    \b
    Example:
      dreamflare generation cnt_01J... --user alice
    """
    found = state.store.get_generation(content_id, user, version)
    if state.as_json:
        state.emit(found)
        return
    pairs = fmt.generation_pairs(found.record) or [("generation", "none found")]
    click.echo(fmt.key_values(pairs))
    for key, text in found.raw.items():
        click.echo(f"\n--- {key} ---\n{text}")


@store_command()
def reindex(state: State) -> None:
    """Read the generation metadata of contents that have none yet (uploaded before this
    release, or pulled lazily and since fetched). Each record found syncs as an op.

    \b
    Example:
      dreamflare reindex
    """
    recorded = state.store.reindex()
    if state.as_json:
        state.emit({"recorded": recorded})
    else:
        click.echo(f"Recorded {recorded:,} generation records")


COMMANDS: list[click.Command] = [search, facets, favorite, generation, reindex]
