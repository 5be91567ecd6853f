"""Secrets never shown (issue 35): a key the provider quotes back, whatever its shape, and
credentials in a base_url stay out of stderr, --debug, the log and serve's answers."""

from __future__ import annotations

import httpx
from conftest import base_env
from fakeserver import Script
from servehelp import ServeProcess

from streamchat.errors import mask_url, redact, remember_secret

KEY = "gsk_live_Q7nB2xR9vT4mK8pL3wZ6"  # not sk-shaped: no pattern catches it, only knowing it does
QUOTED = f"Invalid API Key: {KEY} is not valid for this organization"


def log_bytes(home) -> bytes:
    return b"".join(p.read_bytes() for p in home.glob("log.db*"))


def test_a_key_quoted_back_by_a_401_is_shown_nowhere(run, server, home):
    server.script("m401", Script(status=401, error_message=QUOTED))
    env = base_env(home, server, OPENAI_API_KEY=KEY)
    plain = run("-m", "openai:m401", "q", env=env)
    assert plain.code == 3 and "rejected the API key" in plain.stderr and "Invalid API Key: ***" in plain.stderr
    debug = run("-m", "openai:m401", "--debug", "--json", "q", env=env)
    assert debug.code == 3 and "Traceback" in debug.stderr
    for text in (plain.stderr, plain.out, debug.stderr, debug.out):
        assert KEY not in text
    assert b"rejected the API key" in log_bytes(home) and KEY.encode() not in log_bytes(home)


def test_serve_never_sends_the_upstream_key_to_its_clients(server, tmp_path):
    server.script("m401", Script(status=401, error_message=QUOTED))
    serve = ServeProcess(tmp_path, server, "-m", "keyed:m401", "--debug", config_extra=(
        f'[providers.keyed]\ntype = "openai"\nbase_url = "{server.url}/v1"\napi_key = "{KEY}"\n'))
    try:
        for stream in (False, True):
            answer = httpx.post(f"{serve.url}/v1/chat/completions", timeout=30, json={
                "model": "keyed:m401", "stream": stream, "messages": [{"role": "user", "content": "q"}]})
            assert "refused serve's credentials" in answer.text and KEY not in answer.text
    finally:
        serve.stop()
    log = serve.proc.stderr.read().decode()
    assert "rejected the API key" in log and KEY not in log  # the detail is the operator's, redacted


def test_redact_knows_the_secrets_it_was_told():
    remember_secret("tok_abcdefgh12345")
    remember_secret("short")  # too short to hide without mangling ordinary words
    assert redact("key tok_abcdefgh12345 and a short word") == "key *** and a short word"


PASSWORD = "pw-Hx83kQ"


def cred_env(home, server, url: str) -> dict[str, str]:
    env = base_env(home, server)
    (home / "cred.toml").write_text(f'retries = 0\n[providers.cred]\ntype = "openai"\nbase_url = "{url}"\n')
    return dict(env, STREAMCHAT_CONFIG=str(home / "cred.toml"))


def test_credentials_in_base_url_are_masked_in_config_show_errors_and_debug(invoke, server, home):
    host = server.url.removeprefix("http://")
    env = cred_env(home, server, f"http://gateway-user:{PASSWORD}@{host}/v1")
    shown = invoke("config", "show", env=env)
    assert shown.code == 0 and f'"base_url": "http://***@{host}/v1"' in shown.out
    debug = invoke("-m", "cred:echo", "--debug", "q", env=env)
    assert debug.code == 0 and "debug:" in debug.stderr
    refused = invoke("-m", "cred:echo", "q", env=cred_env(home, server, f"http://gateway-user:{PASSWORD}@127.0.0.1:9/v1"))
    assert refused.code == 6 and "http://***@127.0.0.1:9/v1" in refused.stderr
    for text in (shown.out, debug.stderr, refused.stderr):
        assert PASSWORD not in text and "gateway-user" not in text


def test_serve_debug_log_masks_credentials_in_the_upstream_url(server, tmp_path):
    host = server.url.removeprefix("http://")
    serve = ServeProcess(tmp_path, server, "-m", "cred:echo", "--debug", config_extra=(
        f'[providers.cred]\ntype = "openai"\nbase_url = "http://gateway-user:{PASSWORD}@{host}/v1"\n'))
    try:
        answer = httpx.post(f"{serve.url}/v1/chat/completions", timeout=30, json={
            "model": "cred:echo", "messages": [{"role": "user", "content": "q"}]})
    finally:
        serve.stop()
    log = serve.proc.stderr.read().decode()
    assert f"POST http://***@{host}/v1/chat/completions" in log
    for text in (log, answer.text):
        assert PASSWORD not in text and "gateway-user" not in text


def test_mask_url_keeps_everything_but_the_credentials():
    assert mask_url("see https://u:p@h.example/v1?a=b@c and http://h/x@y") == (
        "see https://***@h.example/v1?a=b@c and http://h/x@y")
