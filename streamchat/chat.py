"""The one-shot front end: a ChatSession, a sink for stdout, one `ask`, an exit code."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from streamchat.config import Settings
from streamchat.environment import Environment
from streamchat.errors import exit_code_for
from streamchat.events import CUT_OFF as CUT_OFF  # its home moved to events; still importable here
from streamchat.events import Attachment, Outcome, TurnResult
from streamchat.exit_status import ExitStatus
from streamchat.roles import Role
from streamchat.service import ChatSession, Overrides
from streamchat.sinks import choose_sink, progress_sink
from streamchat.store import ConversationLog, open_log
from streamchat.ui import UI
from streamchat.ui import report_end as report_end  # its home is ui.py (structured.py uses it too)


@dataclass(frozen=True)
class ChatOptions:
    """Front-end choices (output, log); what the model is asked lives in `overrides`."""

    overrides: Overrides = field(default_factory=Overrides)
    json: bool = False
    markdown: bool = True
    code_theme: str | None = None  # config `code_theme`; None: the renderer's default
    stats: bool = False
    sanitize: bool = False
    raw: bool = False  # --raw: a piped answer's bytes exactly, no newline added at its end
    continue_last: bool = False
    cid: str | None = None
    session: str | None = None  # -S NAME: the conversation of that name, or a new one named so
    log: bool = True
    debug: bool = False
    extract: str | None = None  # -x: "first" or "all" code blocks to stdout, nothing else
    role: Role | None = None  # -r: its template shapes each question (its settings are in `overrides`)
    params: dict[str, str] = field(default_factory=dict)  # -p values for the template
    context: str = ""  # -f sources, rendered, added to the first question
    attachments: tuple[Attachment, ...] = ()  # -a files, sent with the first question
    tools: tuple[str, ...] = ()  # --tools: MCP servers (NAME) or single tools (NAME:TOOL) to enable
    approve: tuple[str, ...] = ()  # --approve: tools that run without asking ("all" for every one)
    functions: tuple[str, ...] = ()  # --functions: Python files whose functions are tools
    hide_reasoning: bool = False  # --hide-reasoning: the model's reasoning is not shown on stderr
    compact: bool = True  # --no-compact: send every turn, never a summary of the older ones
    race: tuple[str, ...] = ()  # several -m: each model answers the question, side by side (race.py)


def open_session(settings: Settings, opts: ChatOptions, ui: UI, *, warm: bool = False,
                 interactive: bool = False, tools: bool = False) -> ChatSession:
    """The session a CLI front end drives: the log opened, a conversation picked (-c / --cid / -S), and a
    toolbox when tools are asked for (`tools`: also when MCP servers are configured, for /tools).
    `interactive`: a person at the terminal can approve tool calls."""
    # continuing a logged conversation needs the log: a damaged one is exit 11 with the way to recover
    # it, as for `history` (it was a warning "not saved", then "not available — check STREAMCHAT_DB", exit 2)
    resumes = opts.continue_last or opts.cid is not None or opts.session is not None
    log: ConversationLog = open_log(enabled=opts.log, warn=ui.warn, required=resumes)
    conversation = log.pick(continue_last=opts.continue_last, cid=opts.cid, session=opts.session)
    toolbox = None
    if opts.tools or opts.functions or settings.functions or (tools and settings.mcp):
        from streamchat.tools import build_toolbox

        toolbox = build_toolbox(settings, list(opts.tools), list(opts.approve), ui, interactive=interactive,
                                functions=opts.functions)
    session = ChatSession(settings, opts.overrides, conversation=conversation, log=log, ui=ui, warm=warm, toolbox=toolbox,
                          compact=opts.compact)
    session.params()  # a bad -o, config option or --reasoning fails now, before anything is sent
    return session


def interactive(env: Environment) -> bool:
    """A person can answer questions (tool approval): stdin and stderr are a terminal."""
    return env.stdin_isatty and env.stderr_isatty


def run_chat(settings: Settings, opts: ChatOptions, env: Environment, ui: UI, prompt: str | None) -> int:
    """One answer to `prompt` (None: --continue-answer continues the last one) and its exit code."""
    if opts.race and prompt is not None:
        # the lanes build the providers; this session keeps the conversation and the log, and no tools
        session = open_session(replace(settings, functions=()), opts, ui, warm=True)
        return run_race(session, opts, env, ui, with_context(prompt, opts.context))
    session = open_session(settings, opts, ui, interactive=interactive(env))
    if session.toolbox is not None:
        session.toolbox.start()  # the servers start while the SDK loads
    try:
        return _one_shot(session, opts, env, ui, prompt)
    finally:
        if session.toolbox is not None:
            session.toolbox.close()


def _one_shot(session: ChatSession, opts: ChatOptions, env: Environment, ui: UI, prompt: str | None) -> int:
    question = with_context(prompt, opts.context) if prompt is not None else None  # None: --continue-answer
    if question is not None and session.overrides.schema is not None and not opts.extract:  # --schema, or the role's
        from streamchat.structured import data_output, run_data_turn

        session.check_context(question)
        out = data_output(env, ui, json_events=opts.json, sanitize=opts.sanitize, markdown=opts.markdown,
                          code_theme=opts.code_theme)
        return run_data_turn(session, out, ui, question, attachments=opts.attachments, debug=opts.debug,
                             stats=opts.stats and not opts.json)  # --json: the stats are in each done event
    if opts.extract:
        sink = progress_sink(env, ui, markdown=opts.markdown, code_theme=opts.code_theme)
    else:
        sink = choose_sink(env, ui, json=opts.json, markdown=opts.markdown, sanitize=opts.sanitize, stats=opts.stats,
                           code_theme=opts.code_theme, raw=opts.raw, reasoning=not opts.hide_reasoning)
    if question is None:
        result = session.continue_answer(sink)
    else:
        session.check_context(question)
        result = session.ask(question, sink, attachments=opts.attachments)
    if opts.extract and result.ok:
        whole = session.last.result if session.last is not None else result  # a continued answer: both parts
        status = write_code(whole, env, ui, every=opts.extract == "all")
        if status != ExitStatus.CUT_OFF:  # that line says the cut-off itself: one line, not two
            report_end(result, ui, opts.debug)
        return status
    report_end(result, ui, opts.debug)
    return exit_code_for(result)


def run_race(session: ChatSession, opts: ChatOptions, env: Environment, ui: UI, question: str) -> int:
    """Several models answer `question` at once (race.py); the exit code of the race."""
    from streamchat import race

    results, closed = race_turn(session, opts.race, opts, env, ui, question, opts.attachments)
    return ExitStatus.OUTPUT_CLOSED if closed else race.exit_code(results)


def race_turn(session: ChatSession, models: tuple[str, ...], opts: ChatOptions, env: Environment, ui: UI,
              question: str, attachments: tuple[Attachment, ...], *, repl: bool = False) -> tuple[list[TurnResult], bool]:
    """One question raced by `models` into the output `opts` asks for, failures said on stderr where
    no pane shows them (the one-shot command and the REPL: `repl` words their hints in REPL commands);
    (the results in -m order, stdout closed)."""
    from streamchat import race
    from streamchat.sinks.race import race_output

    racers = race.lanes(session, models)
    for lane in racers:
        lane.check_context(question, repl=repl)
    output = race_output(env, ui, [lane.model_name for lane in racers], json=opts.json, markdown=opts.markdown,
                         sanitize=opts.sanitize, stats=opts.stats, code_theme=opts.code_theme, repl=repl)
    results = race.run(session, racers, question, output, attachments=attachments)
    if not output.shows_errors and not output.closed:
        for lane, result in zip(racers, results, strict=True):
            if result.outcome is Outcome.FAILED and result.error is not None:
                if opts.debug:
                    ui.traceback(result.error.__cause__ or result.error)
                ui.error(f"{lane.model_name}: {result.error.said(repl=repl)}")
    return results, output.closed


def write_code(result: TurnResult, env: Environment, ui: UI, *, every: bool) -> int:
    """-x: exactly the code of the answer's fenced block(s) on stdout; none is exit 4, stdout empty.
    A block the answer ended inside is left out (`-x … > f.sh && sh f.sh` must not run half a
    command): cut off at the token limit is exit 9, a fence that never closed exit 10."""
    from streamchat.errors import OutputClosed
    from streamchat.render.code_blocks import extract
    from streamchat.sinks._output import Output

    found = extract(result.text, every=every)
    if found is None:
        ui.error("the answer has no fenced code block — nothing written (ask for code, or drop -x)")
        return ExitStatus.REQUEST
    code, left_out = found
    try:
        Output(env.stdout).write(code)
    except OutputClosed:
        return ExitStatus.OUTPUT_CLOSED
    if not left_out:
        return ExitStatus.OK
    left = "only the complete blocks were written" if code else "nothing written"
    if result.finish_reason in CUT_OFF:
        ui.error(f"the answer was cut off at the token limit ({result.stats.tokens} tokens) inside a code block "
                 f"— {left}; raise --max-tokens")
        return ExitStatus.CUT_OFF
    ui.error(f"the answer ended inside a code block that never closed — {left}")
    return ExitStatus.UNCLOSED_CODE


def with_context(prompt: str, context: str) -> str:
    """The question, then the -f sources."""
    return f"{prompt}\n\n{context}" if context else prompt


def gather_inputs(files: list[str], attach: list[str], *, stdin_text: str | None, timeout: float,
                  ui: UI) -> tuple[str, tuple[Attachment, ...]]:
    """Read -f sources and -a files, say in one dim line what goes to the model; errors send nothing.
    Without any, nothing is imported (context.py brings sockets and URL fetching: every REPL start)."""
    if not files and not attach:
        return "", ()
    from streamchat import attachments as attaching
    from streamchat.context import gather, terminal_line

    context = ""
    if files:
        gathered = gather(files, stdin=lambda: stdin_text, timeout=timeout)
        context = gathered.render()
        ui.notice(gathered.summary())
    loaded = tuple(attaching.load(a) for a in attach)
    if loaded:
        ui.notice(terminal_line("attached: " + ", ".join(f"{a.name} ({a.mime}, {len(a.data) / 1024:.1f} KB)"
                                                     for a in loaded)))
    return context, loaded


def list_options(settings: Settings, env: Environment, only: str) -> int:
    """`streamchat models --options PROVIDER`: the -o options its API takes, one per line (name, what
    a value must be, what it does). PROVIDER is a configured name or an adapter type."""
    from streamchat.errors import ConfigError, UsageError
    from streamchat.providers.options import options_for
    from streamchat.providers.registry import spec_for

    ptype = settings.providers[only].type if only in settings.providers else only
    try:
        spec_for(ptype)
    except ConfigError:
        raise UsageError(f"unknown provider '{only}'", hint=f"one of: {', '.join(settings.providers)}") from None
    rows = [(o.name, o.expected(), o.help) for o in options_for(ptype).values()]
    width = max(len(name) for name, _, _ in rows)
    env.stdout.write("".join(f"{name:<{width}}  {expected}" + (f" — {text}" if text else "") + "\n"
                             for name, expected, text in rows))
    env.stdout.flush()
    return ExitStatus.OK


def list_models(settings: Settings, env: Environment, ui: UI, only: str | None) -> int:
    """`streamchat models`: every provider's models, one `provider:model` per line.

    A provider that cannot answer (no key, no server) is skipped with a note, unless it
    was asked for by name, in which case its error is the command's error.
    """
    from streamchat.config import ProviderConfig
    from streamchat.errors import StreamchatError, UsageError, unexpected
    from streamchat.models_cache import save_models_cache
    from streamchat.plugins import names
    from streamchat.providers.base import get_provider
    from streamchat.render.sanitize import sanitize

    providers = dict(settings.providers)  # and the plugins' (from their metadata; imported to list their models)
    providers.update({n: ProviderConfig(n, n) for n in names("provider") if n not in providers})
    if only and only not in providers:
        raise UsageError(f"unknown provider '{only}'", hint=f"one of: {', '.join(providers)}")
    listed: list[str] = []
    for name in [only] if only else list(providers):
        cfg = providers[name]
        try:
            if cfg.models:
                found = list(cfg.models)
            else:
                provider = get_provider(cfg, timeout=settings.timeout)
                try:
                    found = provider.list_models()
                except Exception as exc:
                    raise provider.map_error(exc, model="", started=False) from exc
        except StreamchatError as err:
            if only:
                raise
            ui.notice(sanitize(f"{name}: skipped ({err.message})"))  # the server's words
            continue
        except Exception as exc:
            if only:
                raise unexpected(exc, name) from exc
            ui.notice(f"{name}: skipped ({type(exc).__name__})")
            continue
        # The names are the server's: one holding an escape sequence or another control character
        # would reach the terminal (and, cached, every Tab press); no real model is named so.
        odd = [m for m in found if not isinstance(m, str) or sanitize(m) != m]
        if odd:
            ui.notice(f"{name}: {len(odd)} model name{'s' if len(odd) > 1 else ''} holding control characters"
                      f" not listed ({sanitize(repr(odd[0]))[:80]}…)")
            found = [m for m in found if m not in odd]
        for model in found:
            env.stdout.write(f"{name}:{model}\n")
        listed += [f"{name}:{m}" for m in found]
    env.stdout.flush()
    save_models_cache(listed)
    return ExitStatus.OK
