"""The interactive REPL: prompt-toolkit input, answers rendered to the real terminal between prompts.

Ctrl-C while an answer streams stops that answer only (the HTTP stream is closed, the
partial text stays on screen and in the conversation); Ctrl-C at the prompt clears the
line; Ctrl-D or /exit quits with 0.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from streamchat import clipboard, signals, typeahead
from streamchat.chat import ChatOptions, gather_inputs, open_session, report_end, with_context
from streamchat.config import Settings, data_dir
from streamchat.cost import money, short
from streamchat.environment import Environment
from streamchat.errors import StreamchatError, UsageError
from streamchat.events import Attachment, Sink, TextDelta, TurnResult
from streamchat.exit_status import ExitStatus
from streamchat.providers.options import REASONING
from streamchat.render.code_blocks import CodeBlock, code_blocks
from streamchat.render.sanitize import sanitize
from streamchat.service import ChatSession, Overrides
from streamchat.sinks import choose_sink
from streamchat.ui import UI, byte_size

if TYPE_CHECKING:
    from streamchat.tools import Toolbox

PROMPT = "› "
CONTINUATION = "… "
FENCE = '"""'
ALIASES = {"/quit": "/exit", "/save!": "/save"}


def _clip(text: str, width: int = 40) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class Command(NamedTuple):
    run: Callable[[str], None]
    args: str  # its usage after the name, e.g. "N FILE"
    text: str  # what it does (/help, and beside the name when Tab completes it)


