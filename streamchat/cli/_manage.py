"""`config`, `history`, `roles` and `keys`: the commands around the chat."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from streamchat.config import Settings
from streamchat.environment import Environment
from streamchat.errors import UsageError
from streamchat.ui import UI

if TYPE_CHECKING:
    from streamchat.history import History

from streamchat.cli._app import (
    ConfigOpt,
    DebugOpt,
    _command,
    _complete_ids,
    _complete_roles,
    _globals,
    _number_in,
    app,
    error_boundary,
)

config_app = typer.Typer(help="Show or create the configuration.", rich_markup_mode=None, add_completion=False,
                         invoke_without_command=True)
app.add_typer(config_app, name="config")


@config_app.callback()
def config_default(ctx: typer.Context, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    """Print the effective settings (as `config show`), or run a config subcommand."""
    if ctx.invoked_subcommand is None:
        config_show(ctx, config, debug)


@config_app.command("path", help="Print the config file path.")
def config_path(ctx: typer.Context, config: ConfigOpt = None) -> None:
    from streamchat.config import default_config_path

    print(_globals(ctx).merge(config=config).config or default_config_path())


@config_app.command("show", help="Print the effective settings, secrets masked (the default).",
                    short_help="Print the settings, secrets masked.")
def config_show(ctx: typer.Context, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    import json

    from streamchat.config import masked

    with _command(_globals(ctx).merge(config=config, debug=debug)) as (settings, env, _ui):
        env.stdout.write(json.dumps(masked(settings), indent=2, default=str) + "\n")


@config_app.command("init", help="Write the example config to the user config dir.", short_help="Write the example config file.")
def config_init(ctx: typer.Context, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    from streamchat.config import default_config_path, example_config
    from streamchat.errors import UsageError
    from streamchat.private_files import write_private

    g = _globals(ctx).merge(config=config, debug=debug)
    env = Environment()
    with error_boundary(UI(env), g.debug):
        path = g.config or default_config_path()
        if path.exists():  # a refusal of what was asked (exit 2, as `roles new` of an existing role), not a bad file
            raise UsageError(f"{path} already exists", hint="edit it, or remove it first")
        write_private(path, example_config())
        print(path)


history_app = typer.Typer(help="List, show, export, rename, remove and search logged conversations.",
                          short_help="List, show, search, export conversations.", rich_markup_mode=None,
                          add_completion=False, invoke_without_command=True)
app.add_typer(history_app, name="history")

IdArg = Annotated[str, typer.Argument(metavar="ID", show_default=False, autocompletion=_complete_ids,
                                      help="A conversation id or name (see history list).")]
LimitOpt = Annotated[int, typer.Option("-n", "--limit", metavar="N", callback=_number_in(1), help="How many.")]


@contextlib.contextmanager
def _history(ctx: typer.Context, config: Optional[Path], debug: bool) -> Iterator[History]:
    from streamchat.history import History

    with _command(_globals(ctx).merge(config=config, debug=debug)) as (settings, env, ui):
        yield History(settings, env, ui)


SinceOpt = Annotated[Optional[str], typer.Option("--since", metavar="AGE",
                                                 help="Only conversations active within AGE (7d, 12h…), with their total cost.")]


@history_app.callback()
def history_default(ctx: typer.Context, limit: LimitOpt = 20, since: SinceOpt = None, config: ConfigOpt = None,
                    debug: DebugOpt = False) -> None:
    """List recent conversations (as `history list`), or run a history subcommand."""
    if ctx.invoked_subcommand is None:
        with _history(ctx, config, debug) as history:
            history.list_recent(limit, since)


@history_app.command("list", help="List recent conversations (the default).")
def history_list(ctx: typer.Context, limit: LimitOpt = 20, since: SinceOpt = None, config: ConfigOpt = None,
                 debug: DebugOpt = False) -> None:
    with _history(ctx, config, debug) as history:
        history.list_recent(limit, since)


@history_app.command("show", help="Show a conversation (Markdown on a terminal, plain when piped).", short_help="Show a conversation.")
def history_show(ctx: typer.Context, cid: IdArg, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    with _history(ctx, config, debug) as history:
        history.show(cid)


@history_app.command("export", help="Export a conversation as Markdown or JSON.")
def history_export(
    ctx: typer.Context,
    cid: IdArg,
    fmt: Annotated[str, typer.Option("--format", "-f", metavar="md|json", help="Output format.")] = "md",
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    with _history(ctx, config, debug) as history:
        history.export(cid, fmt)


@history_app.command("rm", help="Delete conversations.")
def history_rm(
    ctx: typer.Context,
    cids: Annotated[list[str], typer.Argument(metavar="ID", show_default=False, autocompletion=_complete_ids,
                                              help="Conversation ids or names (see history list).")],
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    with _history(ctx, config, debug) as history:
        history.remove(cids)


@history_app.command("rename", help="Name a conversation (then --session NAME continues it).", short_help="Name a conversation.")
def history_rename(
    ctx: typer.Context,
    cid: IdArg,
    name: Annotated[str, typer.Argument(metavar="NAME", show_default=False,
                                        help="Its new name: letters, digits, . @ + - _ (unique).")],
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    with _history(ctx, config, debug) as history:
        history.rename(cid, name)


@history_app.command("search", help="Full-text search over all messages.")
def history_search(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(metavar="TEXT", show_default=False, help="Words to find.")],
    limit: LimitOpt = 20,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    with _history(ctx, config, debug) as history:
        history.search(text, limit)


@app.command("pick", help="Continue from answer N of the last question (after a race: in -m order).",
             short_help="Continue answer N of the last question.")
def pick(
    ctx: typer.Context,
    number: Annotated[int, typer.Argument(metavar="N", show_default=False, callback=_number_in(1),
                                          help="The answer, from 1 (history show lists them).")],
    cid: Annotated[Optional[str], typer.Option("--cid", metavar="ID", autocompletion=_complete_ids,
                                               help="In this conversation (default: the latest).")] = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    with _history(ctx, config, debug) as history:
        history.pick(number, cid)


@history_app.command("votes", help="The leaderboard of serve's compare-mode votes: wins, losses, ties, win rate.",
                     short_help="Leaderboard of serve's compare-mode votes.")
def history_votes(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array of standings, best first.")] = False,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    with _history(ctx, config, debug) as history:
        history.votes(as_json)


roles_app = typer.Typer(help="List, show, edit and remove roles (presets of system prompt, model and template).",
                        short_help="List, show, edit and remove roles.",
                        rich_markup_mode=None, add_completion=False, invoke_without_command=True)
app.add_typer(roles_app, name="roles")
RoleArg = Annotated[str, typer.Argument(metavar="NAME", show_default=False, autocompletion=_complete_roles,
                                        help="A role name.")]


@roles_app.callback()
def roles_default(ctx: typer.Context, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    """List the roles (as `roles list`), or run a roles subcommand."""
    if ctx.invoked_subcommand is None:
        roles_list(ctx, config, debug)


@roles_app.command("list", help="List the roles: name, model, first line of the system prompt.", short_help="List the roles.")
def roles_list(ctx: typer.Context, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    from streamchat.roles import load_roles

    with _command(_globals(ctx).merge(config=config, debug=debug)) as (settings, env, _ui):
        for name, role in sorted(load_roles(settings).items()):
            env.stdout.write(f"{name}\t{role.model or '-'}\t{role.summary()}\n")


@roles_app.command("show", help="Show a role and where it is defined.")
def roles_show(ctx: typer.Context, name: RoleArg, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    from streamchat.roles import get_role

    with _command(_globals(ctx).merge(config=config, debug=debug)) as (settings, env, _ui):
        role = get_role(settings, name)
        for key in ("source", "model", "temperature", "max_tokens", "template", "system"):
            value = getattr(role, key)
            if value is not None:
                env.stdout.write(f"{key}: {value}\n")


@roles_app.command("edit", help="Edit a role in $EDITOR: your file, or a new one from the role as it is.",
                   short_help="Edit a role in $EDITOR.")
def roles_edit(ctx: typer.Context, name: RoleArg, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    from streamchat.roles import edit_role

    with _command(_globals(ctx).merge(config=config, debug=debug)) as (settings, _env, ui):
        path = edit_role(settings, name)
        ui.notice(f"role '{name}' saved to {path}" if path else f"role '{name}' unchanged; nothing was saved")


@roles_app.command("rm", help="Remove your role file NAME (a built-in role of that name applies again).",
                   short_help="Remove your role file NAME.")
def roles_rm(ctx: typer.Context, name: RoleArg, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    from streamchat.roles import BUILTIN, remove_role

    with _command(_globals(ctx).merge(config=config, debug=debug)) as (settings, _env, ui):
        removed = ", ".join(str(p) for p in remove_role(settings, name))
        back = (f"; [roles.{name}] in the config applies again" if name in settings.roles
                else f"; the built-in role '{name}' applies again" if name in BUILTIN else "")
        ui.notice(f"removed {removed}{back}")


keys_app = typer.Typer(help="Store API keys in the OS keyring (a 0600 file where there is none).",
                       short_help="Store API keys in the OS keyring.",
                       rich_markup_mode=None, add_completion=False, invoke_without_command=True)
app.add_typer(keys_app, name="keys")
ProviderArg = Annotated[str, typer.Argument(metavar="PROVIDER", show_default=False, help="A provider name.")]


def _key_provider(settings: Settings, name: str) -> None:
    prov = settings.providers.get(name)
    if prov is None or not prov.spec.needs_key:
        remote = [n for n, p in settings.providers.items() if p.spec.needs_key]
        raise UsageError(f"'{name}' is not a provider that takes a key", hint=f"one of: {', '.join(remote)}")


@keys_app.callback()
def keys_default(ctx: typer.Context, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    """List where each provider's key comes from (as `keys list`), or run a keys subcommand."""
    if ctx.invoked_subcommand is None:
        keys_list(ctx, config, debug)


