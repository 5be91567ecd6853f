"""Sinks turn normalized events into output: pipe text, NDJSON, or the live terminal."""

from __future__ import annotations

from streamchat.environment import Environment
from streamchat.events import Sink
from streamchat.ui import UI


def choose_sink(env: Environment, ui: UI, *, json: bool = False, markdown: bool = True, sanitize: bool = False,
                stats: bool = False) -> Sink:
    """One decision from TTY-ness and flags, as httpie makes it: raw for pipes, pretty for people."""
    if json:
        from streamchat.sinks.ndjson import NdjsonSink

        return NdjsonSink(env)
    tty = env.stdout_isatty
    if tty and markdown and not env.dumb:
        from streamchat.sinks.terminal import MarkdownSink

        return MarkdownSink(env, ui, stats=stats)
    from streamchat.sinks.plain import PlainSink

    return PlainSink(env, ui, sanitize=sanitize or tty, stats=stats)
