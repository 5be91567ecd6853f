"""Gaps closed late: serve's 429 carries Retry-After, redirect Locations with spaces, the page's rate floor,
`access list` expiry, REPL wording in a race's panes, one ceiling for max_tokens."""

from __future__ import annotations

import logging

import httpx
import pytest
from fakeserver import Script
from servehelp import ServeProcess


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
