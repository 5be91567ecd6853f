"""The interactive REPL: prompt-toolkit input, answers rendered to the real terminal between prompts.

Ctrl-C while an answer streams stops that answer only (the HTTP stream is closed, the
partial text stays on screen and in the conversation); Ctrl-C at the prompt clears the
line; Ctrl-D or /exit quits with 0.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from streamchat.chat import ChatOptions, Target, build_request, report_failure, resolve_target, stream_answer
from streamchat.config import Settings, data_dir
from streamchat.conversation import ChatState
from streamchat.environment import Environment
from streamchat.errors import StreamchatError
from streamchat.store import Conversation, open_log
from streamchat.ui import UI

PROMPT = "› "
CONTINUATION = "… "
FENCE = '"""'
CLIPBOARD_TOOLS = (["wl-copy"], ["xclip", "-selection", "clipboard"], ["xsel", "--clipboard", "--input"], ["pbcopy"])


class Repl:
    def __init__(self, settings: Settings, opts: ChatOptions, env: Environment) -> None:
        self.settings = settings
        self.env = env
        self.ui = UI(env)
        self.log = open_log(settings, enabled=opts.log, warn=self.ui.warn)
        self.conversation = self.log.pick(continue_last=opts.continue_last, cid=opts.cid)
        self.state = ChatState(list(self.conversation.messages),
                               opts.system or self.conversation.system or settings.system)
        self.opts = replace(opts, system=None)  # the REPL's system prompt lives in self.state
        self.model_spec = opts.model or self.conversation.model
        self.target: Target = resolve_target(settings, self.model_spec, opts.timeout, self.ui)
        self.running = True
        self.commands: dict[str, tuple[Callable[[str], None], str]] = {
            "/help": (self.cmd_help, "list commands"),
            "/model": (self.cmd_model, "[NAME] show or switch the model"),
            "/system": (self.cmd_system, "[TEXT] show or set the system prompt"),
            "/new": (self.cmd_new, "start a fresh conversation"),
            "/retry": (self.cmd_retry, "regenerate the last answer"),
            "/copy": (self.cmd_copy, "copy the last answer to the clipboard"),
            "/save": (self.cmd_save, "FILE save the conversation as Markdown"),
            "/stats": (self.cmd_stats, "timing of the last answer"),
            "/history": (self.cmd_history, "list recent conversations"),
            "/load": (self.cmd_load, "ID resume a saved conversation"),
            "/exit": (self.cmd_exit, "quit (or Ctrl-D)"),
        }

    @property
    def model_name(self) -> str:
        return f"{self.target.provider_name}:{self.target.model}"

    # -- turns ---------------------------------------------------------------------------
    def ask(self, prompt: str) -> None:
        request = build_request(self.target, self.settings, self.opts, self.state.messages, prompt, self.state.system)
        try:
            result = stream_answer(self.target, request, self.settings, self.opts, self.env, self.ui)
        except KeyboardInterrupt:  # a Ctrl-C outside the stream loop: nothing was shown
            self.ui.notice("[interrupted]")
            return
        if result.text:
            self.env.stdout.write("\n")  # air between the answer and the next prompt
            self.env.stdout.flush()
        self.state.add_turn(prompt, result)
        self.log.record(self.conversation, self.target.provider_name, self.target.model, self.state.system,
                        prompt, result)
        report_failure(result, self.ui, self.opts.debug)

    def handle(self, line: str) -> None:
        text = line.strip()
        if not text:
            return
        if text.startswith("/"):
            name, _, arg = text.partition(" ")
            command = self.commands.get(name) or (self.commands["/exit"] if name == "/quit" else None)
            if command is None:
                self.ui.notice(f"unknown command {name} — /help lists the commands")
                return
            command[0](arg.strip())
            return
        self.ask(line)

    # -- commands ------------------------------------------------------------------------
    def cmd_help(self, _arg: str) -> None:
        for name, (_fn, text) in self.commands.items():
            self.ui.notice(f"  {name:<9} {text}")
        self.ui.notice('  Alt+Enter (or Esc Enter) adds a line; """ opens and closes a multi-line block.')

    def cmd_model(self, arg: str) -> None:
        if not arg:
            self.ui.notice(f"model: {self.model_name}")
            return
        self.target = resolve_target(self.settings, arg, self.opts.timeout, self.ui)
        self.ui.notice(f"model: {self.model_name}")

    def cmd_system(self, arg: str) -> None:
        if arg:
            self.state.system = arg
        self.ui.notice(f"system: {self.state.system or '(none)'}")

    def cmd_new(self, _arg: str) -> None:
        self.conversation = Conversation()
        self.state = ChatState(system=self.state.system)
        self.ui.notice("new conversation")

    def cmd_retry(self, _arg: str) -> None:
        prompt = self.state.drop_last_turn()
        if prompt is None:
            self.ui.notice("nothing to retry")
            return
        self.ask(prompt)

    def cmd_copy(self, _arg: str) -> None:
        if self.state.last is None or not self.state.last.result.text:
            self.ui.notice("no answer to copy")
            return
        for tool in CLIPBOARD_TOOLS:
            if shutil.which(tool[0]):
                subprocess.run(tool, input=self.state.last.result.text.encode(), check=False)
                self.ui.notice(f"copied with {tool[0]}")
                return
        self.ui.notice("no clipboard tool found — install wl-clipboard, xclip or xsel")

    def cmd_save(self, arg: str) -> None:
        if not arg:
            self.ui.notice("usage: /save FILE")
            return
        path = Path(arg).expanduser()
        try:
            path.write_text(self.state.transcript(self.model_name), encoding="utf-8")
        except OSError as exc:
            self.ui.error(f"cannot write {path}: {exc.strerror}")
            return
        self.ui.notice(f"saved {path}")

    def cmd_stats(self, _arg: str) -> None:
        if self.state.last is None:
            self.ui.notice(f"{self.state.turns} turns, {self.state.tokens} tokens")
            return
        self.ui.notice(f"last answer: {self.state.last.result.stats.summary()}")
        self.ui.notice(f"conversation: {self.state.turns} turns, {self.state.tokens} tokens")

    def cmd_history(self, _arg: str) -> None:
        if self.log.db is None:
            self.ui.notice("the conversation log is off")
            return
        for row in self.log.recent(10):
            self.ui.notice(f"  {row['id']:>4}  {row['provider']}:{row['model']}  {row['turns']} turns  {row['title']}")

    def cmd_load(self, arg: str) -> None:
        if self.log.db is None or not arg:
            self.ui.notice("usage: /load ID (see /history)")
            return
        self.conversation = self.log.load(arg)
        self.state = ChatState(list(self.conversation.messages), self.conversation.system or self.state.system)
        self.ui.notice(f"loaded conversation {arg} ({len(self.state.messages) // 2} turns)")

    def cmd_exit(self, _arg: str) -> None:
        self.running = False

    def completions(self) -> Iterable[str]:
        yield from self.settings.aliases
        for name, prov in self.settings.providers.items():
            if prov.default_model:
                yield f"{name}:{prov.default_model}"
            yield from (f"{name}:{m}" for m in prov.models)


