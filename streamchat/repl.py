"""The interactive REPL: prompt-toolkit input, answers rendered to the real terminal between prompts.

This module is the input loop and the state the commands share (`Repl`); the slash commands
themselves are in `repl_commands.py`, one function each.

Ctrl-C while an answer streams stops that answer only (the HTTP stream is closed, the
partial text stays on screen and in the conversation); Ctrl-C at the prompt clears the
line; Ctrl-D or /exit quits with 0.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from streamchat import signals, typeahead
from streamchat.chat import ChatOptions, open_session, race_turn, with_context
from streamchat.config import Settings
from streamchat.cost import money, short
from streamchat.environment import Environment
from streamchat.errors import OutputClosed, StreamchatError
from streamchat.events import Attachment, Sink, TurnResult
from streamchat.exit_status import ExitStatus
from streamchat.paths import data_dir
from streamchat.providers.options import REASONING
from streamchat.render.code_blocks import code_blocks
from streamchat.render.sanitize import sanitize
from streamchat.repl_commands import COMMANDS, lookup, set_label, set_names
from streamchat.service import ChatSession
from streamchat.sinks import choose_sink
from streamchat.ui import UI, plural, report_end

if TYPE_CHECKING:
    from streamchat.tools import Toolbox

PROMPT = "› "
CONTINUATION = "… "
FENCE = '"""'
CPR_TIMEOUT = 1  # seconds a prompt waits for the terminal's first cursor-position reply (prompt-toolkit: 2)


