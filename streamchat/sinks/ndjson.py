"""--json: one event per line on stdout, flushed as it happens."""

from __future__ import annotations

import json

from streamchat.environment import Environment
from streamchat.errors import exit_code_for
from streamchat.events import Done, Event, ToolCallDelta, ToolCallStart, TurnResult
from streamchat.records import event_dict, result_dict
from streamchat.sinks._output import Output


class NdjsonSink:
    def __init__(self, env: Environment) -> None:
        self.out = Output(env.stdout)

    def _emit(self, record: dict[str, object]) -> None:
        self.out.write(json.dumps(record, ensure_ascii=False) + "\n")

    def begin(self) -> None:
        pass

    def feed(self, event: Event) -> None:
        # `done` goes out in end(), with the stats; a call goes out once complete (`tool_call`)
        if not isinstance(event, (Done, ToolCallStart, ToolCallDelta)):
            self._emit(event_dict(event))

    def end(self, result: TurnResult) -> None:
        record = result_dict(result)
        # where the turn was saved (null with --no-log): `-c`/`--cid ID` continue it, `history show ID` shows it
        record["conversation_id"], record["turn_id"] = result.conversation_id, result.turn_id
        if not result.ok:
            record["exit_code"] = exit_code_for(result)
        self._emit(record)
