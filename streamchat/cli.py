"""Thin Typer app: options → settings → provider + sink → run. No provider SDK is imported here."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from typer.core import TyperGroup

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


class DefaultGroup(TyperGroup):
    """A group that runs `chat` when the first word is not a subcommand (like click-default-group).

    `streamchat "models are fun"` chats; `streamchat models` lists models.
    """

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help", "--version")):
            args = [CHAT, *args]
        return super().parse_args(ctx, args)

    def format_help(self, ctx: ClickContext, formatter: HelpFormatter) -> None:
        formatter.write_usage("streamchat", "[OPTIONS] [PROMPT]...\n       streamchat COMMAND [ARGS]...")
        formatter.write_paragraph()
        formatter.write_text(
            "Stream an LLM's answer to the terminal. With no PROMPT and a terminal on stdin, open a chat "
            "REPL; with piped stdin, the input is the prompt (or context after PROMPT)."
        )
        chat = self.commands[CHAT]
        with ctx.scope(cleanup=False):
            rows = [p.get_help_record(ctx) for p in chat.get_params(ctx) if p.param_type_name == "option"]
        with formatter.section("Options"):
            formatter.write_dl([r for r in rows if r] + [("--version", "Print the version and exit.")])
        self.format_commands(ctx, formatter)
        formatter.write_paragraph()
        formatter.write_text("Exit codes: 0 ok, 2 usage, 3 config/auth, 4 bad request/unknown model, "
                             "5 rate limit/server, 6 network/timeout, 130 interrupted.")


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


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Stream LLM answers in the terminal."""


ConfigOpt = Annotated[Optional[Path], typer.Option("--config", envvar="STREAMCHAT_CONFIG", metavar="PATH",
                                                   help="Config file.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Tracebacks and HTTP details on stderr (keys redacted).")]
ModelOpt = Annotated[Optional[str], typer.Option("-m", "--model", metavar="PROVIDER:MODEL",
                                                 help="Model or alias [env: STREAMCHAT_MODEL; default: local:smollm2].")]


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
    try:
        yield
    except StreamchatError as err:
        if debug:
            ui.traceback(err.__cause__ or err)
        ui.error(str(err))
        raise typer.Exit(err.exit_code) from None
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except Exception as exc:  # a bug: say so in one line; --debug shows the traceback
        if debug:
            raise
        ui.error(f"internal error: {type(exc).__name__}: {exc} — run with --debug and report it")
        raise typer.Exit(1) from None


@contextlib.contextmanager
def _command(config: Optional[Path], debug: bool) -> Iterator[tuple[Settings, Environment, UI]]:
    """Settings, environment and the process's one UI for a subcommand, inside the error boundary."""
    env = Environment()
    ui = UI(env)
    with error_boundary(ui, debug):
        settings = load_settings(config, warn=ui.warn)
        if debug:
            _setup_debug(settings)
        yield settings, env, ui


def read_stdin(env: Environment, limit: int) -> str | None:
    """Piped stdin as text, or None for a terminal. Binary or oversized input is refused clearly."""
    if env.stdin is None or env.stdin_isatty:
        return None
    try:
        data: bytes = env.stdin.buffer.read(limit + 1)  # type: ignore[attr-defined]
    except (OSError, ValueError, AttributeError):
        return None
    if len(data) > limit:
        raise UsageError(f"stdin is larger than {limit} bytes",
                         hint="pass less input, or raise max_input_bytes in the config")
    if b"\x00" in data:
        raise UsageError("stdin holds binary data (NUL bytes)", hint="pipe text, not a binary file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"stdin is not valid UTF-8 (byte {exc.start})",
                         hint="convert it first, e.g. iconv -f latin1 -t utf-8") from None


def compose_prompt(args: list[str] | None, stdin_text: str | None) -> str | None:
    """Arguments, stdin, or both (stdin appended after the prompt as context)."""
    prompt = " ".join(args or []).strip()
    context = (stdin_text or "").strip("\n")
    if prompt and context.strip():
        return f"{prompt}\n\n{context}"
    return prompt or (context if context.strip() else None)


