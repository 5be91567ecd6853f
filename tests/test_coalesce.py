"""serve's `--coalesce-ms` (#34): a stream's tokens that arrive within the interval are read, passed
down and written together; the first comes at once, nothing is lost, and a connection held back
this way still serves the next answer from the pool."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from typing import Any

import pytest
from fakeserver import FakeLLMServer, Script

from streamchat.events import Done, Outcome, ReasoningDelta, TextDelta, Usage
from streamchat.providers._wire import joined
from streamchat.providers.base import ChatRequest
from streamchat.providers.openai import OpenAIProvider
from streamchat.session import _Tally

CHUNKS = [f"t{i} " for i in range(24)]


def test_joined_makes_one_delta_of_each_run_of_text_or_reasoning():
    events = [ReasoningDelta("r1"), ReasoningDelta("r2"), TextDelta("a"), TextDelta("b"), Usage(1, 2),
              TextDelta("c"), TextDelta("d", 2), ReasoningDelta("r"), TextDelta("e"), Done("stop")]
    assert joined(events) == [ReasoningDelta("r1r2"), TextDelta("ab", 2), Usage(1, 2), TextDelta("cd", 3),
                              ReasoningDelta("r"), TextDelta("e"), Done("stop")]
    one = [TextDelta("x")]
    assert joined(one) is one


def test_a_joined_delta_counts_its_pieces_as_tokens_when_no_usage_comes():
    tally = _Tally()
    for event in (TextDelta("ab", 2), TextDelta("c")):
        tally.add(event)
    assert tally.result(Outcome.OK, None).stats.tokens == 3


def _adapter(url: str, monkeypatch: pytest.MonkeyPatch, pace: float) -> OpenAIProvider:
    """An OpenAI adapter as serve builds it (test_lean_transport's), reading at `pace`."""
    from test_lean_transport import aprovider

    from streamchat.providers import _sdk

    monkeypatch.setattr(_sdk, "_read_pace", pace)
    adapter = aprovider("openai", url, "lean", monkeypatch, timeout=30.0)
    assert adapter._alean is not None and adapter._alean.pace == pace
    return adapter


def _answers(adapter: OpenAIProvider, times: int, loop: str = "asyncio") -> list[list[tuple[float, object]]]:
    """Each answer's events with when they came (seconds after its request), `times` answers in a row
    on the adapter's pool, on asyncio's loop or uvloop's (serve's)."""
    request = ChatRequest(model="paced", messages=())

    async def run() -> list[list[tuple[float, object]]]:
        out = []
        try:
            for _ in range(times):
                started = time.perf_counter()
                out.append([(time.perf_counter() - started, e) async for e in adapter.astream(request)])
        finally:
            await adapter.aclose()
        return out

    if loop == "uvloop":
        import uvloop

        return uvloop.run(asyncio.wait_for(run(), 60))
    return asyncio.run(asyncio.wait_for(run(), 60))


def _text(events: list[tuple[float, object]]) -> list[TextDelta]:
    return [e for _, e in events if isinstance(e, TextDelta)]


@pytest.mark.parametrize(("pace", "loop"), [(0.0, "asyncio"), (0.06, "asyncio"), (0.06, "uvloop")],
                         ids=["each-token", "coalesced", "coalesced-uvloop"])
def test_tokens_within_the_interval_come_as_one_event_and_none_is_lost(server, monkeypatch, pace, loop):
    """24 tokens 10 ms apart, read as they come or at 60 ms: the same text and token count either way,
    in a handful of events when paced. Two answers in a row: the connection held unread when the
    first ended is read again for the second (it was not, and the second hung until the read timeout)."""
    server.script("paced", Script(chunks=CHUNKS, delay=0.01, keep_alive=True))
    answers = _answers(_adapter(server.url, monkeypatch, pace), times=2, loop=loop)
    assert server.connections == 1  # both answers on one pooled connection
    _whole(answers)
    if pace:  # ~240 ms of tokens in 60 ms reads (a busy machine reads less often still)
        assert len(_text(answers[0])) <= 8, [d.pieces for d in _text(answers[0])]


def test_the_first_token_after_a_quiet_spell_waits_for_nothing(server, monkeypatch):
    """Paced at 2 s, the first token still comes at once, alone; the server then sends the rest
    within the interval, and most of them come together when it is over."""
    gate = threading.Event()
    server.script("paced", Script(chunks=CHUNKS, delay=0.01, gate=gate))
    adapter = _adapter(server.url, monkeypatch, 2.0)

    async def run() -> tuple[float, list[object]]:
        started = time.perf_counter()
        events, first = [], 0.0
        try:
            async for event in adapter.astream(ChatRequest(model="paced", messages=())):
                if not events:
                    first = time.perf_counter() - started
                    gate.set()  # the rest, 10 ms apart
                events.append(event)
        finally:
            gate.set()
            await adapter.aclose()
        return first, events

    first, events = asyncio.run(asyncio.wait_for(run(), 30))
    assert first < 1.0  # held, it would have waited the interval
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert deltas[0] == TextDelta(CHUNKS[0])  # (the next few may come alone too, read before the reader waits)
    assert deltas[-1].pieces >= 18 and "".join(d.text for d in deltas) == "".join(CHUNKS), deltas


def _whole(answers: list[list[tuple[float, object]]], chunks: list[str] = CHUNKS) -> None:
    for events in answers:
        deltas = _text(events)
        assert "".join(d.text for d in deltas) == "".join(chunks)
        assert sum(d.pieces for d in deltas) == len(chunks)


def test_a_tls_stream_held_unread_loses_nothing(tmp_path, monkeypatch):
    """Over TLS the transport holds decrypted and still-encrypted bytes apart: paused and read again,
    the answer is whole, and the pooled connection serves the next one (on uvloop, as serve runs)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    srv = FakeLLMServer(tls=(str(cert), str(key))).start()
    try:
        srv.script("paced", Script(chunks=CHUNKS, delay=0.01, keep_alive=True))
        answers = _answers(_adapter(srv.url.replace("127.0.0.1", "localhost"), monkeypatch, 0.06), times=2,
                           loop="uvloop")
        assert srv.connections == 1
    finally:
        srv.stop()
    _whole(answers)
    assert len(_text(answers[0])) <= 8


def test_serve_passes_coalesce_ms_to_its_workers(tmp_path, server):
    """`serve --coalesce-ms` reaches each worker of `--workers 2` (through the spec): a /stream client
    gets the 24 tokens, 10 ms apart, in a few events; a value out of range is a usage error."""
    import httpx
    from servehelp import ServeProcess

    from streamchat.serve.spec import ServeSpec

    assert ServeSpec.from_json(ServeSpec(coalesce_ms=35.0).to_json()).coalesce_ms == 35.0
    server.script("paced", Script(chunks=CHUNKS, delay=0.01))
    proc = ServeProcess(tmp_path, server, "-m", "openai:paced", "--workers", "2", "--coalesce-ms", "60")
    try:
        reply = httpx.get(f"{proc.url}/stream", params={"prompt": "go"}, timeout=30)
    finally:
        proc.stop()
    tokens = [line for line in reply.text.splitlines() if line.startswith("data: {\"text\"")]
    assert "".join(json.loads(t[6:])["text"] for t in tokens) == "".join(CHUNKS)
    assert len(tokens) <= 8, tokens


def test_coalesce_ms_out_of_range_is_a_usage_error(invoke):
    result = invoke("serve", "--coalesce-ms", "-1")
    assert result.code == 2 and "coalesce-ms" in result.stderr


class _Transport(asyncio.Transport):
    """Records what the connection asks of its socket, and holds what `send` is given while reading
    is paused, as the kernel would, handing it over in one read when reading resumes."""

    def __init__(self, conn: object) -> None:
        super().__init__()
        self.conn: Any = conn
        self.calls: list[str] = []
        self.kernel = b""

    def send(self, data: bytes) -> None:
        if "pause" in self.calls[-1:] or self.kernel:  # paused, or a read is due: in order after it
            self.kernel += data
        else:
            self.conn.data_received(data)

    def _deliver(self) -> None:
        data, self.kernel = self.kernel, b""
        if data:
            self.conn.data_received(data)

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")
        if self.kernel:
            asyncio.get_running_loop().call_later(0.001, self._deliver)  # at the loop's next poll


@pytest.mark.parametrize(("gap", "held"), [(0.04, False), (0.004, True)], ids=["slower", "faster"])
def test_only_a_stream_faster_than_the_pace_is_held(gap, held):
    """The pacing on the protocol alone (a transport that records, and keeps what comes while paused
    as the kernel would): tokens 40 ms apart at a 20 ms pace wake the reader each as it comes, with
    no timer and no pause (held, each token cost a timer and two socket calls for nothing); 4 ms
    apart, the socket is paused and the reader woken a few times for all of them — and no token
    waits much more than the pace (a hold that began at the read after a pause kept that read's
    tokens a second interval)."""
    from streamchat.providers._ahttp import _Connection

    async def run() -> tuple[list[tuple[float, bytes]], list[str], list[float]]:
        loop = asyncio.get_running_loop()
        conn = _Connection(loop, 30.0, pace=0.02)
        transport = _Transport(conn)
        conn.connection_made(transport)
        transport.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        reads: list[tuple[float, bytes]] = []
        sent: list[float] = []

        async def reader() -> None:
            while data := await conn.read():
                reads.append((loop.time(), data))

        task = asyncio.ensure_future(reader())
        for i in range(10):
            await asyncio.sleep(gap)
            sent.append(loop.time())
            transport.send(b"%x\r\n%s\r\n" % (len(b"t%d " % i), b"t%d " % i))
        await asyncio.sleep(0.05)
        transport.send(b"0\r\n\r\n")
        await asyncio.wait_for(task, 5)
        conn.done_with()
        return reads, transport.calls, sent

    reads, calls, sent = asyncio.run(run())
    assert b"".join(data for _, data in reads) == b"".join(b"t%d " % i for i in range(10))
    if held:
        assert "pause" in calls and calls.count("pause") == calls.count("resume") and len(reads) <= 6
        seen = 0
        for at, data in reads:  # each token's wait: from when it was sent to the read that brought it
            for _ in range(data.count(b"t")):
                assert at - sent[seen] < 0.02 + 0.015, (seen, at - sent[seen])
                seen += 1
    else:
        assert calls == [] and len(reads) == 10
