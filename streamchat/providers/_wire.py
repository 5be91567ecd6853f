"""The two streaming wire formats, parsed straight from SSE lines into our events.

The official SDKs still make the request (client, auth, base URL, status errors), but
reading a stream through them builds a pydantic model per chunk (~100–190 µs each here);
parsing the JSON ourselves costs a small fraction of that. One parser per wire format,
shared by every adapter that speaks it (OpenAI and every compatible server; Anthropic).

The parsers are push-based (text in, events out), so the same code reads a blocking stream
(`events`) and an asyncio one (`aevents`, the server's path: no thread per answer).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any, Protocol, cast

import orjson

from streamchat.errors import IncompleteStreamError, from_status
from streamchat.events import Done, Event, ReasoningDelta, TextDelta, ToolCall, ToolCallDelta, ToolCallStart, Usage

_EOL = re.compile(r"\r\n|\r|\n")


def _loads(data: str) -> Any:
    """A per-token chunk's JSON: orjson (0.8 µs against json's 3 µs for a typical chunk), and the
    standard library for what orjson refuses but json reads (NaN, a lone surrogate escape, which
    becomes U+FFFD), so a malformed chunk raises the same JSONDecodeError. One difference: an integer over 64 bits comes
    back as a float, which no field read from these chunks (text, token counts) can be; a chunk
    whose values are passed on as they are (a tool's whole input) goes through json."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return _whole_characters(json.loads(data))


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _whole_characters(value: Any) -> Any:
    """`value` with each lone surrogate (`"\\ud800"` alone is valid JSON; json.loads keeps it)
    replaced by U+FFFD: no UTF-8 encoder takes one, so the answer could be neither printed nor
    logged ("internal error", exit 1, the answer lost). Only on the fallback path: orjson refuses them."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {key: _whole_characters(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_characters(item) for item in value]
    return value


class LineSplitter:
    """Decoded text → lines, split only where SSE splits them (CR, LF, CRLF).

    Not str.splitlines, nor httpx's line decoder: both also split on U+0085, U+2028 and U+2029,
    which JSON strings may hold raw, so a chunk carrying one would be cut in two.
    """

    def __init__(self) -> None:
        self.pending = ""

    def feed(self, chunk: str) -> list[str]:
        """Whole lines so far; the rest waits. Linear in the text (a busy server reads many events
        per chunk; a find-and-slice loop rescanned the rest of the chunk for every line)."""
        pending = self.pending + chunk
        if "\r" not in pending:  # the common case: LF only
            *lines, self.pending = pending.split("\n")
            return lines
        hold = pending.endswith("\r")  # a CR at the very end: the LF of a CRLF may still come
        *lines, rest = _EOL.split(pending[:-1] if hold else pending)
        self.pending = rest + "\r" if hold else rest
        return lines

    def close(self) -> list[str]:
        rest, self.pending = self.pending, ""
        return [rest.rstrip("\r")] if rest else []


class SseAssembler:
    """Lines → (event name, data) per Server-Sent Event; comments and other fields are skipped."""

    def __init__(self) -> None:
        self.name, self.data = "message", list[str]()

    def line(self, line: str) -> tuple[str, str] | None:
        if not line:
            if not self.data:
                self.name = "message"
                return None
            item = (self.name, "\n".join(self.data))
            self.name, self.data = "message", []
            return item
        if line.startswith("data:"):
            self.data.append(line[6:] if line.startswith("data: ") else line[5:])
        elif line.startswith("event:"):
            self.name = line[6:].strip()
        return None


class WireParser(Protocol):
    """One wire format: SSE events in, our events out; `done` once the answer has ended."""

    done: bool

    def event(self, name: str, data: str) -> list[Event]: ...

    def end(self) -> list[Event]:
        """What the end of the stream adds (pending calls, Done), or IncompleteStreamError."""
        ...


def _error(provider: str, model: str, payload: Any) -> Exception:
    err = payload.get("error", payload) if isinstance(payload, dict) else {}
    if not isinstance(err, dict):
        err = {"message": str(err)}
    return from_status(None, str(err.get("message") or "error event"), err.get("type") or err.get("code"),
                       model=model, provider=provider)


class _Calls:
    """Tool calls being streamed, by index: their arguments arrive in pieces, interleaved.

    `answer`: the name of the tool a schema request forced (#30). Its call is the answer itself,
    so its arguments stream as the answer's text, not as a call for the caller to run.
    """

    def __init__(self, answer: str | None = None) -> None:
        self.open: dict[int, tuple[str, str, list[str]]] = {}
        self.answer = answer
        self.as_text: set[int] = set()
        self.called = False  # a call other than the answer was made: the answer goes on after it

    def start(self, index: int, call_id: str, name: str) -> list[Event]:
        if name and name == self.answer:
            self.as_text.add(index)
            return []
        self.open[index] = (call_id, name, [])
        self.called = True
        return [ToolCallStart(index, call_id, name)]

    def piece(self, index: int, text: str) -> Event:
        if index in self.as_text:
            return TextDelta(text)
        self.open[index][2].append(text)
        return ToolCallDelta(index, text)

    def complete(self, index: int) -> ToolCall:
        call_id, name, pieces = self.open.pop(index)
        return ToolCall(call_id, name, "".join(pieces) or "{}", index)

    def complete_all(self) -> Iterator[ToolCall]:
        for index in sorted(self.open):
            yield self.complete(index)

    def finish(self, reason: str | None) -> str | None:
        """The answer's finish reason: a forced answer tool ended it as any answer ends (not as a call)."""
        return "stop" if self.as_text and not self.called and reason in ("tool_calls", "tool_use") else reason

    def knows(self, index: Any) -> bool:
        return index in self.open or index in self.as_text


def _openai_tool_deltas(calls: _Calls, deltas: list[dict[str, Any]]) -> list[Event]:
    out: list[Event] = []
    for position, tc in enumerate(deltas):
        index = tc.get("index", position)
        fn = tc.get("function") or {}
        if not calls.knows(index):
            out += calls.start(index, tc.get("id") or f"call_{index}", fn.get("name") or "")
        if fn.get("arguments"):
            out.append(calls.piece(index, fn["arguments"]))
    return out


_NONE: list[Event] = []


class OpenAIParser:
    """`chat.completion.chunk` objects → events; `[DONE]` or a finish_reason ends the answer.

    Tool calls come as `tool_calls` deltas keyed by index (several calls may interleave);
    each is complete when the answer is. `answer_tool`: see _Calls.
    """

    def __init__(self, *, provider: str, model: str, answer_tool: str | None = None) -> None:
        self.provider, self.model = provider, model
        self.done = False
        self.finish: str | None = None
        self.calls = _Calls(answer_tool)

    def event(self, name: str, data: str) -> list[Event]:
        if data.startswith("[DONE]"):
            self.done = True
            return _NONE
        chunk = _loads(data)
        if "error" in chunk:
            raise _error(self.provider, self.model, chunk)
        out: list[Event] = []
        usage = chunk.get("usage")
        if usage:
            cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
            out.append(Usage(usage.get("prompt_tokens"), usage.get("completion_tokens"), cached))
        choices = chunk.get("choices")
        if not choices:
            return out
        choice = choices[0]
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            out.append(ReasoningDelta(reasoning))
        content = delta.get("content")
        if content:
            out.append(TextDelta(content))
        if "tool_calls" in delta and delta["tool_calls"]:
            out += _openai_tool_deltas(self.calls, delta["tool_calls"])
        if choice.get("finish_reason"):
            self.finish = choice["finish_reason"]
        return out

    def end(self) -> list[Event]:
        if self.finish is None:
            raise IncompleteStreamError(f"the {self.provider} stream ended before the answer was complete",
                                        hint="the partial answer was kept; retry")
        return [*self.calls.complete_all(), Done(self.calls.finish(self.finish))]


class AnthropicParser:
    """Messages API events → events; `message_stop` ends the answer. `answer_tool`: see _Calls."""

    def __init__(self, *, provider: str, model: str, answer_tool: str | None = None) -> None:
        self.provider, self.model = provider, model
        self.done = False
        self.input_tokens: int | None = None
        self.cached: int | None = None
        self.written: int | None = None
        self.finish: str | None = None
        self.calls = _Calls(answer_tool)

    def event(self, name: str, data: str) -> list[Event]:
        loads = _loads
        if name == "content_block_delta":
            event = loads(data)
            delta = event["delta"]
            kind = delta.get("type")
            if kind == "text_delta" and delta.get("text"):
                return [TextDelta(delta["text"])]
            if kind == "thinking_delta" and delta.get("thinking"):
                return [ReasoningDelta(delta["thinking"])]
            if kind == "input_json_delta" and delta.get("partial_json") and self.calls.knows(event.get("index")):
                return [self.calls.piece(event["index"], delta["partial_json"])]
        elif name == "content_block_start":
            event = json.loads(data)  # its tool input is passed on whole: exactly as sent
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = event.get("index", 0)
                out = self.calls.start(index, block.get("id") or "", block.get("name") or "")
                if block.get("input"):  # a server may send the whole input here instead of deltas
                    out.append(self.calls.piece(index, json.dumps(block["input"])))
                return out
        elif name == "content_block_stop":
            index = loads(data).get("index")
            if index in self.calls.open:
                return [self.calls.complete(index)]
        elif name == "message_start":
            usage = loads(data).get("message", {}).get("usage") or {}
            self.cached = usage.get("cache_read_input_tokens")
            self.written = usage.get("cache_creation_input_tokens")
            if usage.get("input_tokens") is not None:  # Anthropic counts cache reads and writes apart
                self.input_tokens = usage["input_tokens"] + (self.cached or 0) + (self.written or 0)
        elif name == "message_delta":
            event = loads(data)
            self.finish = (event.get("delta") or {}).get("stop_reason") or self.finish
            return [Usage(self.input_tokens, (event.get("usage") or {}).get("output_tokens"), self.cached, self.written)]
        elif name == "message_stop":
            self.done = True
            return [Done(self.calls.finish(self.finish))]
        elif name == "error":
            raise _error(self.provider, self.model, loads(data))
        return _NONE

    def end(self) -> list[Event]:
        if not self.done:
            raise IncompleteStreamError(f"the {self.provider} stream ended before message_stop",
                                        hint="the partial answer was kept; retry")
        return _NONE


class Reader:
    """Decoded text in, events out: lines → SSE events → `parser`. Push-based, so a blocking and
    an asyncio stream share it."""

    def __init__(self, parser: WireParser) -> None:
        self.parser = parser
        self.split = LineSplitter()
        self.sse = SseAssembler()
        self._failed: Exception | None = None  # raised by close(), after the events read before it

    @property
    def done(self) -> bool:
        """The answer ended, or the stream failed: nothing more is read."""
        return self.parser.done or self._failed is not None

    def feed(self, chunk: str) -> list[Event]:
        return self._take(self.split.feed(chunk))

    def close(self) -> list[Event]:
        """The end of the stream: a last line without its newline, a last event without its blank
        line, then what the parser adds (or its IncompleteStreamError)."""
        out = [] if self.done else self._take([*self.split.close(), ""])
        if self._failed is not None:
            raise self._failed
        return out + self.parser.end()

    def _take(self, lines: Iterable[str]) -> list[Event]:
        """The events in `lines`. A fault (an error event, a malformed chunk) is kept for close():
        the text that came before it in the same read is delivered first, not lost with it."""
        out: list[Event] = []
        try:
            for line in lines:
                item = self.sse.line(line)
                if item is not None:
                    out += self.parser.event(*item)
                    if self.parser.done:
                        break
        except Exception as exc:
            self._failed = exc
        return out


def joined(events: list[Event]) -> list[Event]:
    """The events of one read with each run of text deltas as one delta (its `pieces` counted), and
    each run of reasoning deltas as one, so a read that brought several tokens costs one event
    downstream — one pass through the turn, one frame to the client — not one per token. Serve's
    streams read this way; at `--coalesce-ms` a read holds several tokens."""
    if len(events) < 2:
        return events
    out: list[Event] = []
    run: list[Any] = []
    for event in events:
        kind = type(event)
        if kind is TextDelta or kind is ReasoningDelta:
            if run and type(run[0]) is not kind:
                out.append(_one(run))
                run = []
            run.append(event)
            continue
        if run:
            out.append(_one(run))
            run = []
        out.append(event)
    if run:
        out.append(_one(run))
    return out


def _one(run: list[Any]) -> Event:
    if len(run) == 1:
        return cast(Event, run[0])
    text = "".join([d.text for d in run])
    if type(run[0]) is ReasoningDelta:
        return ReasoningDelta(text)
    return TextDelta(text, sum([d.pieces for d in run]))


def events(chunks: Iterable[str], parser: WireParser) -> Iterator[Event]:
    """A blocking stream's text → events."""
    reader = Reader(parser)
    for chunk in chunks:
        yield from reader.feed(chunk)
        if reader.done:
            break
    yield from reader.close()


async def aevents(chunks: AsyncIterable[str], parser: WireParser) -> AsyncIterator[Event]:
    """An asyncio stream's text → events (the same reader), each read's text deltas `joined`."""
    reader = Reader(parser)
    async for chunk in chunks:
        for event in joined(reader.feed(chunk)):
            yield event
        if reader.done:
            break
    for event in reader.close():
        yield event
