"""QA-16: what serve tells a remote client when a turn fails on the server's side. The upstream's own
words (a masked key, an organisation id, an internal address) and the operator's hints ("check the key
for provider 'openai' (streamchat config show)") go to serve's log; every front (SSE, the OpenAI API
streamed and not, the WebSocket) tells the client one generic line with the same code. Errors about
the client's own request keep their text (without the operator's hint)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fakeserver import Script
from servehelp import ServeProcess

pytest.importorskip("fastapi", reason="the `serve` extra is installed by .ci/run")

LEAKY = "bad key sk-proj-****abcd of org-hidden42 at 10.9.8.7"
LEAKS = ("sk-proj", "abcd", "org-hidden42", "10.9.8.7", "config show", "check the key", "bad key")
AUTH = "the upstream provider refused serve's credentials; the operator can see why in serve's log"


def _ws_frames(port: int, model: str) -> list[dict]:
    import websockets

    async def talk() -> list[dict]:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send(json.dumps({"prompt": "q", "model": model}))
            frames = [json.loads(await ws.recv())]
            while frames[-1]["type"] not in ("done", "error"):
                frames.append(json.loads(await ws.recv()))
            return frames

    return asyncio.run(talk())


def _no_leak(text: str) -> None:
    assert not any(leak in text for leak in LEAKS), text


def test_upstream_failures_reach_clients_as_generic_lines_and_serve_logs_the_detail(tmp_path, server):
    from streamchat.providers._sdk import import_sdk

    openai = import_sdk("openai")
    server.script("denied", Script(status=401, error_message=LEAKY))
    server.script("broken", Script(status=500, error_message=LEAKY))
    server.script("midway", Script(chunks=["part"], fault="error_event", fault_after=1, error_type="server_error",
                                   error_message=LEAKY))
    server.script("refused", Script(status=400, error_type="invalid_request_error",
                                    error_message="max_tokens is too large"))
    proc = ServeProcess(tmp_path, server, "-m", "openai:echo", "--allow-model=openai:*")
    try:
        client = openai.OpenAI(base_url=f"{proc.url}/v1", api_key="unused", max_retries=0)
        ask = {"model": "openai:denied", "messages": [{"role": "user", "content": "q"}]}

        r = httpx.get(f"{proc.url}/stream", params={"prompt": "q", "model": "openai:denied"}, timeout=30)
        assert r.json()["error"]["message"] == AUTH and r.json()["error"]["code"] == "auth", r.text
        with pytest.raises(openai.APIStatusError) as whole:
            client.chat.completions.create(**ask)
        assert whole.value.body["message"] == AUTH
        with pytest.raises(openai.APIStatusError) as streamed:
            for _ in client.chat.completions.create(**ask, stream=True):
                pass
        assert streamed.value.body["message"] == AUTH
        ws = _ws_frames(proc.port, "openai:denied")[-1]
        assert ws["type"] == "error" and ws["code"] == "auth" and ws["message"] == AUTH, ws

        r = httpx.get(f"{proc.url}/stream", params={"prompt": "q", "model": "openai:broken"}, timeout=30)
        assert r.status_code == 502 and r.json()["error"]["code"] == "server_error", r.text
        _no_leak(r.text)

        r = httpx.post(f"{proc.url}/stream", json={"prompt": "q", "model": "openai:midway"}, timeout=30)
        assert '"part"' in r.text and "event: error" in r.text and "server_error" in r.text, r.text
        _no_leak(r.text)
        mid = _ws_frames(proc.port, "openai:midway")
        assert mid[0]["text"] == "part" and mid[-1]["type"] == "error", mid
        _no_leak(json.dumps(mid))
        with pytest.raises(openai.APIError) as cut:
            for _ in client.chat.completions.create(**{**ask, "model": "openai:midway"}, stream=True):
                pass
        _no_leak(str(cut.value.body))

        # the client's own mistake: the upstream's words help it, the operator's hint does not
        r = httpx.get(f"{proc.url}/stream", params={"prompt": "q", "model": "openai:refused"}, timeout=30)
        assert r.status_code == 400 and "max_tokens is too large" in r.json()["error"]["message"], r.text
        assert "check the options" not in r.text
    finally:
        proc.stop()
    log = proc.proc.stderr.read().decode()
    assert "bad key" in log and "check the key for provider 'openai'" in log and "10.9.8.7" in log, log
