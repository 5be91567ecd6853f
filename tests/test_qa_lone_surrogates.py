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
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Result, base_env
from localhttp import Quiet, local_http

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


class _Raw(Quiet):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.reply(200, _anthropic() if self.path.endswith("/messages") else _openai(), "text/event-stream")


@pytest.fixture
def raw_server() -> Iterator[str]:
    with local_http(_Raw) as url:
        yield url


def _assert_answered_and_logged(r: Result, home: Path) -> None:
    """Exit 0, no crash on stderr, and the log holds U+FFFD where the surrogates were."""
    assert r.code == ExitStatus.OK, r.stderr
    assert "internal error" not in r.stderr and "unexpected error" not in r.stderr
    db = sqlite3.connect(home / "log.db")
    try:
        assert db.execute("SELECT content FROM messages WHERE role = 'assistant'").fetchall() == [(SHOWN,)]
    finally:
        db.close()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("mode", [(), ("--json",), ("--raw",)])
def test_a_lone_surrogate_is_shown_as_a_replacement_and_the_answer_logged(invoke, home, raw_server, provider, mode):
    env = base_env(home, OPENAI_BASE_URL=f"{raw_server}/v1", OPENAI_API_KEY="k",
                   ANTHROPIC_BASE_URL=raw_server, ANTHROPIC_API_KEY="k")
    r = invoke("-m", f"{provider}:m", *mode, "q", env=env)
    _assert_answered_and_logged(r, home)
    if mode == ("--json",):
        events = [json.loads(line) for line in r.out.splitlines()]
        assert "".join(e["text"] for e in events if e["type"] == "text") == SHOWN
        assert events[-1]["type"] == "done" and events[-1]["conversation_id"] is not None
    else:
        assert r.out.rstrip("\n") == SHOWN


class _RawGemini(Quiet):
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
        self.reply(200, body, "text/event-stream")


@pytest.mark.parametrize("mode", [(), ("--json",)])
def test_a_provider_passing_a_lone_surrogate_through_costs_neither_the_output_nor_the_log(invoke, home, mode):
    """Whatever a provider (Gemini's SDK, a plugin) lets through: stdout and the log hold U+FFFD."""
    with local_http(_RawGemini) as url:
        r = invoke("-m", "gemini:m", *mode, "q", env=base_env(home, GOOGLE_GEMINI_BASE_URL=url, GEMINI_API_KEY="k"))
    _assert_answered_and_logged(r, home)
    if not mode:
        assert r.out.rstrip("\n") == SHOWN
