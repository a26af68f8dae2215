"""The account commands: storage and API usage, analytics, API keys, collaborations."""

from __future__ import annotations

import click

from . import format as fmt
from .context import State, store_command, user_option

# -- usage and analytics --------------------------------------------------------------


@click.group()
def usage() -> None:
    """Storage and API usage of a user."""


@store_command(usage, "storage")
@user_option
def usage_storage(state: State, user: str) -> None:
    """Contents, versions and bytes a user keeps, against their quota.

    \b
    Example:
      dreamflare usage storage --user alice
    """
    result = state.store.get_storage_usage(user)
    if state.as_json:
        state.emit(result)
    else:
        click.echo(fmt.storage_text(result))


@click.group()
def quota() -> None:
    """Limits on the bytes a user's contents keep (every version, each file once)."""


@store_command(quota, "set")
@user_option
@click.argument("size", metavar="SIZE|none")
def quota_set(state: State, user: str, size: str) -> None:
    """Limit a user's stored bytes: SIZE in bytes or with a unit (500MiB, 2GB), or none.

    \b
    Examples:
      dreamflare quota set --user alice 10GiB
      dreamflare quota set --user alice none
    """
    limit = fmt.parse_size(size)
    state.store.set_quota(user, limit)
    if state.as_json:
        state.emit({"userId": user, "quotaBytes": limit})
    elif limit is None:
        click.echo(f"{user} has no quota of their own now.")
    else:
        click.echo(f"{user} may keep {fmt.human_size(limit)} ({limit:,} bytes).")


@store_command(quota, "show")
def quota_show(state: State) -> None:
    """List the quotas set per user, with what each one uses.

    \b
    Example:
      dreamflare quota show
    """
    quotas = state.store.quotas()
    usages = {user: state.store.get_storage_usage(user) for user in quotas}
    if state.as_json:
        state.emit({"items": [usages[user].to_dict() for user in quotas]})
        return
    if not quotas:
        click.echo("No quotas set (set one with `dreamflare quota set --user U SIZE`).")
        return
    rows = [
        (user, fmt.human_size(limit), fmt.human_size(usages[user].history_bytes))
        for user, limit in quotas.items()
    ]
    click.echo(fmt.table(("USER", "QUOTA", "STORED"), rows, right=(1, 2)))


@store_command(usage, "api")
@user_option
def usage_api(state: State, user: str) -> None:
    """API calls a user made: totals, per operation and per day.

    \b
    Example:
      dreamflare usage api --user alice
    """
    result = state.store.get_api_usage(user)
    if state.as_json:
        state.emit(result)
    else:
        click.echo(fmt.api_usage_text(result))


@store_command()
@user_option
@click.option("--content-id", metavar="ID", help="One content (yours) instead of all.")
def analytics(state: State, user: str, content_id: str | None) -> None:
    """Views, downloads and viewers of your contents, or of one.

    \b
    Example:
      dreamflare analytics --user alice --content-id cnt_01J...
    """
    result = state.store.get_analytics(user, content_id)
    if state.as_json:
        state.emit(result)
    else:
        click.echo(fmt.analytics_text(result))


# -- API keys -------------------------------------------------------------------------


@click.group()
def key() -> None:
    """API keys for the HTTP server (`dreamflare serve`)."""


@store_command(key, "generate")
@user_option
@click.option("--description", "-d", help="What the key is for.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the secret (for scripts).")
def key_generate(state: State, user: str, description: str | None, quiet: bool) -> None:
    """Make a new API key. Its secret is shown this once: copy it now.

    \b
    Examples:
      dreamflare key generate --user alice --description "render farm"
      KEY=$(dreamflare key generate --user bob -q)
    """
    new = state.store.generate_api_key(user, description)
    if state.as_json:
        state.emit(new)
        return
    if quiet:
        click.echo(new.api_key)
        return
    click.echo(f"New API key {new.key_id} for {new.user_id}:\n")
    click.echo(f"    {new.api_key}\n")
    click.echo("This secret is shown only now; the store keeps only its hash. Copy it.")


@store_command(key, "revoke")
@click.argument("key_id", metavar="KEY_ID")
@user_option
def key_revoke(state: State, key_id: str, user: str) -> None:
    """Revoke one of your API keys; it stops working at once.

    \b
    Example:
      dreamflare key revoke key_01J... --user alice
    """
    state.store.revoke_api_key(key_id, user)
    if state.as_json:
        state.emit({"revoked": key_id})
    else:
        click.echo(f"Revoked {key_id}")