class Repl:
    """REPL commands on top of one ChatSession; only input and display live here."""

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
        self.commands: dict[str, Command] = {
            "/help": Command(self.cmd_help, "", "list commands"),
            "/model": Command(self.cmd_model, "[NAME]", "show or switch the model"),
            "/system": Command(self.cmd_system, "[TEXT]", "show or set the system prompt"),
            "/new": Command(self.cmd_new, "", "start a fresh conversation"),
            "/retry": Command(self.cmd_retry, "", "answer again; the last answer stays as an alternative"),
            "/alt": Command(self.cmd_alt, "", "switch the last answer to its next alternative"),
            "/continue": Command(self.cmd_continue, "", "continue the last answer, cut off at the token limit"),
            "/send": Command(self.cmd_send, "", "send the question held back for overflowing the context"),
            "/undo": Command(self.cmd_undo, "", "take the last exchange out of the conversation"),
            "/fork": Command(self.cmd_fork, "", "continue in a new conversation from here (this one is kept)"),
            "/compact": Command(self.cmd_compact, "", "send the turns so far as the model's summary of them"),
            "/uncompact": Command(self.cmd_uncompact, "", "send every turn again, not the summary"),
            "/copy": Command(self.cmd_copy, "[N]", "copy the last answer (or its code block N) to the clipboard"),
            "/save-code": Command(self.cmd_save_code, "N FILE", "save code block N of the last answer"),
            "/save": Command(self.cmd_save, "FILE", "save the conversation as Markdown"),
            "/stats": Command(self.cmd_stats, "", "timing of the last answer"),
            "/history": Command(self.cmd_history, "", "list recent conversations"),
            "/load": Command(self.cmd_load, "ID|NAME", "resume a saved conversation"),
            "/name": Command(self.cmd_name, "[NAME]", "show or set this conversation's name (-S NAME resumes it)"),
            "/role": Command(self.cmd_role, "[NAME [k=v…]]", "show or switch the role; k=v fills its template"),
            "/schema": Command(self.cmd_schema, "[SCHEMA|off]", "answer as JSON matching SCHEMA ('city, pop int')"),
            "/set": Command(self.cmd_set, "[NAME [VALUE]]", "set temperature, max_tokens or -o NAME; no VALUE unsets"),
            "/reasoning": Command(self.cmd_reasoning, "[off|low|medium|high]", "show or set the reasoning effort"),
            "/edit": Command(self.cmd_edit, "[last]", "compose in $EDITOR; last: edit and resend the last question"),
            "/shell": Command(self.cmd_shell, "TEXT", "turn a request into a shell command, run only if you choose"),
            "/tools": Command(self.cmd_tools, "[on|off NAME[:TOOL]]", "list MCP servers and tools, or turn them on/off"),
            "/file": Command(self.cmd_file, "[SOURCE...|clear]", "context: files, folders, URLs, !commands; alone: list"),
            "/attach": Command(self.cmd_attach, "[FILE...|clear]", "attach images or PDFs to the next question"),
            "/exit": Command(self.cmd_exit, "", "quit (or Ctrl-D)"),
        }

    @property
    def model_name(self) -> str:
        return self.session.model_name

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
        toolbox = self.session.toolbox
        if toolbox is not None and toolbox.active:
            pending += " · tools: " + toolbox.label()
        used, window = self.session.context_use() if self.session.target.ready else (0, None)
        context = f"{short(used)}/{short(window)}" if window else f"{conv.tokens} tokens"
        chosen = set_label(self.chosen, self.session.overrides.reasoning)
        return (f" {self.model_name} · {plural(conv.turn_count, 'turn')} · {context} · "
                f"{money(self.session.cost)}{pending}{sanitize(chosen)} · /help")

    # -- turns ---------------------------------------------------------------------------
    def _sink(self) -> Sink:
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
                    prompt = self.role.apply(prompt, self.params, self._fill)
                context, attachments = self.context, self.attachments
                self.context, self.sources, self.attachments = "", [], ()
                question = with_context(prompt, context)
                if not force:
                    try:
                        self.session.check_context(question)
                    except StreamchatError as err:
                        self.held = (question, attachments)
                        self.ui.notice(f"{err} — or /send to send it anyway")
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
                listed = " · ".join(f"{i} {sanitize(b.language) or 'text'} ({plural(b.lines, 'line')})"
                                    for i, b in enumerate(blocks, 1))
                self.ui.notice(f"code blocks: {listed} — /copy N, /save-code N FILE")
        report_end(result, self.ui, self.opts.debug, more="/continue")

    def _turn(self, turn: Callable[[Sink], TurnResult | None]) -> TurnResult | None:
        """Run `turn` on the screen; with a schema (/schema, the role's, --schema) as a data turn:
        checked, repaired once, the validated JSON shown (structured.py)."""
        if self.session.overrides.schema is None:
            return turn(self._sink())
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
            self.cmd_exit("")
            return
        if not pasted and text.startswith("//"):
            self.ask(line.lstrip()[1:])
            return
        if not pasted and text.startswith("/"):
            name, _, arg = text.partition(" ")
            command = self.commands.get(ALIASES.get(name, name))
            if command is None:
                self.ui.notice(f"unknown command {name} — /help lists the commands; "
                               "start with // to send a message that begins with /")
                return
            command.run(arg.strip() if name != "/save!" else "!" + arg.strip())
            return
        self.ask(line)

    # -- commands ------------------------------------------------------------------------
    def cmd_help(self, _arg: str) -> None:
        for name, command in self.commands.items():  # a longer usage pushes its text on, within 80 columns
            self.ui.notice(f"  {f'{name} {command.args}'.rstrip():<17}  {command.text}")
        self.ui.notice("  Alt+Enter or Esc Enter adds a line.")
        self.ui.notice('  A line of """ alone opens a block; a line ending in """ closes it.')
        self.ui.notice("  Pasted text is always sent as a message; // sends one that starts with /.")

    def cmd_model(self, arg: str) -> None:
        if arg:
            self.session.set_model(arg)
        self.ui.notice(f"model: {self.model_name}")

    def cmd_system(self, arg: str) -> None:
        if arg in ('""', "''", "-"):
            self.session.set_system(None)
        elif arg:
            self.session.set_system(arg)
        self.ui.notice(f"system: {self.session.conversation.system or '(none)'}")

    def cmd_new(self, _arg: str) -> None:
        self.session.new()
        system = self.session.conversation.system
        self.ui.notice("new conversation" + (f" (system prompt kept: {_clip(system)}; /system \"\" clears it)"
                                             if system else ""))

    def cmd_retry(self, _arg: str) -> None:
        self.ask(None)

    def cmd_continue(self, _arg: str) -> None:
        self.ask(None, again=self.session.continue_answer)

    def _block(self, number: str) -> CodeBlock | None:
        """Code block N (1-based) of the last answer, or None after saying why."""
        last = self.session.last
        blocks = code_blocks(last.result.text) if last is not None else []
        if not number.isdigit() or not 1 <= int(number) <= len(blocks):
            self.ui.notice(f"no code block {number} in the last answer" + (f" (it has {len(blocks)})" if blocks else ""))
            return None
        return blocks[int(number) - 1]

    def cmd_copy(self, arg: str) -> None:
        last = self.session.last
        if last is None or not last.result.text:
            self.ui.notice("no answer to copy")
            return
        text = last.result.text
        if arg:
            block = self._block(arg)
            if block is None:
                return
            text = block.code
        how = clipboard.copy(text, self.env.stdout)
        self.ui.notice(f"copied {'code block ' + arg if arg else 'the answer'} {how}" if how else clipboard.MISSING)

    def cmd_save_code(self, arg: str) -> None:
        number, _, name = arg.partition(" ")
        if not name.strip():
            self.ui.notice("usage: /save-code N FILE")
            return
        block = self._block(number)
        if block is None:
            return
        path = Path(name.strip()).expanduser()
        if path.exists():
            self.ui.notice(f"{path} exists — remove it first, or pick another name")
            return
        try:
            path.write_text(block.code, encoding="utf-8")
        except OSError as exc:
            self.ui.error(f"cannot write {path}: {exc.strerror}")
            return
        self.ui.notice(f"saved code block {number} to {path}")

    def cmd_save(self, arg: str) -> None:
        force = arg.startswith("!")
        arg = arg.lstrip("!").strip()
        if not arg:
            self.ui.notice("usage: /save FILE (/save! FILE overwrites)")
            return
        path = Path(arg).expanduser()
        if path.exists() and not force:
            self.ui.notice(f"{path} exists — /save! {arg} overwrites it")
            return
        try:
            path.write_text(self.session.conversation.transcript(f"streamchat conversation ({self.model_name})"),
                            encoding="utf-8")
        except OSError as exc:
            self.ui.error(f"cannot write {path}: {exc.strerror}")
            return
        self.ui.notice(f"saved {path}")

    def cmd_stats(self, _arg: str) -> None:
        conv = self.session.conversation
        if conv.last is not None:
            self.ui.notice(f"last answer: {conv.last.result.stats.summary()}")
        self.ui.notice(f"conversation: {plural(conv.turn_count, 'turn')}, {conv.tokens} tokens, "
                       f"cost {money(self.session.cost)}")

    def cmd_history(self, _arg: str) -> None:
        log = self.session.log
        if log is None or log.db is None:
            self.ui.notice("the conversation log is off")
            return
        for row in log.recent(10):
            name = f"  [{row['name']}]" if row["name"] else ""
            self.ui.notice(f"  {row['id']:>4}{name}  {row['provider']}:{row['model']}  {plural(row['turns'], 'turn')}"
                           f"  {row['title']}")

    def cmd_load(self, arg: str) -> None:
        if not arg:
            self.ui.notice("usage: /load ID|NAME (see /history)")
            return
        conv = self.session.load(arg)
        self.ui.notice(f"loaded conversation {sanitize(arg)} ({plural(conv.turn_count, 'turn')})")

    def cmd_name(self, arg: str) -> None:
        if arg:
            self.session.rename(arg)
        name = self.session.conversation.name
        self.ui.notice(f"name: {name}" if name else "this conversation has no name — /name NAME gives it one")

    def cmd_send(self, _arg: str) -> None:
        if self.held is None:
            self.ui.notice("no question is held back")
            return
        (question, attachments), self.held = self.held, None
        self.context, self.sources, self.attachments, role, self.role = "", [], attachments, self.role, None
        try:
            self.ask(question, force=True)
        finally:
            self.role = role

    def cmd_undo(self, _arg: str) -> None:
        turn = self.session.undo()
        self.ui.notice("nothing to undo" if turn is None else f"undone: {_clip(turn.prompt)}")

    def cmd_compact(self, _arg: str) -> None:
        conv = self.session.conversation
        current = conv.current_summary
        if any(t.counts for t in conv.turns[current.turns if current is not None else 0:]):
            self.session.compact(everything=True)
            return
        self.session.compacting = True
        self.ui.notice("nothing to compact yet — ask something first" if current is None
                       else "compaction on: the summary covers every turn so far")

    def cmd_uncompact(self, _arg: str) -> None:
        self.session.compacting = False
        self.ui.notice("compaction off: every turn is sent whole — /compact turns it on again")

    def cmd_fork(self, _arg: str) -> None:
        if not self.session.conversation.turn_count:  # "forked with 0 turns": the same as starting afresh
            self.ui.notice("nothing to fork yet — ask something first")
            return
        origin = self.session.conversation.id
        conv = self.session.fork()
        self.ui.notice(f"forked{f' from conversation {origin}' if origin else ''} with "
                       f"{plural(conv.turn_count, 'turn')}; the next answer starts the new conversation")

    def cmd_alt(self, _arg: str) -> None:
        switched = self.session.alternative()
        if switched is None:
            self.ui.notice("no other answer to this question — /retry makes one")
            return
        last = self.session.last
        self.ui.notice(f"answer {switched[0]} of {switched[1]}:")
        if last is not None:  # drawn as it was when it streamed: through the sink (which also sanitizes)
            sink = self._sink()
            sink.feed(TextDelta(last.result.text))
            sink.end(last.result)
            self.env.stdout.write("\n")
            self.env.stdout.flush()

    def _fill(self, names: list[str]) -> str:
        """How the REPL fills a template's placeholders: `/role review focus=…`."""
        return f"/role {self.role.name if self.role else 'NAME'} " + " ".join(f"{name}=…" for name in names)

    def cmd_role(self, arg: str) -> None:
        from streamchat.roles import get_role, parse_params, under_flags

        if arg:
            try:
                name, *items = shlex.split(arg)
            except ValueError as exc:
                raise UsageError(f"/role {arg}: {exc}", hint="/role NAME name=value …") from None
            role = get_role(self.settings, name)
            params = {**self.opts.params, **parse_params(items, f"/role {name} focus=security")}
            self.role, self.params = role, params
            self.set_base = under_flags(role, self.base_overrides)
            self.session.set_overrides(with_set(self.set_base, self.chosen, self.reasoning))
        name = self.role.name if self.role else "(none)"
        filled = " ".join(f"{k}={v}" for k, v in self.params.items())
        self.ui.notice(sanitize(f"role: {name}{f' ({filled})' if filled and self.role else ''} · model: "
                                f"{self.model_name} · system: {_clip(self.session.conversation.system or '(none)')}"))
        missing = self.role.missing(self.params) if self.role else []
        if missing:
            self.ui.notice(f"its template needs {', '.join(f'{{{{{m}}}}}' for m in missing)} — {self._fill(missing)}")

    def cmd_schema(self, arg: str) -> None:
        """`/schema SCHEMA` (as --schema takes it), `/schema off`, or alone: the schema in use."""
        if arg:
            from streamchat.schema import load_schema

            schema = None if arg == "off" else load_schema(arg, option="/schema").request
            self.session.set_schema(schema)
            self.base_overrides = replace(self.base_overrides, schema=schema)  # it wins over a later /role's
        current = self.session.overrides.schema
        self.ui.notice(sanitize(f"schema: {_clip(json.dumps(current.schema), 70)}") if current is not None
                       else "schema: off — answers are prose (/schema 'city, pop int' asks for JSON)")

    def cmd_set(self, arg: str) -> None:
        name, _, value = arg.strip().partition(" ")
        if name:
            chosen = dict(self.chosen)
            if value.strip():
                chosen[name] = value.strip()
            else:
                chosen.pop(name, None)
            self._set(chosen, self.reasoning)
            self.chosen = chosen
        shown = " ".join(f"{k}={v}" for k, v in self.chosen.items()) or "(nothing set)"
        self.ui.notice(sanitize(f"set: {shown} — /set NAME VALUE sets, /set NAME unsets"))

    def set_names(self) -> list[tuple[str, str]]:
        """What /set takes for this model (Tab completes it): temperature, max_tokens and its provider's options."""
        from streamchat.providers.options import SAMPLING, options_for

        ptype = self.session.target.config.type
        return [(o.name, o.expected()) for o in (*SAMPLING.values(), *options_for(ptype).values())]

    def _set(self, chosen: dict[str, str], reasoning: str | None) -> None:
        """New sampling for the next questions; the system prompt (/system) stays as it is."""
        system, now, base = self.session.conversation.system, self.session.overrides, self.set_base
        base = replace(now, temperature=base.temperature, max_tokens=base.max_tokens, params=base.params,
                       reasoning=base.reasoning)  # what other commands set (/schema) stays
        self.session.set_overrides(with_set(base, chosen, reasoning))
        self.session.set_system(system)

    def cmd_reasoning(self, arg: str) -> None:
        if arg:
            if arg not in REASONING:
                raise UsageError(f"/reasoning {arg}: not a level", hint="/reasoning off|low|medium|high")
            self._set(self.chosen, arg)
            self.reasoning = arg
        self.ui.notice(f"reasoning: {self.session.overrides.reasoning or 'the model default'}")

    def cmd_edit(self, arg: str) -> None:
        from streamchat.editor import edit_text

        last = self.session.last
        if arg == "last":
            if last is None:
                self.ui.notice("no question to edit")
                return
            text = edit_text(last.prompt).strip()
            if not text or text == last.prompt.strip():  # quit without saving (:q!) is not a request to resend
                self.ui.notice("unchanged — nothing sent (/retry asks it again)" if text else "empty — nothing sent")
                return
            self.session.conversation.drop_last()  # the old exchange stays in the log, as an alternative
            self.ask(text)
            return
        text = edit_text("").strip()
        if text:
            self.ask(text)
        else:
            self.ui.notice("empty — nothing sent")

    def cmd_shell(self, arg: str) -> None:
        from dataclasses import replace

        from streamchat.service import ChatSession
        from streamchat.shell_mode import run_shell_mode, shell_system_prompt

        if not arg:
            self.ui.notice("usage: /shell TEXT")
            return
        overrides = replace(self.session.overrides, model=self.model_name, system=shell_system_prompt())
        helper = ChatSession(self.settings, overrides, log=self.session.log, ui=self.ui)
        status = run_shell_mode(helper, arg, self.env, self.ui)
        if status:
            self.ui.notice(f"exit status {status}")

    def _plugin_toolbox(self) -> Toolbox | None:
        """A toolbox made at the first /tools when only plugins offer tools (looking for them at
        start would cost every REPL an entry-point scan)."""
        from streamchat.plugins import names

        if not names("tools"):
            return None
        from streamchat.tools import build_toolbox

        self.session.toolbox = build_toolbox(self.settings, [], list(self.opts.approve), self.ui, interactive=True)
        return self.session.toolbox

    def cmd_tools(self, arg: str) -> None:
        toolbox = self.session.toolbox or self._plugin_toolbox()
        if toolbox is None:
            self.ui.notice("no tools: add [mcp.NAME] with command = … or url = … to the config, pass --functions FILE.py, "
                           "or install a plugin that offers tools")
            return
        action, _, item = arg.partition(" ")
        item = item.strip()
        if action == "on" and item:
            toolbox.enable(item)
            self.ui.notice(f"tools on: {toolbox.label()}")
        elif action == "off" and item:
            self.ui.notice(f"{item} off" if toolbox.disable(item) else f"{item} was not on")
        elif action:
            self.ui.notice("usage: /tools, /tools on NAME[:TOOL], /tools off NAME[:TOOL]")
            return
        for line in toolbox.describe():
            self.ui.notice(line)

    def pending(self) -> None:
        """`/file` or `/attach` alone: what waits for the next question, and how to drop it."""
        if self.sources:
            self.ui.notice(sanitize(f"sources for the next question: {', '.join(self.sources)} "
                                    f"({byte_size(len(self.context.encode()))} in all) — /file clear drops them"))
        if self.attachments:
            self.ui.notice(sanitize("attachments for the next question: "
                                    + ", ".join(f"{a.name} ({byte_size(len(a.data))})" for a in self.attachments)
                                    + " — /attach clear drops them"))
        if not self.sources and not self.attachments:
            self.ui.notice("nothing waits for the next question — /file SOURCE... (a file, directory, glob, URL "
                           "or !command) or /attach FILE... (images or PDFs) adds some")

    def cmd_file(self, arg: str) -> None:
        if not arg:
            self.pending()
        elif arg == "clear":  # a file named clear: /file ./clear
            self.context, self.sources = "", []
            self.ui.notice("sources cleared")
        else:
            sources = [arg] if arg.startswith("!") else shlex.split(arg)
            context, _ = gather_inputs(sources, [], stdin_text=None, timeout=self.session.options.timeout,
                                       ui=self.ui)
            self.context = f"{self.context}\n\n{context}" if self.context else context
            self.sources += sources

    def cmd_attach(self, arg: str) -> None:
        if not arg:
            self.pending()
        elif arg == "clear":
            self.attachments = ()
            self.ui.notice("attachments cleared")
        else:
            _, attachments = gather_inputs([], shlex.split(arg), stdin_text=None,
                                           timeout=self.session.options.timeout, ui=self.ui)
            self.attachments += attachments

    def cmd_exit(self, _arg: str) -> None:
        self.running = False

    def completions(self) -> Iterable[str]:
        yield from self.settings.routes
        yield from self.settings.aliases
        for name, prov in self.settings.providers.items():
            if prov.default_model:
                yield f"{name}:{prov.default_model}"
            yield from (f"{name}:{m}" for m in prov.models)


