"""A --schema turn: ask, check the answer locally, repair it once, hand the data out.

The session carries the schema (`Overrides.schema`), so every request of the turn asks the
provider for JSON its own way; here the answer is checked with jsonschema whatever the provider
promised. An answer that does not fit gets one corrective request showing the model the
validator's words; both attempts are ordinary turns, so the log keeps them. The one-shot command
and the REPL differ only in where the data goes (a `DataOutput`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from streamchat.cancel import CancelToken
from streamchat.environment import Environment
from streamchat.errors import OutputClosed, SchemaMismatchError, exit_code_for
from streamchat.events import CUT_OFF, Attachment, Outcome, Sink, TurnResult
from streamchat.exit_status import ExitStatus
from streamchat.render.sanitize import sanitize
from streamchat.schema import Schema, dump, repair_prompt
from streamchat.service import ChatSession
from streamchat.sinks._output import Output
from streamchat.ui import UI, report_end

REPAIRS = 1  # corrective requests after an answer that does not fit


class DataOutput(Protocol):
    """Where a --schema answer goes: each attempt streams into `sink()`, then `accept` (it fits)
    or `reject` (it does not); `fail` says a last attempt did not fit either."""

    def sink(self) -> Sink: ...
    def accept(self, data: Any) -> None: ...
    def reject(self) -> None: ...
    def fail(self, message: str) -> None: ...


@dataclass(frozen=True)
class DataAnswer:
    """How a --schema turn ended: its last attempt, and the data or the problems with it."""

    result: TurnResult
    data: Any = None
    problems: tuple[str, ...] = ()
    attempts: int = 1

    def mismatch(self) -> str:
        """The one line saying the answer does not fit (when it has problems)."""
        repaired = " after a corrective request" if self.attempts > 1 else ""
        return f"the answer does not fit the schema{repaired}: {self.problems[0]}" if self.problems else ""

    def outcome(self) -> TurnResult:
        """The turn as it ended for the user: a mismatch is a failure (exit 8), as a race's lane reports it."""
        if not self.problems or not self.result.ok:
            return self.result
        return replace(self.result, outcome=Outcome.FAILED, error=SchemaMismatchError(self.mismatch()))


def ask_data(session: ChatSession, out: DataOutput, first: Callable[[Sink], TurnResult | None], *,
             cancel: CancelToken | None = None) -> DataAnswer | None:
    """Run `first` (a question, or the REPL's retry), check its answer against the session's schema,
    repair it at most REPAIRS times. A turn that failed or was interrupted ends it as it is (its
    partial answer stays shown); an answer cut off at the token limit is not repaired: the same
    limit would cut it again. None: `first` had nothing to ask."""
    assert session.overrides.schema is not None, "a --schema turn needs the session's schema"
    schema = Schema(session.overrides.schema)
    result = first(out.sink())
    if result is None:
        return None
    attempts = 1
    while result.ok:
        verdict = schema.check(result.text)
        if verdict.ok:
            out.accept(verdict.data)
            return DataAnswer(result, verdict.data, attempts=attempts)
        out.reject()
        if result.finish_reason in CUT_OFF:
            return DataAnswer(result, problems=(f"the answer was cut off at the token limit ({result.stats.tokens} "
                                                "tokens) before its JSON ended — raise --max-tokens",), attempts=attempts)
        if attempts > REPAIRS:
            return DataAnswer(result, problems=verdict.problems, attempts=attempts)
        attempts += 1
        result = session.ask(repair_prompt(verdict.problems), out.sink(), cancel=cancel)
    return DataAnswer(result, attempts=attempts)


def report_data(answer: DataAnswer, out: DataOutput, ui: UI, *, debug: bool = False, stats: bool = False) -> ExitStatus:
    """One line on stderr when the turn did not end with data, and the exit code it means."""
    result = answer.result
    if not result.ok:
        report_end(result, ui, debug)
        return exit_code_for(result)
    if answer.problems:
        line = answer.mismatch()
        ui.error(line)
        out.fail(line)
        return ExitStatus.SCHEMA
    if stats:
        ui.notice(result.stats.summary())
    return ExitStatus.OK


def run_data_turn(session: ChatSession, out: DataOutput, ui: UI, question: str, *,
                  attachments: tuple[Attachment, ...] = (), debug: bool = False, stats: bool = False) -> int:
    """The one-shot --schema: one question, its data on stdout, an exit code."""
    try:
        answer = ask_data(session, out, lambda sink: session.ask(question, sink, attachments=attachments))
    except OutputClosed:
        return ExitStatus.OUTPUT_CLOSED
    assert answer is not None
    return report_data(answer, out, ui, debug=debug, stats=stats)


class PipeData:
    """stdout is not a live terminal: nothing on it until the answer fits, then the document —
    one compact line for a pipe, indented on a dumb terminal. Progress shows on stderr when that
    is a terminal (as -x shows it)."""

    def __init__(self, env: Environment, ui: UI, *, sanitize: bool = False, markdown: bool = True,
                 code_theme: str | None = None) -> None:
        self.env, self.ui = env, ui
        self.sanitize, self.markdown, self.code_theme = sanitize, markdown, code_theme

    def sink(self) -> Sink:
        from streamchat.sinks import progress_sink

        return progress_sink(self.env, self.ui, markdown=self.markdown, code_theme=self.code_theme)

    def accept(self, data: Any) -> None:
        text = dump(data, pretty=self.env.stdout_isatty)
        Output(self.env.stdout).write((sanitize(text) if self.sanitize or self.env.stdout_isatty else text) + "\n")

    def reject(self) -> None:
        pass

    def fail(self, message: str) -> None:
        pass


class EventData:
    """--json: the usual events of each attempt, then a `data` event with the parsed object (or an
    `error` event with code `schema` and exit_code 8)."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.out = Output(env.stdout)

    def sink(self) -> Sink:
        from streamchat.sinks.ndjson import NdjsonSink

        return NdjsonSink(self.env)

    def _emit(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record, ensure_ascii=False) + "\n")

    def accept(self, data: Any) -> None:
        self._emit({"type": "data", "data": data})

    def reject(self) -> None:
        pass

    def fail(self, message: str) -> None:
        self._emit({"type": "error", "message": message, "code": "schema", "exit_code": int(ExitStatus.SCHEMA)})


def data_output(env: Environment, ui: UI, *, json_events: bool = False, sanitize: bool = False,
                markdown: bool = True, code_theme: str | None = None) -> DataOutput:
    """The output for --schema, decided as choose_sink decides: events, a live terminal, or a pipe."""
    if json_events:
        return EventData(env)
    if env.stdout_isatty and not env.dumb:
        from streamchat.sinks.data import LiveJson

        return LiveJson(env, ui)
    return PipeData(env, ui, sanitize=sanitize, markdown=markdown, code_theme=code_theme)