def _make_session(repl: Repl):
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import Completer, Completion
    from prompt_toolkit.history import FileHistory, InMemoryHistory
    from prompt_toolkit.key_binding import KeyBindings

    class SlashCompleter(Completer):
        def get_completions(self, document, complete_event):
            text = document.text_before_cursor
            if not text.startswith("/"):
                return
            if " " not in text:
                for name in repl.commands:
                    if name.startswith(text):
                        yield Completion(name, start_position=-len(text))
            elif text.startswith("/model "):
                word = text[len("/model ") :]
                for name in sorted(set(repl.completions())):
                    if name.startswith(word):
                        yield Completion(name, start_position=-len(word))

    bindings = KeyBindings()

    @bindings.add("escape", "enter")
    def _newline(event) -> None:
        event.current_buffer.insert_text("\n")

    try:
        path = data_dir() / "repl_history"
        path.parent.mkdir(parents=True, exist_ok=True)
        history = FileHistory(str(path))
    except OSError:
        history = InMemoryHistory()

    def toolbar() -> str:
        return f" {repl.model_name} · {repl.state.turns} turns · {repl.state.tokens} tokens · /help"

    return PromptSession(history=history, completer=SlashCompleter(), key_bindings=bindings,
                         bottom_toolbar=toolbar, vi_mode=repl.settings.vi_mode, enable_history_search=False,
                         complete_while_typing=True, prompt_continuation=CONTINUATION)


def read_block(session, first: str) -> str:
    """`\"\"\"` opens a block that the next line ending in `\"\"\"` closes."""
    lines = [first[len(FENCE) :]] if first.strip() != FENCE else []
    while True:
        line = session.prompt(CONTINUATION)
        if line.rstrip().endswith(FENCE):
            lines.append(line.rstrip()[: -len(FENCE)])
            return "\n".join(lines).strip("\n")
        lines.append(line)


def run_repl(settings: Settings, opts: ChatOptions, env: Environment) -> int:
    repl = Repl(settings, opts, env)
    session = _make_session(repl)
    repl.ui.notice(f"streamchat · {repl.model_name} · /help for commands · Ctrl-D to quit")
    while repl.running:
        try:
            line = session.prompt(PROMPT)
            if line.lstrip().startswith(FENCE):
                line = read_block(session, line.lstrip())
        except KeyboardInterrupt:
            continue  # Ctrl-C at the prompt clears the line
        except EOFError:
            break
        try:
            repl.handle(line)
        except StreamchatError as err:
            repl.ui.error(str(err))
        except KeyboardInterrupt:
            repl.ui.notice("[interrupted]")
    return 0
