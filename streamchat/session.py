"""One turn: provider events → sink, with timing, retries, cancellation and interrupt handling.

Whatever happens (Ctrl-C, a cancel token, a fault mid-stream, a closed pipe) the partial
answer is kept in the returned TurnResult, so callers can print, store and resend it.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Protocol

from streamchat import cancel as cancellation
from streamchat.cancel import CancelToken
from streamchat.errors import ContextOverflowError, OutputClosed, StreamchatError, ToolStepLimitError, redact
from streamchat.events import (
    Done,
    Event,
    Message,
    Outcome,
    ReasoningDelta,
    Sink,
    Stats,
    TextDelta,
    ToolCall,
    ToolCallStart,
    ToolResult,
    ToolSpec,
    TurnResult,
    Usage,
)
from streamchat.providers.base import AsyncProvider, ChatRequest, Provider


class ToolRunner(Protocol):
    """Runs the calls a model asks for (after asking the user); the turn loops until an answer."""

    max_steps: int

    def run(self, call: ToolCall) -> ToolResult:
        """Approve and run one call; a refusal or a failure is a result too (the model is told)."""
        ...


class Toolset(ToolRunner, Protocol):
    """The tools a session offers the model and runs itself (`tools.Toolbox`: MCP servers, approved
    at the terminal). A protocol, so the chat service needs nothing from the terminal's side."""

    @property
    def active(self) -> bool:
        """Whether any tool is on (the model is offered none otherwise)."""
        ...

    @property
    def asked(self) -> bool:
        """Whether tools were asked for (--tools, --functions, /tools on), not only on through the config."""
        ...

    def specs(self) -> tuple[ToolSpec, ...]: ...

    def start(self) -> None:
        """Start the servers in the background (the REPL's warm-up)."""
        ...

    def close(self) -> None:
        """Stop the servers (the front end that built the tools, as it ends)."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """Retry before anything is shown; honor Retry-After but never wait past `max_wait` in all."""

    retries: int = 2
    max_wait: float = 20.0
    base_delay: float = 0.5

    def delay(self, attempt: int, err: StreamchatError, waited: float) -> float | None:
        if not err.retryable or attempt >= self.retries:
            return None
        if err.retry_after is not None:
            wanted = err.retry_after
        else:
            wanted = self.base_delay * (2**attempt) * (0.5 + random.random())
        if waited + wanted > self.max_wait:
            return None
        return wanted


NO_RETRY = RetryPolicy(retries=0)


class _Cancelled(Exception):
    """Raised inside run_turn only, to leave the event loop when the token is set."""


class _Tally:
    """Accumulates one turn's text, reasoning, timing and token counts from its events.

    A turn with tools has steps: the text and calls of each finished step become messages
    (`steps`), and `text` restarts, so the result's text is the final answer's.
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.steps: list[Message] = []
        self.calls: list[ToolCall] = []
        self.spent_in = self.spent_out = 0  # tokens of finished steps
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.deltas = 0
        self.ttft_ms: float | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cached_tokens: int | None = None  # prompt cache reads and writes, of this step's input
        self.cache_write_tokens: int | None = None
        self.spent_cache: tuple[int | None, int | None] = (None, None)  # of finished steps: summed, as input is
        self.finish_reason: str | None = None

    @property
    def shown(self) -> bool:
        return bool(self.text or self.reasoning or self.steps or self.calls)

    def next_step(self, request: ChatRequest, results: list[ToolResult]) -> ChatRequest:
        """Close this step (its text and calls, then their results) and build the next request."""
        step = [Message("assistant", "".join(self.text), tool_calls=tuple(self.calls))]
        step += [Message("tool", r.content, tool_call_id=r.call.id, is_error=r.status != "ok") for r in results]
        self.steps += step
        self.spent_in += self.input_tokens or 0
        self.spent_out += self.output_tokens if self.output_tokens is not None else self.deltas
        self.text, self.calls, self.deltas = [], [], 0
        self.spent_cache = self._cache_totals()
        self.input_tokens = self.output_tokens = self.cached_tokens = self.cache_write_tokens = None
        self.finish_reason = None
        return replace(request, messages=request.messages + tuple(step))

    def add(self, event: Event) -> None:
        if isinstance(event, (TextDelta, ReasoningDelta, ToolCallStart)) and self.ttft_ms is None:
            self.ttft_ms = (time.perf_counter() - self.started) * 1000
        if isinstance(event, TextDelta):
            self.text.append(event.text)
            self.deltas += event.pieces
        elif isinstance(event, ReasoningDelta):
            self.reasoning.append(event.text)
        elif isinstance(event, Usage):
            if event.output_tokens is not None:
                self.output_tokens = event.output_tokens
            if event.input_tokens is not None:
                self.input_tokens = event.input_tokens
            if event.cached_tokens is not None:
                self.cached_tokens = event.cached_tokens
            if event.cache_write_tokens is not None:
                self.cache_write_tokens = event.cache_write_tokens
        elif isinstance(event, Done):
            self.finish_reason = event.finish_reason
        elif isinstance(event, ToolCall):
            self.calls.append(event)

    def _cache_totals(self) -> tuple[int | None, int | None]:
        """Cache reads and writes of the turn so far (None: no step reported any)."""
        read, written = self.spent_cache
        return _plus(read, self.cached_tokens), _plus(written, self.cache_write_tokens)

    def result(self, outcome: Outcome, error: StreamchatError | None,
               price: Callable[[Stats], float | None] | None = None) -> TurnResult:
        out = self.output_tokens if self.output_tokens is not None else self.deltas
        spent_in = (self.input_tokens or 0) + self.spent_in
        read, written = self._cache_totals()
        stats = Stats(ttft_ms=self.ttft_ms, total_ms=(time.perf_counter() - self.started) * 1000,
                      tokens=out + self.spent_out, input_tokens=spent_in if self.input_tokens is not None or self.steps else None,
                      cached_tokens=read, cache_write_tokens=written)
        if price is not None:
            stats = replace(stats, cost_usd=price(stats))
        return TurnResult("".join(self.text), "".join(self.reasoning), self.finish_reason, stats, outcome, error,
                          tuple(self.steps), tuple(self.calls))


