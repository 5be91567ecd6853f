"""`--shell TEXT` and `/shell TEXT`: a request becomes one shell command, run only on a keypress.

The model is told the OS, the user's shell and the working directory's name, and answers with one
command. On a terminal the command is shown and nothing runs until the user picks
`[e]xecute / [r]evise / [d]escribe / [c]opy / [a]bort` (the default is abort): one key or the whole
word, nothing else; any other reply asks again. The dialogue happens on the terminal even when
stderr is redirected (`/dev/tty`, as ssh asks for a password). In a pipe, or without a terminal, the
command is printed and never executed. Nothing of it is saved to the conversation log.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from streamchat import clipboard
from streamchat.environment import Environment
from streamchat.events import Sink
from streamchat.exit_status import ExitStatus
from streamchat.render.code_blocks import code_blocks
from streamchat.render.sanitize import sanitize_command
from streamchat.service import ChatSession
from streamchat.sinks import NullSink, progress_sink
from streamchat.ui import UI, exact_choice

CHOICES = {"e": "execute", "r": "revise", "d": "describe", "c": "copy", "a": "abort"}
MENU = "[e]xecute / [r]evise / [d]escribe / [c]opy / [a]bort (default a): "
AGAIN = "type e, r, d, c or a (or the whole word); Enter aborts"


def parse_choice(reply: str) -> str | None:
    """The menu choice a reply names: one key or the whole word (any case), Enter for abort; None for
    anything else. Only an exact answer acts: "explain it please" must not execute, nor "can you…" copy."""
    return exact_choice(reply, CHOICES, "abort")


def _choose(ui: UI) -> str:
    """Ask until the reply is a choice (keys typed before the menu showed do not count)."""
    while (choice := parse_choice(ui.ask(MENU))) is None:
        ui.notice(AGAIN)
    return choice


def user_shell() -> str:
    return os.environ.get("SHELL") or shutil.which("bash") or "/bin/sh"


def shell_system_prompt() -> str:
    return (f"You turn requests into shell commands for {Path(user_shell()).name} on {platform.system()} "
            f"(working directory: {Path.cwd().name or '/'}). Answer with exactly one command in a ```sh fenced "
            "block and nothing else. Prefer safe, non-destructive commands.")


def command_of(answer: str) -> str:
    """The command: the first code block's content, else the answer's text."""
    blocks = code_blocks(answer)
    return (blocks[0].code if blocks else answer).strip()


@contextlib.contextmanager
def _terminal(env: Environment, ui: UI) -> Iterator[tuple[Environment, UI] | None]:
    """Where the menu is shown and answered: stderr when it is the terminal, else the terminal itself
    (`/dev/tty`: with `2>/dev/null` the command and the menu were invisible, yet `e⏎` ran it); None
    when stdin or stdout is not a terminal, or there is no terminal to ask on."""
    if not (env.stdin_isatty and env.stdout_isatty):
        yield None
        return
    if env.stderr_isatty:
        yield env, ui
        return
    try:
        reader = open("/dev/tty", encoding="utf-8", errors="replace")  # noqa: SIM115 (closed below)
    except OSError:
        ui.notice("no terminal to ask on (/dev/tty): the command is printed, not run")
        yield None
        return
    with reader, open("/dev/tty", "w", encoding="utf-8") as writer:
        tty = replace(env, stdin=reader, stderr=writer)
        yield tty, UI(tty)


def run_shell_mode(session: ChatSession, request: str, env: Environment, ui: UI, *, stats: bool = False,
                   hold_keys: bool = False) -> int:
    """The whole dialogue; returns the exit code (the command's own status when it ran). With
    `stats`, each answer's --stats line goes to stderr, as a one-shot's does. With `hold_keys` (the
    REPL's /shell), keys typed while an answer streams are not echoed into it, as in a REPL turn;
    the menu's questions give echo back, and an executed command gets the terminal as it was.

    The exchange is throwaway and is not written to the log: saved, it became the most recent
    conversation, and `-c` then continued a shell prompt and its command instead of the chat."""
    session.log = None
    with _terminal(env, ui) as terminal:
        question = request
        while True:
            sink: Sink = progress_sink(*terminal) if terminal else NullSink()
            with _held(env, hold_keys):
                result = session.ask(question, sink)
            if stats:
                ui.notice(result.stats.summary())
            if not result.ok:
                return ExitStatus.REQUEST if result.error is None else result.error.exit_code
            command = command_of(result.text)
            if not command:
                ui.error("the model gave no command; nothing to run")
                return ExitStatus.REQUEST
            if terminal is None:
                # never executed without a person at a terminal; on one, shown as the menu shows it
                env.stdout.write((sanitize_command(command) if env.stdout_isatty else command) + "\n")
                env.stdout.flush()
                return ExitStatus.OK
            try:
                outcome = _menu(session, command, *terminal, hold_keys=hold_keys)
            except EOFError:  # Ctrl-D: no answer is no permission
                terminal[1].notice("aborted (end of input); nothing was run")
                return ExitStatus.INTERRUPTED
            if isinstance(outcome, int):
                return outcome
            question = outcome


def _held(env: Environment, hold_keys: bool) -> contextlib.AbstractContextManager[None]:
    from streamchat import typeahead

    return typeahead.held(env.stdin) if hold_keys else contextlib.nullcontext()


def _menu(session: ChatSession, command: str, env: Environment, ui: UI, *, hold_keys: bool = False) -> int | str:
    """Show the command and ask until it is run, copied or aborted (the exit code), or a revision is
    asked for (the next question)."""
    while True:
        # model text, and run as it is: CR and invisible characters are shown (␍, <U+200B>), not dropped,
        # so what runs is what was shown (a dropped CR made `safe \r# ; touch x` look like a comment)
        ui.notice_bold("command: ", sanitize_command(command))
        choice = _choose(ui)
        if choice == "execute":
            return subprocess.call([user_shell(), "-c", command])  # the terminal is the command's now
        if choice == "describe":
            with _held(env, hold_keys):
                session.ask(f"Describe briefly what this command does, without running it:\n\n{command}",
                            progress_sink(env, ui))
        elif choice == "copy":
            how = clipboard.copy(sanitize_command(command), env.stdout)  # what was shown, ␍ and all
            ui.notice(f"copied {how}" if how else clipboard.MISSING)
            return ExitStatus.OK
        elif choice == "revise":
            change = ui.ask("what should change? ").strip()
            if change:
                return f"Revise that command: {change}"
        else:
            ui.notice("aborted; nothing was run")
            return ExitStatus.OK
