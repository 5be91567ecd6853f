"""A cheap OpenAI-style streaming upstream for the load benchmark: asyncio, pre-encoded chunks.

The test suite's `tests/fakeserver.py` is a thread per connection that builds every chunk
with `json.dumps`; under 200 streams at 5 ms/token it used more CPU than the server it fed
(1.6 s against serve's 1.5 s, both on these 2 cores, the threads fighting for one GIL), so
the bench measured the fake upstream as much as `streamchat serve`. A real upstream is on
another machine. This one costs little: one timer ticks every millisecond and writes the next
chunk of the streams whose turn it is (each stream keeps its own 5 ms phase), with keep-alive
so serve's connection pool is used as against a real provider. It runs on serve's own loop
(uvloop accepting every waiting connection per wake-up, streamchat.serve.accept): on uvloop's
own server it accepted one connection per loop turn, so a burst of serve's new connections
queued in its kernel backlog, as a real provider's front end would not make them.

    python bench/upstream.py CHUNKS DELAY   → prints its URL, serves until killed
Models: "fast" streams CHUNKS tokens at DELAY s each; "long" 3000 tokens at 2 ms.
GET /_counts → {"disconnects": n, "completed": n, "connections": n}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

TICK = 0.001


def _frame(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    payload = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": "bench",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return _frame(b"data: " + json.dumps(payload).encode() + b"\n\n")


def answer(tokens: int) -> list[bytes]:
    """The whole stream, one wire write per element: role, tokens, finish + usage + [DONE] + end."""
    usage = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": "bench",
             "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": tokens, "total_tokens": 7 + tokens}}
    tail = (_chunk({}, "stop") + _frame(b"data: " + json.dumps(usage).encode() + b"\n\n")
            + _frame(b"data: [DONE]\n\n") + b"0\r\n\r\n")
    return [_chunk({"role": "assistant", "content": ""}) + _chunk({"content": "tok0 "}),
            *(_chunk({"content": f"tok{i} "}) for i in range(1, tokens)), tail]


@dataclass
class Stream:
    writer: asyncio.StreamWriter
    parts: list[bytes]
    every: int  # ticks between writes; 0: the whole answer at once
    done: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    sent: int = 0


class Upstream:
    def __init__(self, tokens: int, delay: float) -> None:
        self.models = {"fast": (answer(tokens), round(delay / TICK)), "long": (answer(3000), 2)}
        self.slots: dict[int, list[Stream]] = {}  # tick number → streams due then
        self.tick = 0
        self.counts = {"disconnects": 0, "completed": 0, "connections": 0}

    async def run_ticks(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            self.tick += 1
            for stream in self.slots.pop(self.tick, ()):
                self._advance(stream)
            await asyncio.sleep(max(0.0, start + self.tick * TICK - loop.time()))

    def _advance(self, stream: Stream) -> None:
        if stream.writer.transport.is_closing():
            self.counts["disconnects"] += 1
            stream.done.set_result(False)
            return
        if stream.every:
            stream.writer.write(stream.parts[stream.sent])
            stream.sent += 1
        else:
            stream.writer.writelines(stream.parts)
            stream.sent = len(stream.parts)
        if stream.sent == len(stream.parts):
            self.counts["completed"] += 1
            stream.done.set_result(True)
        else:
            self.slots.setdefault(self.tick + stream.every, []).append(stream)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counts["connections"] += 1
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:  # keep-alive: one request after another on the connection
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                if request_line.startswith("GET /_counts"):
                    data = json.dumps(self.counts).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(data), data))
                    continue
                if not request_line.startswith("POST "):  # e.g. LiteLLM's proxy asking for its models
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    continue
                parts, every = self.models[json.loads(body).get("model", "fast")]
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                stream = Stream(writer, parts, every)
                self.slots.setdefault(self.tick + 1, []).append(stream)
                if not await stream.done:
                    break
        writer.close()


async def main() -> None:
    upstream = Upstream(int(sys.argv[1]) if len(sys.argv) > 1 else 50, float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
    sock = bound_socket("127.0.0.1", 0)
    await asyncio.start_server(upstream.handle, sock=sock, backlog=1024)
    print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    await upstream.run_ticks()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from streamchat.serve.accept import new_event_loop
    from streamchat.serve.workers import bound_socket

    loop = new_event_loop()
    with contextlib.suppress(KeyboardInterrupt):
        loop.run_until_complete(main())