def _plus(a: int | None, b: int | None) -> int | None:
    """A sum of counts a provider may not report: None when neither was."""
    return None if a is None and b is None else (a or 0) + (b or 0)


def run_turn(
    provider: Provider,
    request: ChatRequest,
    sink: Sink,
    *,
    retry: RetryPolicy = RetryPolicy(),
    notice: Callable[[str], None] = lambda _msg: None,
    cancel: CancelToken | None = None,
    price: Callable[[Stats], float | None] | None = None,
    tools: ToolRunner | None = None,
    keep: Callable[[TurnResult], TurnResult] | None = None,
    overflow: Callable[[ChatRequest], ChatRequest | None] | None = None,
) -> TurnResult:
    """Stream one answer into `sink`; never raises for provider faults, Ctrl-C, a cancel or a closed pipe.

    Retries happen only before anything was shown, so visible text is never duplicated. With
    `tools`, an answer that asks for calls is a step: the calls run (each result fed to the sink),
    and the continuation streams into the same sink, up to `tools.max_steps` steps. `keep` saves
    the result before the sink's end, which can then say where it was saved (--json's `done`).
    `overflow` gives a smaller request when the provider refuses one as too long (once a turn:
    compaction).
    """
    tally = _Tally()
    outcome, error = Outcome.OK, None
    sink.begin()
    try:
        step = 1
        while True:
            request, overflow = _stream_step(provider, request, sink, tally, retry, notice, cancel, overflow)
            if tools is None or not tally.calls:
                break
            if step >= tools.max_steps:
                tally.calls = []  # not run: the stored answer must not hold calls without results
                raise ToolStepLimitError(f"stopped after {step} tool steps; the model kept calling tools",
                                         hint="raise tool_steps in the config, or ask more precisely")
            results = []
            for call in tally.calls:
                ran = tools.run(call)
                sink.feed(ran)
                results.append(ran)
                if cancel is not None and cancel.cancelled:
                    raise _Cancelled
            request = tally.next_step(request, results)
            step += 1
            sink.begin()
    except KeyboardInterrupt:
        outcome = Outcome.INTERRUPTED
    except OutputClosed:
        outcome = Outcome.OUTPUT_CLOSED
    except _Cancelled:
        outcome = Outcome.CANCELLED
    except StreamchatError as err:
        outcome, error = Outcome.FAILED, err
    result = tally.result(outcome, error, price)
    try:
        if keep is not None:
            result = keep(result)
    finally:  # the sink ends (the cursor shown again, the last lines painted) even if saving failed
        with contextlib.suppress(KeyboardInterrupt, OutputClosed):
            sink.end(result)
    return result


