"""--json: one event per line on stdout, flushed as it happens."""

from __future__ import annotations

import json
import threading

from streamchat.environment import Environment
from streamchat.errors import exit_code_for
from streamchat.events import Done, Event, ToolCallDelta, ToolCallStart, TurnResult
from streamchat.records import event_dict, result_dict
from streamchat.sinks._output import Output


class NdjsonSink:
    """`tags` go into every record (a race's `model` and `index`); records from several threads
    (a race's lanes) are written whole, one at a time."""

    _lock = threading.Lock()

    def __init__(self, env: Environment, tags: dict[str, object] | None = None) -> None:
        self.out = Output(env.stdout)
        self.tags = tags or {}

    def emit(self, record: dict[str, object]) -> None:
        line = json.dumps({**record, **self.tags}, ensure_ascii=False) + "\n"
        with self._lock:
            self.out.write(line)

    def begin(self) -> None:
        pass

    def feed(self, event: Event) -> None:
        # `done` goes out in end(), with the stats; a call goes out once complete (`tool_call`)
        if not isinstance(event, (Done, ToolCallStart, ToolCallDelta)):
            self.emit(event_dict(event))

    def end(self, result: TurnResult) -> None:
        record = result_dict(result)
        # where the turn was saved (null with --no-log): `-c`/`--cid ID` continue it, `history show ID` shows it
        record["conversation_id"], record["turn_id"] = result.conversation_id, result.turn_id
        if not result.ok:
            record["exit_code"] = exit_code_for(result)
        self.emit(record)
