"""A scriptable streaming server speaking the OpenAI, Anthropic and Gemini SSE wire formats.

The test suite starts it on 127.0.0.1 and points the real SDKs at it. A `Script`,
registered under a model name, says what to stream and how: chunking down to single
bytes, delays, a gate the test opens, HTTP errors and mid-stream faults. The server
records every request body and counts client disconnects.

Structured output (#30): model "echo" (or any unscripted "claude-…" name, for the models with
Anthropic's native structured output), asked for a schema (OpenAI `response_format` json_schema
or json_object, a forced function tool; Anthropic `output_config.format` or a forced tool),
answers a small valid instance of it (tests/schema_instance.py), streamed in small pieces as
content or as the tool's arguments / input_json_delta, as each API does. A marker anywhere in the request's messages changes that:
  [schema:missing-once]      the first request carrying it (since the last reset) answers an
                             instance without its first required property; later ones a valid one
  [schema:bad-json-once]     the same, but the first answer is invalid JSON (the instance cut in half)
  [schema:missing-always]    every answer misses the first required property
  [schema:no-response-format]  a request with `response_format` (Anthropic: `output_config`) is
                             refused (HTTP 400 naming it), as by a server or model without structured
                             output; forced tools work

Prompt caching: an Anthropic request whose blocks carry `cache_control` is counted as the API
counts it (`cache_usage`): its usage reports cache writes, and reads of a prefix an earlier
request cached (reset() forgets them); more than 4 marks is a 400. `Script.cached` makes an
OpenAI answer report cached input tokens.

Gemini (`POST /v1beta/models/MODEL:streamGenerateContent?alt=sse`, or `/v1/`): the same scripts, streamed as
GenerateContentResponse chunks (`candidates[0].content.parts`, thoughts as `thought: true` parts,
whole `functionCall` parts, `usageMetadata` and `finishReason` on the last); errors as Google's
JSON error body (`{"error": {"code", "message", "status"}}`); model "echo" says the last user
text back; `generationConfig.responseJsonSchema` (or `responseSchema`) is answered with an instance.
"""

from __future__ import annotations

import hashlib
import json
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from schema_instance import instance


class ClientGone(Exception):
    pass


@dataclass
class Script:
    chunks: list[str] = field(default_factory=lambda: ["Hello", ", ", "world", "!"])
    reasoning: list[str] = field(default_factory=list)
    delay: float = 0.0  # seconds between chunks
    first_delay: float = 0.0  # before the response headers
    status: int = 200
    error_type: str | None = None
    error_message: str = "scripted error"
    headers: dict[str, str] = field(default_factory=dict)
    fault: str | None = None  # drop | malformed | error_event | no_done | stall
    fault_after: int = 0  # text chunks sent before the fault
    finish_reason: str | None = None  # default: stop / end_turn
    byte_split: int | None = None  # write each event in pieces of this many bytes
    gate: threading.Event | None = None  # wait for it after the first chunk
    usage: tuple[int, int] | None = (7, 0)  # (input, output); output 0 → number of chunks
    fail_first: int | None = None  # the HTTP error status applies to this many attempts, then it streams
    tool_calls: list[tuple[str, str, dict[str, Any] | str]] = field(default_factory=list)  # (id, name, arguments: a dict or its JSON text)
    tool_split: int = 5  # arguments JSON sent in pieces of this many characters (interleaved for OpenAI)
    repeat_tools: bool = False  # ask for the calls again even after results came back (a runaway loop)
    keep_alive: bool = False  # leave the connection open after the answer, for the client's pool
    hold: threading.Event | None = None  # after the last event, wait for it (≤ 30 s) before ending the body
    context_limit: int | None = None  # refuse a prompt over this many tokens (4 characters each) with the API's
    # own context-length error; the usage then reports the prompt's count as its input tokens
    cached: int = 0  # OpenAI: of the input, tokens its automatic prompt cache read (prompt_tokens_details)


@dataclass
class Record:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    raw: bytes = b""  # the body as it came


