"""Plain text exactly as streamed: for pipes, TERM=dumb and --no-markdown."""

from __future__ import annotations

from streamchat.environment import Environment
from streamchat.events import Event, ReasoningDelta, TextDelta, ToolCall, TurnResult
from streamchat.render.sanitize import sanitize
from streamchat.sinks._output import Output
from streamchat.sinks._reasoning import ReasoningOutput
from streamchat.ui import UI


class PlainSink:
    """Writes each chunk the moment it arrives. Bytes pass through unchanged unless
    `sanitize` (always on for a terminal, `--sanitize` for pipes).

    An answer that does not end with a newline gets one at its end, so what follows it (the
    shell's prompt, an error line on the same terminal, the next `cat`ed file) starts on its
    own line; `raw` (`--raw`) leaves a piped answer's bytes exactly as the model sent them."""

    def __init__(self, env: Environment, ui: UI, *, sanitize: bool = False, stats: bool = False,
                 raw: bool = False) -> None:
        self.env = env
        self.out = Output(env.stdout)
        self.sanitize = sanitize
        self.raw = raw and not env.stdout_isatty
        self.stats = stats
        self.ui = ui
        self.reasoning = ReasoningOutput(self.ui)
        self._last = ""

    def begin(self) -> None:
        pass

    def feed(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self.reasoning.answer_begins()
            text = sanitize(event.text) if self.sanitize else event.text
            self._last = text[-1:] or self._last  # first: a Ctrl-C lands as the write returns
            self.out.write(text)
        elif isinstance(event, ReasoningDelta):
            self.reasoning.write(event.text)
        elif isinstance(event, ToolCall):
            self.reasoning.finish()
            self.reasoning = ReasoningOutput(self.ui)  # the next step may reason again
            if self._last not in ("", "\n"):
                self.out.write("\n")  # a step's text ends its line before the tool lines and the next step
                self._last = "\n"

    def end(self, result: TurnResult) -> None:
        self.reasoning.finish()
        if not self.raw and self._last not in ("", "\n"):
            self.out.write("\n")
        if self.stats:
            self.ui.notice(result.stats.summary())
