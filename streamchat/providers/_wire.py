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
from streamchat.events import Done, Event, ReasoningDelta, TextDelta, ToolCall, ToolCallDelta, ToolCallStart, Usage


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


class _Calls:
    """Tool calls being streamed, by index: their arguments arrive in pieces, interleaved."""

    def __init__(self) -> None:
        self.open: dict[int, tuple[str, str, list[str]]] = {}

    def start(self, index: int, call_id: str, name: str) -> ToolCallStart:
        self.open[index] = (call_id, name, [])
        return ToolCallStart(index, call_id, name)

    def piece(self, index: int, text: str) -> ToolCallDelta:
        self.open[index][2].append(text)
        return ToolCallDelta(index, text)

    def complete(self, index: int) -> ToolCall:
        call_id, name, pieces = self.open.pop(index)
        return ToolCall(call_id, name, "".join(pieces) or "{}", index)

    def complete_all(self) -> Iterator[ToolCall]:
        for index in sorted(self.open):
            yield self.complete(index)


def _openai_tool_deltas(calls: _Calls, deltas: list[dict[str, Any]]) -> Iterator[Event]:
    for position, tc in enumerate(deltas):
        index = tc.get("index", position)
        fn = tc.get("function") or {}
        if index not in calls.open:
            yield calls.start(index, tc.get("id") or f"call_{index}", fn.get("name") or "")
        if fn.get("arguments"):
            yield calls.piece(index, fn["arguments"])


def openai_events(lines: Iterable[str], *, provider: str, model: str) -> Iterator[Event]:
    """`chat.completion.chunk` objects → events; `[DONE]` or a finish_reason ends the answer.

    Tool calls come as `tool_calls` deltas keyed by index (several calls may interleave);
    each is complete when the answer is.
    """
    finish: str | None = None
    calls = _Calls()
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
        if "tool_calls" in delta and delta["tool_calls"]:
            yield from _openai_tool_deltas(calls, delta["tool_calls"])
        if choice.get("finish_reason"):
            finish = choice["finish_reason"]
    if finish is None:
        raise IncompleteStreamError(f"the {provider} stream ended before the answer was complete",
                                    hint="the partial answer was kept; retry")
    yield from calls.complete_all()
    yield Done(finish)


def anthropic_events(lines: Iterable[str], *, provider: str, model: str) -> Iterator[Event]:
    """Messages API events → events; `message_stop` ends the answer."""
    input_tokens: int | None = None
    cached: int | None = None
    finish: str | None = None
    calls = _Calls()
    loads = json.loads
    for name, data in sse_events(lines):
        if name == "content_block_delta":
            event = loads(data)
            delta = event["delta"]
            kind = delta.get("type")
            if kind == "text_delta" and delta.get("text"):
                yield TextDelta(delta["text"])
            elif kind == "thinking_delta" and delta.get("thinking"):
                yield ReasoningDelta(delta["thinking"])
            elif kind == "input_json_delta" and delta.get("partial_json") and event.get("index") in calls.open:
                yield calls.piece(event["index"], delta["partial_json"])
        elif name == "content_block_start":
            event = loads(data)
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                yield calls.start(event.get("index", 0), block.get("id") or "", block.get("name") or "")
                if block.get("input"):  # a server may send the whole input here instead of deltas
                    yield calls.piece(event.get("index", 0), json.dumps(block["input"]))
        elif name == "content_block_stop":
            index = loads(data).get("index")
            if index in calls.open:
                yield calls.complete(index)
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