class Repl:
    """The REPL's state on top of one ChatSession: questions asked, and what the commands (repl_commands.py) change."""

    def __init__(self, settings: Settings, opts: ChatOptions, env: Environment, ui: UI) -> None:
        self.settings = settings
        self.opts = opts
        self.env = env
        self.ui = ui
        # the prompt comes first (warm); MCP servers start when a question first needs their tools
        self.session: ChatSession = open_session(settings, opts, ui, warm=True, interactive=True, tools=True)
        self.running = True
        self.pasted = False  # the line being read came (at least partly) from a bracketed paste
        self.held: tuple[str, tuple[Attachment, ...]] | None = None  # a question that would overflow
        self.role = opts.role  # its template shapes each question
        self.params = opts.params  # the template's {{name}} values: -p, or /role NAME name=value
        self.base_overrides = opts.overrides  # the flags, under which a /role fills the gaps
        self.context = opts.context  # -f / /file sources waiting for the next question
        self.sources = ["the -f sources"] if opts.context else []  # what /file lists of them
        self.attachments = opts.attachments  # -a / /attach files waiting for the next question
        self.chosen: dict[str, str] = {}  # /set NAME VALUE, over the flags and the role
        self.set_base = self.session.overrides  # what /set values go over: the flags and the role
        self.reasoning: str | None = None  # /reasoning LEVEL, over --reasoning
        self.racing: tuple[str, ...] = ()  # /race A B… (or several -m): each question to every one of them
        self.race(opts.race)

    @property
    def model_name(self) -> str:
        return self.session.model_name

    @property
    def toolbox(self) -> Toolbox | None:
        """The session's tools as the terminal's Toolbox (the kind open_session builds): /tools, the toolbar."""
        return cast("Toolbox | None", self.session.toolbox)

    def take_pasted(self) -> bool:
        pasted, self.pasted = self.pasted, False
        return pasted

    def toolbar(self) -> str:
        conv = self.session.conversation
        pending = ""
        if self.context or self.attachments:
            pending = " · next: " + ", ".join(filter(None, ["sources" if self.context else "",
                                                            plural(len(self.attachments), "attachment")
                                                            if self.attachments else ""]))
        toolbox = self.toolbox
        if toolbox is not None and toolbox.active:
            pending += " · tools: " + toolbox.label()
        used, window = self.session.context_use() if self.session.target.ready else (0, None)
        context = f"{short(used)}/{short(window)}" if window else f"{conv.tokens} tokens"
        chosen = set_label(self.chosen, self.session.overrides.reasoning)
        model = f"race: {', '.join(self.racing)}" if self.racing else self.model_name
        return (f" {model} · {plural(conv.turn_count, 'turn')} · {context} · "
                f"{money(self.session.cost)}{pending}{sanitize(chosen)} · /help")

    def race(self, models: tuple[str, ...]) -> None:
        """Race `models` on each question from now on (none: one model again); their SDKs import
        in the background meanwhile. A name that does not resolve is refused now, not at the question."""
        if models:
            from streamchat.race import check_raceable
            from streamchat.service import preimport

            check_raceable(self.session, models)
            for model in models:
                self.settings.resolve(model)
            for model in models:
                preimport(self.settings, model)
        self.racing = models

    # -- turns ---------------------------------------------------------------------------
    def sink(self) -> Sink:
        o = self.opts
        return choose_sink(self.env, self.ui, json=o.json, markdown=o.markdown, sanitize=o.sanitize, stats=o.stats,
                           code_theme=o.code_theme)

    def ask(self, prompt: str | None = None, *, force: bool = False,
            again: Callable[[Sink], TurnResult | None] | None = None) -> None:
        """Ask `prompt`, or (None) ask the last question again (or run `again`: /continue)."""
        result: TurnResult | None
        try:
            if prompt is not None:
                if self.role is not None:  # first: a missing template value keeps the sources waiting
                    prompt = self.role.apply(prompt, self.params, self.fill_hint)
                context, attachments = self.context, self.attachments
                self.context, self.sources, self.attachments = "", [], ()
                question = with_context(prompt, context)
                if not force:
                    try:
                        self.session.check_context(question, repl=True)
                    except StreamchatError as err:
                        self.held = (question, attachments)
                        self.ui.notice(f"{err} — or /send to send it anyway")
                        return
                if self.racing:
                    with typeahead.held(self.env.stdin):
                        race_turn(self.session, self.racing, self.opts, self.env, self.ui, question, attachments, repl=True)
                    self.env.stdout.write("\n")  # air between the answers and the next prompt
                    self.env.stdout.flush()
                    return
                turn: Callable[[Sink], TurnResult | None] = partial(self.session.ask, question,
                                                                    attachments=attachments)
            else:
                turn = again or self.session.retry
            with typeahead.held(self.env.stdin):  # keys typed meanwhile wait for the next prompt, unechoed
                result = self._turn(turn)
        except KeyboardInterrupt:  # a Ctrl-C outside the stream loop: nothing was shown
            self.ui.notice("[interrupted]")
            return
        if result is None:
            self.ui.notice("nothing to retry")
            return
        if result.text:
            self.env.stdout.write("\n")  # air between the answer and the next prompt
            self.env.stdout.flush()
            last = self.session.last  # a continued answer: its blocks are numbered from its start
            blocks = code_blocks(last.result.text if last is not None else result.text)
            if blocks:
                listed = " · ".join(f"{i} {sanitize(b.language) or 'text'} ({plural(b.lines, 'line')}"
                                    f"{'' if b.closed else ', unfinished'})" for i, b in enumerate(blocks, 1))
                self.ui.notice(f"code blocks: {listed} — /copy N, /save-code N FILE")
        report_end(result, self.ui, self.opts.debug, more="/continue", repl=True)

    def _turn(self, turn: Callable[[Sink], TurnResult | None]) -> TurnResult | None:
        """Run `turn` on the screen; with a schema (/schema, the role's, --schema) as a data turn:
        checked, repaired once, the validated JSON shown (structured.py)."""
        if self.session.overrides.schema is None:
            return turn(self.sink())
        from streamchat.structured import ask_data, data_output, report_data

        o = self.opts
        out = data_output(self.env, self.ui, json_events=o.json, sanitize=o.sanitize, markdown=o.markdown,
                          code_theme=o.code_theme)
        answer = ask_data(self.session, out, turn)
        if answer is not None and answer.result.ok:  # a failed turn is reported as any other
            report_data(answer, out, self.ui, stats=o.stats)
        return None if answer is None else answer.result

    def handle(self, line: str, *, pasted: bool = False) -> None:
        """Run a command or ask a question. Pasted text is always a question; typed text
        starting with `//` is a question that starts with `/`."""
        text = line.strip()
        if not text:
            return
        if not pasted and text in ("exit", "quit"):
            self.running = False
            return
        if not pasted and text.startswith("//"):
            self.ask(line.lstrip()[1:])
            return
        if not pasted and text.startswith("/"):
            name, _, arg = text.partition(" ")
            command = lookup(name)
            if command is None:
                self.ui.notice(f"unknown command {name} — /help lists the commands; "
                               "start with // to send a message that begins with /")
                return
            command.run(self, "!" + arg.strip() if name in ("/save!", "/save-code!") else arg.strip())
            return
        self.ask(line)

    def fill_hint(self, names: list[str]) -> str:
        """How the REPL fills a template's placeholders: `/role review focus=…`."""
        return f"/role {self.role.name if self.role else 'NAME'} " + " ".join(f"{name}=…" for name in names)

    def completions(self) -> Iterable[str]:
        yield from self.settings.routes
        yield from self.settings.aliases
        for name, prov in self.settings.providers.items():
            if prov.default_model:
                yield f"{name}:{prov.default_model}"
            yield from (f"{name}:{m}" for m in prov.models)


