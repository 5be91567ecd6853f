"""One turn: provider events → sink, with timing, retries and interrupt handling.

Whatever happens (Ctrl-C, a fault mid-stream, a closed pipe) the partial answer is
kept in the returned TurnResult, so callers can print, store and resend it.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from streamchat.errors import (
    EXIT_INTERRUPTED,
    OutputClosed,
    StreamchatError,
    map_exception,
)
from streamchat.events import Done, Event, ReasoningDelta, TextDelta, TurnResult, Usage
from streamchat.providers.base import ChatRequest, Provider


class Sink(Protocol):
    """Where events go: terminal, pipe, NDJSON, HTTP."""

    def begin(self) -> None: ...

    def feed(self, event: Event) -> None: ...

    def end(self, result: TurnResult) -> None: ...


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


class _Tally:
    """Accumulates one turn's text, reasoning, timing and token counts from its events."""

    def __init__(self, result: TurnResult) -> None:
        self.result = result
        self.started = time.perf_counter()
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.deltas = 0
        self.usage_tokens: int | None = None

    @property
    def shown(self) -> bool:
        return bool(self.text or self.reasoning)

    def add(self, event: Event) -> None:
        stats = self.result.stats
        if isinstance(event, (TextDelta, ReasoningDelta)) and stats.ttft_ms is None:
            stats.ttft_ms = (time.perf_counter() - self.started) * 1000
        if isinstance(event, TextDelta):
            self.text.append(event.text)
            self.deltas += 1
        elif isinstance(event, ReasoningDelta):
            self.reasoning.append(event.text)
        elif isinstance(event, Usage):
            if event.output_tokens is not None:
                self.usage_tokens = event.output_tokens
            if event.input_tokens is not None:
                stats.input_tokens = event.input_tokens
        elif isinstance(event, Done):
            self.result.finish_reason = event.finish_reason

    def close(self) -> TurnResult:
        result = self.result
        result.text = "".join(self.text)
        result.reasoning = "".join(self.reasoning)
        result.stats.total_ms = (time.perf_counter() - self.started) * 1000
        result.stats.tokens = self.usage_tokens if self.usage_tokens is not None else self.deltas
        return result


def run_turn(
    provider: Provider,
    request: ChatRequest,
    sink: Sink,
    *,
    retry: RetryPolicy = RetryPolicy(),
    notice: Callable[[str], None] = lambda _msg: None,
    base_url: str | None = None,
) -> TurnResult:
    """Stream one answer into `sink`; never raises for provider faults, Ctrl-C or a closed pipe.

    Retries happen only before anything was shown, so visible text is never duplicated.
    """
    result = TurnResult()
    tally = _Tally(result)
    attempt, waited = 0, 0.0
    sink.begin()
    try:
        while True:
            events = provider.stream(request)
            try:
                with contextlib.closing(events):  # closing the generator closes the HTTP stream
                    for event in events:
                        tally.add(event)
                        sink.feed(event)
                break
            except (KeyboardInterrupt, OutputClosed):
                raise
            except Exception as exc:
                err = map_exception(exc, provider=provider.name, model=request.model, base_url=base_url,
                                    started=tally.shown)
                delay = None if tally.shown else retry.delay(attempt, err, waited)
                if delay is None:
                    if err is exc:
                        raise
                    raise err from exc
                attempt += 1
                notice(f"{err.message} — retrying in {delay:.1f} s ({attempt}/{retry.retries})")
                time.sleep(delay)
                waited += delay
    except KeyboardInterrupt:
        result.state, result.exit_code, result.error = "interrupted", EXIT_INTERRUPTED, "interrupted"
    except OutputClosed:
        result.state, result.exit_code, result.error = "interrupted", OutputClosed.exit_code, "output closed"
    except StreamchatError as err:
        result.state, result.exit_code, result.error = "error", err.exit_code, str(err)
        result.exception = err
    finally:
        tally.close()
    with contextlib.suppress(KeyboardInterrupt, OutputClosed):
        sink.end(result)
    return result
