"""A race: one question to several models at once, each answer streaming into its own lane.

Every model gets a `ChatSession` of its own (`ChatSession.sibling`) over a copy of the
conversation, so each request is the one a single turn to that model would send; the turns run
on threads, so a race takes about the slowest model's time, not the sum. The main thread keeps
the log (SQLite connections stay on their thread): before anything is sent it saves the question
once per model (`hold`), so the answers are alternatives of one question in -m order, as /retry's
are; each answer is saved the moment it ends (`settle`), and the conversation continues from the
first answer with text unless the user picks another (`pick N`, `/pick N`). Ctrl-C or SIGTERM
cancels every lane's token, which shuts each upstream socket at once; partial answers are kept.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from streamchat import background, signals
from streamchat.cancel import CancelToken
from streamchat.conversation import Turn
from streamchat.errors import StreamchatError, UsageError, exit_code_for, unexpected
from streamchat.events import Attachment, Outcome, Sink, TurnResult
from streamchat.exit_status import ExitStatus
from streamchat.service import ChatSession
from streamchat.sinks.race import RaceOutput
from streamchat.ui import UI

if TYPE_CHECKING:
    from streamchat.structured import DataOutput

# After Ctrl-C every upstream is shut at once (the token's closers); this is how long the race then
# waits for its lanes to hand over their partial answers, priced and saved (normally milliseconds)
STOP_WAIT_S = 5.0


def check_raceable(session: ChatSession, models: Sequence[str]) -> None:
    """Refuse what a race cannot do, before anything is sent. Its lanes have no tools (their
    approvals and results would interleave): the CLI refuses --tools and --functions with several -m."""
    if len(models) < 2:
        raise UsageError("a race needs at least two models", hint="streamchat -m MODEL_A -m MODEL_B \"question\"")
    if session.overrides.tools:
        raise UsageError("a client's tools cannot be used in a race", hint="ask one model")


def lanes(session: ChatSession, models: Sequence[str]) -> list[ChatSession]:
    """A session per model, each checked (name, options) before anything is sent."""
    check_raceable(session, models)
    return [session.sibling(model) for model in models]


class _Saver:
    """The main thread's side of the lanes: each lane hands its ended answer over and waits until
    it is saved (so its sink's end names where, as --json's `done` does)."""

    def __init__(self, session: ChatSession, racers: list[ChatSession], held: list[int | None]) -> None:
        self.session, self.racers, self.held = session, racers, held
        self.inbox: queue.Queue[tuple[int, TurnResult, Future[TurnResult]]] = queue.Queue()
        self.results: list[TurnResult | None] = [None] * len(held)
        self.interrupted = False
        self._taken: tuple[int, TurnResult, Future[TurnResult]] | None = None  # out of the inbox, maybe not saved

    def hand_over(self, index: int) -> Callable[[TurnResult], TurnResult]:
        def then(result: TurnResult) -> TurnResult:  # on the lane's thread
            answer: Future[TurnResult] = Future()
            self.inbox.put((index, result, answer))
            return answer.result()
        return then

    def serve(self, until: Callable[[], bool], deadline: float | None = None) -> None:
        """Save answers as they come, until every lane has ended, `until()` or the deadline."""
        if self._taken is not None:  # an interrupt came between taking it and saving it
            self._save(*self._taken)
        while None in self.results and (deadline is None or time.monotonic() < deadline):
            try:
                self._taken = self.inbox.get(timeout=0.05)
            except queue.Empty:
                until()
                continue
            self._save(*self._taken)
            self._taken = None

    def _save(self, index: int, result: TurnResult, answer: Future[TurnResult]) -> None:
        if self.interrupted and result.outcome is Outcome.CANCELLED:
            result = replace(result, outcome=Outcome.INTERRUPTED)  # the user stopped it: marked as Ctrl-C marks a turn
        if self.results[index] is None:
            self.results[index] = self.session.settle(self.held[index], result, self.racers[index])
        if not answer.done():
            answer.set_result(self.results[index] or result)


def run(session: ChatSession, racers: list[ChatSession], prompt: str, output: RaceOutput, *,
        attachments: tuple[Attachment, ...] = ()) -> list[TurnResult]:
    """Ask every lane `prompt` at once into `output`; each lane's result as saved, in -m order.
    Never raises for a lane's fault: that lane's result says it, and the others go on."""
    saver = _Saver(session, racers, session.hold(prompt, attachments, racers))
    background.start(_load_prices, name="prices")  # each lane prices its answer as it ends: load the table meanwhile
    token = CancelToken()
    threads = [threading.Thread(target=_lane, args=(lane, prompt, attachments, output.sink(i), output.ui(i),
                                                    partial(output.data, i), token, saver.hand_over(i)),
                                name=f"race-{i}", daemon=True)
               for i, lane in enumerate(racers)]

    def stop_if_closed() -> bool:
        if output.closed:  # the reader of stdout left: nobody sees the rest
            token.cancel()
        return output.closed

    with signals.turn():
        try:
            for thread in threads:
                thread.start()
            saver.serve(stop_if_closed)
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: every upstream closed, partial answers kept
            saver.interrupted = True
            signals.ending()
            token.cancel()
            saver.serve(lambda: False, deadline=time.monotonic() + STOP_WAIT_S)
        last = time.monotonic() + STOP_WAIT_S
        for thread in threads:  # each lane's sink ends after its answer is saved: let it finish
            thread.join(timeout=max(0.0, last - time.monotonic()))
    results = [r if r is not None else TurnResult(outcome=Outcome.INTERRUPTED) for r in saver.results]
    output.close()
    chosen = next((i for i, r in enumerate(results) if r.text), 0)
    answered = ":".join(racers[chosen].target.answered())  # a route: its deployment, as the log has it
    session.adopt(Turn(prompt, results[chosen], results[chosen].turn_id, answered, attachments))
    return results


def _load_prices() -> None:
    with contextlib.suppress(ImportError):
        import genai_prices  # noqa: F401


def _lane(lane: ChatSession, prompt: str, attachments: tuple[Attachment, ...], sink: Sink, ui: UI,
          data: Callable[[], DataOutput], token: CancelToken, then: Callable[[TurnResult], TurnResult]) -> None:
    """One lane's turn, on its thread. A fault before the request (an attachment this model cannot
    take) ends the lane as failed, as a fault mid-stream does."""
    lane.ui = ui  # its notices (a retry) go to its own pane
    try:
        if lane.overrides.schema is None:
            lane.ask(prompt, sink, attachments=attachments, cancel=token, then=then)
            return
        sink.end(then(_data_turn(lane, prompt, attachments, data, token)))
        return
    except StreamchatError as err:
        failed = TurnResult(outcome=Outcome.FAILED, error=err)
    except Exception as exc:  # a bug in one lane must not hang the race
        failed = TurnResult(outcome=Outcome.FAILED, error=unexpected(exc, lane.target.provider_name))
    sink.begin()
    sink.end(then(failed))


def _data_turn(lane: ChatSession, prompt: str, attachments: tuple[Attachment, ...], data: Callable[[], DataOutput],
               token: CancelToken) -> TurnResult:
    """--schema: the lane's answer checked and repaired once, as a single answer's is
    (structured.ask_data); one that still does not fit is the lane's failure (exit 8)."""
    from streamchat.structured import ask_data

    answer = ask_data(lane, data(), lambda sink: lane.ask(prompt, sink, attachments=attachments, cancel=token),
                      cancel=token)
    assert answer is not None
    return answer.outcome()


def exit_code(results: list[TurnResult]) -> int:
    """130 (or 143, 129) when the race was interrupted, else the first failure's code in -m order, else 0."""
    if any(r.outcome is Outcome.INTERRUPTED for r in results):
        return signals.exit_code(ExitStatus.INTERRUPTED)
    return next((code for code in map(exit_code_for, results) if code), ExitStatus.OK)
