"""Gaps closed late: serve's 429 carries Retry-After, redirect Locations with spaces, the page's rate floor,
`access list` expiry, REPL wording in a race's panes, one ceiling for max_tokens."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fakeserver import Script
from servehelp import ServeProcess
from test_repl import repl as repl  # the REPL fixture (it ends each REPL cleanly)


def test_serve_passes_an_upstream_retry_after_to_openai_clients(tmp_path, server, caplog):
    pytest.importorskip("fastapi", reason="the `serve` extra is installed by .ci/run")
    from streamchat.providers._sdk import import_sdk

    openai = import_sdk("openai")
    server.script("limited", Script(status=429, error_type="rate_limit_exceeded", error_message="slow down",
                                    headers={"Retry-After": "1"}))
    proc = ServeProcess(tmp_path, server, "-m", "openai:echo", "--allow-model=openai:*")
    try:
        ask = {"model": "openai:limited", "messages": [{"role": "user", "content": "q"}]}
        for stream in (False, True):
            client = openai.OpenAI(base_url=f"{proc.url}/v1", api_key="unused", max_retries=0)
            with pytest.raises(openai.RateLimitError) as limited:
                if stream:
                    for _ in client.chat.completions.create(**ask, stream=True):
                        pass
                else:
                    client.chat.completions.create(**ask)
            headers = limited.value.response.headers
            assert headers.get("retry-after") == "1" and headers.get("retry-after-ms") == "1000", (stream, headers)
        # and the SDK backs off by it (its own backoff would be 0.4-0.5 s), logged as it retries
        client = openai.OpenAI(base_url=f"{proc.url}/v1", api_key="unused", max_retries=1)
        with caplog.at_level(logging.INFO, logger="openai"), pytest.raises(openai.RateLimitError):
            client.chat.completions.create(**ask)
        assert "in 1.000000 seconds" in caplog.text, caplog.text
        r = httpx.get(f"{proc.url}/stream", params={"prompt": "q", "model": "openai:limited"}, timeout=30)
        assert r.status_code == 429 and r.headers.get("retry-after") == "1", (r.status_code, r.headers)
    finally:
        proc.stop()


class _Redirect(BaseHTTPRequestHandler):
    """Answers every POST with a 307 to `location`."""

    location = ""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(307)
        self.send_header("Location", self.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("transport", ["sdk", "lean"])
@pytest.mark.parametrize("serve", [False, True], ids=["blocking", "serve"])
def test_a_redirect_location_with_spaces_is_percent_encoded_on_every_path(server, monkeypatch, transport, serve):
    """http.client refused such a URL (internal error) and serve's reader wrote it raw into its request
    line; httpx2 (the SDKs) percent-encodes spaces and non-ASCII and refuses control characters."""
    from test_lean_transport import aanswer, answer, aprovider, provider

    from streamchat.events import Message
    from streamchat.providers.base import ChatRequest

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        request = ChatRequest("echo", (Message("user", "hi"),))
        _Redirect.location = f"{server.url}/v1/chat/completions?note=a b+é"
        server.reset()
        adapter = (aprovider if serve else provider)("openai", f"http://127.0.0.1:{httpd.server_address[1]}",
                                                     transport, monkeypatch)
        events = aanswer(adapter, request) if serve else answer(adapter, request)
        assert "".join(getattr(e, "text", "") for e in events) == "echo: hi"
        assert [r.path for r in server.requests] == ["/v1/chat/completions?note=a%20b+%C3%A9"]
        _Redirect.location = f"{server.url}/v1/chat/completions?note=a\x01b"
        server.reset()
        with pytest.raises(Exception) as refused:
            aanswer(adapter, request) if serve else answer(adapter, request)
        err = adapter.map_error(refused.value, model="echo", started=False)
        assert err.exit_code != 1 and server.requests == [], (type(refused.value), err)  # an error, not a crash
    finally:
        httpd.shutdown()


def test_the_page_and_the_cli_share_the_rate_floor():
    from importlib.resources import files

    from streamchat.events import MIN_RATE_MS

    script = files("streamchat.serve").joinpath("static/page.js").read_text(encoding="utf-8")
    assert f"const MIN_RATE_MS = {MIN_RATE_MS:g};" in script


def test_access_list_shows_when_each_key_expires(invoke, home):
    import json
    import time

    state = ["--state", f"sqlite:{home / 'access.db'}"]
    assert invoke("access", "create", "amy", "--expires", "2d", *state).code == 0
    assert invoke("access", "create", "bob", *state).code == 0
    rows = {line.split("\t")[0]: line.split("\t") for line in invoke("access", "list", *state).out.splitlines()}
    expected = time.strftime("%Y-%m-%d", time.localtime(time.time() + 2 * 86400))
    assert rows["amy"][1] == "active" and rows["amy"][-1].startswith(f"expires {expected} "), rows
    assert rows["bob"][-1] == "no expiry", rows
    listed = {d["name"]: d for d in map(json.loads, invoke("access", "list", "--json", *state).out.splitlines())}
    assert listed["amy"]["expires"].startswith(time.strftime("%Y-%m-%d", time.gmtime(time.time() + 2 * 86400)))
    assert listed["bob"]["expires"] is None and listed["bob"]["state"] == "active" and listed["bob"]["spent_usd"] == 0
    assert invoke("access", *state).out.splitlines()[0].split("\t")[-1] in ("no expiry", rows["amy"][-1])  # bare `access`


@pytest.mark.parametrize("repl", [False, True])
def test_a_race_pane_words_its_error_for_the_front_end(repl):
    """In the REPL a race's pane said the command line's hint (`--reasoning off`): as a single
    answer's error line, it now says the REPL command (StreamchatError.said)."""
    from terminal_emulator import ANSI, FakeTTY

    from streamchat.environment import Environment
    from streamchat.errors import UsageError
    from streamchat.events import Outcome, TurnResult
    from streamchat.sinks.race import race_output
    from streamchat.ui import UI

    out = FakeTTY()
    env = Environment(stdin=None, stdout=out, stderr=FakeTTY(), environ={"TERM": "xterm-256color", "COLUMNS": "200"})
    view = race_output(env, UI(env), ["openai:a", "anthropic:b"], repl=repl)
    error = UsageError("no temperature with thinking", hint="leave it out, or --reasoning off", repl_hint="/reasoning off")
    for index in (0, 1):
        view.sink(index).begin()
        view.sink(index).end(TurnResult(outcome=Outcome.FAILED, error=error))
    view.close()
    shown = ANSI.sub("", out.getvalue())
    assert ("no temperature with thinking — /reasoning off" in shown) == repl, shown
    assert ("--reasoning off" in shown) != repl, shown


