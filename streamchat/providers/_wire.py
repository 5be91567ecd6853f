"""The two streaming wire formats, parsed straight from SSE lines into our events.

The official SDKs still make the request (client, auth, base URL, status errors), but
reading a stream through them builds a pydantic model per chunk (~100–190 µs each here);
parsing the JSON ourselves costs a small fraction of that. One parser per wire format,
shared by every adapter that speaks it (OpenAI and every compatible server; Anthropic).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from streamchat.errors import IncompleteStreamError, from_status
from streamchat.events import Done, Event, ReasoningDelta, TextDelta, Usage


def sse_lines(chunks: Iterable[str]) -> Iterator[str]:
    """Decoded text → lines, split only where SSE splits them (CR, LF, CRLF).

    Not str.splitlines, nor httpx's line decoder: both also split on U+0085, U+2028 and U+2029,
    which JSON strings may hold raw, so a chunk carrying one would be cut in two.
    """
    pending = ""
    for chunk in chunks:
        pending += chunk
        while True:
            cut = min((i for i in (pending.find("\n"), pending.find("\r")) if i >= 0), default=-1)
            if cut < 0 or (pending[cut] == "\r" and cut == len(pending) - 1):
                break  # no end of line yet, or a CR that a LF may still follow
            end = cut + 2 if pending.startswith("\r\n", cut) else cut + 1
            yield pending[:cut]
            pending = pending[end:]
    if pending:
        yield pending.rstrip("\r")


def sse_events(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(event name, data) per Server-Sent Event; comments and other fields are skipped."""
    name, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif line.startswith("data:"):
            data.append(line[6:] if line.startswith("data: ") else line[5:])
        elif line.startswith("event:"):
            name = line[6:].strip()
    if data:
        yield name, "\n".join(data)


def _error(provider: str, model: str, payload: Any) -> Exception:
    err = payload.get("error", payload) if isinstance(payload, dict) else {}
    if not isinstance(err, dict):
        err = {"message": str(err)}
    return from_status(None, str(err.get("message") or "error event"), err.get("type") or err.get("code"),
                       model=model, provider=provider)


def openai_events(lines: Iterable[str], *, provider: str, model: str) -> Iterator[Event]:
    """`chat.completion.chunk` objects → events; `[DONE]` or a finish_reason ends the answer."""
    finish: str | None = None
    loads = json.loads
    for _name, data in sse_events(lines):
        if data.startswith("[DONE]"):
            break
        chunk = loads(data)
        if "error" in chunk:
            raise _error(provider, model, chunk)
        usage = chunk.get("usage")
        if usage:
            cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
            yield Usage(usage.get("prompt_tokens"), usage.get("completion_tokens"), cached)
        choices = chunk.get("choices")
        if not choices:
            continue
        choice = choices[0]
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            yield ReasoningDelta(reasoning)
        content = delta.get("content")
        if content:
            yield TextDelta(content)
        if choice.get("finish_reason"):
            finish = choice["finish_reason"]
    if finish is None:
        raise IncompleteStreamError(f"the {provider} stream ended before the answer was complete",
                                    hint="the partial answer was kept; retry")
    yield Done(finish)


def anthropic_events(lines: Iterable[str], *, provider: str, model: str) -> Iterator[Event]:
    """Messages API events → events; `message_stop` ends the answer."""
    input_tokens: int | None = None
    cached: int | None = None
    finish: str | None = None
    loads = json.loads
    for name, data in sse_events(lines):
        if name == "content_block_delta":
            delta = loads(data)["delta"]
            kind = delta.get("type")
            if kind == "text_delta" and delta.get("text"):
                yield TextDelta(delta["text"])
            elif kind == "thinking_delta" and delta.get("thinking"):
                yield ReasoningDelta(delta["thinking"])
        elif name == "message_start":
            usage = loads(data).get("message", {}).get("usage") or {}
            cached = usage.get("cache_read_input_tokens")
            if usage.get("input_tokens") is not None:  # Anthropic counts cache reads and writes apart
                input_tokens = usage["input_tokens"] + (cached or 0) + (usage.get("cache_creation_input_tokens") or 0)
        elif name == "message_delta":
            event = loads(data)
            finish = (event.get("delta") or {}).get("stop_reason") or finish
            yield Usage(input_tokens, (event.get("usage") or {}).get("output_tokens"), cached)
        elif name == "message_stop":
            yield Done(finish)
            return
        elif name == "error":
            raise _error(provider, model, loads(data))
    raise IncompleteStreamError(f"the {provider} stream ended before message_stop",
                                hint="the partial answer was kept; retry")