def _make_session(repl: Repl) -> Any:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.application import get_app
    from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
    from prompt_toolkit.document import Document
    from prompt_toolkit.filters import Condition
    from prompt_toolkit.history import FileHistory, History, InMemoryHistory
    from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
    from prompt_toolkit.keys import Keys

    from streamchat.private_files import ensure_private_file

    paths = PathCompleter(expanduser=True)

    class SlashCompleter(Completer):
        def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
            text = document.text_before_cursor
            if not text.startswith("/"):
                return
            if " " not in text:
                for name, command in COMMANDS.items():
                    if name.startswith(text):
                        yield Completion(name, start_position=-len(text), display_meta=command.text)
            elif text.startswith(("/file ", "/attach ")) and not text.startswith("/file !"):
                raw, word = last_word(text)
                for found in paths.get_completions(Document(word, len(word)), complete_event):
                    path = word[: len(word) + found.start_position] + found.text
                    yield Completion(shell_word(path), start_position=-len(raw), display=found.display)
            elif text.startswith(("/set ", "/reasoning ")) and text.count(" ") == 1:
                verb, word = text.split(" ")
                for name, meta in set_names(repl) if verb == "/set" else [(level, "") for level in REASONING]:
                    if name.startswith(word):
                        yield Completion(name, start_position=-len(word), display_meta=meta)
            elif text.startswith("/model "):
                word = text[len("/model ") :]
                for name in sorted(set(repl.completions())):
                    if name.startswith(word):
                        yield Completion(name, start_position=-len(word))

    bindings = KeyBindings()

    @bindings.add(Keys.BracketedPaste)
    def _paste(event: KeyPressEvent) -> None:
        repl.pasted = True  # pasted text is a message, never a command or a block
        event.current_buffer.insert_text(event.data.replace("\r\n", "\n").replace("\r", "\n"))

    @bindings.add("escape", "enter")
    @bindings.add("enter", filter=Condition(lambda: not repl.pasted and block_open(get_app().current_buffer.text)))
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    history: History
    try:
        history = FileHistory(str(ensure_private_file(data_dir() / "repl_history")))
    except OSError:
        history = InMemoryHistory()

    session: PromptSession[str] = PromptSession(
        history=history, completer=SlashCompleter(), key_bindings=bindings, bottom_toolbar=repl.toolbar,
        vi_mode=repl.settings.vi_mode, enable_history_search=False, complete_while_typing=True,
        prompt_continuation=CONTINUATION,
        enable_open_in_editor=True)  # Ctrl-X Ctrl-E (Emacs keys) / v (vi) edit the line in $EDITOR
    renderer = session.app.renderer
    renderer.cpr_not_supported_callback = None  # no "WARNING: … (CPR)" line drawn into the conversation
    renderer.CPR_TIMEOUT = CPR_TIMEOUT
    return session


def _settle_cpr(app: Any) -> None:
    """After a prompt: the cursor-position request (CPR) it made and got no reply to means a terminal
    that does not answer them (a serial console, some multiplexers, `script`, pexpect). prompt-toolkit
    decides so only when one prompt stays up CPR_TIMEOUT, so a quick typist's every Enter waited a
    second for the reply: from now on none is asked (keys that came during the wait are prompt-toolkit's
    typeahead, the next prompt's). A late reply turns CPR back on (prompt-toolkit's own handling)."""
    from prompt_toolkit.renderer import CPR_Support

    if app.renderer.cpr_support is CPR_Support.UNKNOWN:  # the first prompt always asks
        app.renderer.cpr_support = CPR_Support.NOT_SUPPORTED


