"""Thin Typer app: options → settings → a front end. No provider SDK is imported here."""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from streamchat._version import __version__
from streamchat.config import Settings, load_settings
from streamchat.environment import Environment
from streamchat.errors import EXIT_INTERRUPTED, StreamchatError, UsageError
from streamchat.ui import UI

if TYPE_CHECKING:  # typer vendors click; these are its classes
    from typer._click.core import Context as ClickContext
    from typer._click.formatting import HelpFormatter

    from streamchat.history import History

CHAT = "chat"
GLOBAL_VALUE_OPTIONS = {"--config", "-m", "--model", "--timeout"}
GLOBAL_FLAGS = {"--debug", "--no-log"}


def _skip_options(args: list[str], with_value: set[str], flags: set[str] | None) -> int:
    """Index of the first word that is not one of these options (flags None: any other -option is a flag)."""
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--" or word == "-" or not word.startswith("-"):
            return i
        name = word.split("=", 1)[0]
        if name in with_value:
            i += 1 if "=" in word else 2
        elif flags is None or name in flags:
            i += 1
        else:
            return i
    return i


class DefaultGroup(TyperGroup):
    """A group that runs `chat` when the first word is not a subcommand (like click-default-group).

    `streamchat "models are fun"` chats; `streamchat models` and `streamchat --debug models` list
    models. A word naming a subcommand is never sent as a prompt.
    """

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        skipped = _skip_options(args, GLOBAL_VALUE_OPTIONS, GLOBAL_FLAGS)
        if ctx.resilient_parsing and skipped == len(args):
            return super().parse_args(ctx, args)  # a Tab press on the first word: complete the commands
        rest = args[skipped:]
        if rest and (rest[0] in self.commands or skipped == 0 and rest[0] in ("-h", "--help", "--version")):
            return super().parse_args(ctx, args)
        chat = self.commands[CHAT]
        value_options = {name for p in chat.params if isinstance(p, TyperOption) and not p.is_flag for name in p.opts}
        after = args[_skip_options(args, value_options, None):]
        if after and after[0] in self.commands:
            raise typer.BadParameter(
                f"'{after[0]}' is a command; only --config, --debug, --no-log, -m and --timeout may come before it. "
                f"To ask the model about '{after[0]}', add words or put it after --", param_hint="PROMPT")
        return super().parse_args(ctx, [CHAT, *args])

    def format_help(self, ctx: ClickContext, formatter: HelpFormatter) -> None:
        formatter.write_usage("streamchat", "[OPTIONS] [PROMPT]...\n       streamchat [GLOBAL OPTIONS] COMMAND [ARGS]...")
        formatter.write_paragraph()
        formatter.write_text(
            "Stream an LLM's answer to the terminal. With no PROMPT and a terminal on stdin, open a chat "
            "REPL; with piped stdin, the input is the prompt (or context after PROMPT). Global options "
            "(--config, --debug, --no-log, -m, --timeout) may also come before a COMMAND."
        )
        chat = self.commands[CHAT]
        with ctx.scope(cleanup=False):
            rows = [p.get_help_record(ctx) for p in chat.get_params(ctx) if p.param_type_name == "option"]
        with formatter.section("Options"):
            formatter.write_dl([r for r in rows if r] + [("--version", "Print the version and exit.")])
        self.format_commands(ctx, formatter)
        formatter.write_paragraph()
        formatter.write_text("Exit codes: 0 ok, 2 usage, 3 config/auth, 4 bad request/unknown model, "
                             "5 rate limit/server, 6 network/timeout, 130 interrupted (129 SIGHUP, 143 SIGTERM), "
                             "141 output closed.")


app = typer.Typer(
    cls=DefaultGroup,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"streamchat {__version__}")
        raise typer.Exit()


