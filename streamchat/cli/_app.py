"""The Typer app, its default-command group, global options and the error boundary every command runs in."""

from __future__ import annotations

import contextlib
import math
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from typer._click.exceptions import UsageError as ClickUsageError
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from streamchat._version import __version__
from streamchat.config import Settings, load_settings, range_text
from streamchat.environment import Environment
from streamchat.errors import OutputClosed, StreamchatError
from streamchat.exit_status import ExitStatus, help_text
from streamchat.ui import UI

if TYPE_CHECKING:  # typer vendors click; these are its classes
    from typer._click.core import Context as ClickContext
    from typer._click.formatting import HelpFormatter
    from typer._click.shell_completion import CompletionItem


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


COMMAND_WORDS = "streamchat.command_words"  # ctx.meta: the words from a subcommand's name on


def _quoted(words: list[str]) -> str:
    return f"streamchat {shlex.quote(' '.join(words))}"


def _prompt_hint(err: ClickUsageError, words: list[str] | None) -> None:
    """`streamchat history of rome`: Click's "No such command 'of'." (or "unexpected extra
    arguments") alone did not say the words were taken as a command. Unless Click found a close
    command name (a typo, not a prompt), the message says how to ask it instead."""
    if not words or len(words) < 2 or type(err) is not ClickUsageError:
        return
    message = err.message
    if not message.startswith(("No such command", "Got unexpected extra argument")) or "Did you mean" in message:
        return
    err.message = (f"{message.rstrip('.')}: '{words[0]}' is a command. To ask the model, quote the prompt:"
                   f" {_quoted(words)} (or: streamchat -- {shlex.join(words)})")


IMPLICIT_CHAT = "streamchat.implicit_chat"  # ctx.meta: the user did not type `chat`, DefaultGroup added it


class _ChatContext(typer.Context):
    """`chat`'s context. When the user did not type `chat`, a usage error and its hint name
    `streamchat` alone: "Try 'streamchat chat -h'" named a word they never typed."""

    @property
    def command_path(self) -> str:
        if self.parent is not None and self.meta.get(IMPLICIT_CHAT):
            return self.parent.command_path
        return super().command_path


class ChatCommand(TyperCommand):
    context_class = _ChatContext


class DefaultGroup(TyperGroup):
    """A group that runs `chat` when the first word is not a subcommand (like click-default-group).

    `streamchat "models are fun"` chats; `streamchat models` and `streamchat --debug models` list
    models. A word naming a subcommand is never sent as a prompt.
    """

    def make_context(self, info_name: str | None, args: list[str], parent: ClickContext | None = None,
                     **extra: Any) -> ClickContext:
        with closed_stdout_exits():  # --help and --version print here
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: ClickContext) -> Any:
        with closed_stdout_exits():  # every command runs in here
            try:
                return super().invoke(ctx)
            except ClickUsageError as err:
                _prompt_hint(err, ctx.meta.get(COMMAND_WORDS))
                raise

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        skipped = _skip_options(args, GLOBAL_VALUE_OPTIONS, GLOBAL_FLAGS)
        if ctx.resilient_parsing and skipped == len(args):
            return super().parse_args(ctx, args)  # a Tab press on the first word: complete the commands
        rest = args[skipped:]
        if rest and (rest[0] in self.commands or skipped == 0 and rest[0] in ("-h", "--help", "--version")):
            ctx.meta[COMMAND_WORDS] = rest
            return super().parse_args(ctx, args)
        chat = self.commands[CHAT]
        value_options = {name for p in chat.params if isinstance(p, TyperOption) and not p.is_flag for name in p.opts}
        after = args[_skip_options(args, value_options, None):]
        if after and after[0] in self.commands:
            raise typer.BadParameter(
                f"'{after[0]}' is a command; only --config, --debug, --no-log, -m and --timeout may come before it. "
                f"To ask the model about it, quote the prompt ({_quoted(after)}) or put it after --",
                param_hint="PROMPT")
        ctx.meta[IMPLICIT_CHAT] = True
        return super().parse_args(ctx, [CHAT, *args])

    def shell_complete(self, ctx: ClickContext, incomplete: str) -> list[CompletionItem]:
        """Tab where a command could start: an option there may be chat's too (`streamchat --st`
        is `streamchat chat --stats`), so chat's options are offered beside the commands."""
        items = super().shell_complete(ctx, incomplete)
        if incomplete.startswith("-"):
            known = {item.value for item in items}
            items += [item for item in self.commands[CHAT].shell_complete(ctx, incomplete) if item.value not in known]
        return items

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
        with formatter.section("Examples"):
            for line in EXAMPLES:
                formatter.write(f"{'':>{formatter.current_indent}}{line}\n")
        formatter.write_paragraph()
        formatter.write_text(help_text())


# What --help shows last but the exit codes: a first answer, the REPL, context, data, code out, the log.
EXAMPLES = (
    'streamchat "why is the sky blue?"            one answer, streamed',
    "streamchat                                   the chat REPL (/help there)",
    'cat app.py | streamchat "review this"        stdin as context',
    'streamchat -m openai:gpt-4o-mini -f src/ "where is the config read?"',
    'streamchat -c "and then?"                    continue the last conversation',
    "streamchat --schema 'city, pop int' \"largest city of Peru\"",
    'streamchat -x "a one-liner to find big files" > big.sh',
    "streamchat history -n 5 · streamchat models · streamchat config init",
)


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
    """A callback checking a number option: not nan/inf, and in range (the config file uses the same
    ranges and words). Integer options use it too, rather than Typer's min/max, whose message read
    "Input should be greater than or equal to 1" beside "must be from 0 to 2"."""
    def check(value: float | None) -> float | None:
        if value is None:
            return None
        if not math.isfinite(value):
            raise typer.BadParameter(f"{value} is not a number")
        if not low <= value <= high:
            raise typer.BadParameter(f"must be {range_text(low, high, value)}")
        return value

    return check


