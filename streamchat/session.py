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


def run_turn(
    provider: Provider,
    request: ChatRequest,
    sink: Sink,
    *,
    retry: RetryPolicy = RetryPolicy(),
    notice: Callable[[str], None] = lambda _msg: None,
    base_url: str | None = None,
) -> TurnResult:
    result = TurnResult()
    stats = result.stats
    started = time.perf_counter()
    text_parts: list[str] = []
    reasoning_parts: list[str] = []
    deltas = 0
    usage_tokens: int | None = None
    attempt = 0
    waited = 0.0
    sink.begin()
    try:
        while True:
            events = provider.stream(request)
            try:
                with contextlib.closing(events):
                    for event in events:
                        if isinstance(event, TextDelta):
                            if stats.ttft_ms is None:
                                stats.ttft_ms = (time.perf_counter() - started) * 1000
                            text_parts.append(event.text)
                            deltas += 1
                        elif isinstance(event, ReasoningDelta):
                            if stats.ttft_ms is None:
                                stats.ttft_ms = (time.perf_counter() - started) * 1000
                            reasoning_parts.append(event.text)
                        elif isinstance(event, Usage):
                            usage_tokens = event.output_tokens if event.output_tokens is not None else usage_tokens
                            stats.input_tokens = event.input_tokens if event.input_tokens is not None else stats.input_tokens
                        elif isinstance(event, Done):
                            result.finish_reason = event.finish_reason
                        sink.feed(event)
                break
            except (KeyboardInterrupt, OutputClosed):
                raise
            except Exception as exc:
                shown = bool(text_parts or reasoning_parts)
                err = map_exception(exc, provider=provider.name, model=request.model, base_url=base_url,
                                    started=shown)
                delay = None if shown else retry.delay(attempt, err, waited)
                if delay is None:
                    err.__cause__ = exc
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
        result.text = "".join(text_parts)
        result.reasoning = "".join(reasoning_parts)
        stats.total_ms = (time.perf_counter() - started) * 1000
        stats.tokens = usage_tokens if usage_tokens is not None else deltas
    with contextlib.suppress(KeyboardInterrupt, OutputClosed):
        sink.end(result)
    return result