def _number_in(low: float, high: float = math.inf) -> Callable[[float | None], float | None]:
    """A callback checking a float option: not nan/inf, and in range (the config file uses the same ranges)."""
    def check(value: float | None) -> float | None:
        if value is None:
            return None
        if not math.isfinite(value):
            raise typer.BadParameter(f"{value} is not a number")
        if not low <= value <= high:
            raise typer.BadParameter(f"must be from {low:g} to {high:g}" if high != math.inf else f"must be at least {low:g}")
        return value

    return check


# No envvar= here: load_settings reads STREAMCHAT_CONFIG, so a --config before a subcommand still wins.
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", metavar="PATH",
                                                   help="Config file [env: STREAMCHAT_CONFIG].")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Tracebacks and HTTP details on stderr (keys redacted).")]
def _complete_models(incomplete: str) -> list[str]:
    """Aliases, providers and their configured models — from the config file only (no SDK, no network)."""
    try:
        settings = load_settings()
    except StreamchatError:
        return []
    from streamchat.chat import load_models_cache

    names = [*settings.aliases, *settings.providers]
    for name, prov in settings.providers.items():
        names += [f"{name}:{m}" for m in ([prov.default_model] if prov.default_model else []) + list(prov.models)]
    names += load_models_cache()  # what the last `streamchat models` found
    return [n for n in dict.fromkeys(names) if n.startswith(incomplete)]


def _complete_roles(incomplete: str) -> list[str]:
    from streamchat.roles import load_roles

    try:
        return [n for n in sorted(load_roles(load_settings())) if n.startswith(incomplete)]
    except StreamchatError:
        return []


def _complete_ids(incomplete: str) -> list[tuple[str, str]]:
    """Conversation ids with their first words, straight from the log (read-only)."""
    import sqlite3

    from streamchat.store import db_path

    path = db_path()
    if not path.exists():
        return []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            rows = db.execute("SELECT id, title FROM conversations ORDER BY updated_at DESC LIMIT 50").fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return []
    return [(str(i), title or "") for i, title in rows if str(i).startswith(incomplete)]


ModelOpt = Annotated[Optional[str], typer.Option("-m", "--model", metavar="PROVIDER:MODEL", autocompletion=_complete_models,
                                                 help="Model or alias [env: STREAMCHAT_MODEL; default: local:smollm2].")]
NoLogOpt = Annotated[bool, typer.Option("--no-log", help="Do not save this conversation.")]
TimeoutOpt = Annotated[Optional[float], typer.Option(
    "--timeout", metavar="SECONDS", callback=_number_in(0.1),
    help="Wait at most this long to connect or for the next byte.")]


@dataclass(frozen=True)
class Globals:
    """Options given before a subcommand; a subcommand's own option wins over them."""

    config: Optional[Path] = None
    debug: bool = False
    no_log: bool = False
    model: Optional[str] = None
    timeout: Optional[float] = None

    def merge(self, *, config: Optional[Path] = None, debug: bool = False, no_log: bool = False,
              model: Optional[str] = None, timeout: Optional[float] = None) -> Globals:
        return Globals(config or self.config, debug or self.debug, no_log or self.no_log, model or self.model,
                       timeout if timeout is not None else self.timeout)


def _globals(ctx: typer.Context) -> Globals:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Globals) else Globals()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
    no_log: NoLogOpt = False,
    model: ModelOpt = None,
    timeout: TimeoutOpt = None,
) -> None:
    """Stream LLM answers in the terminal."""
    ctx.obj = Globals(config, debug, no_log, model, timeout)


def _key_secrets(settings: Settings) -> tuple[str, ...]:
    """The API keys the settings can reach, to redact them from log lines."""
    found = []
    for prov in settings.providers.values():
        with contextlib.suppress(StreamchatError):
            if prov.api_key or prov.api_key_env:
                found.append(prov.resolve_key() or "")
    return tuple(s for s in found if s)


def _setup_debug(settings: Settings | None) -> None:
    from streamchat import logs

    logs.configure(debug=True, secrets=_key_secrets(settings) if settings is not None else (),
                   fmt="debug: %(name)s: %(message)s")


