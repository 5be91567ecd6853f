"""Start `streamchat serve` as a real process for the tests and the load benchmark."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
from conftest import STREAMCHAT, base_env
from fakeserver import FakeLLMServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    def __init__(self, home: Path, upstream: FakeLLMServer, *args: str, token: str | None = None,
                 config_extra: str = "", env_extra: dict[str, str] | None = None, start_s: float = 90) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = home / "serve.toml"
        cfg.write_text(f'retries = 0\n{config_extra}[providers.compat]\ntype = "openai"\nbase_url = "{upstream.url}/v1"\n')
        env = base_env(home, upstream, STREAMCHAT_CONFIG=str(cfg), **(env_extra or {}))
        argv = [STREAMCHAT, "serve", "--port", str(self.port), *args]
        if token:
            argv += ["--token", token]
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        deadline = time.monotonic() + start_s  # under load on the shared 2-core machine a start took 28-35 s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.proc.stderr.read().decode()}")
            try:
                if httpx.get(f"{self.url}/v1/models", headers=headers, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def websocket_answer(port: int, headers: dict[str, str] | None = None, prompt: str = "x") -> str | None:
    """The text serve's /ws streams for `prompt`, or None when it refuses the socket."""
    import asyncio
    import json

    import websockets
    import websockets.exceptions

    async def talk() -> str | None:
        try:
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws", additional_headers=headers) as ws:
                await ws.send(json.dumps({"prompt": prompt}))
                frames = [json.loads(await ws.recv())]
                while frames[-1]["type"] not in ("done", "error"):
                    frames.append(json.loads(await ws.recv()))
        except (websockets.exceptions.InvalidStatus, websockets.exceptions.ConnectionClosed):
            return None
        return "".join(f.get("text", "") for f in frames if f["type"] == "token")

    return asyncio.run(talk())
