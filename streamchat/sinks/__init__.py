"""Sinks turn normalized events into output: pipe text, NDJSON, or the live terminal."""

from __future__ import annotations

from dataclasses import replace

from streamchat.environment import Environment
from streamchat.events import Event, ReasoningDelta, Sink, TurnResult
from streamchat.events import NullSink as NullSink  # its home is events (the core uses it)
from streamchat.ui import UI


class HideReasoning:
    """--hide-reasoning: the model's reasoning is not shown (the answer's spinner keeps turning)."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def begin(self) -> None:
        self.sink.begin()

    def feed(self, event: Event) -> None:
        if not isinstance(event, ReasoningDelta):
            self.sink.feed(event)

    def end(self, result: TurnResult) -> None:
        self.sink.end(result)


def progress_sink(env: Environment, ui: UI, *, markdown: bool = True, code_theme: str | None = None) -> Sink:
    """For -x: the live rendering on stderr when it is a terminal (stdout stays for the code)."""
    if not env.stderr_isatty:
        return NullSink()
    return choose_sink(replace(env, stdout=env.stderr), ui, markdown=markdown, code_theme=code_theme)


def choose_sink(env: Environment, ui: UI, *, json: bool = False, markdown: bool = True, sanitize: bool = False,
                stats: bool = False, code_theme: str | None = None, raw: bool = False, reasoning: bool = True) -> Sink:
    """One decision from TTY-ness and flags, as httpie makes it: raw for pipes, pretty for people.
    Not `reasoning` (--hide-reasoning): the terminal sinks do not show it (--json keeps it)."""
    if not reasoning and not json:
        return HideReasoning(choose_sink(env, ui, markdown=markdown, sanitize=sanitize, stats=stats,
                                         code_theme=code_theme, raw=raw))
    if json:
        from streamchat.sinks.ndjson import NdjsonSink

        return NdjsonSink(env)
    tty = env.stdout_isatty
    if tty and markdown and not env.dumb:
        from streamchat.sinks.terminal import MarkdownSink

        return MarkdownSink(env, ui, stats=stats, code_theme=code_theme)
    from streamchat.sinks.plain import PlainSink

    return PlainSink(env, ui, sanitize=sanitize or tty, stats=stats, raw=raw)