def set_label(chosen: dict[str, str], reasoning: str | None) -> str:
    """The toolbar's part for /set values and the reasoning level: ` · top_p=0.5 · reasoning high`."""
    label = "".join(f" · {name}={_clip(value, 20)}" for name, value in chosen.items())
    return label + (f" · reasoning {reasoning}" if reasoning else "")


def with_set(base: Overrides, chosen: dict[str, str], reasoning: str | None) -> Overrides:
    """The flags' and role's Overrides with the REPL's /set values and /reasoning over them.
    temperature and max_tokens are checked as the flags are; the rest are provider options (as -o),
    checked against the model's provider when the session takes them."""
    from streamchat.providers.options import SAMPLING, Text, check

    sampling = dict(check(SAMPLING, ((k, Text(v)) for k, v in chosen.items() if k in SAMPLING),
                          provider="/set", where="/set"))
    params = base.params + tuple((k, Text(v)) for k, v in chosen.items() if k not in SAMPLING)
    return replace(base, temperature=sampling.get("temperature", base.temperature), params=params,
                   max_tokens=sampling.get("max_tokens", base.max_tokens), reasoning=reasoning or base.reasoning)


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
                for name, command in repl.commands.items():
                    if name.startswith(text):
                        yield Completion(name, start_position=-len(text), display_meta=command.text)
            elif text.startswith(("/file ", "/attach ")) and not text.startswith("/file !"):
                raw, word = last_word(text)
                for found in paths.get_completions(Document(word, len(word)), complete_event):
                    path = word[: len(word) + found.start_position] + found.text
                    yield Completion(shell_word(path), start_position=-len(raw), display=found.display)
            elif text.startswith(("/set ", "/reasoning ")) and text.count(" ") == 1:
                verb, word = text.split(" ")
                for name, meta in repl.set_names() if verb == "/set" else [(level, "") for level in REASONING]:
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

    return PromptSession(history=history, completer=SlashCompleter(), key_bindings=bindings,
                         bottom_toolbar=repl.toolbar, vi_mode=repl.settings.vi_mode, enable_history_search=False,
                         complete_while_typing=True, prompt_continuation=CONTINUATION,
                         enable_open_in_editor=True)  # Ctrl-X Ctrl-E (Emacs keys) / v (vi) edit the line in $EDITOR


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
            line = session.prompt(PROMPT, pre_run=warm_up)
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
            repl.ui.error(str(err))
        except KeyboardInterrupt:
            repl.ui.notice("[interrupted]")
    return signals.exit_code(ExitStatus.OK)