def last_word(text: str) -> tuple[str, str]:
    """The last shell word of `text` as typed, and its value as shlex reads it (an open quote allowed)."""
    start, quote, escaped = 0, "", False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch.isspace():
            start = i + 1
    raw = text[start:]
    try:
        words = shlex.split((raw[:-1] if escaped else raw) + quote)
    except ValueError:
        words = []
    return raw, words[0] if words else ""


def shell_word(path: str) -> str:
    """`path` as one shlex word: quoted only when it must be (a space, a quote), so `~/` still expands."""
    return path if path and not re.search(r"[\s'\"\\]", path) else shlex.quote(path)


def _after_first_paint(start: Callable[[], None]) -> None:
    """Run `start` once the prompt is on screen, so the warm-up does not delay the first paint."""
    from prompt_toolkit.application import get_app

    app = get_app()

    def once(_app: Any) -> None:
        app.after_render -= once
        start()

    app.after_render += once


def block_open(text: str) -> bool:
    """`text` starts with a line of `\"\"\"` alone that no later line (ending in `\"\"\"`) has closed:
    Enter adds a line rather than sending."""
    first, *rest = text.split("\n")
    return first.strip() == FENCE and not any(line.rstrip().endswith(FENCE) for line in rest)


def unfence(text: str) -> str | None:
    """The message inside a closed `\"\"\"` block, or None when `text` is not one."""
    first, *rest = text.split("\n")
    if first.strip() != FENCE or not rest or not rest[-1].rstrip().endswith(FENCE):
        return None
    return "\n".join([*rest[:-1], rest[-1].rstrip()[: -len(FENCE)]]).strip("\n")


def run_repl(settings: Settings, opts: ChatOptions, env: Environment, ui: UI) -> int:
    """The loop; SIGTERM/SIGHUP end it after the turn is saved (exit 143/129), Ctrl-D with 0."""
    repl = Repl(settings, opts, env, ui)
    try:
        return _loop(repl)
    finally:
        if repl.session.toolbox is not None:
            repl.session.toolbox.close()


def _loop(repl: Repl) -> int:
    session = _make_session(repl)
    conv = repl.session.conversation
    if conv.id is not None:
        named = f"{conv.name}, " if conv.name else ""
        repl.ui.notice(f"resumed conversation {conv.id} ({named}{plural(conv.turn_count, 'turn')})")
    elif conv.name:
        repl.ui.notice(f"new conversation {conv.name}")
    repl.ui.notice(f"streamchat · {repl.model_name} · /help for commands · Ctrl-D to quit")
    warm_up: Callable[[], None] | None = partial(_after_first_paint, repl.session.start_warm_up)
    while repl.running and signals.received() is None:
        try:
            try:
                line = session.prompt(PROMPT, pre_run=warm_up)
            finally:
                _settle_cpr(session.app)
            signals.after_prompt()
            warm_up = None
            pasted = repl.take_pasted()
            block = None if pasted else unfence(line)
            if block is not None:  # the whole block is one buffer, so one history entry
                line, pasted = block, True  # and always a message, as pasted text is
        except signals.Terminated:
            break
        except KeyboardInterrupt:
            continue  # Ctrl-C at the prompt clears the line
        except EOFError:
            break
        try:
            repl.handle(line, pasted=pasted)
        except StreamchatError as err:
            repl.ui.error(err.said(repl=True))
        except KeyboardInterrupt:
            repl.ui.notice("[interrupted]")
        except (OutputClosed, SystemExit):
            raise
        except Exception as exc:  # a bug in one command must not end the session and its screen
            if repl.opts.debug:
                repl.ui.traceback(exc)
            repl.ui.error(f"internal error: {type(exc).__name__}: {exc} — run with --debug and report it;"
                          " the conversation goes on")
    return signals.exit_code(ExitStatus.OK)
