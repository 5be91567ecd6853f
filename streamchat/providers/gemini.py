"""Google Gemini (the Gemini API) through the official `google-genai` SDK.

The SDK makes the request (key header, base URL, `alt=sse`) and parses each streamed
`GenerateContentResponse`; this module turns our messages into its `contents` and its chunks
into our events. Its HTTP client is one of ours (httpx2, as the other SDKs'), so a transport fault
maps as theirs do, and each answer's response is known: closing the stream or a cancel closes it
at once. Automatic function calling is off: tools run in streamchat's own loop, after approval.

`astream` is the same on asyncio (serve: no thread per answer), through the SDK's `client.aio`
on an httpx2 `AsyncClient`, built on first use: its response hook finds the answer's list through
a context variable (the task's), so closing the generator or cancelling the task closes it.
"""

from __future__ import annotations

import contextvars
import json
import re
import threading
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from types import ModuleType
from typing import Any

from streamchat.cancel import closing_on_cancel
from streamchat.config import ProviderConfig
from streamchat.errors import (
    BadRequestError,
    IncompleteStreamError,
    ProtocolError,
    StreamchatError,
    from_status,
    map_transport,
    unexpected,
)
from streamchat.events import Done, Event, Message, ReasoningDelta, TextDelta, ToolCall, ToolCallDelta, ToolCallStart, Usage
from streamchat.providers._content import MB, _input, check_sizes, without_tool_steps
from streamchat.providers._schema import refused_schema
from streamchat.providers._sdk import _cut, import_sdk
from streamchat.providers.base import ChatRequest, EventStream
from streamchat.providers.options import Option, table, to_wire
from streamchat.providers.registry import spec_for

# The generation options streamchat passes on (-o NAME=VALUE; `streamchat models --options gemini`).
OPTIONS = table(
    Option("top_p", "float", "nucleus sampling: the probability mass to sample from", 0, 1),
    Option("top_k", "int", "sample only from the K likeliest tokens", 1),
    Option("seed", "int", "sample deterministically (best effort)"),
    Option("stop", "stops", "stop before any of these strings", most=5, field="stop_sequences"),
    Option("presence_penalty", "float", "penalize tokens that already appeared", -2, 2),
    Option("frequency_penalty", "float", "penalize tokens by how often they appeared", -2, 2),
    Option("thinking_budget", "int", "tokens the model may think (0: off where the model allows, -1: it decides)", -1),
)
# Thinking tokens per --reasoning level; its thoughts stream as reasoning (include_thoughts).
THINKING_BUDGET = {"low": 1024, "medium": 8192, "high": 24576}
FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}  # the rest lower-cased: "safety", "recitation", …
OUR_ID = "sc-"  # a call id streamchat made up (the API gave none): not sent back
OVERFLOW = re.compile(r"input token count.*exceeds the maximum", re.IGNORECASE)
_ARESPONSES: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("gemini_responses", default=None)


def gemini_contents(messages: tuple[Message, ...], *, tools: bool = True,
                    signatures: dict[str, bytes] | None = None) -> tuple[str | None, list[dict[str, Any]]]:
    """(system instruction, `contents`): attachments as `inline_data` parts before the text, tool
    calls as `function_call` parts, results as `function_response` parts of a user turn. Without
    `tools` in the request, earlier tool steps are sent as text."""
    system = "\n\n".join(m.content for m in messages if m.role == "system") or None
    names = {c.id: c.name for m in messages for c in m.tool_calls}
    signatures = signatures or {}
    out: list[dict[str, Any]] = []
    for m in messages if tools else without_tool_steps(messages):
        if m.role == "system":
            continue
        if m.role == "tool":
            response: dict[str, Any] = {"name": names.get(m.tool_call_id or "", ""),
                                        "response": {"error" if m.is_error else "result": m.content}}
            if m.tool_call_id and not m.tool_call_id.startswith(OUR_ID):
                response["id"] = m.tool_call_id
            part = {"function_response": response}
            if out and out[-1]["role"] == "user" and all("function_response" in p for p in out[-1]["parts"]):
                out[-1]["parts"].append(part)
            else:
                out.append({"role": "user", "parts": [part]})
            continue
        parts: list[dict[str, Any]] = [{"inline_data": {"mime_type": a.mime, "data": a.data}} for a in m.attachments]
        if m.content:
            parts.append({"text": m.content})
        for c in m.tool_calls:
            call: dict[str, Any] = {"name": c.name, "args": _input(c.arguments)}
            if not c.id.startswith(OUR_ID):
                call["id"] = c.id
            parts.append({"function_call": call, **({"thought_signature": signatures[c.id]} if c.id in signatures else {})})
        out.append({"role": "model" if m.role == "assistant" else "user", "parts": parts or [{"text": ""}]})
    return system, out