@keys_app.command("set", help="Store a provider's key (typed hidden, or piped on stdin).", short_help="Store a provider's key.")
def keys_set(ctx: typer.Context, provider: ProviderArg, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    from streamchat import keys

    with _command(_globals(ctx).merge(config=config, debug=debug)) as (settings, env, ui):
        _key_provider(settings, provider)
        if env.stdin is not None and env.stdin_isatty:
            import getpass

            key = getpass.getpass(f"{provider} API key (not shown): ")
        else:
            key = env.stdin.readline() if env.stdin is not None else ""
        key = key.strip()
        if not key:
            raise UsageError("no key given; nothing stored")
        ui.notice(f"stored the {provider} key ({keys.mask(key)}) in {keys.set_key(provider, key, warn=ui.warn)}")


@keys_app.command("list", help="Each provider: where its key comes from, masked.", short_help="Where each provider's key comes from.")
def keys_list(ctx: typer.Context, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    from streamchat import keys

    with _command(_globals(ctx).merge(config=config, debug=debug)) as (settings, env, _ui):
        for name, prov in settings.providers.items():
            if prov.spec.needs_key:
                key, source = prov.key_source()
                env.stdout.write(f"{name}\t{source}\t{keys.mask(key) if key else '-'}\n")


@keys_app.command("rm", help="Remove a stored key.")
def keys_rm(ctx: typer.Context, provider: ProviderArg, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    from streamchat import keys

    with _command(_globals(ctx).merge(config=config, debug=debug)) as (settings, _env, ui):
        _key_provider(settings, provider)
        if not keys.delete(provider):
            raise UsageError(f"no stored key for {provider}", hint="streamchat keys list shows where keys come from")
        ui.notice(f"removed the stored {provider} key")
