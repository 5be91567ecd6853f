"""The failure matrix: each provider fault → one clear stderr line, the documented exit code,
every character streamed before the fault kept on stdout and in the log (marked), no traceback."""

from __future__ import annotations

import sqlite3
import subprocess
import time

import pytest
from conftest import PROVIDERS, base_env
from fakeserver import FakeLLMServer, Script

BEFORE = ["alpha ", "beta ", "gamma "]


def one_line_error(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def stored_assistant(home) -> tuple[str, str] | None:
    if not (home / "log.db").exists():
        return None
    db = sqlite3.connect(home / "log.db")
    try:
        return db.execute("SELECT content, state FROM messages WHERE role = 'assistant' ORDER BY id DESC").fetchone()
    finally:
        db.close()


HTTP_ROWS = [
    pytest.param(Script(status=401, error_message="Incorrect API key provided: sk-test-openai-SECRET123"), 3,
                 "rejected the API key", id="401"),
    pytest.param(Script(status=403), 3, "denied access", id="403"),
    pytest.param(Script(status=404), 4, "streamchat models", id="404"),
    pytest.param(Script(status=400, error_type="invalid_request_error",
                        error_message="Invalid 'temperature': decimal above maximum value"), 4,
                 "refused the request", id="400-not-context"),
    pytest.param(Script(status=429, headers={"Retry-After": "7"}), 5, "retry after 7 s", id="429"),
    pytest.param(Script(status=500), 5, "HTTP 500", id="500"),
    pytest.param(Script(status=502), 5, "HTTP 502", id="502"),
    pytest.param(Script(status=503), 5, "HTTP 503", id="503"),
    pytest.param(Script(status=529, error_type="overloaded_error", error_message="Overloaded"), 5, "overloaded",
                 id="529"),
]


# The compatible provider runs the openai adapter: a few rows show its config-given base URL maps the same.
HTTP_CASES = [pytest.param(provider, *row.values, id=f"{provider}-{row.id}") for row in HTTP_ROWS for provider in PROVIDERS
              if provider != "compat" or row.id in ("401", "429", "503")]


@pytest.mark.parametrize("provider,script,code,words", HTTP_CASES)
def test_http_status_rows(invoke, server, home, provider, script, code, words):
    server.script("m", script)
    r = invoke("-m", f"{provider}:m", "--no-retry", "q")
    assert r.code == code
    line = one_line_error(r)
    assert words in line
    assert "SECRET123" not in r.stderr
    assert r.stdout == b""
    assert stored_assistant(home) == ("", "error")


CONTEXT_ERRORS = {  # each provider's own way of saying it
    "openai": Script(status=400, error_type="context_length_exceeded",
                     error_message="This model's maximum context length is 8192 tokens"),
    "anthropic": Script(status=400, error_type="invalid_request_error",
                        error_message="prompt is too long: 9000 tokens > 8192 maximum"),
}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_context_overflow_only_when_the_provider_says_so(invoke, server, provider):
    server.script("m", CONTEXT_ERRORS.get(provider, CONTEXT_ERRORS["openai"]))
    r = invoke("-m", f"{provider}:m", "--no-retry", "q")
    assert r.code == 4
    assert "too long" in one_line_error(r)


STREAM_ROWS = [
    pytest.param(Script(chunks=BEFORE + ["never"], fault="drop", fault_after=3), 6, "dropped mid-answer", id="drop"),
    pytest.param(Script(chunks=BEFORE + ["never"], fault="malformed", fault_after=3), 5, "malformed", id="malformed"),
    pytest.param(Script(chunks=BEFORE + ["never"], fault="error_event", fault_after=3, error_type="overloaded_error",
                        error_message="Overloaded"), 5, "overloaded", id="error-event"),
    pytest.param(Script(chunks=BEFORE + ["never"], fault="no_done", fault_after=3), 5, "ended before", id="no-done"),
]


@pytest.mark.parametrize("script,code,words", STREAM_ROWS)
@pytest.mark.parametrize("provider", ["openai", "anthropic"])  # compat reads the stream with the openai parser
def test_mid_stream_rows_keep_the_partial_answer(invoke, server, home, provider, script, code, words):
    server.script("m", script)
    r = invoke("-m", f"{provider}:m", "q")  # retries on: never after text was shown
    assert r.code == code, r.stderr
    assert words in one_line_error(r)
    assert r.out == "".join(BEFORE) + "\n"  # the partial answer, ended by a newline
    assert stored_assistant(home) == ("".join(BEFORE), "error")
    assert len(server.requests) == 1


@pytest.mark.slow
@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_first_byte_within_timeout(invoke, server, provider):
    server.script("m", Script(first_delay=30))
    started = time.monotonic()
    r = invoke("-m", f"{provider}:m", "--timeout", "1", "--no-retry", "q")
    assert r.code == 6
    assert "no response" in one_line_error(r)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stall_mid_answer_idle_timeout(run, server, home, provider):
    server.script("m", Script(chunks=BEFORE + ["never"], fault="stall", fault_after=3))
    cfg = home / "stall.toml"
    cfg.write_text(f'timeout = 1\n[providers.compat]\ntype = "openai"\nbase_url = "{server.url}/v1"\n')
    started = time.monotonic()
    r = run("-m", f"{provider}:m", "--config", str(cfg), "q")
    assert r.code == 6
    assert "stalled mid-answer" in one_line_error(r)
    assert r.out == "".join(BEFORE) + "\n"  # the partial answer, ended by a newline
    assert time.monotonic() - started < 10
    assert server.wait_disconnect(3)


_HELD: list[object] = []


def _refused_url() -> str:
    """A port bound and never listened on, held for the whole run: a connection to it is refused.
    A port freed at collection was taken by a fake server started later in the same process (the
    row then got HTTP 404, not "connection refused")."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _HELD.append(s)
    return f"http://127.0.0.1:{s.getsockname()[1]}"


def _provider_env(home, provider: str, url: str, **extra: str) -> dict[str, str]:
    env = base_env(home, None, OPENAI_API_KEY="k", ANTHROPIC_API_KEY="k", **extra)
    if provider == "openai":
        env["OPENAI_BASE_URL"] = f"{url}/v1"
    elif provider == "anthropic":
        env["ANTHROPIC_BASE_URL"] = url
    else:
        cfg = home / "compat.toml"
        cfg.write_text(f'[providers.compat]\ntype = "openai"\nbase_url = "{url}/v1"\n')
        env["STREAMCHAT_CONFIG"] = str(cfg)
    return env


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("where,words", [
    (_refused_url(), "connection refused"),
    ("http://no-such-host.invalid", "cannot resolve"),
], ids=["refused", "dns"])
def test_connection_rows(invoke, home, provider, where, words):
    r = invoke("-m", f"{provider}:m", "--no-retry", "--timeout", "5", "q", env=_provider_env(home, provider, where))
    assert r.code == 6
    assert words in one_line_error(r)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
    srv = FakeLLMServer(tls=(str(cert), str(key))).start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tls_error(invoke, home, tls_server, provider):
    r = invoke("-m", f"{provider}:echo", "--no-retry", "q", env=_provider_env(home, provider, tls_server.url))
    assert r.code == 6
    assert "TLS error" in one_line_error(r)


@pytest.mark.slow
@pytest.mark.parametrize("provider", PROVIDERS)
def test_proxy_error(invoke, home, server, provider):
    env = _provider_env(home, provider, "http://api.example.test", HTTP_PROXY=_refused_url(),
                        HTTPS_PROXY=_refused_url(), NO_PROXY="")
    r = invoke("-m", f"{provider}:echo", "--no-retry", "--timeout", "5", "q", env=env)
    assert r.code == 6
    line = one_line_error(r)
    assert "proxy" in line or "refused" in line


# -- retries ------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("provider", PROVIDERS)
def test_retry_after_then_success(invoke, server, provider):
    server.script("m", Script(status=429, headers={"Retry-After": "1"}, fail_first=1, chunks=["ok ", "done"]))
    started = time.monotonic()
    r = invoke("-m", f"{provider}:m", "q")
    assert r.code == 0, r.stderr
    assert r.out == "ok done\n"
    assert len(server.requests) == 2 and time.monotonic() - started >= 1.0
    notices = r.stderr.strip().splitlines()
    assert len(notices) == 1 and "retrying in 1.0 s (1/2)" in notices[0]


@pytest.mark.slow
def test_server_errors_retried_twice_then_fail(invoke, server):
    server.script("m", Script(status=503))
    r = invoke("-m", "openai:m", "q")
    assert r.code == 5
    assert len(server.requests) == 3
    assert r.stderr.count("retrying") == 2 and "Traceback" not in r.stderr


def test_retry_after_beyond_the_cap_fails_fast(invoke, server):
    server.script("m", Script(status=429, headers={"Retry-After": "3600"}))
    started = time.monotonic()
    r = invoke("-m", "anthropic:m", "q")
    assert r.code == 5 and len(server.requests) == 1
    assert "retry after 3600 s" in one_line_error(r)
    assert time.monotonic() - started < 10


def test_no_retry_flag_and_no_retry_on_4xx(invoke, server):
    server.script("m", Script(status=500))
    assert invoke("-m", "openai:m", "--no-retry", "q").code == 5 and len(server.requests) == 1
    server.reset()
    server.script("m", Script(status=400))
    assert invoke("-m", "openai:m", "q").code == 4 and len(server.requests) == 1


# -- debug -----------------------------------------------------------------------------------

def test_debug_shows_traceback_but_never_the_key(invoke, server):
    server.script("m", Script(status=401, error_message="bad key sk-test-openai-SECRET123"))
    r = invoke("-m", "openai:m", "--debug", "--no-retry", "q")
    assert r.code == 3
    assert "Traceback" in r.stderr and "debug:" in r.stderr
    assert "SECRET123" not in r.stderr and "SECRET456" not in r.stderr