def gemini_config(request: ChatRequest, system: str | None) -> dict[str, Any]:
    """The request's `GenerateContentConfig`, as the dict the SDK validates."""
    config: dict[str, Any] = {"automatic_function_calling": {"disable": True}}
    if system:
        config["system_instruction"] = system
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.max_tokens is not None:
        config["max_output_tokens"] = request.max_tokens
    params = to_wire(OPTIONS, request.params)
    budget = params.pop("thinking_budget", THINKING_BUDGET.get(request.reasoning or "off"))
    if budget is not None:
        config["thinking_config"] = {"thinking_budget": budget, "include_thoughts": budget != 0}
    config.update(params)
    if request.tools:
        config["tools"] = [{"function_declarations": [
            {"name": t.name, **({"description": t.description} if t.description else {}),
             "parameters_json_schema": t.parameters} for t in request.tools]}]
        if request.tool_choice is not None:
            mode, name = request.tool_choice
            calling: dict[str, Any] = {"mode": {"required": "ANY", "tool": "ANY"}.get(mode, mode.upper())}
            if mode == "tool" and name:
                calling["allowed_function_names"] = [name]
            config["tool_config"] = {"function_calling_config": calling}
    if request.schema is not None:
        config["response_mime_type"] = "application/json"
        config["response_json_schema"] = request.schema.schema
    return config


class GeminiParser:
    """`GenerateContentResponse` chunks → events. A call arrives whole in one part; the answer is
    complete when a candidate says why it finished."""

    def __init__(self, signatures: dict[str, bytes]) -> None:
        self.finish: str | None = None
        self.calls = 0
        self.signatures = signatures  # call id → the thought signature Gemini wants back with it

    def chunk(self, response: Any) -> list[Event]:
        out: list[Event] = []
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason:
            raise BadRequestError(f"Gemini refused the prompt ({_name(feedback.block_reason).lower()})",
                                  hint="rephrase the question")
        for candidate in (response.candidates or [])[:1]:
            content = candidate.content
            for part in (content.parts if content is not None else None) or ():
                if part.function_call is not None:
                    out += self._call(part)
                elif part.text:
                    out.append(ReasoningDelta(part.text) if part.thought else TextDelta(part.text))
            if candidate.finish_reason:
                self.finish = _name(candidate.finish_reason)
        usage = response.usage_metadata
        if usage is not None:
            thoughts, answer = usage.thoughts_token_count, usage.candidates_token_count
            output = None if thoughts is None and answer is None else (thoughts or 0) + (answer or 0)
            out.append(Usage(usage.prompt_token_count, output, usage.cached_content_token_count))
        return out

    def _call(self, part: Any) -> list[Event]:
        call, index = part.function_call, self.calls
        self.calls += 1
        call_id = call.id or f"{OUR_ID}{uuid.uuid4().hex[:12]}"
        if part.thought_signature:
            self.signatures[call_id] = part.thought_signature
        arguments = json.dumps(call.args or {}, ensure_ascii=False)
        return [ToolCallStart(index, call_id, call.name or ""), ToolCallDelta(index, arguments),
                ToolCall(call_id, call.name or "", arguments, index)]

    def end(self) -> list[Event]:
        if self.finish is None:
            raise IncompleteStreamError("the gemini stream ended before the answer was complete",
                                        hint="the partial answer was kept; retry")
        reason = FINISH.get(self.finish, self.finish.lower())
        return [Done("tool_calls" if self.calls and reason == "stop" else reason)]


def _name(value: Any) -> str:
    """An SDK enum (or a string the SDK did not know) as its wire name."""
    return str(getattr(value, "value", value))


