"""serve's `--coalesce-ms` (#34): a stream's tokens that arrive within the interval are read, passed
down and written together; the first comes at once, nothing is lost, and a connection held back
this way still serves the next answer from the pool."""

from __future__ import annotations

import asyncio
import time

import pytest
from fakeserver import Script

from streamchat.config import ProviderConfig
from streamchat.events import Done, Outcome, ReasoningDelta, TextDelta, Usage
from streamchat.providers._wire import joined
from streamchat.providers.base import ChatRequest
from streamchat.providers.openai import OpenAIProvider
from streamchat.session import _Tally

CHUNKS = [f"t{i} " for i in range(24)]


def test_joined_makes_one_delta_of_each_run_of_text():
    events = [TextDelta("a"), TextDelta("b"), Usage(1, 2), TextDelta("c"), TextDelta("d", 2),
              ReasoningDelta("r"), TextDelta("e"), Done("stop")]
    assert joined(events) == [TextDelta("ab", 2), Usage(1, 2), TextDelta("cd", 3), ReasoningDelta("r"),
                              TextDelta("e"), Done("stop")]
    one = [TextDelta("x")]
    assert joined(one) is one


def test_a_joined_delta_counts_its_pieces_as_tokens_when_no_usage_comes():
    tally = _Tally()
    for event in (TextDelta("ab", 2), TextDelta("c")):
        tally.add(event)
    assert tally.result(Outcome.OK, None).stats.tokens == 3


def _adapter(server, monkeypatch: pytest.MonkeyPatch, pace: float) -> OpenAIProvider:
    """An OpenAI adapter as serve builds it: the asyncio lean transport, reading at `pace`."""
    from streamchat.providers import _sdk

    monkeypatch.setattr(_sdk, "_async_transport", True)
    monkeypatch.setattr(_sdk, "_read_pace", pace)
    monkeypatch.setenv("STREAMCHAT_TRANSPORT", "")
    config = ProviderConfig("openai", "openai", base_url=server.url + "/v1", api_key="sk-test-key-0001")
    adapter = OpenAIProvider(config, timeout=30.0)
    assert adapter._alean is not None and adapter._alean.pace == pace
    return adapter


def _answers(adapter: OpenAIProvider, times: int) -> list[list[tuple[float, object]]]:
    """Each answer's events with when they came (seconds after its request), `times` answers in a row
    on the adapter's pool."""
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

    return asyncio.run(asyncio.wait_for(run(), 60))


def _text(events: list[tuple[float, object]]) -> list[TextDelta]:
    return [e for _, e in events if isinstance(e, TextDelta)]


@pytest.mark.parametrize("pace", [0.0, 0.06], ids=["each-token", "coalesced"])
def test_tokens_within_the_interval_come_as_one_event_and_none_is_lost(server, monkeypatch, pace):
    """24 tokens 10 ms apart: read as they come, each is an event; at 60 ms, a handful of events, the
    first of them the first token alone (it waits for nothing), the same text and token count. Two
    answers in a row: the connection held unread when the first ended is read again for the second
    (it was not, and the second answer hung until the read timeout)."""
    server.script("paced", Script(chunks=CHUNKS, delay=0.01, keep_alive=True))
    answers = _answers(_adapter(server, monkeypatch, pace), times=2)
    assert server.connections == 1  # both answers on one pooled connection
    for events in answers:
        deltas = _text(events)
        assert "".join(d.text for d in deltas) == "".join(CHUNKS)
        assert sum(d.pieces for d in deltas) == len(CHUNKS)
    first = _text(answers[0])  # (the second's first tokens meet the fake server's Nagle delay, paced or not)
    if pace:
        assert first[0] == TextDelta(CHUNKS[0])
        assert len(first) <= 8, [d.pieces for d in first]  # ~240 ms of tokens in 60 ms reads
    else:
        assert len(first) >= 12  # nearly one each (a busy machine may join a few)