@contextlib.contextmanager
def error_boundary(ui: UI, debug: bool) -> Iterator[None]:
    """Every failure ends as one line on stderr and a documented exit code."""
    from streamchat import signals

    try:
        yield
    except StreamchatError as err:
        if debug:
            ui.traceback(err.__cause__ or err)
        ui.error(str(err))
        raise typer.Exit(err.exit_code) from None
    except KeyboardInterrupt:
        raise typer.Exit(signals.exit_code(EXIT_INTERRUPTED)) from None
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except Exception as exc:  # a bug: say so in one line; --debug shows the traceback
        if debug:
            raise
        ui.error(f"internal error: {type(exc).__name__}: {exc} — run with --debug and report it")
        raise typer.Exit(1) from None


@contextlib.contextmanager
def _command(g: Globals) -> Iterator[tuple[Settings, Environment, UI]]:
    """Settings, environment and the process's one UI for a subcommand, inside the error boundary."""
    from streamchat import signals

    env = Environment()
    ui = UI(env)
    signals.install()
    with error_boundary(ui, g.debug):
        settings = load_settings(g.config, warn=ui.warn)
        if g.debug:
            _setup_debug(settings)
        yield settings, env, ui


def _params(given: list[str]) -> dict[str, str]:
    out = {}
    for item in given:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"-p {item!r} is not NAME=VALUE", hint="e.g. -p focus=security")
        out[name] = value
    return out