class GeminiProvider:
    """The Gemini API adapter (`[providers.NAME] type = "gemini"`)."""

    params = frozenset(OPTIONS)
    accepts = spec_for("gemini").accepts

    def __init__(self, config: ProviderConfig, *, timeout: float = 60.0) -> None:
        import httpx2

        self.name = config.name
        self.base_url = config.effective_base_url()[0]
        key = config.require_key()  # no key: said before the SDK's import (~1 s) is paid for
        self._genai: ModuleType = import_sdk("google.genai")
        self._errors: ModuleType = import_sdk("google.genai.errors")
        self._local = threading.local()  # the response of the answer this thread streams
        self.signatures: dict[str, bytes] = {}
        http = httpx2.Client(event_hooks={"response": [self._opened]})
        options: dict[str, Any] = {"timeout": int(timeout * 1000)}  # milliseconds
        if self.base_url:
            options["base_url"] = self.base_url
        self._key, self._options = key, {**options, "httpx_client": http}
        self._client = self._genai.Client(api_key=key, http_options=self._options)
        self._aio: Any = None  # the SDK's asyncio client (serve), built on first use
        self._ahttp: Any = None

    def _opened(self, response: Any) -> None:
        """httpx2's response hook: the answer's response, to close or cut (a cancel) from here."""
        holder = getattr(self._local, "responses", None)
        if holder is not None:
            holder.append(response)

    def prepare(self, model: str) -> None:
        """Nothing to warm: the SDK built its client and imported its types with the module."""

    def stream(self, request: ChatRequest) -> EventStream:
        check_sizes(request.messages, provider=self.name, image_max=20 * MB, document_max=20 * MB)
        system, contents = gemini_contents(request.messages, tools=bool(request.tools), signatures=self.signatures)
        config = gemini_config(request, system)
        parser = GeminiParser(self.signatures)
        responses: list[Any] = []
        chunks = self._client.models.generate_content_stream(model=request.model, contents=contents, config=config)

        def cut() -> None:  # a cancel: a read blocked on a stalled upstream returns at once
            for response in responses:
                _cut(response)

        try:
            with closing_on_cancel(cut):
                yield from self._events(chunks, parser, responses)
        finally:
            chunks.close()
            for response in responses:
                response.close()

    def _events(self, chunks: Iterator[Any], parser: GeminiParser, responses: list[Any]) -> EventStream:
        """The SDK sends the request on the first `next()`: the hook sees its response in this thread."""
        while True:
            self._local.responses = responses
            try:
                response = next(chunks, None)
            finally:
                self._local.responses = None
            if response is None:
                break
            yield from parser.chunk(response)
        yield from parser.end()

    def prepare_async(self) -> None:
        """Build the asyncio client (serve, at startup; else the first `astream`). httpx2's, not the
        SDK's aiohttp default: transport faults then map as the blocking path's do, and the SDK's
        own hidden retries of aiohttp connection errors do not stack on streamchat's."""
        if self._aio is None:
            import httpx2

            self._ahttp = httpx2.AsyncClient(event_hooks={"response": [self._aopened]})
            http_options = {**self._options, "httpx_async_client": self._ahttp}
            self._aio = self._genai.Client(api_key=self._key, http_options=http_options).aio

    async def _aopened(self, response: Any) -> None:
        holder = _ARESPONSES.get()
        if holder is not None:
            holder.append(response)

    async def aclose(self) -> None:
        """Close the asyncio client's pooled connections (serve, as a worker stops)."""
        if self._ahttp is not None:
            http, self._ahttp, self._aio = self._ahttp, None, None
            await http.aclose()

    async def astream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        """`stream` on asyncio: the same contents, config and parser through `client.aio`."""
        check_sizes(request.messages, provider=self.name, image_max=20 * MB, document_max=20 * MB)
        system, contents = gemini_contents(request.messages, tools=bool(request.tools), signatures=self.signatures)
        config = gemini_config(request, system)
        parser = GeminiParser(self.signatures)
        self.prepare_async()
        responses: list[Any] = []
        chunks: AsyncIterator[Any] = await self._aio.models.generate_content_stream(
            model=request.model, contents=contents, config=config)
        try:
            while True:
                seen = _ARESPONSES.set(responses)  # the request goes out on the first step
                try:
                    response = await anext(chunks, None)
                finally:
                    _ARESPONSES.reset(seen)
                if response is None:
                    break
                for event in parser.chunk(response):
                    yield event
            for event in parser.end():
                yield event
        finally:
            for response in responses:
                await response.aclose()
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()

    def list_models(self) -> list[str]:
        return sorted(m.name.removeprefix("models/") for m in self._client.models.list()
                      if m.name and "generateContent" in (m.supported_actions or ["generateContent"]))

    def map_error(self, exc: Exception, *, model: str, started: bool) -> StreamchatError:
        if isinstance(exc, StreamchatError):
            return exc
        if isinstance(exc, self._errors.APIError):
            message = exc.message or None
            status = exc.code if isinstance(exc.code, int) and exc.code != 200 else None
            return refused_schema(from_status(status, message, exc.status, model=model, provider=self.name,
                                              retry_after=_retry_delay(exc.details),
                                              context_overflow=bool(message and OVERFLOW.search(message))), message)
        if isinstance(exc, self._errors.UnknownApiResponseError):  # a chunk that is not JSON
            return ProtocolError(f"{self.name} sent a malformed stream chunk", hint="the server or proxy is misbehaving; retry")
        mapped = map_transport(exc, provider=self.name, base_url=self.base_url, started=started)
        return mapped or unexpected(exc, self.name)


def _retry_delay(details: Any) -> float | None:
    """Seconds from Google's RetryInfo (`"retryDelay": "17s"`) in an error body, when it has one."""
    error = details.get("error", details) if isinstance(details, dict) else None
    for item in (error.get("details") if isinstance(error, dict) else None) or ():
        delay = item.get("retryDelay") if isinstance(item, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                return None
    return None