def _stream_step(provider: Provider, request: ChatRequest, sink: Sink, tally: _Tally, retry: RetryPolicy,
                 notice: Callable[[str], None], cancel: CancelToken | None,
                 overflow: Callable[[ChatRequest], ChatRequest | None] | None = None,
                 ) -> tuple[ChatRequest, Callable[[ChatRequest], ChatRequest | None] | None]:
    """One request's events into the sink and the tally, retried while nothing was shown; the
    request that was answered, and `overflow` unless it was used."""
    attempt, waited = 0, 0.0
    while True:
        events = provider.stream(request)
        try:
            with contextlib.closing(events), cancellation.scope(cancel):  # closing the generator closes the stream
                for event in events:
                    tally.add(event)
                    sink.feed(event)
                    if cancel is not None and cancel.cancelled:
                        raise _Cancelled
            break
        except (KeyboardInterrupt, OutputClosed, _Cancelled):
            raise
        except Exception as exc:
            if cancel is not None and cancel.cancelled:  # the upstream was cut by the cancel itself
                raise _Cancelled from exc
            if overflow is not None and not tally.shown and isinstance(
                    provider.map_error(exc, model=request.model, started=False), ContextOverflowError):
                smaller, overflow = overflow(request), None
                if smaller is not None:
                    request = smaller
                    continue
            delay, why = _retry_or_raise(provider, request, tally, retry, attempt, waited, exc)
            attempt += 1
            notice(redact(f"{why} — retrying in {delay:.1f} s ({attempt}/{retry.retries})"))  # why may quote a base_url's user:pass
            if cancel is not None and cancel.wait(delay):
                raise _Cancelled from None
            if cancel is None:
                time.sleep(delay)
            waited += delay
    return request, overflow


def _retry_or_raise(provider: Provider, request: ChatRequest, tally: _Tally, retry: RetryPolicy, attempt: int,
                    waited: float, exc: Exception) -> tuple[float, str]:
    """(the wait before the next attempt, why), or the fault raised as our error (after anything
    was shown, a fault is never retried: visible text would be duplicated)."""
    err = provider.map_error(exc, model=request.model, started=tally.shown)
    delay = None if tally.shown else retry.delay(attempt, err, waited)
    if delay is None:
        if err is exc:
            raise err
        raise err from exc
    return delay, err.message


async def run_turn_async(
    provider: AsyncProvider,
    request: ChatRequest,
    *,
    retry: RetryPolicy = RetryPolicy(),
    price: Callable[[Stats], float | None] | None = None,
    record: Callable[[TurnResult], TurnResult] | None = None,
) -> AsyncIterator[Event | TurnResult]:
    """run_turn for an asyncio caller (serve): the events, then the TurnResult (as `record` returns
    it, when given). No tools (a serve client runs its own). Cancelling the task that iterates ends
    the turn as cancelled, with the upstream closed and the partial text kept in the result."""
    import asyncio  # here: only serve runs turns on a loop

    tally = _Tally()
    outcome, error = Outcome.OK, None
    attempt, waited = 0, 0.0
    try:
        while True:
            try:
                async with contextlib.aclosing(provider.astream(request)) as events:
                    async for event in events:
                        tally.add(event)
                        yield event
                break
            except Exception as exc:
                delay, _why = _retry_or_raise(provider, request, tally, retry, attempt, waited, exc)
                attempt += 1
                await asyncio.sleep(delay)
                waited += delay
    except asyncio.CancelledError:
        outcome = Outcome.CANCELLED
    except StreamchatError as err:
        outcome, error = Outcome.FAILED, err
    result = tally.result(outcome, error, price)
    yield result if record is None else record(result)