@pytest.mark.e2e
def test_a_race_in_the_repl_says_the_repl_command_in_its_pane(repl, server):
    from fakeserver import FakeLLMServer
    from terminal_emulator import ANSI

    other = FakeLLMServer().start()
    try:
        server.script("ra", chunks=["answer ", "A"])
        child = repl("-m", "openai:ra", env_extra={"ANTHROPIC_BASE_URL": other.url})
        for line in ("/set temperature 0.2", "/reasoning high", "/race openai:ra anthropic:rb"):
            child.sendline(line)
            child.expect_exact("›")
        child.sendline("which?")
        child.expect_exact("TTFT", timeout=90)
        child.expect_exact("›")
        shown = " ".join(ANSI.sub("", child.logfile_read.getvalue()).split())
        assert "error: Anthropic's extended thinking" in shown and "unset them, or /reasoning off" in shown, shown
        assert "leave them out" not in shown and "--reasoning off" not in shown, shown
        assert other.requests == []  # refused before sending
    finally:
        other.stop()


TOO_MANY = 2**31  # one past MAX_TOKENS


def test_every_way_to_set_max_tokens_has_the_flags_ceiling():
    """--max-tokens and the config stopped at 2**31-1; /set max_tokens, serve's requests and the
    Python API's options took any size (sent on, for the upstream to refuse with its own words)."""
    from streamchat.api import _sampling
    from streamchat.config import MAX_TOKENS
    from streamchat.errors import UsageError
    from streamchat.repl_commands import with_set
    from streamchat.serve.parse import parse_call
    from streamchat.serve.policy import Refused
    from streamchat.service import Overrides

    assert MAX_TOKENS == TOO_MANY - 1
    assert with_set(Overrides(), {"max_tokens": str(MAX_TOKENS)}, None).max_tokens == MAX_TOKENS
    with pytest.raises(UsageError, match="max_tokens must be a whole number from 1 to 2147483647"):
        with_set(Overrides(), {"max_tokens": str(TOO_MANY)}, None)
    for openai, key in ((True, "max_tokens"), (True, "max_completion_tokens"), (False, "max_tokens")):
        body = {"messages": [{"role": "user", "content": "q"}]} if openai else {"prompt": "q"}
        assert parse_call({**body, key: MAX_TOKENS}, openai=openai).max_tokens == MAX_TOKENS
        with pytest.raises(Refused) as refused:
            parse_call({**body, key: TOO_MANY}, openai=openai)
        assert refused.value.status == 400 and "from 1 to 2147483647" in refused.value.message, refused.value.message
        with pytest.raises(Refused):
            parse_call({**body, key: 0}, openai=openai)
    assert _sampling({"max_tokens": MAX_TOKENS})["max_tokens"] == MAX_TOKENS
    with pytest.raises(UsageError, match="2147483647"):
        _sampling({"max_tokens": TOO_MANY})