@store_command(key, "list")
@user_option
def key_list(state: State, user: str) -> None:
    """List your API keys (never their secrets), revoked ones included.

    \b
    Example:
      dreamflare key list --user alice
    """
    keys = state.store.list_api_keys(user)
    if state.as_json:
        state.emit({"items": [item.to_dict() for item in keys]})
        return
    if not keys:
        click.echo("No API keys.")
        return
    rows = [
        (
            item.key_id,
            item.description or "-",
            fmt.relative_time(item.created_at),
            fmt.relative_time(item.last_used_at) if item.last_used_at else "never",
            f"revoked {fmt.relative_time(item.revoked_at)}" if item.revoked_at else "active",
        )
        for item in keys
    ]
    click.echo(fmt.table(("KEY ID", "DESCRIPTION", "CREATED", "LAST USED", "STATUS"), rows))


# -- collaborations -------------------------------------------------------------------


@click.group()
def collab() -> None:
    """Share contents with other users, to read or to write."""


permissions_choice = click.Choice(["read", "write"])


@store_command(collab, "create")
@user_option
@click.option("--content-id", metavar="ID", required=True, help="The content to share.")
@click.option("--collaborator", metavar="USER", required=True, help="Who to share it with.")
@click.option(
    "--permissions", type=permissions_choice, default="read", show_default=True,
    help="read: see and download; write: also update and upload new versions.",
)  # fmt: skip
@click.option(
    "--strip-metadata/--keep-metadata", default=False, show_default=True,
    help="Share without how it was made: no prompt, model or seed; stripped downloads.",
)  # fmt: skip
def collab_create(
    state: State,
    user: str,
    content_id: str,
    collaborator: str,
    permissions: str,
    strip_metadata: bool,
) -> None:
    """Share a content you own with another user.

    \b
    Example:
      dreamflare collab create --user alice --content-id cnt_01J... --collaborator bob
      dreamflare collab create --user alice --content-id cnt_01J... --collaborator bob \
          --strip-metadata
    """
    result = state.store.create_collaboration(
        user, content_id, collaborator, permissions, strip_metadata
    )
    if state.as_json:
        state.emit(result)
    else:
        click.echo(
            f"Shared {result.content_id} with {result.collaborator_id}"
            f" ({result.permissions}): {result.collaboration_id}"
        )


@store_command(collab, "list")
@user_option
def collab_list(state: State, user: str) -> None:
    """Collaborations on your contents, and contents shared with you.

    \b
    Example:
      dreamflare collab list --user bob
    """
    items = state.store.list_collaborations(user)
    if state.as_json:
        state.emit({"items": [item.to_dict() for item in items]})
        return
    if not items:
        click.echo("No collaborations.")
        return
    rows = [
        (
            item.collaboration_id,
            item.content_id,
            item.user_id,
            item.collaborator_id,
            item.permissions,
            fmt.relative_time(item.updated_at),
        )
        for item in items
    ]
    headers = ("ID", "CONTENT", "OWNER", "COLLABORATOR", "PERMISSIONS", "UPDATED")
    click.echo(fmt.table(headers, rows))


@store_command(collab, "update")
@click.argument("collaboration_id", metavar="ID")
@user_option
@click.option("--permissions", type=permissions_choice, help="read or write.")
@click.option(
    "--strip-metadata/--keep-metadata", default=None,
    help="Withhold (or share again) how the content was made.",
)  # fmt: skip
def collab_update(
    state: State,
    collaboration_id: str,
    user: str,
    permissions: str | None,
    strip_metadata: bool | None,
) -> None:
    """Change what a collaborator may do or see (the content's owner only).

    \b
    Example:
      dreamflare collab update col_01J... --user alice --permissions write
      dreamflare collab update col_01J... --user alice --keep-metadata
    """
    result = state.store.update_collaboration(collaboration_id, user, permissions, strip_metadata)
    if state.as_json:
        state.emit(result)
    else:
        click.echo(f"{result.collaborator_id} may now {result.permissions} {result.content_id}")


@store_command(collab, "rm")
@click.argument("collaboration_ids", metavar="ID...", nargs=-1, required=True)
@user_option
def collab_rm(state: State, collaboration_ids: tuple[str, ...], user: str) -> None:
    """End collaborations: the owner may, and the collaborator may leave. - reads IDs
    from stdin.

    \b
    Examples:
      dreamflare collab rm col_01J... --user bob
      dreamflare collab rm col_01J... col_01K... --user alice
    """
    from .content import each_id
    from .fetch import read_ids

    ids = read_ids(collaboration_ids)
    each_id(state, ids, lambda cid: state.store.delete_collaboration(cid, user))


COMMANDS: list[click.Command] = [usage, quota, analytics, key, collab]
