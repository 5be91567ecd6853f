"""A provider's turn run on both of its paths, for the tests that hold them to one behaviour."""

from __future__ import annotations

import asyncio

from streamchat.events import Outcome, TurnResult
from streamchat.providers.base import ChatRequest, Provider
from streamchat.session import RetryPolicy, run_turn, run_turn_async
from streamchat.sinks import NullSink


def assert_fails_alike(provider: Provider, request: ChatRequest) -> None:
    """serve's asyncio turn fails as the blocking one does: the same outcome, error type, line, hint
    and Retry-After, and the same partial text (no retries, so each path meets the fault once)."""

    async def turn() -> list[object]:
        return [item async for item in run_turn_async(provider, request, retry=RetryPolicy(retries=0))]

    served = asyncio.run(turn())[-1]
    blocking = run_turn(provider, request, NullSink(), retry=RetryPolicy(retries=0))
    assert isinstance(served, TurnResult) and served.outcome is blocking.outcome is Outcome.FAILED
    assert served.error is not None and blocking.error is not None
    assert (type(served.error), str(served.error), served.error.hint, served.error.retry_after, served.text) == \
        (type(blocking.error), str(blocking.error), blocking.error.hint, blocking.error.retry_after, blocking.text)