@app.command(CHAT, help="Answer a prompt (the default command).")
def chat(
    prompt: Annotated[Optional[list[str]], typer.Argument(help="The prompt; stdin is appended as context.",
                                                          show_default=False)] = None,
    model: ModelOpt = None,
    system: Annotated[Optional[str], typer.Option("-s", "--system", metavar="TEXT", help="System prompt.")] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", min=0.0, max=2.0, metavar="FLOAT",
                                                         help="Sampling temperature (0-2).")] = None,
    max_tokens: Annotated[Optional[int], typer.Option("--max-tokens", min=1, metavar="N", help="Longest answer in tokens.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="NDJSON events on stdout.")] = False,
    no_markdown: Annotated[bool, typer.Option("--no-markdown", help="Plain text even on a terminal.")] = False,
    stats: Annotated[bool, typer.Option("--stats", help="TTFT, tokens, tok/s and time on stderr.")] = False,
    timeout: Annotated[Optional[float], typer.Option("--timeout", min=0.1, metavar="SECONDS",
                                                     help="Wait at most this long to connect or for the next byte.")] = None,
    sanitize: Annotated[bool, typer.Option("--sanitize", help="Strip terminal control sequences in piped output too.")] = False,
    no_retry: Annotated[bool, typer.Option("--no-retry", help="Do not retry failed requests.")] = False,
    cont: Annotated[bool, typer.Option("-c", "--continue", help="Continue the most recent conversation.")] = False,
    cid: Annotated[Optional[str], typer.Option("--cid", metavar="ID", help="Continue the conversation with this id.")] = None,
    no_log: Annotated[bool, typer.Option("--no-log", help="Do not save this conversation.")] = False,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    from streamchat.chat import ChatOptions, run_chat
    from streamchat.service import Overrides

    with _command(config, debug) as (settings, env, ui):
        overrides = Overrides(model=model, system=system, temperature=temperature, max_tokens=max_tokens,
                              timeout=timeout, retry=not no_retry)
        opts = ChatOptions(
            overrides=overrides, json=json_out, markdown=not no_markdown and settings.markdown, stats=stats,
            sanitize=sanitize, continue_last=cont, cid=cid, log=settings.log and not no_log, debug=debug,
        )
        text = compose_prompt(prompt, read_stdin(env, settings.max_input_bytes))
        if text is None:
            if not env.stdin_isatty:
                raise UsageError("no prompt given", hint='pass a prompt: streamchat "question", or pipe text in')
            from streamchat.repl import run_repl

            code = run_repl(settings, opts, env, ui)
        else:
            code = run_chat(settings, opts, env, ui, text)
    raise typer.Exit(code)


@app.command("models", help="List the models each configured provider offers.")
def models(
    provider: Annotated[Optional[str], typer.Argument(metavar="[PROVIDER]", help="Only this provider.")] = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    from streamchat.chat import list_models

    with _command(config, debug) as (settings, env, ui):
        raise typer.Exit(list_models(settings, env, ui, provider))


config_app = typer.Typer(help="Show or create the configuration.", rich_markup_mode=None, add_completion=False)
app.add_typer(config_app, name="config")


@config_app.command("path", help="Print the config file path.")
def config_path(config: ConfigOpt = None) -> None:
    from streamchat.config import default_config_path

    print(config or default_config_path())


@config_app.command("show", help="Print the effective settings (secrets masked).")
def config_show(config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    import json

    from streamchat.config import masked

    with _command(config, debug) as (settings, env, _ui):
        env.stdout.write(json.dumps(masked(settings), indent=2, default=str) + "\n")


@config_app.command("init", help="Write the example config to the user config dir.")
def config_init(config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    from streamchat.config import default_config_path, example_config
    from streamchat.errors import ConfigError

    env = Environment()
    with error_boundary(UI(env), debug):
        path = config or default_config_path()
        if path.exists():
            raise ConfigError(f"{path} already exists", hint="edit it, or remove it first")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(example_config(), encoding="utf-8")
        path.chmod(0o600)
        print(path)


history_app = typer.Typer(help="List, show, export, remove and search logged conversations.", rich_markup_mode=None,
                          add_completion=False, invoke_without_command=True)
app.add_typer(history_app, name="history")


@contextlib.contextmanager
def _history(config: Optional[Path], debug: bool) -> Iterator[History]:
    from streamchat.history import History

    with _command(config, debug) as (settings, env, ui):
        yield History(settings, env, ui)


@history_app.callback()
def history_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("-n", "--limit", min=1, metavar="N", help="How many conversations.")] = 20,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    """List recent conversations (default), or run a history subcommand."""
    if ctx.invoked_subcommand is None:
        with _history(config, debug) as history:
            history.list_recent(limit)


@history_app.command("show", help="Show a conversation (Markdown on a terminal, plain when piped).")
def history_show(cid: Annotated[str, typer.Argument(metavar="ID")], config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    with _history(config, debug) as history:
        history.show(cid)


@history_app.command("export", help="Export a conversation as Markdown or JSON.")
def history_export(
    cid: Annotated[str, typer.Argument(metavar="ID")],
    fmt: Annotated[str, typer.Option("--format", "-f", metavar="md|json", help="Output format.")] = "md",
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    with _history(config, debug) as history:
        history.export(cid, fmt)


@history_app.command("rm", help="Delete a conversation.")
def history_rm(cid: Annotated[str, typer.Argument(metavar="ID")], config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    with _history(config, debug) as history:
        history.remove(cid)


@history_app.command("search", help="Full-text search over all messages.")
def history_search(
    text: Annotated[str, typer.Argument(metavar="TEXT")],
    limit: Annotated[int, typer.Option("-n", "--limit", min=1, metavar="N", help="How many matches.")] = 20,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    with _history(config, debug) as history:
        history.search(text, limit)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


MIN_TOKEN_LENGTH = 16


@app.command("serve", help="Serve streams over HTTP: SSE /stream, OpenAI-compatible /v1, WebSocket /ws, web page /.")
def serve(
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
    timeout: Annotated[Optional[float], typer.Option(
        "--timeout", min=0.1, metavar="SECONDS", help="Upstream connect / next-byte timeout.")] = None,
    no_retry: Annotated[bool, typer.Option("--no-retry", help="Do not retry failed upstream requests.")] = False,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    with _command(config, debug) as (settings, env, ui):
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
            from streamchat.serve.app import ServeOptions, create_app
            from streamchat.serve.policy import OriginPolicy
            from streamchat.serve.protocol import HeaderTimeoutH11Protocol
        except ImportError:
            from streamchat.errors import ConfigError

            raise ConfigError("streamchat serve needs FastAPI and uvicorn",
                              hint="install them with: pip install 'streamchat[serve]'") from None
        from streamchat.service import ChatSession, Overrides

        overrides = Overrides(model=model, timeout=timeout, retry=not no_retry)
        session = ChatSession(settings, overrides, ui=ui)  # fail fast; loads a local model once
        options = ServeOptions(token=token, cors_origin=cors, allow_local_models=allow_local_models,
                               origins=OriginPolicy.for_bind(host, tuple(allow_host or ()), cors))
        ui.notice(f"streamchat serving {session.model_name} on http://{host}:{port}/")
        logs.configure(debug=debug, secrets=(token or "", *_key_secrets(settings)))
        uvicorn.run(create_app(settings, replace(overrides, model=overrides.model or session.model_name), options),
                    host=host, port=port, http=HeaderTimeoutH11Protocol, log_config=None, log_level="debug" if debug else "warning",
                    limit_concurrency=SERVE_MAX_CONNECTIONS, timeout_keep_alive=5, ws_max_size=1024 * 1024,
                    ws_max_queue=16, h11_max_incomplete_event_size=64 * 1024)


SERVE_MAX_CONNECTIONS = 1000


def main() -> None:
    app()
