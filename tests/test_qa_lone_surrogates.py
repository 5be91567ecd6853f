"""A stream whose text holds a lone surrogate escape (`"\\ud800"`) is shown and logged, not a crash.

JSON's grammar allows `\\ud800` alone; json.loads turns it into a str no UTF-8 encoder takes.
A server (or a model's bytes through a careless proxy) sending one made every output path fail
after the text before it: a pipe and a terminal were "internal error: UnicodeEncodeError", exit 1,
--json an `error` event with no conversation id, and the answer was not logged at all.
The fake server cannot send one (it encodes its own JSON), so a few raw lines of SSE do.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import base_env

from streamchat.exit_status import ExitStatus

PIECES = ["ok ", "\\ud800", " \\udfff end"]  # as they stand in the JSON text: escapes, not characters
SHOWN = "ok \ufffd \ufffd end"


def _openai() -> bytes:
    out = b""
    for piece in PIECES:
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": "PIECE"}, "finish_reason": None}]}
        out += b"data: " + json.dumps(chunk).replace("PIECE", piece).encode() + b"\n\n"
    last = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    return out + b"data: " + json.dumps(last).encode() + b"\n\ndata: [DONE]\n\n"


def _anthropic() -> bytes:
    def event(name: str, data: dict) -> bytes:
        return f"event: {name}\ndata: ".encode() + json.dumps(data).encode() + b"\n\n"

    out = event("message_start", {"type": "message_start", "message": {
        "id": "m", "type": "message", "role": "assistant", "model": "m", "content": [], "stop_reason": None,
        "usage": {"input_tokens": 3, "output_tokens": 0}}})
    out += event("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {"type": "text", "text": ""}})
    for piece in PIECES:
        out += event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                             "delta": {"type": "text_delta", "text": "PIECE"}}).replace(b"PIECE", piece.encode())
    out += event("content_block_stop", {"type": "content_block_stop", "index": 0})
    out += event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                   "usage": {"output_tokens": 3}})
    return out + event("message_stop", {"type": "message_stop"})


class _Raw(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = _anthropic() if self.path.endswith("/messages") else _openai()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def raw_server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Raw)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("mode", [(), ("--json",), ("--raw",)])
def test_a_lone_surrogate_is_shown_as_a_replacement_and_the_answer_logged(invoke, home, raw_server, provider, mode):
    env = base_env(home, OPENAI_BASE_URL=f"{raw_server}/v1", OPENAI_API_KEY="k",
                   ANTHROPIC_BASE_URL=raw_server, ANTHROPIC_API_KEY="k")
    r = invoke("-m", f"{provider}:m", *mode, "q", env=env)
    assert r.code == ExitStatus.OK, r.stderr
    assert "internal error" not in r.stderr and "unexpected error" not in r.stderr
    if mode == ("--json",):
        events = [json.loads(line) for line in r.out.splitlines()]
        assert "".join(e["text"] for e in events if e["type"] == "text") == SHOWN
        assert events[-1]["type"] == "done" and events[-1]["conversation_id"] is not None
    else:
        assert r.out.rstrip("\n") == SHOWN
    db = sqlite3.connect(home / "log.db")
    try:
        assert db.execute("SELECT content FROM messages WHERE role = 'assistant'").fetchall() == [(SHOWN,)]
    finally:
        db.close()


class _RawGemini(BaseHTTPRequestHandler):
    """Gemini's SSE (google-genai parses it itself, not through streamchat's wire parser)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b""
        for piece in PIECES:
            chunk = {"candidates": [{"content": {"role": "model", "parts": [{"text": "PIECE"}]}, "index": 0}]}
            body += b"data: " + json.dumps(chunk).replace("PIECE", piece).encode() + b"\r\n\r\n"
        last = {"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 3, "totalTokenCount": 6}}
        body += b"data: " + json.dumps(last).encode() + b"\r\n\r\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("mode", [(), ("--json",)])
def test_a_provider_passing_a_lone_surrogate_through_costs_neither_the_output_nor_the_log(invoke, home, mode):
    """Whatever a provider (Gemini's SDK, a plugin) lets through: stdout and the log hold U+FFFD."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _RawGemini)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        env = base_env(home, GOOGLE_GEMINI_BASE_URL=f"http://127.0.0.1:{srv.server_address[1]}", GEMINI_API_KEY="k")
        r = invoke("-m", "gemini:m", *mode, "q", env=env)
    finally:
        srv.shutdown()
        srv.server_close()
    assert r.code == ExitStatus.OK, r.stderr
    assert "internal error" not in r.stderr and "unexpected error" not in r.stderr
    if not mode:
        assert r.out.rstrip("\n") == SHOWN
    db = sqlite3.connect(home / "log.db")
    try:
        assert db.execute("SELECT content FROM messages WHERE role = 'assistant'").fetchall() == [(SHOWN,)]
    finally:
        db.close()