@app.command(CHAT, help="Answer a prompt (the default command).")
def chat(
    ctx: typer.Context,
    prompt: Annotated[Optional[list[str]], typer.Argument(metavar="PROMPT", show_default=False,
                                                          help="The prompt; stdin is appended as context.")] = None,
    model: ModelOpt = None,
    system: Annotated[Optional[str], typer.Option("-s", "--system", metavar="TEXT", help="System prompt.")] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", metavar="FLOAT", callback=_number_in(0, 2),
                                                         help="Sampling temperature (0-2).")] = None,
    max_tokens: Annotated[Optional[int], typer.Option("--max-tokens", min=1, metavar="N", help="Longest answer in tokens.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="NDJSON events on stdout.")] = False,
    no_markdown: Annotated[bool, typer.Option("--no-markdown", help="Plain text even on a terminal.")] = False,
    stats: Annotated[bool, typer.Option("--stats", help="TTFT, tokens, tok/s and time on stderr.")] = False,
    timeout: TimeoutOpt = None,
    sanitize: Annotated[bool, typer.Option("--sanitize", help="Strip terminal control sequences in piped output too.")] = False,
    no_retry: Annotated[bool, typer.Option("--no-retry", help="Do not retry failed requests.")] = False,
    cont: Annotated[bool, typer.Option("-c", "--continue", help="Continue the most recent conversation.")] = False,
    cid: Annotated[Optional[str], typer.Option("--cid", metavar="ID", autocompletion=_complete_ids,
                                               help="Continue the conversation with this id.")] = None,
    no_log: NoLogOpt = False,
    files: Annotated[Optional[list[str]], typer.Option(
        "-f", "--file", metavar="SOURCE",
        help="Add text context: a file, directory, glob, URL, '-' (stdin) or '!command' (repeatable).")] = None,
    attach: Annotated[Optional[list[str]], typer.Option(
        "-a", "--attach", metavar="FILE", help="Attach an image (PNG, JPEG, GIF, WebP) or a PDF (repeatable).")] = None,
    role: Annotated[Optional[str], typer.Option("-r", "--role", metavar="NAME", autocompletion=_complete_roles,
                                                help="Use a role: system prompt, model, sampling, template.")] = None,
    param: Annotated[Optional[list[str]], typer.Option(
        "-p", "--param", metavar="NAME=VALUE", help="Fill {{NAME}} in the role's template (repeatable).")] = None,
    save_role: Annotated[Optional[str], typer.Option(
        "--save-role", metavar="NAME", help="Save -s, -m, --temperature and --max-tokens as a role.")] = None,
    editor: Annotated[bool, typer.Option("--editor", help="Write the prompt in $VISUAL/$EDITOR first.")] = False,
    shell: Annotated[bool, typer.Option(
        "--shell", help="Turn the prompt into one shell command; run it only if you choose to.")] = False,
    extract: Annotated[bool, typer.Option("-x", "--extract", help="Write only the answer's first code block to stdout.")] = False,
    extract_all: Annotated[bool, typer.Option("--extract-all", help="Write all the answer's code blocks to stdout.")] = False,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    from streamchat.chat import ChatOptions, gather_inputs, run_chat
    from streamchat.prompt_input import compose_prompt, read_stdin
    from streamchat.service import Overrides, preimport

    g = _globals(ctx).merge(config=config, debug=debug, no_log=no_log, model=model, timeout=timeout)
    with _command(g) as (settings, env, ui):
        from streamchat import roles

        chosen = roles.get_role(settings, role) if role else None
        overrides = Overrides(model=g.model, system=system, temperature=temperature, max_tokens=max_tokens,
                              timeout=g.timeout, retry=not no_retry)
        if chosen is not None:
            overrides = roles.under_flags(chosen, overrides)
        preimport(settings, overrides.model)  # the SDK import overlaps reading stdin and opening the log
        if save_role:
            path = roles.save_role(save_role, system=system, model=g.model, temperature=temperature,
                                   max_tokens=max_tokens)
            ui.notice(f"saved role '{save_role}' to {path}")
        stdin_text = read_stdin(env, settings.max_input_bytes)
        context, attachments = gather_inputs(files or [], attach or [], stdin_text=stdin_text,
                                             timeout=g.timeout or settings.timeout, ui=ui)
        params = _params(param or [])
        opts = ChatOptions(
            overrides=overrides, json=json_out, markdown=not no_markdown and settings.markdown, stats=stats,
            sanitize=sanitize, continue_last=cont, cid=cid, log=settings.log and not g.no_log, debug=g.debug,
            context=context, attachments=attachments, extract="all" if extract_all else "first" if extract else None,
            role=chosen, params=params,
        )
        text = compose_prompt(prompt, None if "-" in (files or []) else stdin_text)
        if save_role and text is None and not editor:
            raise typer.Exit(0)  # saving was the whole job
        if editor:
            from streamchat.editor import edit_text

            text = edit_text(text or "").strip() or None
            if text is None:
                raise UsageError("the editor left the prompt empty; nothing was sent")
        if text is not None and chosen is not None:
            text = chosen.apply(text, params)
        if shell:
            if text is None:
                raise UsageError("--shell needs a request", hint='streamchat --shell "find files over 100 MB"')
            from dataclasses import replace as with_

            from streamchat.chat import open_session
            from streamchat.shell_mode import run_shell_mode, shell_system_prompt

            opts = with_(opts, overrides=with_(overrides, system=system or shell_system_prompt()))
            raise typer.Exit(run_shell_mode(open_session(settings, opts, ui), text, env, ui))
        if text is None:
            if not env.stdin_isatty:
                raise UsageError("no prompt given", hint='pass a prompt: streamchat "question", or pipe text in')
            if not env.stdout_isatty:
                raise UsageError("the chat REPL needs a terminal on stdout",
                                 hint='to save answers, pass a prompt: streamchat "question" | tee answer.txt')
            from streamchat.repl import run_repl

            code = run_repl(settings, opts, env, ui)
        else:
            code = run_chat(settings, opts, env, ui, text)
    raise typer.Exit(code)


@app.command("models", help="List the models each configured provider offers.")
def models(
    ctx: typer.Context,
    provider: Annotated[Optional[str], typer.Argument(metavar="PROVIDER", show_default=False,
                                                      help="Only this provider.")] = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    from streamchat.chat import list_models

    with _command(_globals(ctx).merge(config=config, debug=debug)) as (settings, env, ui):
        raise typer.Exit(list_models(settings, env, ui, provider))


config_app = typer.Typer(help="Show or create the configuration.", rich_markup_mode=None, add_completion=False)
app.add_typer(config_app, name="config")


@config_app.command("path", help="Print the config file path.")
def config_path(ctx: typer.Context, config: ConfigOpt = None) -> None:
    from streamchat.config import default_config_path

    print(_globals(ctx).merge(config=config).config or default_config_path())


@config_app.command("show", help="Print the effective settings (secrets masked).")
def config_show(ctx: typer.Context, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    import json

    from streamchat.config import masked

    with _command(_globals(ctx).merge(config=config, debug=debug)) as (settings, env, _ui):
        env.stdout.write(json.dumps(masked(settings), indent=2, default=str) + "\n")


@config_app.command("init", help="Write the example config to the user config dir.")
def config_init(ctx: typer.Context, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    from streamchat.config import default_config_path, example_config
    from streamchat.errors import ConfigError

    g = _globals(ctx).merge(config=config, debug=debug)
    env = Environment()
    with error_boundary(UI(env), g.debug):
        path = g.config or default_config_path()
        if path.exists():
            raise ConfigError(f"{path} already exists", hint="edit it, or remove it first")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(example_config(), encoding="utf-8")
        path.chmod(0o600)
        print(path)


history_app = typer.Typer(help="List, show, export, remove and search logged conversations.", rich_markup_mode=None,
                          add_completion=False, invoke_without_command=True)
app.add_typer(history_app, name="history")

IdArg = Annotated[str, typer.Argument(metavar="ID", show_default=False, autocompletion=_complete_ids,
                                      help="A conversation id (see history list).")]
LimitOpt = Annotated[int, typer.Option("-n", "--limit", min=1, metavar="N", help="How many.")]


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


@history_app.command("show", help="Show a conversation (Markdown on a terminal, plain when piped).")
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
                                              help="Conversation ids.")],
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    with _history(ctx, config, debug) as history:
        history.remove(cids)


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


roles_app = typer.Typer(help="List, show and edit roles (presets of system prompt, model and template).",
                        rich_markup_mode=None, add_completion=False, invoke_without_command=True)
app.add_typer(roles_app, name="roles")
RoleArg = Annotated[str, typer.Argument(metavar="NAME", show_default=False, autocompletion=_complete_roles,
                                        help="A role name.")]


@roles_app.callback()
def roles_default(ctx: typer.Context, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    """List the roles (as `roles list`), or run a roles subcommand."""
    if ctx.invoked_subcommand is None:
        roles_list(ctx, config, debug)


@roles_app.command("list", help="List the roles: name, model, first line of the system prompt.")
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


@roles_app.command("edit", help="Edit a role file in $EDITOR (created from a commented skeleton).")
def roles_edit(ctx: typer.Context, name: RoleArg, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    import subprocess

    from streamchat.editor import editor_argv
    from streamchat.roles import SKELETON, roles_dir

    with _command(_globals(ctx).merge(config=config, debug=debug)) as (_settings, _env, ui):
        folder = roles_dir()
        path = next((p for p in (folder / f"{name}.md", folder / f"{name}.toml") if p.exists()), folder / f"{name}.md")
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(SKELETON, encoding="utf-8")
        subprocess.call([*editor_argv(), str(path)])
        ui.notice(f"role '{name}': {path}")


keys_app = typer.Typer(help="Store API keys in the OS keyring (a 0600 file where there is none).",
                       rich_markup_mode=None, add_completion=False, invoke_without_command=True)
app.add_typer(keys_app, name="keys")
ProviderArg = Annotated[str, typer.Argument(metavar="PROVIDER", show_default=False, help="A provider name.")]


def _key_provider(settings: Settings, name: str) -> None:
    prov = settings.providers.get(name)
    if prov is None or prov.type not in ("openai", "anthropic"):
        remote = [n for n, p in settings.providers.items() if p.type in ("openai", "anthropic")]
        raise UsageError(f"'{name}' is not a provider that takes a key", hint=f"one of: {', '.join(remote)}")


@keys_app.callback()
def keys_default(ctx: typer.Context, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    """List where each provider's key comes from (as `keys list`), or run a keys subcommand."""
    if ctx.invoked_subcommand is None:
        keys_list(ctx, config, debug)


@keys_app.command("set", help="Store a provider's key (typed hidden, or piped on stdin).")
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


@keys_app.command("list", help="Each provider: where its key comes from, masked.")
def keys_list(ctx: typer.Context, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    from streamchat import keys

    with _command(_globals(ctx).merge(config=config, debug=debug)) as (settings, env, _ui):
        for name, prov in settings.providers.items():
            if prov.type in ("openai", "anthropic"):
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


LOOPBACK = ("127.0.0.1", "localhost", "::1")
MIN_TOKEN_LENGTH = 16
SERVE_MAX_CONNECTIONS = 1000


@app.command("serve", help="Serve streams over HTTP: SSE /stream, OpenAI-compatible /v1, WebSocket /ws, web page /.")
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", metavar="HOST", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, metavar="PORT", help="Port to listen on.")] = 8765,
    model: ModelOpt = None,
    token: Annotated[Optional[str], typer.Option(
        "--token", envvar="STREAMCHAT_TOKEN", show_envvar=True, metavar="TOKEN",
        help="Require 'Authorization: Bearer TOKEN' (the page takes ?token=). Prefer the variable: "
             "arguments are visible in ps.")] = None,
    cors: Annotated[Optional[str], typer.Option("--cors", metavar="ORIGIN", help="Allow this browser origin.")] = None,
    allow_host: Annotated[Optional[list[str]], typer.Option(
        "--allow-host", metavar="NAME", help="Also answer to this Host name (repeatable).")] = None,
    allow_local_models: Annotated[bool, typer.Option(
        "--allow-local-models", help="Let clients pick any local GGUF file by path (local:PATH).")] = False,
    timeout: TimeoutOpt = None,
    no_retry: Annotated[bool, typer.Option("--no-retry", help="Do not retry failed upstream requests.")] = False,
    workers: Annotated[str, typer.Option("--workers", metavar="N|auto",
                                         help="Server processes (uvicorn workers); auto = one per core.")] = "1",
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    g = _globals(ctx).merge(config=config, debug=debug, model=model, timeout=timeout)
    with _command(g) as (settings, env, ui):
        if token is not None and (not token or token != token.strip()
                                  or host not in LOOPBACK and len(token) < MIN_TOKEN_LENGTH):
            raise UsageError(f"the token must have no surrounding spaces, and off loopback at least {MIN_TOKEN_LENGTH}"
                             " characters", hint='make one with: export STREAMCHAT_TOKEN="$(openssl rand -hex 24)"')
        if host not in LOOPBACK and not token:
            raise UsageError(f"refusing to bind {host} without a token",
                             hint="set STREAMCHAT_TOKEN (or --token), or bind 127.0.0.1")
        if any(a == "--token" or a.startswith("--token=") for a in sys.argv):
            ui.warn("warning: --token is visible to other users in ps; prefer STREAMCHAT_TOKEN")
        try:
            import uvicorn

            from streamchat import logs
            from streamchat.serve.app import SPEC_VAR, ServeSpec
            from streamchat.serve.protocol import HeaderTimeoutH11Protocol
        except ImportError:
            from streamchat.errors import ConfigError

            raise ConfigError("streamchat serve needs FastAPI and uvicorn",
                              hint="install them with: pip install 'streamchat[serve]'") from None
        from streamchat.service import ChatSession, Overrides

        processes = (os.cpu_count() or 1) if workers == "auto" else int(workers) if workers.isdigit() else 0
        if processes < 1:
            raise UsageError(f"--workers must be a number ≥ 1 or auto, not {workers!r}")
        overrides = Overrides(model=g.model, timeout=g.timeout, retry=not no_retry)
        session = ChatSession(settings, overrides, ui=ui)  # fail fast; loads a local model once
        overrides = replace(overrides, model=overrides.model or session.model_name)
        spec = ServeSpec(config=str(settings.path) if settings.path else None, model=overrides.model,
                         timeout=overrides.timeout, retry=overrides.retry, token=token, cors_origin=cors,
                         allow_local_models=allow_local_models, bind=host, allow_hosts=tuple(allow_host or ()),
                         debug=g.debug)
        ui.notice(f"streamchat serving {session.model_name} on http://{host}:{port}/"
                  + (f" with {processes} worker processes" if processes > 1 else ""))
        logs.configure(debug=g.debug, secrets=(token or "", *_key_secrets(settings)))
        common: dict[str, Any] = dict(
            host=host, port=port, http=HeaderTimeoutH11Protocol, log_config=None,
            log_level="debug" if g.debug else "warning", limit_concurrency=SERVE_MAX_CONNECTIONS,
            timeout_keep_alive=5, ws_max_size=1024 * 1024, ws_max_queue=16, h11_max_incomplete_event_size=64 * 1024)
        if processes == 1:
            uvicorn.run(spec.app(settings), **common)
        else:  # each worker process builds the same app from the spec (serve is stateless)
            os.environ[SPEC_VAR] = spec.to_json()
            uvicorn.run("streamchat.serve.app:app_from_env", factory=True, workers=processes, **common)


class _PlainArgument(TyperArgument):
    """Arguments shown the usual way: `ID`, `[PROVIDER]`, `ID...` (not `{ID}`, `[[PROVIDER]]`, `ID <str>`)."""

    def _usage_display_name(self) -> str:
        name = self.metavar or self.name.upper() if self.name else "ARG"
        name += "..." if self.nargs != 1 else ""
        return name if self.required else f"[{name}]"

    def get_help_record(self, ctx: ClickContext) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        if record is None:
            return None
        return re.sub(r" <[^>]*>$", "", record[0]), record[1]


def _plain_arguments(command: Any) -> None:
    for param in getattr(command, "params", []):
        if type(param) is TyperArgument:
            param.__class__ = _PlainArgument
    for sub in getattr(command, "commands", {}).values():
        _plain_arguments(sub)


COMPLETE_VAR = "_STREAMCHAT_COMPLETE"
SHELLS = ("bash", "zsh", "fish")


@app.command("completion", help="Print the shell completion script (bash, zsh or fish), or install it.")
def completion(
    shell: Annotated[str, typer.Argument(metavar="SHELL", show_default=False, help="bash, zsh or fish.")],
    install: Annotated[bool, typer.Option("--install", help="Add it to the shell's startup files.")] = False,
) -> None:
    from typer import _completion_shared  # Typer's own scripts and installer (no public API for them)

    if shell not in SHELLS:
        raise typer.BadParameter(f"must be one of {', '.join(SHELLS)}", param_hint="SHELL")
    if install:
        path = _completion_shared.install(shell=shell, prog_name="streamchat", complete_var=COMPLETE_VAR)[1]
        print(f"installed {shell} completion in {path}; open a new shell to use it", file=sys.stderr)
        return
    print(_completion_shared.get_completion_script(prog_name="streamchat", complete_var=COMPLETE_VAR, shell=shell))


def main() -> None:
    command = typer.main.get_command(app)
    _plain_arguments(command)
    if COMPLETE_VAR in os.environ:  # a Tab press: Typer's shell classes, nothing else loads
        from typer._completion_classes import completion_init

        completion_init()
    command()
