"""Terminal sink (temporary: plain sanitized text until the live Markdown renderer lands)."""

from __future__ import annotations

from streamchat.environment import Environment
from streamchat.sinks.plain import PlainSink


class MarkdownSink(PlainSink):
    def __init__(self, env: Environment, *, stats: bool = False) -> None:
        super().__init__(env, sanitize=True, stats=stats)
