"""--json: one event per line on stdout, flushed as it happens."""

from __future__ import annotations

import json

from streamchat.environment import Environment
from streamchat.errors import StreamchatError
from streamchat.events import Done, Event, ReasoningDelta, TextDelta, TurnResult, Usage
from streamchat.sinks._output import Output


def event_dict(event: Event) -> dict[str, object]:
    """The wire shape of an event, shared by NDJSON, SSE and WebSocket output."""
    if isinstance(event, TextDelta):
        return {"type": "text", "text": event.text}
    if isinstance(event, ReasoningDelta):
        return {"type": "reasoning", "text": event.text}
    if isinstance(event, Usage):
        return {"type": "usage", "input_tokens": event.input_tokens, "output_tokens": event.output_tokens}
    if isinstance(event, Done):
        return {"type": "done", "finish_reason": event.finish_reason}
    raise TypeError(event)


def result_dict(result: TurnResult) -> dict[str, object]:
    """The closing record of a turn: `done` with stats, or `error`."""
    if result.state == "ok":
        return {"type": "done", "finish_reason": result.finish_reason, "stats": result.stats.as_dict()}
    err = result.exception
    code = err.code if isinstance(err, StreamchatError) else result.state
    return {"type": "error", "message": result.error, "code": code, "exit_code": result.exit_code,
            "partial": True, "stats": result.stats.as_dict()}


class NdjsonSink:
    def __init__(self, env: Environment) -> None:
        self.out = Output(env.stdout)

    def _emit(self, record: dict[str, object]) -> None:
        self.out.write(json.dumps(record, ensure_ascii=False) + "\n")

    def begin(self) -> None:
        pass

    def feed(self, event: Event) -> None:
        if not isinstance(event, Done):  # `done` goes out in end(), with the stats
            self._emit(event_dict(event))

    def end(self, result: TurnResult) -> None:
        self._emit(result_dict(result))
