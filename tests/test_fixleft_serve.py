"""serve's leftovers from session 39's QA, in-process over ASGI: a 405 names the allowed methods, an
upstream's escape sequences never reach a client inside an error message."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the `serve` extra is installed by .ci/run")

from fakeserver import FakeLLMServer, Script  # noqa: E402
from test_fixqa2_serve import ask  # noqa: E402
from test_serve_policy import _app  # noqa: E402


def test_a_405_carries_an_allow_header():
    """The 405 handler dropped the exception's headers, so a wrong method got no `Allow` (RFC 9110 wants one)."""
    answer = ask(_app(), "DELETE", "/v1/chat/completions")
    assert answer.status_code == 405, answer.text
    assert answer.headers.get("allow") == "POST", answer.headers
    assert answer.json()["error"]["code"] == "http_error"


def test_an_upstream_error_reaches_clients_without_its_control_characters():
    """A client-side error (the upstream's 400) was passed on in the upstream's own words, raw: a
    client printing `bad \\x1b[31mthing` had its terminal driven by the upstream. Shown as pictures now."""

    from streamchat.config import parse_settings

    server = FakeLLMServer().start()
    settings = parse_settings({"providers": {"escapes": {"type": "openai", "base_url": f"{server.url}/v1",
                                                         "api_key": "k"}}})
    app = _app(settings, "escapes:evil")
    server.script("evil", Script(status=400, error_type="invalid_request_error",
                                 error_message="bad \x1b[31mthing\x1b[0m\u202e\x9b2J"))
    try:
        plain = ask(app, "POST", "/v1/chat/completions", json={"model": "escapes:evil",
                                                              "messages": [{"role": "user", "content": "hi"}]})
        streamed = ask(app, "POST", "/stream", json={"prompt": "hi"})
    finally:
        server.stop()
    assert plain.status_code == 400, plain.text
    message = plain.json()["error"]["message"]
    assert "bad \u241b[31mthing\u241b[0m<U+202E>\ufffd2J" in message, repr(message)
    assert streamed.status_code == 400 and "\u241b[31mthing" in streamed.text, streamed.text  # failed before any event
    for text in (plain.text, streamed.text):
        assert not any(c in text for c in "\x1b\u202e\x9b") and "\\u001b" not in text, repr(text)


ASKED = {"role": "assistant", "content": "",
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}


def test_stream_and_ws_refuse_an_assistant_message_s_tool_calls():
    """/stream and /ws dropped an assistant message's `tool_calls` without a word (with text, the
    turn went on without them; without, the 400 named its content): a 400 naming them now."""
    from streamchat.serve.parse import parse_call
    from streamchat.serve.policy import Refused

    for content in ("", "calling f"):
        body = {"messages": [{"role": "user", "content": "hi"}, {**ASKED, "content": content},
                             {"role": "user", "content": "go on"}]}
        with pytest.raises(Refused) as refused:  # /ws parses a frame as /stream parses a body
            parse_call(body, openai=False)
        assert (refused.value.status, refused.value.param) == (400, "messages[1].tool_calls")
        assert "/v1/chat/completions" in refused.value.message
        answer = ask(_app(), "POST", "/stream", json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == "messages[1].tool_calls"
        assert parse_call(body, openai=True).messages[1].tool_calls  # where they are supported