class FakeLLMServer:
    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        self.scripts: dict[str, Script] = {}
        self.requests: list[Record] = []
        self.disconnects: list[float] = []
        self.completed = 0
        self.completed_models: list[str] = []  # the model of each completed answer, in order
        self.attempts: dict[str, int] = {}
        self.connections = 0  # accepted since the last reset
        self.ended = 0  # connections closed since the last reset, by either side
        self.prompt_cache: dict[str, int] = {}  # Anthropic: prefixes cached (by hash) → their tokens
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"owner": self})
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        if tls is not None:  # a certificate nobody trusts: for the TLS-error tests
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.url = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)  # stop() waits a poll: 0.5 s by default

    def start(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def reset(self) -> None:
        with self._lock:
            self.scripts.clear()
            self.requests.clear()
            self.disconnects.clear()
            self.attempts.clear()
            self.completed = 0
            self.completed_models.clear()
            self.connections = 0
            self.ended = 0
            self.prompt_cache.clear()

    def script(self, model: str, script: Script | None = None, **kwargs: Any) -> Script:
        script = script or Script(**kwargs)
        self.scripts[model] = script
        return script

    def wait_disconnect(self, timeout: float = 5.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.disconnects:
                return True
            time.sleep(0.01)
        return False

    def last_messages(self) -> list[dict[str, Any]]:
        return self.requests[-1].body["messages"]


def tool_results(body: dict[str, Any]) -> list[str] | None:
    """The tool results at the end of a request (either wire format), or None when it ends with a question."""
    messages = body.get("messages") or []
    if not messages:
        return None
    last = messages[-1]
    if last.get("role") == "tool":
        results = []
        for m in reversed(messages):
            if m.get("role") != "tool":
                break
            results.insert(0, m.get("content") or "")
        return results
    content = last.get("content")
    if last.get("role") == "user" and isinstance(content, list) and content and content[0].get("type") == "tool_result":
        return [b.get("content") if isinstance(b.get("content"), str) else json.dumps(b.get("content")) for b in content]
    return None


def _has_tool_blocks(body: dict[str, Any]) -> bool:
    return any(isinstance(m.get("content"), list) and any(b.get("type") in ("tool_use", "tool_result")
                                                        for b in m["content"])
               for m in body.get("messages") or [])


def _after_tools(script: Script, results: list[str]) -> Script:
    text = "got: " + " | ".join(results)
    return Script(chunks=[text[i : i + 6] for i in range(0, len(text), 6)], delay=script.delay, usage=script.usage,
                  first_delay=script.first_delay)


def _text_chars(content: Any) -> int:
    """The characters of text in a message's content (a string or blocks)."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(_text_chars(b.get("text") or b.get("content") or "") for b in content if isinstance(b, dict))
    return 0


def prompt_tokens(body: dict[str, Any]) -> int:
    """A request's prompt size as the fake server counts it: its text, 4 characters a token."""
    return (_text_chars(body.get("system")) + sum(_text_chars(m.get("content")) for m in body.get("messages") or [])) // 4


def _overflow(flavor: str, tokens: int, limit: int) -> tuple[str | None, str]:
    """(error type, message) as each API words a prompt over the model's window."""
    if flavor == "anthropic":
        return "invalid_request_error", f"prompt is too long: {tokens} tokens > {limit} maximum"
    return "context_length_exceeded", (f"This model's maximum context length is {limit} tokens. However, your messages "
                                       f"resulted in {tokens} tokens. Please reduce the length of the messages.")


def _echo_script(body: dict[str, Any]) -> Script:
    last = body["messages"][-1]["content"]
    if isinstance(last, list):
        last = "".join(part.get("text", "") for part in last)
    text = f"echo: {last}"
    return Script(chunks=[text[i : i + 4] for i in range(0, len(text), 4)])


def _arguments_text(args: dict[str, Any] | str) -> str:
    return args if isinstance(args, str) else json.dumps(args)


SCHEMA_MARKERS = ("[schema:missing-once]", "[schema:bad-json-once]", "[schema:missing-always]")
NO_RESPONSE_FORMAT = "[schema:no-response-format]"


def _said(body: dict[str, Any]) -> str:
    """All the text of a request's messages (where the markers are looked for)."""
    parts = []
    for m in body.get("messages") or []:
        content = m.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [b.get("text") or "" for b in content if isinstance(b, dict)]
    return "\n".join(parts)


def schema_asked(body: dict[str, Any], flavor: str) -> tuple[str, str, dict[str, Any]] | None:
    """(how the answer is wanted: "content" or "tool", the schema's name, the schema) or None."""
    choice = body.get("tool_choice")
    tools = body.get("tools") or []
    if flavor == "anthropic":
        native = (body.get("output_config") or {}).get("format") or {}
        if native.get("type") == "json_schema":
            return "content", "answer", native.get("schema") or {}
        if isinstance(choice, dict) and choice.get("type") == "tool":
            tool = next((t for t in tools if t.get("name") == choice.get("name")), None)
            return ("tool", tool["name"], tool.get("input_schema") or {}) if tool else None
        return None
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        tool = next((t["function"] for t in tools if (t.get("function") or {}).get("name") == name), None)
        return ("tool", name, tool.get("parameters") or {}) if tool else None
    wanted = body.get("response_format") or {}
    if wanted.get("type") == "json_schema":
        spec = wanted.get("json_schema") or {}
        return "content", spec.get("name") or "answer", spec.get("schema") or {}
    if wanted.get("type") == "json_object":
        return "content", "json_object", {"type": "object"}
    return None


def _schema_script(owner: FakeLLMServer, body: dict[str, Any], asked: tuple[str, str, dict[str, Any]]) -> Script:
    """The answer to a schema request: an instance of it, or what a marker asks for instead."""
    how, name, schema = asked
    value = instance(schema)
    said = _said(body)
    marker = next((m for m in SCHEMA_MARKERS if m in said), None)
    bad = marker == "[schema:missing-always]"
    if marker is not None and marker.endswith("-once]"):
        with owner._lock:
            seen = owner.attempts[marker] = owner.attempts.get(marker, 0) + 1
        bad = seen == 1
    text = json.dumps(value)
    if bad and marker == "[schema:bad-json-once]":
        text = text[: len(text) // 2]
    elif bad and isinstance(value, dict) and schema.get("required"):
        value.pop(schema["required"][0], None)
        text = json.dumps(value)
    if how == "tool":
        return Script(chunks=[], tool_calls=[("call_answer", name, text)], tool_split=4)
    return Script(chunks=[text[i : i + 4] for i in range(0, len(text), 4)])


CACHE_MINIMUM = 1024  # tokens (estimated as characters / 4): the least prefix Sonnet and Opus cache
CACHE_LOOKBACK = 20  # blocks before a mark where the API still finds an earlier cached prefix


def cache_usage(owner: FakeLLMServer, body: dict[str, Any]) -> tuple[int, int, int] | None:
    """(input, cache writes, cache reads) as Anthropic counts them for a request that marks blocks
    with cache_control; None when it marks none. As the API does: the prefix up to each mark is
    cached when long enough; a request reads the longest cached prefix ending at one of its marks
    or up to 20 blocks before one, and writes the rest up to its last long-enough mark."""
    blocks: list[tuple[str, bool, int]] = []  # (the block as cached: without its mark, whether marked, characters)

    def add(where: str, block: dict[str, Any]) -> None:
        plain = {k: v for k, v in block.items() if k != "cache_control"}
        text = json.dumps(plain, sort_keys=True)
        size = len(text) if where == "tool" else _text_chars([plain])  # counted as prompt_tokens counts
        blocks.append((where + text, "cache_control" in block, size))

    for tool in body.get("tools") or []:
        add("tool", tool)
    system = body.get("system")
    for block in [{"type": "text", "text": system}] if isinstance(system, str) else system or []:
        add("system", block)
    for m in body.get("messages") or []:
        content = m.get("content")
        for block in [{"type": "text", "text": content}] if isinstance(content, str) else content or []:
            add(m.get("role", ""), block)
    marks = [i for i, (_, marked, _) in enumerate(blocks) if marked]
    if not marks:
        return None
    keys, ends, digest, size = [], [], hashlib.sha256(), 0
    for text, _, chars in blocks:
        digest.update(text.encode())
        size += chars
        keys.append(digest.hexdigest())
        ends.append(size // 4)
    read = 0
    for mark in marks:
        hit = next((j for j in range(mark, max(-1, mark - CACHE_LOOKBACK), -1) if keys[j] in owner.prompt_cache), None)
        if hit is not None:
            read = max(read, ends[hit])
    cacheable = [m for m in marks if ends[m] >= CACHE_MINIMUM]
    with owner._lock:
        owner.prompt_cache.update({keys[m]: ends[m] for m in cacheable})
    written = max(0, max((ends[m] for m in cacheable), default=0) - read)
    return ends[-1] - read - written, written, read


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # the default backlog of 5 drops SYNs under load tests


class _Handler(BaseHTTPRequestHandler):
    owner: FakeLLMServer
    protocol_version = "HTTP/1.1"
    cache_usage: tuple[int, int, int] | None = None  # this request's, when it marks cache breakpoints

    def log_message(self, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.owner._lock:
            self.owner.connections += 1

    def finish(self) -> None:
        super().finish()
        with self.owner._lock:
            self.owner.ended += 1

    # -- plumbing ------------------------------------------------------------------------
    def _wait(self, seconds: float) -> None:
        """Sleep, but notice at once if the client hangs up."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select([self.connection], [], [], min(left, 0.05))
            if ready:
                try:
                    data = self.connection.recv(1, socket.MSG_PEEK)
                except OSError:
                    data = b""
                if not data:
                    raise ClientGone()

    def _send_chunk(self, data: bytes, split: int | None) -> None:
        pieces = [data[i : i + split] for i in range(0, len(data), split)] if split else [data]
        try:
            for piece in pieces:
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.flush()
                if split:
                    time.sleep(0.0005)  # let each piece leave as its own TCP segment
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ClientGone() from exc

    def _end_body(self, script: Script) -> None:
        if script.hold is not None:
            script.hold.wait(30)
        self._send_chunk(b"", None)

    def _start_stream(self, keep_alive: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        if not keep_alive:
            self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = not keep_alive

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    # -- routes --------------------------------------------------------------------------
    def do_GET(self) -> None:
        if "x-goog-api-key" in self.headers:  # Gemini's list (its SDK's API version: /v1 or /v1beta)
            self._json(200, {"models": [{"name": f"models/{m}", "supportedGenerationMethods": ["generateContent"]}
                                        for m in sorted(self.owner.scripts) + ["echo"]]})
        elif self.path == "/_counts":  # for benchmarks that run this server in its own process
            with self.owner._lock:
                self._json(200, {"completed": self.owner.completed, "disconnects": len(self.owner.disconnects)})
        elif self.path.rstrip("/").endswith("/models"):
            models = sorted(self.owner.scripts) + ["echo"]
            self._json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "test", "type": "model",
                 "display_name": m, "created_at": "2025-01-01T00:00:00Z"} for m in models]})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        body = json.loads(raw or b"{}")
        owner = self.owner
        with owner._lock:
            owner.requests.append(Record(self.path, body, {k.lower(): v for k, v in self.headers.items()}, raw))
        if ":streamGenerateContent" in self.path:
            self._gemini(body)
            return
        flavor = "anthropic" if self.path.endswith("/messages") else "openai"
        model = body.get("model", "")
        script = owner.scripts.get(model) or (_echo_script(body) if model == "echo" else None)
        asked = schema_asked(body, flavor)
        if asked is not None and (model == "echo" or (model.startswith("claude-") and model not in owner.scripts)):
            refused = "response_format" if "response_format" in body else "output_config" if "output_config" in body else None
            if refused and NO_RESPONSE_FORMAT in _said(body):
                self._error(flavor, 400, "invalid_request_error", f"{refused} is not supported by this server", {})
                return
            script = _schema_script(owner, body, asked)
        if script is not None and script.tool_calls and not script.repeat_tools:
            results = tool_results(body)
            if results is not None:
                script = _after_tools(script, results)
        try:
            if script is None:
                self._error(flavor, 404, "not_found_error", f"model '{model}' not found", {})
                return
            if flavor == "anthropic" and "tools" not in body and _has_tool_blocks(body):  # as the real API refuses
                self._error(flavor, 400, "invalid_request_error",
                            "Requests which include `tool_use` or `tool_result` blocks must define tools.", {})
                return
            if script.context_limit is not None:
                tokens = prompt_tokens(body)
                if tokens > script.context_limit:
                    etype, message = _overflow(flavor, tokens, script.context_limit)
                    self._error(flavor, 400, etype, message, {})
                    return
                script = replace(script, usage=(tokens, script.usage[1] if script.usage else 0))
            marks = json.dumps(body).count('"cache_control"') if flavor == "anthropic" else 0
            if marks > 4:  # as the real API refuses
                self._error(flavor, 400, "invalid_request_error",
                            f"A maximum of 4 blocks with cache_control may be provided. Found {marks}.", {})
                return
            self.cache_usage = cache_usage(owner, body) if marks else None
            self._play(flavor, script, model, self._stream_anthropic if flavor == "anthropic" else self._stream_openai)
        except ClientGone:
            with owner._lock:
                owner.disconnects.append(time.monotonic())
            self.close_connection = True

    def _play(self, flavor: str, script: Script, model: str, stream: Callable[[Script, str], None]) -> None:
        """The scripted answer once the request passed its checks: its delay, its failures, its stream."""
        owner = self.owner
        if script.first_delay:
            self._wait(script.first_delay)
        with owner._lock:
            attempt = owner.attempts[model] = owner.attempts.get(model, 0) + 1
        failing = script.fail_first is None or attempt <= script.fail_first
        if script.status != 200 and failing:
            self._error(flavor, script.status, script.error_type, script.error_message, script.headers)
            return
        self._start_stream(script.keep_alive)
        stream(script, model)
        with owner._lock:
            owner.completed += 1
            owner.completed_models.append(model)

    def _error(self, flavor: str, status: int, etype: str | None, message: str, headers: dict[str, str]) -> None:
        if flavor == "gemini":
            payload: dict[str, Any] = {"error": {"code": status, "message": message,
                                                 "status": etype or GOOGLE_STATUS.get(status, "UNKNOWN")}}
            if "Retry-After" in headers:  # Google says it in the body: RetryInfo's retryDelay
                payload["error"]["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                                "retryDelay": f"{headers['Retry-After']}s"}]
                headers = {k: v for k, v in headers.items() if k != "Retry-After"}
        elif flavor == "anthropic":
            payload = {"type": "error", "error": {"type": etype or "api_error", "message": message}}
        else:
            payload = {"error": {"message": message, "type": etype or "api_error", "code": etype}}
        self._json(status, payload, headers)

    def _chunks_with_faults(self, script: Script, emit_text, emit_fault) -> bool:
        """Emit text chunks; returns False when a fault ended the stream early."""
        for i, text in enumerate(script.chunks):
            if script.fault and i == script.fault_after:
                emit_fault()
                return False
            emit_text(text)
            if i == 0 and script.gate is not None:
                while not script.gate.is_set():
                    self._wait(0.02)
            if script.delay:
                self._wait(script.delay)
        if script.fault and script.fault_after >= len(script.chunks):
            emit_fault()
            return False
        return True

    def _fault(self, script: Script, send, error_event: bytes) -> None:
        fault = script.fault
        if fault == "drop":
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        elif fault == "malformed":
            send(b'event: content_block_delta\ndata: {"oops\n\n')
            self._send_chunk(b"", None)
        elif fault == "error_event":
            send(error_event)
            self._send_chunk(b"", None)
        elif fault == "no_done":
            self._send_chunk(b"", None)
        elif fault == "stall":
            self._wait(3600)

    # -- OpenAI --------------------------------------------------------------------------
    def _stream_openai(self, script: Script, model: str) -> None:
        created = int(time.time())

        def send(raw: bytes) -> None:
            self._send_chunk(raw, script.byte_split)

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> None:
            payload = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": created,
                       "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
            send(b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n")

        chunk({"role": "assistant", "content": ""})
        for r in script.reasoning:
            chunk({"reasoning_content": r})
        error_event = b'data: {"error": {"message": "' + script.error_message.encode() + b'", "type": "' + \
            (script.error_type or "server_error").encode() + b'"}}\n\n'
        ok = self._chunks_with_faults(script, lambda t: chunk({"content": t}),
                                      lambda: self._fault(script, send, error_event))
        if not ok:
            return
        if script.tool_calls:
            pieces = [[args[i : i + script.tool_split] for i in range(0, len(args), script.tool_split)]
                      for args in (_arguments_text(c[2]) for c in script.tool_calls)]
            for index, (call_id, name, _args) in enumerate(script.tool_calls):
                chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                       "function": {"name": name, "arguments": ""}}]})
            while any(pieces):  # round robin: the calls' arguments interleave
                for index, rest in enumerate(pieces):
                    if rest:
                        chunk({"tool_calls": [{"index": index, "function": {"arguments": rest.pop(0)}}]})
        chunk({}, script.finish_reason or ("tool_calls" if script.tool_calls else "stop"))
        if script.usage:
            out = script.usage[1] or len(script.chunks)
            payload = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": created, "model": model,
                       "choices": [], "usage": {"prompt_tokens": script.usage[0], "completion_tokens": out,
                                                 "total_tokens": script.usage[0] + out}}
            if script.cached:
                payload["usage"]["prompt_tokens_details"] = {"cached_tokens": script.cached}
            send(b"data: " + json.dumps(payload).encode() + b"\n\n")
        send(b"data: [DONE]\n\n")
        self._end_body(script)

    # -- Anthropic -----------------------------------------------------------------------
    def _stream_anthropic(self, script: Script, model: str) -> None:
        def send(raw: bytes) -> None:
            self._send_chunk(raw, script.byte_split)

        def event(name: str, data: dict[str, Any]) -> None:
            send(f"event: {name}\ndata: ".encode() + json.dumps(data, ensure_ascii=False).encode() + b"\n\n")

        usage_in = script.usage[0] if script.usage else 0
        usage: dict[str, Any] = {"input_tokens": usage_in, "output_tokens": 1}
        if self.cache_usage is not None:  # the request marked cache breakpoints: count as the API would
            usage_in, written, read = self.cache_usage
            usage.update(input_tokens=usage_in, cache_creation_input_tokens=written, cache_read_input_tokens=read)
        event("message_start", {"type": "message_start", "message": {
            "id": "msg_test", "type": "message", "role": "assistant", "content": [], "model": model,
            "stop_reason": None, "stop_sequence": None, "usage": usage}})
        index = 0
        if script.reasoning:
            event("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
            for r in script.reasoning:
                event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                              "delta": {"type": "thinking_delta", "thinking": r}})
            event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "signature_delta", "signature": "sig"}})
            event("content_block_stop", {"type": "content_block_stop", "index": 0})
            index = 1
        event("content_block_start", {"type": "content_block_start", "index": index,
                                      "content_block": {"type": "text", "text": ""}})
        error_event = ("event: error\ndata: " + json.dumps({"type": "error", "error": {
            "type": script.error_type or "overloaded_error", "message": script.error_message}}) + "\n\n").encode()
        ok = self._chunks_with_faults(
            script,
            lambda t: event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                    "delta": {"type": "text_delta", "text": t}}),
            lambda: self._fault(script, send, error_event))
        if not ok:
            return
        event("content_block_stop", {"type": "content_block_stop", "index": index})
        for call_id, name, args in script.tool_calls:
            index += 1
            event("content_block_start", {"type": "content_block_start", "index": index,
                                          "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}}})
            text = _arguments_text(args)
            for i in range(0, len(text), script.tool_split):
                event("content_block_delta", {"type": "content_block_delta", "index": index,
                                              "delta": {"type": "input_json_delta", "partial_json": text[i : i + script.tool_split]}})
            event("content_block_stop", {"type": "content_block_stop", "index": index})
        out = (script.usage[1] if script.usage else 0) or len(script.chunks)
        stop = script.finish_reason or ("tool_use" if script.tool_calls else "end_turn")
        event("message_delta", {"type": "message_delta",
                                "delta": {"stop_reason": stop, "stop_sequence": None},
                                "usage": {"output_tokens": out}})
        event("message_stop", {"type": "message_stop"})
        self._end_body(script)


    # -- Gemini --------------------------------------------------------------------------
    def _gemini(self, body: dict[str, Any]) -> None:
        owner = self.owner
        model = self.path.split("/models/", 1)[1].split(":", 1)[0]
        script = owner.scripts.get(model)
        config = body.get("generationConfig") or {}
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        if model == "echo" and config.get("responseMimeType") == "application/json":
            text = json.dumps(instance(schema or {"type": "object"}))
            script = Script(chunks=[text[i : i + 4] for i in range(0, len(text), 4)])
        elif script is None and model == "echo":
            text = "echo: " + gemini_text((body.get("contents") or [{}])[-1])
            script = Script(chunks=[text[i : i + 4] for i in range(0, len(text), 4)])
        results = gemini_tool_results(body) if script is not None and not script.repeat_tools else None
        if script is not None and script.tool_calls and results is not None:
            script = _after_tools(script, results)
        if script is None:
            self._error("gemini", 404, "NOT_FOUND", f"models/{model} is not found for API version v1beta", {})
            return
        try:
            if script.context_limit is not None:
                tokens = sum(len(gemini_text(c)) for c in body.get("contents") or []) // 4
                if tokens > script.context_limit:
                    self._error("gemini", 400, "INVALID_ARGUMENT", f"The input token count ({tokens}) exceeds the "
                                f"maximum number of tokens allowed ({script.context_limit}).", {})
                    return
            self._play("gemini", script, model, self._stream_gemini)
        except ClientGone:
            with owner._lock:
                owner.disconnects.append(time.monotonic())
            self.close_connection = True

    def _stream_gemini(self, script: Script, model: str) -> None:
        def send(raw: bytes) -> None:
            self._send_chunk(raw, script.byte_split)

        def chunk(parts: list[dict[str, Any]], **extra: Any) -> None:
            candidate = {"content": {"parts": parts, "role": "model"}, "index": 0, **extra.pop("candidate", {})}
            payload = {"candidates": [candidate], "modelVersion": model, "responseId": "resp-test", **extra}
            send(b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\r\n\r\n")

        for r in script.reasoning:
            chunk([{"text": r, "thought": True}])
        error_event = b"data: " + json.dumps({"error": {"code": 500, "message": script.error_message,
                                                        "status": script.error_type or "INTERNAL"}}).encode() + b"\r\n\r\n"
        ok = self._chunks_with_faults(script, lambda t: chunk([{"text": t}]), lambda: self._fault(script, send, error_event))
        if not ok:
            return
        calls = [{"functionCall": {"name": name, "args": args if isinstance(args, dict) else json.loads(args)}}
                 for _id, name, args in script.tool_calls]
        out = (script.usage[1] if script.usage else 0) or len(script.chunks)
        usage = {"promptTokenCount": script.usage[0], "candidatesTokenCount": out,
                 "totalTokenCount": script.usage[0] + out} if script.usage else {}
        if script.usage and script.cached:
            usage["cachedContentTokenCount"] = script.cached
        if script.usage and script.reasoning:
            usage["thoughtsTokenCount"] = len(script.reasoning)
        finish = script.finish_reason or "STOP"
        chunk(calls or [{"text": ""}], candidate={"finishReason": finish}, **({"usageMetadata": usage} if usage else {}))
        self._end_body(script)


GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def gemini_text(content: dict[str, Any]) -> str:
    """The text parts of one Gemini `Content`."""
    return "".join(p.get("text") or "" for p in content.get("parts") or [] if isinstance(p, dict))


def gemini_tool_results(body: dict[str, Any]) -> list[str] | None:
    """The function responses a Gemini request ends with (each response's `result`, or its JSON), or None."""
    contents = body.get("contents") or []
    parts = (contents[-1].get("parts") or []) if contents else []
    responses = [p["functionResponse"].get("response") for p in parts if isinstance(p, dict) and "functionResponse" in p]
    if not responses:
        return None
    return [str(r["result"]) if isinstance(r, dict) and "result" in r else json.dumps(r) for r in responses]


if __name__ == "__main__":  # python tests/fakeserver.py [CHUNKS]: "fast" streams CHUNKS tokens
    import sys

    srv = FakeLLMServer().start()
    delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0  # seconds between tokens
    srv.script("fast", Script(chunks=[f"tok{i} " for i in range(int(sys.argv[1]) if len(sys.argv) > 1 else 50)],
                              delay=delay))
    srv.script("long", Script(chunks=[f"tok{i} " for i in range(3000)], delay=0.002))
    print(srv.url, flush=True)
    threading.Event().wait()