# No envvar= here: load_settings reads STREAMCHAT_CONFIG, so a --config before a subcommand still wins.
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", metavar="PATH",
                                                   help="Config file [env: STREAMCHAT_CONFIG].")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Tracebacks and HTTP details on stderr (keys redacted).")]
def _complete_models(incomplete: str) -> list[str]:
    """Aliases, providers and their configured models — from the config file and the plugins' metadata
    only (no SDK, no plugin imported, no network)."""
    try:
        settings = load_settings()
    except StreamchatError:
        return []
    from streamchat.models_cache import load_models_cache
    from streamchat.plugins import names as plugin_names

    names = [*settings.routes, *settings.aliases, *settings.providers, *plugin_names("provider")]  # a plugin's: metadata only
    for name, prov in settings.providers.items():
        names += [f"{name}:{m}" for m in ([prov.default_model] if prov.default_model else []) + list(prov.models)]
    names += load_models_cache()  # what the last `streamchat models` found
    return [n for n in dict.fromkeys(names) if n.startswith(incomplete)]


def _complete_roles(incomplete: str) -> list[str]:
    from streamchat.roles import role_names

    try:
        return [n for n in role_names(load_settings()) if n.startswith(incomplete)]
    except StreamchatError:
        return []


def _complete_mcp(incomplete: str) -> list[str]:
    """MCP server names from the config (starting no server)."""
    try:
        return [n for n in sorted(load_settings().mcp) if n.startswith(incomplete)]
    except StreamchatError:
        return []


def _logged(column: str, incomplete: str) -> list[tuple[str, str]]:
    """The newest conversations' `column` (id or name) with their first words, straight from the log
    (read-only: a log not yet migrated has no names, and offers none)."""
    import sqlite3

    from streamchat.store import db_path

    path = db_path()
    if not path.exists():
        return []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            rows = db.execute(f"SELECT {column}, title FROM conversations WHERE {column} IS NOT NULL"
                              " ORDER BY updated_at DESC LIMIT 50").fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return []
    return [(str(value), title or "") for value, title in rows if str(value).startswith(incomplete)]


def _complete_ids(incomplete: str) -> list[tuple[str, str]]:
    return _logged("id", incomplete)


def _complete_names(incomplete: str) -> list[tuple[str, str]]:
    return _logged("name", incomplete)


ModelOpt = Annotated[Optional[str], typer.Option("-m", "--model", metavar="PROVIDER:MODEL", autocompletion=_complete_models,
                                                 help="Model or alias [env: STREAMCHAT_MODEL; default: local:smollm2].")]
ModelsOpt = Annotated[Optional[list[str]], typer.Option(
    "-m", "--model", metavar="PROVIDER:MODEL", autocompletion=_complete_models,
    help="Model or alias [env: STREAMCHAT_MODEL; default: local:smollm2]; repeat it to race several on one question.")]
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
def closed_stdout_exits() -> Iterator[None]:
    """A reader that closed stdout (`streamchat history | head -1`) ends any command quietly with
    141, as a one-shot's answer does: not "internal error: BrokenPipeError", nor click's exit 1."""
    from streamchat.sinks._output import failed, silence_stdout, stdout_failed

    try:
        yield
    except (BrokenPipeError, OutputClosed):
        silence_stdout()
        raise typer.Exit(ExitStatus.OUTPUT_CLOSED) from None
    except OSError as exc:  # `streamchat history > out.txt` on a full disk: said, not "internal error"
        if not stdout_failed(exc):
            raise
        failed(exc)
        silence_stdout()
        raise typer.Exit(ExitStatus.OUTPUT_FAILED) from None


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
        raise typer.Exit(signals.exit_code(ExitStatus.INTERRUPTED)) from None
    except (typer.Exit, typer.Abort, SystemExit, BrokenPipeError, OutputClosed):
        raise  # a closed stdout: closed_stdout_exits
    except Exception as exc:  # a bug: say so in one line; --debug shows the traceback
        from streamchat.sinks._output import stdout_failed

        if stdout_failed(exc):
            raise  # a full stdout: closed_stdout_exits
        if debug:
            raise
        ui.error(f"internal error: {type(exc).__name__}: {exc} — run with --debug and report it")
        raise typer.Exit(ExitStatus.ERROR) from None


@contextlib.contextmanager
def _command(g: Globals) -> Iterator[tuple[Settings, Environment, UI]]:
    """Settings, environment and the process's one UI for a subcommand, inside the error boundary."""
    from streamchat import signals

    env = Environment()
    ui = UI(env)
    signals.install()
    with error_boundary(ui, g.debug):
        settings = load_settings(g.config, warn=ui.warn)
        if settings.roles:  # a [roles.x] key of the wrong type was found only when the role was used
            from streamchat.roles import check_tables

            check_tables(settings)
        if g.debug:
            _setup_debug(settings)
        yield settings, env, ui


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


def plain_arguments(command: Any) -> None:
    for param in getattr(command, "params", []):
        if type(param) is TyperArgument:
            param.__class__ = _PlainArgument
    for sub in getattr(command, "commands", {}).values():
        plain_arguments(sub)


COMPLETE_VAR = "_STREAMCHAT_COMPLETE"
SHELLS = ("bash", "zsh", "fish")
