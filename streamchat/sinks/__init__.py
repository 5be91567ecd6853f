"""Sinks turn normalized events into output: pipe text, NDJSON, or the live terminal."""

from __future__ import annotations

from streamchat.environment import Environment
from streamchat.session import Sink


def choose_sink(env: Environment, *, json: bool = False, markdown: bool = True, sanitize: bool = False,
                stats: bool = False) -> Sink:
    """One decision from TTY-ness and flags, as httpie makes it: raw for pipes, pretty for people."""
    if json:
        from streamchat.sinks.ndjson import NdjsonSink

        return NdjsonSink(env)
    tty = env.stdout_isatty
    if tty and markdown and not env.dumb:
        from streamchat.render.terminal import MarkdownSink

        return MarkdownSink(env, stats=stats)
    from streamchat.sinks.plain import PlainSink

    return PlainSink(env, sanitize=sanitize or tty, stats=stats)
